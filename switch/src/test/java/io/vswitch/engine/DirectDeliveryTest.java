package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.testing.TestFrontend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static io.vswitch.engine.QemuGuestsTest.awaitCounter;
import static io.vswitch.engine.TestPmdForwardingTest.value;
import static io.vswitch.testing.Await.await;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The burst loop's direct enqueue into a plain local guest (Forwarding.directQueue): frames are counted on the
 * port they reach once per destination change and once at the end of the burst, a full receive ring refuses a
 * frame on that path as on the general one (counted as drop_rx_ring_full), and a flood in the middle of a burst
 * (the general path) leaves the counts and the order of the others intact. Frames in a row to the same guest
 * (one flow's run) are enqueued without the loop's other steps, up to the first that is not plain (a runt here).
 * One burst: the driver publishes the frames with one store of avail.idx.
 */
@Timeout(60)
class DirectDeliveryTest {
    private static final byte[] MAC_A = VlanTest.mac("02:00:00:00:00:0a");
    private static final byte[] MAC_B = VlanTest.mac("02:00:00:00:00:0b");
    private static final byte[] MAC_C = VlanTest.mac("02:00:00:00:00:0c");
    private static final byte[] MAC_UNKNOWN = VlanTest.mac("02:00:00:00:00:99");

    @TempDir
    Path dir;

    @Test
    void learningBurstToSeveralGuestsIsCountedPerDestination() throws Exception {
        String yaml = TestTopologies.learning(dir, "a", "b", "c");
        try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "direct.yaml"));
             TestFrontend a = TestFrontend.connect(dir.resolve("a.sock")).setUp();
             TestFrontend b = TestFrontend.connect(dir.resolve("b.sock")).setUp();
             TestFrontend c = TestFrontend.connect(dir.resolve("c.sock")).setUp()) {
            Path counters = sw.countersPath();
            for (String port : List.of("a", "b", "c")) {
                awaitCounter(counters, port, "link_up", 1);
            }
            // b and c make themselves known (each floods one frame to the other two)
            a.postRxBuffers(2, 2048);
            b.postRxBuffers(1, 2048);
            c.postRxBuffers(1, 2048);
            b.transmit(VlanTest.frame(MAC_A, MAC_B, -1, "hello from b"));
            awaitCounter(counters, "b", "macs_learned", 1);
            c.transmit(VlanTest.frame(MAC_A, MAC_C, -1, "hello from c"));
            awaitCounter(counters, "c", "macs_learned", 1);
            awaitCounter(counters, "c", "tx_packets", 1);
            awaitCounter(counters, "b", "tx_packets", 1);
            assertEquals(1, b.receive().size());
            assertEquals(1, c.receive().size());

            // one burst from a: b has room for two frames, c for six; runs of frames to the same guest (b2 b3, c3 c4)
            b.postRxBuffers(2, 2048);
            c.postRxBuffers(6, 2048);
            byte[] b1 = VlanTest.frame(MAC_B, MAC_A, -1, "b1");
            byte[] c1 = VlanTest.frame(MAC_C, MAC_A, -1, "c1");
            byte[] b2 = VlanTest.frame(MAC_B, MAC_A, -1, "b2");
            byte[] b3 = VlanTest.frame(MAC_B, MAC_A, -1, "b3");   // b's ring is full by now
            byte[] c2 = VlanTest.frame(MAC_C, MAC_A, -1, "c2");
            byte[] flood = VlanTest.frame(MAC_UNKNOWN, MAC_A, -1, "flood");   // to b (full) and c
            byte[] c3 = VlanTest.frame(MAC_C, MAC_A, -1, "c3");
            byte[] c4 = VlanTest.frame(MAC_C, MAC_A, -1, "c4");
            byte[] runt = new byte[10];   // no Ethernet header: dropped as invalid, in the middle of c's run
            byte[] c5 = VlanTest.frame(MAC_C, MAC_A, -1, "c5");
            a.holdTransmits();
            for (byte[] f : List.of(b1, c1, b2, b3, c2, flood, c3, c4, runt, c5)) {
                a.transmit(f);
            }
            a.releaseTransmits();
            await(() -> {
                a.txCompleted();
                return a.outstanding(TestFrontend.TX) == 0;
            }, "a's ten frames returned");
            awaitCounter(counters, "a", "rx_packets", 9);
            awaitCounter(counters, "a", "drop_invalid", 1);
            awaitCounter(counters, "b", "tx_packets", 1 + 2);
            awaitCounter(counters, "c", "tx_packets", 1 + 6);
            awaitCounter(counters, "b", "drop_rx_ring_full", 2);
            CountersFile.Snapshot snap = CountersFile.read(counters);
            assertEquals(0, value(snap, "c", "drop_rx_ring_full"));
            assertEquals(9 * 60L, value(snap, "a", "rx_bytes"), "a: the nine valid frames");
            assertEquals(3 * 60L, value(snap, "b", "tx_bytes"), "b: c's first frame and two of this burst");
            assertEquals(7 * 60L, value(snap, "c", "tx_bytes"), "c: b's first frame and six of this burst");

            List<TestFrontend.RxFrame> atB = b.receive();
            assertEquals(2, atB.size());
            assertArrayEquals(b1, atB.get(0).data());
            assertArrayEquals(b2, atB.get(1).data());
            List<TestFrontend.RxFrame> atC = c.receive();
            assertEquals(6, atC.size());
            List<byte[]> expected = List.of(c1, c2, flood, c3, c4, c5);
            for (int k = 0; k < expected.size(); k++) {
                assertArrayEquals(expected.get(k), atC.get(k).data(), "c's frame " + k);
            }
        }
    }
}
