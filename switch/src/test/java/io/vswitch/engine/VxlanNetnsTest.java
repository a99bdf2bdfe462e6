package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.testing.Netns;
import io.vswitch.testing.QemuGuest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.ThreadLocalRandom;

import static io.vswitch.engine.TestPmdForwardingTest.value;
import static io.vswitch.engine.VxlanTest.vxlan;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The VXLAN port against Linux's own {@code vxlan} device on the standard port 4789: a QEMU guest on a
 * vhost-user port reaches a network namespace through the tunnel (ping, TCP both ways, md5-checked), and
 * malformed VXLAN packets sent from that namespace are counted and change nothing.
 *
 * <pre>
 *  QEMU guest 10.214.K.2 ── vhost-user ── vswitch ── vxlan port (UDP 10.213.K.1:4789, FFM recvmmsg/sendmmsg)
 *                                                         │ veth vsuTAGa (root namespace, MTU 1600)
 *                                                         │ veth vsuTAGb (namespace vsu-TAG) 10.213.K.2
 *                                              vx0 (Linux vxlan, vni 4242, dstport 4789) 10.214.K.1
 * </pre>
 */
class VxlanNetnsTest {
    private static final Duration BOOT = Duration.ofSeconds(120);
    private static final Duration CMD = Duration.ofSeconds(60);
    private static final int VNI = 4242;

    @Test
    @Timeout(600)
    void qemuGuestReachesALinuxVxlanDeviceInANamespace() throws Exception {
        Netns.require();
        QemuGuest.require();
        String tag = Netns.tag();
        int k = ThreadLocalRandom.current().nextInt(1, 255);
        String underSwitch = "10.213." + k + ".1";
        String underNs = "10.213." + k + ".2";
        String overlayNs = "10.214." + k + ".1";
        String overlayGuest = "10.214." + k + ".2";
        Path work = Path.of("target", "vxlan-netns").toAbsolutePath();
        Files.createDirectories(work);
        Path dir = Files.createTempDirectory("vsu");
        try (Netns ns = Netns.create("vsu-" + tag)) {
            ns.veth("vsu" + tag + "a", "vsu" + tag + "b", 1600);
            Netns.sh("ip addr add " + underSwitch + "/30 dev vsu" + tag + "a");
            Netns.sh("ip link set vsu" + tag + "a up");
            ns.exec("ip addr add " + underNs + "/30 dev vsu" + tag + "b");
            ns.exec("ip link set vsu" + tag + "b up");
            ns.exec("ip link add vx0 mtu 1500 type vxlan id " + VNI + " local " + underNs + " remote " + underSwitch
                    + " dstport 4789 dev vsu" + tag + "b");
            // A packet that crosses a veth keeps CHECKSUM_PARTIAL: the inner TCP checksum of what Linux
            // encapsulates would reach our UDP socket unfinished. A NIC finishes it on the wire; here the
            // namespace's stack must: no transmit checksum offload on the vxlan device.
            ns.exec("ethtool -K vx0 tx off");
            ns.exec("ip addr add " + overlayNs + "/24 dev vx0");
            ns.exec("ip link set vx0 up");
            String yaml = """
                    switch:
                      mode: learning
                      notify: hybrid
                      runtime-dir: %s
                    ports:
                      - name: g1
                        socket: %s
                      - name: vx
                        type: vxlan
                        local: %s
                        remote: %s
                        vni: %d
                    """.formatted(dir.resolve("run"), dir.resolve("g1.sock"), underSwitch, underNs, VNI);
            try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "vxlan-netns.yaml"));
                 QemuGuest g1 = QemuGuest.start("vx-g1-" + tag, dir.resolve("g1.sock"), false, "52:54:00:77:00:02",
                         overlayGuest + "/24", work)) {
                g1.awaitReady(BOOT);
                Path counters = sw.countersPath();
                ping(g1, overlayNs);
                long decapsulated = value(CountersFile.read(counters), "vx", "rx_packets");
                assertTrue(decapsulated >= 3, "ARP reply and echo replies came through the tunnel: " + decapsulated);
                assertTrue(ns.exec("ip neigh show dev vx0").contains(overlayGuest), "the namespace learned the guest");
                assertTrue(ns.exec("bridge fdb show dev vx0").contains("52:54:00:77:00:02 dst " + underSwitch),
                        "Linux learned the guest's MAC behind our VTEP");

                // TCP, both ways, md5-checked: guest -> namespace, then namespace -> guest
                guestToNamespace(g1, ns, overlayNs, work, 4096);
                namespaceToGuest(g1, ns, work, 4096);

                // malformed VXLAN from the namespace's own address (the configured remote), then a good ping
                CountersFile.Snapshot before = CountersFile.read(counters);
                int sent = ns.inside(() -> {
                    try (DatagramChannel c = DatagramChannel.open().bind(new InetSocketAddress(underNs, 0))) {
                        InetSocketAddress to = new InetSocketAddress(underSwitch, 4789);
                        byte[] inner = VlanTest.frame(VlanTest.mac("52:54:00:77:00:02"), VlanTest.mac("02:66:66:66:66:66"),
                                -1, "forged");
                        byte[][] bad = {
                            new byte[3],                        // shorter than a VXLAN header
                            vxlan(0x08, VNI, new byte[6]),      // inner frame shorter than an Ethernet header
                            vxlan(0x00, VNI, inner),            // I flag clear
                            vxlan(0x08, VNI + 1, inner),        // another VNI
                            vxlan(0x08, VNI + 1, inner),
                        };
                        for (int round = 0; round < 20; round++) {
                            for (byte[] b : bad) {
                                c.send(ByteBuffer.wrap(b), to);
                            }
                        }
                        return 20 * bad.length;
                    }
                });
                QemuGuestsTest.awaitCounter(counters, "vx", "drop_vni", value(before, "vx", "drop_vni") + 40);
                QemuGuestsTest.awaitCounter(counters, "vx", "drop_malformed", value(before, "vx", "drop_malformed") + 60);
                ping(g1, overlayNs);
                CountersFile.Snapshot after = CountersFile.read(counters);
                // nothing of the forgery reached the guest, and nothing else was dropped meanwhile (during the TCP
                // transfers a TCG guest's receive ring may well have run full: counted, and TCP recovered)
                for (String counter : new String[] {"drop_rx_ring_full", "drop_no_buffers", "drop_invalid"}) {
                    assertEquals(value(before, "g1", counter), value(after, "g1", counter), "g1 " + counter);
                }
                assertEquals(value(before, "vx", "drop_tx_error"), value(after, "vx", "drop_tx_error"));
                assertEquals(value(before, "vx", "drop_no_buffers"), value(after, "vx", "drop_no_buffers"));
                assertEquals(0, value(after, "vx", "drop_foreign_vtep"));
                assertEquals(value(before, "vx", "macs_learned"), value(after, "vx", "macs_learned"),
                        "the forged source MAC was not learned");
                System.out.printf("%d malformed VXLAN packets from the namespace counted; tunnel rx %d tx %d frames%n",
                        sent, value(after, "vx", "rx_packets"), value(after, "vx", "tx_packets"));
            }
        } finally {
            deleteTree(dir);
        }
    }

    static void ping(QemuGuest g, String ip) {
        String out = g.runOk("ping -c 3 -W 5 " + ip, CMD);
        assertTrue(out.contains("3 packets received"), g.name() + " -> " + ip + ": " + out);
    }

    /** {@code kib} KiB of random bytes from the guest to a listener in the namespace, md5 compared. */
    static void guestToNamespace(QemuGuest g, Netns ns, String nsIp, Path work, int kib) throws Exception {
        Path received = work.resolve(ns.name() + ".rx");
        Files.deleteIfExists(received);
        Process listener = ns.start("exec busybox nc -l -p 5002 > " + received, work.resolve(ns.name() + ".nc.log"));
        try {
            awaitListening(ns, 5002);
            String sent = g.runOk("dd if=/dev/urandom of=/tmp/tx bs=1024 count=" + kib + " 2>/dev/null && md5sum /tmp/tx", CMD)
                    .trim().split("\\s+")[0];
            long t0 = System.nanoTime();
            g.runOk("nc " + nsIp + " 5002 < /tmp/tx", Duration.ofSeconds(300));
            assertTrue(listener.waitFor(60, java.util.concurrent.TimeUnit.SECONDS), "the namespace's nc finished");
            String got = md5(received);
            System.out.printf("%d KiB guest -> namespace over the uplink in %d ms%n", kib, (System.nanoTime() - t0) / 1_000_000);
            assertEquals(sent, got, "md5 of what the namespace received");
        } finally {
            listener.destroyForcibly();
            Files.deleteIfExists(received);
        }
    }

    /** {@code kib} KiB of random bytes from the namespace to a listener in the guest, md5 compared. */
    static void namespaceToGuest(QemuGuest g, Netns ns, Path work, int kib) throws Exception {
        Path file = work.resolve(ns.name() + ".tx");
        byte[] data = new byte[kib * 1024];
        ThreadLocalRandom.current().nextBytes(data);
        Files.write(file, data);
        try {
            g.runOk("rm -f /tmp/rx; nc -l -p 5003 -e sh -c 'cat > /tmp/rx' &", CMD);
            g.runOk("for i in $(seq 50); do netstat -ltn | grep -q ':5003 ' && break; usleep 100000; done;"
                    + " netstat -ltn | grep -q ':5003 '", CMD);
            long t0 = System.nanoTime();
            Process sender = ns.start("exec busybox nc " + g.ip() + " 5003 < " + file, work.resolve(ns.name() + ".nc2.log"));
            try {
                assertTrue(sender.waitFor(120, java.util.concurrent.TimeUnit.SECONDS), "the namespace's nc finished");
            } finally {
                sender.destroyForcibly();
            }
            String got = g.runOk("wait; md5sum /tmp/rx", CMD).trim().split("\\s+")[0];
            System.out.printf("%d KiB namespace -> guest over the uplink in %d ms%n", kib, (System.nanoTime() - t0) / 1_000_000);
            assertEquals(md5(file), got, "md5 of what the guest received");
        } finally {
            Files.deleteIfExists(file);
        }
    }

    static void awaitListening(Netns ns, int port) throws Exception {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (!ns.exec("ss -ltn").contains(":" + port + " ")) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("nothing listens on " + port + " in " + ns.name());
            }
            Thread.sleep(50);
        }
    }

    static String md5(Path file) throws Exception {
        var md = java.security.MessageDigest.getInstance("MD5");
        return java.util.HexFormat.of().formatHex(md.digest(Files.readAllBytes(file)));
    }

    static void deleteTree(Path dir) throws Exception {
        try (var files = Files.walk(dir)) {
            files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }
}
