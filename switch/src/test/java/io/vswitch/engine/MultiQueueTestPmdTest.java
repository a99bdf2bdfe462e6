package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.metrics.MetricsEndpoint;
import io.vswitch.protocol.Features;
import io.vswitch.testing.Await;
import io.vswitch.testing.Promtool;
import io.vswitch.testing.TestPmd;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Multiqueue with DPDK's virtio-user: two {@code net_virtio_user} ports with {@code queues=2} of one testpmd
 * ({@code --rxq=2 --txq=2}, mac forwarding, many flows from {@code --txonly-multi-flow}) on two switch ports
 * with {@code queues: 2}. Both pairs of both ports carry traffic in both directions, which the switch's
 * per-queue counters and testpmd's own per-queue counters show; nothing is lost uncounted.
 */
class MultiQueueTestPmdTest {
    private static final Duration CMD = Duration.ofSeconds(30);
    private static final long FRAMES_PER_QUEUE = 20_000;

    @TempDir
    Path dir;

    /** Port a's pairs on two workers (one shard each), b's both on worker 1: spread and not, and cross-worker. */
    @Test
    @Timeout(300)
    void twoPairsAcrossTwoWorkers() throws Exception {
        run(2, "workers: [0, 1]", "worker: 1", "monitor");
    }

    /**
     * Both ports on one worker sleeping on kicks: every pair's kick eventfd wakes it. With {@code cq=1} virtio-user
     * serves the control queue itself: the switch never sees that queue (nor CTRL_VQ in SET_FEATURES), only the
     * SET_VRING_ENABLE of the pairs the driver's VIRTIO_NET_CTRL_MQ command turned on.
     */
    @Test
    @Timeout(300)
    void twoPairsOneWorkerInterruptWithControlQueue() throws Exception {
        run(1, "worker: 0", "worker: 0", "interrupt", ",cq=1");
    }

    private void run(int workers, String aWorkers, String bWorkers, String notify) throws Exception {
        run(workers, aWorkers, bWorkers, notify, "");
    }

    private void run(int workers, String aWorkers, String bWorkers, String notify, String vdevArgs) throws Exception {
        TestPmd.require();
        String yaml = """
                switch:
                  mode: learning
                  notify: %s
                  workers: %d
                  runtime-dir: %s
                ports:
                  - name: a
                    socket: %s
                    queues: 2
                    %s
                  - name: b
                    socket: %s
                    queues: 2
                    %s
                """.formatted(notify, workers, dir.resolve("run"), dir.resolve("a.sock"), aWorkers, dir.resolve("b.sock"),
                bWorkers);
        try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "mq.yaml"))) {
            LiveTopology live = new LiveTopology(sw, Optional.empty());
            List<String> eal = List.of("-l", "0,1", "--no-pci", "--no-huge", "-m", "1024",
                    "--vdev", "net_virtio_user0,mac=02:00:00:00:00:01,queues=2,path=" + dir.resolve("a.sock") + vdevArgs,
                    "--vdev", "net_virtio_user1,mac=02:00:00:00:00:02,queues=2,path=" + dir.resolve("b.sock") + vdevArgs);
            List<String> app = new ArrayList<>(List.of("-i", "--total-num-mbufs=16384", "--nb-cores=1",
                    "--rxq=2", "--txq=2", "--txonly-multi-flow",
                    "--forward-mode=mac", "--eth-peer=0,02:00:00:00:00:02", "--eth-peer=1,02:00:00:00:00:01"));
            try (TestPmd pmd = TestPmd.start("pmd-mq-" + workers + "-" + notify, dir, eal, app)) {
                pmd.command("start tx_first 4", CMD);
                // every pair of both ports carries traffic each way (conditions, not time windows)
                for (String port : List.of("a", "b")) {
                    for (int pair = 0; pair < 2; pair++) {
                        for (String counter : List.of("rx_packets", "tx_packets")) {
                            awaitQueue(sw.countersPath(), pmd, port, pair, counter, FRAMES_PER_QUEUE);
                        }
                    }
                }
                String shown = live.show();
                pmd.command("stop", CMD);
                Map<Integer, TestPmd.PortStats> sent = pmd.portStats();
                AwaitCounter.atLeast(sw.countersPath(), "a", "rx_packets", sent.get(0).txPackets());
                AwaitCounter.atLeast(sw.countersPath(), "b", "rx_packets", sent.get(1).txPackets());
                Await.settled(() -> pmd.portStats().values().stream().mapToLong(TestPmd.PortStats::rxPackets).sum(),
                        Duration.ofMillis(200), "testpmd's RX counts");
                // let the workers publish their last pass
                Await.settled(() -> total(sw.countersPath()), Duration.ofMillis(200), "switch counters");
                CountersFile.Snapshot snap = CountersFile.read(sw.countersPath());
                Map<Integer, TestPmd.PortStats> stats = pmd.portStats();
                System.out.println(shown);
                System.out.println(state(sw.countersPath(), pmd));
                for (String port : List.of("a", "b")) {
                    long rx = 0;
                    long tx = 0;
                    for (int pair = 0; pair < 2; pair++) {
                        long qrx = queue(snap, port, pair, "rx_packets");
                        long qtx = queue(snap, port, pair, "tx_packets");
                        System.out.printf("port %s pair %d: rx %d tx %d%n", port, pair, qrx, qtx);
                        rx += qrx;
                        tx += qtx;
                    }
                    // the pairs' counters add up to the port's
                    assertEquals(TestPmdForwardingTest.value(snap, port, "rx_packets"), rx, port + ": rx of the pairs");
                    assertEquals(TestPmdForwardingTest.value(snap, port, "tx_packets"), tx, port + ": tx of the pairs");
                }
                // everything testpmd transmitted reached the switch, and was delivered or counted as dropped
                long aRx = TestPmdForwardingTest.value(snap, "a", "rx_packets");
                long bRx = TestPmdForwardingTest.value(snap, "b", "rx_packets");
                assertEquals(stats.get(0).txPackets(), aRx, "testpmd port 0 TX == switch a rx");
                assertEquals(stats.get(1).txPackets(), bRx, "testpmd port 1 TX == switch b rx");
                long bTx = TestPmdForwardingTest.value(snap, "b", "tx_packets");
                long aTx = TestPmdForwardingTest.value(snap, "a", "tx_packets");
                assertTrue(bTx + TestPmdForwardingTest.drops(snap, "b") >= aRx - 64, "a's frames reached b or were counted");
                assertTrue(aTx + TestPmdForwardingTest.drops(snap, "a") >= bRx - 64, "b's frames reached a or were counted");
                // testpmd's own per-queue counters: both of its RX queues of both ports received
                for (int port = 0; port < 2; port++) {
                    String xstats = pmd.command("show port xstats " + port, CMD);
                    for (int q = 0; q < 2; q++) {
                        long n = xstat(xstats, "rx_q" + q + "_good_packets");
                        assertTrue(n > 0, "testpmd port " + port + " rx queue " + q + " received: " + xstats);
                    }
                }
                assertTrue(shown.contains("2 pairs, 2 enabled"), shown);
                // Prometheus: the pairs' counters with a queue label, the same values, and promtool accepts them
                try (MetricsEndpoint metrics = MetricsEndpoint.start(java.net.InetAddress.getLoopbackAddress(), 0,
                        sw.countersPath(), () -> true)) {
                    HttpResponse<String> scrape = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                            URI.create(metrics.url() + "/metrics")).build(), HttpResponse.BodyHandlers.ofString());
                    String sample = "vswitch_queue_rx_packets_total{port=\"a\",queue=\"1\"} ";
                    long expected = queue(CountersFile.read(sw.countersPath()), "a", 1, "rx_packets");
                    assertTrue(scrape.body().contains(sample + expected) || scrape.body().contains(sample + expected + ".0"),
                            sample + expected + " in:\n" + scrape.body());
                    if (Promtool.available()) {
                        Promtool.Result lint = Promtool.checkMetrics(scrape.body());
                        assertEquals(0, lint.exitCode(), lint.output());
                    }
                }
                // the frontend's set-up was accepted whole: nothing refused, no protocol error
                assertEquals(0, TestPmdForwardingTest.value(snap, "a", "protocol_errors"), "a: protocol errors");
                assertEquals(0, TestPmdForwardingTest.value(snap, "b", "protocol_errors"), "b: protocol errors");
                // MQ negotiated. virtio-user strips CTRL_VQ (and STATUS) from SET_FEATURES, since it serves the
                // control queue itself (cq=1) and never hands it to the backend
                assertTrue(Features.has(sw.port("a").device.features(), Features.VIRTIO_NET_F_MQ), "MQ negotiated");
            }
        }
    }

    private static void awaitQueue(Path counters, TestPmd pmd, String port, int pair, String counter, long min)
            throws Exception {
        Await.until(() -> queue(CountersFile.read(counters), port, pair, counter) >= min, Duration.ofSeconds(60),
                () -> "port " + port + " pair " + pair + " " + counter + " >= " + min + "; " + state(counters, pmd));
    }

    /** Every non-zero counter and testpmd's port statistics: what a failure to carry traffic is explained by. */
    private static String state(Path counters, TestPmd pmd) {
        StringBuilder out = new StringBuilder("switch counters:");
        try {
            for (CountersFile.Sample s : CountersFile.read(counters).samples()) {
                if (s.value() != 0) {
                    out.append(' ').append(s.scope()).append('/').append(s.name()).append('/').append(s.counter())
                            .append('=').append(s.value());
                }
            }
            out.append("\ntestpmd: ").append(pmd.command("show port stats all", CMD));
        } catch (Exception e) {
            out.append(" (state unreadable: ").append(e).append(')');
        }
        return out.toString();
    }

    static long queue(CountersFile.Snapshot snap, String port, int pair, String counter) {
        return snap.samples().stream()
                .filter(s -> s.scope().equals("queue") && s.name().equals(port + ":" + pair) && s.counter().equals(counter))
                .mapToLong(CountersFile.Sample::value).findFirst()
                .orElseThrow(() -> new AssertionError("no counter queue " + port + ":" + pair + " " + counter));
    }

    private static long total(Path counters) {
        CountersFile.Snapshot snap;
        try {
            snap = CountersFile.read(counters);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        return snap.samples().stream().filter(s -> s.scope().equals("queue"))
                .mapToLong(CountersFile.Sample::value).sum();
    }

    private static long xstat(String text, String name) {
        Matcher m = Pattern.compile(Pattern.quote(name) + ":\\s*(\\d+)").matcher(text);
        return m.find() ? Long.parseLong(m.group(1)) : -1;
    }
}
