package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.testing.TestPmd;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.Map;

import static io.vswitch.engine.TestPmdForwardingTest.value;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Per-port settings users rely on: socket permissions and group, MTU. */
class PortOptionsTest {
    @TempDir
    Path dir;

    @Test
    void serverSocketGetsTheConfiguredModeAndGroup() throws Exception {
        String group = Files.readAttributes(Path.of("/etc/passwd"), PosixFileAttributes.class).group().getName();
        String yaml = """
                switch:
                  runtime-dir: %s
                ports:
                  - name: a
                    socket: %s
                    socket-mode: "0660"
                    socket-group: %s
                  - name: b
                    socket: %s
                """.formatted(dir.resolve("run"), dir.resolve("a.sock"), group, dir.resolve("b.sock"));
        try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "perm.yaml"))) {
            PosixFileAttributes a = Files.readAttributes(dir.resolve("a.sock"), PosixFileAttributes.class);
            assertEquals("rw-rw----", PosixFilePermissions.toString(a.permissions()));
            assertEquals(group, a.group().getName());
        }
    }

    @Test
    void framesLongerThanTheMtuAreDroppedAndCounted() throws Exception {
        TestPmd.require();
        String yaml = """
                switch:
                  mode: cross-connect
                  runtime-dir: %s
                ports:
                  - name: a
                    socket: %s
                    mtu: 1000
                  - name: b
                    socket: %s
                links:
                  - [a, b]
                """.formatted(dir.resolve("run"), dir.resolve("a.sock"), dir.resolve("b.sock"));
        try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "mtu.yaml"));
             TestPmd pmd = TestPmd.start("mtu", dir, List.of("-l", "0,1", "--no-pci", "--no-huge", "-m", "1024",
                     "--vdev", "net_virtio_user0,path=" + dir.resolve("a.sock"),
                     "--vdev", "net_virtio_user1,path=" + dir.resolve("b.sock")),
                     List.of("-i", "--total-num-mbufs=16384", "--forward-mode=txonly", "--nb-cores=1"))) {
            pmd.command("set txpkts 1100", Duration.ofSeconds(10));   // 1100-byte frames: over a's 1000 + 18
            pmd.command("start", Duration.ofSeconds(30));
            AwaitCounter.atLeast(sw.countersPath(), "a", "rx_packets", 1001);
            AwaitCounter.atLeast(sw.countersPath(), "b", "rx_packets", 1001);
            pmd.command("stop", Duration.ofSeconds(30));
            Map<Integer, TestPmd.PortStats> sent = pmd.portStats();
            // the switch has taken every frame testpmd sent
            AwaitCounter.atLeast(sw.countersPath(), "a", "rx_packets", sent.get(0).txPackets());
            AwaitCounter.atLeast(sw.countersPath(), "b", "rx_packets", sent.get(1).txPackets());
            CountersFile.Snapshot snap = CountersFile.read(sw.countersPath());
            long rx = value(snap, "a", "rx_packets");
            long overMtu = value(snap, "a", "drop_over_mtu");
            System.out.printf("mtu: a rx %d, over mtu %d, b tx %d, b rx %d%n", rx, overMtu, value(snap, "b", "tx_packets"),
                    value(snap, "b", "rx_packets"));
            assertTrue(rx > 1000, "frames arrived: " + rx);
            assertEquals(rx, overMtu, "every oversized frame from a was dropped as over MTU");
            assertEquals(0, value(snap, "b", "tx_packets"), "none of them reached b");
            // b's own 1100-byte frames are within b's default MTU of 1500: they go to a (whose ring soon fills,
            // since txonly never receives), all delivered or counted
            long bRx = value(snap, "b", "rx_packets");
            assertTrue(bRx > 1000 && value(snap, "b", "drop_over_mtu") == 0, "b's frames were not over its MTU");
            assertEquals(bRx, value(snap, "a", "tx_packets") + value(snap, "a", "drop_rx_ring_full"), "b -> a accounted for");
            assertTrue(value(snap, "a", "tx_packets") > 0, "b -> a delivered");
        }
    }
}
