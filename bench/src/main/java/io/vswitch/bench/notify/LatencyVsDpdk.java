package io.vswitch.bench.notify;

import io.vswitch.testing.TestPmd;
import org.HdrHistogram.Histogram;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The ping-pong's round trip with vswitch (poll mode, cross-connect, worker pinned to {@code --switch-cpu})
 * against DPDK's own vhost backend in the same harness: {@code dpdk-testpmd --vdev net_vhost0,iface=A
 * --vdev net_vhost1,iface=B --no-pci --no-huge}, io forwarding on one lcore pinned to the same cpu. The two
 * guests are the same {@link PingPongGuest}s (the project's TestFrontend as a vhost-user client: DPDK's vhost
 * ports are servers by default, as vswitch's are), with the same features (VERSION_1, INDIRECT_DESC,
 * PROTOCOL_FEATURES with REPLY_ACK; EVENT_IDX with {@code --event-idx}), the same rate and the same thread on
 * {@code --bench-cpu}.
 *
 * <p>Rounds alternate the backends (vswitch first in odd rounds, DPDK first in even ones), each with a fresh
 * backend process, and each measurement is bracketed by the core-to-core probe (the host's vCPU placement,
 * bench/RESULTS.md "slow mode"), so that a comparison can be restricted to one placement. An uncounted
 * round 0 (DPDK) first warms this JVM's own ping-pong code.
 *
 * <p>Warm-up matters for the switch too: at 1000 round trips/s its forwarding path reaches C2 only about 5 s
 * after the guests attach, and the compiles themselves take milliseconds of a cpu the ping-pong thread
 * needs. Measure it warm: {@code --latency-warmup-seconds 12}.
 */
final class LatencyVsDpdk {
    static final String VSWITCH = "vswitch";
    static final String DPDK = "dpdk";
    /** The second switch variant ({@code --vswitch-b-jar}, {@code --vswitch-b-opts}), when given. */
    static final String VSWITCH_B = "vswitch-b";

    /** One backend's ping-pong in one round. */
    static final class Run {
        final int round;
        final String backend;
        final NotifyModesBench.ModeResult result;
        double c2cBefore = Double.NaN;
        double c2cAfter = Double.NaN;
        String error;
        /** The switch's worker over the ping-pong (warm-up included): loops that forwarded, and their time. */
        long busyLoops = -1;
        long busyNanos = -1;

        Run(int round, String backend) {
            this.round = round;
            this.backend = backend;
            this.result = new NotifyModesBench.ModeResult(backend);
        }

        boolean near(double farNanos) {
            return c2cBefore < farNanos && c2cAfter < farNanos;
        }
    }

    private LatencyVsDpdk() {
    }

    static List<Run> run(NotifyModesBench.Options o, Path work) {
        List<Run> runs = new ArrayList<>();
        if (o.dpdkLatencyRounds > 0) {
            // Round 0, not counted: this JVM's own ping-pong code is compiled by its JIT during its first run,
            // whose compiler threads then preempt the ping-pong thread for milliseconds (a sched_switch trace
            // showed it). Without this, round 1's first backend, always vswitch, paid for it.
            Run warm = new Run(0, DPDK);
            try {
                dpdk(o, Files.createDirectories(work.resolve("latency-warm-up")), warm);
                NotifyModesBench.log("latency vs DPDK, round 0 (warms this JVM, not counted), dpdk: p99 %.1f us, max %.1f us",
                        warm.result.latency.getValueAtPercentile(99) / 1e3, warm.result.latency.getMaxValue() / 1e3);
            } catch (Exception | AssertionError e) {
                NotifyModesBench.log("latency vs DPDK, round 0 (warm-up): failed: %s", e);
            }
        }
        for (int k = 1; k <= o.dpdkLatencyRounds; k++) {
            for (String backend : order(o, k)) {
                Run run = new Run(k, backend);
                runs.add(run);
                try {
                    Path dir = Files.createDirectories(work.resolve("latency-" + backend + "-" + k));
                    run.c2cBefore = NotifyModesBench.c2c(o);
                    if (backend.equals(VSWITCH)) {
                        vswitch(o, dir, run, o.switchJar(), List.of());
                    } else if (backend.equals(VSWITCH_B)) {
                        vswitch(o, dir, run, o.vswitchBJar(), o.vswitchBOpts);
                    } else {
                        dpdk(o, dir, run);
                    }
                    run.c2cAfter = NotifyModesBench.c2c(o);
                    Histogram h = run.result.latency;
                    NotifyModesBench.log("latency vs DPDK, round %d, %s: p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us"
                                    + " (%d round trips, %d lost; probe %.0f / %.0f ns)", k, backend,
                            h.getValueAtPercentile(50) / 1e3, h.getValueAtPercentile(99) / 1e3,
                            h.getValueAtPercentile(99.9) / 1e3, h.getMaxValue() / 1e3, run.result.roundTrips,
                            run.result.lost, run.c2cBefore, run.c2cAfter);
                    if (run.busyLoops > 0) {
                        NotifyModesBench.log("latency vs DPDK, round %d, %s: worker: %d busy loops%s", k, backend, run.busyLoops,
                                run.busyNanos > 0 ? String.format(Locale.ROOT, ", %.0f ns each (-Dvswitch.loopTiming)",
                                        (double) run.busyNanos / run.busyLoops) : "");
                    }
                    if (!run.result.slowRoundTrips.isEmpty()) {
                        NotifyModesBench.log("latency vs DPDK, round %d, %s: round trips over %d us, ended at: %s", k, backend,
                                NotifyModesBench.SLOW_NANOS / 1000, String.join(", ", run.result.slowRoundTrips));
                    }
                } catch (Exception | AssertionError e) {
                    run.error = e.toString();
                    NotifyModesBench.log("latency vs DPDK, round %d, %s: failed: %s", k, backend, e);
                }
            }
        }
        return runs;
    }

    /**
     * The backends of round {@code k}, in the order they run: vswitch and DPDK alternate which goes first; with a
     * second switch variant the three rotate (k = 1: vswitch, vswitch-b, dpdk; k = 2: vswitch-b, dpdk, vswitch;
     * k = 3: dpdk, vswitch, vswitch-b; ...), so that each runs first, second and third equally often.
     */
    static List<String> order(NotifyModesBench.Options o, int k) {
        if (!o.hasVswitchB()) {
            return k % 2 == 1 ? List.of(VSWITCH, DPDK) : List.of(DPDK, VSWITCH);
        }
        List<String> all = List.of(VSWITCH, VSWITCH_B, DPDK);
        List<String> order = new ArrayList<>();
        for (int i = 0; i < all.size(); i++) {
            order.add(all.get((k - 1 + i) % all.size()));
        }
        return order;
    }

    private static void vswitch(NotifyModesBench.Options o, Path dir, Run run, Path jar, List<String> jvmOptions)
            throws Exception {
        Path config = NotifyModesBench.writeConfig(o, dir, "poll", "vswitch");
        try (SwitchProcess sw = SwitchProcess.start(jar, jvmOptions, config, dir.resolve("vswitch-run/counters"),
                dir.resolve("vswitch.log"))) {
            sw.awaitSockets(List.of(dir.resolve("a.sock"), dir.resolve("b.sock")), Duration.ofSeconds(30));
            try (PingPongGuest a = PingPongGuest.attach(dir.resolve("a.sock"), o.eventIdx, 10_000);
                 PingPongGuest b = PingPongGuest.attach(dir.resolve("b.sock"), o.eventIdx, 10_000)) {
                sw.awaitLinkUp(List.of("a", "b"), Duration.ofSeconds(30));
                SwitchProcess.Counters c0 = sw.counters();
                NotifyModesBench.pingPong(o, a, b, run.result);
                SwitchProcess.Counters c1 = sw.counters();
                run.busyLoops = c1.workers("busy_loops") - c0.workers("busy_loops");
                run.busyNanos = c1.workers("busy_ns") - c0.workers("busy_ns");   // 0 without -Dvswitch.loopTiming
            }
        }
    }

    /**
     * testpmd with two vhost-user server ports on {@code dir/a.sock} and {@code dir/b.sock}, io forwarding
     * between them on one lcore: {@code -l BENCH,SWITCH --main-lcore BENCH}, so the forwarding lcore is the
     * switch worker's cpu and the main lcore (asleep in its prompt) shares the bench thread's.
     */
    private static void dpdk(NotifyModesBench.Options o, Path dir, Run run) throws Exception {
        List<String> eal = new ArrayList<>(List.of("-l", o.benchCpu + "," + o.switchCpu, "--main-lcore",
                Integer.toString(o.benchCpu), "--no-pci", "--no-huge", "-m", "1024",
                "--vdev", "net_vhost0,iface=" + dir.resolve("a.sock"),
                "--vdev", "net_vhost1,iface=" + dir.resolve("b.sock")));
        List<String> app = List.of("-i", "--nb-cores=1", "--forward-mode=io", "--total-num-mbufs=16384");
        try (TestPmd pmd = TestPmd.start("latency-dpdk-" + run.round, dir, eal, app)) {
            long deadline = System.nanoTime() + 30_000_000_000L;
            while (!(Files.exists(dir.resolve("a.sock")) && Files.exists(dir.resolve("b.sock")))) {
                if (System.nanoTime() > deadline || !pmd.isAlive()) {
                    throw new IOException("testpmd did not create its vhost sockets; see " + pmd.log());
                }
                Thread.sleep(50);
            }
            try (PingPongGuest a = PingPongGuest.attach(dir.resolve("a.sock"), o.eventIdx, 10_000);
                 PingPongGuest b = PingPongGuest.attach(dir.resolve("b.sock"), o.eventIdx, 10_000)) {
                awaitLinksUp(pmd, Duration.ofSeconds(30));
                pmd.command("start", Duration.ofSeconds(30));
                NotifyModesBench.pingPong(o, a, b, run.result);
                pmd.command("stop", Duration.ofSeconds(30));
            }
        }
    }

    /** The vhost PMD reports link up once its frontend's rings are all ready (DPDK's new_device). */
    private static void awaitLinksUp(TestPmd pmd, Duration timeout) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        String last = "";
        while (System.nanoTime() < deadline) {
            last = pmd.command("show port info all", Duration.ofSeconds(10));
            if (last.split("Link status: up", -1).length - 1 == 2) {
                return;
            }
            Thread.sleep(100);
        }
        throw new IOException("testpmd's vhost ports not both up within " + timeout + ":\n" + last);
    }

    /** The comparison's report: one row per run, pooled percentiles per backend, per-round ratios, the target. */
    static String report(NotifyModesBench.Options o, List<Run> runs) {
        StringBuilder out = new StringBuilder();
        out.append(String.format(Locale.ROOT, "%n## Round-trip latency: vswitch (poll) vs DPDK's vhost backend%n%n"
                        + "setup: %d rounds alternated, ping-pong %d/s for %.0f s after %.0f s (64 B, guests spin%s) on cpu %d;"
                        + " vswitch poll, worker on cpu %d; dpdk-testpmd -l %d,%d --main-lcore %d --no-pci --no-huge -m 1024"
                        + " --vdev net_vhost0,iface=a.sock --vdev net_vhost1,iface=b.sock, io fwd (forwarding lcore on cpu %d)%n%n",
                o.dpdkLatencyRounds, o.rate, o.latencySeconds, o.latencyWarmupSeconds, o.eventIdx ? ", EVENT_IDX" : "",
                o.benchCpu, o.switchCpu, o.benchCpu, o.switchCpu, o.benchCpu, o.switchCpu));
        out.append("| round | backend | p50 µs | p99 µs | p99.9 µs | max µs | round trips | lost | probe before / after ns |\n");
        out.append("|---:|---|---:|---:|---:|---:|---:|---:|---|\n");
        for (Run r : runs) {
            Histogram h = r.result.latency;
            if (h == null) {
                out.append(String.format(Locale.ROOT, "| %d | %s | failed: %s |||||||%n", r.round, r.backend, r.error));
                continue;
            }
            out.append(String.format(Locale.ROOT, "| %d | %s | %.1f | %.1f | %.1f | %.1f | %d | %d | %s / %s%s |%n", r.round,
                    r.backend, us(h.getValueAtPercentile(50)), us(h.getValueAtPercentile(99)),
                    us(h.getValueAtPercentile(99.9)), us(h.getMaxValue()), r.result.roundTrips, r.result.lost,
                    num(r.c2cBefore), num(r.c2cAfter), Double.isNaN(r.c2cBefore) ? "" : r.near(o.c2cFarNanos) ? " (near)" : " (far)"));
        }
        out.append('\n');
        List<String> backends = o.hasVswitchB() ? List.of(VSWITCH, VSWITCH_B, DPDK) : List.of(VSWITCH, DPDK);
        if (o.hasVswitchB()) {
            out.append(String.format(Locale.ROOT, "vswitch: %s; vswitch-b: %s%s%n", o.switchJar(), o.vswitchBJar(),
                    o.vswitchBOpts.isEmpty() ? "" : " with " + String.join(" ", o.vswitchBOpts)));
        }
        for (boolean nearOnly : new boolean[] {false, true}) {
            String which = nearOnly ? "rounds with both runs near" : "all rounds";
            for (String backend : backends) {
                Histogram pooled = new Histogram(10_000_000_000L, 3);
                List<Double> p99s = new ArrayList<>();
                for (Run r : runs) {
                    if (r.backend.equals(backend) && r.result.latency != null && (!nearOnly || r.near(o.c2cFarNanos))) {
                        pooled.add(r.result.latency);
                        p99s.add(us(r.result.latency.getValueAtPercentile(99)));
                    }
                }
                if (p99s.isEmpty()) {
                    continue;
                }
                out.append(String.format(Locale.ROOT, "%s, %s (%d runs): pooled p50 %.1f, p99 %.1f, p99.9 %.1f µs;"
                                + " p99 of the runs median %.1f (%.1f-%.1f) µs%n", backend, nearOnly ? "near runs" : "all runs",
                        p99s.size(), us(pooled.getValueAtPercentile(50)), us(pooled.getValueAtPercentile(99)),
                        us(pooled.getValueAtPercentile(99.9)), median(p99s), min(p99s), max(p99s)));
            }
            List<String[]> pairs = new ArrayList<>();
            pairs.add(new String[] {VSWITCH, DPDK});
            if (o.hasVswitchB()) {
                pairs.add(new String[] {VSWITCH_B, DPDK});
                pairs.add(new String[] {VSWITCH_B, VSWITCH});
            }
            for (String[] pair : pairs) {
                List<Double> p99Ratios = new ArrayList<>();
                List<Double> p50Ratios = new ArrayList<>();
                List<Double> p999Ratios = new ArrayList<>();
                for (int k = 1; k <= o.dpdkLatencyRounds; k++) {
                    Run v = find(runs, k, pair[0]);
                    Run d = find(runs, k, pair[1]);
                    if (v == null || d == null || v.result.latency == null || d.result.latency == null
                            || nearOnly && !(v.near(o.c2cFarNanos) && d.near(o.c2cFarNanos))) {
                        continue;
                    }
                    p50Ratios.add((double) v.result.latency.getValueAtPercentile(50) / d.result.latency.getValueAtPercentile(50));
                    p99Ratios.add((double) v.result.latency.getValueAtPercentile(99) / d.result.latency.getValueAtPercentile(99));
                    p999Ratios.add((double) v.result.latency.getValueAtPercentile(99.9) / d.result.latency.getValueAtPercentile(99.9));
                }
                if (p99Ratios.isEmpty()) {
                    continue;
                }
                out.append(String.format(Locale.ROOT, "%s / %s in the same round, %s (%d): p50 %.3f (%.3f-%.3f),"
                                + " p99 %.3f (%.3f-%.3f), p99.9 %.3f (%.3f-%.3f)%n", pair[0], pair[1], which, p99Ratios.size(),
                        median(p50Ratios), min(p50Ratios), max(p50Ratios), median(p99Ratios), min(p99Ratios), max(p99Ratios),
                        median(p999Ratios), min(p999Ratios), max(p999Ratios)));
                if (!nearOnly && pair[1].equals(DPDK)) {
                    double m = median(p99Ratios);
                    out.append(String.format(Locale.ROOT, "  %-7s p99 round trip in poll mode <= DPDK's vhost backend (median of the"
                            + " per-round ratios%s): %.3f%n", m <= 1.0 ? "MET" : "MISSED",
                            pair[0].equals(VSWITCH) ? "" : ", " + pair[0], m));
                }
            }
        }
        return out.toString();
    }

    private static Run find(List<Run> runs, int round, String backend) {
        for (Run r : runs) {
            if (r.round == round && r.backend.equals(backend)) {
                return r;
            }
        }
        return null;
    }

    private static double us(long nanos) {
        return nanos / 1000.0;
    }

    private static String num(double v) {
        return Double.isNaN(v) ? "-" : String.format(Locale.ROOT, "%.0f", v);
    }

    private static double median(List<Double> v) {
        return NotifyModesBench.median(v.stream().mapToDouble(d -> d).toArray());
    }

    private static double min(List<Double> v) {
        return v.stream().mapToDouble(d -> d).min().orElse(Double.NaN);
    }

    private static double max(List<Double> v) {
        return v.stream().mapToDouble(d -> d).max().orElse(Double.NaN);
    }
}
