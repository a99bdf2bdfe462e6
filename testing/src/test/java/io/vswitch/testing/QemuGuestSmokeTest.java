package io.vswitch.testing;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Proves the test guest and its harness without our switch: DPDK's own vhost-user backend (testpmd with two
 * net_vhost ports, io-forwarding 0 <-> 1) is the wire between two QEMU guests. If this fails, the problem is
 * the guest, QEMU or the harness, not the switch.
 */
class QemuGuestSmokeTest {

    private static final Duration BOOT = Duration.ofSeconds(90);
    private static final Duration CMD = Duration.ofSeconds(30);

    @Test
    @Timeout(240)
    void twoGuestsPingAndCopyTwoMegabytesOverDpdkVhost() throws IOException {
        QemuGuest.require();
        TestPmd.require();

        Path work = Path.of("target", "qemu-guest-smoke").toAbsolutePath();
        // vhost-user socket paths must fit sockaddr_un (108 bytes), so not under target/.
        Path sockets = Files.createTempDirectory("vsguest");
        Path a = sockets.resolve("a.sock");
        Path b = sockets.resolve("b.sock");
        long pmdPid;
        long g1Pid;
        long g2Pid;
        try (TestPmd pmd = TestPmd.start("vhost-wire", work,
                // --no-huge: the vhost PMD only copies between guest RAM (QEMU's /dev/shm file, mapped from the
                // fds QEMU sends) and mbufs, so plain memory serves; no hugepages needed.
                // Port 0 listens and g1's QEMU connects; on port 1 it is the other way round (client=1: testpmd
                // keeps retrying until g2's QEMU has created the socket), so both QemuGuest modes are covered.
                List.of("-l", "0,1", "--no-pci", "--no-huge", "-m", "256",
                        "--vdev", "net_vhost0,iface=" + a, "--vdev", "net_vhost1,iface=" + b + ",client=1"),
                List.of("-i", "--forward-mode=io", "--total-num-mbufs=8192"))) {
            pmdPid = pmd.pid();
            pmd.startForwarding();
            pmd.awaitFile(a, Duration.ofSeconds(10));

            long t0 = System.nanoTime();
            try (QemuGuest g1 = QemuGuest.start("g1", a, false, "52:54:00:99:00:01", "10.99.0.1/24", work);
                 QemuGuest g2 = QemuGuest.start("g2", b, true, "52:54:00:99:00:02", "10.99.0.2/24", work)) {
                g1Pid = g1.pid();
                g2Pid = g2.pid();
                g1.awaitReady(BOOT);
                g2.awaitReady(BOOT);
                System.out.printf("guests ready: g1 %d ms, g2 %d ms (booted side by side, %d ms wall)%n",
                        g1.bootMillis(), g2.bootMillis(), (System.nanoTime() - t0) / 1_000_000);

                String ping = g1.runOk("ping -c 3 -W 5 " + g2.ip(), CMD);
                assertTrue(ping.contains("3 packets received"), ping);

                // 2 MiB of random data over TCP, g1 -> g2, compared by md5.
                // The receiver runs `cat` via -e rather than `nc -l > file`: busybox nc half-closes as soon as
                // its own stdin ends (here /dev/null), and the sender then exits mid-transfer on that EOF.
                g2.runOk("nc -l -p 5001 -e sh -c 'cat > /tmp/rx' &", CMD);
                g2.runOk("for i in $(seq 50); do netstat -ltn | grep -q ':5001 ' && break; usleep 100000; done;"
                        + " netstat -ltn | grep -q ':5001 '", CMD);
                String sent = g1.runOk("dd if=/dev/urandom of=/tmp/tx bs=1024 count=2048 2>/dev/null"
                        + " && md5sum /tmp/tx", CMD).trim().split("\\s+")[0];
                long t1 = System.nanoTime();
                g1.runOk("nc " + g2.ip() + " 5001 < /tmp/tx", CMD);
                String received = g2.runOk("wait; md5sum /tmp/rx", CMD).trim().split("\\s+")[0];
                System.out.printf("2 MiB over TCP in %d ms%n", (System.nanoTime() - t1) / 1_000_000);
                assertEquals(32, sent.length(), "md5 of sent file: " + sent);
                assertEquals(sent, received, "md5 of the file g2 received");

                // The data went through testpmd: g1 is on port 0, g2 on port 1.
                Map<Integer, TestPmd.PortStats> stats = pmd.portStats();
                System.out.println("testpmd " + stats);
                assertTrue(stats.get(0).rxBytes() >= 2 << 20, "port 0 RX bytes: " + stats);
                assertTrue(stats.get(1).txBytes() >= 2 << 20, "port 1 TX bytes: " + stats);
                assertTrue(stats.get(0).rxPackets() > 0 && stats.get(1).rxPackets() > 0, stats.toString());
                pmd.stopForwarding();

                // The harness itself: output and status of a failing command, ^C after a timeout leaves the
                // shell usable, and a killed guest fails waits at once instead of at their timeout.
                QemuGuest.Result r = g1.run("echo out; echo err >&2; false", CMD);
                assertEquals(new QemuGuest.Result("out\nerr", 1), r);
                AssertionError timeout = assertThrows(AssertionError.class,
                        () -> g1.run("sleep 60", Duration.ofSeconds(2)));
                assertTrue(timeout.getMessage().contains("--- last lines of "), timeout.getMessage());
                assertEquals("still here", g1.runOk("echo still here", CMD));
                g2.kill();
                long t2 = System.nanoTime();
                AssertionError dead = assertThrows(AssertionError.class,
                        () -> g2.awaitLine(Pattern.compile("never printed"), Duration.ofSeconds(30)));
                assertTrue(dead.getMessage().contains("exited"), dead.getMessage());
                assertTrue(System.nanoTime() - t2 < Duration.ofSeconds(10).toNanos(), "a dead guest's wait took too long");
            }
        } finally {
            try (Stream<Path> files = Files.list(sockets)) {
                for (Path f : files.toList()) {
                    Files.deleteIfExists(f);
                }
            }
            Files.deleteIfExists(sockets);
        }
        for (long pid : new long[]{pmdPid, g1Pid, g2Pid}) {
            assertFalse(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false), "still running: " + pid);
        }
    }
}
