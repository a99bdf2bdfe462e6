package io.vswitch.bench.notify;

import io.vswitch.testing.JvmFlags;
import io.vswitch.engine.CountersFile;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * {@code vswitch run -c FILE} as a separate process (what {@code ./vswitch run} starts, without the launcher's
 * rebuild-if-stale step, which must not fire in the middle of a measurement), and what the benchmark reads
 * from outside: its CPU time from {@code /proc/PID/stat}, {@code vswitch stats}, and the counters file.
 */
final class SwitchProcess implements AutoCloseable {
    /** Every child process still alive, killed by a shutdown hook if the benchmark is interrupted. */
    static final Set<Process> LIVE = ConcurrentHashMap.newKeySet();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> LIVE.forEach(p -> {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
        }), "notify-bench-reaper"));
    }

    /**
     * The launcher's JVM options (see ./vswitch): jvm.options plus its GC settings, then the words of
     * {@code NOTIFY_VSWITCH_JVM_OPTS} (for experiments: {@code -Xlog:safepoint}, a system property...).
     */
    static final List<String> JVM_FLAGS = java.util.stream.Stream.of(JvmFlags.list().stream(),
            java.util.stream.Stream.of("-XX:+UseParallelGC", "-Xms256m"),
            words(System.getenv().getOrDefault("NOTIFY_VSWITCH_JVM_OPTS", "")).stream()).flatMap(x -> x).toList();

    /** The whitespace-separated words of {@code options} (JVM options from an environment variable or a command line). */
    static List<String> words(String options) {
        return java.util.Arrays.stream(options.trim().split("\\s+")).filter(w -> !w.isEmpty()).toList();
    }

    private static final long CLK_TCK = clockTicks();

    private final Process process;
    private final Path jar;
    private final Path counters;
    private final Path log;

    private SwitchProcess(Process process, Path jar, Path counters, Path log) {
        this.process = process;
        this.jar = jar;
        this.counters = counters;
        this.log = log;
    }

    static String java() {
        return ProcessHandle.current().info().command().orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    }

    static SwitchProcess start(Path jar, Path config, Path counters, Path log) throws IOException {
        return start(jar, List.of(), config, counters, log);
    }

    /** As {@link #start(Path, Path, Path, Path)}, with {@code extraJvmOptions} after {@link #JVM_FLAGS}. */
    static SwitchProcess start(Path jar, List<String> extraJvmOptions, Path config, Path counters, Path log) throws IOException {
        List<String> cmd = new ArrayList<>();
        cmd.add(java());
        cmd.addAll(JVM_FLAGS);
        cmd.addAll(extraJvmOptions);
        cmd.addAll(List.of("-jar", jar.toString(), "run", "-c", config.toString()));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        LIVE.add(p);
        return new SwitchProcess(p, jar, counters, log);
    }

    long pid() {
        return process.pid();
    }

    Path log() {
        return log;
    }

    /** utime + stime of the whole process (all threads), in clock ticks, from /proc/PID/stat. */
    long cpuTicks() throws IOException {
        return cpuTicks(process.pid());
    }

    /** utime + stime of process {@code pid} (all its threads), in clock ticks; 0 once it is gone. */
    static long cpuTicks(long pid) throws IOException {
        String stat;
        try {
            stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"));
        } catch (java.nio.file.NoSuchFileException e) {
            return 0;
        }
        // the command name (field 2) may hold spaces and parentheses: fields are counted after the last ')'
        String[] f = stat.substring(stat.lastIndexOf(')') + 2).trim().split(" +");
        // f[0] is field 3 (state); utime is field 14, stime field 15
        return Long.parseLong(f[11]) + Long.parseLong(f[12]);
    }

    /**
     * Busy clock ticks of the whole machine (all cpus: user, nice, system, irq, softirq; not idle, iowait or
     * steal), from the first line of /proc/stat.
     */
    static long machineBusyTicks() throws IOException {
        String first = Files.readAllLines(Path.of("/proc/stat")).getFirst();
        String[] f = first.trim().split(" +");
        // cpu user nice system idle iowait irq softirq steal ...
        return Long.parseLong(f[1]) + Long.parseLong(f[2]) + Long.parseLong(f[3]) + Long.parseLong(f[6]) + Long.parseLong(f[7]);
    }

    /** Steal ticks of the whole machine: time its virtual cpus wanted to run but the hypervisor ran something else. */
    static long machineStealTicks() throws IOException {
        String[] f = Files.readAllLines(Path.of("/proc/stat")).getFirst().trim().split(" +");
        return f.length > 8 ? Long.parseLong(f[8]) : 0;
    }

    static double cpuPercent(long ticks, long nanos) {
        return 100.0 * ticks / CLK_TCK / (nanos / 1e9);
    }

    private static long clockTicks() {
        try {
            Process p = new ProcessBuilder("getconf", "CLK_TCK").redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.US_ASCII).trim();
            p.waitFor();
            return Long.parseLong(out);
        } catch (IOException | InterruptedException | NumberFormatException e) {
            return 100;
        }
    }

    /** Runs {@code vswitch stats --counters FILE} and returns its port tables: port name to column to value. */
    Map<String, Map<String, Long>> statsCommand() throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>();
        cmd.add(java());
        cmd.addAll(JvmFlags.list());
        cmd.addAll(List.of("-jar", jar.toString(), "stats", "--counters", counters.toString()));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        LIVE.add(p);
        String out;
        try {
            out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(30, TimeUnit.SECONDS)) {
                p.destroyForcibly();
            }
        } finally {
            LIVE.remove(p);
        }
        Map<String, Map<String, Long>> ports = new LinkedHashMap<>();
        String[] header = null;
        for (String line : out.split("\n")) {
            String[] cells = line.trim().split("\\s+");
            if (cells.length > 1 && cells[0].equals("port")) {
                header = cells;
            } else if (header != null && cells.length == header.length && !cells[0].equals("worker")) {
                // the port tables (traffic, then drops and errors) share the port column: merge their rows
                Map<String, Long> row = ports.computeIfAbsent(cells[0], k -> new HashMap<>());
                for (int i = 1; i < cells.length; i++) {
                    try {
                        row.put(header[i], Long.parseLong(cells[i]));
                    } catch (NumberFormatException e) {
                        // not a counter row
                    }
                }
            }
        }
        return ports;
    }

    /** Polls {@code vswitch stats} until every one of {@code ports} shows {@code link_up 1}. */
    void awaitLinkUp(List<String> ports, Duration timeout) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        Map<String, Map<String, Long>> last = Map.of();
        while (System.nanoTime() < deadline) {
            if (!process.isAlive()) {
                throw new IOException("the switch exited (" + process.exitValue() + "); see " + log);
            }
            last = statsCommand();
            boolean all = true;
            for (String port : ports) {
                all &= last.getOrDefault(port, Map.of()).getOrDefault("link_up", 0L) == 1L;
            }
            if (all) {
                return;
            }
            Thread.sleep(200);
        }
        throw new IOException("ports " + ports + " not all link_up 1 within " + timeout + ": " + last);
    }

    /** Waits until the switch has created its socket files. */
    void awaitSockets(List<Path> sockets, Duration timeout) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        for (Path s : sockets) {
            while (!Files.exists(s)) {
                if (!process.isAlive()) {
                    throw new IOException("the switch exited (" + process.exitValue() + "); see " + log);
                }
                if (System.nanoTime() > deadline) {
                    throw new IOException(s + " not created within " + timeout + "; see " + log);
                }
                Thread.sleep(50);
            }
        }
    }

    /** All counters, read from the counters file (also the per-worker ones {@code vswitch stats} does not print). */
    Counters counters() throws IOException {
        return new Counters(CountersFile.read(counters));
    }

    /** A counters snapshot with lookups. */
    record Counters(CountersFile.Snapshot snapshot) {
        long port(String port, String counter) {
            return snapshot.samples().stream()
                    .filter(s -> s.scope().equals("port") && s.name().equals(port) && s.counter().equals(counter))
                    .mapToLong(CountersFile.Sample::value).sum();
        }

        long ports(String counter) {
            return snapshot.samples().stream().filter(s -> s.scope().equals("port") && s.counter().equals(counter))
                    .mapToLong(CountersFile.Sample::value).sum();
        }

        long workers(String counter) {
            return snapshot.samples().stream().filter(s -> s.scope().equals("worker") && s.counter().equals(counter))
                    .mapToLong(CountersFile.Sample::value).sum();
        }

        long drops() {
            return ports("drop_rx_ring_full") + ports("drop_no_buffers") + ports("drop_port_down")
                    + ports("drop_invalid") + ports("drop_over_mtu");
        }
    }

    /** SIGTERM (the switch closes its ports and removes its sockets), SIGKILL after 10 s. */
    @Override
    public void close() {
        try {
            if (process.isAlive()) {
                process.destroy();
                if (!process.waitFor(10, TimeUnit.SECONDS)) {
                    System.err.println("notify-bench: the switch did not stop within 10 s of SIGTERM; killing it");
                    process.destroyForcibly();
                    process.waitFor(10, TimeUnit.SECONDS);
                }
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        } finally {
            LIVE.remove(process);
        }
    }
}
