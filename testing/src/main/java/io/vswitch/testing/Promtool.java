package io.vswitch.testing;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * Prometheus' {@code promtool} (Debian package {@code prometheus}, which {@code ./vswitch setup} installs): its
 * {@code check metrics} lints a scrape in the Prometheus text format the way Prometheus' own tooling does.
 *
 * <pre>
 * Promtool.require();
 * Promtool.Result r = Promtool.checkMetrics(body);
 * </pre>
 */
public final class Promtool {
    public static final String PROMTOOL = "promtool";

    private Promtool() {
    }

    public static boolean available() {
        return QemuGuest.onPath(PROMTOOL) != null;
    }

    /** Fails in CI, skips locally, unless promtool is installed (see {@link Peers#require}). */
    public static void require() {
        Peers.require(available(), PROMTOOL + " not on PATH (apt package prometheus; ./vswitch setup installs it)");
    }

    /** What {@code promtool check metrics} said: its exit code and everything it printed. */
    public record Result(int exitCode, String output) {
    }

    /** Runs {@code promtool check metrics} on {@code exposition} (given on its standard input). */
    public static Result checkMetrics(String exposition) throws IOException, InterruptedException {
        Path promtool = QemuGuest.onPath(PROMTOOL);
        Process p = new ProcessBuilder(promtool.toString(), "check", "metrics").redirectErrorStream(true).start();
        try (OutputStream in = p.getOutputStream()) {
            in.write(exposition.getBytes(StandardCharsets.UTF_8));
        }
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("promtool check metrics did not finish");
        }
        return new Result(p.exitValue(), new String(out, StandardCharsets.UTF_8));
    }
}
