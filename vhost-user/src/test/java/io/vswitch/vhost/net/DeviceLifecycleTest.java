package io.vswitch.vhost.net;

import io.vswitch.sys.EventFd;
import io.vswitch.sys.OpenFds;
import io.vswitch.vhost.VhostUserPort;
import io.vswitch.protocol.VhostUserMessage;
import io.vswitch.protocol.VhostUserRequest;
import io.vswitch.vhost.fixtures.PortFixture;
import io.vswitch.testing.TestFrontend;
import io.vswitch.testing.TestFrontend.Region;
import io.vswitch.vhost.virtio.PacketBatch;
import io.vswitch.vhost.virtio.QueueFault;
import io.vswitch.vhost.virtio.VirtQueue;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static io.vswitch.vhost.fixtures.PortFixture.copy;
import static io.vswitch.testing.Frames.frame;
import static io.vswitch.testing.Frames.segment;
import static io.vswitch.vhost.fixtures.PortFixture.await;
import static io.vswitch.testing.TestFrontend.GUEST_PHYS_BASE;
import static io.vswitch.testing.TestFrontend.RX;
import static io.vswitch.testing.TestFrontend.TX;
import static io.vswitch.testing.TestFrontend.USER_BASE;
import static io.vswitch.testing.TestFrontend.expectOk;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Start, stop, reconfiguration and disconnect of a device as a frontend drives it. */
@Timeout(20)
class DeviceLifecycleTest {
    @TempDir
    Path dir;

    private final PacketBatch batch = new PacketBatch(16);

    @Test
    void disconnectResetsTheDeviceAndReleasesDescriptorsAndMemory() throws Exception {
        try (PortFixture fx = new PortFixture(dir)) {
            VirtioNetDevice device = fx.device();
            TestFrontend fe = fx.connectAndSetUp(new TestFrontend.Options().mergeable(true).eventIdx(true));
            assertTrue(fx.port().isConnected());
            assertTrue(OpenFds.count() > fx.baselineFds(), "the port holds the memfd mapping's eventfds and socket");
            // leave work in flight on both queues: frames not taken, buffers not filled
            fe.transmit(frame(60, 1));
            fe.transmit(frame(60, 2));
            assertEquals(1, device.txQueue().dequeueBurst(new PacketBatch(1)));
            fe.postRxBuffers(4, 2048);
            fx.disconnectAndAssertReleased(fe);
            assertEquals(0, device.features());
            assertEquals(0, device.protocolFeatures());
            assertFalse(device.txQueue().isConfigured());
            assertFalse(device.rxQueue().isConfigured());
            assertEquals(0, device.txQueue().dequeueBurst(batch), "the worker finds nothing to do");
            assertFalse(device.rxQueue().enqueue(segment(frame(60, 3)), 0, 60));

            TestFrontend again = fx.connectAndSetUp(new TestFrontend.Options());
            assertTrue(device.isRunning(), "a new frontend starts from scratch");
            assertEquals(0, device.txQueue().lastAvailIndex());
            exchange(again, device);
            fx.disconnectAndAssertReleased(again);
        }
    }

    @Test
    void disconnectOfAFrontendWhoseQueueFaultedReleasesEverything() throws Exception {
        try (PortFixture fx = new PortFixture(dir)) {
            VirtioNetDevice device = fx.device();
            TestFrontend fe = fx.connectAndSetUp();
            fe.publish(TX, 5000);
            assertEquals(0, device.txQueue().dequeueBurst(batch));
            device.reportFault();
            assertTrue(device.isBroken());
            fx.disconnectAndAssertReleased(fe);

            TestFrontend next = fx.connectAndSetUp();
            assertTrue(device.isRunning());
            assertFalse(device.isBroken(), "the next frontend starts with a healthy device");
            assertEquals(QueueFault.NONE, device.txQueue().fault());
            exchange(next, device);
            fx.disconnectAndAssertReleased(next);
        }
    }

    @Test
    void getVringBaseReturnsTheNextAvailIndexStopsTheQueueAndTheRingResumesFromThere() throws Exception {
        try (PortFixture fx = new PortFixture(dir)) {
            VirtioNetDevice device = fx.device();
            TestFrontend fe = fx.connectAndSetUp();
            VirtQueue tx = device.txQueue();
            for (int i = 0; i < 3; i++) {
                fe.transmit(frame(60, i));
            }
            assertEquals(3, tx.dequeueBurst(batch));
            tx.completeTx(batch);
            assertEquals(3, fe.txCompleted().size());
            fe.transmit(frame(70, 3));   // made available, not taken yet
            fe.transmit(frame(70, 4));

            assertEquals(3, fe.getVringBase(TX), "the next entry the device would have taken");
            assertFalse(device.isRunning(), "GET_VRING_BASE stops the ring");
            assertFalse(tx.isConfigured());
            assertEquals(0, tx.dequeueBurst(batch), "and nothing more is taken from it");
            assertEquals(3, fe.usedIdx(TX));
            assertEquals(3, fe.getVringBase(TX), "asking again changes nothing");

            // the frontend starts the ring again where it stopped (what QEMU does on resume)
            fe.setUpRing(TX, 3);
            fe.sync();
            assertTrue(device.isRunning());
            assertEquals(2, tx.dequeueBurst(batch), "the two frames made available while stopped");
            assertArrayEquals(frame(70, 3), copy(batch, 0));
            assertArrayEquals(frame(70, 4), copy(batch, 1));
            tx.completeTx(batch);
            assertEquals(2, fe.txCompleted().size());

            // the receive queue reports its own position
            fe.postRxBuffers(2, 2048);
            assertTrue(device.rxQueue().enqueue(segment(frame(60, 9)), 0, 60));
            device.rxQueue().flushRx();
            assertEquals(1, fe.receive().size());
            assertEquals(1, fe.getVringBase(RX));
            assertFalse(device.isRunning());
            fx.disconnectAndAssertReleased(fe);
        }
    }

    @Test
    void setMemTableWhileRunningTranslatesTheRingsAgainAndTrafficContinues() throws Exception {
        try (PortFixture fx = new PortFixture(dir)) {
            VirtioNetDevice device = fx.device();
            TestFrontend fe = fx.connectAndSetUp();
            VirtQueue tx = device.txQueue();
            long size = fe.options().memorySize;
            long offset = fe.options().mmapOffset;

            fe.transmit(frame(60, 1));
            fe.transmit(frame(60, 2));
            PacketBatch one = new PacketBatch(1);
            assertEquals(1, tx.dequeueBurst(one));
            tx.completeTx(one);
            long oldRegionAddress = device.memory().region(0).segment().address();

            // the same RAM again, now described as two regions (as after memory hot-plug)
            Region low = new Region(GUEST_PHYS_BASE, size / 2, USER_BASE, offset);
            Region high = new Region(GUEST_PHYS_BASE + size / 2, size / 2, USER_BASE + size / 2, offset + size / 2);
            int fd2 = TestFrontend.dup(fe.memfd());
            try {
                expectOk(fe.setMemTable(List.of(low, high), fe.memfd(), fd2), "SET_MEM_TABLE");
            } finally {
                io.vswitch.sys.Libc.close(fd2);
            }
            assertTrue(device.isRunning(), "running on the new table");
            assertEquals(2, device.memory().regionCount());
            assertEquals(3, PortFixture.mappings(fe.memoryName()), "the frontend's mapping and the port's two; the old one is gone");
            assertTrue(device.memory().region(0).segment().address() != oldRegionAddress, "really mapped anew");

            assertEquals(1, tx.dequeueBurst(one), "the frame made available before the change is still there");
            assertArrayEquals(frame(60, 2), copy(one, 0));
            tx.completeTx(one);
            assertEquals(2, fe.usedIdx(TX));
            assertEquals(2, fe.txCompleted().size());

            fe.allocate(size / 2);   // later buffers land in the high region
            byte[] f = frame(1500, 3);
            int head = fe.transmit(f, 2, true);
            assertEquals(1, tx.dequeueBurst(batch));
            assertArrayEquals(f, copy(batch, 0));
            tx.completeTx(batch);
            assertEquals(head, fe.txCompleted().get(0).id());
            exchange(fe, device);

            // a table that no longer holds the rings stops the device; a good one starts it again
            Region elsewhere = new Region(GUEST_PHYS_BASE, size, USER_BASE + (1L << 30), offset);
            expectOk(fe.setMemTable(List.of(elsewhere), fe.memfd()), "SET_MEM_TABLE accepted, its rings are not");
            assertFalse(device.isRunning());
            assertTrue(device.isBroken());
            expectOk(fe.setMemTable(), "SET_MEM_TABLE");
            assertTrue(device.isRunning());
            assertFalse(device.isBroken());
            exchange(fe, device);
            assertEquals(2, PortFixture.mappings(fe.memoryName()));
            fx.disconnectAndAssertReleased(fe);
        }
    }

    @Test
    void resetOwnerForgetsTheSetUpOnTheSameConnection() throws Exception {
        try (PortFixture fx = new PortFixture(dir)) {
            VirtioNetDevice device = fx.device();
            TestFrontend fe = fx.connectAndSetUp();
            int fds = OpenFds.count();
            // no NEED_REPLY: the reset forgets the protocol features, REPLY_ACK with them
            fe.sendRaw(VhostUserRequest.RESET_OWNER.code(), VhostUserMessage.VERSION, 0, new byte[0]);
            fe.sync();
            assertFalse(device.isRunning());
            assertEquals(0, device.memory().regionCount());
            assertEquals(1, PortFixture.mappings(fe.memoryName()), "only the frontend's own mapping is left");
            assertEquals(fds - 3 * 2, OpenFds.count(), "the port closed the call, err and kick eventfds of both queues");
            assertTrue(fx.port().isConnected());
            fe.close();
            fx.assertReleased(fe.memoryName());

            TestFrontend next = fx.connectAndSetUp();
            exchange(next, device);
            fx.disconnectAndAssertReleased(next);
        }
    }

    @Test
    void disablingARingStopsTheDeviceAndEnablingResumesWhereItWas() throws Exception {
        try (PortFixture fx = new PortFixture(dir)) {
            VirtioNetDevice device = fx.device();
            TestFrontend fe = fx.connectAndSetUp();
            exchange(fe, device);
            expectOk(fe.setVringEnable(RX, false), "SET_VRING_ENABLE 0");
            assertFalse(device.isRunning());
            fe.transmit(frame(64, 1));
            expectOk(fe.setVringEnable(RX, true), "SET_VRING_ENABLE 1");
            assertTrue(device.isRunning());
            assertEquals(1, device.txQueue().dequeueBurst(batch));
            assertArrayEquals(frame(64, 1), copy(batch, 0));
            device.txQueue().completeTx(batch);
            fe.txCompleted();
            exchange(fe, device);
            fx.disconnectAndAssertReleased(fe);
        }
    }

    @Test
    void replacingCallAndKickEventfdsClosesTheOldOnesAndSignalsTheNewCall() throws Exception {
        try (PortFixture fx = new PortFixture(dir)) {
            VirtioNetDevice device = fx.device();
            TestFrontend fe = fx.connectAndSetUp();
            int fds = OpenFds.count();
            try (EventFd newCall = EventFd.create()) {
                expectOk(fe.send(VhostUserRequest.SET_VRING_CALL, TestFrontend.u64(RX), newCall.fd()), "SET_VRING_CALL");
                assertEquals(fds + 1, OpenFds.count(), "the port swapped its eventfd: only the test's new one is extra");
                expectOk(fe.setVringKick(TX), "SET_VRING_KICK");
                assertEquals(fds + 1, OpenFds.count(), "kick swapped on both sides");
                assertTrue(device.isRunning());
                fe.postRxBuffers(1, 2048);
                assertTrue(device.rxQueue().enqueue(segment(frame(60, 1)), 0, 60));
                device.rxQueue().flushRx();
                assertEquals(1, newCall.drain(), "the new call eventfd is signalled");
                assertEquals(0, fe.drainCalls(RX), "the old one not");
                assertEquals(1, fe.receive().size());
            }
            fx.disconnectAndAssertReleased(fe);
        }
    }

    @Test
    void closingThePortDisconnectsTheFrontendAndReleasesEverything() throws Exception {
        PortFixture.warmUp(dir);
        int baseline = OpenFds.count();
        Path path = dir.resolve("closing.sock");
        VhostUserPort port = new VhostUserPort("closing", path, VhostUserPort.Role.SERVER).start();
        TestFrontend fe = TestFrontend.connect(path).setUp();
        assertTrue(port.device().isRunning());
        port.close();
        assertTrue(fe.closedByPeer(5000), "the frontend sees the connection close");
        assertFalse(port.device().isRunning());
        assertEquals(0, port.device().memory().regionCount());
        assertFalse(path.toFile().exists(), "socket file removed");
        String name = fe.memoryName();
        fe.close();
        assertEquals(0, PortFixture.mappings(name));
        await(() -> OpenFds.count() == baseline, "descriptors back to the baseline");
    }

    /** One frame each way. */
    private static void exchange(TestFrontend fe, VirtioNetDevice device) {
        PacketBatch b = new PacketBatch(4);
        byte[] out = frame(100, 50);
        fe.transmit(out, 2, false);
        assertEquals(1, device.txQueue().dequeueBurst(b));
        assertArrayEquals(out, copy(b, 0));
        device.txQueue().completeTx(b);
        assertEquals(1, fe.txCompleted().size());
        byte[] in = frame(200, 51);
        fe.postRxBuffers(1, 2048);
        assertTrue(device.rxQueue().enqueue(segment(in), 0, in.length));
        device.rxQueue().flushRx();
        List<TestFrontend.RxFrame> got = fe.receive();
        assertEquals(1, got.size());
        assertArrayEquals(in, got.get(0).data());
    }
}
