package io.vswitch.vhost.virtio;

import io.vswitch.protocol.SplitRing;
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
import static io.vswitch.testing.TestFrontend.HEADER;
import static io.vswitch.testing.TestFrontend.RX;
import static io.vswitch.testing.TestFrontend.TX;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The data path of a running port with the test itself as the worker: guest TX through dequeueBurst and
 * completeTx, guest RX through enqueue and flushRx, with the frontend checking the rings from the driver side.
 */
@Timeout(20)
class VirtQueueDataPathTest {
    @TempDir
    Path dir;

    private PortFixture fx;
    private TestFrontend fe;

    private VirtioNetDevice start(TestFrontend.Options options) throws Exception {
        fx = new PortFixture(dir);
        fe = fx.connectAndSetUp(options);
        assertTrue(fx.device().isRunning());
        return fx.device();
    }

    @AfterEach
    void releaseEverything() {
        if (fe != null) {
            assertFalse(fx.device().isBroken(), "no test here should have broken the device: "
                    + fx.device().txQueue().fault() + " " + fx.device().rxQueue().fault());
            fx.disconnectAndAssertReleased(fe);
        }
        if (fx != null) {
            fx.close();
        }
    }

    // ---------------------------------------------------------------- guest TX

    @Test
    void transmittedFramesComeOutIdenticalWhateverTheDescriptorLayout() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options());
        byte[][] frames = {frame(60, 1), frame(1514, 2), frame(200, 3), frame(999, 4), frame(76, 5), frame(9000, 6)};
        int[] heads = {
            fe.transmit(frames[0]),                 // one descriptor: header and frame together
            fe.transmit(frames[1], 3, false),        // chained
            fe.transmit(frames[2], 4, true),         // indirect table of 4
            fe.transmit(frames[3], 1, true),         // indirect table of 1
            fe.transmit(frames[4], 40, false),       // 2-byte pieces: the header itself spans six descriptors
            fe.transmit(frames[5], 7, true),         // jumbo, indirect
        };
        PacketBatch batch = new PacketBatch(32);
        VirtQueue tx = device.txQueue();
        assertEquals(frames.length, tx.dequeueBurst(batch));
        for (int i = 0; i < frames.length; i++) {
            assertEquals(frames[i].length, batch.frameLength(i), "frame " + i + " length without the header");
            assertArrayEquals(frames[i], copy(batch, i), "frame " + i + " bytes");
        }
        assertEquals(frames[1][7] & 0xFF, batch.frameByte(1, 7));
        assertEquals(0, fe.usedIdx(TX), "nothing returned before completeTx");
        assertEquals(0, fe.drainCalls(TX));

        tx.completeTx(batch);
        assertEquals(frames.length, fe.usedIdx(TX), "used.idx published for the whole burst");
        List<TestFrontend.Used> done = fe.txCompleted();
        assertEquals(frames.length, done.size());
        for (int i = 0; i < frames.length; i++) {
            assertEquals(heads[i], done.get(i).id(), "used entries in order, by head");
        }
        assertEquals(1, fe.drainCalls(TX), "one call for the burst");
        assertEquals(0, fe.outstanding(TX));
        assertEquals(0, tx.dequeueBurst(batch), "nothing more available");
    }

    /**
     * A learning bridge's batch reads each frame's addresses (bytes 0..11) as the fast path takes it; a burst with
     * a frame that came another way (a chain) says so, and readAddresses then reads them all, the same values.
     */
    @Test
    void learningBatchesCarryEachFramesAddresses() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options());
        PacketBatch batch = new PacketBatch(32);
        batch.captureAddresses(true);
        VirtQueue tx = device.txQueue();
        byte[][] plain = {frame(60, 1), frame(1514, 2), frame(12, 3)};
        for (byte[] f : plain) {
            fe.transmit(f);   // one descriptor each: the fast path
        }
        assertEquals(plain.length, tx.dequeueBurst(batch));
        assertTrue(batch.addressesCaptured(), "every frame came through the fast path");
        for (int i = 0; i < plain.length; i++) {
            assertEquals(head(plain[i]), batch.addressHead(i), "frame " + i + " bytes 0..7");
            assertEquals(tail(plain[i]), batch.addressTail(i), "frame " + i + " bytes 8..11");
        }
        tx.completeTx(batch);
        fe.txCompleted();

        byte[][] mixed = {frame(60, 4), frame(300, 5), frame(64, 6)};
        fe.transmit(mixed[0]);
        fe.transmit(mixed[1], 3, false);   // chained: the general walk, which does not read them
        fe.transmit(mixed[2]);
        assertEquals(mixed.length, tx.dequeueBurst(batch));
        assertFalse(batch.addressesCaptured(), "a chained frame in the burst");
        batch.readAddresses();
        assertTrue(batch.addressesCaptured());
        for (int i = 0; i < mixed.length; i++) {
            assertEquals(head(mixed[i]), batch.addressHead(i), "frame " + i + " bytes 0..7");
            assertEquals(tail(mixed[i]), batch.addressTail(i), "frame " + i + " bytes 8..11");
        }
        tx.completeTx(batch);
        fe.txCompleted();

        batch.captureAddresses(false);   // cross-connect reads none
        fe.transmit(frame(60, 7));
        assertEquals(1, tx.dequeueBurst(batch));
        assertFalse(batch.addressesCaptured());
        tx.completeTx(batch);
        fe.txCompleted();
    }

    private static long head(byte[] f) {
        return java.nio.ByteBuffer.wrap(f).getLong(0);
    }

    private static long tail(byte[] f) {
        return Integer.toUnsignedLong(java.nio.ByteBuffer.wrap(f).getInt(8));
    }

    @Test
    void aBurstTakesAtMostTheBatchCapacityAndTheRestFollows() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options());
        for (int i = 0; i < 5; i++) {
            fe.transmit(frame(64 + i, i));
        }
        PacketBatch batch = new PacketBatch(2);
        VirtQueue tx = device.txQueue();
        int[] sizes = new int[3];
        int seen = 0;
        for (int burst = 0; burst < 3; burst++) {
            sizes[burst] = tx.dequeueBurst(batch);
            for (int i = 0; i < sizes[burst]; i++) {
                assertArrayEquals(frame(64 + seen, seen), copy(batch, i));
                seen++;
            }
            tx.completeTx(batch);
            assertEquals(seen, fe.usedIdx(TX));
        }
        assertArrayEquals(new int[] {2, 2, 1}, sizes);
        assertEquals(5, fe.txCompleted().size());
    }

    @Test
    void txRingWrapsAroundTheIndexSpace() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options().queueSize(8));
        PacketBatch batch = new PacketBatch(8);
        VirtQueue tx = device.txQueue();
        // 50 frames: six laps of the 8-entry ring, in bursts that do not divide it evenly
        int sent = 0;
        for (int round = 0; round < 20; round++) {
            int n = 1 + round % 4;
            for (int i = 0; i < n; i++) {
                fe.transmit(frame(60, sent + i), 1 + (sent + i) % 2, false);
            }
            assertEquals(n, tx.dequeueBurst(batch));
            for (int i = 0; i < n; i++) {
                assertArrayEquals(frame(60, sent + i), copy(batch, i));
            }
            tx.completeTx(batch);
            assertEquals(n, fe.txCompleted().size());
            sent += n;
        }
        assertEquals(sent & 0xFFFF, tx.lastAvailIndex());
    }

    @Test
    void framesTooShortTooLongOrInTooManyPiecesAreDroppedAndCountedWithoutBreakingTheQueue() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options());
        VirtQueue tx = device.txQueue();
        byte[][] manyPieces = new byte[1 + PacketBatch.MAX_PIECES_PER_FRAME + 1][];
        byte[][] mostPieces = new byte[1 + PacketBatch.MAX_PIECES_PER_FRAME][];
        manyPieces[0] = new byte[HEADER];
        mostPieces[0] = new byte[HEADER];
        for (int i = 1; i < manyPieces.length; i++) {
            manyPieces[i] = new byte[] {(byte) i, (byte) (i + 1)};
        }
        for (int i = 1; i < mostPieces.length; i++) {
            mostPieces[i] = new byte[] {(byte) i, (byte) (i + 1)};
        }
        int good1 = fe.transmit(frame(60, 1));
        int headerOnly = fe.transmitParts(new byte[][] {new byte[HEADER]}, false);
        int lessThanHeader = fe.transmitParts(new byte[][] {new byte[5]}, false);
        int emptyDescriptors = fe.transmitParts(new byte[][] {new byte[0], new byte[0]}, false);
        int maxFrame = fe.transmit(frame(VirtQueue.MAX_FRAME, 2));
        int tooLong = fe.transmit(frame(VirtQueue.MAX_FRAME + 1, 3), 2, false);
        int tooMany = fe.transmitParts(manyPieces, true);
        int justEnough = fe.transmitParts(mostPieces, true);
        int good2 = fe.transmit(frame(61, 4));

        PacketBatch batch = new PacketBatch(32);
        assertEquals(4, tx.dequeueBurst(batch), "the good frames, the largest allowed and the 64-piece one");
        assertArrayEquals(frame(60, 1), copy(batch, 0));
        assertArrayEquals(frame(VirtQueue.MAX_FRAME, 2), copy(batch, 1));
        assertEquals(2 * PacketBatch.MAX_PIECES_PER_FRAME, batch.frameLength(2));
        assertArrayEquals(frame(61, 4), copy(batch, 3));
        assertEquals(5, batch.droppedCount());
        assertEquals(3, tx.framesTooShort);
        assertEquals(1, tx.framesTooLarge);
        assertEquals(1, tx.framesTooManyPieces);
        assertFalse(tx.isBroken());

        tx.completeTx(batch);
        List<Integer> returned = fe.txCompleted().stream().map(TestFrontend.Used::id).toList();
        assertEquals(List.of(good1, maxFrame, justEnough, good2, headerOnly, lessThanHeader, emptyDescriptors, tooLong, tooMany),
                returned, "forwarded frames first, then the dropped ones: every descriptor comes back");

        fe.transmit(frame(70, 9));
        assertEquals(1, tx.dequeueBurst(batch), "the queue keeps working");
        assertArrayEquals(frame(70, 9), copy(batch, 0));
        tx.completeTx(batch);
        fe.txCompleted();
    }

    // ---------------------------------------------------------------- guest RX

    @Test
    void receivedFramesArriveWithAHeaderAndUsedIdxMovesOnlyOnFlush() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options());
        VirtQueue rx = device.rxQueue();
        fe.postRxBuffers(4, 2048);
        byte[] a = frame(100, 1);
        byte[] b = frame(1514, 2);
        assertTrue(rx.enqueue(segment(a), 0, a.length));
        assertTrue(rx.enqueue(segment(b), 0, b.length));
        assertEquals(0, fe.usedIdx(RX), "used.idx does not move before flushRx");
        assertEquals(0, fe.drainCalls(RX));
        rx.flushRx();
        assertEquals(2, fe.usedIdx(RX), "one publication for the burst");
        assertEquals(HEADER + a.length, fe.usedEntry(RX, 0).length(), "used length counts the header");
        assertEquals(HEADER + b.length, fe.usedEntry(RX, 1).length());
        assertEquals(1, fe.drainCalls(RX), "one call for the burst");
        assertEquals(1, rx.callsSent);

        List<TestFrontend.RxFrame> frames = fe.receive();
        assertEquals(2, frames.size());
        assertArrayEquals(a, frames.get(0).data());
        assertArrayEquals(b, frames.get(1).data());
        for (TestFrontend.RxFrame f : frames) {
            assertEquals(1, f.numBuffers(), "num_buffers is 1 without MRG_RXBUF");
            assertArrayEquals(new byte[10], java.util.Arrays.copyOf(f.header(), 10), "no offload flags, no GSO");
        }
        rx.flushRx();
        assertEquals(0, fe.drainCalls(RX), "a flush with nothing new neither publishes nor calls");
    }

    @Test
    void transmittedFramesLoopBackIntoTheReceiveQueueFromTheBatch() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options().mergeable(true));
        byte[][] frames = {frame(64, 1), frame(1500, 2), frame(333, 3)};
        fe.transmit(frames[0], 3, false);
        fe.transmit(frames[1], 5, true);
        fe.transmit(frames[2]);
        fe.postRxBuffers(16, 512);
        PacketBatch batch = new PacketBatch(8);
        assertEquals(3, device.txQueue().dequeueBurst(batch));
        for (int i = 0; i < 3; i++) {
            assertTrue(device.rxQueue().enqueue(batch, i), "frame " + i);
        }
        device.rxQueue().flushRx();
        device.txQueue().completeTx(batch);
        assertEquals(3, fe.txCompleted().size());
        List<TestFrontend.RxFrame> received = fe.receive();
        assertEquals(3, received.size());
        int[] expectedBuffers = {1, 3, 1};   // 1512 bytes with the header in 512-byte buffers
        for (int i = 0; i < 3; i++) {
            assertArrayEquals(frames[i], received.get(i).data(), "frame " + i);
            assertEquals(expectedBuffers[i], received.get(i).numBuffers(), "frame " + i);
        }
    }

    @Test
    void deferredCopiesWaitForDrainAndOnlyOneBufferFramesWait() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options().mergeable(true));
        byte[] small = frame(64, 1);      // one buffer: the usual frame, its copy deferred
        byte[] large = frame(1500, 2);    // three 512-byte buffers: the general walk, copied at once
        fe.transmit(small);
        fe.transmit(large, 5, false);
        fe.postRxBuffers(8, 512);
        PacketBatch batch = new PacketBatch(8);
        assertEquals(2, device.txQueue().dequeueBurst(batch));
        GuestCopies copies = new GuestCopies();
        assertTrue(device.rxQueue().enqueue(batch, 0, 0L, 0, copies));
        assertTrue(device.rxQueue().enqueue(batch, 1, 0L, 0, copies));
        assertEquals(io.vswitch.vhost.memory.GuestMemory.CHECKED ? 0 : 1, copies.pending(),
                "checked memory copies at once; unchecked defers the one-buffer frame only");
        assertEquals(0, fe.usedIdx(RX), "nothing published before the flush");
        copies.drain();
        assertEquals(0, copies.pending());
        device.rxQueue().flushRx();
        device.txQueue().completeTx(batch);
        List<TestFrontend.RxFrame> received = fe.receive();
        assertEquals(2, received.size());
        assertArrayEquals(small, received.get(0).data());
        assertArrayEquals(large, received.get(1).data());
        assertEquals(3, received.get(1).numBuffers());
    }

    @Test
    void mergeableFrameSpansSeveralSmallBuffers() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options().mergeable(true));
        VirtQueue rx = device.rxQueue();
        fe.postRxBuffers(8, 256);
        byte[] big = frame(1000, 7);
        assertTrue(rx.enqueue(segment(big), 0, big.length));
        rx.flushRx();
        assertEquals(4, fe.usedIdx(RX), "1012 bytes in 256-byte buffers: four used entries");
        int[] lengths = new int[4];
        for (int i = 0; i < 4; i++) {
            lengths[i] = fe.usedEntry(RX, i).length();
        }
        assertArrayEquals(new int[] {256, 256, 256, 1012 - 768}, lengths);
        List<TestFrontend.RxFrame> frames = fe.receive();
        assertEquals(1, frames.size());
        assertEquals(4, frames.get(0).numBuffers());
        assertArrayEquals(big, frames.get(0).data());

        byte[] small = frame(50, 8);
        assertTrue(rx.enqueue(segment(small), 0, small.length));
        rx.flushRx();
        frames = fe.receive();
        assertEquals(1, frames.get(0).numBuffers());
        assertArrayEquals(small, frames.get(0).data());
    }

    @Test
    void mergeableFrameLargerThanAllPostedBuffersIsRefusedWithoutConsumingThem() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options().mergeable(true));
        VirtQueue rx = device.rxQueue();
        fe.postRxBuffers(2, 256);
        byte[] big = frame(600, 1);
        assertFalse(rx.enqueue(segment(big), 0, big.length));
        assertEquals(1, rx.rxNoRoom);
        rx.flushRx();
        assertEquals(0, fe.usedIdx(RX), "the two buffers were not used");
        fe.postRxBuffers(1, 256);
        assertTrue(rx.enqueue(segment(big), 0, big.length), "fits once a third buffer is there");
        rx.flushRx();
        List<TestFrontend.RxFrame> frames = fe.receive();
        assertEquals(3, frames.get(0).numBuffers());
        assertArrayEquals(big, frames.get(0).data());
    }

    @Test
    void withoutMergeableAFrameTooBigForTheBufferIsDroppedAndCounted() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options().mergeable(false));
        VirtQueue rx = device.rxQueue();
        fe.postRxBuffers(1, 64);
        byte[] big = frame(100, 1);
        assertFalse(rx.enqueue(segment(big), 0, big.length));
        assertEquals(1, rx.rxBufferTooSmall);
        assertEquals(0, rx.rxNoRoom);
        rx.flushRx();
        assertEquals(0, fe.usedIdx(RX), "nothing published for the dropped frame");
        assertEquals(0, fe.drainCalls(RX));
        assertFalse(rx.isBroken(), "a small buffer is not a fault");

        byte[] fits = frame(64 - HEADER, 2);
        assertTrue(rx.enqueue(segment(fits), 0, fits.length), "the buffer is still there for a frame that fits");
        rx.flushRx();
        List<TestFrontend.RxFrame> frames = fe.receive();
        assertEquals(1, frames.size());
        assertArrayEquals(fits, frames.get(0).data());
    }

    @Test
    void withoutMergeableAChainedBufferHoldsAFrameAcrossItsDescriptors() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options().mergeable(false));
        VirtQueue rx = device.rxQueue();
        fe.postRxChain(HEADER, 100, 100, 1500);   // header in its own descriptor, as legacy drivers lay it out
        byte[] f = frame(1200, 3);
        assertTrue(rx.enqueue(segment(f), 0, f.length));
        rx.flushRx();
        assertEquals(HEADER + f.length, fe.usedEntry(RX, 0).length());
        List<TestFrontend.RxFrame> frames = fe.receive();
        assertEquals(1, frames.get(0).numBuffers());
        assertArrayEquals(f, frames.get(0).data());
    }

    @Test
    void fullReceiveRingMakesEnqueueReturnFalseAndCountsNoRoom() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options());
        VirtQueue rx = device.rxQueue();
        assertFalse(rx.enqueue(segment(frame(60, 0)), 0, 60), "no buffer posted at all");
        assertEquals(1, rx.rxNoRoom);
        fe.postRxBuffers(2, 2048);
        for (int i = 0; i < 2; i++) {
            assertTrue(rx.enqueue(segment(frame(60, i)), 0, 60));
        }
        assertFalse(rx.enqueue(segment(frame(60, 2)), 0, 60));
        assertEquals(2, rx.rxNoRoom);
        rx.flushRx();
        assertEquals(2, fe.receive().size());
        assertFalse(rx.isBroken());
    }

    @Test
    void receiveRingWrapsAroundTheIndexSpace() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options().queueSize(4).mergeable(true));
        VirtQueue rx = device.rxQueue();
        int seed = 0;
        for (int round = 0; round < 30; round++) {
            fe.postRxBuffers(3, 128);
            byte[] f = frame(100 + round * 7 % 150, seed++);   // one or two buffers
            assertTrue(rx.enqueue(segment(f), 0, f.length), "round " + round);
            rx.flushRx();
            List<TestFrontend.RxFrame> frames = fe.receive();
            assertEquals(1, frames.size());
            assertArrayEquals(f, frames.get(0).data());
            // give back what was not used: take it out of the ring by receiving a filler frame
            while (fe.outstanding(RX) > 0) {
                assertTrue(rx.enqueue(segment(frame(20, 0)), 0, 20));
                rx.flushRx();
                fe.receive();
            }
        }
    }

    // ---------------------------------------------------------------- notifications

    @Test
    void noCallWhileTheGuestSetsNoInterrupt() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options());
        VirtQueue rx = device.rxQueue();
        fe.postRxBuffers(4, 2048);
        fe.setAvailFlags(RX, SplitRing.AVAIL_F_NO_INTERRUPT);
        assertTrue(rx.enqueue(segment(frame(60, 1)), 0, 60));
        rx.flushRx();
        assertEquals(1, fe.usedIdx(RX), "published");
        assertEquals(0, fe.drainCalls(RX), "but not signalled");
        assertEquals(0, rx.callsSent);

        fe.setAvailFlags(RX, 0);
        assertTrue(rx.enqueue(segment(frame(60, 2)), 0, 60));
        rx.flushRx();
        assertEquals(1, fe.drainCalls(RX));
        assertEquals(1, rx.callsSent);
        assertEquals(2, fe.receive().size());

        fe.setAvailFlags(TX, SplitRing.AVAIL_F_NO_INTERRUPT);
        fe.transmit(frame(60, 3));
        PacketBatch batch = new PacketBatch(4);
        assertEquals(1, device.txQueue().dequeueBurst(batch));
        device.txQueue().completeTx(batch);
        assertEquals(1, fe.txCompleted().size());
        assertEquals(0, fe.drainCalls(TX), "TX completion not signalled either");
    }

    @Test
    void withEventIdxTheCallComesOnlyWhenUsedEventIsPassed() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options().eventIdx(true));
        VirtQueue rx = device.rxQueue();
        fe.postRxBuffers(8, 2048);
        fe.setAvailFlags(RX, SplitRing.AVAIL_F_NO_INTERRUPT);   // ignored with EVENT_IDX
        fe.setUsedEvent(RX, 2);   // "call me when the entry with index 2 is used"
        long[] calls = new long[4];
        for (int i = 0; i < 4; i++) {
            assertTrue(rx.enqueue(segment(frame(60, i)), 0, 60));
            rx.flushRx();
            calls[i] = fe.drainCalls(RX);
        }
        assertArrayEquals(new long[] {0, 0, 1, 0}, calls, "used.idx 0->1, 1->2: no; 2->3 passes 2: yes; 3->4: no");

        fe.setUsedEvent(RX, 4);
        assertTrue(rx.enqueue(segment(frame(60, 8)), 0, 60));
        assertTrue(rx.enqueue(segment(frame(60, 9)), 0, 60));
        rx.flushRx();
        assertEquals(1, fe.drainCalls(RX), "a burst 4->6 that passes used_event calls once");
        assertEquals(6, fe.receive().size());

        // kicks: with EVENT_IDX the device asks for one through avail_event
        VirtQueue tx = device.txQueue();
        PacketBatch batch = new PacketBatch(8);
        for (int i = 0; i < 3; i++) {
            fe.transmit(frame(60, i));
        }
        assertEquals(3, tx.dequeueBurst(batch));
        tx.setKicksWanted(true);
        assertEquals(3, fe.availEvent(TX), "kick me when entry 3 is made available");
        fe.setUsedEvent(TX, 0);
        tx.completeTx(batch);
        assertEquals(1, fe.drainCalls(TX), "0->3 passes used_event 0");
        fe.txCompleted();

        // while polling the device asks for no kicks: avail_event one behind, so the driver does not kick
        tx.setKicksWanted(false);
        assertEquals(2, fe.availEvent(TX));
        fe.kickFd(TX).drain();
        fe.transmit(frame(60, 4));
        assertEquals(0, fe.kickFd(TX).drain(), "no kick while the device polls");
        assertEquals(1, tx.dequeueBurst(batch));
        tx.completeTx(batch);
        tx.setKicksWanted(true);
        fe.transmit(frame(60, 5));
        assertEquals(1, fe.kickFd(TX).drain(), "a kick once the device asks for one again");
    }

    @Test
    void withoutEventIdxKickSuppressionIsTheUsedFlag() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options());
        VirtQueue tx = device.txQueue();
        tx.setKicksWanted(false);
        assertEquals(SplitRing.USED_F_NO_NOTIFY, fe.usedFlags(TX));
        tx.setKicksWanted(true);
        assertEquals(0, fe.usedFlags(TX));
        assertFalse(tx.hasAvailable());
        fe.transmit(frame(60, 1));
        assertTrue(tx.hasAvailable());
        PacketBatch batch = new PacketBatch(4);
        assertEquals(1, tx.dequeueBurst(batch));
        assertFalse(tx.hasAvailable());
        tx.completeTx(batch);
        fe.txCompleted();
    }
}
