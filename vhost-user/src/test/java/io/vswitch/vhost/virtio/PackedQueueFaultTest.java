package io.vswitch.vhost.virtio;

import io.vswitch.protocol.PackedDescriptor;
import io.vswitch.vhost.net.VirtioNetDevice;
import io.vswitch.testing.PackedDriver;
import io.vswitch.vhost.fixtures.PortFixture;
import io.vswitch.testing.TestFrontend;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

import static io.vswitch.vhost.fixtures.PortFixture.copy;
import static io.vswitch.testing.Frames.frame;
import static io.vswitch.testing.Frames.segment;
import static io.vswitch.testing.TestFrontend.GUEST_PHYS_BASE;
import static io.vswitch.testing.TestFrontend.RX;
import static io.vswitch.testing.TestFrontend.TX;
import static io.vswitch.testing.TestFrontend.USER_BASE;
import static io.vswitch.protocol.PackedDescriptor.F_INDIRECT;
import static io.vswitch.protocol.PackedDescriptor.F_NEXT;
import static io.vswitch.protocol.PackedDescriptor.F_WRITE;
import static io.vswitch.protocol.PackedDescriptor.SIZE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link QueueFaultTest}'s catalogue for packed rings: every rule a hostile driver can break, one test each.
 * The queue records the fault and does nothing more, the other queue is unaffected, the frontend hears of it on
 * the error eventfd, and the queue works again once the frontend sets the ring up again. Rules of the split ring
 * that have no packed counterpart: NEXT_OUT_OF_RANGE (a packed chain continues in the next slot and an indirect
 * table is sequential) and a jumping avail index (there is none; its counterpart is a driver that makes more
 * descriptors available than the ring holds, AVAIL_INDEX_JUMP).
 */
@Timeout(20)
class PackedQueueFaultTest {
    private static final int QUEUE_SIZE = 256;
    /** GET_VRING_BASE after the good frame of {@link #start()}: avail and used at slot 1, wrap counters 1. */
    private static final int BASE_AFTER_ONE = PackedRingBase.encode(1, 1, 1, 1);

    @TempDir
    Path dir;

    private PortFixture fx;
    private TestFrontend fe;
    private PackedDriver drv;
    private VirtioNetDevice device;
    private final PacketBatch batch = new PacketBatch(16);

    @BeforeEach
    void start() throws Exception {
        fx = new PortFixture(dir);
        fe = fx.connectAndSetUp(new TestFrontend.Options().queueSize(QUEUE_SIZE).packed(true));
        drv = new PackedDriver(fe);
        device = fx.device();
        assertTrue(device.isRunning());
        drv.transmit(frame(60, 1));
        assertEquals(1, device.txQueue().dequeueBurst(batch));
        device.txQueue().completeTx(batch);
        assertEquals(1, drv.txCompleted().size());
        drv.postRxBuffers(1, 2048);
        assertTrue(device.rxQueue().enqueue(segment(frame(60, 2)), 0, 60));
        device.rxQueue().flushRx();
        assertEquals(1, drv.receive().size());
    }

    @AfterEach
    void stop() {
        if (fe != null) {
            fx.disconnectAndAssertReleased(fe);
        }
        if (fx != null) {
            fx.close();
        }
    }

    // ---------------------------------------------------------------- guest TX chains

    @Test
    void bufferIdNotBelowQueueSize() throws Exception {
        single(TX, QUEUE_SIZE, fe.allocate(64), 64, 0);
        assertTxFault(QueueFault.HEAD_OUT_OF_RANGE);
    }

    @Test
    void chainLongerThanTheQueue() throws Exception {
        long buffer = fe.allocate(64);
        long[] addrs = new long[QUEUE_SIZE];
        int[] lengths = new int[QUEUE_SIZE];
        int[] flags = new int[QUEUE_SIZE];
        for (int i = 0; i < QUEUE_SIZE; i++) {
            addrs[i] = buffer;
            lengths[i] = 64;
            flags[i] = F_NEXT;   // the last one too: the chain would go on into its own head
        }
        drv.publishRaw(TX, 0, addrs, lengths, flags);
        assertTxFault(QueueFault.CHAIN_LOOP);
    }

    @Test
    void chainOfZeroLengthDescriptorsLongerThanTheQueue() throws Exception {
        long[] addrs = new long[QUEUE_SIZE];
        int[] lengths = new int[QUEUE_SIZE];
        int[] flags = new int[QUEUE_SIZE];
        java.util.Arrays.fill(addrs, fe.allocate(16));
        java.util.Arrays.fill(flags, F_NEXT);
        drv.publishRaw(TX, 0, addrs, lengths, flags);
        assertTxFault(QueueFault.CHAIN_LOOP);
    }

    @Test
    void chainContinuingIntoADescriptorThatIsNotAvailable() throws Exception {
        single(TX, 0, fe.allocate(64), 64, F_NEXT);   // the next slot was never made available
        assertTxFault(QueueFault.CHAIN_NOT_AVAILABLE);
    }

    @Test
    void chainContinuingIntoADescriptorOfThePreviousLap() throws Exception {
        int next = drv.nextSlot(TX) + 1;
        // made available, but with the other wrap counter: a stale descriptor of the last lap
        drv.writeDescriptor(TX, next, fe.allocate(64), 64, 0, PackedDescriptor.availFlags(drv.availWrap(TX) ^ 1, 0));
        single(TX, 0, fe.allocate(64), 64, F_NEXT);
        assertTxFault(QueueFault.CHAIN_NOT_AVAILABLE);
    }

    @Test
    void bufferAfterTheEndOfGuestMemory() throws Exception {
        single(TX, 0, GUEST_PHYS_BASE + fe.options().memorySize, 64, 0);
        assertTxFault(QueueFault.ADDRESS_OUT_OF_MEMORY);
    }

    @Test
    void bufferBeforeTheStartOfGuestMemory() throws Exception {
        single(TX, 0, GUEST_PHYS_BASE - 64, 64, 0);
        assertTxFault(QueueFault.ADDRESS_OUT_OF_MEMORY);
    }

    @Test
    void bufferAtAFrontendVirtualAddress() throws Exception {
        single(TX, 0, USER_BASE + 0x10000, 64, 0);
        assertTxFault(QueueFault.ADDRESS_OUT_OF_MEMORY);
    }

    @Test
    void bufferStraddlingTheEndOfGuestMemory() throws Exception {
        single(TX, 0, GUEST_PHYS_BASE + fe.options().memorySize - 10, 100, 0);
        assertTxFault(QueueFault.ADDRESS_OUT_OF_MEMORY);
    }

    @Test
    void bufferWhoseEndWrapsAroundTheAddressSpace() throws Exception {
        single(TX, 0, -32L, 64, 0);
        assertTxFault(QueueFault.ADDRESS_OUT_OF_MEMORY);
    }

    @Test
    void bufferLengthOfFourGigabytes() throws Exception {
        single(TX, 0, GUEST_PHYS_BASE + 0x20000, -1, 0);
        assertTxFault(QueueFault.ADDRESS_OUT_OF_MEMORY);
    }

    @Test
    void secondDescriptorOfAChainOutsideMemory() throws Exception {
        long good = fe.allocate(64);
        fe.write(good, new byte[64]);
        drv.publishRaw(TX, 0, new long[] {good, GUEST_PHYS_BASE + (64L << 20)}, new int[] {64, 64}, new int[] {F_NEXT, 0});
        assertTxFault(QueueFault.ADDRESS_OUT_OF_MEMORY);
    }

    @Test
    void indirectTableLengthNotAMultipleOfSixteen() throws Exception {
        long table = fe.allocate(32);
        drv.writeIndirectDescriptor(table, 0, fe.allocate(64), 64, 0);
        single(TX, 0, table, 24, F_INDIRECT);
        assertTxFault(QueueFault.BAD_INDIRECT);
    }

    @Test
    void indirectTableOfZeroLength() throws Exception {
        single(TX, 0, fe.allocate(16), 0, F_INDIRECT);
        assertTxFault(QueueFault.BAD_INDIRECT);
    }

    @Test
    void indirectTableLongerThanTheQueue() throws Exception {
        int entries = QUEUE_SIZE + 1;
        long table = fe.allocate((long) entries * SIZE);
        long buffer = fe.allocate(64);
        for (int i = 0; i < entries; i++) {
            drv.writeIndirectDescriptor(table, i, buffer, 1, 0);
        }
        single(TX, 0, table, entries * SIZE, F_INDIRECT);
        assertTxFault(QueueFault.BAD_INDIRECT);
    }

    @Test
    void indirectTableOutsideGuestMemory() throws Exception {
        single(TX, 0, GUEST_PHYS_BASE + fe.options().memorySize - SIZE, 4 * SIZE, F_INDIRECT);
        assertTxFault(QueueFault.ADDRESS_OUT_OF_MEMORY);
    }

    @Test
    void indirectDescriptorInsideAnIndirectTable() throws Exception {
        long inner = fe.allocate(SIZE);
        drv.writeIndirectDescriptor(inner, 0, fe.allocate(64), 64, 0);
        long outer = fe.allocate(2 * SIZE);
        drv.writeIndirectDescriptor(outer, 0, fe.allocate(64), 64, 0);
        drv.writeIndirectDescriptor(outer, 1, inner, SIZE, F_INDIRECT);
        single(TX, 0, outer, 2 * SIZE, F_INDIRECT);
        assertTxFault(QueueFault.NESTED_INDIRECT);
    }

    @Test
    void indirectFlagTogetherWithNext() throws Exception {
        long table = fe.allocate(SIZE);
        drv.writeIndirectDescriptor(table, 0, fe.allocate(64), 64, 0);
        drv.publishRaw(TX, 0, new long[] {table, fe.allocate(64)}, new int[] {SIZE, 64}, new int[] {F_INDIRECT | F_NEXT, 0});
        assertTxFault(QueueFault.BAD_INDIRECT);
    }

    @Test
    void writableDescriptorInATransmitChain() throws Exception {
        drv.publishRaw(TX, 0, new long[] {fe.allocate(64), fe.allocate(64)}, new int[] {64, 64}, new int[] {F_NEXT, F_WRITE});
        assertTxFault(QueueFault.WRONG_DIRECTION);
    }

    @Test
    void writableDescriptorInsideAnIndirectTransmitTable() throws Exception {
        long table = fe.allocate(2 * SIZE);
        drv.writeIndirectDescriptor(table, 0, fe.allocate(64), 64, 0);
        drv.writeIndirectDescriptor(table, 1, fe.allocate(64), 64, F_WRITE);
        single(TX, 0, table, 2 * SIZE, F_INDIRECT);
        assertTxFault(QueueFault.WRONG_DIRECTION);
    }

    @Test
    void faultInTheMiddleOfABurstDropsTheWholeBurstAndKeepsThePosition() throws Exception {
        drv.transmit(frame(60, 3));
        drv.transmit(frame(60, 4));
        single(TX, QUEUE_SIZE + 7, fe.allocate(64), 64, 0);
        assertTxFault(QueueFault.HEAD_OUT_OF_RANGE);
    }

    // ---------------------------------------------------------------- guest RX chains

    @Test
    void readOnlyDescriptorInAReceiveChain() throws Exception {
        single(RX, 0, fe.allocate(2048), 2048, 0);
        assertRxFault(QueueFault.WRONG_DIRECTION);
    }

    @Test
    void readOnlyDescriptorAfterAWritableOneInAReceiveChain() throws Exception {
        drv.publishRaw(RX, 0, new long[] {fe.allocate(16), fe.allocate(2048)}, new int[] {16, 2048},
                new int[] {F_WRITE | F_NEXT, 0});
        assertRxFault(QueueFault.WRONG_DIRECTION);
    }

    @Test
    void receiveBufferIdOutOfRange() throws Exception {
        single(RX, QUEUE_SIZE, fe.allocate(2048), 2048, F_WRITE);
        assertRxFault(QueueFault.HEAD_OUT_OF_RANGE);
    }

    @Test
    void receiveBufferOutsideGuestMemory() throws Exception {
        single(RX, 0, GUEST_PHYS_BASE + fe.options().memorySize - 100, 2048, F_WRITE);
        assertRxFault(QueueFault.ADDRESS_OUT_OF_MEMORY);
    }

    @Test
    void receiveChainContinuingIntoADescriptorThatIsNotAvailable() throws Exception {
        single(RX, 0, fe.allocate(16), 16, F_WRITE | F_NEXT);
        assertRxFault(QueueFault.CHAIN_NOT_AVAILABLE);
    }

    @Test
    void moreReceiveDescriptorsThanTheRingHolds() throws Exception {
        // the driver hands over every slot, the device takes them all (not yet returned), and the driver then
        // marks the slots the device holds available again for the next lap
        VirtQueue rx = device.rxQueue();
        long buffer = fe.allocate(128);
        for (int i = 0; i < QUEUE_SIZE; i++) {
            single(RX, i, buffer, 128, F_WRITE);
            assertTrue(rx.enqueue(segment(frame(60, i)), 0, 60));
        }
        single(RX, 0, buffer, 128, F_WRITE);   // slot 1 again, next lap: still the device's
        byte[] f = frame(60, 5);
        assertFalse(rx.enqueue(segment(f), 0, f.length));
        assertEquals(QueueFault.AVAIL_INDEX_JUMP, rx.fault(), rx.faultDetail());
        rx.flushRx();
        device.reportFault();
        assertEquals(1, fe.drainErrors(RX));
        assertEquals(PackedRingBase.encode(1, 0, 1, 1), drv.resetRing(RX),
                "GET_VRING_BASE: avail at slot 1 of the next lap (wrap 0) after the frames taken, used still at slot 1"
                        + " of the first lap: the whole ring was taken and never returned");
        assertTrue(device.isRunning());
        checkRxStillWorks();
    }

    // ---------------------------------------------------------------- ring addresses and base

    @Test
    void ringOutsideGuestMemoryStopsTheDevice() throws Exception {
        long end = USER_BASE + fe.options().memorySize;
        assertBadRing(end, fe.usedUserAddr(TX), fe.availUserAddr(TX));
    }

    @Test
    void deviceAreaAtTheEndOfGuestMemoryStopsTheDevice() throws Exception {
        long end = USER_BASE + fe.options().memorySize;
        assertBadRing(fe.descUserAddr(TX), end - 2, fe.availUserAddr(TX));
    }

    @Test
    void misalignedDescriptorRingStopsTheDevice() throws Exception {
        assertBadRing(fe.descUserAddr(TX) + 8, fe.usedUserAddr(TX), fe.availUserAddr(TX));
    }

    @Test
    void misalignedDriverAreaStopsTheDevice() throws Exception {
        assertBadRing(fe.descUserAddr(TX), fe.usedUserAddr(TX), fe.availUserAddr(TX) + 2);
    }

    @Test
    void misalignedDeviceAreaStopsTheDevice() throws Exception {
        assertBadRing(fe.descUserAddr(TX), fe.usedUserAddr(TX) + 2, fe.availUserAddr(TX));
    }

    @Test
    void ringBaseBeyondTheQueueSizeIsRefusedAndStopsTheDevice() throws Exception {
        assertBaseRefused(PackedRingBase.encode(QUEUE_SIZE, 1, 1, 1), "avail offset 256 (wrap 1) is not below the queue size 256");
    }

    @Test
    void usedOffsetBeyondTheQueueSizeIsRefusedAndStopsTheDevice() throws Exception {
        assertBaseRefused(PackedRingBase.encode(1, 1, 0x7FFF, 1), "used offset 32767 (wrap 1) is not below the queue size 256");
    }

    @Test
    void usedPositionAheadOfTheAvailPositionIsRefusedAndStopsTheDevice() throws Exception {
        // used at slot 5 of the lap whose avail position is slot 1: the device would write used descriptors over
        // descriptors it has not read
        // (a wrap counter names a lap only up to two: used at slot 3 with wrap 0 is read as the previous lap, 254
        // slots in flight, which is allowed)
        assertBaseRefused(PackedRingBase.encode(1, 1, 5, 1), "used position 5 (wrap 1) is ahead of the avail position 1 (wrap 1)");
    }

    /**
     * SET_VRING_BASE with {@code base} is refused (nack, a log line saying why, the port's refused-message count),
     * and the ring does not start from it (nor from the last good base): the device stays stopped until the
     * frontend sets the ring up with a good base, then it works.
     */
    private void assertBaseRefused(int base, String why) throws Exception {
        assertEquals(BASE_AFTER_ONE, fe.getVringBase(TX));
        long refused = fx.port().counters().refusedMessages;
        try (io.vswitch.testing.LogCapture log = new io.vswitch.testing.LogCapture()) {
            TestFrontend.expectOk(fe.setVringNum(TX, QUEUE_SIZE), "SET_VRING_NUM");
            assertTrue(fe.setVringBase(TX, base) != 0, "SET_VRING_BASE 0x" + Integer.toHexString(base) + " refused");
            String line = log.await("refused SET_VRING_BASE: queue 1: packed ring base 0x" + Integer.toHexString(base)).message();
            assertTrue(line.contains(why), line);
        }
        assertEquals(refused + 1, fx.port().counters().refusedMessages, "counted");
        TestFrontend.expectOk(fe.setVringAddr(TX, fe.descUserAddr(TX), fe.usedUserAddr(TX), fe.availUserAddr(TX)), "SET_VRING_ADDR");
        TestFrontend.expectOk(fe.setVringKick(TX), "SET_VRING_KICK");
        TestFrontend.expectOk(fe.setVringEnable(TX, true), "SET_VRING_ENABLE");
        fe.sync();
        assertFalse(device.isRunning(), "a refused base never starts");
        assertTrue(device.isBroken());
        assertFalse(device.txQueue().isConfigured());
        fe.setUpRing(TX, BASE_AFTER_ONE);
        fe.sync();
        assertTrue(device.isRunning());
        assertFalse(device.isBroken());
        drv.transmit(frame(80, 12));
        assertEquals(1, device.txQueue().dequeueBurst(batch));
        assertArrayEquals(frame(80, 12), copy(batch, 0));
        device.txQueue().completeTx(batch);
        assertEquals(1, drv.txCompleted().size());
    }

    // ---------------------------------------------------------------- helpers

    private void single(int q, int id, long addr, int length, int flags) {
        drv.publishRaw(q, id, new long[] {addr}, new int[] {length}, new int[] {flags});
    }

    private void assertTxFault(QueueFault expected) throws IOException {
        VirtQueue tx = device.txQueue();
        int headFlags = drv.flagsAt(TX, 1);
        assertEquals(0, tx.dequeueBurst(batch), "nothing comes out of the bad chain");
        assertEquals(expected, tx.fault(), tx.faultDetail());
        assertTrue(tx.isBroken());
        assertFalse(tx.faultDetail().isEmpty());
        assertEquals(1, tx.faults);
        assertFalse(device.rxQueue().isBroken(), "the other queue is unaffected");
        device.reportFault();
        assertTrue(device.isBroken());
        assertEquals(1, fe.drainErrors(TX), "the frontend is told on the error eventfd");
        assertEquals(0, fe.drainErrors(RX));

        assertEquals(0, tx.dequeueBurst(batch));
        assertFalse(tx.hasAvailable());
        tx.completeTx(batch);
        tx.setKicksWanted(true);
        assertEquals(headFlags, drv.flagsAt(TX, 1), "a broken queue writes nothing into the ring");
        assertEquals(expected, tx.fault(), "the first fault is the one kept");
        assertEquals(1, tx.faults, "counted once");
        device.reportFault();
        assertEquals(0, fe.drainErrors(TX), "reported once");

        assertEquals(BASE_AFTER_ONE, drv.resetRing(TX), "GET_VRING_BASE: slot and wrap after the last good burst");
        assertTrue(device.isRunning(), "running again after the ring was set up again");
        assertFalse(device.isBroken());
        assertEquals(QueueFault.NONE, tx.fault());
        byte[][] frames = {frame(60, 10), frame(1500, 11)};
        drv.transmit(frames[0]);
        drv.transmit(frames[1], 3, true);
        assertEquals(2, tx.dequeueBurst(batch));
        assertArrayEquals(frames[0], copy(batch, 0));
        assertArrayEquals(frames[1], copy(batch, 1));
        tx.completeTx(batch);
        assertEquals(2, drv.txCompleted().size());
        checkRxStillWorks();
    }

    private void assertRxFault(QueueFault expected) throws IOException {
        VirtQueue rx = device.rxQueue();
        int headFlags = drv.flagsAt(RX, 1);
        byte[] f = frame(100, 5);
        assertFalse(rx.enqueue(segment(f), 0, f.length));
        rx.flushRx();
        assertEquals(expected, rx.fault(), rx.faultDetail());
        assertEquals(1, rx.faults);
        assertFalse(device.txQueue().isBroken(), "the other queue is unaffected");
        device.reportFault();
        assertTrue(device.isBroken());
        assertEquals(1, fe.drainErrors(RX));
        assertFalse(rx.enqueue(segment(f), 0, f.length), "stays stopped");
        rx.flushRx();
        assertEquals(headFlags, drv.flagsAt(RX, 1), "a broken queue writes nothing into the ring");

        assertEquals(BASE_AFTER_ONE, drv.resetRing(RX));
        assertTrue(device.isRunning());
        assertFalse(device.isBroken());
        checkRxStillWorks();
        drv.transmit(frame(60, 6));
        assertEquals(1, device.txQueue().dequeueBurst(batch), "TX kept working throughout");
        device.txQueue().completeTx(batch);
        drv.txCompleted();
    }

    private void checkRxStillWorks() {
        VirtQueue rx = device.rxQueue();
        byte[] f = frame(200, 9);
        drv.postRxBuffers(1, 2048);
        assertTrue(rx.enqueue(segment(f), 0, f.length));
        rx.flushRx();
        List<TestFrontend.RxFrame> frames = drv.receive();
        assertFalse(frames.isEmpty());
        assertArrayEquals(f, frames.get(frames.size() - 1).data());
    }

    private void assertBadRing(long desc, long device, long driver) throws IOException {
        fe.setVringAddr(TX, desc, device, driver);
        assertFalse(this.device.isRunning(), "not running on an unusable ring");
        assertTrue(this.device.isBroken());
        assertEquals(0, this.device.txQueue().dequeueBurst(batch));
        assertFalse(this.device.txQueue().isConfigured());
        TestFrontend.expectOk(fe.setVringAddr(TX, fe.descUserAddr(TX), fe.usedUserAddr(TX), fe.availUserAddr(TX)),
                "SET_VRING_ADDR");
        assertTrue(this.device.isRunning(), "running again with usable rings");
        assertFalse(this.device.isBroken());
        drv.transmit(frame(80, 12));
        assertEquals(1, this.device.txQueue().dequeueBurst(batch));
        assertArrayEquals(frame(80, 12), copy(batch, 0));
        this.device.txQueue().completeTx(batch);
        assertEquals(1, drv.txCompleted().size());
        checkRxStillWorks();
    }
}
