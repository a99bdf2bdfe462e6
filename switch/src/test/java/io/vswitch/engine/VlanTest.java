package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.testing.TestFrontend;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

import static io.vswitch.engine.TestPmdForwardingTest.value;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Access and trunk ports on a learning bridge: a tag is added toward trunks and removed toward access
 * ports, VLANs never leak into each other, and frames that break a port's VLAN rule are dropped and counted.
 * Run with one worker and with the trunk on a second worker (tags then cross the inter-worker rings).
 */
class VlanTest {
    private static final byte[] BROADCAST = mac("ff:ff:ff:ff:ff:ff");
    private static final byte[] MAC_A = mac("02:00:00:00:00:0a");
    private static final byte[] MAC_B = mac("02:00:00:00:00:0b");
    private static final byte[] MAC_X = mac("02:00:00:00:00:99");

    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0} worker(s)")
    @ValueSource(ints = {1, 2})
    void accessAndTrunkPorts(int workers) throws Exception {
        String yaml = """
                switch:
                  mode: learning
                  notify: %s
                  workers: %d
                  runtime-dir: %s
                ports:
                  - name: a
                    socket: %s
                    vlan: 10
                    worker: 0
                  - name: b
                    socket: %s
                    vlan: 20
                    worker: 0
                  - name: c
                    socket: %s
                    trunk: [10, 20]
                    worker: %d
                """.formatted(workers > 1 ? "monitor" : "poll", workers, dir.resolve("run"), dir.resolve("a.sock"),
                dir.resolve("b.sock"), dir.resolve("c.sock"), workers - 1);
        try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "vlan.yaml"));
             TestFrontend a = TestFrontend.connect(dir.resolve("a.sock")).setUp();
             TestFrontend b = TestFrontend.connect(dir.resolve("b.sock")).setUp();
             TestFrontend c = TestFrontend.connect(dir.resolve("c.sock")).setUp()) {
            for (TestFrontend f : List.of(a, b, c)) {
                f.postRxBuffers(32, 2048);
            }
            for (String port : List.of("a", "b", "c")) {
                QemuGuestsTest.awaitCounter(sw.countersPath(), port, "link_up", 1);
            }

            // a (access 10) broadcasts: the trunk gets it tagged 10, b (VLAN 20) gets nothing
            byte[] fromA = frame(BROADCAST, MAC_A, -1, "hello from a");
            a.transmit(fromA);
            assertArrayEquals(frame(BROADCAST, MAC_A, 10, "hello from a"), receiveOne(c), "tag 10 inserted toward the trunk");

            // the trunk sends into VLAN 20: b gets it untagged, a nothing
            c.transmit(frame(BROADCAST, MAC_X, 20, "to vlan 20"));
            assertArrayEquals(frame(BROADCAST, MAC_X, -1, "to vlan 20"), receiveOne(b), "tag stripped toward the access port");

            // unicast to a's MAC, learned in VLAN 10 only: from the trunk in VLAN 10 it reaches a...
            c.transmit(frame(MAC_A, MAC_X, 10, "unicast to a"));
            assertArrayEquals(frame(MAC_A, MAC_X, -1, "unicast to a"), receiveOne(a));
            // ...while a's own reply to X goes back tagged, as unicast: X was learned on c in VLAN 10
            a.transmit(frame(MAC_X, MAC_A, -1, "reply"));
            assertArrayEquals(frame(MAC_X, MAC_A, 10, "reply"), receiveOne(c));
            // in VLAN 20 a's MAC is unknown: flooded within VLAN 20 only (to b), never to a
            c.transmit(frame(MAC_A, MAC_B, 20, "wrong vlan"));
            assertArrayEquals(frame(MAC_A, MAC_B, -1, "wrong vlan"), receiveOne(b));

            // rule breakers: untagged on the trunk, a VLAN the trunk does not carry, tagged on an access port
            c.transmit(frame(BROADCAST, MAC_X, -1, "untagged on trunk"));
            c.transmit(frame(BROADCAST, MAC_X, 30, "vlan 30"));
            a.transmit(frame(BROADCAST, MAC_A, 10, "tagged on access"));
            AwaitCounter.atLeast(sw.countersPath(), "c", "drop_vlan", 2);
            AwaitCounter.atLeast(sw.countersPath(), "a", "drop_vlan", 1);
            CountersFile.Snapshot snap = CountersFile.read(sw.countersPath());
            assertEquals(2, value(snap, "c", "drop_vlan"));
            assertEquals(1, value(snap, "a", "drop_vlan"));
            assertTrue(a.receive().isEmpty() && b.receive().isEmpty() && c.receive().isEmpty(), "nothing leaked");
            assertEquals(1, value(snap, "a", "tx_packets"));
            assertEquals(2, value(snap, "b", "tx_packets"));
            assertEquals(2, value(snap, "c", "tx_packets"));
        }
    }

    /** A frame to a MAC learned behind the port it came from is not sent back, and is counted as drop_hairpin. */
    @org.junit.jupiter.api.Test
    void aFrameForItsOwnPortIsCountedAsHairpin() throws Exception {
        String yaml = TestTopologies.learning(dir, "a", "b");
        try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "hairpin.yaml"));
             TestFrontend a = TestFrontend.connect(dir.resolve("a.sock")).setUp();
             TestFrontend b = TestFrontend.connect(dir.resolve("b.sock")).setUp()) {
            a.postRxBuffers(32, 2048);
            b.postRxBuffers(32, 2048);
            for (String port : List.of("a", "b")) {
                QemuGuestsTest.awaitCounter(sw.countersPath(), port, "link_up", 1);
            }
            a.transmit(frame(BROADCAST, MAC_A, -1, "a announces itself"));
            receiveOne(b);
            a.transmit(frame(MAC_A, MAC_X, -1, "to a, from a"));   // X sits behind a too (a bridge behind the guest)
            AwaitCounter.atLeast(sw.countersPath(), "a", "drop_hairpin", 1);
            CountersFile.Snapshot snap = CountersFile.read(sw.countersPath());
            assertEquals(2, value(snap, "a", "rx_packets"));
            assertEquals(1, value(snap, "a", "drop_hairpin"));
            assertEquals(1, value(snap, "b", "tx_packets"), "b got the broadcast only");
            assertTrue(a.receive().isEmpty() && b.receive().isEmpty(), "nothing sent back or leaked");
        }
    }

    static byte[] receiveOne(TestFrontend f) throws InterruptedException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        List<TestFrontend.RxFrame> got = new ArrayList<>();
        while (got.isEmpty() && System.nanoTime() < deadline) {
            got.addAll(f.receive());
            Thread.sleep(1);
        }
        assertEquals(1, got.size(), "exactly one frame arrived");
        f.postRxBuffers(1, 2048);
        return got.getFirst().data();
    }

    /** An Ethernet frame, with an 802.1Q tag for {@code vlan} unless it is -1, padded to 60 bytes. */
    static byte[] frame(byte[] dst, byte[] src, int vlan, String payload) {
        ByteBuffer f = ByteBuffer.allocate(Math.max(60 + (vlan >= 0 ? 4 : 0), 18 + payload.length()));
        f.put(dst).put(src);
        if (vlan >= 0) {
            f.putShort((short) 0x8100).putShort((short) vlan);
        }
        f.putShort((short) 0x88b5);   // local experimental EtherType
        f.put(payload.getBytes());
        return f.array();
    }

    static byte[] mac(String text) {
        return HexFormat.ofDelimiter(":").parseHex(text);
    }
}
