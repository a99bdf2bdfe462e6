package io.vswitch.vhost.net;

import io.vswitch.protocol.Features;
import io.vswitch.protocol.VhostUserRequest;
import io.vswitch.sys.EventFd;
import io.vswitch.testing.TestFrontend;
import io.vswitch.vhost.fixtures.PortFixture;
import io.vswitch.vhost.virtio.PacketBatch;
import io.vswitch.vhost.virtio.QueueFault;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static io.vswitch.protocol.SplitRing.DESC_F_NEXT;
import static io.vswitch.testing.Frames.frame;
import static io.vswitch.testing.Frames.segment;
import static io.vswitch.testing.TestFrontend.u64;
import static io.vswitch.testing.TestFrontend.vringState;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A device with two queue pairs driven by the Java test frontend: what it offers, rings beyond its pairs refused
 * with a clear message (never an index exception), pairs joining and leaving as the frontend enables them, a
 * queue enabled but never set up left out, and a fault on pair 1 leaving pair 0's traffic alone.
 */
@Timeout(20)
class MultiQueueDeviceTest {
    @TempDir
    Path dir;

    private PortFixture fx;
    private TestFrontend fe;
    private final PacketBatch batch = new PacketBatch(16);

    @AfterEach
    void stop() {
        if (fe != null) {
            fx.disconnectAndAssertReleased(fe);
        }
        if (fx != null) {
            fx.close();
        }
    }

    private VirtioNetDevice start(int pairs) throws Exception {
        fx = new PortFixture(dir, pairs);
        fe = fx.connectAndSetUp(new TestFrontend.Options().queuePairs(pairs));
        assertTrue(fx.device().isRunning());
        return fx.device();
    }

    @Test
    void offersMultiqueueOnlyWithMoreThanOnePair() throws Exception {
        fx = new PortFixture(dir, 1);
        try (TestFrontend one = fx.connect()) {
            assertFalse(Features.has(one.getFeatures(), Features.VIRTIO_NET_F_MQ));
            assertFalse(Features.has(one.getProtocolFeatures(), Features.PROTOCOL_F_MQ));
            assertEquals(1, one.ask(VhostUserRequest.GET_QUEUE_NUM, new byte[0]).u64(0));
        }
        fx.assertReleased();
        fx.close();
        fx = new PortFixture(dir.resolve("two"), 4);
        try (TestFrontend four = fx.connect()) {
            assertTrue(Features.has(four.getFeatures(), Features.VIRTIO_NET_F_MQ));
            assertTrue(Features.has(four.getProtocolFeatures(), Features.PROTOCOL_F_MQ));
            assertEquals(4, four.ask(VhostUserRequest.GET_QUEUE_NUM, new byte[0]).u64(0));
        }
        fx.assertReleased();
    }

    @Test
    void ringsBeyondThePairsAreRefusedAndTheConnectionLives() throws Exception {
        VirtioNetDevice device = start(2);
        long refusedBefore = fx.port().counters().refusedMessages;
        // rings 4 and above do not exist on a two-pair device: each message is refused (nacked), nothing breaks
        assertNotEquals(0, fe.setVringNum(4, 256), "SET_VRING_NUM 4");
        assertNotEquals(0, fe.setVringBase(5, 0), "SET_VRING_BASE 5");
        assertNotEquals(0, fe.setVringAddr(7, fe.descUserAddr(0), fe.usedUserAddr(0), fe.availUserAddr(0)), "SET_VRING_ADDR 7");
        assertNotEquals(0, fe.setVringEnable(4, true), "SET_VRING_ENABLE 4");
        assertNotEquals(0, fe.setVringEnable(-1, true), "SET_VRING_ENABLE 0xffffffff");
        try (EventFd kick = EventFd.create()) {
            assertNotEquals(0, fe.send(VhostUserRequest.SET_VRING_KICK, u64(6), kick.fd()), "SET_VRING_KICK 6");
            assertNotEquals(0, fe.send(VhostUserRequest.SET_VRING_CALL, u64(255), kick.fd()), "SET_VRING_CALL 255");
        }
        TestFrontend.Reply base = fe.ask(VhostUserRequest.GET_VRING_BASE, vringState(9, 0));
        assertEquals(0, base.u32(4), "GET_VRING_BASE of a ring that does not exist answers, with 0");
        assertEquals(refusedBefore + 8, fx.port().counters().refusedMessages, "each refusal counted");
        // pair 0 still runs and carries frames
        assertTrue(device.isRunning());
        assertEquals(1, device.rxMask());
        fe.transmit(frame(60, 1));
        assertEquals(1, device.txQueue().dequeueBurst(batch));
        device.txQueue().completeTx(batch);
        assertEquals(1, fe.txCompleted().size());
    }

    @Test
    void pairsJoinAndLeaveAsTheFrontendEnablesThem() throws Exception {
        VirtioNetDevice device = start(2);
        int generation = device.generation();
        assertEquals(1, device.rxMask(), "only pair 0 set up");
        assertEquals(1, device.txMask());
        fe.setUpPair(1);
        assertTrue(device.isRunning());
        assertEquals(3, device.rxMask(), "pair 1 joined");
        assertEquals(3, device.txMask());
        assertTrue(device.generation() > generation, "a restart the workers notice");
        assertEquals(2, device.enabledPairs());

        // frames both ways on pair 1
        fe.usePair(1).transmit(frame(70, 2));
        assertEquals(0, device.txQueue(0).dequeueBurst(batch), "not on pair 0");
        device.txQueue(0).completeTx(batch);
        assertEquals(1, device.txQueue(1).dequeueBurst(batch));
        assertEquals(70, batch.frameLength(0));
        device.txQueue(1).completeTx(batch);
        assertEquals(1, fe.txCompleted().size());
        fe.postRxBuffers(1, 2048);
        assertTrue(device.rxQueue(1).enqueue(segment(frame(80, 3)), 0, 80));
        device.rxQueue(1).flushRx();
        var received = fe.receive();
        assertEquals(1, received.size());
        assertArrayEquals(frame(80, 3), received.getFirst().data());

        // the frontend disables pair 1's transmit queue: it is no longer polled, pair 0 runs on
        TestFrontend.expectOk(fe.setVringEnable(3, false), "SET_VRING_ENABLE 3 off");
        assertTrue(device.isRunning());
        assertEquals(1, device.txMask());
        assertEquals(3, device.rxMask(), "its receive queue stays in use");
        TestFrontend.expectOk(fe.setVringEnable(2, false), "SET_VRING_ENABLE 2 off");
        assertEquals(1, device.rxMask());
        // and stops it: GET_VRING_BASE per ring, with the position it reached; pair 0 goes on
        assertEquals(1, fe.getVringBase(3), "pair 1's transmit ring stopped after one frame");
        assertTrue(device.isRunning());
        fe.usePair(0).transmit(frame(60, 4));
        assertEquals(1, device.txQueue().dequeueBurst(batch));
        device.txQueue().completeTx(batch);
    }

    @Test
    void aQueueEnabledButNeverSetUpIsLeftOut() throws Exception {
        VirtioNetDevice device = start(2);
        TestFrontend.expectOk(fe.setVringEnable(2, true), "SET_VRING_ENABLE 2");
        TestFrontend.expectOk(fe.setVringEnable(3, true), "SET_VRING_ENABLE 3");
        assertTrue(device.isRunning(), "pair 0 runs on");
        assertEquals(1, device.rxMask(), "an unconfigured ring is never used");
        assertEquals(1, device.txMask());
        assertEquals(0, device.rxQueue(1).size());
        fe.transmit(frame(60, 5));
        assertEquals(1, device.txQueue().dequeueBurst(batch));
        device.txQueue().completeTx(batch);
        assertEquals(1, fe.txCompleted().size());
    }

    @Test
    void aFaultOnPairOneLeavesPairZeroAlone() throws Exception {
        VirtioNetDevice device = start(2);
        fe.setUpPair(1);
        // a chain on pair 1's transmit ring whose next index is beyond the ring
        int id = fe.takeDescriptor(3);
        fe.writeDescriptor(3, id, fe.allocate(64), 64, DESC_F_NEXT, fe.queueSize(3));
        fe.publish(3, id);
        assertEquals(0, device.txQueue(1).dequeueBurst(batch));
        assertEquals(QueueFault.NEXT_OUT_OF_RANGE, device.txQueue(1).fault());
        device.reportFault();
        assertEquals(1, fe.drainErrors(3), "the frontend hears of it on ring 3's error eventfd");
        assertTrue(device.isBroken());
        // pair 0 carries frames both ways as before
        fe.transmit(frame(60, 6));
        assertEquals(1, device.txQueue(0).dequeueBurst(batch));
        device.txQueue(0).completeTx(batch);
        assertEquals(1, fe.txCompleted().size());
        fe.postRxBuffers(1, 2048);
        assertTrue(device.rxQueue(0).enqueue(segment(frame(60, 7)), 0, 60));
        device.rxQueue(0).flushRx();
        assertEquals(1, fe.receive().size());
        // the frontend sets ring 3 up again: the device (stopped meanwhile) runs again with both pairs
        fe.resetRing(3);
        assertTrue(device.isRunning());
        assertFalse(device.isBroken());
        assertEquals(3, device.txMask());
    }
}
