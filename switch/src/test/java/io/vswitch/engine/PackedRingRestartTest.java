package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.config.SwitchConfig;
import io.vswitch.testing.TestPmd;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;

import static io.vswitch.engine.QemuGuestsTest.awaitCounter;
import static io.vswitch.engine.TestPmdForwardingTest.value;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * dpdk-testpmd on packed rings ({@code packed_vq=1}) as the vhost-user server ({@code server=1}), the switch's
 * ports as clients, across a switch restart: DPDK's virtio-user resets its packed rings when the backend comes
 * back (it cannot learn where a packed ring's used position was) and starts them with SET_VRING_BASE
 * {@code 0x8000}, bits 16-31 zero. The switch must read that as "used = avail" (read literally it would be used
 * slot 0 a lap behind, the whole ring in flight, and DPDK would never see a used descriptor), and forwarding
 * resumes both ways.
 */
class PackedRingRestartTest {
    private static final long FRAMES = 100_000;

    @TempDir
    Path dir;

    @Test
    @Timeout(300)
    void packedRingsOfATestPmdServerForwardAgainAfterASwitchRestart() throws Exception {
        TestPmd.require();
        SwitchConfig config = ConfigLoader.parse("""
                switch:
                  mode: cross-connect
                  notify: poll
                  runtime-dir: %s
                ports:
                  - name: a
                    socket: %s
                    mode: client
                  - name: b
                    socket: %s
                    mode: client
                links:
                  - [a, b]
                """.formatted(dir.resolve("run"), dir.resolve("a.sock"), dir.resolve("b.sock")), "packed-restart.yaml");
        List<String> eal = List.of("-l", "0,1", "--no-pci", "--no-huge", "-m", "1024",
                "--vdev", "net_virtio_user0,mac=02:00:00:00:00:01,server=1,packed_vq=1,path=" + dir.resolve("a.sock"),
                "--vdev", "net_virtio_user1,mac=02:00:00:00:00:02,server=1,packed_vq=1,path=" + dir.resolve("b.sock"));
        // DPDK's virtio-user server waits at start-up until its backend connects: the switch comes first and
        // retries connecting until testpmd listens
        Switch first = Switch.start(config);
        boolean firstClosed = false;
        try (TestPmd pmd = TestPmd.start("pmd-packed-server", dir, eal, List.of("-i", "--total-num-mbufs=16384", "--nb-cores=1"))) {
            pmd.command("set fwd io", Duration.ofSeconds(10));
            long before;
            {
                awaitCounter(first.countersPath(), "a", "link_up", 1);
                awaitCounter(first.countersPath(), "b", "link_up", 1);
                assertTrue(first.port("a").device.txQueue().isPacked() && first.port("b").device.rxQueue().isPacked(),
                        "the switch served packed rings");
                pmd.command("start tx_first", Duration.ofSeconds(30));
                AwaitCounter.atLeast(first.countersPath(), "a", "rx_packets", FRAMES);
                AwaitCounter.atLeast(first.countersPath(), "b", "rx_packets", FRAMES);
                CountersFile.Snapshot snap = CountersFile.read(first.countersPath());
                assertEquals(0, value(snap, "a", "queue_faults") + value(snap, "b", "queue_faults"));
                before = pmd.portStats().values().stream().mapToLong(TestPmd.PortStats::rxPackets).sum();
                firstClosed = true;
                first.close();
            }
            // the switch is gone; testpmd keeps its sockets and waits. The frames that were circulating are lost
            // with the rings DPDK resets, so io forwarding is started again with a new first burst.
            pmd.command("stop", Duration.ofSeconds(30));
            try (Switch second = Switch.start(config)) {
                awaitCounter(second.countersPath(), "a", "link_up", 1);
                awaitCounter(second.countersPath(), "b", "link_up", 1);
                assertTrue(second.port("a").device.txQueue().isPacked() && second.port("b").device.rxQueue().isPacked());
                pmd.command("start tx_first", Duration.ofSeconds(30));
                AwaitCounter.atLeast(second.countersPath(), "a", "rx_packets", FRAMES);
                AwaitCounter.atLeast(second.countersPath(), "b", "rx_packets", FRAMES);
                pmd.command("stop", Duration.ofSeconds(30));
                Map<Integer, TestPmd.PortStats> stats = pmd.portStats();
                long after = stats.values().stream().mapToLong(TestPmd.PortStats::rxPackets).sum();
                CountersFile.Snapshot snap = CountersFile.read(second.countersPath());
                System.out.printf("packed rings across a switch restart: testpmd rx %d before, %d after; switch a rx %d tx %d,"
                                + " b rx %d tx %d, protocol errors %d/%d%n", before, after, value(snap, "a", "rx_packets"),
                        value(snap, "a", "tx_packets"), value(snap, "b", "rx_packets"), value(snap, "b", "tx_packets"),
                        value(snap, "a", "protocol_errors"), value(snap, "b", "protocol_errors"));
                assertTrue(after - before >= 2 * FRAMES - 2048, "testpmd received the second switch's frames: " + (after - before));
                assertEquals(0, value(snap, "a", "queue_faults") + value(snap, "b", "queue_faults"), "no queue fault");
                assertEquals(0, value(snap, "a", "protocol_errors") + value(snap, "b", "protocol_errors"),
                        "DPDK's SET_VRING_BASE 0x8000 accepted");
            }
        } finally {
            if (!firstClosed) {
                first.close();
            }
        }
    }
}
