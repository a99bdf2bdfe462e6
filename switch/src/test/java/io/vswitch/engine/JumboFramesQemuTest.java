package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.testing.QemuGuest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.stream.Stream;

import static io.vswitch.engine.QemuGuestsTest.transfer;
import static io.vswitch.engine.TestPmdForwardingTest.value;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * 9000-byte MTU end to end between two QEMU guests: the ports have {@code mtu: 9000}, QEMU gives each guest
 * that MTU through VIRTIO_NET_F_MTU ({@code host_mtu=9000}) after checking it with the switch (NET_SET_MTU),
 * the guests' eth0 come up with MTU 9000 by themselves, and 9000-byte IP packets (9014-byte frames) cross
 * unfragmented: ICMP echo of 8972 bytes of data, and TCP with full-sized segments, intact.
 */
class JumboFramesQemuTest {
    private static final Duration BOOT = Duration.ofSeconds(120);
    private static final Duration CMD = Duration.ofSeconds(60);
    /** An IPv4 packet of 9000 bytes in an untagged Ethernet frame. */
    private static final int JUMBO_FRAME = 9000 + 14;

    @Test
    @Timeout(600)
    void twoGuestsExchange9000ByteFrames() throws Exception {
        QemuGuest.require();
        Path work = Path.of("target", "qemu-jumbo").toAbsolutePath();
        Path sockets = Files.createTempDirectory("vsj");   // short: socket paths must fit in 108 bytes
        String yaml = """
                switch:
                  mode: learning
                  notify: hybrid
                  runtime-dir: %s
                ports:
                  - name: j1
                    socket: %s
                    mtu: 9000
                  - name: j2
                    socket: %s
                    mtu: 9000
                """.formatted(sockets.resolve("run"), sockets.resolve("j1.sock"), sockets.resolve("j2.sock"));
        List<String> jumbo = List.of("-global", "virtio-net-pci.host_mtu=9000");
        try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "jumbo-test.yaml"));
             QemuGuest g1 = QemuGuest.start("jumbo1", sockets.resolve("j1.sock"), false, "52:54:00:95:00:01", "10.95.0.1/24", work, jumbo);
             QemuGuest g2 = QemuGuest.start("jumbo2", sockets.resolve("j2.sock"), false, "52:54:00:95:00:02", "10.95.0.2/24", work, jumbo)) {
            g1.awaitReady(BOOT);
            g2.awaitReady(BOOT);
            Path counters = sw.countersPath();
            for (QemuGuest g : List.of(g1, g2)) {
                assertEquals("9000", g.runOk("cat /sys/class/net/eth0/mtu", CMD).trim(),
                        g.name() + ": eth0 took its MTU from the device (VIRTIO_NET_F_MTU)");
            }
            g1.runOk("ping -c 1 -W 5 " + g2.ip(), CMD);   // ARP first, so that what follows is the jumbo pings alone

            long fragmentsBefore = fragments(g1) + fragments(g2);
            CountersFile.Snapshot before = CountersFile.read(counters);
            String out = g1.runOk("ping -c 3 -W 5 -s 8972 " + g2.ip(), CMD);
            assertTrue(out.contains("3 packets received"), out);
            assertTrue(out.contains("8980 bytes from"), "full-sized replies: " + out);
            CountersFile.Snapshot after = CountersFile.read(counters);
            long frames = value(after, "j2", "tx_packets") - value(before, "j2", "tx_packets");
            long bytes = value(after, "j2", "tx_bytes") - value(before, "j2", "tx_bytes");
            System.out.printf("3 pings of 8972 bytes: %d frames, %d bytes to j2%n", frames, bytes);
            assertEquals(fragmentsBefore, fragments(g1) + fragments(g2), "no IP fragment made or reassembled");
            assertTrue(frames >= 3 && bytes >= 3L * JUMBO_FRAME, "three 9014-byte requests reached j2 (besides ARP)");

            before = CountersFile.read(counters);
            transfer(g1, g2, 16 * 1024);
            after = CountersFile.read(counters);
            long sent = value(after, "j1", "rx_packets") - value(before, "j1", "rx_packets");
            long sentBytes = value(after, "j1", "rx_bytes") - value(before, "j1", "rx_bytes");
            long biggest = sentBytes / Math.max(1, sent);
            System.out.printf("16 MiB over TCP at MTU 9000: %d frames from j1, mean %d bytes%n", sent, biggest);
            // full segments are 9014 bytes; the mean also counts the sender's pure ACKs, SYN and FIN, so it varies
            // (7883 to over 8000 seen): four times a 1500-byte MTU's largest frame cannot happen without jumbo frames
            assertTrue(biggest > 4 * 1514, "TCP used jumbo segments: mean frame " + biggest + " bytes");
            assertEquals(0, value(after, "j1", "drop_over_mtu") + value(after, "j2", "drop_over_mtu"));
        } finally {
            try (Stream<Path> files = Files.walk(sockets)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    /** IP fragments the guest made plus reassemblies it did (/proc/net/snmp FragCreates + ReasmReqds). */
    private static long fragments(QemuGuest g) {
        return Long.parseLong(g.runOk("awk '/^Ip:/ { if (!seen) { seen = 1; for (i = 1; i <= NF; i++) name[i] = $i; next }"
                + " for (i = 1; i <= NF; i++) if (name[i] == \"FragCreates\" || name[i] == \"ReasmReqds\") s += $i; print s + 0 }'"
                + " /proc/net/snmp", CMD).trim());
    }
}
