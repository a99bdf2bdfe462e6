package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.protocol.VhostUserRequest;
import io.vswitch.testing.TestFrontend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static io.vswitch.engine.TestPmdForwardingTest.value;
import static io.vswitch.engine.VlanTest.receiveOne;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * SEND_RARP (what QEMU sends to the destination's backend after a migration when the guest cannot announce
 * itself): the switch sends a RARP from that MAC on the port. The bridge moves the MAC there at once and
 * the RARP is flooded, so a frame for that MAC goes to the new port without being flooded.
 */
@Timeout(60)
class SendRarpTest {
    private static final byte[] MAC_A = VlanTest.mac("52:54:00:aa:00:01");
    private static final byte[] MAC_X = VlanTest.mac("52:54:00:aa:00:99");

    @TempDir
    Path dir;

    @Test
    void aRarpMovesTheMacToTheAnnouncingPortAndIsFlooded() throws Exception {
        String yaml = TestTopologies.learning(dir, "old", "new", "other");
        try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "rarp.yaml"));
             TestFrontend oldPort = TestFrontend.connect(dir.resolve("old.sock")).setUp();
             TestFrontend newPort = TestFrontend.connect(dir.resolve("new.sock")).setUp();
             TestFrontend other = TestFrontend.connect(dir.resolve("other.sock")).setUp()) {
            for (TestFrontend f : List.of(oldPort, newPort, other)) {
                f.postRxBuffers(32, 2048);
            }
            for (String port : List.of("old", "new", "other")) {
                QemuGuestsTest.awaitCounter(sw.countersPath(), port, "link_up", 1);
            }
            // A lives behind "old": the bridge learns it there
            oldPort.transmit(VlanTest.frame(VlanTest.mac("ff:ff:ff:ff:ff:ff"), MAC_A, -1, "hello"));
            receiveOne(newPort);
            receiveOne(other);
            QemuGuestsTest.awaitCounter(sw.countersPath(), "old", "macs_learned", 1);

            // A migrated to "new", and cannot announce itself: the frontend asks the backend to
            byte[] payload = Arrays.copyOf(MAC_A, 8);
            assertEquals(0, newPort.send(VhostUserRequest.SEND_RARP, payload), "SEND_RARP acked");
            byte[] rarp = receiveOne(other);
            assertArrayEquals(VlanTest.mac("ff:ff:ff:ff:ff:ff"), Arrays.copyOfRange(rarp, 0, 6), "broadcast");
            assertArrayEquals(MAC_A, Arrays.copyOfRange(rarp, 6, 12), "from A's MAC");
            assertEquals(0x80, rarp[12] & 0xFF);
            assertEquals(0x35, rarp[13] & 0xFF, "EtherType RARP");
            assertEquals(3, rarp[21], "op: reverse request");
            assertArrayEquals(MAC_A, Arrays.copyOfRange(rarp, 22, 28), "sender hardware address");
            assertArrayEquals(MAC_A, Arrays.copyOfRange(rarp, 32, 38), "target hardware address");
            assertEquals(60, rarp.length);
            receiveOne(oldPort);   // flooded to the old port too (another switch behind it would learn)
            QemuGuestsTest.awaitCounter(sw.countersPath(), "new", "mac_moves", 1);

            // a frame for A now goes to "new" only
            other.transmit(VlanTest.frame(MAC_A, MAC_X, -1, "to A"));
            byte[] toA = receiveOne(newPort);
            assertArrayEquals(MAC_A, Arrays.copyOfRange(toA, 0, 6));
            Thread.sleep(200);   // give a wrong copy time to show up before checking that none did
            assertTrue(oldPort.receive().isEmpty(), "not flooded to the old port");
            CountersFile.Snapshot snap = CountersFile.read(sw.countersPath());
            assertEquals(1, value(snap, "new", "mac_moves"));

            // a multicast MAC is refused
            byte[] multicast = Arrays.copyOf(VlanTest.mac("01:00:5e:00:00:01"), 8);
            assertNotEquals(0, newPort.send(VhostUserRequest.SEND_RARP, multicast), "SEND_RARP of a multicast MAC refused");
        }
    }
}
