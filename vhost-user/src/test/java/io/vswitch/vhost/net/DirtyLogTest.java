package io.vswitch.vhost.net;

import io.vswitch.sys.Libc;
import io.vswitch.vhost.memory.DirtyLog;
import io.vswitch.sys.MappedMemory;
import io.vswitch.sys.SharedMemory;
import io.vswitch.protocol.Features;
import io.vswitch.protocol.VhostUserRequest;
import io.vswitch.vhost.fixtures.PortFixture;
import io.vswitch.testing.TestFrontend;
import io.vswitch.vhost.virtio.GuestCopies;
import io.vswitch.vhost.virtio.PacketBatch;
import io.vswitch.vhost.virtio.VirtQueue;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.TreeSet;

import static io.vswitch.testing.Frames.frame;
import static io.vswitch.testing.Frames.segment;
import static io.vswitch.testing.TestFrontend.GUEST_PHYS_BASE;
import static io.vswitch.testing.TestFrontend.RX;
import static io.vswitch.testing.TestFrontend.TX;
import static io.vswitch.testing.TestFrontend.USER_BASE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Dirty-page logging for live migration, driven as QEMU does it: SET_LOG_BASE with a memfd, SET_FEATURES
 * with VHOST_F_LOG_ALL, SET_VRING_ADDR with the log flag; the test plays the worker. The log must hold
 * exactly the pages the switch wrote, and nothing while logging is off.
 */
@Timeout(20)
class DirtyLogTest {
    private static final int PAGE = 4096;
    private static final int LOG_BYTES = 4096;   // 32768 pages: far more than the 2 MiB test guest

    @TempDir
    Path dir;

    private PortFixture fx;
    private TestFrontend fe;
    private int logFd = -1;
    private MappedMemory log;

    @AfterEach
    void release() {
        if (log != null) {
            log.close();
        }
        if (logFd >= 0) {
            Libc.closeQuietly(logFd);
        }
        if (fe != null) {
            fx.disconnectAndAssertReleased(fe);
        }
        if (fx != null) {
            fx.close();
        }
    }

    private VirtioNetDevice start() throws Exception {
        fx = new PortFixture(dir);
        fe = fx.connectAndSetUp(new TestFrontend.Options().mergeable(true));
        logFd = SharedMemory.memfd("vswitch-test-log", LOG_BYTES, false);
        log = SharedMemory.map(logFd, LOG_BYTES, 0);
        return fx.device();
    }

    private static byte[] logBase(long size, long offset) {
        return ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(size).putLong(offset).array();
    }

    private long setLogBase() throws Exception {
        TestFrontend.Reply reply = fe.ask(VhostUserRequest.SET_LOG_BASE, logBase(LOG_BYTES, 0), logFd);
        return reply.u64(0);
    }

    private static long gpaOfUser(long user) {
        return GUEST_PHYS_BASE + (user - USER_BASE);
    }

    /** SET_VRING_ADDR with VHOST_VRING_F_LOG and the used ring's guest-physical address. */
    private void addressWithLog(int q) throws Exception {
        byte[] payload = ByteBuffer.allocate(40).order(ByteOrder.LITTLE_ENDIAN).putInt(q).putInt(1)
                .putLong(fe.descUserAddr(q)).putLong(fe.usedUserAddr(q)).putLong(fe.availUserAddr(q))
                .putLong(gpaOfUser(fe.usedUserAddr(q))).array();
        TestFrontend.expectOk(fe.send(VhostUserRequest.SET_VRING_ADDR, payload), "SET_VRING_ADDR with log");
    }

    private TreeSet<Long> markedPages() {
        TreeSet<Long> pages = new TreeSet<>();
        MemorySegment bits = log.segment();
        for (long word = 0; word < LOG_BYTES / 8; word++) {
            long w = bits.get(ValueLayout.JAVA_LONG, word * 8);
            for (int b = 0; b < 64; b++) {
                if ((w & (1L << b)) != 0) {
                    pages.add(word * 64 + b);
                }
            }
        }
        return pages;
    }

    private static void addPages(TreeSet<Long> pages, long gpa, long length) {
        for (long p = gpa / PAGE; p <= (gpa + length - 1) / PAGE; p++) {
            pages.add(p);
        }
    }

    private long descAddr(int q, int id) {
        return ByteBuffer.wrap(fe.read(gpaOfUser(fe.descUserAddr(q)) + 16L * id, 8)).order(ByteOrder.LITTLE_ENDIAN).getLong();
    }

    @Test
    void whileLoggingEveryPageWrittenIsMarkedAndNothingElse() throws Exception {
        VirtioNetDevice device = start();
        assertEquals(0, setLogBase(), "SET_LOG_BASE is answered with 0");
        assertNotNull(device.dirtyLog());
        TestFrontend.expectOk(fe.setFeatures(fe.options().features() | Features.bit(Features.VHOST_F_LOG_ALL)), "LOG_ALL on");
        addressWithLog(RX);
        addressWithLog(TX);
        assertTrue(device.isRunning(), "the rings run again after SET_VRING_ADDR");

        // guest RX: two frames into posted buffers (the second spans two buffers: mergeable)
        fe.postRxBuffers(3, 1024);
        VirtQueue rx = device.rxQueue();
        byte[] small = frame(100, 1);
        byte[] large = frame(1500, 2);
        assertTrue(rx.enqueue(segment(small), 0, small.length));
        assertTrue(rx.enqueue(segment(large), 0, large.length));
        rx.flushRx();

        TreeSet<Long> expected = new TreeSet<>();
        long usedGpa = gpaOfUser(fe.usedUserAddr(RX));
        addPages(expected, usedGpa + 2, 2);                       // used.idx
        for (int slot = 0; slot < 3; slot++) {
            TestFrontend.Used u = fe.usedEntry(RX, slot);
            addPages(expected, descAddr(RX, u.id()), u.length());   // the bytes written into each buffer
            addPages(expected, usedGpa + 4 + 8L * slot, 8);        // its used element
        }
        assertEquals(expected, markedPages(), "exactly the pages written by the receive path");
        assertEquals(2, fe.receive().size());

        // guest TX: the used ring of the transmit queue is logged too
        log.segment().fill((byte) 0);
        fe.transmit(frame(64, 3));
        PacketBatch batch = new PacketBatch(8);
        VirtQueue tx = device.txQueue();
        assertEquals(1, tx.dequeueBurst(batch));
        tx.completeTx(batch);
        TreeSet<Long> txExpected = new TreeSet<>();
        long txUsed = gpaOfUser(fe.usedUserAddr(TX));
        addPages(txExpected, txUsed + 2, 2);
        addPages(txExpected, txUsed + 4, 8);
        assertEquals(txExpected, markedPages(), "the transmit used ring's element and index");
        assertEquals(0, device.rxQueue().dirtyLog().outOfRange());

        // a frame the worker would copy later (one buffer, from a burst) is copied at once while logging: its page
        // is never marked before its bytes land
        fe.postRxBuffers(1, 1024);
        byte[] deferrable = frame(64, 4);
        fe.transmit(deferrable);
        PacketBatch burst = new PacketBatch(8);
        assertEquals(1, tx.dequeueBurst(burst));
        GuestCopies copies = new GuestCopies();
        assertTrue(rx.enqueue(burst, 0, 0L, 0, copies));
        assertEquals(0, copies.pending(), "no deferred copy while the dirty log is on");
        rx.flushRx();
        tx.completeTx(burst);
        org.junit.jupiter.api.Assertions.assertArrayEquals(deferrable, fe.receive().getFirst().data());

        // LOG_ALL off: nothing is marked any more
        log.segment().fill((byte) 0);
        TestFrontend.expectOk(fe.setFeatures(fe.options().features()), "LOG_ALL off");
        assertNull(rx.dirtyLog());
        fe.postRxBuffers(1, 1024);
        assertTrue(rx.enqueue(segment(small), 0, small.length));
        rx.flushRx();
        assertEquals(new TreeSet<Long>(), markedPages(), "no page marked while logging is off");
    }

    @Test
    void logsThatCannotBeMappedAreRefusedAndALogIsReleasedWithTheConnection() throws Exception {
        VirtioNetDevice device = start();
        // larger than the file: refused, nothing mapped
        TestFrontend.Reply reply = fe.ask(VhostUserRequest.SET_LOG_BASE, logBase(1L << 30, 0), logFd);
        assertNotEquals(0, reply.u64(0), "a log larger than its file is refused");
        assertNull(device.dirtyLog());
        assertEquals(0, setLogBase());
        DirtyLog first = device.dirtyLog();
        assertEquals(0, setLogBase(), "a second log replaces the first");
        assertNotEquals(first, device.dirtyLog());
        assertEquals(2, PortFixture.mappings("vswitch-test-log"),
                "the replaced log is unmapped: the test's own mapping and the switch's current one remain");
        Libc.closeQuietly(logFd);   // the fd baseline was taken before the test opened it
        logFd = -1;
        fx.disconnectAndAssertReleased(fe);
        fe = null;
        // the device forgets its memory table just before it unmaps the log: wait for the log too
        PortFixture.await(() -> PortFixture.mappings("vswitch-test-log") == 1, "the switch unmapped the log on disconnect");
        assertEquals(1, PortFixture.mappings("vswitch-test-log"), "the switch unmapped the log on disconnect");
    }
}
