package io.vswitch.testing;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * DPDK's {@code dpdk-testpmd} as a test peer: with {@code net_vhost} vdevs it is a reference vhost-user
 * backend (to test guests and QEMU without our switch); with {@code net_virtio_user} vdevs a reference
 * vhost-user frontend (to test our switch without a VM).
 *
 * <p>Launched with {@code -i} it is driven through its prompt ({@link #command}, {@link #portStats});
 * otherwise it just runs (e.g. {@code --forward-mode=io --auto-start}) until {@link #close}.
 *
 * <pre>{@code
 * TestPmd.require();
 * try (TestPmd pmd = TestPmd.start("pmd", workDir,
 *         List.of("-l", "0,1", "--no-pci", "--no-huge", "-m", "256",
 *                 "--vdev", "net_vhost0,iface=/tmp/x/a.sock", "--vdev", "net_vhost1,iface=/tmp/x/b.sock"),
 *         List.of("-i", "--total-num-mbufs=8192"))) {
 *     pmd.startForwarding();
 *     ...
 *     Map<Integer, TestPmd.PortStats> stats = pmd.portStats();
 * }
 * }</pre>
 */
public final class TestPmd implements AutoCloseable {

    public static final String TESTPMD = "dpdk-testpmd";
    private static final String PROMPT = "testpmd> ";
    private static final AtomicInteger INSTANCES = new AtomicInteger();

    /** One port's counters from {@code show port stats all}. */
    public record PortStats(int port, long rxPackets, long rxMissed, long rxBytes, long rxErrors, long rxNoMbuf,
                            long txPackets, long txErrors, long txBytes) {
    }

    private final String name;
    private final boolean interactive;
    private final String filePrefix;
    private final ProcessConsole console;

    private TestPmd(String name, boolean interactive, String filePrefix, ProcessConsole console) {
        this.name = name;
        this.interactive = interactive;
        this.filePrefix = filePrefix;
        this.console = console;
    }

    private static String filePrefix(List<String> ealArgs) {
        for (int i = 0; i < ealArgs.size(); i++) {
            String a = ealArgs.get(i);
            if (a.startsWith("--file-prefix=")) {
                return a.substring("--file-prefix=".length());
            }
            if (a.equals("--file-prefix") && i + 1 < ealArgs.size()) {
                return ealArgs.get(i + 1);
            }
        }
        return null;
    }

    /** True if dpdk-testpmd is on the PATH. */
    public static boolean available() {
        return QemuGuest.onPath(TESTPMD) != null;
    }

    /** Fails in CI, skips locally, unless dpdk-testpmd is installed (see {@link Peers#require}). */
    public static void require() {
        Peers.require(available(), TESTPMD + " not on PATH (apt package dpdk)");
    }

    /**
     * Starts {@code dpdk-testpmd <ealArgs> -- <appArgs>} with its output in {@code workDir/<name>.log}.
     * Adds {@code --file-prefix=vs-<name>-<pid>-<n>} unless ealArgs has one, so concurrent instances (and
     * a leftover from a crashed run) never share DPDK runtime files; {@link #close} removes that runtime
     * directory. If appArgs has {@code -i}, waits for the first prompt before returning.
     */
    public static TestPmd start(String name, Path workDir, List<String> ealArgs, List<String> appArgs)
            throws IOException {
        Files.createDirectories(workDir);
        // testpmd prints results with stdio, fully buffered into a pipe, but writes its prompt and echo
        // straight to the fd: without stdbuf the output of a command arrives only at exit, out of order.
        List<String> cmd = new ArrayList<>(List.of("stdbuf", "-o0", "-e0", TESTPMD));
        cmd.addAll(ealArgs);
        String prefix = filePrefix(ealArgs);
        if (prefix == null) {
            prefix = "vs-" + name + "-" + ProcessHandle.current().pid() + "-" + INSTANCES.incrementAndGet();
            cmd.add("--file-prefix=" + prefix);
        }
        cmd.add("--");
        cmd.addAll(appArgs);
        boolean interactive = appArgs.contains("-i") || appArgs.contains("--interactive");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        TestPmd pmd = new TestPmd(name, interactive, prefix, new ProcessConsole("testpmd-" + name, p,
                workDir.resolve(name + ".log")));
        if (interactive) {
            try {
                pmd.console.awaitText(0, PROMPT, Duration.ofSeconds(60));
            } catch (AssertionError e) {
                pmd.close();
                throw e;
            }
        }
        return pmd;
    }

    /**
     * Runs one command at the prompt (interactive mode only) and returns what it printed, without the echoed
     * command and the next prompt.
     */
    public String command(String command, Duration timeout) {
        if (!interactive) {
            throw new IllegalStateException(name + ": not started with -i");
        }
        int offset = console.textLength();
        console.send(command + "\n");
        String out = console.awaitText(offset, PROMPT, timeout);
        int nl = out.indexOf('\n');
        return nl >= 0 ? out.substring(nl + 1) : ""; // the first line is testpmd's echo of the command
    }

    /** {@code start}: begins forwarding in the configured mode. */
    public String startForwarding() {
        return command("start", Duration.ofSeconds(30));
    }

    /** {@code stop}: stops forwarding; the output has testpmd's forward statistics. */
    public String stopForwarding() {
        return command("stop", Duration.ofSeconds(30));
    }

    /** {@code show port stats all}, parsed: port id to counters. */
    public Map<Integer, PortStats> portStats() {
        return parsePortStats(command("show port stats all", Duration.ofSeconds(30)));
    }

    /**
     * The last stats block each port printed so far; for non-interactive runs with {@code --stats-period N},
     * where testpmd prints them on its own.
     */
    public Map<Integer, PortStats> lastPrintedPortStats() {
        return parsePortStats(console.tail(Integer.MAX_VALUE));
    }

    private static final Pattern PORT = Pattern.compile("NIC statistics for port (\\d+)");
    private static final Pattern RX = Pattern.compile(
            "RX-packets:\\s*(\\d+)\\s+RX-missed:\\s*(\\d+)\\s+RX-bytes:\\s*(\\d+)");
    private static final Pattern RX_ERR = Pattern.compile("RX-errors:\\s*(\\d+)");
    private static final Pattern RX_NOMBUF = Pattern.compile("RX-nombuf:\\s*(\\d+)");
    private static final Pattern TX = Pattern.compile(
            "TX-packets:\\s*(\\d+)\\s+TX-errors:\\s*(\\d+)\\s+TX-bytes:\\s*(\\d+)");

    /** Parses the output of {@code show port stats all} (or {@code show port stats N}); a later block for a port wins. */
    public static Map<Integer, PortStats> parsePortStats(String text) {
        Map<Integer, PortStats> stats = new TreeMap<>();
        Matcher port = PORT.matcher(text);
        List<int[]> blocks = new ArrayList<>();
        while (port.find()) {
            blocks.add(new int[]{Integer.parseInt(port.group(1)), port.end()});
        }
        for (int i = 0; i < blocks.size(); i++) {
            int from = blocks.get(i)[1];
            int to = i + 1 < blocks.size() ? blocks.get(i + 1)[1] : text.length();
            String block = text.substring(from, to);
            Matcher rx = RX.matcher(block);
            Matcher tx = TX.matcher(block);
            if (!rx.find() || !tx.find()) {
                continue; // cut off (e.g. the process died mid-print)
            }
            int id = blocks.get(i)[0];
            stats.put(id, new PortStats(id, Long.parseLong(rx.group(1)), Long.parseLong(rx.group(2)),
                    Long.parseLong(rx.group(3)), firstNumber(RX_ERR, block), firstNumber(RX_NOMBUF, block),
                    Long.parseLong(tx.group(1)), Long.parseLong(tx.group(2)), Long.parseLong(tx.group(3))));
        }
        return Collections.unmodifiableMap(stats);
    }

    private static long firstNumber(Pattern p, String text) {
        Matcher m = p.matcher(text);
        return m.find() ? Long.parseLong(m.group(1)) : 0;
    }

    /** Waits for the next output line that {@code pattern} finds something in (expect-style, see {@link QemuGuest#awaitLine}). */
    public Matcher awaitLine(Pattern pattern, Duration timeout) {
        return console.awaitLine(pattern, timeout).matcher();
    }

    /** Waits until {@code path} exists, e.g. a vhost-user socket testpmd creates as server. */
    public void awaitFile(Path path, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!Files.exists(path)) {
            if (!isAlive()) {
                throw console.failure("exited (" + console.exitDescription() + ") before creating " + path);
            }
            if (System.nanoTime() > deadline) {
                throw console.failure(path + " not created within " + timeout);
            }
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw console.failure("interrupted");
            }
        }
    }

    /** SIGKILL, like a crash; returns at once. */
    public void kill() {
        console.kill();
    }

    /**
     * Stops testpmd cleanly, so it closes its vhost-user sockets and DPDK runtime files: {@code quit} in
     * interactive mode, else SIGTERM (which testpmd handles the same way); SIGKILL if it takes over 10 s.
     */
    @Override
    public void close() {
        Process p = console.process();
        if (p.isAlive()) {
            try {
                if (interactive) {
                    console.send("quit\n");
                } else {
                    p.destroy();
                }
            } catch (RuntimeException e) {
                // stdin already gone: it is dying anyway
            }
        }
        console.awaitExitOrKill(Duration.ofSeconds(10));
        removeRuntimeDir();
        removeHugepageFiles();
    }

    /**
     * DPDK leaves its hugepage backing files (named after the file prefix) in hugetlbfs when it exits, and
     * they keep the pages reserved: a few test runs later no hugepages would be left.
     */
    private void removeHugepageFiles() {
        if (filePrefix == null) {
            return;
        }
        Path mount = Path.of("/dev/hugepages");
        try (var files = Files.list(mount)) {
            for (Path f : files.filter(f -> f.getFileName().toString().startsWith(filePrefix + "map_")).toList()) {
                Files.deleteIfExists(f);
            }
        } catch (IOException e) {
            // no hugetlbfs mounted there: nothing was left behind in it
        }
    }

    /**
     * DPDK leaves its runtime directory (about 3 MB of memory-map metadata in /var/run, which is RAM) behind
     * even on a clean exit; once the process is gone nothing can use it, so each run would just add one.
     */
    private void removeRuntimeDir() {
        if (isAlive()) {
            return;
        }
        String xdg = System.getenv("XDG_RUNTIME_DIR");
        for (Path base : xdg == null ? List.of(Path.of("/var/run/dpdk"))
                : List.of(Path.of("/var/run/dpdk"), Path.of(xdg, "dpdk"))) {
            Path dir = base.resolve(filePrefix);
            if (!Files.isDirectory(dir)) {
                continue;
            }
            try (var files = Files.list(dir)) {
                for (Path f : files.toList()) {
                    Files.deleteIfExists(f);
                }
                Files.deleteIfExists(dir);
            } catch (IOException e) {
                System.err.println("TestPmd " + name + ": could not remove " + dir + ": " + e);
            }
        }
    }

    public boolean isAlive() {
        return console.process().isAlive();
    }

    public long pid() {
        return console.process().pid();
    }

    public boolean interactive() {
        return interactive;
    }

    /** Everything testpmd printed. */
    public Path log() {
        return console.logFile();
    }

    public String tail(int lines) {
        return console.tail(lines);
    }

    @Override
    public String toString() {
        return "TestPmd[" + name + ", pid " + pid() + "]";
    }
}
