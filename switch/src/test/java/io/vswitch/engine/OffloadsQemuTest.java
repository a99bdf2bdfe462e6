package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.testing.QemuGuest;
import io.vswitch.testing.TestPmd;
import io.vswitch.protocol.Features;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static io.vswitch.engine.QemuGuestsTest.transfer;
import static io.vswitch.engine.TestPmdForwardingTest.value;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Checksum and TCP segmentation offloads with real peers (issue 11 item 2): QEMU Linux guests send 64 KiB TSO
 * frames with partial checksums; the switch hands them on as they are to a guest that negotiated GUEST_TSO
 * and GUEST_CSUM, and finishes them in software (checksums, MSS-sized segments) for a guest that did not,
 * and for dpdk-testpmd, which negotiates no offloads. Every transfer must arrive intact (md5).
 */
class OffloadsQemuTest {
    private static final Duration BOOT = Duration.ofSeconds(120);
    private static final Duration CMD = Duration.ofSeconds(60);
    /** A receiver that takes plain frames only: QEMU device properties. */
    static final List<String> NO_GUEST_OFFLOADS = List.of("-global", "virtio-net-pci.guest_tso4=off",
            "-global", "virtio-net-pci.guest_tso6=off", "-global", "virtio-net-pci.guest_csum=off",
            "-global", "virtio-net-pci.guest_ecn=off", "-global", "virtio-net-pci.guest_ufo=off");

    /** (a) Both guests negotiated the offloads: the sender's frames average more than 8000 bytes, and cross whole. */
    @Test
    @Timeout(600)
    void bothGuestsWithOffloadsExchange64KiBFrames() throws Exception {
        QemuGuest.require();
        Path sockets = Files.createTempDirectory("vso");
        try (Switch sw = Switch.start(ConfigLoader.parse(topology(sockets, "learning", ""), "offloads-a.yaml"));
             QemuGuest g1 = QemuGuest.start("off-a1", sockets.resolve("o1.sock"), false, "52:54:00:96:00:01", "10.96.0.1/24", work());
             QemuGuest g2 = QemuGuest.start("off-a2", sockets.resolve("o2.sock"), false, "52:54:00:96:00:02", "10.96.0.2/24", work())) {
            g1.awaitReady(BOOT);
            g2.awaitReady(BOOT);
            for (String port : List.of("o1", "o2")) {
                long f = sw.port(port).device.features();
                for (int bit : new int[] {Features.VIRTIO_NET_F_CSUM, Features.VIRTIO_NET_F_GUEST_CSUM,
                        Features.VIRTIO_NET_F_HOST_TSO4, Features.VIRTIO_NET_F_GUEST_TSO4}) {
                    assertTrue(Features.has(f, bit), port + " negotiated feature bit " + bit + ": 0x" + Long.toHexString(f));
                }
            }
            g1.runOk("ping -c 1 -W 5 " + g2.ip(), CMD);
            Path counters = sw.countersPath();
            transfer(g1, g2, 4 * 1024);   // busybox nc: its small writes make TSO frames of varying size
            // busybox httpd sends with sendfile, so Linux builds full TSO frames: the mean says whether they crossed whole
            CountersFile.Snapshot before = CountersFile.read(counters);
            httpTransfer(g1, g2, 16 * 1024);
            CountersFile.Snapshot after = CountersFile.read(counters);
            long mean = meanFrame(before, after, "o1", "rx");
            long meanDelivered = meanFrame(before, after, "o2", "tx");
            System.out.printf("16 MiB over HTTP, both with offloads: mean frame %d bytes from o1, %d bytes into o2%n", mean, meanDelivered);
            assertTrue(mean > 8000, "the sender used TSO: mean frame " + mean + " bytes on o1");
            assertTrue(meanDelivered > 8000, "the frames crossed unsegmented: mean " + meanDelivered + " bytes into o2");
            transfer(g2, g1, 4 * 1024);   // and the other way
            assertEquals(0, value(after, "o1", "drop_bad_offload_header") + value(after, "o2", "drop_bad_offload_header"));
        } finally {
            delete(sockets);
        }
    }

    /**
     * (b) The receiver has {@code guest_tso4=off,guest_tso6=off,guest_csum=off}: the switch completes the
     * checksums and cuts the sender's TSO frames into MSS-sized ones; every transfer, both ways, is intact.
     */
    @Test
    @Timeout(600)
    void receiverWithoutOffloadsGetsSegmentedFrames() throws Exception {
        QemuGuest.require();
        Path sockets = Files.createTempDirectory("vso");
        try (Switch sw = Switch.start(ConfigLoader.parse(topology(sockets, "learning", ""), "offloads-b.yaml"));
             QemuGuest g1 = QemuGuest.start("off-b1", sockets.resolve("o1.sock"), false, "52:54:00:96:01:01", "10.96.1.1/24", work());
             QemuGuest g2 = QemuGuest.start("off-b2", sockets.resolve("o2.sock"), false, "52:54:00:96:01:02", "10.96.1.2/24", work(),
                     NO_GUEST_OFFLOADS)) {
            g1.awaitReady(BOOT);
            g2.awaitReady(BOOT);
            long f2 = sw.port("o2").device.features();
            assertFalse(Features.has(f2, Features.VIRTIO_NET_F_GUEST_TSO4) || Features.has(f2, Features.VIRTIO_NET_F_GUEST_CSUM),
                    "o2's guest took no GUEST_* offload: 0x" + Long.toHexString(f2));
            g1.runOk("ping -c 1 -W 5 " + g2.ip(), CMD);
            Path counters = sw.countersPath();
            CountersFile.Snapshot before = CountersFile.read(counters);
            httpTransfer(g1, g2, 16 * 1024);   // full 64 KiB TSO frames, segmented
            CountersFile.Snapshot after = CountersFile.read(counters);
            long mean = meanFrame(before, after, "o1", "rx");
            long delivered = meanFrame(before, after, "o2", "tx");
            System.out.printf("16 MiB to a guest without offloads: mean frame %d bytes from o1, %d bytes into o2%n", mean, delivered);
            transfer(g1, g2, 4 * 1024);
            assertTrue(mean > 8000, "the sender still used TSO: mean frame " + mean);
            assertTrue(delivered <= 1514, "o2 got MSS-sized frames only: mean " + delivered);
            transfer(g2, g1, 4 * 1024);   // plain frames the other way, which o1 takes as they are
            assertEquals(0, value(after, "o1", "drop_bad_offload_header") + value(after, "o2", "drop_bad_offload_header"));
        } finally {
            delete(sockets);
        }
    }

    /**
     * Packed rings ({@code packed=on}) both ways: o1 sends TSO frames that o2, without GUEST_* offloads, gets
     * segmented; o2 sends TSO frames (it still has HOST_TSO) that o1 gets whole with their header.
     */
    @Test
    @Timeout(600)
    void packedRingsCarryAndSegment() throws Exception {
        QemuGuest.require();
        Path sockets = Files.createTempDirectory("vso");
        List<String> packed = List.of("-global", "virtio-net-pci.packed=on");
        List<String> packedPlain = new ArrayList<>(packed);
        packedPlain.addAll(NO_GUEST_OFFLOADS);
        try (Switch sw = Switch.start(ConfigLoader.parse(topology(sockets, "learning", ""), "offloads-p.yaml"));
             QemuGuest g1 = QemuGuest.start("off-p1", sockets.resolve("o1.sock"), false, "52:54:00:96:03:01", "10.96.3.1/24", work(), packed);
             QemuGuest g2 = QemuGuest.start("off-p2", sockets.resolve("o2.sock"), false, "52:54:00:96:03:02", "10.96.3.2/24", work(),
                     packedPlain)) {
            g1.awaitReady(BOOT);
            g2.awaitReady(BOOT);
            assertTrue(sw.port("o1").device.txQueue().isPacked() && sw.port("o2").device.rxQueue().isPacked(), "packed rings");
            g1.runOk("ping -c 1 -W 5 " + g2.ip(), CMD);
            Path counters = sw.countersPath();
            CountersFile.Snapshot before = CountersFile.read(counters);
            httpTransfer(g1, g2, 8 * 1024);
            httpTransfer(g2, g1, 8 * 1024);
            CountersFile.Snapshot after = CountersFile.read(counters);
            transfer(g1, g2, 2 * 1024);
            long fromO1 = meanFrame(before, after, "o1", "rx");
            long intoO2 = meanFrame(before, after, "o2", "tx");
            long fromO2 = meanFrame(before, after, "o2", "rx");
            long intoO1 = meanFrame(before, after, "o1", "tx");
            System.out.printf("packed rings: o1 sends %d B frames, o2 gets %d B; o2 sends %d B, o1 gets %d B (means)%n",
                    fromO1, intoO2, fromO2, intoO1);
            assertTrue(intoO2 <= 1514, "segmented for o2: " + intoO2);
            assertTrue(fromO1 > 4 * 1514 && fromO2 > 4 * 1514, "both sent TSO frames");
            assertEquals(0, value(after, "o1", "drop_bad_offload_header") + value(after, "o2", "drop_bad_offload_header"));
        } finally {
            delete(sockets);
        }
    }

    /**
     * (c) dpdk-testpmd negotiates no offloads: between two guests, each cross-connected to one testpmd port with
     * testpmd forwarding port to port ({@code io}), everything testpmd gets must be a plain, valid frame, or the
     * receiving guest would drop it (it checks every TCP checksum) and the transfer would not complete intact.
     */
    @Test
    @Timeout(600)
    void testpmdBetweenTwoGuestsGetsPlainFrames() throws Exception {
        QemuGuest.require();
        TestPmd.require();
        Path sockets = Files.createTempDirectory("vso");
        String extra = """
                  - name: p0
                    socket: %s
                  - name: p1
                    socket: %s
                links:
                  - [o1, p0]
                  - [p1, o2]
                """.formatted(sockets.resolve("p0.sock"), sockets.resolve("p1.sock"));
        try (Switch sw = Switch.start(ConfigLoader.parse(topology(sockets, "cross-connect", extra), "offloads-c.yaml"));
             QemuGuest g1 = QemuGuest.start("off-c1", sockets.resolve("o1.sock"), false, "52:54:00:96:02:01", "10.96.2.1/24", work());
             QemuGuest g2 = QemuGuest.start("off-c2", sockets.resolve("o2.sock"), false, "52:54:00:96:02:02", "10.96.2.2/24", work())) {
            List<String> eal = new ArrayList<>(List.of("-l", "0,1", "--no-pci", "--no-huge", "-m", "512",
                    "--vdev", "net_virtio_user0,mac=02:00:00:96:02:10,path=" + sockets.resolve("p0.sock"),
                    "--vdev", "net_virtio_user1,mac=02:00:00:96:02:11,path=" + sockets.resolve("p1.sock")));
            try (TestPmd pmd = TestPmd.start("off-pmd", work(), eal, List.of("-i", "--total-num-mbufs=8192", "--nb-cores=1"))) {
                pmd.command("set fwd io", Duration.ofSeconds(10));
                pmd.command("start", Duration.ofSeconds(30));
                g1.awaitReady(BOOT);
                g2.awaitReady(BOOT);
                long fp = sw.port("p0").device.features();
                assertFalse(Features.has(fp, Features.VIRTIO_NET_F_GUEST_CSUM) || Features.has(fp, Features.VIRTIO_NET_F_GUEST_TSO4),
                        "testpmd negotiated no offload: 0x" + Long.toHexString(fp));
                g1.runOk("ping -c 1 -W 5 " + g2.ip(), CMD);
                Path counters = sw.countersPath();
                CountersFile.Snapshot before = CountersFile.read(counters);
                transfer(g1, g2, 4 * 1024);
                transfer(g2, g1, 2 * 1024);
                CountersFile.Snapshot after = CountersFile.read(counters);
                long mean = meanFrame(before, after, "o1", "rx");
                long toPmd = meanFrame(before, after, "p0", "tx");
                System.out.printf("through testpmd: mean frame %d bytes from o1, %d bytes into testpmd; testpmd %s%n", mean, toPmd,
                        pmd.portStats());
                assertTrue(toPmd <= 1514, "testpmd got MSS-sized frames only: mean " + toPmd);
                pmd.command("stop", Duration.ofSeconds(30));
            }
        } finally {
            delete(sockets);
        }
    }

    /** {@code kib} KiB of random data from {@code from}'s busybox httpd (sendfile) to {@code to}'s wget, md5 intact. */
    static void httpTransfer(QemuGuest from, QemuGuest to, int kib) {
        String sent = from.runOk("mkdir -p /tmp/www && dd if=/dev/urandom of=/tmp/www/tx bs=1024 count=" + kib
                + " 2>/dev/null && md5sum /tmp/www/tx", CMD).trim().split("\\s+")[0];
        from.runOk("netstat -ltn | grep -q ':8080 ' || httpd -p 8080 -h /tmp/www", CMD);
        to.runOk("rm -f /tmp/rx; wget -q -O /tmp/rx http://" + from.ip() + ":8080/tx", Duration.ofSeconds(300));
        String received = to.runOk("md5sum /tmp/rx", CMD).trim().split("\\s+")[0];
        assertEquals(32, sent.length(), sent);
        assertEquals(sent, received, "md5 of what " + to.name() + " fetched");
    }

    /** A topology with guest ports o1 and o2 (and {@code extra} ports and links). */
    static String topology(Path sockets, String mode, String extra) {
        return """
                switch:
                  mode: %s
                  notify: hybrid
                  runtime-dir: %s
                ports:
                  - name: o1
                    socket: %s
                  - name: o2
                    socket: %s
                %s""".formatted(mode, sockets.resolve("run"), sockets.resolve("o1.sock"), sockets.resolve("o2.sock"), extra);
    }

    /** Mean frame size on {@code port}'s rx or tx side between two snapshots. */
    static long meanFrame(CountersFile.Snapshot before, CountersFile.Snapshot after, String port, String side) {
        long frames = value(after, port, side + "_packets") - value(before, port, side + "_packets");
        long bytes = value(after, port, side + "_bytes") - value(before, port, side + "_bytes");
        return bytes / Math.max(1, frames);
    }

    private static Path work() {
        return Path.of("target", "qemu-offloads").toAbsolutePath();
    }

    static void delete(Path dir) throws Exception {
        try (Stream<Path> files = Files.walk(dir)) {
            files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }
}
