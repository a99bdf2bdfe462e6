package io.vswitch.vhost.virtio;

import io.vswitch.testing.PackedDriver;
import io.vswitch.testing.TestFrontend;
import io.vswitch.vhost.fixtures.PortFixture;
import io.vswitch.vhost.net.VirtioNetDevice;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static io.vswitch.testing.Frames.frame;
import static io.vswitch.testing.Frames.segment;
import static io.vswitch.testing.TestFrontend.RX;
import static io.vswitch.testing.TestFrontend.TX;
import static io.vswitch.vhost.fixtures.PortFixture.copy;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * GET_VRING_BASE / SET_VRING_BASE of packed rings with both positions (vhost-user.rst: avail offset and wrap
 * counter in bits 0-15, used offset and wrap counter in bits 16-31), through the real message path: a frontend
 * that restores a ring whose previous device had taken descriptors without returning them (used behind avail)
 * gets its next used descriptors exactly where its driver looks for them, and reads the same state back. The
 * state's encoding and rules are pinned in {@link #encodingAndRules()}.
 */
@Timeout(20)
class PackedRingStateTest {
    private static final int SIZE = 8;

    @TempDir
    Path dir;

    private PortFixture fx;
    private TestFrontend fe;
    private PackedDriver drv;

    private VirtioNetDevice start(TestFrontend.Options options) throws Exception {
        fx = new PortFixture(dir);
        fe = fx.connectAndSetUp(options.packed(true).queueSize(SIZE));
        drv = new PackedDriver(fe);
        assertTrue(fx.device().isRunning());
        return fx.device();
    }

    @AfterEach
    void releaseEverything() {
        if (fe != null) {
            assertFalse(fx.device().isBroken(), fx.device().txQueue().faultDetail() + fx.device().rxQueue().faultDetail());
            fx.disconnectAndAssertReleased(fe);
        }
        if (fx != null) {
            fx.close();
        }
    }

    @Test
    void encodingAndRules() {
        // the bit positions of vhost-user.rst
        assertEquals(0x7FFF, PackedRingBase.OFFSET_MASK);
        assertEquals(15, PackedRingBase.AVAIL_WRAP_SHIFT);
        assertEquals(16, PackedRingBase.USED_SHIFT);
        assertEquals(31, PackedRingBase.USED_WRAP_SHIFT);
        int base = PackedRingBase.encode(5, 0, 3, 1);
        assertEquals(5 | 3 << 16 | 1 << 31, base);
        assertEquals(5, PackedRingBase.availOffset(base));
        assertEquals(0, PackedRingBase.availWrap(base));
        assertEquals(3, PackedRingBase.usedOffset(base));
        assertEquals(1, PackedRingBase.usedWrap(base));
        assertEquals(SIZE + 2, PackedRingBase.inFlight(base, SIZE), "avail in the next lap: 8 + 5 - 3 slots");
        assertTrue(PackedRingBase.problem(base, SIZE) != null, "ten slots in flight on an 8-slot ring");
        assertNull(PackedRingBase.problem(PackedRingBase.encode(1, 0, 3, 1), SIZE), "6 in flight across the wrap");
        assertEquals(6, PackedRingBase.inFlight(PackedRingBase.encode(1, 0, 3, 1), SIZE));
        assertNull(PackedRingBase.problem(PackedRingBase.encode(0, 1, 0, 0), SIZE), "a whole ring in flight");
        assertTrue(PackedRingBase.problem(PackedRingBase.encode(2, 1, 4, 1), SIZE).contains("ahead"));
        assertTrue(PackedRingBase.problem(PackedRingBase.encode(SIZE, 1, 0, 1), SIZE).contains("avail offset 8"));
        assertTrue(PackedRingBase.problem(PackedRingBase.encode(0, 1, SIZE, 1), SIZE).contains("used offset 8"));
        // bits 16-31 zero (DPDK's virtio-user starts every ring with 0x8000): the used position is the avail one
        assertFalse(PackedRingBase.carriesUsed(0x8000));
        assertEquals(0, PackedRingBase.usedOffset(0x8000));
        assertEquals(1, PackedRingBase.usedWrap(0x8000));
        assertFalse(PackedRingBase.carriesUsed(0x8005), "avail slot 5 of lap 0, no used position");
        assertEquals(5, PackedRingBase.usedOffset(0x8005));
        assertEquals(0, PackedRingBase.inFlight(0x8005, SIZE));
        // with the avail wrap counter 0, zeros are a real state: used at slot 0 of lap 1, 6 in flight
        assertTrue(PackedRingBase.carriesUsed(6));
        assertEquals(0, PackedRingBase.usedOffset(6));
        assertEquals(0, PackedRingBase.usedWrap(6));
        assertEquals(6, PackedRingBase.inFlight(6, SIZE));
        assertEquals(6, PackedRingBase.encode(6, 0, 0, 0));
    }

    @Test
    void transmitRingRoundTripsWithDescriptorsInFlight() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options());
        VirtQueue tx = device.txQueue();
        PacketBatch batch = new PacketBatch(8);
        // the ring stops; the driver had made two frames available, which "the previous device" then took without
        // returning them: it restores avail at slot 2 and used at slot 0 (both in lap 0, wrap counters 1)
        assertEquals(PackedRingBase.encode(0, 1, 0, 1), fe.getVringBase(TX));
        int lostA = drv.transmit(frame(60, 100));
        int lostB = drv.transmit(frame(60, 101));
        int state = PackedRingBase.encode(2, 1, 0, 1);
        fe.setUpRing(TX, state);
        fe.sync();
        assertTrue(device.isRunning());
        assertEquals(state, fe.getVringBase(TX), "a stopped ring reports what it was given");
        fe.setUpRing(TX, state);
        fe.sync();

        // the device reads slot 2 on, and writes the used descriptor into slot 0, where the driver looks
        int id = drv.transmit(frame(70, 1));
        assertEquals(1, tx.dequeueBurst(batch));
        assertArrayEquals(frame(70, 1), copy(batch, 0), "read from the avail position, not from the slots in flight");
        tx.completeTx(batch);
        List<TestFrontend.Used> used = drv.txCompleted();
        assertEquals(1, used.size());
        assertEquals(id, used.get(0).id());
        assertEquals(1, drv.nextUsedSlot(TX));
        assertEquals(2, drv.outstanding(TX), "the two in flight are never returned (no inflight tracking)");

        // laps of the ring with the two slots still in flight, and a GET/SET round trip in every round
        int seed = 10;
        for (int round = 0; round < 12; round++) {
            int n = 1 + round % 3;
            byte[][] frames = new byte[n][];
            for (int i = 0; i < n; i++) {
                frames[i] = frame(60 + i, seed++);
                drv.transmit(frames[i], 1 + (round + i) % 2, false);
            }
            assertEquals(n, tx.dequeueBurst(batch));
            for (int i = 0; i < n; i++) {
                assertArrayEquals(frames[i], copy(batch, i));
            }
            tx.completeTx(batch);
            assertEquals(n, drv.txCompleted().size());
            int base = fe.getVringBase(TX);
            assertEquals(PackedRingBase.encode(drv.nextSlot(TX), drv.availWrap(TX), drv.nextUsedSlot(TX), drv.usedWrap(TX)), base,
                    "round " + round + ": " + PackedRingBase.describe(base));
            assertEquals(2, PackedRingBase.inFlight(base, SIZE));
            fe.setUpRing(TX, base);
            fe.sync();
            assertTrue(device.isRunning());
        }
        assertEquals(2, drv.outstanding(TX));
        assertTrue(lostA != lostB);
    }

    @Test
    void receiveRingRoundTripsWithBuffersInFlight() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options().mergeable(true));
        VirtQueue rx = device.rxQueue();
        fe.getVringBase(RX);
        drv.postRxBuffers(3, 512);   // slots 0..2: the previous device took the first three
        fe.setUpRing(RX, PackedRingBase.encode(3, 1, 0, 1));
        fe.sync();
        assertTrue(device.isRunning());
        List<byte[]> sent = new ArrayList<>();
        int seed = 0;
        for (int round = 0; round < 10; round++) {
            drv.postRxBuffers(2, 512);
            for (int i = 0; i < 2; i++) {
                byte[] f = frame(round % 2 == 0 ? 100 : 700, seed++);   // 700 bytes need two 512-byte buffers
                if (rx.enqueue(segment(f), 0, f.length)) {
                    sent.add(f);
                }
            }
            rx.flushRx();
            for (TestFrontend.RxFrame got : drv.receive()) {
                assertArrayEquals(sent.remove(0), got.data());
            }
            // every buffer posted was taken (a frame that did not fit left nothing behind): the device's avail
            // position is the driver's, its used position the driver's next used slot, three slots behind
            int base = fe.getVringBase(RX);
            assertEquals(PackedRingBase.encode(drv.nextSlot(RX), drv.availWrap(RX), drv.nextUsedSlot(RX), drv.usedWrap(RX)), base,
                    "round " + round + ": " + PackedRingBase.describe(base));
            assertEquals(3, PackedRingBase.inFlight(base, SIZE), "three buffers stay in flight");
            fe.setUpRing(RX, base);
            fe.sync();
        }
        assertTrue(sent.isEmpty(), sent.size() + " frames not received");
        assertEquals(0, rx.faults);
    }

    @Test
    void aBaseWithoutBits16To31InAnEvenLapResumesWithUsedAtAvail() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options());
        VirtQueue tx = device.txQueue();
        PacketBatch batch = new PacketBatch(8);
        for (int i = 0; i < 2 * SIZE + 3; i++) {   // two laps and three slots: lap 2, wrap counters 1
            drv.transmit(frame(60, i));
            assertEquals(1, tx.dequeueBurst(batch));
            tx.completeTx(batch);
            assertEquals(1, drv.txCompleted().size());
        }
        int base = fe.getVringBase(TX);
        assertEquals(PackedRingBase.encode(3, 1, 3, 1), base);
        // as QEMU sends it back after a backend that reported bits 0-15 only (DPDK's lib/vhost)
        fe.setUpRing(TX, base & 0xFFFF);
        fe.sync();
        assertTrue(device.isRunning());
        for (int i = 0; i < 10; i++) {
            drv.transmit(frame(80, 50 + i));
            assertEquals(1, tx.dequeueBurst(batch));
            assertArrayEquals(frame(80, 50 + i), copy(batch, 0));
            tx.completeTx(batch);
            assertEquals(1, drv.txCompleted().size(), "used written where the driver looks");
        }
        assertEquals(PackedRingBase.encode(drv.nextSlot(TX), drv.availWrap(TX), drv.nextSlot(TX), drv.availWrap(TX)), fe.getVringBase(TX));
    }
}
