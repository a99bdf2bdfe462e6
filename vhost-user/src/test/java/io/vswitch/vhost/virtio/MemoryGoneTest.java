package io.vswitch.vhost.virtio;

import io.vswitch.vhost.net.VirtioNetDevice;
import io.vswitch.vhost.fixtures.PortFixture;
import io.vswitch.testing.TestFrontend;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static io.vswitch.testing.Frames.frame;
import static io.vswitch.testing.Frames.segment;
import static io.vswitch.testing.TestFrontend.RX;
import static io.vswitch.testing.TestFrontend.TX;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Guest memory unmapped under running queues (what a grace period exists to prevent, forced here): the
 * queue whose memory went away faults with MEMORY_GONE, and only that one. A frame copied from a source
 * guest whose memory is gone faults neither the healthy destination queue nor its ring; the failure goes back
 * to the caller, which owns the source.
 */
@Timeout(20)
class MemoryGoneTest {
    /**
     * Unmapping guest memory under running queues is what the grace period prevents; forced here, it is survivable
     * only with checked guest-memory access (the build's checked-guest-memory execution runs this class that way).
     */
    @org.junit.jupiter.api.BeforeAll
    static void onlyWithCheckedGuestMemory() {
        org.junit.jupiter.api.Assumptions.assumeTrue(io.vswitch.vhost.memory.GuestMemory.CHECKED,
                "needs -Dvswitch.checkedGuestMemory=true: unchecked access to unmapped memory is a SIGSEGV");
    }

    @TempDir
    Path dir;

    private PortFixture source;
    private PortFixture destination;
    private TestFrontend src;
    private TestFrontend dst;
    private final PacketBatch batch = new PacketBatch(8);

    @BeforeEach
    void start() throws Exception {
        source = new PortFixture(Files.createDirectories(dir.resolve("source")));
        destination = new PortFixture(Files.createDirectories(dir.resolve("destination")));
        src = source.connectAndSetUp();
        dst = destination.connectAndSetUp();
        assertTrue(source.device().isRunning() && destination.device().isRunning());
    }

    @AfterEach
    void stop() {
        // each fixture's descriptor baseline includes the fixtures made before it: release in reverse order
        String srcMemory = src.memoryName();
        src.close();
        destination.disconnectAndAssertReleased(dst);
        destination.close();
        source.assertReleased(srcMemory);
        source.close();
    }

    @Test
    void aFrameWhoseSourceMemoryIsGoneFaultsNeitherTheDestinationQueueNorItsRing() {
        VirtQueue srcTx = source.device().txQueue();
        VirtQueue dstRx = destination.device().rxQueue();
        src.transmit(frame(600, 1));
        assertEquals(1, srcTx.dequeueBurst(batch));
        dst.postRxBuffers(4, 2048);
        int usedBefore = dst.usedIdx(RX);

        unmapAll(source.device());
        assertFalse(batch.isReadable(), "the burst points into memory that is gone");
        RuntimeException e = assertThrows(RuntimeException.class, () -> dstRx.enqueue(batch, 0),
                "the failure to read the source goes back to the caller");
        assertTrue(e instanceof IllegalStateException, e.toString());   // the closed mapping's scope
        assertFalse(dstRx.isBroken(), "the destination queue is not to blame: " + dstRx.fault() + " " + dstRx.faultDetail());
        assertEquals(0, dstRx.faults);
        assertFalse(destination.device().isBroken());
        dstRx.flushRx();
        assertEquals(usedBefore, dst.usedIdx(RX), "nothing of the half-copied frame was published");

        // the caller attributes it to the source
        srcTx.failMemoryGone(e);
        assertEquals(QueueFault.MEMORY_GONE, srcTx.fault());
        assertTrue(srcTx.faultDetail().contains("reading a frame"), srcTx.faultDetail());
        source.device().reportFault();
        assertEquals(1, src.drainErrors(TX), "the source's frontend is told");
        assertEquals(0, dst.drainErrors(RX) + dst.drainErrors(TX), "the destination's is not");

        // and the destination goes on receiving, starting with the buffer the failed frame had taken
        byte[] next = frame(300, 2);
        assertTrue(dstRx.enqueue(segment(next), 0, next.length));
        dstRx.flushRx();
        List<TestFrontend.RxFrame> got = dst.receive();
        assertEquals(1, got.size());
        assertArrayEquals(next, got.getFirst().data());
        assertEquals(usedBefore + 1, dst.usedIdx(RX));
    }

    @Test
    void aSourceFrameThatCannotBeReadIsTheCallersNotTheDestinations() {
        VirtQueue dstRx = destination.device().rxQueue();
        dst.postRxBuffers(2, 2048);
        // a piece that claims more bytes than its segment holds: reading it throws
        MemorySegment small = MemorySegment.ofArray(new byte[64]);
        assertThrows(IndexOutOfBoundsException.class, () -> dstRx.enqueue(
                new MemorySegment[] {small}, new long[] {0}, new int[] {200}, 0, 1, 200));
        assertFalse(dstRx.isBroken(), dstRx.faultDetail());
        byte[] f = frame(100, 3);
        assertTrue(dstRx.enqueue(segment(f), 0, f.length));
        dstRx.flushRx();
        assertArrayEquals(f, dst.receive().getFirst().data());
    }

    @Test
    void theDestinationsOwnMemoryGoneFaultsTheDestination() {
        VirtQueue dstRx = destination.device().rxQueue();
        dst.postRxBuffers(2, 2048);
        // the rings and the buffers go (one region): whichever access finds it first faults the queue
        unmapAll(destination.device());
        byte[] f = frame(100, 4);
        assertFalse(dstRx.enqueue(segment(f), 0, f.length));
        assertEquals(QueueFault.MEMORY_GONE, dstRx.fault(), dstRx.faultDetail());
        assertEquals(1, dstRx.faults);
        assertFalse(dstRx.enqueue(segment(f), 0, f.length), "stays stopped");
        dstRx.flushRx();
        destination.device().reportFault();
        assertTrue(destination.device().isBroken());
        assertEquals(1, dst.drainErrors(RX), "the frontend hears of it on the queue's error eventfd");
        assertFalse(source.device().isBroken(), "other ports are not affected");
    }

    @Test
    void aTransmitQueueWhoseMemoryIsGoneFaultsInsteadOfThrowing() {
        VirtQueue srcTx = source.device().txQueue();
        src.transmit(frame(60, 5));
        unmapAll(source.device());
        assertFalse(srcTx.hasAvailable());
        assertEquals(QueueFault.MEMORY_GONE, srcTx.fault(), srcTx.faultDetail());
        assertEquals(0, srcTx.dequeueBurst(batch));
        srcTx.completeTx(batch);
        srcTx.setKicksWanted(true);
        assertEquals(1, srcTx.faults, "one fault, however many accesses found it");
        source.device().reportFault();
        assertEquals(1, src.drainErrors(TX));
    }

    /** Unmaps the device's guest memory while its queues still point into it: a bug the grace period prevents. */
    private static void unmapAll(VirtioNetDevice device) {
        for (int i = 0; i < device.memory().regionCount(); i++) {
            device.memory().region(i).close();
        }
    }
}
