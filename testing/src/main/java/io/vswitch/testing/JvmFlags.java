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
