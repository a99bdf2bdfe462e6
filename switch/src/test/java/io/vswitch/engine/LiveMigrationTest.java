package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.testing.QemuGuest;
import io.vswitch.testing.QemuMonitor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static io.vswitch.engine.QemuGuestsTest.assertPing;
import static io.vswitch.engine.QemuGuestsTest.transfer;
import static io.vswitch.engine.TestPmdForwardingTest.value;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Live migration of a QEMU guest between two ports of a learning switch while another guest pings it:
 * guest A runs on port vm1, a second QEMU waits on port vm2 with {@code -incoming}, the source's monitor
 * migrates A over TCP on loopback. Dirty-page logging keeps what the switch wrote into A's memory during
 * the copy; afterwards the bridge must send A's traffic to vm2 at once: through A's own announcement
 * (VIRTIO_NET_F_GUEST_ANNOUNCE) or, with {@code guest_announce=off}, through QEMU's SEND_RARP. First a quiet
 * migration vm1 -> vm2, then one back to vm1 while B pings A five times a second.
 */
class LiveMigrationTest {
    private static final Duration BOOT = Duration.ofSeconds(120);
    private static final Duration CMD = Duration.ofSeconds(60);
    private static final Pattern PING_SUMMARY = Pattern.compile("(\\d+) packets transmitted, (\\d+) (?:packets )?received");
    private static final int PINGS = 100;        // at 5 per second: 20 s around the migration
    private static final int MAX_LOST = 10;

    @ParameterizedTest(name = "guest_announce={0}")
    @ValueSource(booleans = {true, false})
    @Timeout(900)
    void aGuestMigratesBetweenPortsWhileAnotherPingsIt(boolean guestAnnounce) throws Exception {
        QemuGuest.require();
        Path work = Path.of("target", "qemu-migration-" + guestAnnounce).toAbsolutePath();
        Path sockets = Files.createTempDirectory("vsm");   // short: socket paths must fit in 108 bytes
        String yaml = """
                switch:
                  mode: learning
                  notify: hybrid
                  runtime-dir: %s
                ports:
                  - name: vm1
                    socket: %s
                  - name: vm2
                    socket: %s
                  - name: vm3
                    socket: %s
                """.formatted(sockets.resolve("run"), sockets.resolve("vm1.sock"), sockets.resolve("vm2.sock"),
                sockets.resolve("vm3.sock"));
        List<String> device = guestAnnounce ? List.of() : List.of("-global", "virtio-net-pci.guest_announce=off");
        String macA = "52:54:00:98:00:01";
        try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "migration-test.yaml"));
             QemuGuest first = QemuGuest.start("a-on-vm1", sockets.resolve("vm1.sock"), false, macA, "10.98.0.1/24", work,
                     args(device, QemuMonitor.args(sockets.resolve("a1.mon"))));
             QemuGuest b = QemuGuest.start("b", sockets.resolve("vm3.sock"), false, "52:54:00:98:00:03", "10.98.0.3/24", work)) {
            first.awaitReady(BOOT);
            b.awaitReady(BOOT);
            assertPing(b, first);
            // No traffic to or from A from here on (no IPv6 either), so what teaches the bridge is what follows
            // the migration: the guest's announcement, QEMU's SEND_RARP, or the first frame the resumed guest
            // sends (Linux sends one on its own, so this phase cannot tell them apart: SendRarpTest proves
            // the RARP path with the test frontend).
            first.runOk("echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6", CMD);
            Path counters = sw.countersPath();

            // 1. vm1 -> vm2 with no traffic: the bridge learns A's MAC on vm2 from the announcement alone
            long learnedBefore = learnedOn(counters, "vm2");
            int port2 = freePort();
            try (QemuGuest second = QemuGuest.start("a-on-vm2", sockets.resolve("vm2.sock"), false, macA, "10.98.0.1/24",
                         work, args(device, QemuMonitor.args(sockets.resolve("a2.mon")), List.of("-incoming", "tcp:127.0.0.1:" + port2)));
                 QemuMonitor monitor1 = QemuMonitor.connect(sockets.resolve("a1.mon"), Duration.ofSeconds(30))) {
                QemuGuestsTest.awaitCounter(counters, "vm2", "connections", 1);
                String info = migrate(monitor1, port2);
                first.kill();
                awaitLearned(counters, "vm2", learnedBefore, Duration.ofSeconds(10),
                        "A's MAC learned on vm2 after the migration; migration: " + info);
                CountersFile.Snapshot quiet = CountersFile.read(counters);
                System.out.printf("migration vm1 -> vm2, quiet (guest_announce=%s): %s, %s; vm2 rx %d frames, learned %d, moves %d%n",
                        guestAnnounce, line(info, "total time"), line(info, "downtime"), value(quiet, "vm2", "rx_packets"),
                        value(quiet, "vm2", "macs_learned"), value(quiet, "vm2", "mac_moves"));
                assertPing(b, second);

                // 2. vm2 -> vm1 while B pings A five times a second: at most 10 pings lost, then a TCP transfer
                int port1 = freePort();
                long vm1Connections = value(CountersFile.read(counters), "vm1", "connections");
                try (QemuGuest third = QemuGuest.start("a-back-on-vm1", sockets.resolve("vm1.sock"), false, macA,
                             "10.98.0.1/24", work, args(device, List.of("-incoming", "tcp:127.0.0.1:" + port1)));
                     QemuMonitor monitor2 = QemuMonitor.connect(sockets.resolve("a2.mon"), Duration.ofSeconds(30))) {
                    awaitAtLeast(counters, "vm1", "connections", vm1Connections + 1);   // the destination attached
                    b.runOk("ping -i 0.2 -c " + PINGS + " -W 1 " + second.ip() + " > /tmp/ping.log 2>&1 &", CMD);
                    Thread.sleep(3000);   // pings flow to A on vm2 for a while: the test's timeline, not a synchronization
                    long t0 = System.nanoTime();
                    String back = migrate(monitor2, port1);
                    long millis = (System.nanoTime() - t0) / 1_000_000;
                    String summary = b.runOk("wait; tail -3 /tmp/ping.log", Duration.ofSeconds(120));
                    Matcher m = PING_SUMMARY.matcher(summary);
                    assertTrue(m.find(), "ping summary:\n" + summary);
                    int sent = Integer.parseInt(m.group(1));
                    int received = Integer.parseInt(m.group(2));
                    System.out.printf("migration vm2 -> vm1 under ping (guest_announce=%s): %d ms by the test's clock,"
                            + " %s, %s; pings %d sent, %d received, %d lost%n", guestAnnounce, millis,
                            line(back, "total time"), line(back, "downtime"), sent, received, sent - received);
                    assertTrue(sent - received <= MAX_LOST, "at most " + MAX_LOST + " pings lost: " + summary);
                    second.kill();
                    assertPing(b, third);
                    transfer(b, third, 4 * 1024);
                }
            }
        } finally {
            try (Stream<Path> files = Files.walk(sockets)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    /**
     * Two things a cloud does while other tenants keep working: it cancels a migration half-way (the source must
     * carry on, its MAC stays where it was, logging is switched off again), then migrates for real while
     * dpdk-testpmd forwards between two other ports of the same switch at full rate. testpmd's ports must not
     * notice: one connection each, their counters grow through the migration, no queue fault, and every frame
     * testpmd sent the switch reached it.
     */
    @org.junit.jupiter.api.Test
    @Timeout(900)
    void aCancelledMigrationThenOneBesideTestpmdTraffic() throws Exception {
        QemuGuest.require();
        io.vswitch.testing.TestPmd.require();
        Path work = Path.of("target", "qemu-migration-testpmd").toAbsolutePath();
        Path sockets = Files.createTempDirectory("vsmt");
        String yaml = """
                switch:
                  mode: learning
                  notify: hybrid
                  runtime-dir: %s
                ports:
                  - name: vm1
                    socket: %s
                  - name: vm2
                    socket: %s
                  - name: vm3
                    socket: %s
                  - name: t0
                    socket: %s
                  - name: t1
                    socket: %s
                """.formatted(sockets.resolve("run"), sockets.resolve("vm1.sock"), sockets.resolve("vm2.sock"),
                sockets.resolve("vm3.sock"), sockets.resolve("t0.sock"), sockets.resolve("t1.sock"));
        String macA = "52:54:00:97:00:01";
        try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "migration-testpmd-test.yaml"));
             QemuGuest first = QemuGuest.start("ta-on-vm1", sockets.resolve("vm1.sock"), false, macA, "10.97.0.1/24", work,
                     QemuMonitor.args(sockets.resolve("ta1.mon")));
             QemuGuest b = QemuGuest.start("tb", sockets.resolve("vm3.sock"), false, "52:54:00:97:00:03", "10.97.0.3/24", work)) {
            first.awaitReady(BOOT);
            b.awaitReady(BOOT);
            assertPing(b, first);
            Path counters = sw.countersPath();

            // 1. A migration to vm2, cancelled while it copies RAM (throttled so that it cannot finish first)
            int cancelPort = freePort();
            try (QemuGuest target = QemuGuest.start("ta-cancelled-on-vm2", sockets.resolve("vm2.sock"), false, macA,
                         "10.97.0.1/24", work, List.of("-incoming", "tcp:127.0.0.1:" + cancelPort));
                 QemuMonitor monitor1 = QemuMonitor.connect(sockets.resolve("ta1.mon"), Duration.ofSeconds(30))) {
                QemuGuestsTest.awaitCounter(counters, "vm2", "connections", 1);
                monitor1.command("migrate_set_parameter max-bandwidth 1M", CMD);
                monitor1.command("migrate -d tcp:127.0.0.1:" + cancelPort, CMD);
                String active = awaitStatus(monitor1, "active", Duration.ofSeconds(60));
                awaitTrue(() -> sw.port("vm1").device.dirtyLogging(), "vm1 logs its writes while the migration copies");
                monitor1.command("migrate_cancel", CMD);
                String cancelled = awaitMigration(monitor1, Duration.ofSeconds(60));
                assertTrue(cancelled.contains("Migration status: cancelled"), "cancelled:\n" + cancelled);
                awaitTrue(() -> !sw.port("vm1").device.dirtyLogging(), "vm1's dirty-page logging off after the cancel");
                System.out.printf("migration cancelled half-way: %s -> %s%n", line(active, "transferred ram"),
                        line(cancelled, "Migration status"));
                monitor1.command("migrate_set_parameter max-bandwidth 10G", CMD);
                target.kill();
            }
            // the source carries on: its MAC still on vm1, pings and a transfer intact
            assertPing(b, first);
            transfer(b, first, 1024);
            assertTrue(value(CountersFile.read(counters), "vm2", "macs") == 0, "nothing learned on vm2: "
                    + value(CountersFile.read(counters), "vm2", "macs"));

            // 2. testpmd forwards between t0 and t1 at full rate (mac forwarding: unicast once learned)
            List<String> eal = List.of("-l", "0,1", "--no-pci", "--no-huge", "-m", "1024",
                    // the MACs as devargs: virtio-user cannot change them later (no control queue here), and a
                    // source MAC the eth-peer of the other port does not name would be flooded to the guests
                    "--vdev", "net_virtio_user0,mac=02:00:00:00:97:01,path=" + sockets.resolve("t0.sock"),
                    "--vdev", "net_virtio_user1,mac=02:00:00:00:97:02,path=" + sockets.resolve("t1.sock"));
            List<String> app = List.of("-i", "--total-num-mbufs=16384", "--nb-cores=1", "--forward-mode=mac",
                    "--eth-peer=0,02:00:00:00:97:02", "--eth-peer=1,02:00:00:00:97:01");
            try (io.vswitch.testing.TestPmd pmd = io.vswitch.testing.TestPmd.start("pmd-migration", work, eal, app)) {
                CountersFile.Snapshot quiet = CountersFile.read(counters);
                pmd.command("start tx_first", Duration.ofSeconds(30));
                awaitAtLeast(counters, "t1", "rx_packets", 100_000);
                CountersFile.Snapshot learned = CountersFile.read(counters);
                long flooded = value(learned, "vm3", "tx_packets") + value(learned, "vm3", "drop_rx_ring_full")
                        - value(quiet, "vm3", "tx_packets") - value(quiet, "vm3", "drop_rx_ring_full");
                assertTrue(flooded < 1_000, "testpmd's unicast reaches the guests only until both MACs are learned: "
                        + flooded + " frames to vm3");

                // 3. the real migration vm1 -> vm2 under B's pings, beside the testpmd traffic
                int port2 = freePort();
                try (QemuGuest second = QemuGuest.start("ta-on-vm2", sockets.resolve("vm2.sock"), false, macA,
                             "10.97.0.1/24", work, List.of("-incoming", "tcp:127.0.0.1:" + port2));
                     QemuMonitor monitor1 = QemuMonitor.connect(sockets.resolve("ta1.mon"), Duration.ofSeconds(30))) {
                    awaitAtLeast(counters, "vm2", "connections", 2);   // the cancelled target was the first
                    b.runOk("ping -i 0.2 -c " + PINGS + " -W 1 " + first.ip() + " > /tmp/ping.log 2>&1 &", CMD);
                    Thread.sleep(3000);   // pings flow to A on vm1 for a while: the test's timeline, not a synchronization
                    CountersFile.Snapshot before = CountersFile.read(counters);
                    String info = migrate(monitor1, port2);
                    first.kill();
                    CountersFile.Snapshot after = CountersFile.read(counters);
                    String summary = b.runOk("wait; tail -3 /tmp/ping.log", Duration.ofSeconds(120));
                    Matcher m = PING_SUMMARY.matcher(summary);
                    assertTrue(m.find(), "ping summary:\n" + summary);
                    int sent = Integer.parseInt(m.group(1));
                    int received = Integer.parseInt(m.group(2));
                    summary += "\nreplies: " + b.runOk("grep -o 'seq=[0-9]*' /tmp/ping.log | cut -d= -f2 | xargs echo", CMD);
                    long t0During = value(after, "t0", "rx_packets") - value(before, "t0", "rx_packets");
                    long t1During = value(after, "t1", "rx_packets") - value(before, "t1", "rx_packets");
                    System.out.printf("migration vm1 -> vm2 beside testpmd: %s, %s; pings %d sent, %d received, %d lost;"
                                    + " testpmd frames through the switch during the migration: t0 %d, t1 %d; %s%n",
                            line(info, "total time"), line(info, "downtime"), sent, received, sent - received,
                            t0During, t1During, summary.substring(summary.indexOf("replies:")));
                    System.out.println("guest-port counters: " + nonZero(CountersFile.read(counters), List.of("vm1", "vm2", "vm3")));
                    assertTrue(sent - received <= MAX_LOST, "at most " + MAX_LOST + " pings lost: " + summary);
                    assertTrue(t0During > 0 && t1During > 0, "testpmd kept forwarding through the migration: t0 "
                            + t0During + ", t1 " + t1During);
                    assertPing(b, second);
                    transfer(b, second, 4 * 1024);
                }
                pmd.command("stop", Duration.ofSeconds(30));
                Map<Integer, io.vswitch.testing.TestPmd.PortStats> stats = pmd.portStats();
                awaitAtLeast(counters, "t0", "rx_packets", stats.get(0).txPackets());
                awaitAtLeast(counters, "t1", "rx_packets", stats.get(1).txPackets());
                CountersFile.Snapshot end = CountersFile.read(counters);
                for (String port : List.of("t0", "t1")) {
                    assertEquals(1, value(end, port, "connections"), port + " connected once, never dropped");
                    assertEquals(0, value(end, port, "queue_faults"), port + " queue faults");
                    assertEquals(0, value(end, port, "protocol_errors"), port + " protocol errors");
                    assertEquals(0, value(end, port, "drop_invalid"), port + " invalid frames");
                }
                assertEquals(stats.get(0).txPackets(), value(end, "t0", "rx_packets"), "testpmd port 0 TX == switch t0 rx");
                assertEquals(stats.get(1).txPackets(), value(end, "t1", "rx_packets"), "testpmd port 1 TX == switch t1 rx");
            }
        } finally {
            try (Stream<Path> files = Files.walk(sockets)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    private static void awaitTrue(java.util.function.BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("not within 30 s: " + what);
            }
            Thread.sleep(20);   // polling a state the control thread sets
        }
    }

    private static String nonZero(CountersFile.Snapshot snap, List<String> ports) {
        StringBuilder sb = new StringBuilder();
        for (CountersFile.Sample sample : snap.samples()) {
            if (ports.contains(sample.name()) && sample.value() != 0) {
                sb.append(sample.name()).append('.').append(sample.counter()).append('=').append(sample.value()).append(' ');
            }
        }
        return sb.toString();
    }

    private static String awaitStatus(QemuMonitor monitor, String status, Duration timeout)
            throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            String info = monitor.command("info migrate", CMD);
            if (info.contains("Migration status: " + status) && info.contains("transferred ram")) {
                return info;
            }
            if (System.nanoTime() > deadline || info.contains("Migration status: completed")
                    || info.contains("Migration status: failed")) {
                throw new AssertionError("migration never reached '" + status + "':\n" + info);
            }
            Thread.sleep(100);   // polling QEMU's migration state
        }
    }

    @SafeVarargs
    private static List<String> args(List<String>... parts) {
        List<String> all = new ArrayList<>();
        for (List<String> p : parts) {
            all.addAll(p);
        }
        return all;
    }

    private static String migrate(QemuMonitor monitor, int port) throws IOException, InterruptedException {
        monitor.command("migrate -d tcp:127.0.0.1:" + port, CMD);
        String info = awaitMigration(monitor, Duration.ofSeconds(300));
        assertTrue(info.contains("Migration status: completed"), "migration completed:\n" + info);
        return info;
    }

    private static long learnedOn(Path counters, String port) throws IOException {
        CountersFile.Snapshot s = CountersFile.read(counters);
        return value(s, port, "macs_learned") + value(s, port, "mac_moves");
    }

    private static void awaitLearned(Path counters, String port, long before, Duration timeout, String what)
            throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (learnedOn(counters, port) <= before) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("not within " + timeout + ": " + what);
            }
            Thread.sleep(50);   // polling the counters file
        }
    }

    private static void awaitAtLeast(Path counters, String port, String counter, long min)
            throws IOException, InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (value(CountersFile.read(counters), port, counter) < min) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError(port + " " + counter + " stayed below " + min);
            }
            Thread.sleep(100);
        }
    }

    private static String awaitMigration(QemuMonitor monitor, Duration timeout) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            String info = monitor.command("info migrate", CMD);
            if (info.contains("Migration status: completed") || info.contains("Migration status: failed")
                    || info.contains("Migration status: cancelled") || System.nanoTime() > deadline) {
                return info;
            }
            Thread.sleep(200);   // polling QEMU's migration state
        }
    }

    private static String line(String text, String key) {
        return text.lines().filter(l -> l.contains(key)).findFirst().orElse(key + ": ?").trim();
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }
}
