package io.vswitch.vhost.virtio;

import io.vswitch.protocol.EventSuppression;
import io.vswitch.vhost.memory.DirtyLog;
import io.vswitch.vhost.net.VirtioNetDevice;
import io.vswitch.testing.PackedDriver;
import io.vswitch.vhost.fixtures.PortFixture;
import io.vswitch.testing.TestFrontend;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.List;

import static io.vswitch.vhost.fixtures.PortFixture.copy;
import static io.vswitch.testing.Frames.frame;
import static io.vswitch.testing.Frames.segment;
import static io.vswitch.testing.TestFrontend.GUEST_PHYS_BASE;
import static io.vswitch.testing.TestFrontend.RX;
import static io.vswitch.testing.TestFrontend.TX;
import static io.vswitch.testing.TestFrontend.USER_BASE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The packed-ring data path of a running port, the test being the worker and {@link PackedDriver} the guest's
 * driver: frames each way in every descriptor layout, many laps of the ring (wrap counters), IN_ORDER's single
 * used descriptor per burst, event suppression both ways, GET/SET_VRING_BASE with both positions and wrap
 * counters (also with descriptors in flight), and dirty logging of every packed-ring write.
 */
@Timeout(20)
class PackedVirtQueueTest {
    @TempDir
    Path dir;

    private PortFixture fx;
    private TestFrontend fe;
    private PackedDriver drv;

    private VirtioNetDevice start(TestFrontend.Options options) throws Exception {
        fx = new PortFixture(dir);
        fe = fx.connectAndSetUp(options.packed(true));
        drv = new PackedDriver(fe);
        assertTrue(fx.device().isRunning());
        assertTrue(fx.device().txQueue().isPacked());
        assertTrue(fx.device().rxQueue().isPacked());
        return fx.device();
    }

    @AfterEach
    void releaseEverything() {
        if (fe != null) {
            assertFalse(fx.device().isBroken(), "no test here should have broken the device: "
                    + fx.device().txQueue().fault() + " " + fx.device().rxQueue().faultDetail());
            fx.disconnectAndAssertReleased(fe);
        }
        if (fx != null) {
            fx.close();
        }
    }

    @Test
    void transmittedFramesComeOutIdenticalWhateverTheDescriptorLayout() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options());
        byte[][] frames = {frame(60, 1), frame(1514, 2), frame(200, 3), frame(999, 4), frame(76, 5), frame(9000, 6)};
        int[] ids = {
            drv.transmit(frames[0]),
            drv.transmit(frames[1], 3, false),      // chained in the ring
            drv.transmit(frames[2], 4, true),       // indirect table of 4
            drv.transmit(frames[3], 1, true),
            drv.transmit(frames[4], 40, false),     // the header alone spans six descriptors
            drv.transmit(frames[5], 7, true),
        };
        PacketBatch batch = new PacketBatch(32);
        VirtQueue tx = device.txQueue();
        assertTrue(tx.hasAvailable());
        assertEquals(frames.length, tx.dequeueBurst(batch));
        for (int i = 0; i < frames.length; i++) {
            assertArrayEquals(frames[i], copy(batch, i), "frame " + i);
        }
        assertTrue(drv.txCompleted().isEmpty(), "nothing returned before completeTx");
        tx.completeTx(batch);
        List<TestFrontend.Used> used = drv.txCompleted();
        assertEquals(frames.length, used.size());
        for (int i = 0; i < frames.length; i++) {
            assertEquals(ids[i], used.get(i).id(), "returned in ring order with the buffer's ID");
        }
        assertEquals(0, drv.outstanding(TX));
        assertFalse(tx.hasAvailable());
    }

    @Test
    void manyLapsOfTheRingBothWays() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options().queueSize(16).mergeable(true));
        PacketBatch batch = new PacketBatch(8);
        VirtQueue tx = device.txQueue();
        VirtQueue rx = device.rxQueue();
        int seed = 0;
        for (int round = 0; round < 40; round++) {
            // uneven chain lengths, so that chains straddle the end of the ring
            int n = 1 + round % 5;
            byte[][] frames = new byte[n][];
            for (int i = 0; i < n; i++) {
                frames[i] = frame(60 + 37 * i + round, seed++);
                drv.transmit(frames[i], 1 + (round + i) % 3, (round + i) % 4 == 3);
            }
            assertEquals(n, tx.dequeueBurst(batch));
            for (int i = 0; i < n; i++) {
                assertArrayEquals(frames[i], copy(batch, i));
            }
            tx.completeTx(batch);
            assertEquals(n, drv.txCompleted().size());

            // RX: a frame that needs two 256-byte buffers, and one that fits one
            drv.postRxBuffers(3, 256);
            byte[] big = frame(400, seed++);
            byte[] small = frame(100, seed++);
            assertTrue(rx.enqueue(segment(big), 0, big.length));
            assertTrue(rx.enqueue(segment(small), 0, small.length));
            rx.flushRx();
            List<TestFrontend.RxFrame> got = drv.receive();
            assertEquals(2, got.size());
            assertArrayEquals(big, got.get(0).data());
            assertEquals(2, got.get(0).numBuffers());
            assertArrayEquals(small, got.get(1).data());
        }
        // 40 rounds of up to 5 chains of up to 3 descriptors on a 16-slot ring: dozens of laps
        int base = (int) fx.device().getVringBase(TX);
        assertEquals(PackedRingBase.encode(drv.nextSlot(TX), drv.availWrap(TX), drv.nextUsedSlot(TX), drv.usedWrap(TX)), base,
                "GET_VRING_BASE: avail slot and wrap counter in bits 0-15, used slot and wrap counter in bits 16-31");
        assertEquals(drv.nextSlot(TX), drv.nextUsedSlot(TX), "everything taken was returned");
    }

    @Test
    void receiveIntoChainedBuffersWithoutMergeable() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options());
        VirtQueue rx = device.rxQueue();
        drv.postRxChain(12, 100, 2000);
        byte[] f = frame(1500, 8);
        assertTrue(rx.enqueue(segment(f), 0, f.length));
        rx.flushRx();
        List<TestFrontend.RxFrame> got = drv.receive();
        assertEquals(1, got.size());
        assertArrayEquals(f, got.get(0).data());
    }

    @Test
    void deferredCopiesWaitForDrainAndOnlyOneBufferFramesWait() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options().mergeable(true));
        byte[] small = frame(64, 1);      // one buffer: the usual frame, its copy deferred
        byte[] large = frame(1500, 2);    // three 512-byte buffers: the general walk, copied at once
        drv.transmit(small);
        drv.transmit(large, 5, false);
        drv.postRxBuffers(8, 512);
        PacketBatch batch = new PacketBatch(8);
        assertEquals(2, device.txQueue().dequeueBurst(batch));
        GuestCopies copies = new GuestCopies();
        assertTrue(device.rxQueue().enqueue(batch, 0, 0L, 0, copies));
        assertTrue(device.rxQueue().enqueue(batch, 1, 0L, 0, copies));
        assertEquals(io.vswitch.vhost.memory.GuestMemory.CHECKED ? 0 : 1, copies.pending(),
                "checked memory copies at once; unchecked defers the one-buffer frame only");
        assertTrue(drv.receive().isEmpty(), "nothing published before the flush");
        copies.drain();
        assertEquals(0, copies.pending());
        device.rxQueue().flushRx();
        device.txQueue().completeTx(batch);
        List<TestFrontend.RxFrame> received = drv.receive();
        assertEquals(2, received.size());
        assertArrayEquals(small, received.get(0).data());
        assertArrayEquals(large, received.get(1).data());
        assertEquals(3, received.get(1).numBuffers());
    }

    @Test
    void aFrameThatDoesNotFitIsRolledBackWithoutTouchingTheRing() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options().mergeable(true));
        VirtQueue rx = device.rxQueue();
        drv.postRxBuffers(2, 256);
        byte[] tooBig = frame(1000, 1);
        int slot0Flags = drv.flagsAt(RX, 0);
        assertFalse(rx.enqueue(segment(tooBig), 0, tooBig.length), "two 256-byte buffers do not hold 1012 bytes");
        assertEquals(1, rx.rxNoRoom);
        rx.flushRx();
        assertEquals(slot0Flags, drv.flagsAt(RX, 0), "the descriptors are still available, untouched");
        assertTrue(drv.receive().isEmpty());
        byte[] fits = frame(300, 2);
        assertTrue(rx.enqueue(segment(fits), 0, fits.length), "the same buffers take the next frame");
        rx.flushRx();
        List<TestFrontend.RxFrame> got = drv.receive();
        assertEquals(1, got.size());
        assertArrayEquals(fits, got.get(0).data());
    }

    @Test
    void inOrderReturnsATransmitBurstAsOneUsedDescriptor() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options().inOrder(true).queueSize(32));
        VirtQueue tx = device.txQueue();
        PacketBatch batch = new PacketBatch(16);
        for (int round = 0; round < 10; round++) {
            int seen = drv.usedDescriptorsSeen(TX);
            for (int i = 0; i < 5; i++) {
                drv.transmit(frame(60 + i, round * 5 + i), 1 + i % 2, false);
            }
            assertEquals(5, tx.dequeueBurst(batch));
            tx.completeTx(batch);
            List<TestFrontend.Used> used = drv.txCompleted();
            assertEquals(5, used.size(), "every buffer of the burst came back");
            assertEquals(seen + 1, drv.usedDescriptorsSeen(TX), "as one used descriptor");
        }
        // RX with IN_ORDER: one used descriptor per buffer (each has its own length), in order
        VirtQueue rx = device.rxQueue();
        drv.postRxBuffers(4, 2048);
        for (int i = 0; i < 4; i++) {
            byte[] f = frame(100 + i, i);
            assertTrue(rx.enqueue(segment(f), 0, f.length));
        }
        rx.flushRx();
        List<TestFrontend.RxFrame> got = drv.receive();
        assertEquals(4, got.size());
        for (int i = 0; i < 4; i++) {
            assertArrayEquals(frame(100 + i, i), got.get(i).data());
        }
    }

    @Test
    void kicksAreAskedForOrSuppressedThroughTheDeviceArea() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options());
        VirtQueue tx = device.txQueue();
        tx.setKicksWanted(false);
        assertEquals(EventSuppression.DISABLE, drv.deviceEventFlags(TX));
        fe.kickFd(TX).drain();
        drv.transmit(frame(60, 1));
        assertEquals(0, fe.kickFd(TX).drain(), "no kick while the device polls");
        tx.setKicksWanted(true);
        assertEquals(EventSuppression.ENABLE, drv.deviceEventFlags(TX));
        drv.transmit(frame(60, 2));
        assertEquals(1, fe.kickFd(TX).drain(), "a kick once the device asked for them");
        PacketBatch batch = new PacketBatch(8);
        assertEquals(2, tx.dequeueBurst(batch));
        tx.completeTx(batch);
        assertEquals(2, drv.txCompleted().size());
    }

    @Test
    void callsFollowTheDriverAreaFlags() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options());
        VirtQueue tx = device.txQueue();
        PacketBatch batch = new PacketBatch(8);
        fe.drainCalls(TX);
        // ENABLE (0, the initial value): a call per burst
        drv.transmit(frame(60, 1));
        tx.dequeueBurst(batch);
        tx.completeTx(batch);
        assertEquals(1, fe.drainCalls(TX));
        // DISABLE: none
        drv.setDriverEvent(TX, EventSuppression.DISABLE, 0, 0);
        drv.transmit(frame(60, 2));
        tx.dequeueBurst(batch);
        tx.completeTx(batch);
        assertEquals(0, fe.drainCalls(TX));
        assertEquals(2, drv.txCompleted().size());
    }

    @Test
    void withEventIdxTheDeviceCallsWhenTheNamedDescriptorIsUsed() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options().eventIdx(true).queueSize(8));
        VirtQueue tx = device.txQueue();
        PacketBatch batch = new PacketBatch(8);
        fe.drainCalls(TX);
        // slots 0..2 used in a first burst; the driver wants a call once slot 5 (wrap 1) is used
        drv.setDriverEvent(TX, EventSuppression.DESC, 5, 1);
        for (int i = 0; i < 3; i++) {
            drv.transmit(frame(60, i));
        }
        tx.dequeueBurst(batch);
        tx.completeTx(batch);
        assertEquals(0, fe.drainCalls(TX), "slot 5 not used yet");
        for (int i = 0; i < 3; i++) {
            drv.transmit(frame(60, 10 + i));
        }
        tx.dequeueBurst(batch);
        tx.completeTx(batch);   // slots 3..5
        assertEquals(1, fe.drainCalls(TX), "slot 5 was used in this burst");
        assertEquals(6, drv.txCompleted().size());
        // across the wrap: slots 6, 7, then 0 of the next lap (wrap 0)
        drv.setDriverEvent(TX, EventSuppression.DESC, 0, 0);
        for (int i = 0; i < 2; i++) {
            drv.transmit(frame(60, 20 + i));
        }
        tx.dequeueBurst(batch);
        tx.completeTx(batch);
        assertEquals(0, fe.drainCalls(TX), "slot 0 of the next lap not used yet");
        assertEquals(2, drv.txCompleted().size());
        drv.transmit(frame(60, 30));
        tx.dequeueBurst(batch);
        tx.completeTx(batch);
        assertEquals(1, fe.drainCalls(TX));
        assertEquals(1, drv.txCompleted().size());
    }

    @Test
    void vringBaseCarriesTheWrapCounterBothWays() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options().queueSize(8));
        PacketBatch batch = new PacketBatch(8);
        VirtQueue tx = device.txQueue();
        for (int i = 0; i < 11; i++) {   // one lap and three slots
            drv.transmit(frame(60, i));
            assertEquals(1, tx.dequeueBurst(batch));
            tx.completeTx(batch);
            assertEquals(1, drv.txCompleted().size());
        }
        assertEquals(0, drv.availWrap(TX));
        int base = fe.getVringBase(TX);
        assertEquals(3 | 3 << 16, base, "avail and used at slot 3 in the second lap: wrap counters 0 in bits 15 and 31");
        // resume from there (as after a migration): the next frame is read from slot 3 with wrap 0
        fe.setUpRing(TX, base);
        fe.sync();
        assertTrue(device.isRunning());
        drv.transmit(frame(60, 99));
        assertEquals(1, tx.dequeueBurst(batch));
        assertArrayEquals(frame(60, 99), copy(batch, 0));
        tx.completeTx(batch);
        assertEquals(1, drv.txCompleted().size());
    }

    @Test
    void queueSizesNeedNotBeAPowerOfTwo() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options().queueSize(10));
        PacketBatch batch = new PacketBatch(8);
        for (int i = 0; i < 25; i++) {
            drv.transmit(frame(70, i), 1 + i % 3, false);
            assertEquals(1, device.txQueue().dequeueBurst(batch));
            assertArrayEquals(frame(70, i), copy(batch, 0));
            device.txQueue().completeTx(batch);
            assertEquals(1, drv.txCompleted().size());
        }
    }

    @Test
    void everyPackedRingWriteIsInTheDirtyLog() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options().mergeable(true));
        try (Arena arena = Arena.ofConfined()) {
            long pages = (GUEST_PHYS_BASE + fe.options().memorySize) >>> DirtyLog.PAGE_SHIFT;
            MemorySegment bits = arena.allocate((pages + 63) / 64 * 8, 8);
            DirtyLog log = DirtyLog.of(bits);
            device.txQueue().setDirtyLog(log);
            device.rxQueue().setDirtyLog(log);
            long txRing = GUEST_PHYS_BASE + (fe.descUserAddr(TX) - USER_BASE);
            long rxRing = GUEST_PHYS_BASE + (fe.descUserAddr(RX) - USER_BASE);
            long rxDeviceArea = GUEST_PHYS_BASE + (fe.usedUserAddr(RX) - USER_BASE);
            assertFalse(log.isMarked(txRing));

            PacketBatch batch = new PacketBatch(8);
            drv.transmit(frame(60, 1));
            device.txQueue().dequeueBurst(batch);
            device.txQueue().completeTx(batch);
            assertTrue(log.isMarked(txRing), "the used descriptor written into the TX ring");

            drv.postRxBuffers(1, 2048);
            device.rxQueue().enqueue(segment(frame(100, 2)), 0, 100);
            device.rxQueue().flushRx();
            assertTrue(log.isMarked(rxRing), "the used descriptor written into the RX ring");
            device.rxQueue().setKicksWanted(false);
            assertTrue(log.isMarked(rxDeviceArea), "the device event suppression area");
            assertEquals(1, drv.receive().size());
            assertEquals(1, drv.txCompleted().size());
            assertEquals(0, log.outOfRange());
            device.txQueue().setDirtyLog(null);
            device.rxQueue().setDirtyLog(null);
        }
    }
}
