package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.testing.QemuGuest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.stream.Stream;

import static io.vswitch.engine.TestPmdForwardingTest.value;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Real Linux guests (QEMU under TCG, virtio-net driver) on the switch. Three guests on a learning bridge,
 * attached in both socket roles: g1 and g3 connect to sockets the switch listens on, g2's QEMU listens
 * ({@code server=on}) and the switch connects to it.
 */
class QemuGuestsTest {
    private static final Duration BOOT = Duration.ofSeconds(120);
    private static final Duration CMD = Duration.ofSeconds(60);

    @Test
    @Timeout(900)
    void threeGuestsOnALearningBridgeSurviveAGuestCrash() throws Exception {
        QemuGuest.require();
        Path work = Path.of("target", "qemu-guests").toAbsolutePath();
        Path sockets = Files.createTempDirectory("vsq");   // short: socket paths must fit in 108 bytes
        String yaml = """
                switch:
                  mode: learning
                  # TCG guests need the CPU more than a spinning worker does; hybrid also exercises
                  # Linux's EVENT_IDX kicks and the switches between polling and sleeping
                  notify: hybrid
                  runtime-dir: %s
                ports:
                  - name: g1
                    socket: %s
                  - name: g2
                    socket: %s
                    mode: client
                  - name: g3
                    socket: %s
                """.formatted(sockets.resolve("run"), sockets.resolve("g1.sock"), sockets.resolve("g2.sock"),
                sockets.resolve("g3.sock"));
        try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "qemu-test.yaml"));
             QemuGuest g1 = QemuGuest.start("g1", sockets.resolve("g1.sock"), false, "52:54:00:99:00:01", "10.99.0.1/24", work);
             QemuGuest g2 = QemuGuest.start("g2", sockets.resolve("g2.sock"), true, "52:54:00:99:00:02", "10.99.0.2/24", work);
             QemuGuest g3a = QemuGuest.start("g3", sockets.resolve("g3.sock"), false, "52:54:00:99:00:03", "10.99.0.3/24", work)) {
            g1.awaitReady(BOOT);
            g2.awaitReady(BOOT);
            g3a.awaitReady(BOOT);
            Path counters = sw.countersPath();

            // g1's first ping to g2 starts with a broadcast ARP request: the bridge floods it to g2 and g3
            long g3Before = value(CountersFile.read(counters), "g3", "tx_packets");
            long g3RxBefore = guestRxPackets(g3a);
            assertPing(g1, g2);
            assertTrue(value(CountersFile.read(counters), "g3", "tx_packets") > g3Before, "broadcast ARP flooded to g3's port");
            assertTrue(guestRxPackets(g3a) > g3RxBefore, "and g3's driver received it");

            // all pairs
            assertPing(g2, g1);
            assertPing(g1, g3a);
            assertPing(g3a, g2);
            CountersFile.Snapshot learned = CountersFile.read(counters);
            for (String port : new String[] {"g1", "g2", "g3"}) {
                assertTrue(value(learned, port, "macs_learned") >= 1, port + " learned its guest's MAC");
            }

            // 16 MiB g1 -> g2 over TCP: arrives intact, and once learned goes only to g2's port
            CountersFile.Snapshot before = CountersFile.read(counters);
            transfer(g1, g2, 16 * 1024);
            CountersFile.Snapshot after = CountersFile.read(counters);
            long toG2 = value(after, "g2", "tx_packets") - value(before, "g2", "tx_packets");
            long toG2Bytes = value(after, "g2", "tx_bytes") - value(before, "g2", "tx_bytes");
            long toG3 = value(after, "g3", "tx_packets") - value(before, "g3", "tx_packets");
            System.out.printf("16 MiB g1 -> g2: %d frames (%d bytes) to g2's port, %d to g3's%n", toG2, toG2Bytes, toG3);
            // bytes, not frames: with TSO the guests send frames of up to 64 KiB (offloads are on by default)
            assertTrue(toG2Bytes > 16L << 20, "the transfer's bytes went to g2: " + toG2Bytes);
            assertTrue(toG3 < 20, "unicast was not flooded to g3: " + toG3);

            // g3 crashes: its port goes down, the others keep forwarding
            g3a.kill();
            awaitCounter(counters, "g3", "link_up", 0);
            assertPing(g1, g2);

            // and comes back on the same socket
            try (QemuGuest g3b = QemuGuest.start("g3-restarted", sockets.resolve("g3.sock"), false, "52:54:00:99:00:03",
                    "10.99.0.3/24", work)) {
                g3b.awaitReady(BOOT);
                assertPing(g3b, g1);
                assertPing(g2, g3b);
                assertTrue(value(CountersFile.read(counters), "g3", "connections") >= 2, "g3 connected twice");
            }
        } finally {
            try (Stream<Path> files = Files.walk(sockets)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    static void assertPing(QemuGuest from, QemuGuest to) {
        String out = from.runOk("ping -c 3 -W 5 " + to.ip(), CMD);
        assertTrue(out.contains("3 packets received"), from.name() + " -> " + to.name() + ": " + out);
    }

    static long guestRxPackets(QemuGuest g) {
        return Long.parseLong(g.runOk("cat /sys/class/net/eth0/statistics/rx_packets", CMD).trim());
    }

    /** Sends {@code kib} KiB of random bytes from one guest to another over TCP and compares md5 sums. */
    static void transfer(QemuGuest from, QemuGuest to, int kib) {
        to.runOk("rm -f /tmp/rx; nc -l -p 5001 -e sh -c 'cat > /tmp/rx' &", CMD);
        to.runOk("for i in $(seq 50); do netstat -ltn | grep -q ':5001 ' && break; usleep 100000; done;"
                + " netstat -ltn | grep -q ':5001 '", CMD);
        String sent = from.runOk("dd if=/dev/urandom of=/tmp/tx bs=1024 count=" + kib + " 2>/dev/null && md5sum /tmp/tx", CMD)
                .trim().split("\\s+")[0];
        long t0 = System.nanoTime();
        from.runOk("nc " + to.ip() + " 5001 < /tmp/tx", Duration.ofSeconds(300));
        String received = to.runOk("wait; md5sum /tmp/rx", CMD).trim().split("\\s+")[0];
        System.out.printf("%d KiB %s -> %s over TCP in %d ms%n", kib, from.name(), to.name(), (System.nanoTime() - t0) / 1_000_000);
        assertEquals(32, sent.length(), sent);
        assertEquals(sent, received, "md5 of what " + to.name() + " received");
    }

    static void awaitCounter(Path counters, String port, String counter, long expected) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
        long v;
        while ((v = value(CountersFile.read(counters), port, counter)) != expected) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError(port + " " + counter + " stayed " + v + ", expected " + expected);
            }
            Thread.sleep(100);
        }
    }
}
