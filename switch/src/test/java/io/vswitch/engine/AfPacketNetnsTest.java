package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.testing.Netns;
import io.vswitch.sys.OpenFds;
import io.vswitch.testing.Await;
import io.vswitch.testing.QemuGuest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;

import static io.vswitch.engine.TestPmdForwardingTest.value;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The afpacket port on a veth whose far end is in a network namespace: a QEMU guest on a vhost-user port
 * reaches the namespace's address (ping, TCP both ways, md5-checked), a frame longer than the port's MTU is
 * dropped and counted, and the ring, mapping and socket are released with the switch.
 *
 * <pre>
 *  QEMU guest 10.215.K.2 ── vhost-user ── vswitch ── afpacket port on vsuTAGa (root namespace, no address)
 *                                                        │ veth
 *                                      vsuTAGb (namespace vsu-TAG) 10.215.K.1
 * </pre>
 */
class AfPacketNetnsTest {
    private static final Duration BOOT = Duration.ofSeconds(120);
    private static final Duration CMD = Duration.ofSeconds(60);

    @Test
    @Timeout(600)
    void qemuGuestReachesANamespaceThroughAVeth() throws Exception {
        Netns.require();
        QemuGuest.require();
        String tag = Netns.tag();
        int k = ThreadLocalRandom.current().nextInt(1, 255);
        String nsIp = "10.215." + k + ".1";
        String guestIp = "10.215." + k + ".2";
        String rootEnd = "vsu" + tag + "a";
        String nsEnd = "vsu" + tag + "b";
        Path work = Path.of("target", "afpacket-netns").toAbsolutePath();
        Files.createDirectories(work);
        Path dir = Files.createTempDirectory("vsu");
        try (Netns ns = Netns.create("vsu-" + tag)) {
            ns.veth(rootEnd, nsEnd, 1600);
            Netns.sh("ip link set " + rootEnd + " up");
            // AF_PACKET reads frames as they cross the veth: the namespace must finish its checksums and cut its
            // own segments (a NIC's wire does both), so no checksum offload, TSO or GSO on the far end
            ns.exec("ethtool -K " + nsEnd + " tx off tso off gso off");
            ns.exec("ip addr add " + nsIp + "/24 dev " + nsEnd);
            ns.exec("ip link set " + nsEnd + " mtu 1500 up");
            String yaml = """
                    switch:
                      mode: learning
                      notify: hybrid
                      runtime-dir: %s
                    ports:
                      - name: g1
                        socket: %s
                      - name: up
                        type: afpacket
                        interface: %s
                    """.formatted(dir.resolve("run"), dir.resolve("g1.sock"), rootEnd);
            int fdsBefore;
            try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "afpacket-netns.yaml"));
                 QemuGuest g1 = QemuGuest.start("af-g1-" + tag, dir.resolve("g1.sock"), false, "52:54:00:78:00:02",
                         guestIp + "/24", work)) {
                g1.awaitReady(BOOT);
                Path counters = sw.countersPath();
                VxlanNetnsTest.ping(g1, nsIp);
                assertTrue((Integer.decode(Files.readString(Path.of("/sys/class/net", rootEnd, "flags")).trim()) & 0x100) != 0,
                        "the interface is promiscuous (IFF_PROMISC)");
                VxlanNetnsTest.guestToNamespace(g1, ns, nsIp, work, 4096);
                VxlanNetnsTest.namespaceToGuest(g1, ns, work, 4096);

                // MTU: a 1542-byte frame from the namespace (its veth allows it) is over the port's 1500
                ns.exec("ip link set " + nsEnd + " mtu 1600");
                long overBefore = value(CountersFile.read(counters), "up", "drop_over_mtu");
                String out;
                try {
                    out = ns.exec("busybox ping -c 1 -W 2 -s 1500 " + guestIp);
                } catch (java.io.IOException expected) {
                    out = expected.getMessage();
                }
                assertTrue(out.contains("0 received") || out.contains("100% packet loss"), out);
                QemuGuestsTest.awaitCounter(counters, "up", "drop_over_mtu", overBefore + 1);
                ns.exec("ip link set " + nsEnd + " mtu 1500");
                VxlanNetnsTest.ping(g1, nsIp);
                CountersFile.Snapshot snap = CountersFile.read(counters);
                System.out.printf("afpacket: rx %d tx %d frames, drops: over_mtu %d rx_ring_full(kernel) %d no_buffers %d%n",
                        value(snap, "up", "rx_packets"), value(snap, "up", "tx_packets"), value(snap, "up", "drop_over_mtu"),
                        value(snap, "up", "drop_rx_ring_full"), value(snap, "up", "drop_no_buffers"));
                assertEquals(0, value(snap, "up", "drop_malformed"));
                fdsBefore = OpenFds.count();
            }
            // the ring, its mapping and the socket go with the switch; a second one binds the same interface
            // (compared as sets: the guest's QEMU is reaped meanwhile and its pipes may close late)
            Map<Integer, String> fds = OpenFds.snapshot();
            Switch.start(ConfigLoader.parse(yaml, "afpacket-netns.yaml")).close();
            Await.until(() -> OpenFds.openedSince(fds).isEmpty(),
                    () -> "no descriptor left behind, but open: " + OpenFds.openedSince(fds));
            assertTrue(fdsBefore > 0);
        } finally {
            VxlanNetnsTest.deleteTree(dir);
        }
    }
}
