package io.vswitch.vhost.virtio;

import io.vswitch.vhost.net.VirtioNetDevice;
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
import static io.vswitch.protocol.SplitRing.DESC_F_INDIRECT;
import static io.vswitch.protocol.SplitRing.DESC_F_NEXT;
import static io.vswitch.protocol.SplitRing.DESC_F_WRITE;
import static io.vswitch.protocol.SplitRing.DESC_SIZE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every rule a hostile guest can break in its rings, one test each: the queue records the fault, does nothing
 * more, the other queue is unaffected, the frontend hears of it on the error eventfd, and the queue works again
 * once the frontend sets the ring up again (GET_VRING_BASE, then NUM/BASE/ADDR/CALL/KICK/ENABLE).
 */
@Timeout(20)
class QueueFaultTest {
    private static final int QUEUE_SIZE = 256;

    @TempDir
    Path dir;

    private PortFixture fx;
    private TestFrontend fe;
    private VirtioNetDevice device;
    private final PacketBatch batch = new PacketBatch(16);

    @BeforeEach
    void start() throws Exception {
        fx = new PortFixture(dir);
        fe = fx.connectAndSetUp(new TestFrontend.Options().queueSize(QUEUE_SIZE));
        device = fx.device();
        assertTrue(device.isRunning());
        // one good frame each way first, so that the ring positions are not 0
        fe.transmit(frame(60, 1));
        assertEquals(1, device.txQueue().dequeueBurst(batch));
        device.txQueue().completeTx(batch);
        assertEquals(1, fe.txCompleted().size());
        fe.postRxBuffers(1, 2048);
        assertTrue(device.rxQueue().enqueue(segment(frame(60, 2)), 0, 60));
        device.rxQueue().flushRx();
        assertEquals(1, fe.receive().size());
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
    void headIndexNotBelowQueueSize() throws Exception {
        fe.publish(TX, QUEUE_SIZE);
        assertTxFault(QueueFault.HEAD_OUT_OF_RANGE);
    }

    @Test
    void nextIndexOutOfRange() throws Exception {
        int id = fe.takeDescriptor(TX);
        fe.writeDescriptor(TX, id, fe.allocate(64), 64, DESC_F_NEXT, QUEUE_SIZE);
        fe.publish(TX, id);
        assertTxFault(QueueFault.NEXT_OUT_OF_RANGE);
    }

    @Test
    void chainLoop() throws Exception {
        int a = fe.takeDescriptor(TX);
        int b = fe.takeDescriptor(TX);
        fe.writeDescriptor(TX, a, fe.allocate(64), 64, DESC_F_NEXT, b);
        fe.writeDescriptor(TX, b, fe.allocate(64), 64, DESC_F_NEXT, a);
        fe.publish(TX, a);
        assertTxFault(QueueFault.CHAIN_LOOP);
    }

    @Test
    void chainLoopOfZeroLengthDescriptors() throws Exception {
        int a = fe.takeDescriptor(TX);
        fe.writeDescriptor(TX, a, fe.allocate(16), 0, DESC_F_NEXT, a);   // skipped as empty, but still counted
        fe.publish(TX, a);
        assertTxFault(QueueFault.CHAIN_LOOP);
    }

    @Test
    void chainLoopInsideAnIndirectTable() throws Exception {
        long table = fe.allocate(2 * DESC_SIZE);
        fe.writeIndirectDescriptor(table, 0, fe.allocate(64), 64, DESC_F_NEXT, 1);
        fe.writeIndirectDescriptor(table, 1, fe.allocate(64), 64, DESC_F_NEXT, 0);
        publishIndirect(table, 2 * DESC_SIZE, 0);
        assertTxFault(QueueFault.CHAIN_LOOP);
    }

    @Test
    void bufferAfterTheEndOfGuestMemory() throws Exception {
        publishSingle(GUEST_PHYS_BASE + fe.options().memorySize, 64, 0);
        assertTxFault(QueueFault.ADDRESS_OUT_OF_MEMORY);
    }

    @Test
    void bufferBeforeTheStartOfGuestMemory() throws Exception {
        publishSingle(GUEST_PHYS_BASE - 64, 64, 0);
        assertTxFault(QueueFault.ADDRESS_OUT_OF_MEMORY);
    }

    @Test
    void bufferAtAFrontendVirtualAddress() throws Exception {
        // a ring-style (frontend-virtual) address is not a guest-physical one
        publishSingle(USER_BASE + 0x10000, 64, 0);
        assertTxFault(QueueFault.ADDRESS_OUT_OF_MEMORY);
    }

    @Test
    void bufferStraddlingTheEndOfGuestMemory() throws Exception {
        publishSingle(GUEST_PHYS_BASE + fe.options().memorySize - 10, 100, 0);
        assertTxFault(QueueFault.ADDRESS_OUT_OF_MEMORY);
    }

    @Test
    void bufferWhoseEndWrapsAroundTheAddressSpace() throws Exception {
        publishSingle(-32L, 64, 0);
        assertTxFault(QueueFault.ADDRESS_OUT_OF_MEMORY);
    }

    @Test
    void bufferLengthOfFourGigabytes() throws Exception {
        publishSingle(GUEST_PHYS_BASE + 0x20000, -1, 0);
        assertTxFault(QueueFault.ADDRESS_OUT_OF_MEMORY);
    }

    @Test
    void secondDescriptorOfAChainOutsideMemory() throws Exception {
        int a = fe.takeDescriptor(TX);
        int b = fe.takeDescriptor(TX);
        long good = fe.allocate(64);
        fe.write(good, new byte[64]);
        fe.writeDescriptor(TX, a, good, 64, DESC_F_NEXT, b);
        fe.writeDescriptor(TX, b, GUEST_PHYS_BASE + (64L << 20), 64, 0, 0);
        fe.publish(TX, a);
        assertTxFault(QueueFault.ADDRESS_OUT_OF_MEMORY);
    }

    @Test
    void indirectTableLengthNotAMultipleOfSixteen() throws Exception {
        long table = fe.allocate(32);
        fe.writeIndirectDescriptor(table, 0, fe.allocate(64), 64, 0, 0);
        publishIndirect(table, 24, 0);
        assertTxFault(QueueFault.BAD_INDIRECT);
    }

    @Test
    void indirectTableOfZeroLength() throws Exception {
        publishIndirect(fe.allocate(16), 0, 0);
        assertTxFault(QueueFault.BAD_INDIRECT);
    }

    @Test
    void indirectTableLongerThanTheQueue() throws Exception {
        int entries = QUEUE_SIZE + 1;
        long table = fe.allocate((long) entries * DESC_SIZE);
        long buffer = fe.allocate(64);
        for (int i = 0; i < entries; i++) {
            fe.writeIndirectDescriptor(table, i, buffer, 1, i + 1 < entries ? DESC_F_NEXT : 0, i + 1);
        }
        publishIndirect(table, entries * DESC_SIZE, 0);
        assertTxFault(QueueFault.BAD_INDIRECT);
    }

    @Test
    void indirectTableOutsideGuestMemory() throws Exception {
        publishIndirect(GUEST_PHYS_BASE + fe.options().memorySize - DESC_SIZE, 4 * DESC_SIZE, 0);
        assertTxFault(QueueFault.ADDRESS_OUT_OF_MEMORY);
    }

    @Test
    void indirectDescriptorInsideAnIndirectTable() throws Exception {
        long inner = fe.allocate(DESC_SIZE);
        fe.writeIndirectDescriptor(inner, 0, fe.allocate(64), 64, 0, 0);
        long outer = fe.allocate(2 * DESC_SIZE);
        fe.writeIndirectDescriptor(outer, 0, fe.allocate(64), 64, DESC_F_NEXT, 1);
        fe.writeIndirectDescriptor(outer, 1, inner, DESC_SIZE, DESC_F_INDIRECT, 0);
        publishIndirect(outer, 2 * DESC_SIZE, 0);
        assertTxFault(QueueFault.NESTED_INDIRECT);
    }

    @Test
    void indirectFlagTogetherWithNext() throws Exception {
        long table = fe.allocate(DESC_SIZE);
        fe.writeIndirectDescriptor(table, 0, fe.allocate(64), 64, 0, 0);
        int second = fe.takeDescriptor(TX);
        fe.writeDescriptor(TX, second, fe.allocate(64), 64, 0, 0);
        publishIndirect(table, DESC_SIZE, DESC_F_NEXT, second);
        assertTxFault(QueueFault.BAD_INDIRECT);
    }

    @Test
    void nextOutOfRangeInsideAnIndirectTable() throws Exception {
        long table = fe.allocate(2 * DESC_SIZE);
        fe.writeIndirectDescriptor(table, 0, fe.allocate(64), 64, DESC_F_NEXT, 2);   // the table has 2 entries
        fe.writeIndirectDescriptor(table, 1, fe.allocate(64), 64, 0, 0);
        publishIndirect(table, 2 * DESC_SIZE, 0);
        assertTxFault(QueueFault.NEXT_OUT_OF_RANGE);
    }

    @Test
    void availIndexJumpsByMoreThanTheQueueSize() throws Exception {
        fe.setAvailIdx(TX, fe.availIdx(TX) + QUEUE_SIZE + 1);
        assertTxFault(QueueFault.AVAIL_INDEX_JUMP);
    }

    @Test
    void availIndexMovingBackwards() throws Exception {
        fe.setAvailIdx(TX, fe.availIdx(TX) - 1);   // 0xFFFF entries "ahead"
        assertTxFault(QueueFault.AVAIL_INDEX_JUMP);
    }

    @Test
    void writableDescriptorInATransmitChain() throws Exception {
        int a = fe.takeDescriptor(TX);
        int b = fe.takeDescriptor(TX);
        fe.writeDescriptor(TX, a, fe.allocate(64), 64, DESC_F_NEXT, b);
        fe.writeDescriptor(TX, b, fe.allocate(64), 64, DESC_F_WRITE, 0);
        fe.publish(TX, a);
        assertTxFault(QueueFault.WRONG_DIRECTION);
    }

    @Test
    void faultInTheMiddleOfABurstDropsTheWholeBurstAndKeepsThePosition() throws Exception {
        fe.transmit(frame(60, 3));
        fe.transmit(frame(60, 4));
        fe.publish(TX, QUEUE_SIZE + 7);
        fe.transmit(frame(60, 5));
        assertTxFault(QueueFault.HEAD_OUT_OF_RANGE);
    }

    // ---------------------------------------------------------------- guest RX chains

    @Test
    void readOnlyDescriptorInAReceiveChain() throws Exception {
        fe.postRxChainWithFlags(0, 2048);
        assertRxFault(QueueFault.WRONG_DIRECTION);
    }

    @Test
    void readOnlyDescriptorAfterAWritableOneInAReceiveChain() throws Exception {
        int a = fe.takeDescriptor(RX);
        int b = fe.takeDescriptor(RX);
        fe.writeDescriptor(RX, a, fe.allocate(16), 16, DESC_F_WRITE | DESC_F_NEXT, b);
        fe.writeDescriptor(RX, b, fe.allocate(2048), 2048, 0, 0);
        fe.publish(RX, a);
        assertRxFault(QueueFault.WRONG_DIRECTION);
    }

    @Test
    void receiveHeadOutOfRange() throws Exception {
        fe.publish(RX, QUEUE_SIZE);
        assertRxFault(QueueFault.HEAD_OUT_OF_RANGE);
    }

    @Test
    void receiveBufferOutsideGuestMemory() throws Exception {
        int id = fe.takeDescriptor(RX);
        fe.writeDescriptor(RX, id, GUEST_PHYS_BASE + fe.options().memorySize - 100, 2048, DESC_F_WRITE, 0);
        fe.publish(RX, id);
        assertRxFault(QueueFault.ADDRESS_OUT_OF_MEMORY);
    }

    @Test
    void receiveAvailIndexJump() throws Exception {
        fe.setAvailIdx(RX, fe.availIdx(RX) + QUEUE_SIZE + 1);
        assertRxFault(QueueFault.AVAIL_INDEX_JUMP);
    }

    // ---------------------------------------------------------------- ring addresses (SET_VRING_ADDR)

    @Test
    void ringOutsideGuestMemoryStopsTheDevice() throws Exception {
        long end = USER_BASE + fe.options().memorySize;
        assertBadRingAddress(end, fe.usedUserAddr(TX), fe.availUserAddr(TX));
    }

    @Test
    void usedRingStraddlingTheEndOfGuestMemoryStopsTheDevice() throws Exception {
        long end = USER_BASE + fe.options().memorySize;
        assertBadRingAddress(fe.descUserAddr(TX), end - 64, fe.availUserAddr(TX));
    }

    @Test
    void ringsGivenAsGuestPhysicalAddressesStopTheDevice() throws Exception {
        long gpaOfDesc = GUEST_PHYS_BASE + (fe.descUserAddr(TX) - USER_BASE);
        assertBadRingAddress(gpaOfDesc, fe.usedUserAddr(TX), fe.availUserAddr(TX));
    }

    @Test
    void misalignedDescriptorTableStopsTheDevice() throws Exception {
        assertBadRingAddress(fe.descUserAddr(TX) + 8, fe.usedUserAddr(TX), fe.availUserAddr(TX));
    }

    @Test
    void misalignedUsedRingStopsTheDevice() throws Exception {
        assertBadRingAddress(fe.descUserAddr(TX), fe.usedUserAddr(TX) + 2, fe.availUserAddr(TX));
    }

    @Test
    void misalignedAvailRingStopsTheDevice() throws Exception {
        assertBadRingAddress(fe.descUserAddr(TX), fe.usedUserAddr(TX), fe.availUserAddr(TX) + 1);
    }

    @Test
    void badRingAddressDuringSetUpKeepsTheDeviceFromStarting() throws Exception {
        fx.disconnectAndAssertReleased(fe);
        fe = fx.connect();
        fe.getFeatures();
        TestFrontend.expectOk(fe.setFeatures(fe.options().features()), "SET_FEATURES");
        TestFrontend.expectOk(fe.setProtocolFeatures(1L << 3), "SET_PROTOCOL_FEATURES");
        // acks are now on in the port, but this frontend instance only sends NEED_REPLY after its own set-up;
        // a GET round trip orders everything
        TestFrontend.expectOk(fe.setMemTable(), "SET_MEM_TABLE");
        fe.setVringNum(RX, QUEUE_SIZE);
        fe.setVringAddr(RX, fe.descUserAddr(RX), fe.usedUserAddr(RX), fe.availUserAddr(RX));
        fe.setVringKick(RX);
        fe.setVringNum(TX, QUEUE_SIZE);
        fe.setVringAddr(TX, fe.descUserAddr(TX) + 4, fe.usedUserAddr(TX), fe.availUserAddr(TX));
        fe.setVringKick(TX);
        fe.setVringEnable(RX, true);
        fe.setVringEnable(TX, true);
        fe.sync();
        assertFalse(device.isRunning(), "a misaligned ring never starts");
        assertTrue(device.isBroken());
        fe.setVringAddr(TX, fe.descUserAddr(TX), fe.usedUserAddr(TX), fe.availUserAddr(TX));
        fe.sync();
        assertTrue(device.isRunning(), "starts once the frontend gives a usable ring");
        assertFalse(device.isBroken());
    }

    // ---------------------------------------------------------------- helpers

    private void publishSingle(long addr, int length, int flags) {
        int id = fe.takeDescriptor(TX);
        fe.writeDescriptor(TX, id, addr, length, flags, 0);
        fe.publish(TX, id);
    }

    private void publishIndirect(long table, int length, int extraFlags) {
        publishIndirect(table, length, extraFlags, 0);
    }

    private void publishIndirect(long table, int length, int extraFlags, int next) {
        int id = fe.takeDescriptor(TX);
        fe.writeDescriptor(TX, id, table, length, DESC_F_INDIRECT | extraFlags, next);
        fe.publish(TX, id);
    }

    /** The TX queue must be faulted with {@code expected}, stay dead, and recover after a ring reset. */
    private void assertTxFault(QueueFault expected) throws IOException {
        VirtQueue tx = device.txQueue();
        int usedBefore = fe.usedIdx(TX);
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

        // stays stopped: a good frame after the fault is not taken, nothing is returned
        fe.transmit(frame(60, 77));
        assertEquals(0, tx.dequeueBurst(batch));
        assertFalse(tx.hasAvailable());
        tx.completeTx(batch);
        tx.setKicksWanted(true);
        assertEquals(usedBefore, fe.usedIdx(TX), "a broken queue writes nothing into the used ring");
        assertEquals(expected, tx.fault(), "the first fault is the one kept");
        assertEquals(1, tx.faults, "counted once");
        device.reportFault();
        assertEquals(0, fe.drainErrors(TX), "reported once");

        int base = fe.resetRing(TX);
        assertEquals(1, base, "GET_VRING_BASE: the position after the last good burst");
        assertTrue(device.isRunning(), "running again after the ring was set up again");
        assertFalse(device.isBroken());
        assertEquals(QueueFault.NONE, tx.fault());
        byte[][] frames = {frame(60, 10), frame(1500, 11)};
        fe.transmit(frames[0]);
        fe.transmit(frames[1], 3, true);
        assertEquals(2, tx.dequeueBurst(batch));
        assertArrayEquals(frames[0], copy(batch, 0));
        assertArrayEquals(frames[1], copy(batch, 1));
        tx.completeTx(batch);
        assertEquals(2, fe.txCompleted().size());
        checkRxStillWorks();
    }

    private void assertRxFault(QueueFault expected) throws IOException {
        VirtQueue rx = device.rxQueue();
        int usedBefore = fe.usedIdx(RX);
        byte[] f = frame(100, 5);
        assertFalse(rx.enqueue(segment(f), 0, f.length));
        rx.flushRx();
        assertEquals(expected, rx.fault(), rx.faultDetail());
        assertEquals(1, rx.faults);
        assertFalse(device.txQueue().isBroken(), "the other queue is unaffected");
        device.reportFault();
        assertTrue(device.isBroken());
        assertEquals(1, fe.drainErrors(RX));

        fe.postRxBuffers(2, 2048);
        assertFalse(rx.enqueue(segment(f), 0, f.length), "stays stopped");
        rx.flushRx();
        assertEquals(usedBefore, fe.usedIdx(RX));
        assertEquals(expected, rx.fault());

        int base = fe.resetRing(RX);
        assertEquals(1, base);
        assertTrue(device.isRunning());
        assertFalse(device.isBroken());
        checkRxStillWorks();
        fe.transmit(frame(60, 6));
        assertEquals(1, device.txQueue().dequeueBurst(batch), "TX kept working throughout");
        device.txQueue().completeTx(batch);
        fe.txCompleted();
    }

    private void checkRxStillWorks() {
        VirtQueue rx = device.rxQueue();
        byte[] f = frame(200, 9);
        fe.postRxBuffers(1, 2048);
        assertTrue(rx.enqueue(segment(f), 0, f.length));
        rx.flushRx();
        List<TestFrontend.RxFrame> frames = fe.receive();
        assertFalse(frames.isEmpty());
        assertArrayEquals(f, frames.get(frames.size() - 1).data());
    }

    /** SET_VRING_ADDR with unusable rings on a running device: stopped and broken, until good addresses come. */
    private void assertBadRingAddress(long desc, long used, long avail) throws IOException {
        fe.setVringAddr(TX, desc, used, avail);
        assertFalse(device.isRunning(), "not running on an unusable ring");
        assertTrue(device.isBroken());
        assertEquals(0, device.txQueue().dequeueBurst(batch));
        assertFalse(device.txQueue().isConfigured());

        TestFrontend.expectOk(fe.setVringAddr(TX, fe.descUserAddr(TX), fe.usedUserAddr(TX), fe.availUserAddr(TX)),
                "SET_VRING_ADDR");
        assertTrue(device.isRunning(), "running again with usable rings");
        assertFalse(device.isBroken());
        fe.transmit(frame(80, 12));
        assertEquals(1, device.txQueue().dequeueBurst(batch));
        assertArrayEquals(frame(80, 12), copy(batch, 0));
        device.txQueue().completeTx(batch);
        assertEquals(1, fe.txCompleted().size());
        checkRxStillWorks();
    }
}
