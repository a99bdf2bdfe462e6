package io.vswitch.testing;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/** Runs the vswitch CLI in a separate JVM, as a user would from another shell. */
public final class SecondProcess {
    private SecondProcess() {
    }

    public record Result(int exitCode, String output) {
    }

    private static List<String> command(List<String> jvmOptions, String... args) {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.addAll(JvmFlags.forCommand(args.length > 0 ? args[0] : ""));   // as ./vswitch does
        cmd.addAll(jvmOptions);
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), "io.vswitch.cli.Main"));
        cmd.addAll(List.of(args));
        return cmd;
    }

    public static Result vswitch(String... args) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command(List.of(), args)).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("vswitch " + String.join(" ", args) + " did not finish");
        }
        return new Result(p.exitValue(), new String(out, StandardCharsets.UTF_8));
    }

    /** Starts a long-running {@code vswitch} (e.g. {@code run}); its output is collected as it comes. */
    public static Running start(String... args) throws IOException {
        return start(List.of(), args);
    }

    /** As {@link #start(String...)}, with more JVM options (e.g. a diagnostic {@code -D} property) after jvm.options'. */
    public static Running start(List<String> jvmOptions, String... args) throws IOException {
        return new Running(new ProcessBuilder(command(jvmOptions, args)).redirectErrorStream(true).start());
    }

    /** A {@code vswitch} process that keeps running; closing it kills it (SIGKILL) if it still runs. */
    public static final class Running implements AutoCloseable {
        public final Process process;
        private final StringBuilder out = new StringBuilder();
        private final Thread reader;

        private Running(Process process) {
            this.process = process;
            this.reader = Thread.ofPlatform().daemon().start(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                    String line;
                    while ((line = r.readLine()) != null) {
                        synchronized (out) {
                            out.append(line).append('\n');
                        }
                    }
                } catch (IOException ignored) {
                    // the process ended
                }
            });
        }

        public long pid() {
            return process.pid();
        }

        public String output() {
            synchronized (out) {
                return out.toString();
            }
        }

        /** Waits until {@code condition} holds, failing with the process's output if it does not in time. */
        public void await(String what, Duration timeout, BooleanSupplier condition) throws InterruptedException {
            long deadline = System.nanoTime() + timeout.toNanos();
            while (!condition.getAsBoolean()) {
                if (System.nanoTime() > deadline) {
                    throw new AssertionError("timed out waiting for " + what + "; vswitch said:\n" + output());
                }
                if (!process.isAlive() && !condition.getAsBoolean()) {
                    reader.join(2000);
                    throw new AssertionError("vswitch exited (" + process.exitValue() + ") before " + what + ":\n" + output());
                }
                Thread.sleep(50);
            }
        }

        /** Waits until the output has a line containing {@code text}. */
        public void awaitOutput(String text, Duration timeout) throws InterruptedException {
            await("'" + text + "' in the output", timeout, () -> output().contains(text));
        }

        /** SIGTERM, then the exit code (failing if it takes over 20 s). */
        public int terminate() throws IOException, InterruptedException {
            new ProcessBuilder("kill", "-TERM", Long.toString(process.pid())).start().waitFor();
            if (!process.waitFor(20, TimeUnit.SECONDS)) {
                throw new AssertionError("vswitch did not stop on SIGTERM:\n" + output());
            }
            reader.join(2000);
            return process.exitValue();
        }

        /** SIGKILL: the process dies at once, leaving its files behind as a crash would. */
        public void kill() throws InterruptedException {
            process.destroyForcibly();
            process.waitFor(20, TimeUnit.SECONDS);
        }

        @Override
        public void close() throws InterruptedException {
            if (process.isAlive()) {
                kill();
            }
        }
    }
}
