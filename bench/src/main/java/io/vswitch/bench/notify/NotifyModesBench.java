package io.vswitch.bench.notify;

import io.vswitch.sys.Affinity;
import io.vswitch.testing.TestPmd;
import org.HdrHistogram.Histogram;

import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.Stream;

/**
 * The four notification modes, each measured the same way, one switch process per mode and phase:
 *
 * <ol>
 *   <li><b>idle CPU</b>: the switch ({@code vswitch run -c FILE}, cross-connect a-b, one worker pinned) with two
 *       guests attached and silent; once {@code vswitch stats} shows both ports {@code link_up 1} and a settling
 *       pause has passed, utime+stime of the switch process from {@code /proc/PID/stat} over the window, as
 *       percent of one core.</li>
 *   <li><b>round-trip latency</b>: in the same switch, one Java thread plays both guests (vhost-user frontends
 *       with memfd guest memory, see {@link PingPongGuest}): guest a transmits a 64-byte frame, guest b spins on
 *       its RX used ring, reflects the frame, guest a spins until the echo is back. Fixed rate (1000 round trips
 *       per second by default); every round trip after the warm-up goes into an HdrHistogram. Guests kick the
 *       switch whenever it asks for kicks, which is what wakes a sleeping worker.</li>
 *   <li><b>throughput</b>: a fresh switch and dpdk-testpmd with two virtio-user ports on its sockets,
 *       io forwarding on one lcore, {@code start tx_first N}, 64-byte frames; after a warm-up, the deltas of
 *       testpmd's RX and TX packet counters over the window, in Mpps ((RX + TX) / 2, both ports summed).</li>
 * </ol>
 *
 * Run it with {@code bench/notify-modes.sh} (which builds, takes the benchmark lock and passes the options on);
 * {@code --help} lists the options.
 */
public final class NotifyModesBench {
    private static final VarHandle LONG_LE = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);
    private static final int FRAME = 64;
    private static final int SEQ_AT = PingPongGuest.HEADER + 14;
    private static final long ROUND_TRIP_TIMEOUT_NANOS = 1_000_000_000L;

    /** Options, with their defaults. */
    static final class Options {
        List<String> modes = List.of("poll", "interrupt", "hybrid", "monitor");
        double settleSeconds = 3;
        double idleSeconds = 10;
        int rate = 1000;
        double latencyWarmupSeconds = 2;
        double latencySeconds = 10;
        double warmupSeconds = 2;
        double throughputSeconds = 10;
        int throughputReps = 3;
        int txFirstBursts = 8;
        int switchCpu = 1;
        int benchCpu = 0;
        String testpmdLcores = "0,1";
        int testpmdMainLcore = 1;
        boolean testpmdHugepages;
        boolean eventIdx;
        Integer hybridQuietPolls;
        Path repo = Path.of(System.getProperty("notify.bench.repo", "."));
        Path workDir;
        boolean keep;
        boolean skipLatency;
        boolean skipThroughput;
        String command = System.getProperty("notify.bench.command", "bench/notify-modes.sh");
        String commit = System.getProperty("notify.bench.commit", "unknown");
        String c2c = System.getProperty("notify.bench.c2c");
        double c2cFarNanos = 300;
        int dpdkLatencyRounds;
        /**
         * A second switch build or JVM option set in the DPDK comparison's rounds ({@code --vswitch-b-jar},
         * {@code --vswitch-b-opts}): an A/B of two switch variants in one window, each against the same DPDK runs.
         */
        Path vswitchBJar;
        List<String> vswitchBOpts = List.of();

        boolean hasVswitchB() {
            return vswitchBJar != null || !vswitchBOpts.isEmpty();
        }

        /** vswitch-b's jar: {@code --vswitch-b-jar}, or the same as vswitch's. */
        Path vswitchBJar() {
            return vswitchBJar != null ? vswitchBJar : switchJar();
        }

        /** The switch under test: the repository's build, or {@code NOTIFY_VSWITCH_JAR} (to compare two builds). */
        Path switchJar() {
            String jar = System.getenv("NOTIFY_VSWITCH_JAR");
            return jar != null && !jar.isBlank() ? Path.of(jar).toAbsolutePath()
                    : repo.resolve("switch/target/vswitch.jar").toAbsolutePath();
        }
    }

    static final String USAGE = """
            usage: bench/notify-modes.sh [options]
              --modes LIST              modes to run, comma-separated (default poll,interrupt,hybrid,monitor)
              --idle-seconds S          idle CPU window (default 10)
              --settle-seconds S        pause after both links are up, before the idle window (default 3)
              --rate N                  ping-pong round trips per second (default 1000)
              --latency-seconds S       measured ping-pong time (default 10)
              --latency-warmup-seconds S  ping-pong time before measuring (default 2)
              --throughput-seconds S    testpmd measurement window (default 10)
              --warmup-seconds S        testpmd traffic before the window (default 2)
              --throughput-runs N       throughput runs per mode, each with a fresh switch and testpmd, alternated
                                        (round k runs every mode once); the table shows the median (default 3)
              --dpdk-latency-rounds N   after the modes: N alternated rounds of the ping-pong with vswitch (poll) and with
                                        DPDK's vhost backend (testpmd net_vhost, io fwd, lcore on --switch-cpu); 0: none
                                        (default 0). Only the comparison: --modes poll --idle-seconds 0 --skip-latency
                                        --skip-throughput --dpdk-latency-rounds N
              --vswitch-b-jar JAR       with --dpdk-latency-rounds: a third backend in every round, "vswitch-b": this
                                        switch jar (default: the same as vswitch's), to compare two builds in one window
              --vswitch-b-opts 'WORDS'  with --dpdk-latency-rounds: vswitch-b's extra JVM options (e.g. a -D flag),
                                        after NOTIFY_VSWITCH_JVM_OPTS
              --c2c-far-ns N            a core-to-core probe at or above N ns marks a run "far" (default 300)
              --tx-first-bursts N       testpmd 'start tx_first N' (default 8: 8 x 32 frames per port in flight, a full 256 ring)
              --switch-cpu N            the worker's cpu, 'cpus: [N]' (default 1)
              --bench-cpu N             cpu of the ping-pong thread (default 0)
              --testpmd-lcores LIST     testpmd -l (default 0,1)
              --testpmd-main-lcore N    testpmd --main-lcore; forwarding runs on the other lcore (default 1)
              --testpmd-hugepages       back testpmd's memory with hugepages (default --no-huge -m 1024)
              --event-idx               the ping-pong guests negotiate VIRTIO_RING_F_EVENT_IDX
              --hybrid-quiet-polls N    switch setting (default: the switch's default)
              --skip-latency | --skip-throughput
              --work-dir DIR            sockets, configs and logs (default: a new temp dir, removed unless --keep)
              --keep                    keep the work dir
            """;

    /**
     * CPU time over a measurement window: the switch's own, and the machine's busy time that none of our
     * processes (switch, this JVM, testpmd) account for: other work on the machine, which makes a window noisy.
     */
    static final class CpuWindow {
        private final long switchPid;
        private final long[] ours;
        private final long t0;
        private final long switch0;
        private final long ours0;
        private final long busy0;
        private final long steal0;
        double seconds;
        double stealPercent;
        double switchPercent;
        double otherPercent;

        CpuWindow(long switchPid, long... otherOwnPids) throws IOException {
            this.switchPid = switchPid;
            this.ours = otherOwnPids;
            this.busy0 = SwitchProcess.machineBusyTicks();
            this.steal0 = SwitchProcess.machineStealTicks();
            this.switch0 = SwitchProcess.cpuTicks(switchPid);
            this.ours0 = ownTicks();
            this.t0 = System.nanoTime();
        }

        private long ownTicks() throws IOException {
            long sum = SwitchProcess.cpuTicks(ProcessHandle.current().pid());
            for (long pid : ours) {
                sum += SwitchProcess.cpuTicks(pid);
            }
            return sum;
        }

        CpuWindow stop() throws IOException {
            long t1 = System.nanoTime();
            long sw = SwitchProcess.cpuTicks(switchPid) - switch0;
            long own = ownTicks() - ours0;
            long busy = SwitchProcess.machineBusyTicks() - busy0;
            seconds = (t1 - t0) / 1e9;
            switchPercent = SwitchProcess.cpuPercent(sw, t1 - t0);
            otherPercent = Math.max(0, SwitchProcess.cpuPercent(busy - sw - own, t1 - t0));
            stealPercent = SwitchProcess.cpuPercent(SwitchProcess.machineStealTicks() - steal0, t1 - t0);
            return this;
        }
    }

    /** What one mode measured; NaN or null where a phase did not run or failed. */
    static final class ModeResult {
        final String mode;
        double idleCpu = Double.NaN;
        double idleWindow;
        long idleSleeps;
        long idleWakeups;
        long idleLoops;
        long idleBusyLoops;
        Histogram latency;
        /** The measured round trips over {@link #SLOW_NANOS}, at most {@link #SLOW_KEPT}: when (wall clock) and how long. */
        final List<String> slowRoundTrips = new ArrayList<>();
        long roundTrips;
        long lost;
        long latencyKicks;
        long latencySleeps;
        long latencyWakeups;
        long latencyNotifications;
        double latencyCpu = Double.NaN;
        double mpps = Double.NaN;
        double rxMpps = Double.NaN;
        double txMpps = Double.NaN;
        double loadCpu = Double.NaN;
        long loadDrops;
        long loadKicks;
        long loadSleeps;
        long loadWakeups;
        long loadIdleLoops;
        /** Frames testpmd dropped (RX-dropped + TX-dropped of its forward statistics, warm-up included). */
        long pmdDropped = -1;
        double idleOther = Double.NaN;
        double latencyOther = Double.NaN;
        double loadOther = Double.NaN;
        double idleSteal = Double.NaN;
        double latencySteal = Double.NaN;
        double loadSteal = Double.NaN;
        /** Mpps of each throughput run, in run order. */
        final List<Double> runMpps = new ArrayList<>();
        /** The throughput runs themselves (round, probes), in run order. */
        final List<ModeResult> loadRuns = new ArrayList<>();
        /** Throughput round this run belonged to (alternated runs), and the core-to-core probe before and after it, ns (NaN: no probe). */
        int round;
        double c2cBefore = Double.NaN;
        double c2cAfter = Double.NaN;
        /** A throughput run's Mpps second by second (the last sample covers what is left of the window). */
        final List<Double> perSecondMpps = new ArrayList<>();
        /** Median Mpps of the runs whose both probes were near (NaN: none, or no probe). */
        double nearMpps = Double.NaN;

        boolean near(double farNanos) {
            return c2cBefore < farNanos && c2cAfter < farNanos;
        }
        final List<String> errors = new ArrayList<>();

        ModeResult(String mode) {
            this.mode = mode;
        }

        /** The throughput columns from the median run (by Mpps); noise (other load, steal) as the worst run's. */
        void takeLoad(List<ModeResult> runs, double farNanos) {
            if (runs.isEmpty()) {
                return;
            }
            runs.forEach(x -> runMpps.add(x.mpps));
            loadRuns.addAll(runs);
            nearMpps = median(runs.stream().filter(x -> x.near(farNanos)).mapToDouble(x -> x.mpps).toArray());
            List<ModeResult> sorted = new ArrayList<>(runs);
            sorted.sort(Comparator.comparingDouble(x -> x.mpps));
            ModeResult m = sorted.get((sorted.size() - 1) / 2);   // the median run (the lower one of two middles)
            double median = sorted.size() % 2 == 1 ? m.mpps
                    : (sorted.get(sorted.size() / 2 - 1).mpps + sorted.get(sorted.size() / 2).mpps) / 2;
            mpps = median;
            rxMpps = m.rxMpps;
            txMpps = m.txMpps;
            loadCpu = m.loadCpu;
            loadDrops = m.loadDrops;
            pmdDropped = m.pmdDropped;
            loadKicks = m.loadKicks;
            loadSleeps = m.loadSleeps;
            loadWakeups = m.loadWakeups;
            loadIdleLoops = m.loadIdleLoops;
            loadOther = runs.stream().mapToDouble(x -> x.loadOther).max().orElse(Double.NaN);
            loadSteal = runs.stream().mapToDouble(x -> x.loadSteal).max().orElse(Double.NaN);
        }
    }

    static double median(double[] values) {
        if (values.length == 0) {
            return Double.NaN;
        }
        double[] v = values.clone();
        java.util.Arrays.sort(v);
        return v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
    }

    /**
     * The cache-line round trip between the switch's and the bench's cpus now, in ns ({@code bench/tools/c2c.c},
     * compiled by notify-modes.sh and passed as {@code -Dnotify.bench.c2c}); NaN without it. Run while nothing of
     * ours is busy (before a switch starts, after it stopped).
     */
    static double c2c(Options o) {
        if (o.c2c == null) {
            return Double.NaN;
        }
        try {
            Process p = new ProcessBuilder(o.c2c, Integer.toString(o.benchCpu), Integer.toString(o.switchCpu), "50000")
                    .redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.US_ASCII).trim();
            p.waitFor();
            return Double.parseDouble(out.lines().reduce((a, b) -> b).orElse("nan"));
        } catch (IOException | NumberFormatException e) {
            return Double.NaN;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return Double.NaN;
        }
    }

    public static void main(String[] args) throws Exception {
        Options o;
        try {
            o = parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("notify-modes: " + e.getMessage());
            System.err.print(USAGE);
            System.exit(2);
            return;
        }
        if (o == null) {
            System.out.print(USAGE);
            return;
        }
        if (!Files.isRegularFile(o.switchJar())) {
            System.err.println("notify-modes: " + o.switchJar() + " missing: build first (bench/notify-modes.sh does)");
            System.exit(1);
        }
        if ((!o.skipThroughput || o.dpdkLatencyRounds > 0) && !TestPmd.available()) {
            System.err.println("notify-modes: dpdk-testpmd not on PATH (apt-get install dpdk); use --skip-throughput to measure without it");
            System.exit(1);
        }
        boolean tempDir = o.workDir == null;
        Path work = tempDir ? Files.createTempDirectory("vswitch-notify-") : Files.createDirectories(o.workDir);
        List<ModeResult> results = new ArrayList<>();
        boolean failed = false;
        String started = ZonedDateTime.now().format(DateTimeFormatter.ISO_OFFSET_DATE_TIME);
        List<LatencyVsDpdk.Run> dpdkRuns = List.of();
        try {
            Map<String, List<ModeResult>> loadRuns = new LinkedHashMap<>();
            for (String mode : o.modes) {
                ModeResult r = new ModeResult(mode);
                results.add(r);
                loadRuns.put(mode, new ArrayList<>());
                Path dir = Files.createDirectories(work.resolve(mode));
                if (!o.skipLatency || o.idleSeconds > 0) {
                    try {
                        idleAndLatency(o, dir, r);
                    } catch (Exception | AssertionError e) {
                        r.errors.add("idle/latency: " + e);
                        failed = true;
                    }
                }
            }
            if (!o.skipThroughput) {
                // Alternated: round k runs every mode once, the order rotated by one each round, so that a change of
                // the host's vCPU placement (bench/RESULTS.md, "slow mode") falls on every mode alike; each run is
                // bracketed by a core-to-core probe that says which placement it ran in.
                for (int k = 1; k <= o.throughputReps; k++) {
                    for (int j = 0; j < results.size(); j++) {
                        ModeResult r = results.get((j + k - 1) % results.size());
                        ModeResult run = new ModeResult(r.mode);
                        run.round = k;
                        try {
                            run.c2cBefore = c2c(o);
                            throughput(o, work.resolve(r.mode), run, k);
                            run.c2cAfter = c2c(o);
                            loadRuns.get(r.mode).add(run);
                        } catch (Exception | AssertionError e) {
                            r.errors.add("throughput run " + k + ": " + e);
                            failed = true;
                        }
                    }
                }
                for (ModeResult r : results) {
                    r.takeLoad(loadRuns.get(r.mode), o.c2cFarNanos);
                }
            }
            for (ModeResult r : results) {
                r.errors.forEach(e -> System.err.println("notify-modes: " + r.mode + ": " + e));
            }
            if (o.dpdkLatencyRounds > 0) {
                dpdkRuns = LatencyVsDpdk.run(o, work);
                failed |= dpdkRuns.stream().anyMatch(x -> x.error != null);
            }
        } finally {
            report(o, results, started);
            if (!dpdkRuns.isEmpty()) {
                System.out.print(LatencyVsDpdk.report(o, dpdkRuns));
                System.out.flush();
            }
            if (tempDir && !o.keep && !failed) {
                deleteTree(work);
            } else {
                System.out.println("\nlogs and configs: " + work);
            }
        }
        System.exit(failed ? 1 : 0);
    }

    // ---------------------------------------------------------------- phases

    static Path writeConfig(Options o, Path dir, String mode, String name) throws IOException {
        String yaml = """
                switch:
                  mode: cross-connect
                  notify: %s
                  workers: 1
                  cpus: [%d]
                %s  runtime-dir: %s
                ports:
                  - name: a
                    socket: %s
                  - name: b
                    socket: %s
                links:
                  - [a, b]
                """.formatted(mode, o.switchCpu,
                o.hybridQuietPolls == null ? "" : "  hybrid-quiet-polls: " + o.hybridQuietPolls + "\n",
                dir.resolve(name + "-run"), dir.resolve("a.sock"), dir.resolve("b.sock"));
        Path file = dir.resolve(name + ".yaml");
        Files.writeString(file, yaml);
        return file;
    }

    private static void idleAndLatency(Options o, Path dir, ModeResult r) throws Exception {
        Path config = writeConfig(o, dir, r.mode, "pingpong");
        log("%s: starting the switch (%s)", r.mode, config);
        try (SwitchProcess sw = SwitchProcess.start(o.switchJar(), config, dir.resolve("pingpong-run/counters"),
                dir.resolve("pingpong-switch.log"))) {
            sw.awaitSockets(List.of(dir.resolve("a.sock"), dir.resolve("b.sock")), Duration.ofSeconds(30));
            try (PingPongGuest a = PingPongGuest.attach(dir.resolve("a.sock"), o.eventIdx, 10_000);
                 PingPongGuest b = PingPongGuest.attach(dir.resolve("b.sock"), o.eventIdx, 10_000)) {
                sw.awaitLinkUp(List.of("a", "b"), Duration.ofSeconds(30));
                if (o.idleSeconds > 0) {
                    log("%s: both links up; settling %.0f s, then measuring idle CPU for %.0f s", r.mode, o.settleSeconds, o.idleSeconds);
                    Thread.sleep((long) (o.settleSeconds * 1000));
                    SwitchProcess.Counters c0 = sw.counters();
                    CpuWindow cpu = new CpuWindow(sw.pid());
                    Thread.sleep((long) (o.idleSeconds * 1000));
                    cpu.stop();
                    SwitchProcess.Counters c1 = sw.counters();
                    r.idleWindow = cpu.seconds;
                    r.idleCpu = cpu.switchPercent;
                    r.idleOther = cpu.otherPercent;
                    r.idleSteal = cpu.stealPercent;
                    r.idleSleeps = c1.workers("sleeps") - c0.workers("sleeps");
                    r.idleWakeups = c1.workers("wakeups") - c0.workers("wakeups");
                    r.idleLoops = c1.workers("idle_loops") - c0.workers("idle_loops");
                    r.idleBusyLoops = c1.workers("busy_loops") - c0.workers("busy_loops");
                    log("%s: idle CPU %.2f %% (sleeps %d, wakeups %d, idle loops %d; other load on the machine %.0f %%)",
                            r.mode, r.idleCpu, r.idleSleeps, r.idleWakeups, r.idleLoops, r.idleOther);
                }
                if (!o.skipLatency) {
                    log("%s: ping-pong, %d round trips/s, %.0f s warm-up + %.0f s measured", r.mode, o.rate,
                            o.latencyWarmupSeconds, o.latencySeconds);
                    SwitchProcess.Counters c0 = sw.counters();
                    CpuWindow cpu = new CpuWindow(sw.pid());
                    pingPong(o, a, b, r);
                    cpu.stop();
                    SwitchProcess.Counters c1 = sw.counters();
                    r.latencyCpu = cpu.switchPercent;
                    r.latencyOther = cpu.otherPercent;
                    r.latencySteal = cpu.stealPercent;
                    r.latencyKicks = c1.ports("kicks") - c0.ports("kicks");
                    r.latencySleeps = c1.workers("sleeps") - c0.workers("sleeps");
                    r.latencyWakeups = c1.workers("wakeups") - c0.workers("wakeups");
                    r.latencyNotifications = c1.ports("notifications") - c0.ports("notifications");
                    log("%s: round trip p50 %.1f us, p99 %.1f us, max %.1f us (%d round trips, %d lost; other load %.0f %%)",
                            r.mode, us(r.latency.getValueAtPercentile(50)), us(r.latency.getValueAtPercentile(99)),
                            us(r.latency.getMaxValue()), r.roundTrips, r.lost, r.latencyOther);
                    if (!r.slowRoundTrips.isEmpty()) {
                        log("%s: round trips over %d us, ended at: %s", r.mode, SLOW_NANOS / 1000, String.join(", ", r.slowRoundTrips));
                    }
                }
            }
        }
    }

    /** A round trip slower than this is listed with its time of day (see {@link ModeResult#slowRoundTrips}). */
    static final long SLOW_NANOS = 1_000_000;
    static final int SLOW_KEPT = 50;

    /** The ping-pong, on one thread pinned to the bench cpu: a sends, b reflects, a receives. */
    static void pingPong(Options o, PingPongGuest a, PingPongGuest b, ModeResult r) throws Exception {
        Throwable[] failure = new Throwable[1];
        Thread t = new Thread(() -> {
            try {
                if (o.benchCpu >= 0) {
                    Affinity.pinCurrentThread(o.benchCpu);
                }
                runPingPong(o, a, b, r);
            } catch (Throwable e) {
                failure[0] = e;
            }
        }, "ping-pong");
        t.start();
        t.join();
        if (failure[0] instanceof Exception e) {
            throw e;
        } else if (failure[0] != null) {
            throw new RuntimeException(failure[0]);
        }
    }

    private static void runPingPong(Options o, PingPongGuest a, PingPongGuest b, ModeResult r) {
        int length = PingPongGuest.HEADER + FRAME;
        byte[] frame = new byte[length];
        byte[] atB = new byte[PingPongGuest.BUFFER];
        byte[] atA = new byte[PingPongGuest.BUFFER];
        // a's frame: dst 02:00:00:00:00:0b, src 02:00:00:00:00:0a, ethertype 0x88b5 (local experimental), then a sequence number
        int eth = PingPongGuest.HEADER;
        frame[eth] = 2;
        frame[eth + 5] = 0x0b;
        frame[eth + 6] = 2;
        frame[eth + 11] = 0x0a;
        frame[eth + 12] = (byte) 0x88;
        frame[eth + 13] = (byte) 0xb5;
        Histogram h = new Histogram(10_000_000_000L, 3);
        long period = 1_000_000_000L / o.rate;
        long start = System.nanoTime();
        long measureFrom = start + (long) (o.latencyWarmupSeconds * 1e9);
        long end = measureFrom + (long) (o.latencySeconds * 1e9);
        long next = start;
        long seq = 0;
        long lost = 0;
        while (true) {
            waitUntil(next);
            if (next >= end) {
                break;
            }
            seq++;
            LONG_LE.set(frame, SEQ_AT, seq);
            long t0 = System.nanoTime();
            a.send(frame, length);
            boolean ok = await(b, atB, seq, t0 + ROUND_TRIP_TIMEOUT_NANOS);
            if (ok) {
                // reflect: swap the MAC addresses, send it back the way it came
                for (int i = 0; i < 6; i++) {
                    byte d = atB[eth + i];
                    atB[eth + i] = atB[eth + 6 + i];
                    atB[eth + 6 + i] = d;
                }
                b.send(atB, length);
                ok = await(a, atA, seq, t0 + ROUND_TRIP_TIMEOUT_NANOS);
            }
            long t1 = System.nanoTime();
            if (t0 >= measureFrom) {
                if (ok) {
                    h.recordValue(t1 - t0);
                    if (t1 - t0 > SLOW_NANOS && r.slowRoundTrips.size() < SLOW_KEPT) {
                        // its wall-clock time, to match against the switch's own logs (-Xlog with the time decorator)
                        r.slowRoundTrips.add(String.format(Locale.ROOT, "%s %.0f us", java.time.LocalTime.now(), us(t1 - t0)));
                    }
                } else {
                    lost++;
                }
            }
            next += period;
            if (next < t1) {
                next = t1;   // a slow round trip delays the next one instead of bunching the following ones
            }
        }
        r.latency = h;
        r.roundTrips = h.getTotalCount();
        r.lost = lost;
    }

    /** Spins on {@code guest}'s RX used ring until the frame numbered {@code seq} arrives (older ones are dropped). */
    private static boolean await(PingPongGuest guest, byte[] into, long seq, long deadline) {
        int spins = 0;
        while (true) {
            int n = guest.poll(into);
            if (n >= SEQ_AT + 8) {
                if ((long) LONG_LE.get(into, SEQ_AT) == seq) {
                    return true;
                }
                continue;   // a late echo of an earlier, timed-out round trip
            }
            Thread.onSpinWait();
            if ((++spins & 0x3FF) == 0 && System.nanoTime() > deadline) {
                return false;
            }
        }
    }

    private static void waitUntil(long deadline) {
        long left;
        while ((left = deadline - System.nanoTime()) > 0) {
            if (left > 200_000) {
                LockSupport.parkNanos(left - 100_000);
            } else {
                Thread.onSpinWait();
            }
        }
    }

    private static void throughput(Options o, Path dir, ModeResult r, int run) throws Exception {
        String name = "testpmd" + run;
        Path config = writeConfig(o, dir, r.mode, name);
        log("%s: throughput run %d of %d: starting a fresh switch and testpmd (core-to-core probe before: %.0f ns)", r.mode,
                run, o.throughputReps, r.c2cBefore);
        try (SwitchProcess sw = SwitchProcess.start(o.switchJar(), config, dir.resolve(name + "-run/counters"),
                dir.resolve(name + "-switch.log"))) {
            sw.awaitSockets(List.of(dir.resolve("a.sock"), dir.resolve("b.sock")), Duration.ofSeconds(30));
            List<String> eal = new ArrayList<>(List.of("-l", o.testpmdLcores, "--main-lcore", Integer.toString(o.testpmdMainLcore),
                    "--no-pci"));
            if (o.testpmdHugepages) {
                eal.addAll(List.of("-m", "1024", "--single-file-segments"));
            } else {
                eal.addAll(List.of("--no-huge", "-m", "1024"));
            }
            eal.addAll(List.of("--vdev", "net_virtio_user0,path=" + dir.resolve("a.sock"),
                    "--vdev", "net_virtio_user1,path=" + dir.resolve("b.sock")));
            List<String> app = List.of("-i", "--nb-cores=1", "--forward-mode=io", "--total-num-mbufs=16384");
            try (TestPmd pmd = TestPmd.start("testpmd-" + r.mode + "-" + run, dir, eal, app)) {
                sw.awaitLinkUp(List.of("a", "b"), Duration.ofSeconds(30));
                pmd.command("start tx_first" + (o.txFirstBursts > 1 ? " " + o.txFirstBursts : ""), Duration.ofSeconds(30));
                log("%s: testpmd io forwarding; %.0f s warm-up, then %.0f s measured", r.mode, o.warmupSeconds, o.throughputSeconds);
                Thread.sleep((long) (o.warmupSeconds * 1000));
                long a0 = System.nanoTime();
                Map<Integer, TestPmd.PortStats> s0 = pmd.portStats();
                long t0 = (a0 + System.nanoTime()) / 2;
                CpuWindow cpu = new CpuWindow(sw.pid(), pmd.pid());
                SwitchProcess.Counters c0 = sw.counters();
                // one sample a second (testpmd's counters): a change of vCPU placement inside the window shows as a step
                long windowEnd = t0 + (long) (o.throughputSeconds * 1e9);
                long lastAt = t0;
                long lastFrames = sum(s0, true) + sum(s0, false);
                while (true) {
                    long left = windowEnd - System.nanoTime();
                    if (left <= 1_200_000_000L) {
                        if (left > 0) {
                            Thread.sleep(left / 1_000_000, (int) (left % 1_000_000));
                        }
                        break;
                    }
                    Thread.sleep(1000);
                    long b0 = System.nanoTime();
                    Map<Integer, TestPmd.PortStats> si = pmd.portStats();
                    long at = (b0 + System.nanoTime()) / 2;
                    long frames = sum(si, true) + sum(si, false);
                    r.perSecondMpps.add((frames - lastFrames) / 2.0 / ((at - lastAt) / 1e9) / 1e6);
                    lastAt = at;
                    lastFrames = frames;
                }
                long a1 = System.nanoTime();
                Map<Integer, TestPmd.PortStats> s1 = pmd.portStats();
                long t1 = (a1 + System.nanoTime()) / 2;
                cpu.stop();
                SwitchProcess.Counters c1 = sw.counters();
                String stop = pmd.command("stop", Duration.ofSeconds(30));
                java.util.regex.Matcher dropped = java.util.regex.Pattern.compile(
                        "Accumulated forward statistics[^\\n]*\\n\\s*RX-packets:\\s*\\d+\\s+RX-dropped:\\s*(\\d+)[^\\n]*\\n"
                        + "\\s*TX-packets:\\s*\\d+\\s+TX-dropped:\\s*(\\d+)").matcher(stop);
                if (dropped.find()) {
                    r.pmdDropped = Long.parseLong(dropped.group(1)) + Long.parseLong(dropped.group(2));
                }
                double seconds = (t1 - t0) / 1e9;
                long rx = sum(s1, true) - sum(s0, true);
                long tx = sum(s1, false) - sum(s0, false);
                r.rxMpps = rx / seconds / 1e6;
                r.txMpps = tx / seconds / 1e6;
                r.mpps = (rx + tx) / 2.0 / seconds / 1e6;
                r.perSecondMpps.add((sum(s1, true) + sum(s1, false) - lastFrames) / 2.0 / ((t1 - lastAt) / 1e9) / 1e6);
                r.loadCpu = cpu.switchPercent;
                r.loadOther = cpu.otherPercent;
                r.loadSteal = cpu.stealPercent;
                r.loadDrops = c1.drops() - c0.drops();
                r.loadKicks = c1.ports("kicks") - c0.ports("kicks");
                r.loadSleeps = c1.workers("sleeps") - c0.workers("sleeps");
                r.loadWakeups = c1.workers("wakeups") - c0.workers("wakeups");
                r.loadIdleLoops = c1.workers("idle_loops") - c0.workers("idle_loops");
                log("%s: %.3f Mpps (testpmd rx %.3f, tx %.3f), switch CPU %.0f %%, switch drops %d, testpmd drops %d,"
                                + " kicks %d, sleeps %d, idle loops %d; other load %.0f %%", r.mode, r.mpps, r.rxMpps, r.txMpps,
                        r.loadCpu, r.loadDrops, r.pmdDropped, r.loadKicks, r.loadSleeps, r.loadIdleLoops, r.loadOther);
            }
        }
    }

    private static long sum(Map<Integer, TestPmd.PortStats> stats, boolean rx) {
        return stats.values().stream().mapToLong(s -> rx ? s.rxPackets() : s.txPackets()).sum();
    }

    // ---------------------------------------------------------------- report

    private static void report(Options o, List<ModeResult> results, String started) throws IOException {
        StringBuilder out = new StringBuilder();
        out.append("\n## Notification modes: results\n\n");
        out.append("command: ").append(o.command).append('\n');
        out.append("date: ").append(started).append('\n');
        out.append("machine: ").append(Runtime.getRuntime().availableProcessors()).append(" cpus, ").append(cpuModel())
                .append(", kernel ").append(System.getProperty("os.version")).append('\n');
        out.append("jdk: ").append(System.getProperty("java.vm.vendor")).append(' ')
                .append(System.getProperty("java.runtime.version")).append('\n');
        out.append("commit: ").append(o.commit).append('\n');
        out.append(String.format(Locale.ROOT, "setup: cross-connect a<->b, 1 worker on cpu %d; idle %.0f s; ping-pong %d/s for %.0f s"
                        + " (64 B, guests spin, kick when asked%s), thread on cpu %d; testpmd -l %s --main-lcore %d, io fwd,"
                        + " tx_first %d, %s, %.0f s after %.0f s, median of %d runs%n",
                o.switchCpu, o.idleSeconds, o.rate, o.latencySeconds, o.eventIdx ? ", EVENT_IDX" : "", o.benchCpu,
                o.testpmdLcores, o.testpmdMainLcore, o.txFirstBursts, o.testpmdHugepages ? "hugepages" : "--no-huge",
                o.throughputSeconds, o.warmupSeconds, o.throughputReps));
        out.append('\n');
        out.append("| mode | idle CPU % | RTT p50 µs | RTT p99 µs | throughput Mpps, median (min-max) | near-placement runs: Mpps median (n) |\n");
        out.append("|---|---:|---:|---:|---:|---:|\n");
        for (ModeResult r : results) {
            long nearRuns = r.loadRuns.stream().filter(x -> x.near(o.c2cFarNanos)).count();
            out.append(String.format(Locale.ROOT, "| %s | %s | %s | %s | %s | %s |%n", r.mode, num(r.idleCpu, 1),
                    r.latency == null ? "-" : num(us(r.latency.getValueAtPercentile(50)), 1),
                    r.latency == null ? "-" : num(us(r.latency.getValueAtPercentile(99)), 1),
                    r.runMpps.isEmpty() ? "-" : num(r.mpps, 3) + " (" + num(r.runMpps.stream().mapToDouble(x -> x).min().orElse(Double.NaN), 2)
                            + "-" + num(r.runMpps.stream().mapToDouble(x -> x).max().orElse(Double.NaN), 2) + ")",
                    r.runMpps.isEmpty() ? "-" : num(r.nearMpps, 3) + " (" + nearRuns + ")"));
        }
        if (results.stream().anyMatch(r -> !r.loadRuns.isEmpty())) {
            out.append("\nThroughput runs in run order (alternated; core-to-core probe before / after, ns; n = near, f = far; Mpps second by second"
                    + " at >= ").append(num(o.c2cFarNanos, 0)).append(" ns):\n\n");
            List<ModeResult> all = new ArrayList<>();
            results.forEach(r -> all.addAll(r.loadRuns));
            all.sort(Comparator.comparingInt((ModeResult x) -> x.round));
            for (ModeResult x : all) {
                out.append(String.format(Locale.ROOT, "  round %d  %-9s %7.3f Mpps  probe %s / %s  %s  per second: %s%n", x.round,
                        x.mode, x.mpps, num(x.c2cBefore, 0), num(x.c2cAfter, 0),
                        Double.isNaN(x.c2cBefore) ? " " : x.near(o.c2cFarNanos) ? "n" : "f",
                        String.join(" ", x.perSecondMpps.stream().map(v -> num(v, 1)).toList())));
            }
        }
        out.append("\nDetails (per mode; counters from the switch's counters file):\n\n");
        out.append("| mode | idle: sleeps/s | idle: wakeups/s | idle: idle loops/s | RTT p99.9 µs | RTT max µs | round trips | lost"
                + " | ping-pong: kicks | ping-pong: wakeups | ping-pong CPU % | load: Mpps of each run | load: switch CPU % | load: rx / tx Mpps | load: drops switch / testpmd | load: kicks | load: sleeps"
                + " | other load % (idle / ping-pong / load) | steal % (idle / ping-pong / load) |\n");
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (ModeResult r : results) {
            double w = r.idleWindow > 0 ? r.idleWindow : Double.NaN;
            out.append(String.format(Locale.ROOT, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |%n",
                    r.mode, num(r.idleSleeps / w, 0), num(r.idleWakeups / w, 0), num(r.idleLoops / w, 0),
                    r.latency == null ? "-" : num(us(r.latency.getValueAtPercentile(99.9)), 1),
                    r.latency == null ? "-" : num(us(r.latency.getMaxValue()), 1),
                    r.latency == null ? "-" : Long.toString(r.roundTrips), r.latency == null ? "-" : Long.toString(r.lost),
                    r.latency == null ? "-" : Long.toString(r.latencyKicks),
                    r.latency == null ? "-" : Long.toString(r.latencyWakeups), num(r.latencyCpu, 1),
                    r.runMpps.isEmpty() ? "-" : String.join(", ", r.runMpps.stream().map(x -> num(x, 2)).toList()),
                    num(r.loadCpu, 0), Double.isNaN(r.mpps) ? "-" : num(r.rxMpps, 3) + " / " + num(r.txMpps, 3),
                    Double.isNaN(r.mpps) ? "-" : r.loadDrops + " / " + (r.pmdDropped < 0 ? "?" : Long.toString(r.pmdDropped)),
                    Double.isNaN(r.mpps) ? "-" : Long.toString(r.loadKicks),
                    Double.isNaN(r.mpps) ? "-" : Long.toString(r.loadSleeps),
                    num(r.idleOther, 0) + " / " + num(r.latencyOther, 0) + " / " + num(r.loadOther, 0),
                    num(r.idleSteal, 1) + " / " + num(r.latencySteal, 1) + " / " + num(r.loadSteal, 1)));
        }
        out.append("\n(CPU % is of one core. 'other load' is the machine's busy time not spent by the switch, testpmd or"
                + " this benchmark, out of 100 % per cpu: other work that makes a window noisy. 'steal' is time the hypervisor"
                + " kept the virtual cpus from running.)\n");
        for (ModeResult r : results) {
            double worst = Math.max(nanToZero(r.idleOther), Math.max(nanToZero(r.latencyOther), nanToZero(r.loadOther)));
            if (worst > 10) {
                out.append(String.format(Locale.ROOT, "WARNING: %s: other processes used up to %.0f %% of a core during a window;"
                        + " its numbers are disturbed%n", r.mode, worst));
            }
            double steal = Math.max(nanToZero(r.idleSteal), Math.max(nanToZero(r.latencySteal), nanToZero(r.loadSteal)));
            if (steal > 5) {
                out.append(String.format(Locale.ROOT, "WARNING: %s: the hypervisor stole up to %.0f %% of a cpu during a window;"
                        + " its numbers are disturbed%n", r.mode, steal));
            }
        }
        out.append('\n').append(targets(results, o.c2cFarNanos));
        for (ModeResult r : results) {
            for (String e : r.errors) {
                out.append("error: ").append(r.mode).append(": ").append(e).append('\n');
            }
        }
        System.out.print(out);
        System.out.flush();
    }

    /** The targets, each said to be met or missed. */
    static String targets(List<ModeResult> results, double farNanos) {
        Map<String, ModeResult> by = new LinkedHashMap<>();
        results.forEach(r -> by.put(r.mode, r));
        StringBuilder s = new StringBuilder("Targets:\n");
        target(s, by.get("interrupt"), r -> r.idleCpu, "interrupt idle CPU < 2 %", v -> v < 2);
        target(s, by.get("hybrid"), r -> r.idleCpu, "hybrid idle CPU < 2 %", v -> v < 2);
        target(s, by.get("monitor"), r -> r.idleCpu, "monitor idle CPU < 15 %", v -> v < 15);
        target(s, by.get("poll"), r -> r.idleCpu, "poll idle CPU ≈ 100 % of one core (90..110)", v -> v >= 90 && v <= 110);
        ModeResult poll = by.get("poll");
        for (String m : List.of("hybrid", "monitor")) {
            ModeResult r = by.get(m);
            if (r == null || poll == null || Double.isNaN(poll.mpps) || Double.isNaN(r.mpps)) {
                continue;
            }
            double ratio = r.mpps / poll.mpps;
            s.append(String.format(Locale.ROOT, "  %-7s %s: %s Mpps = %.1f %% of poll's %s (all runs)%n",
                    ratio >= 0.9 ? "MET" : "MISSED", m + " throughput (median) within 10 % of poll", num(r.mpps, 3),
                    100 * ratio, num(poll.mpps, 3)));
            if (!Double.isNaN(r.nearMpps) && !Double.isNaN(poll.nearMpps)) {
                double near = r.nearMpps / poll.nearMpps;
                s.append(String.format(Locale.ROOT, "  %-7s %s: %s Mpps = %.1f %% of poll's %s (near-placement runs only)%n",
                        near >= 0.9 ? "MET" : "MISSED", m + " throughput (median) within 10 % of poll", num(r.nearMpps, 3),
                        100 * near, num(poll.nearMpps, 3)));
            }
            // the same round, both runs near: the ratio least disturbed by the placement
            List<Double> rounds = new ArrayList<>();
            for (ModeResult x : r.loadRuns) {
                for (ModeResult y : poll.loadRuns) {
                    if (x.round == y.round && x.near(farNanos) && y.near(farNanos)) {
                        rounds.add(x.mpps / y.mpps);
                    }
                }
            }
            if (!rounds.isEmpty()) {
                s.append(String.format(Locale.ROOT, "          %s / poll in the same round, both near: median %.3f (%s-%s) over %d rounds%n", m,
                        median(rounds.stream().mapToDouble(d -> d).toArray()), num(rounds.stream().mapToDouble(d -> d).min().orElse(0), 3),
                        num(rounds.stream().mapToDouble(d -> d).max().orElse(0), 3), rounds.size()));
            }
        }
        return s.toString();
    }

    private static void target(StringBuilder s, ModeResult r, java.util.function.ToDoubleFunction<ModeResult> value,
                               String what, java.util.function.DoublePredicate ok) {
        if (r == null || Double.isNaN(value.applyAsDouble(r))) {
            return;
        }
        double v = value.applyAsDouble(r);
        s.append(String.format(Locale.ROOT, "  %-7s %s: %.2f %%%n", ok.test(v) ? "MET" : "MISSED", what, v));
    }

    private static double nanToZero(double v) {
        return Double.isNaN(v) ? 0 : v;
    }

    private static String num(double v, int decimals) {
        return Double.isNaN(v) || Double.isInfinite(v) ? "-" : String.format(Locale.ROOT, "%." + decimals + "f", v);
    }

    private static double us(long nanos) {
        return nanos / 1000.0;
    }

    private static String cpuModel() {
        try (Stream<String> lines = Files.lines(Path.of("/proc/cpuinfo"))) {
            return lines.filter(l -> l.startsWith("model name")).findFirst()
                    .map(l -> l.substring(l.indexOf(':') + 1).trim()).orElse("unknown cpu");
        } catch (IOException e) {
            return "unknown cpu";
        }
    }

    static void log(String format, Object... args) {
        System.out.printf(Locale.ROOT, "[%s] " + format + "%n",
                Stream.concat(Stream.of(java.time.LocalTime.now().withNano(0)), Stream.of(args)).toArray());
        System.out.flush();
    }

    private static void deleteTree(Path root) throws IOException {
        try (Stream<Path> walk = Files.walk(root)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }

    // ---------------------------------------------------------------- options

    static Options parse(String[] args) {
        Options o = new Options();
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            String value = null;
            int eq = arg.indexOf('=');
            if (arg.startsWith("--") && eq > 0) {
                value = arg.substring(eq + 1);
                arg = arg.substring(0, eq);
            }
            switch (arg) {
                case "-h", "--help" -> {
                    return null;
                }
                case "--keep" -> o.keep = true;
                case "--event-idx" -> o.eventIdx = true;
                case "--testpmd-hugepages" -> o.testpmdHugepages = true;
                case "--skip-latency" -> o.skipLatency = true;
                case "--skip-throughput" -> o.skipThroughput = true;
                default -> {
                    if (value == null) {
                        if (i + 1 >= args.length) {
                            throw new IllegalArgumentException(arg + " needs a value");
                        }
                        value = args[++i];
                    }
                    apply(o, arg, value);
                }
            }
        }
        return o;
    }

    private static void apply(Options o, String key, String v) {
        try {
            switch (key) {
                case "--modes" -> {
                    List<String> modes = List.of(v.split(","));
                    for (String m : modes) {
                        if (!List.of("poll", "interrupt", "hybrid", "monitor").contains(m)) {
                            throw new IllegalArgumentException("unknown mode '" + m + "'");
                        }
                    }
                    o.modes = modes;
                }
                case "--idle-seconds" -> o.idleSeconds = Double.parseDouble(v);
                case "--settle-seconds" -> o.settleSeconds = Double.parseDouble(v);
                case "--rate" -> o.rate = positive(Integer.parseInt(v), key);
                case "--latency-seconds" -> o.latencySeconds = Double.parseDouble(v);
                case "--latency-warmup-seconds" -> o.latencyWarmupSeconds = Double.parseDouble(v);
                case "--throughput-seconds" -> o.throughputSeconds = Double.parseDouble(v);
                case "--throughput-runs" -> o.throughputReps = positive(Integer.parseInt(v), key);
                case "--c2c-far-ns" -> o.c2cFarNanos = Double.parseDouble(v);
                case "--dpdk-latency-rounds" -> o.dpdkLatencyRounds = Integer.parseInt(v);
                case "--vswitch-b-jar" -> o.vswitchBJar = Path.of(v).toAbsolutePath();
                case "--vswitch-b-opts" -> o.vswitchBOpts = SwitchProcess.words(v);
                case "--warmup-seconds" -> o.warmupSeconds = Double.parseDouble(v);
                case "--tx-first-bursts" -> o.txFirstBursts = positive(Integer.parseInt(v), key);
                case "--switch-cpu" -> o.switchCpu = Integer.parseInt(v);
                case "--bench-cpu" -> o.benchCpu = Integer.parseInt(v);
                case "--testpmd-lcores" -> o.testpmdLcores = v;
                case "--testpmd-main-lcore" -> o.testpmdMainLcore = Integer.parseInt(v);
                case "--hybrid-quiet-polls" -> o.hybridQuietPolls = positive(Integer.parseInt(v), key);
                case "--repo" -> o.repo = Path.of(v);
                case "--work-dir" -> o.workDir = Path.of(v);
                case "--command" -> o.command = v;
                case "--commit" -> o.commit = v;
                default -> throw new IllegalArgumentException("unknown option " + key);
            }
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(key + ": not a number: " + v);
        }
    }

    private static int positive(int v, String key) {
        if (v < 1) {
            throw new IllegalArgumentException(key + " must be >= 1");
        }
        return v;
    }

    private NotifyModesBench() {
    }
}
