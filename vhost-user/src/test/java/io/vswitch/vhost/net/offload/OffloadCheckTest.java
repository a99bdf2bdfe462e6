package io.vswitch.vhost.net.offload;

import io.vswitch.protocol.Features;
import io.vswitch.testing.TcpFrames;
import io.vswitch.vhost.virtio.PacketBatch;
import io.vswitch.protocol.VirtioNetHeader;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;

import static io.vswitch.protocol.VirtioNetHeader.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** One test per {@link OffloadRule}, plus the headers real guests send, which must pass. */
class OffloadCheckTest {
    private static final long ALL = Features.DEVICE_FEATURES;
    private static final int MAX_FRAME = 1518;
    private static final int L4 = 14 + 20;
    private static final int L4_V6 = 14 + 40;

    private final OffloadCheck check = new OffloadCheck();

    private static byte[] v4(int payload) {
        return TcpFrames.tcp(false, 0, payload, 1, 1000, TcpFrames.ACK | TcpFrames.PSH, 1);
    }

    private static byte[] v6(int payload) {
        return TcpFrames.tcp(true, 0, payload, 1, 1000, TcpFrames.ACK, 1);
    }

    /** Checks {@code frame} with header fields as given; returns the verdict. */
    private int run(byte[] frame, int flags, int gsoType, int hdrLen, int gsoSize, int csumStart, int csumOffset, long features) {
        PacketBatch b = new PacketBatch(1);
        b.reset();
        b.addFrame(MemorySegment.ofArray(frame), 0, frame.length);
        return check.check(OffloadCheck.word(flags, gsoType, hdrLen, gsoSize, csumStart), csumOffset, features, b, 0,
                frame.length, MAX_FRAME);
    }

    private void refused(OffloadRule rule, int verdict) {
        assertEquals(OffloadCheck.BAD, verdict);
        assertEquals(rule, check.failed());
    }

    @Test
    void headerLayoutIsPinned() {
        assertEquals(12, VirtioNetHeader.SIZE);
        assertEquals(0, VirtioNetHeader.FLAGS);
        assertEquals(1, VirtioNetHeader.GSO_TYPE);
        assertEquals(2, VirtioNetHeader.HDR_LEN);
        assertEquals(4, VirtioNetHeader.GSO_SIZE);
        assertEquals(6, VirtioNetHeader.CSUM_START);
        assertEquals(8, VirtioNetHeader.CSUM_OFFSET);
        assertEquals(10, VirtioNetHeader.NUM_BUFFERS);
        long w = OffloadCheck.word(1, 4, 66, 1428, 54);
        assertEquals(1, OffloadCheck.flags(w));
        assertEquals(4, OffloadCheck.gsoType(w));
        assertEquals(66, OffloadCheck.hdrLen(w));
        assertEquals(1428, OffloadCheck.gsoSize(w));
        assertEquals(54, OffloadCheck.csumStart(w));
    }

    // ------------------------------------------------------------ what Linux guests send: accepted

    @Test
    void linuxTso4IsAccepted() {
        assertEquals(OffloadCheck.TSO, run(v4(60_000), F_NEEDS_CSUM, GSO_TCPV4, 1000, 1448, L4, 16, ALL));
        assertNull(check.failed());
        assertEquals(14, check.l3Offset());
        assertEquals(L4, check.l4Offset());
        assertEquals(L4 + 20, check.payloadOffset());
        assertEquals(1448, check.mss());
        assertFalse(check.isIpv6());
    }

    @Test
    void linuxTso6WithEcnIsAccepted() {
        byte[] f = TcpFrames.tcp(true, 0, 30_000, 1, 1, TcpFrames.ACK | TcpFrames.CWR, 0);
        assertEquals(OffloadCheck.TSO, run(f, F_NEEDS_CSUM, GSO_TCPV6 | GSO_ECN, 74, 1428, L4_V6, 16, ALL));
        assertTrue(check.isIpv6());
    }

    @Test
    void vlanTaggedTsoIsAccepted() {
        byte[] f = TcpFrames.tcp(false, 7, 9000, 1, 1, TcpFrames.ACK, 0);
        assertEquals(OffloadCheck.TSO, run(f, F_NEEDS_CSUM, GSO_TCPV4, 0, 1448, L4 + 4, 16, ALL));
        assertEquals(18, check.l3Offset());
    }

    @Test
    void partialChecksumIsAccepted() {
        assertEquals(OffloadCheck.CSUM, run(v4(100), F_NEEDS_CSUM, GSO_NONE, 0, 0, L4, 16, ALL));
        // UDP's field is at 6: any protocol's checksum can be completed, only the bounds matter
        assertEquals(OffloadCheck.CSUM, run(v4(100), F_NEEDS_CSUM, GSO_NONE, 0, 0, L4, 6, ALL));
    }

    @Test
    void zeroHeaderAndDataValidArePlain() {
        assertEquals(OffloadCheck.PLAIN, run(v4(10), 0, 0, 0, 0, 0, 0, ALL));
        assertEquals(OffloadCheck.PLAIN, run(v4(10), F_DATA_VALID, 0, 0, 0, 0, 0, ALL));
        // fields that mean nothing without NEEDS_CSUM or GSO are ignored
        assertEquals(OffloadCheck.PLAIN, run(v4(10), 0, 0, 0, 999, 9999, 9999, ALL));
    }

    // ------------------------------------------------------------ one test per rule

    @Test
    void unknownFlags() {
        refused(OffloadRule.UNKNOWN_FLAGS, run(v4(100), F_NEEDS_CSUM | F_RSC_INFO, 0, 0, 0, L4, 16, ALL));
        refused(OffloadRule.UNKNOWN_FLAGS, run(v4(100), 0x40, 0, 0, 0, 0, 0, ALL));
    }

    @Test
    void hdrLenOutsideFrame() {
        byte[] f = v4(100);
        refused(OffloadRule.HDR_LEN_OUTSIDE_FRAME, run(f, F_NEEDS_CSUM, 0, f.length + 1, 0, L4, 16, ALL));
    }

    @Test
    void csumNotNegotiated() {
        refused(OffloadRule.CSUM_NOT_NEGOTIATED, run(v4(100), F_NEEDS_CSUM, 0, 0, 0, L4, 16,
                ALL & ~Features.bit(Features.VIRTIO_NET_F_CSUM)));
    }

    @Test
    void csumStartInEthernetHeader() {
        refused(OffloadRule.CSUM_START_IN_ETHERNET_HEADER, run(v4(100), F_NEEDS_CSUM, 0, 0, 0, 13, 16, ALL));
    }

    @Test
    void csumOutsideFrame() {
        byte[] f = v4(100);
        refused(OffloadRule.CSUM_OUTSIDE_FRAME, run(f, F_NEEDS_CSUM, 0, 0, 0, f.length - 1, 0, ALL));
        refused(OffloadRule.CSUM_OUTSIDE_FRAME, run(f, F_NEEDS_CSUM, 0, 0, 0, L4, 0xFFFF, ALL));
        refused(OffloadRule.CSUM_OUTSIDE_FRAME, run(f, F_NEEDS_CSUM, 0, 0, 0, 0xFFFF, 0xFFFF, ALL));
        assertEquals(OffloadCheck.CSUM, run(f, F_NEEDS_CSUM, 0, 0, 0, f.length - 2, 0, ALL), "the last two bytes: inside");
    }

    @Test
    void unknownGsoType() {
        refused(OffloadRule.UNKNOWN_GSO_TYPE, run(v4(3000), F_NEEDS_CSUM, 2, 0, 1448, L4, 16, ALL));
        refused(OffloadRule.UNKNOWN_GSO_TYPE, run(v4(3000), F_NEEDS_CSUM, 0x7F, 0, 1448, L4, 16, ALL));
    }

    @Test
    void ecnWithoutGso() {
        refused(OffloadRule.ECN_WITHOUT_GSO, run(v4(100), F_NEEDS_CSUM, GSO_ECN, 0, 0, L4, 16, ALL));
    }

    @Test
    void gsoNotNegotiated() {
        refused(OffloadRule.GSO_NOT_NEGOTIATED, run(v4(3000), F_NEEDS_CSUM, GSO_TCPV4, 0, 1448, L4, 16,
                ALL & ~Features.bit(Features.VIRTIO_NET_F_HOST_TSO4)));
        refused(OffloadRule.GSO_NOT_NEGOTIATED, run(v6(3000), F_NEEDS_CSUM, GSO_TCPV6, 0, 1428, L4_V6, 16,
                ALL & ~Features.bit(Features.VIRTIO_NET_F_HOST_TSO6)));
        refused(OffloadRule.GSO_NOT_NEGOTIATED, run(v4(3000), F_NEEDS_CSUM, GSO_TCPV4 | GSO_ECN, 0, 1448, L4, 16,
                ALL & ~Features.bit(Features.VIRTIO_NET_F_HOST_ECN)));
        refused(OffloadRule.GSO_NOT_NEGOTIATED, run(v4(3000), F_NEEDS_CSUM, GSO_UDP, 0, 1448, L4, 6, ALL));
        refused(OffloadRule.GSO_NOT_NEGOTIATED, run(v4(3000), F_NEEDS_CSUM, GSO_UDP_L4, 0, 1448, L4, 6, ALL));
    }

    @Test
    void gsoWithoutCsum() {
        refused(OffloadRule.GSO_WITHOUT_CSUM, run(v4(3000), 0, GSO_TCPV4, 0, 1448, L4, 16, ALL));
    }

    @Test
    void gsoTypeMismatch() {
        refused(OffloadRule.GSO_TYPE_MISMATCH, run(v6(3000), F_NEEDS_CSUM, GSO_TCPV4, 0, 1448, L4_V6, 16, ALL));
        refused(OffloadRule.GSO_TYPE_MISMATCH, run(v4(3000), F_NEEDS_CSUM, GSO_TCPV6, 0, 1448, L4, 16, ALL));
        byte[] udp = v4(3000);
        udp[14 + 9] = 17;
        refused(OffloadRule.GSO_TYPE_MISMATCH, run(udp, F_NEEDS_CSUM, GSO_TCPV4, 0, 1448, L4, 16, ALL));
        byte[] ext = v6(3000);
        ext[14 + 6] = 0;   // a hop-by-hop extension header before TCP: not segmented
        refused(OffloadRule.GSO_TYPE_MISMATCH, run(ext, F_NEEDS_CSUM, GSO_TCPV6, 0, 1428, L4_V6, 16, ALL));
        refused(OffloadRule.GSO_TYPE_MISMATCH, run(new byte[30], F_NEEDS_CSUM, GSO_TCPV4, 0, 1448, 14, 6, ALL));
    }

    @Test
    void malformedIpHeader() {
        byte[] shortIhl = v4(3000);
        shortIhl[14] = 0x44;
        refused(OffloadRule.MALFORMED_IP_HEADER, run(shortIhl, F_NEEDS_CSUM, GSO_TCPV4, 0, 1448, L4, 16, ALL));
        byte[] fragment = v4(3000);
        fragment[14 + 6] = 0x20;   // MF
        refused(OffloadRule.MALFORMED_IP_HEADER, run(fragment, F_NEEDS_CSUM, GSO_TCPV4, 0, 1448, L4, 16, ALL));
        byte[] beyond = v4(0);
        beyond[14] = 0x4F;         // 60-byte header in a 54-byte frame
        refused(OffloadRule.MALFORMED_IP_HEADER, run(beyond, F_NEEDS_CSUM, GSO_TCPV4, 0, 1448, 20, 16, ALL));
    }

    @Test
    void malformedTcpHeader() {
        byte[] doff = v4(3000);
        doff[L4 + 12] = 0x40;
        refused(OffloadRule.MALFORMED_TCP_HEADER, run(doff, F_NEEDS_CSUM, GSO_TCPV4, 0, 1448, L4, 16, ALL));
        byte[] beyond = v4(10);
        beyond[L4 + 12] = (byte) 0xF0;   // 60-byte TCP header, 40 bytes there
        refused(OffloadRule.MALFORMED_TCP_HEADER, run(beyond, F_NEEDS_CSUM, GSO_TCPV4, 0, 1448, L4, 16, ALL));
    }

    @Test
    void csumNotAtTcpChecksum() {
        refused(OffloadRule.CSUM_NOT_AT_TCP_CHECKSUM, run(v4(3000), F_NEEDS_CSUM, GSO_TCPV4, 0, 1448, L4 + 2, 16, ALL));
        refused(OffloadRule.CSUM_NOT_AT_TCP_CHECKSUM, run(v4(3000), F_NEEDS_CSUM, GSO_TCPV4, 0, 1448, L4, 6, ALL));
    }

    @Test
    void cwrWithoutEcn() {
        byte[] f = TcpFrames.tcp(false, 0, 3000, 1, 1, TcpFrames.ACK | TcpFrames.CWR, 0);
        refused(OffloadRule.CWR_WITHOUT_ECN, run(f, F_NEEDS_CSUM, GSO_TCPV4, 0, 1448, L4, 16, ALL));
    }

    @Test
    void gsoSizeOutOfRange() {
        refused(OffloadRule.GSO_SIZE_OUT_OF_RANGE, run(v4(3000), F_NEEDS_CSUM, GSO_TCPV4, 0, 0, L4, 16, ALL));
        refused(OffloadRule.GSO_SIZE_OUT_OF_RANGE, run(v4(3000), F_NEEDS_CSUM, GSO_TCPV4, 0, 63, L4, 16, ALL));
        // 54 bytes of headers + 1465 > the port's 1518-byte frames
        refused(OffloadRule.GSO_SIZE_OUT_OF_RANGE, run(v4(3000), F_NEEDS_CSUM, GSO_TCPV4, 0, 1465, L4, 16, ALL));
        assertEquals(OffloadCheck.TSO, run(v4(3000), F_NEEDS_CSUM, GSO_TCPV4, 0, 1464, L4, 16, ALL));
    }

    @Test
    void gsoWithoutPayload() {
        refused(OffloadRule.GSO_WITHOUT_PAYLOAD, run(v4(0), F_NEEDS_CSUM, GSO_TCPV4, 0, 1448, L4, 16, ALL));
    }

    @Test
    void everyRuleHasATest() {
        java.util.Set<String> tested = new java.util.HashSet<>();
        for (java.lang.reflect.Method m : getClass().getDeclaredMethods()) {
            tested.add(m.getName().toLowerCase());
        }
        for (OffloadRule r : OffloadRule.values()) {
            assertTrue(tested.contains(r.name().replace("_", "").toLowerCase()), "a test named after " + r);
        }
    }

    // ------------------------------------------------------------ the receiver's side

    @Test
    void receiverTakesOnlyWhatItNegotiated() {
        long csum = OffloadCheck.word(F_NEEDS_CSUM, GSO_NONE, 0, 0, L4);
        long tso4 = OffloadCheck.word(F_NEEDS_CSUM, GSO_TCPV4, 0, 1448, L4);
        long tso6ecn = OffloadCheck.word(F_NEEDS_CSUM, GSO_TCPV6 | GSO_ECN, 0, 1448, L4_V6);
        assertTrue(OffloadCheck.receiverTakes(ALL, csum));
        assertTrue(OffloadCheck.receiverTakes(ALL, tso4));
        assertTrue(OffloadCheck.receiverTakes(ALL, tso6ecn));
        assertFalse(OffloadCheck.receiverTakes(ALL & ~Features.bit(Features.VIRTIO_NET_F_GUEST_CSUM), csum));
        assertFalse(OffloadCheck.receiverTakes(ALL & ~Features.bit(Features.VIRTIO_NET_F_GUEST_TSO4), tso4));
        assertFalse(OffloadCheck.receiverTakes(ALL & ~Features.bit(Features.VIRTIO_NET_F_GUEST_ECN), tso6ecn));
        assertFalse(OffloadCheck.receiverTakes(ALL & ~Features.OFFLOAD_FEATURES, csum));
    }

    @Test
    void headerMovesWithAVlanTag() {
        long w = OffloadCheck.word(F_NEEDS_CSUM | F_DATA_VALID, GSO_TCPV4, 66, 1448, L4);
        long in = OffloadCheck.forReceiver(w, 4);
        assertEquals(L4 + 4, OffloadCheck.csumStart(in));
        assertEquals(70, OffloadCheck.hdrLen(in));
        assertEquals(F_NEEDS_CSUM, OffloadCheck.flags(in), "DATA_VALID is not passed on");
        assertEquals(1448, OffloadCheck.gsoSize(in));
        assertEquals(GSO_TCPV4, OffloadCheck.gsoType(in));
        assertEquals(L4 - 4, OffloadCheck.csumStart(OffloadCheck.forReceiver(w, -4)));
        assertEquals(0, OffloadCheck.hdrLen(OffloadCheck.forReceiver(OffloadCheck.word(F_NEEDS_CSUM, 0, 0, 0, L4), 4)));
    }
}
