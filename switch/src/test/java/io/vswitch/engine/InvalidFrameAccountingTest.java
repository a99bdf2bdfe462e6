package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.testing.TestFrontend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static io.vswitch.engine.TestPmdForwardingTest.value;
import static io.vswitch.testing.Await.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The switch's accounting, which bench/soak.sh checks after hours of traffic: every frame taken from a guest is
 * delivered or counted as a forwarding drop (sum rx_packets = sum tx_packets + drops), and a frame refused as
 * invalid is counted apart, as drop_invalid, never as rx. A runt (shorter than an Ethernet header) and a
 * chain with nothing behind its virtio-net header are both refused as invalid; the soak found the runt counted
 * as received as well.
 */
@Timeout(60)
class InvalidFrameAccountingTest {
    @TempDir
    Path dir;

    @Test
    void invalidFramesAreCountedApartAndNeverAsReceived() throws Exception {
        String yaml = """
                switch:
                  mode: cross-connect
                  notify: poll
                  runtime-dir: %s
                ports:
                  - {name: a, socket: %s}
                  - {name: b, socket: %s}
                links:
                  - [a, b]
                """.formatted(dir.resolve("run"), dir.resolve("a.sock"), dir.resolve("b.sock"));
        try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "accounting.yaml"));
             TestFrontend a = TestFrontend.connect(dir.resolve("a.sock")).setUp();
             TestFrontend b = TestFrontend.connect(dir.resolve("b.sock")).setUp()) {
            QemuGuestsTest.awaitCounter(sw.countersPath(), "b", "link_up", 1);
            b.postRxBuffers(8, 2048);
            a.transmit(new byte[10]);                                        // a runt: no Ethernet header
            a.transmitParts(new byte[][] {new byte[TestFrontend.HEADER]}, false);   // nothing behind the header
            byte[] good = VlanTest.frame(VlanTest.mac("02:00:00:00:00:0b"), VlanTest.mac("02:00:00:00:00:0a"), -1, "valid");
            a.transmit(good);
            await(() -> {
                a.txCompleted();
                return a.outstanding(TestFrontend.TX) == 0;
            }, "a's three frames returned");
            QemuGuestsTest.awaitCounter(sw.countersPath(), "a", "drop_invalid", 2);
            QemuGuestsTest.awaitCounter(sw.countersPath(), "b", "tx_packets", 1);
            CountersFile.Snapshot snap = CountersFile.read(sw.countersPath());
            assertEquals(1, value(snap, "a", "rx_packets"), "only the valid frame counts as received");
            assertEquals(value(snap, "a", "rx_packets"), value(snap, "b", "tx_packets") + TestPmdForwardingTest.drops(snap, "b"));
            assertTrue(b.receive().size() == 1);
        }
    }
}
