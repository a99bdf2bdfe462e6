package io.vswitch.vhost.net;

import io.vswitch.protocol.Features;
import io.vswitch.protocol.VhostUserRequest;
import io.vswitch.vhost.fixtures.PortFixture;
import io.vswitch.testing.TestFrontend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static io.vswitch.testing.TestFrontend.u64;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * VIRTIO_NET_F_MTU with PROTOCOL_F_NET_MTU: the frontend checks the MTU it gives the guest with NET_SET_MTU,
 * which is accepted up to the port's mtu and refused (counted, nacked, the device left alone) outside 68..mtu.
 * QEMU then does not start the device and says "MTU not supported by the backend".
 */
@Timeout(30)
class NetMtuTest {
    @TempDir
    Path dir;

    @Test
    void theGuestMtuIsAcceptedUpToThePortsMtuAndRefusedAbove() throws Exception {
        try (PortFixture fx = new PortFixture(dir)) {
            VirtioNetDevice device = fx.device();
            device.setMaxMtu(9000);
            TestFrontend fe = fx.connectAndSetUp();
            assertTrue(Features.has(fe.getFeatures(), Features.VIRTIO_NET_F_MTU));
            assertTrue(Features.has(fe.getProtocolFeatures(), Features.PROTOCOL_F_MTU));

            assertEquals(0, fe.send(VhostUserRequest.NET_SET_MTU, u64(9000)), "the port's own MTU");
            assertEquals(9000, device.mtu());
            assertEquals(0, fe.send(VhostUserRequest.NET_SET_MTU, u64(1500)));
            assertEquals(1500, device.mtu());

            long refusedBefore = fx.port().counters().refusedMessages;
            for (long bad : new long[] {9001, 67, 0, 65536, -1L, 1L << 32 | 1500}) {
                assertNotEquals(0, fe.send(VhostUserRequest.NET_SET_MTU, u64(bad)), "MTU " + Long.toUnsignedString(bad));
                assertEquals(1500, device.mtu(), "unchanged by a refused MTU");
            }
            assertEquals(refusedBefore + 6, fx.port().counters().refusedMessages);
            assertTrue(device.isRunning(), "a refused MTU leaves the running device alone");
            assertNotEquals(0, fe.send(VhostUserRequest.NET_SET_MTU, new byte[4]), "a short payload is refused");
            fx.disconnectAndAssertReleased(fe);
            assertEquals(0, device.mtu(), "forgotten with the frontend");
        }
    }

    @Test
    void aPortWithTheDefaultMtuRefusesJumboFrames() throws Exception {
        try (PortFixture fx = new PortFixture(dir)) {
            TestFrontend fe = fx.connectAndSetUp();
            assertNotEquals(0, fe.send(VhostUserRequest.NET_SET_MTU, u64(9000)));
            assertEquals(0, fe.send(VhostUserRequest.NET_SET_MTU, u64(1500)));
            fx.disconnectAndAssertReleased(fe);
        }
    }
}
