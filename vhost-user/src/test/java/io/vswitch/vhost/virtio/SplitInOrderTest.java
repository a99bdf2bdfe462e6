package io.vswitch.vhost.virtio;

import io.vswitch.vhost.net.VirtioNetDevice;
import io.vswitch.vhost.fixtures.PortFixture;
import io.vswitch.testing.TestFrontend;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static io.vswitch.vhost.fixtures.PortFixture.copy;
import static io.vswitch.testing.Frames.frame;
import static io.vswitch.testing.Frames.segment;
import static io.vswitch.testing.TestFrontend.TX;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * VIRTIO_F_IN_ORDER on split rings: a transmit burst comes back as one used element, the last chain's head,
 * with used.idx moved by the whole burst (virtio 1.2, 2.7.9); receive buffers keep an element each.
 */
@Timeout(20)
class SplitInOrderTest {
    @TempDir
    Path dir;

    private PortFixture fx;
    private TestFrontend fe;

    @AfterEach
    void release() {
        if (fe != null) {
            assertFalse(fx.device().isBroken());
            fx.disconnectAndAssertReleased(fe);
        }
        if (fx != null) {
            fx.close();
        }
    }

    @Test
    void aTransmitBurstIsReturnedAsOneUsedElement() throws Exception {
        fx = new PortFixture(dir);
        fe = fx.connectAndSetUp(new TestFrontend.Options().inOrder(true).queueSize(16));
        VirtioNetDevice device = fx.device();
        VirtQueue tx = device.txQueue();
        PacketBatch batch = new PacketBatch(8);
        for (int round = 0; round < 12; round++) {   // several laps of the 16-entry ring
            int used = fe.usedIdx(TX);
            int last = -1;
            for (int i = 0; i < 5; i++) {
                last = fe.transmit(frame(60 + i, round * 5 + i), 1 + i % 2, i == 4);
            }
            assertEquals(5, tx.dequeueBurst(batch));
            for (int i = 0; i < 5; i++) {
                assertArrayEquals(frame(60 + i, round * 5 + i), copy(batch, i));
            }
            tx.completeTx(batch);
            assertEquals((used + 5) & 0xFFFF, fe.usedIdx(TX), "used.idx moved by the whole burst");
            assertEquals(last, fe.usedEntry(TX, used + 4).id(), "the one element written names the last chain");
            // the driver frees every chain up to that head, in order (as DPDK's in-order path does)
            assertEquals(5, fe.txCompletedInOrder().size());
        }
        VirtQueue rx = device.rxQueue();
        fe.postRxBuffers(3, 2048);
        for (int i = 0; i < 3; i++) {
            assertTrue(rx.enqueue(segment(frame(100 + i, i)), 0, 100 + i));
        }
        rx.flushRx();
        List<TestFrontend.RxFrame> got = fe.receive();
        assertEquals(3, got.size(), "an element per receive buffer, each with its length");
        for (int i = 0; i < 3; i++) {
            assertArrayEquals(frame(100 + i, i), got.get(i).data());
        }
    }
}
