package io.vswitch.vhost.virtio;

import io.vswitch.vhost.net.VirtioNetDevice;
import io.vswitch.testing.PackedDriver;
import io.vswitch.vhost.fixtures.PortFixture;
import io.vswitch.testing.TestFrontend;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

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

/** {@link MemoryGoneTest} for packed rings: MEMORY_GONE is the fault of the queue whose memory went, only. */
@Timeout(20)
class PackedMemoryGoneTest {
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
    private PackedDriver srcDrv;
    private PackedDriver dstDrv;
    private final PacketBatch batch = new PacketBatch(8);

    @BeforeEach
    void start() throws Exception {
        source = new PortFixture(Files.createDirectories(dir.resolve("source")));
        destination = new PortFixture(Files.createDirectories(dir.resolve("destination")));
        src = source.connectAndSetUp(new TestFrontend.Options().packed(true));
        dst = destination.connectAndSetUp(new TestFrontend.Options().packed(true));
        srcDrv = new PackedDriver(src);
        dstDrv = new PackedDriver(dst);
        assertTrue(source.device().isRunning() && destination.device().isRunning());
    }

    @AfterEach
    void stop() {
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
        srcDrv.transmit(frame(600, 1));
        assertEquals(1, srcTx.dequeueBurst(batch));
        dstDrv.postRxBuffers(4, 2048);
        int flags = dstDrv.flagsAt(RX, 0);

        unmapAll(source.device());
        RuntimeException e = assertThrows(RuntimeException.class, () -> dstRx.enqueue(batch, 0));
        assertFalse(dstRx.isBroken(), dstRx.faultDetail());
        dstRx.flushRx();
        assertEquals(flags, dstDrv.flagsAt(RX, 0), "nothing of the half-copied frame was published");
        srcTx.failMemoryGone(e);
        assertEquals(QueueFault.MEMORY_GONE, srcTx.fault());

        byte[] next = frame(300, 2);
        assertTrue(dstRx.enqueue(segment(next), 0, next.length), "the destination goes on receiving");
        dstRx.flushRx();
        List<TestFrontend.RxFrame> got = dstDrv.receive();
        assertEquals(1, got.size());
        assertArrayEquals(next, got.getFirst().data());
    }

    @Test
    void theDestinationsOwnMemoryGoneFaultsTheDestination() {
        VirtQueue dstRx = destination.device().rxQueue();
        dstDrv.postRxBuffers(2, 2048);
        unmapAll(destination.device());
        byte[] f = frame(100, 4);
        assertFalse(dstRx.enqueue(segment(f), 0, f.length));
        assertEquals(QueueFault.MEMORY_GONE, dstRx.fault(), dstRx.faultDetail());
        assertFalse(dstRx.enqueue(segment(f), 0, f.length), "stays stopped");
        dstRx.flushRx();
        assertEquals(1, dstRx.faults);
        destination.device().reportFault();
        assertEquals(1, dst.drainErrors(RX));
        assertFalse(source.device().isBroken());
    }

    @Test
    void aTransmitQueueWhoseMemoryIsGoneFaultsInsteadOfThrowing() {
        VirtQueue srcTx = source.device().txQueue();
        srcDrv.transmit(frame(60, 5));
        unmapAll(source.device());
        assertFalse(srcTx.hasAvailable());
        assertEquals(QueueFault.MEMORY_GONE, srcTx.fault(), srcTx.faultDetail());
        assertEquals(0, srcTx.dequeueBurst(batch));
        srcTx.completeTx(batch);
        srcTx.setKicksWanted(true);
        assertEquals(1, srcTx.faults);
        source.device().reportFault();
        assertEquals(1, src.drainErrors(TX));
    }

    private static void unmapAll(VirtioNetDevice device) {
        for (int i = 0; i < device.memory().regionCount(); i++) {
            device.memory().region(i).close();
        }
    }
}
