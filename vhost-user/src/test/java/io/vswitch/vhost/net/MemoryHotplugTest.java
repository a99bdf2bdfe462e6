package io.vswitch.vhost.net;

import io.vswitch.sys.Libc;
import io.vswitch.vhost.memory.GuestMemory;
import io.vswitch.vhost.memory.MemoryRegion;
import io.vswitch.protocol.Features;
import io.vswitch.protocol.VhostUserRequest;
import io.vswitch.vhost.fixtures.HeldWorker;
import io.vswitch.vhost.fixtures.PortFixture;
import io.vswitch.testing.TestFrontend;
import io.vswitch.testing.TestFrontend.Region;
import io.vswitch.vhost.virtio.PacketBatch;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static io.vswitch.testing.TestFrontend.GUEST_PHYS_BASE;
import static io.vswitch.testing.TestFrontend.HEADER;
import static io.vswitch.testing.TestFrontend.TX;
import static io.vswitch.testing.TestFrontend.USER_BASE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Memory hotplug through PROTOCOL_F_CONFIGURE_MEM_SLOTS: up to 509 regions, added one by one with
 * ADD_MEM_REG, and ADD_MEM_REG / REM_MEM_REG while the data path runs: no link bounce, and a removed region is
 * unmapped only once the worker has left the window in which it may still translate into it.
 */
@Timeout(value = 60, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class MemoryHotplugTest {
    private static final long PAGE = 4096;

    @TempDir
    Path dir;

    @Test
    void configureMemSlotsIsOfferedWith509Slots() throws Exception {
        try (PortFixture fx = new PortFixture(dir)) {
            TestFrontend fe = fx.connectAndSetUp();
            assertTrue(Features.has(fe.getProtocolFeatures(), Features.PROTOCOL_F_CONFIGURE_MEM_SLOTS));
            assertEquals(509, fe.ask(VhostUserRequest.GET_MAX_MEM_SLOTS, new byte[0]).u64(0));
            fx.disconnectAndAssertReleased(fe);
        }
    }

    @Test
    void aRegionComesAndGoesWhileTheWorkerIsInsideWithoutStoppingTheDataPath() throws Exception {
        try (PortFixture fx = new PortFixture(dir); HeldWorker worker = new HeldWorker()) {
            VirtioNetDevice device = fx.device();
            device.setQuiescence(worker.epoch());
            TestFrontend fe = fx.connectAndSetUp();
            Region low = half(fe, 0);
            Region high = half(fe, 1);
            setMemTable(fe, low, high);   // the rings lie in the low half
            assertTrue(device.isRunning());
            int generation = device.generation();
            MemoryRegion highRegion = device.memory().region(1);
            assertEquals(high.guestPhysAddr(), highRegion.guestPhysAddr());

            // REM_MEM_REG: the smaller memory is in use at once, the region stays mapped until the worker is out
            worker.enter();
            CompletableFuture<Long> ack = CompletableFuture.supplyAsync(() -> send(fe, VhostUserRequest.REM_MEM_REG, memReg(high)));
            worker.awaitWaiters(1);
            assertEquals(1, device.memory().regionCount(), "the smaller memory is installed at once");
            assertTrue(device.isRunning(), "removing a region the rings do not use does not stop the data path");
            assertEquals(generation, device.generation(), "no restart either");
            assertTrue(highRegion.isMapped(), "unmapped while the worker may still translate into it");
            assertFalse(ack.isDone(), "no ack before the grace period: the frontend may unmap it on the ack");
            worker.leave();
            assertEquals(0, ack.get(5, TimeUnit.SECONDS), "REM_MEM_REG acked");
            assertFalse(highRegion.isMapped(), "unmapped after the grace period");
            assertEquals(-1, device.memory().findGuest(high.guestPhysAddr(), 1));

            // ADD_MEM_REG while the worker is inside: nothing to release, so the ack does not wait for it
            worker.enter();
            int fd = TestFrontend.dup(fe.memfd());
            try {
                assertEquals(0, fe.send(VhostUserRequest.ADD_MEM_REG, memReg(high), fd), "ADD_MEM_REG acked");
            } finally {
                Libc.close(fd);
            }
            assertEquals(2, device.memory().regionCount());
            assertTrue(device.isRunning());
            assertEquals(generation, device.generation());
            worker.leave();

            // frames in either region cross
            assertTransmits(fe, device, low.guestPhysAddr() + low.size() - 2 * PAGE, "the low region");
            assertTransmits(fe, device, high.guestPhysAddr() + PAGE, "the added region");
            fx.disconnectAndAssertReleased(fe);
        }
    }

    @Test
    void aRemovedRegionIsNeverTranslatedFromTheQueuesCache() throws Exception {
        try (PortFixture fx = new PortFixture(dir); HeldWorker worker = new HeldWorker()) {
            VirtioNetDevice device = fx.device();
            device.setQuiescence(worker.epoch());
            TestFrontend fe = fx.connectAndSetUp();
            Region low = half(fe, 0);
            Region high = half(fe, 1);
            setMemTable(fe, low, high);
            // the transmit queue's fast path last found the high region (its RegionCache holds it)
            assertTransmits(fe, device, high.guestPhysAddr() + PAGE, "the high region");
            MemoryRegion highRegion = device.memory().region(1);
            assertEquals(0, send(fe, VhostUserRequest.REM_MEM_REG, memReg(high)), "REM_MEM_REG acked");
            assertFalse(highRegion.isMapped());

            // a frame in the removed region: refused as outside guest memory, never read through the cache
            // (an unchecked read of the unmapped region would crash the JVM, not fail this test quietly)
            byte[] all = new byte[HEADER + 60];
            int id = fe.takeDescriptor(TX);
            fe.writeDescriptor(TX, id, high.guestPhysAddr() + 2 * PAGE, all.length, 0, 0);
            fe.publish(TX, id);
            PacketBatch batch = new PacketBatch(4);
            assertEquals(0, device.txQueue().dequeueBurst(batch));
            assertEquals(io.vswitch.vhost.virtio.QueueFault.ADDRESS_OUT_OF_MEMORY, device.txQueue().fault(),
                    device.txQueue().faultDetail());
            fx.disconnectAndAssertReleased(fe);
        }
    }

    @Test
    void removingTheRegionThatHoldsTheRingsStopsTheDevice() throws Exception {
        try (PortFixture fx = new PortFixture(dir); HeldWorker worker = new HeldWorker()) {
            VirtioNetDevice device = fx.device();
            device.setQuiescence(worker.epoch());
            TestFrontend fe = fx.connectAndSetUp();
            Region low = half(fe, 0);
            setMemTable(fe, low, half(fe, 1));
            MemoryRegion lowRegion = device.memory().region(0);

            worker.enter();
            CompletableFuture<Long> ack = CompletableFuture.supplyAsync(() -> send(fe, VhostUserRequest.REM_MEM_REG, memReg(low)));
            worker.awaitWaiters(1);
            assertFalse(device.isRunning(), "the rings' region goes: the data path is stopped first");
            assertTrue(lowRegion.isMapped());
            worker.leave();
            assertEquals(0, ack.get(5, TimeUnit.SECONDS));
            assertFalse(lowRegion.isMapped());
            assertFalse(device.isRunning(), "the rings are outside memory now: stopped until set up again");
            assertTrue(device.isBroken());
            fx.disconnectAndAssertReleased(fe);
        }
    }

    @Test
    void fiveHundredNineRegionsOneByOneAndNotOneMore() throws Exception {
        try (PortFixture fx = new PortFixture(dir)) {
            VirtioNetDevice device = fx.device();
            TestFrontend fe = fx.connectAndSetUp(new TestFrontend.Options().memorySize(4L << 20));
            Region low = half(fe, 0);
            setMemTable(fe, low);
            long highStart = fe.options().memorySize / 2;
            // one region per page of the high half, in a scrambled order
            int pages = GuestMemory.MAX_REGIONS - 1;
            for (int k = 0; k < pages; k++) {
                int page = (k * 167) % pages;   // 167 is prime to 508: a permutation
                assertEquals(0, addPage(fe, highStart + page * PAGE), "ADD_MEM_REG #" + (k + 2));
            }
            assertEquals(509, device.memory().regionCount());
            assertTrue(device.isRunning());
            assertNotEquals(0, addPage(fe, highStart + pages * PAGE), "the 510th region is refused");
            assertEquals(509, device.memory().regionCount());
            for (int page : new int[] {0, 1, 250, 507}) {
                assertTransmits(fe, device, GUEST_PHYS_BASE + highStart + page * PAGE + 64, "page region " + page);
            }
            String name = fe.memoryName();
            assertTrue(PortFixture.mappings(name) >= 509, "one mapping per region");
            fx.disconnectAndAssertReleased(fe);   // every mapping released
        }
    }

    // ---------------------------------------------------------------- helpers

    /** Half {@code which} (0 low, 1 high) of the frontend's memory as a region. */
    private static Region half(TestFrontend fe, int which) {
        long size = fe.options().memorySize / 2;
        return new Region(GUEST_PHYS_BASE + which * size, size, USER_BASE + which * size,
                fe.options().mmapOffset + which * size);
    }

    private static void setMemTable(TestFrontend fe, Region... regions) throws IOException {
        int[] fds = new int[regions.length];
        fds[0] = fe.memfd();
        for (int i = 1; i < fds.length; i++) {
            fds[i] = TestFrontend.dup(fe.memfd());
        }
        try {
            TestFrontend.expectOk(fe.setMemTable(List.of(regions), fds), "SET_MEM_TABLE");
        } finally {
            for (int i = 1; i < fds.length; i++) {
                Libc.close(fds[i]);
            }
        }
    }

    private static long addPage(TestFrontend fe, long offsetInRam) throws IOException {
        int fd = TestFrontend.dup(fe.memfd());
        try {
            return fe.send(VhostUserRequest.ADD_MEM_REG, memReg(new Region(GUEST_PHYS_BASE + offsetInRam, PAGE,
                    USER_BASE + offsetInRam, fe.options().mmapOffset + offsetInRam)), fd);
        } finally {
            Libc.close(fd);
        }
    }

    /** The guest transmits a frame from a buffer at {@code gpa}; the device's TX queue reads exactly it. */
    private static void assertTransmits(TestFrontend fe, VirtioNetDevice device, long gpa, String where) {
        byte[] frame = new byte[60];
        for (int i = 0; i < frame.length; i++) {
            frame[i] = (byte) (gpa + i * 7);
        }
        byte[] all = new byte[HEADER + frame.length];
        System.arraycopy(frame, 0, all, HEADER, frame.length);
        fe.write(gpa, all);
        int usedBefore = fe.usedIdx(TX);
        int id = fe.takeDescriptor(TX);
        fe.writeDescriptor(TX, id, gpa, all.length, 0, 0);
        fe.publish(TX, id);
        PacketBatch batch = new PacketBatch(4);
        assertEquals(1, device.txQueue().dequeueBurst(batch), where + ": " + device.txQueue().faultDetail());
        byte[] got = new byte[batch.frameLength(0)];
        for (int i = 0; i < got.length; i++) {
            got[i] = (byte) batch.frameByte(0, i);
        }
        assertArrayEquals(frame, got, where);
        device.txQueue().completeTx(batch);
        assertEquals((usedBefore + 1) & 0xFFFF, fe.usedIdx(TX), where + ": returned");
        assertEquals(id, fe.usedEntry(TX, usedBefore).id());
        assertFalse(device.txQueue().isBroken());
    }

    private static byte[] memReg(Region r) {
        ByteBuffer b = ByteBuffer.allocate(8 + 32).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(0).putLong(r.guestPhysAddr()).putLong(r.size()).putLong(r.userAddr()).putLong(r.mmapOffset());
        return b.array();
    }

    private static long send(TestFrontend fe, VhostUserRequest request, byte[] payload, int... fds) {
        try {
            return fe.send(request, payload, fds);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
