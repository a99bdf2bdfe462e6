package io.vswitch.engine;

import io.vswitch.testing.Await;
import io.vswitch.testing.SecondProcess;
import io.vswitch.config.ConfigLoader;
import io.vswitch.config.SwitchConfig;
import io.vswitch.testing.Peers;
import io.vswitch.testing.TestPmd;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The real DPDK frontend against the switch: two {@code net_virtio_user} ports of one dpdk-testpmd attached
 * to two switch ports, io forwarding with {@code tx_first}, so frames circulate testpmd -> switch -> testpmd
 * in both directions. Counters on both sides must agree: nothing is silently lost.
 */
class TestPmdForwardingTest {
    private static final long FRAMES = 200_000;

    @TempDir
    Path dir;

    @Test
    void crossConnectWithoutHugepages() throws Exception {
        run("cross-connect", false);
    }

    @Test
    void crossConnectWithHugepages() throws Exception {
        Peers.require(freeHugePages() >= 512, "512 free 2 MiB hugepages and hugetlbfs at /dev/hugepages");
        run("cross-connect", true);
    }

    @Test
    void learningBridge() throws Exception {
        run("learning", false);
    }

    @Test
    void crossConnectAcrossTwoWorkers() throws Exception {
        run("cross-connect", false, 2);
    }

    @Test
    void learningBridgeAcrossTwoWorkers() throws Exception {
        run("learning", false, 2);
    }

    // DPDK's virtio-user negotiates IN_ORDER by default (in_order=1) and split rings (packed_vq=0)

    @Test
    void crossConnectSplitRingWithoutInOrder() throws Exception {
        run("cross-connect", false, 1, ",in_order=0");
    }

    @Test
    void crossConnectPackedRing() throws Exception {
        run("cross-connect", false, 1, ",packed_vq=1,in_order=0");
    }

    @Test
    void crossConnectPackedRingInOrder() throws Exception {
        run("cross-connect", false, 1, ",packed_vq=1,in_order=1");
    }

    @Test
    void learningBridgePackedRingWithHugepages() throws Exception {
        Peers.require(freeHugePages() >= 512, "512 free 2 MiB hugepages and hugetlbfs at /dev/hugepages");
        run("learning", true, 1, ",packed_vq=1");
    }

    private void run(String mode, boolean hugepages) throws Exception {
        run(mode, hugepages, 1);
    }

    private void run(String mode, boolean hugepages, int workers) throws Exception {
        run(mode, hugepages, workers, "");
    }

    /** {@code vdevArgs} is appended to both net_virtio_user vdevs (packed_vq=1, in_order=0, ...). */
    private void run(String mode, boolean hugepages, int workers, String vdevArgs) throws Exception {
        TestPmd.require();
        String yaml = """
                switch:
                  mode: %s
                  notify: %s
                  workers: %d
                  runtime-dir: %s
                ports:
                  - name: a
                    socket: %s
                  - name: b
                    socket: %s
                %s
                """.formatted(mode,
                // three busy-polling threads (two workers and testpmd's) cannot share two cores: let idle workers back off
                workers > 1 ? "monitor" : "poll", workers, dir.resolve("run"), dir.resolve("a.sock"), dir.resolve("b.sock"),
                mode.equals("cross-connect") ? "links:\n  - [a, b]\n" : "");
        SwitchConfig config = ConfigLoader.parse(yaml, "test.yaml");
        try (Switch sw = Switch.start(config)) {
            List<String> eal = new ArrayList<>(List.of("-l", "0,1", "--no-pci",
                    // the MACs as devargs: testpmd's `mac_addr set` cannot change a virtio-user port's MAC
                    "--vdev", "net_virtio_user0,mac=02:00:00:00:00:01,path=" + dir.resolve("a.sock") + vdevArgs,
                    "--vdev", "net_virtio_user1,mac=02:00:00:00:00:02,path=" + dir.resolve("b.sock") + vdevArgs));
            eal.addAll(hugepages ? List.of("-m", "512", "--single-file-segments") : List.of("--no-huge", "-m", "1024"));
            List<String> app = new ArrayList<>(List.of("-i", "--total-num-mbufs=16384", "--nb-cores=1"));
            if (mode.equals("learning")) {
                // a learning bridge forwards by MAC: frames of port 0 must be addressed to port 1's MAC and back
                app.addAll(List.of("--forward-mode=mac", "--eth-peer=0,02:00:00:00:00:02", "--eth-peer=1,02:00:00:00:00:01"));
            }
            try (TestPmd pmd = TestPmd.start("pmd-" + mode + (hugepages ? "-huge" : "") + vdevArgs.replace(',', '-').replace('=', '_'),
                    dir, eal, app)) {
                if (!mode.equals("learning")) {
                    pmd.command("set fwd io", Duration.ofSeconds(10));
                }
                pmd.command("start tx_first", Duration.ofSeconds(30));
                // traffic until 200,000 frames went each way (a condition, not a time window: rates are for bench/)
                AwaitCounter.atLeast(sw.countersPath(), "a", "rx_packets", FRAMES);
                AwaitCounter.atLeast(sw.countersPath(), "b", "rx_packets", FRAMES);
                pmd.command("stop", Duration.ofSeconds(30));
                Map<Integer, TestPmd.PortStats> sent = pmd.portStats();
                // the worker drains what testpmd transmitted last
                AwaitCounter.atLeast(sw.countersPath(), "a", "rx_packets", sent.get(0).txPackets());
                AwaitCounter.atLeast(sw.countersPath(), "b", "rx_packets", sent.get(1).txPackets());
                // and delivers it: testpmd's RX counts settle once the switch has nothing more to deliver
                Await.settled(() -> pmd.portStats().values().stream().mapToLong(TestPmd.PortStats::rxPackets).sum(),
                        Duration.ofMillis(200), "testpmd's RX counts");
                Map<Integer, TestPmd.PortStats> stats = pmd.portStats();
                CountersFile.Snapshot snap = CountersFile.read(sw.countersPath());
                long aRx = value(snap, "a", "rx_packets");
                long bRx = value(snap, "b", "rx_packets");
                long aTx = value(snap, "a", "tx_packets");
                long bTx = value(snap, "b", "tx_packets");
                System.out.printf("%s%s%s, %d worker(s): testpmd %s; switch a rx %d tx %d, b rx %d tx %d%n", mode,
                        hugepages ? " (hugepages)" : "", vdevArgs, workers, stats, aRx, aTx, bRx, bTx);
                if (vdevArgs.contains("packed_vq=1")) {
                    assertTrue(sw.port("a").device.txQueue().isPacked() && sw.port("b").device.rxQueue().isPacked(),
                            "the switch served packed rings");
                }

                assertTrue(aRx > 100_000, "traffic flowed: " + aRx + " frames from port 0");
                assertTrue(bRx > 100_000, "traffic flowed both ways: " + bRx);
                // everything testpmd transmitted reached the switch
                assertEquals(stats.get(0).txPackets(), aRx, "testpmd port 0 TX == switch port a rx");
                assertEquals(stats.get(1).txPackets(), bRx, "testpmd port 1 TX == switch port b rx");
                // everything the switch received was delivered or counted as dropped
                long aDrops = drops(snap, "a");
                long bDrops = drops(snap, "b");
                if (mode.equals("cross-connect")) {
                    assertEquals(aRx, bTx + bDrops, "a's frames all went to b, or were counted as dropped there");
                    assertEquals(bRx, aTx + aDrops, "b's frames all went to a, or were counted as dropped there");
                } else {
                    // the learning bridge floods until it has learned; after that, unicast only
                    assertTrue(bTx + bDrops >= aRx - 64, "a's frames reached b");
                    assertTrue(value(snap, "a", "macs_learned") >= 1 && value(snap, "b", "macs_learned") >= 1,
                            "both MACs learned");
                }
                // what the switch delivered, testpmd received (minus frames still unread in its RX rings)
                assertTrue(stats.get(1).rxPackets() <= bTx && bTx - stats.get(1).rxPackets() <= 1024,
                        "testpmd port 1 RX " + stats.get(1).rxPackets() + " vs switch b tx " + bTx);
                assertTrue(stats.get(0).rxPackets() <= aTx && aTx - stats.get(0).rxPackets() <= 1024,
                        "testpmd port 0 RX " + stats.get(0).rxPackets() + " vs switch a tx " + aTx);

                // and a second process reading the counters file sees the same numbers
                SecondProcess.Result stats2 = SecondProcess.vswitch("stats", "--counters", sw.countersPath().toString());
                assertEquals(0, stats2.exitCode(), stats2.output());
                assertTrue(stats2.output().contains(Long.toString(aRx)), stats2.output());
                if (workers > 1) {
                    long crossed = snap.samples().stream().filter(s -> s.counter().equals("cross_worker_frames"))
                            .mapToLong(CountersFile.Sample::value).sum();
                    assertTrue(crossed >= aRx / 2, "frames crossed workers through the rings: " + crossed);
                }
            }
        }
    }

    static long value(CountersFile.Snapshot snap, String port, String counter) {
        return snap.samples().stream().filter(s -> s.scope().equals("port") && s.name().equals(port) && s.counter().equals(counter))
                .mapToLong(CountersFile.Sample::value).findFirst().orElseThrow(() -> new AssertionError("no counter " + port + " " + counter));
    }

    static long drops(CountersFile.Snapshot snap, String port) {
        return value(snap, port, "drop_rx_ring_full") + value(snap, port, "drop_port_down")
                + value(snap, port, "drop_no_buffers");
    }

    static long freeHugePages() throws Exception {
        for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
            if (line.startsWith("HugePages_Free:")) {
                return Long.parseLong(line.substring("HugePages_Free:".length()).trim());
            }
        }
        return 0;
    }
}
