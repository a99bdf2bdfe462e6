package io.vswitch.engine;

import io.vswitch.testing.Await;
import io.vswitch.config.ConfigLoader;
import io.vswitch.config.NotifyMode;
import io.vswitch.sys.EventFd;
import io.vswitch.testing.TestPmd;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;

import static io.vswitch.engine.TestPmdForwardingTest.value;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Each notify mode with the real DPDK frontend: traffic flows and is all accounted for, guests kick only
 * when the mode asks them to, and the modes that may sleep do sleep when traffic stops.
 */
class NotifyModesTest {
    @TempDir
    Path dir;

    @ParameterizedTest
    @EnumSource(NotifyMode.class)
    void trafficFlowsKicksFollowTheModeAndIdleWorkersSleep(NotifyMode mode) throws Exception {
        TestPmd.require();
        String yaml = TestTopologies.crossConnect(dir, "notify: " + mode.yamlName(), "hybrid-quiet-polls: 50");
        try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "notify.yaml"));
             TestPmd pmd = TestPmd.start("notify-" + mode.yamlName(), dir, List.of("-l", "0,1", "--no-pci", "--no-huge", "-m", "1024",
                     "--vdev", "net_virtio_user0,path=" + dir.resolve("a.sock"),
                     "--vdev", "net_virtio_user1,path=" + dir.resolve("b.sock")),
                     List.of("-i", "--total-num-mbufs=16384", "--forward-mode=io"))) {
            pmd.command("start tx_first", Duration.ofSeconds(30));
            AwaitCounter.atLeast(sw.countersPath(), "a", "rx_packets", 100_000);
            AwaitCounter.atLeast(sw.countersPath(), "b", "rx_packets", 100_000);
            pmd.command("stop", Duration.ofSeconds(30));
            Map<Integer, TestPmd.PortStats> sent = pmd.portStats();
            AwaitCounter.atLeast(sw.countersPath(), "a", "rx_packets", sent.get(0).txPackets());   // drained
            AwaitCounter.atLeast(sw.countersPath(), "b", "rx_packets", sent.get(1).txPackets());
            Map<Integer, TestPmd.PortStats> stats = pmd.portStats();
            CountersFile.Snapshot snap = CountersFile.read(sw.countersPath());
            long aRx = value(snap, "a", "rx_packets");
            System.out.printf("notify %s: testpmd %s, a rx %d, kicks %d%n", mode.yamlName(), stats, aRx, value(snap, "a", "kicks"));
            assertTrue(aRx > 10_000, "traffic flowed: " + aRx);
            assertEquals(stats.get(0).txPackets(), aRx, "nothing lost between testpmd and the switch");
            assertEquals(aRx, value(snap, "b", "tx_packets") + TestPmdForwardingTest.drops(snap, "b"));

            // what the guest kicked: the switch's own count when it listens, the eventfd's when nobody reads it
            long kicks = value(snap, "a", "kicks") + value(snap, "b", "kicks");
            try (EventFd ka = sw.port("a").device.duplicateTxKick(); EventFd kb = sw.port("b").device.duplicateTxKick()) {
                long unread = ka.drain() + kb.drain();
                if (mode == NotifyMode.POLL || mode == NotifyMode.MONITOR) {
                    assertEquals(0, kicks, "nobody listens to kicks while polling");
                    assertTrue(unread < 64, "kicks suppressed while " + aRx + " frames flowed: " + unread);
                } else {
                    assertTrue(kicks > 0, "the worker slept and was woken by kicks: " + kicks);
                }
            }

            // silence: polling modes keep looping and never sleep; sleeping modes sleep after a bounded number
            // of empty passes (interrupt: one; hybrid: the 50 quiet polls), until a kick or the 200 ms cap.
            // Counted in passes per sleep, not per second: rates belong to bench/.
            CountersFile.Snapshot idleStart = CountersFile.read(sw.countersPath());
            if (mode == NotifyMode.INTERRUPT || mode == NotifyMode.HYBRID) {
                Await.until(() -> worker(CountersFile.read(sw.countersPath()), "sleeps") >= worker(idleStart, "sleeps") + 5,
                        "the idle worker sleeps (five more sleeps)");
            } else {
                Await.until(() -> worker(CountersFile.read(sw.countersPath()), "idle_loops")
                        >= worker(idleStart, "idle_loops") + 100_000, "the idle worker keeps polling");
            }
            CountersFile.Snapshot idleEnd = CountersFile.read(sw.countersPath());
            long loops = worker(idleEnd, "idle_loops") - worker(idleStart, "idle_loops");
            long sleeps = worker(idleEnd, "sleeps") - worker(idleStart, "sleeps");
            System.out.printf("notify %s: %d idle loops, %d sleeps in silence%n", mode.yamlName(), loops, sleeps);
            if (mode == NotifyMode.INTERRUPT || mode == NotifyMode.HYBRID) {
                long perSleep = mode == NotifyMode.INTERRUPT ? 2 : 50 + 2;
                assertTrue(loops <= (sleeps + 1) * perSleep, "asleep in epoll_wait, not looping: " + loops
                        + " empty passes for " + sleeps + " sleeps");
            } else if (mode == NotifyMode.POLL) {
                assertEquals(0, sleeps, "busy-polling never sleeps");
            }
        }
    }

    static long worker(CountersFile.Snapshot snap, String counter) {
        return snap.samples().stream().filter(s -> s.scope().equals("worker") && s.counter().equals(counter))
                .mapToLong(CountersFile.Sample::value).sum();
    }
}
