package io.vswitch.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The JVM flags every vswitch JVM needs, read from {@code jvm.options} at the repository root (the one place
 * they are written down), which the build copies into this module's jar. Tests and benchmarks that start a
 * second JVM, and the JMH forks, take their flags from here.
 */
public final class JvmFlags {
    private static final List<String> FLAGS = load();

    private JvmFlags() {
    }

    /** The flags, one argument per element, as a {@link ProcessBuilder} wants them. */
    public static List<String> list() {
        return FLAGS;
    }

    /**
     * The flags for the CLI command {@code command}, as {@code ./vswitch} passes them: only {@code run} moves
     * frames, so the other commands leave out {@code --add-modules jdk.incubator.vector} and with it the JVM's
     * "Using incubator modules" warning.
     */
    public static List<String> forCommand(String command) {
        return "run".equals(command) ? FLAGS : withoutVectorModule();
    }

    /** {@link #list()} without {@code --add-modules jdk.incubator.vector}. */
    public static List<String> withoutVectorModule() {
        List<String> flags = new ArrayList<>();
        for (int i = 0; i < FLAGS.size(); i++) {
            if (FLAGS.get(i).equals("--add-modules") && i + 1 < FLAGS.size() && FLAGS.get(i + 1).equals("jdk.incubator.vector")) {
                i++;
            } else {
                flags.add(FLAGS.get(i));
            }
        }
        return List.copyOf(flags);
    }

    private static List<String> load() {
        try (InputStream in = JvmFlags.class.getResourceAsStream("/jvm.options")) {
            if (in == null) {
                throw new IllegalStateException("jvm.options is not on the class path (the testing module's build copies it)");
            }
            List<String> flags = new ArrayList<>();
            for (String line : new String(in.readAllBytes(), StandardCharsets.UTF_8).split("\n")) {
                String t = line.strip();
                if (t.isEmpty() || t.startsWith("#")) {
                    continue;
                }
                flags.addAll(List.of(t.split("\\s+")));
            }
            return List.copyOf(flags);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
