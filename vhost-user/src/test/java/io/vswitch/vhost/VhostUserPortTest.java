package io.vswitch.vhost;

import io.vswitch.sys.OpenFds;
import io.vswitch.vhost.net.VirtioNetDevice;
import io.vswitch.sys.UnixSocket;
import io.vswitch.protocol.Features;
import io.vswitch.vhost.fixtures.PortFixture;
import io.vswitch.testing.TestFrontend;
import io.vswitch.vhost.virtio.PacketBatch;
import io.vswitch.vhost.virtio.VirtQueue;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static io.vswitch.vhost.fixtures.PortFixture.copy;
import static io.vswitch.testing.Frames.frame;
import static io.vswitch.testing.Frames.segment;
import static io.vswitch.vhost.fixtures.PortFixture.await;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A port in both roles driven by the test frontend: start-up, traffic both ways, disconnect and reconnect. */
@Timeout(20)
class VhostUserPortTest {
    @TempDir
    Path dir;

    @Test
    void serverRoleReachesRunningAndCarriesTrafficBothWays() throws Exception {
        try (PortFixture fx = new PortFixture(dir)) {
            VirtioNetDevice device = fx.device();
            assertFalse(device.isRunning());
            TestFrontend fe = fx.connectAndSetUp();
            assertTrue(fx.port().isConnected());
            assertTrue(device.isRunning(), "running once both rings are started and enabled");
            assertFalse(device.isBroken());
            assertEquals(1, device.memory().regionCount());
            assertEquals(TestFrontend.GUEST_PHYS_BASE, device.memory().region(0).guestPhysAddr());
            assertEquals(TestFrontend.USER_BASE, device.memory().region(0).userAddr());
            assertEquals(2, PortFixture.mappings(fe.memoryName()), "the frontend's mapping and the port's");
            assertTrue(Features.has(device.features(), Features.VIRTIO_F_VERSION_1));
            assertTrue(device.hasProtocolFeature(Features.PROTOCOL_F_REPLY_ACK));

            exchangeOneFrameEachWay(fe, device, 1);
            assertEquals(1, fx.port().counters().connections);
            fx.disconnectAndAssertReleased(fe);
            assertEquals(1, fx.port().counters().disconnects);
        }
    }

    @Test
    void withoutProtocolFeaturesRingsAreEnabledFromTheStart() throws Exception {
        try (PortFixture fx = new PortFixture(dir)) {
            TestFrontend fe = fx.connectAndSetUp(new TestFrontend.Options().protocolFeatures(false));
            assertTrue(fx.device().isRunning(), "no SET_VRING_ENABLE without PROTOCOL_FEATURES");
            assertEquals(0, fx.device().protocolFeatures());
            exchangeOneFrameEachWay(fe, fx.device(), 2);
            fx.disconnectAndAssertReleased(fe);
        }
    }

    @Test
    void aNewFrontendCanConnectAfterTheFirstLeft() throws Exception {
        try (PortFixture fx = new PortFixture(dir)) {
            for (int round = 0; round < 3; round++) {
                TestFrontend fe = fx.connectAndSetUp(new TestFrontend.Options().mergeable(round % 2 == 1));
                assertTrue(fx.device().isRunning());
                exchangeOneFrameEachWay(fe, fx.device(), 10 + round);
                fx.disconnectAndAssertReleased(fe);
            }
            assertEquals(3, fx.port().counters().connections);
        }
    }

    @Test
    void clientRoleConnectsToTheFrontendAndReconnectsWhenItComesBack() throws Exception {
        Path path = dir.resolve("frontend.sock");
        PortFixture.warmUp(dir);
        int baseline = OpenFds.count();
        UnixSocket listener = UnixSocket.listen(path, 1);
        String[] names = new String[3];
        try (VhostUserPort port = new VhostUserPort("c0", path, VhostUserPort.Role.CLIENT).start()) {
            VirtioNetDevice device = port.device();

            // 1: the port connects to the listening frontend
            TestFrontend fe = accept(listener);
            names[0] = fe.memoryName();
            fe.setUp();
            assertTrue(device.isRunning());
            exchangeOneFrameEachWay(fe, device, 20);
            fe.close();
            await(() -> device.memory().regionCount() == 0 && !device.isRunning(), "reset after the frontend closed");

            // 2: the listener is still there: the port connects again at once
            fe = accept(listener);
            names[1] = fe.memoryName();
            fe.setUp();
            assertTrue(device.isRunning());
            exchangeOneFrameEachWay(fe, device, 21);

            // 3: the frontend goes away completely, then comes back on the same path
            fe.close();
            listener.close();
            Files.delete(path);
            await(() -> device.memory().regionCount() == 0 && !port.isConnected(), "reset after the frontend went away");
            Thread.sleep(250);   // the port retries with backoff meanwhile
            listener = UnixSocket.listen(path, 1);
            fe = accept(listener);
            names[2] = fe.memoryName();
            fe.setUp();
            assertTrue(device.isRunning());
            exchangeOneFrameEachWay(fe, device, 22);
            assertTrue(port.counters().connections >= 3, "connected again each time the frontend was there");
            fe.close();
            await(() -> device.memory().regionCount() == 0 && !device.isRunning(), "reset after the last frontend closed");
        } finally {
            listener.close();
        }
        for (String name : names) {
            assertEquals(0, PortFixture.mappings(name), "no mapping left of " + name);
        }
        await(() -> OpenFds.count() == baseline, "descriptors back to the baseline");
    }

    private static TestFrontend accept(UnixSocket listener) {
        assertTrue(TestFrontend.waitReadable(listener.fd(), 5000), "the port connected");
        return new TestFrontend(listener.accept(), new TestFrontend.Options());
    }

    /** One frame guest TX -> device, one frame device -> guest RX, checked byte for byte. */
    static void exchangeOneFrameEachWay(TestFrontend fe, VirtioNetDevice device, int seed) {
        byte[] out = frame(98, seed);
        int head = fe.transmit(out);
        PacketBatch batch = new PacketBatch(8);
        VirtQueue tx = device.txQueue();
        assertEquals(1, tx.dequeueBurst(batch));
        assertArrayEquals(out, copy(batch, 0));
        tx.completeTx(batch);
        List<TestFrontend.Used> done = fe.txCompleted();
        assertEquals(1, done.size());
        assertEquals(head, done.get(0).id());

        byte[] in = frame(342, seed + 1000);
        fe.postRxBuffers(1, 2048);
        VirtQueue rx = device.rxQueue();
        assertTrue(rx.enqueue(segment(in), 0, in.length));
        rx.flushRx();
        List<TestFrontend.RxFrame> frames = fe.receive();
        assertEquals(1, frames.size());
        assertArrayEquals(in, frames.get(0).data());
        assertEquals(1, frames.get(0).numBuffers());
    }
}
