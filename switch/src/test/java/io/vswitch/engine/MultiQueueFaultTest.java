package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.testing.LogCapture;
import io.vswitch.testing.TestFrontend;
import io.vswitch.vhost.virtio.QueueFault;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

import static io.vswitch.engine.QemuGuestsTest.awaitCounter;
import static io.vswitch.engine.VlanTest.mac;
import static io.vswitch.testing.Await.await;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A guest breaking the ring rules on pair 1 of a multiqueue port whose pairs live on two workers: the worker
 * owning pair 1 stops that ring and only raises it; housekeeping logs it and signals ring 3's error eventfd;
 * pair 0 (the other worker's) goes on carrying frames both ways, and so do pair 1's receive ring and the other
 * port.
 */
@Timeout(60)
class MultiQueueFaultTest {
    private static final byte[] MAC_A = mac("02:00:00:00:00:0a");
    private static final byte[] MAC_B = mac("02:00:00:00:00:0b");

    @TempDir
    Path dir;

    @Test
    void aFaultOnPairOneLeavesPairZeroForwarding() throws Exception {
        String yaml = """
                switch:
                  mode: learning
                  notify: monitor
                  workers: 2
                  runtime-dir: %s
                ports:
                  - name: a
                    socket: %s
                    queues: 2
                    workers: [0, 1]
                  - name: b
                    socket: %s
                    worker: 0
                """.formatted(dir.resolve("run"), dir.resolve("a.sock"), dir.resolve("b.sock"));
        try (LogCapture log = new LogCapture();
             Switch sw = Switch.start(ConfigLoader.parse(yaml, "mq-faults.yaml"));
             TestFrontend a = TestFrontend.connect(dir.resolve("a.sock"), new TestFrontend.Options().queuePairs(2)).setUp();
             TestFrontend b = TestFrontend.connect(dir.resolve("b.sock")).setUp()) {
            a.setUpPair(1);
            await(() -> sw.port("a").device.txMask() == 3 && sw.port("a").device.rxMask() == 3, "a's two pairs in use");
            awaitCounter(sw.countersPath(), "a", "link_up", 1);
            awaitCounter(sw.countersPath(), "b", "link_up", 1);

            a.publish(3, a.queueSize(3));   // a head index out of range on pair 1's transmit ring (worker 1's)
            AtomicLong errors = new AtomicLong();
            await(() -> errors.addAndGet(a.drainErrors(3)) > 0, "ring 3's error eventfd");
            LogCapture.Line line = log.await("port a: queue a tx1 stopped");
            assertEquals("vswitch-housekeeping", line.thread(), "reported on a control thread, not the worker");
            assertTrue(line.message().contains(QueueFault.HEAD_OUT_OF_RANGE.description()), line.message());
            awaitCounter(sw.countersPath(), "a", "queue_faults", 1);
            assertEquals(0, a.drainErrors(0) + a.drainErrors(1) + a.drainErrors(2), "only ring 3 is at fault");
            assertTrue(log.matching(l -> l.thread().startsWith("vswitch-worker")).isEmpty(), "no worker logged");

            // pair 0 forwards both ways, and b -> a lands on one of a's receive rings (pair 1's too is healthy)
            b.postRxBuffers(4, 2048);
            a.usePair(0).postRxBuffers(4, 2048);
            a.usePair(1).postRxBuffers(4, 2048);
            byte[] toB = VlanTest.frame(MAC_B, MAC_A, -1, "a to b on pair 0 after pair 1's fault");
            a.usePair(0).transmit(toB);
            assertArrayEquals(toB, receiveOne(b));
            byte[] toA = VlanTest.frame(MAC_A, MAC_B, -1, "b to a");
            b.transmit(toA);
            List<TestFrontend.RxFrame> got = new ArrayList<>();
            await(() -> got.addAll(a.usePair(0).receive()) | got.addAll(a.usePair(1).receive()) || !got.isEmpty(),
                    "b's frame reaches a");
            assertEquals(1, got.size());
            assertArrayEquals(toA, got.getFirst().data());
            CountersFile.Snapshot snap = CountersFile.read(sw.countersPath());
            assertTrue(MultiQueueTestPmdTest.queue(snap, "a", 0, "rx_packets") >= 1, "pair 0 counted a's frame");
            assertEquals(0, MultiQueueTestPmdTest.queue(snap, "a", 1, "rx_packets"), "nothing taken from the bad ring");
        }
    }

    private static byte[] receiveOne(TestFrontend f) {
        List<TestFrontend.RxFrame> got = new ArrayList<>();
        await(() -> got.addAll(f.receive()) || !got.isEmpty(), "a frame arrives");
        assertEquals(1, got.size(), "exactly one frame arrived");
        return got.getFirst().data();
    }
}
