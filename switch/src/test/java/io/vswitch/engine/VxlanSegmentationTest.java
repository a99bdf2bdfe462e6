package io.vswitch.engine;

import io.vswitch.config.UplinkConfig;
import io.vswitch.vhost.virtio.PacketBatch;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.channels.DatagramChannel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * UDP segmentation offload on the VXLAN port, two {@link VxlanUplink}s facing each other on loopback: bursts
 * of one length leave as UDP_SEGMENT sends and arrive as UDP_GRO buffers that are split back into the same
 * frames in the same order; runs of several lengths, floods to two remotes, batches smaller than a coalesced
 * buffer, a peer without segmentation either way; and the checks still apply to every datagram of a
 * coalesced buffer (foreign VNI, over MTU), each counted.
 */
class VxlanSegmentationTest {
    private static final Inet4Address LO = (Inet4Address) InetAddress.ofLiteral("127.0.0.1");

    @TempDir
    Path dir;
    private CountersFile counters;
    private final List<VxlanUplink> open = new ArrayList<>();
    private final Arena arena = Arena.ofConfined();

    @BeforeEach
    void setUp() throws IOException {
        counters = CountersFile.create(dir.resolve("counters"), 256);
    }

    @AfterEach
    void tearDown() throws IOException {
        open.forEach(VxlanUplink::close);
        counters.close();
        arena.close();
    }

    @Test
    void burstOfOneLengthIsSegmentedAndSplitBackInOrder() throws Exception {
        UplinkConfig.Endpoint a = endpoint();
        UplinkConfig.Endpoint b = endpoint();
        VxlanUplink tx = uplink("a", a, List.of(b), 42, 1500, true);
        VxlanUplink rx = uplink("b", b, List.of(a), 42, 1500, true);
        List<byte[]> sent = new ArrayList<>();
        // 40 of 64 bytes, 3 of 300, 1 of 64 (ends a run: shorter), 20 of 64 again: several groups per flush
        for (int i = 0; i < 64; i++) {
            int length = i < 40 ? 64 : i < 43 ? 300 : 64;
            byte[] f = frame(0x020000000002L, 0x020000000001L, i, length);
            sent.add(f);
            assertTrue(tx.transmit(new MemorySegment[] {segment(f)}, new long[] {0}, new int[] {f.length}, 1, f.length));
        }
        tx.flush();
        assertTrue(tx.segmentedSends() > 0, "sent with UDP_SEGMENT");
        List<byte[]> got = receive(rx, new PacketBatch(8), sent.size());   // a batch smaller than one buffer
        assertEquals(sent.size(), got.size());
        for (int i = 0; i < sent.size(); i++) {
            assertArrayEquals(sent.get(i), got.get(i), "frame " + i);
        }
        assertTrue(rx.coalescedReceives() > 0, "received as UDP_GRO buffers");
        assertEquals(0, drops(rx, "b"));
    }

    @Test
    void floodGoesToEveryRemoteAndPeersWithoutSegmentationInteroperate() throws Exception {
        UplinkConfig.Endpoint a = endpoint();
        UplinkConfig.Endpoint b = endpoint();
        UplinkConfig.Endpoint c = endpoint();
        VxlanUplink tx = uplink("a", a, List.of(b, c), 42, 1500, true);
        VxlanUplink segmented = uplink("b", b, List.of(a), 42, 1500, true);
        VxlanUplink plain = uplink("c", c, List.of(a), 42, 1500, false);
        List<byte[]> sent = new ArrayList<>();
        for (int i = 0; i < 50; i++) {
            byte[] f = frame(0xffffffffffffL, 0x020000000001L, i, 64 + (i / 20) * 10);
            sent.add(f);
            tx.transmit(new MemorySegment[] {segment(f)}, new long[] {0}, new int[] {f.length}, 1, f.length);
        }
        tx.flush();
        assertFramesEqual(sent, receive(segmented, new PacketBatch(32), sent.size()));
        assertFramesEqual(sent, receive(plain, new PacketBatch(32), sent.size()));   // the kernel segmented them

        // and back: a sender without segmentation to a receiver with GRO on
        UplinkConfig.Endpoint d = endpoint();
        UplinkConfig.Endpoint e = endpoint();
        VxlanUplink plainTx = uplink("d", d, List.of(e), 42, 1500, false);
        VxlanUplink back = uplink("e", e, List.of(d), 42, 1500, true);
        for (byte[] f : sent) {
            plainTx.transmit(new MemorySegment[] {segment(f)}, new long[] {0}, new int[] {f.length}, 1, f.length);
        }
        plainTx.flush();
        assertEquals(0, plainTx.segmentedSends());
        assertFramesEqual(sent, receive(back, new PacketBatch(32), sent.size()));
    }

    @Test
    void everyDatagramOfACoalescedBufferIsChecked() throws Exception {
        UplinkConfig.Endpoint a = endpoint();
        UplinkConfig.Endpoint b = endpoint();
        VxlanUplink wrongVni = uplink("a", a, List.of(b), 7, 9000, true);
        VxlanUplink rx = uplink("b", b, List.of(a), 8, 1500, true);
        for (int i = 0; i < 40; i++) {
            byte[] f = frame(0x020000000002L, 0x020000000001L, i, 64);
            wrongVni.transmit(new MemorySegment[] {segment(f)}, new long[] {0}, new int[] {f.length}, 1, f.length);
        }
        wrongVni.flush();
        awaitDrops(rx, "b", 40);
        rx.publishCounts();
        assertEquals(40, uplinkCounters("b").dropVni.get(), "each datagram of the buffer counted as drop_vni");
        assertEquals(0, portCounters("b").dropOverMtu.get());
    }

    @Test
    void overlongDatagramsInACoalescedBufferAreOverMtu() throws Exception {
        UplinkConfig.Endpoint a = endpoint();
        UplinkConfig.Endpoint b = endpoint();
        VxlanUplink big = uplink("a", a, List.of(b), 8, 9000, true);
        VxlanUplink rx = uplink("b", b, List.of(a), 8, 1500, true);
        for (int i = 0; i < 40; i++) {
            byte[] f = frame(0x020000000002L, 0x020000000001L, i, 2000);
            big.transmit(new MemorySegment[] {segment(f)}, new long[] {0}, new int[] {f.length}, 1, f.length);
        }
        big.flush();
        awaitDrops(rx, "b", 40);
        rx.publishCounts();
        assertEquals(40, portCounters("b").dropOverMtu.get());
    }

    @Test
    void datagramsTheKernelDroppedForAFullSocketBufferAreCounted() throws Exception {
        for (boolean segmentation : new boolean[] {false, true}) {
            String tx = "tx" + segmentation;
            String rx = "rx" + segmentation;
            UplinkConfig.Endpoint a = endpoint();
            UplinkConfig.Endpoint b = endpoint();
            VxlanUplink sender = uplink(tx, a, List.of(b), 42, 1500, false);
            VxlanUplink receiver = uplink(rx, b, List.of(a), 42, 1500, segmentation);
            byte[] f = frame(0x020000000002L, 0x020000000001L, 1, 64);
            MemorySegment[] seg = {segment(f)};
            int total = 40_000;   // far more than a 4 MiB receive buffer holds while nobody reads
            for (int i = 0; i < total; i++) {
                sender.transmit(seg, new long[] {0}, new int[] {f.length}, 1, f.length);
                if (i % 64 == 63) {
                    sender.flush();
                }
            }
            sender.flush();
            sender.publishCounts();
            long sent = total - portCounters(tx).dropNoBuffers.get() - uplinkCounters(tx).dropTxError.get();
            PacketBatch batch = new PacketBatch(32);
            long delivered = 0;
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (delivered + portCounters(rx).dropRxRingFull.get() < sent && System.nanoTime() < deadline) {
                delivered += receiver.receive(batch);
                receiver.publishCounts();
            }
            long kernelDrops = portCounters(rx).dropRxRingFull.get();
            assertTrue(kernelDrops > 0, "the socket buffer overflowed (segmentation " + segmentation + ")");
            assertEquals(sent, delivered + kernelDrops, "every datagram delivered or counted (segmentation "
                    + segmentation + ")");
        }
    }

    /**
     * A route whose MTU is smaller than a segment (a veth of MTU 1000, 1008-byte datagrams) refuses
     * UDP_SEGMENT with EINVAL (older kernels also refuse it with EIO on a device without checksum offload): the
     * group is sent again datagram by datagram (which the kernel fragments), nothing is lost, and the port
     * stays on plain sends. Two namespaces {@code vsu2-*} (root only; skipped loudly otherwise).
     */
    @Test
    void aRouteThatCannotSegmentGetsPlainDatagrams() throws Exception {
        io.vswitch.testing.Netns.require();
        String tag = io.vswitch.testing.Netns.tag();
        int k = java.util.concurrent.ThreadLocalRandom.current().nextInt(1, 255);
        try (io.vswitch.testing.Netns one = io.vswitch.testing.Netns.create("vsu2-" + tag + "-s");
             io.vswitch.testing.Netns two = io.vswitch.testing.Netns.create("vsu2-" + tag + "-r")) {
            one.veth("vsu2-" + tag + "s", "vsu2-" + tag + "r", 1000);
            io.vswitch.testing.Netns.sh("ip link set vsu2-" + tag + "s netns " + two.name());
            one.exec("ip addr add 10.217." + k + ".1/24 dev vsu2-" + tag + "r");
            one.exec("ip link set vsu2-" + tag + "r up");
            two.exec("ip addr add 10.217." + k + ".2/24 dev vsu2-" + tag + "s");
            two.exec("ip link set vsu2-" + tag + "s up");
            Inet4Address ip1 = (Inet4Address) InetAddress.ofLiteral("10.217." + k + ".1");
            Inet4Address ip2 = (Inet4Address) InetAddress.ofLiteral("10.217." + k + ".2");
            UplinkConfig.Endpoint a = new UplinkConfig.Endpoint(ip1, 4789);
            UplinkConfig.Endpoint b = new UplinkConfig.Endpoint(ip2, 4789);
            VxlanUplink tx = one.inside(() -> uplink("s", a, List.of(b), 42, 1500, true));   // sockets made inside
            VxlanUplink rx = two.inside(() -> uplink("r", b, List.of(a), 42, 1500, true));
            List<byte[]> sent = new ArrayList<>();
            for (int round = 0; round < 2; round++) {
                for (int i = 0; i < 20; i++) {
                    byte[] f = frame(0x020000000002L, 0x020000000001L, round * 20 + i, 1000);
                    sent.add(f);
                    tx.transmit(new MemorySegment[] {segment(f)}, new long[] {0}, new int[] {f.length}, 1, f.length);
                }
                tx.flush();
                tx.publishCounts();
                assertTrue(!tx.segmenting(), "segmentation off after the refusal (segmented sends " + tx.segmentedSends()
                        + ", tx errors " + uplinkCounters("s").dropTxError.get() + ", no buffers "
                        + portCounters("s").dropNoBuffers.get() + ")");
            }
            tx.publishCounts();
            assertEquals(0, uplinkCounters("s").dropTxError.get());
            assertEquals(0, portCounters("s").dropNoBuffers.get());
            assertFramesEqual(sent, receive(rx, new PacketBatch(32), sent.size()));   // the first send waits for ARP
        }
    }

    private long pendingDropsSeen;

    /** Receives until {@code expected} drops were counted (or 5 s passed); frames must not come through. */
    private void awaitDrops(VxlanUplink rx, String name, long expected) {
        PacketBatch batch = new PacketBatch(32);
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (System.nanoTime() < deadline) {
            assertEquals(0, rx.receive(batch), "no frame gets through");
            rx.publishCounts();
            pendingDropsSeen = drops(rx, name);
            if (pendingDropsSeen >= expected) {
                return;
            }
            Thread.onSpinWait();
        }
        throw new AssertionError("drops " + pendingDropsSeen + ", expected " + expected);
    }

    private long drops(VxlanUplink rx, String name) {
        rx.publishCounts();
        UplinkCounters u = uplinkCounters(name);
        PortCounters p = portCounters(name);
        return u.dropMalformed.get() + u.dropVni.get() + u.dropForeignVtep.get() + p.dropOverMtu.get();
    }

    private final java.util.Map<String, UplinkCounters> uplinkCounters = new java.util.HashMap<>();
    private final java.util.Map<String, PortCounters> portCounters = new java.util.HashMap<>();

    private UplinkCounters uplinkCounters(String name) {
        return uplinkCounters.get(name);
    }

    private PortCounters portCounters(String name) {
        return portCounters.get(name);
    }

    private synchronized VxlanUplink uplink(String name, UplinkConfig.Endpoint local, List<UplinkConfig.Endpoint> remotes, int vni,
                               int mtu, boolean segmentation) {
        PortCounters p = new PortCounters(counters, name);
        UplinkCounters u = new UplinkCounters(counters, name);
        portCounters.put(name, p);
        uplinkCounters.put(name, u);
        VxlanUplink up = new VxlanUplink(name, new UplinkConfig.Vxlan(local, remotes, vni),
                mtu, 32, p, u, segmentation);
        open.add(up);
        return up;
    }

    private static UplinkConfig.Endpoint endpoint() throws IOException {
        try (DatagramChannel probe = DatagramChannel.open().bind(new InetSocketAddress(LO, 0))) {
            return new UplinkConfig.Endpoint(LO, ((InetSocketAddress) probe.getLocalAddress()).getPort());
        }
    }

    private MemorySegment segment(byte[] f) {
        return arena.allocateFrom(ValueLayout.JAVA_BYTE, f);
    }

    /** An Ethernet frame of {@code length} bytes: dst, src, ethertype 0x88b5, a 4-byte sequence, a pattern. */
    static byte[] frame(long dst, long src, int seq, int length) {
        byte[] f = new byte[length];
        for (int i = 0; i < 6; i++) {
            f[i] = (byte) (dst >>> (40 - 8 * i));
            f[6 + i] = (byte) (src >>> (40 - 8 * i));
        }
        f[12] = (byte) 0x88;
        f[13] = (byte) 0xb5;
        f[14] = (byte) (seq >>> 24);
        f[15] = (byte) (seq >>> 16);
        f[16] = (byte) (seq >>> 8);
        f[17] = (byte) seq;
        for (int i = 18; i < length; i++) {
            f[i] = (byte) (i * 7 + seq);
        }
        return f;
    }

    /** Receives until {@code expected} frames came (copied out), or 5 s passed. */
    static List<byte[]> receive(VxlanUplink rx, PacketBatch batch, int expected) {
        List<byte[]> got = new ArrayList<>();
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (got.size() < expected && System.nanoTime() < deadline) {
            int n = rx.receive(batch);
            for (int i = 0; i < n; i++) {
                byte[] f = new byte[batch.frameLength(i)];
                MemorySegment copy = MemorySegment.ofArray(f);
                batch.copyFrame(i, copy, 0);
                got.add(f);
            }
            if (n == 0) {
                Thread.onSpinWait();
            }
        }
        return got;
    }

    private static void assertFramesEqual(List<byte[]> sent, List<byte[]> got) {
        assertEquals(sent.size(), got.size());
        for (int i = 0; i < sent.size(); i++) {
            assertArrayEquals(sent.get(i), got.get(i), "frame " + i);
        }
    }
}
