package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.protocol.Features;
import io.vswitch.testing.TcpFrames;
import io.vswitch.testing.TestFrontend;
import io.vswitch.protocol.VirtioNetHeader;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static io.vswitch.engine.TestPmdForwardingTest.value;
import static io.vswitch.testing.TcpFrames.*;
import static io.vswitch.protocol.VirtioNetHeader.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Offloads through the switch with the Java test frontend: hostile virtio-net headers are counted drops; a
 * 64 KiB TSO frame reaches a guest that negotiated the GUEST_* offloads as one frame with its header, and one
 * that did not as MSS-sized frames with correct checksums; with a VLAN tag inserted on the way, csum_start
 * moves with it.
 */
class OffloadHeadersTest {
    private static final long OFFLOADS = Features.OFFLOAD_FEATURES;
    private static final int L4 = ETH + IPV4;

    @TempDir
    Path dir;

    private String topology(String a, String b, String c) {
        return """
                switch:
                  mode: learning
                  notify: poll
                  runtime-dir: %s
                ports:
                  - name: a
                    socket: %s
                %s
                  - name: b
                    socket: %s
                %s
                  - name: c
                    socket: %s
                %s
                """.formatted(dir.resolve("run"), dir.resolve("a.sock"), a, dir.resolve("b.sock"), b, dir.resolve("c.sock"), c);
    }

    private static TestFrontend.Options options(boolean offloads) {
        return new TestFrontend.Options().mergeable(true).memorySize(16L << 20).extraFeatures(offloads ? OFFLOADS : 0);
    }

    private static byte[] withHeader(byte[] header, byte[] frame) {
        byte[] all = Arrays.copyOf(header, header.length + frame.length);
        System.arraycopy(frame, 0, all, header.length, frame.length);
        return all;
    }

    @Test
    void hostileHeadersAreCountedDropsAndTheQueueKeepsWorking() throws Exception {
        try (io.vswitch.testing.LogCapture log = new io.vswitch.testing.LogCapture();
             Switch sw = Switch.start(ConfigLoader.parse(topology("", "", ""), "hostile.yaml"));
             TestFrontend a = TestFrontend.connect(dir.resolve("a.sock"), options(true)).setUp();
             TestFrontend b = TestFrontend.connect(dir.resolve("b.sock"), options(true)).setUp();
             TestFrontend c = TestFrontend.connect(dir.resolve("c.sock"), options(false)).setUp()) {
            for (String port : List.of("a", "b", "c")) {
                QemuGuestsTest.awaitCounter(sw.countersPath(), port, "link_up", 1);
            }
            b.postRxBuffers(64, 2048);
            byte[] v4 = tcp(false, 0, 3000, 1, 1, ACK, 1);
            byte[] v6 = tcp(true, 0, 3000, 1, 1, ACK, 1);
            List<byte[][]> bad = List.of(
                    new byte[][] {header(F_NEEDS_CSUM | F_RSC_INFO, 0, 0, 0, L4, 16), v4},        // unknown flag
                    new byte[][] {header(F_NEEDS_CSUM, 0, 0, 0, v4.length - 1, 16), v4},         // field beyond the frame
                    new byte[][] {header(F_NEEDS_CSUM, 0, 0, 0, 0xFFFF, 0xFFFF), v4},            // far beyond
                    new byte[][] {header(F_NEEDS_CSUM, 0, 0, 0, 2, 0), v4},                      // in the Ethernet header
                    new byte[][] {header(F_NEEDS_CSUM, 0, 0xFFFF, 0, L4, 16), v4},               // hdr_len beyond
                    new byte[][] {header(F_NEEDS_CSUM, GSO_TCPV4, 0, 1448, ETH + IPV6, 16), v6}, // TCPV4 on IPv6
                    new byte[][] {header(F_NEEDS_CSUM, GSO_TCPV4, 0, 0, L4, 16), v4},            // gso_size 0
                    new byte[][] {header(F_NEEDS_CSUM, GSO_TCPV4, 0, 9000, L4, 16), v4},         // segments over the MTU
                    new byte[][] {header(F_NEEDS_CSUM, GSO_UDP, 0, 1448, L4, 6), v4},            // UFO: not offered
                    new byte[][] {header(F_NEEDS_CSUM, 2, 0, 1448, L4, 16), v4},                 // no such gso_type
                    new byte[][] {header(0, GSO_TCPV4, 0, 1448, L4, 16), v4},                    // GSO without NEEDS_CSUM
                    new byte[][] {header(F_NEEDS_CSUM, GSO_ECN, 0, 0, L4, 16), v4});             // ECN alone
            for (byte[][] frame : bad) {
                a.transmitParts(new byte[][] {withHeader(frame[0], frame[1])}, false);
            }
            // from a guest that negotiated no offload, NEEDS_CSUM is nonsense too
            c.transmitParts(new byte[][] {withHeader(header(F_NEEDS_CSUM, 0, 0, 0, L4, 16), v4)}, false);
            AwaitCounter.atLeast(sw.countersPath(), "a", "drop_bad_offload_header", bad.size());
            AwaitCounter.atLeast(sw.countersPath(), "c", "drop_bad_offload_header", 1);
            byte[] plain = tcp(false, 0, 100, 1, 1, ACK, 1);
            a.transmit(plain);   // a plain frame after all that: forwarded
            List<RxFrame> got = receive(b, 1);
            assertArrayEquals(plain, got.getFirst().data());
            CountersFile.Snapshot snap = CountersFile.read(sw.countersPath());
            assertEquals(bad.size(), value(snap, "a", "drop_bad_offload_header"));
            assertEquals(1, value(snap, "a", "rx_packets"), "refused frames are not counted as received");
            assertEquals(0, value(snap, "a", "queue_faults") + value(snap, "b", "queue_faults") + value(snap, "c", "queue_faults"));
            assertEquals(bad.size() + 1, a.txCompleted().size(), "every descriptor was returned");
            io.vswitch.testing.LogCapture.Line line = log.await("port c: dropped a frame whose virtio-net header is invalid (CSUM_NOT_NEGOTIATED)");
            assertTrue(!line.thread().startsWith("vswitch-worker"), "logged by housekeeping, not the worker: " + line.thread());
        }
    }

    @Test
    void tsoFrameCrossesWholeOrSegmented() throws Exception {
        try (Switch sw = Switch.start(ConfigLoader.parse(topology("", "", ""), "tso.yaml"));
             TestFrontend a = TestFrontend.connect(dir.resolve("a.sock"), options(true)).setUp();
             TestFrontend b = TestFrontend.connect(dir.resolve("b.sock"), options(true)).setUp();
             TestFrontend c = TestFrontend.connect(dir.resolve("c.sock"), options(false)).setUp()) {
            for (String port : List.of("a", "b", "c")) {
                QemuGuestsTest.awaitCounter(sw.countersPath(), port, "link_up", 1);
            }
            b.postRxBuffers(128, 2048);
            c.postRxBuffers(128, 2048);
            for (boolean v6 : new boolean[] {false, true}) {
                int l4 = ETH + (v6 ? IPV6 : IPV4);
                int mss = v6 ? 1428 : 1448;
                byte[] frame = tcp(v6, 0, 65_000 - l4 - TCP, 9, 77, ACK | PSH | FIN, 100);
                byte[] h = header(F_NEEDS_CSUM, v6 ? GSO_TCPV6 : GSO_TCPV4, l4 + TCP, mss, l4, 16);
                // the header split over two descriptors, the frame over two more
                a.transmitParts(new byte[][] {Arrays.copyOf(h, 5), Arrays.copyOfRange(h, 5, 12),
                        Arrays.copyOf(frame, 100), Arrays.copyOfRange(frame, 100, frame.length)}, false);
                // b negotiated GUEST_TSO and GUEST_CSUM: one frame, header carried over
                RxFrame whole = receive(b, 1).getFirst();
                assertArrayEquals(frame, whole.data());
                ByteBuffer hb = ByteBuffer.wrap(whole.header()).order(ByteOrder.LITTLE_ENDIAN);
                assertEquals(F_NEEDS_CSUM, hb.get(FLAGS));
                assertEquals(v6 ? GSO_TCPV6 : GSO_TCPV4, hb.get(GSO_TYPE));
                assertEquals(mss, hb.getShort(VirtioNetHeader.GSO_SIZE));
                assertEquals(l4, hb.getShort(VirtioNetHeader.CSUM_START));
                assertEquals(16, hb.getShort(VirtioNetHeader.CSUM_OFFSET));
                // c did not: MSS-sized frames, plain, each with right checksums, reassembling the payload
                int n = (frame.length - l4 - TCP + mss - 1) / mss;
                List<RxFrame> segments = receive(c, n);
                ByteArrayOutputStream payload = new ByteArrayOutputStream();
                for (RxFrame s : segments) {
                    assertEquals(0, s.header()[FLAGS] | s.header()[GSO_TYPE], "a plain header");
                    assertTrue(s.data().length <= l4 + TCP + mss);
                    assertTrue(tcpChecksumOk(s.data(), ETH, v6), "TCP checksum");
                    assertTrue(v6 || ipv4ChecksumOk(s.data(), ETH), "IPv4 checksum");
                    payload.write(s.data(), l4 + TCP, s.data().length - l4 - TCP);
                }
                assertArrayEquals(Arrays.copyOfRange(frame, l4 + TCP, frame.length), payload.toByteArray());
                b.postRxBuffers(64, 2048);
                c.postRxBuffers(64, 2048);
            }
            CountersFile.Snapshot snap = CountersFile.read(sw.countersPath());
            assertEquals(2, value(snap, "a", "rx_packets"));
            assertEquals(2, value(snap, "b", "tx_packets"));
            assertTrue(value(snap, "c", "tx_packets") > 80, "segments counted as the frames they are");
        }
    }

    @Test
    void checksumAndSegmentsFollowAVlanTag() throws Exception {
        String yaml = topology("    vlan: 10", "    trunk: [10]", "    trunk: [10]");
        try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "tso-vlan.yaml"));
             TestFrontend a = TestFrontend.connect(dir.resolve("a.sock"), options(true)).setUp();
             TestFrontend b = TestFrontend.connect(dir.resolve("b.sock"), options(true)).setUp();
             TestFrontend c = TestFrontend.connect(dir.resolve("c.sock"), options(false)).setUp()) {
            for (String port : List.of("a", "b", "c")) {
                QemuGuestsTest.awaitCounter(sw.countersPath(), port, "link_up", 1);
            }
            b.postRxBuffers(64, 2048);
            c.postRxBuffers(64, 2048);
            byte[] frame = tcp(false, 0, 20_000, 5, 1, ACK, 1);
            a.transmitParts(new byte[][] {withHeader(header(F_NEEDS_CSUM, GSO_TCPV4, L4 + TCP, 1448, L4, 16), frame)}, false);
            RxFrame tagged = receive(b, 1).getFirst();
            assertEquals(frame.length + 4, tagged.data().length);
            assertEquals(0x8100, u16(tagged.data(), 12));
            assertEquals(10, u16(tagged.data(), 14) & 0xFFF);
            ByteBuffer hb = ByteBuffer.wrap(tagged.header()).order(ByteOrder.LITTLE_ENDIAN);
            assertEquals(L4 + 4, hb.getShort(VirtioNetHeader.CSUM_START), "csum_start moved with the inserted tag");
            assertEquals(L4 + TCP + 4, hb.getShort(VirtioNetHeader.HDR_LEN), "hdr_len too");
            List<RxFrame> segments = receive(c, (20_000 + 1447) / 1448);
            for (RxFrame s : segments) {
                assertEquals(10, u16(s.data(), 14) & 0xFFF);
                assertTrue(tcpChecksumOk(s.data(), ETH + 4, false) && ipv4ChecksumOk(s.data(), ETH + 4));
            }
            // and a partial checksum alone, completed for c, carried for b
            byte[] small = tcp(false, 0, 333, 6, 1, ACK | PSH, 2);
            a.transmitParts(new byte[][] {withHeader(header(F_NEEDS_CSUM, 0, 0, 0, L4, 16), small)}, false);
            RxFrame carried = receive(b, 1).getFirst();
            assertEquals(F_NEEDS_CSUM, carried.header()[FLAGS]);
            assertEquals(L4 + 4, ByteBuffer.wrap(carried.header()).order(ByteOrder.LITTLE_ENDIAN).getShort(VirtioNetHeader.CSUM_START));
            RxFrame completed = receive(c, 1).getFirst();
            assertEquals(0, completed.header()[FLAGS]);
            assertTrue(tcpChecksumOk(completed.data(), ETH + 4, false));
        }
    }

    /** A port on another worker gets finished frames: the hand-off buffers are MTU-sized and carry no header. */
    @Test
    void tsoFrameToAnotherWorkerIsSegmentedBeforeTheHandOff() throws Exception {
        String yaml = topology("    worker: 0", "    worker: 1", "    worker: 1").replace("notify: poll", "notify: monitor\n  workers: 2");
        try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "tso-workers.yaml"));
             TestFrontend a = TestFrontend.connect(dir.resolve("a.sock"), options(true)).setUp();
             TestFrontend b = TestFrontend.connect(dir.resolve("b.sock"), options(true)).setUp()) {
            for (String port : List.of("a", "b")) {
                QemuGuestsTest.awaitCounter(sw.countersPath(), port, "link_up", 1);
            }
            b.postRxBuffers(64, 2048);
            byte[] frame = tcp(false, 0, 10_000, 8, 1, ACK | PSH, 1);
            a.transmitParts(new byte[][] {withHeader(header(F_NEEDS_CSUM, GSO_TCPV4, 0, 1448, L4, 16), frame)}, false);
            List<RxFrame> segments = receive(b, (10_000 + 1447) / 1448);
            ByteArrayOutputStream payload = new ByteArrayOutputStream();
            for (RxFrame s : segments) {
                assertTrue(tcpChecksumOk(s.data(), ETH, false) && ipv4ChecksumOk(s.data(), ETH));
                payload.write(s.data(), L4 + TCP, s.data().length - L4 - TCP);
            }
            assertArrayEquals(Arrays.copyOfRange(frame, L4 + TCP, frame.length), payload.toByteArray());
        }
    }

    @Test
    void offloadsFalseOffersNone() throws Exception {
        String yaml = topology("    offloads: false", "    offloads: true", "");
        io.vswitch.config.SwitchConfig config = ConfigLoader.parse(yaml, "off.yaml");
        assertEquals(List.of(false, true, true), config.ports().stream().map(io.vswitch.config.PortConfig::offloads).toList());
        org.junit.jupiter.api.Assertions.assertThrows(io.vswitch.config.ConfigException.class,
                () -> ConfigLoader.parse(topology("    offloads: maybe", "", ""), "bad.yaml"));
        try (Switch sw = Switch.start(config);
             TestFrontend a = TestFrontend.connect(dir.resolve("a.sock"), options(false));
             TestFrontend b = TestFrontend.connect(dir.resolve("b.sock"), options(false))) {
            assertEquals(Features.DEVICE_FEATURES & ~OFFLOADS, a.getFeatures(), "a offers no offload");
            assertEquals(Features.DEVICE_FEATURES, b.getFeatures());
            a.setFeatures(a.options().features() | OFFLOADS);
            AwaitCounter.atLeast(sw.countersPath(), "a", "protocol_errors", 1);   // and refuses them
            assertTrue(io.vswitch.config.TopologyWriter.write(config).contains("offloads: false"));
        }
    }

    private record RxFrame(byte[] data, byte[] header) {
    }

    /** Waits (a condition, with a deadline) until {@code n} frames arrived on {@code f}. */
    private static List<RxFrame> receive(TestFrontend f, int n) throws InterruptedException {
        long deadline = System.nanoTime() + 10_000_000_000L;
        List<RxFrame> got = new ArrayList<>();
        while (got.size() < n && System.nanoTime() < deadline) {
            for (TestFrontend.RxFrame r : f.receive()) {
                got.add(new RxFrame(r.data(), r.header()));
            }
            Thread.sleep(1);
        }
        assertEquals(n, got.size(), "frames arrived");
        return got;
    }
}
