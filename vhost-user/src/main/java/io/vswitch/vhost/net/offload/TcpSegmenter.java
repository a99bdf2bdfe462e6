package io.vswitch.vhost.net.offload;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Cuts a TSO frame (one Ethernet frame holding an IPv4 or IPv6 packet with a TCP segment up to 64 KiB) into
 * frames of at most gso_size bytes of TCP payload, as a NIC does, one segment at a time into a buffer the
 * caller owns. Each segment gets: the same Ethernet header (and VLAN tag); IPv4 total length, an id that
 * increments per segment and a new header checksum, or the IPv6 payload length; the TCP sequence number
 * advanced by the payload before it; FIN and PSH on the last segment only, CWR on the first only; a full TCP
 * checksum over the pseudo-header, header and payload. No allocation.
 *
 * <pre>
 * frame:  | Ethernet (+tag) | IPv4 (ihl*4) or IPv6 (40) | TCP (doff*4) | payload ............................ |
 *         0                 l3                          l4             p
 * segment k:               same headers, fixed up       | payload [p + k*mss, p + min((k+1)*mss, total)) |
 * </pre>
 */
public final class TcpSegmenter {
    private static final ValueLayout.OfShort U16_BE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    private static final ValueLayout.OfInt U32_BE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    // offsets inside the IP and TCP headers
    static final int IPV4_TOTAL_LENGTH = 2;
    static final int IPV4_ID = 4;
    static final int IPV4_SRC = 12;
    static final int IPV6_PAYLOAD_LENGTH = 4;
    static final int IPV6_SRC = 8;
    static final int IPV6_HEADER = 40;
    static final int TCP_SEQ = 4;
    static final int TCP_FLAGS = 13;
    static final int TCP_CHECKSUM = 16;
    static final int FIN = 0x01;
    static final int PSH = 0x08;
    static final int CWR = 0x80;

    private TcpSegmenter() {
    }

    /** How many segments {@code payload} bytes of TCP payload make at {@code mss} (at least one). */
    public static int count(int payload, int mss) {
        return Math.max(1, (payload + mss - 1) / mss);
    }

    /**
     * Writes segment {@code k} of the {@code length}-byte frame at offset 0 of {@code src} into {@code dst} at 0
     * and returns its length. {@code l3}, {@code l4}, {@code payload}: offsets of the IP header, TCP header and
     * TCP payload (as {@link OffloadCheck} found them).
     */
    public static int segment(MemorySegment src, int length, int l3, boolean ipv6, int l4, int payload, int mss,
                              int k, MemorySegment dst) {
        int total = length - payload;
        int n = count(total, mss);
        int from = k * mss;
        int chunk = Math.min(mss, total - from);
        MemorySegment.copy(src, 0, dst, 0, payload);
        MemorySegment.copy(src, payload + from, dst, payload, chunk);
        int segLength = payload + chunk;
        int tcpLength = segLength - l4;
        long pseudo;
        if (!ipv6) {
            dst.set(U16_BE, l3 + IPV4_TOTAL_LENGTH, (short) (segLength - l3));
            dst.set(U16_BE, l3 + IPV4_ID, (short) (src.get(U16_BE, l3 + IPV4_ID) + k));
            Checksum.ipv4Header(dst, l3, l4 - l3);
            pseudo = Checksum.add(0, dst, l3 + IPV4_SRC, 8);
        } else {
            dst.set(U16_BE, l3 + IPV6_PAYLOAD_LENGTH, (short) (segLength - l3 - IPV6_HEADER));
            pseudo = Checksum.add(0, dst, l3 + IPV6_SRC, 32);
        }
        dst.set(U32_BE, l4 + TCP_SEQ, src.get(U32_BE, l4 + TCP_SEQ) + from);
        int flags = dst.get(ValueLayout.JAVA_BYTE, l4 + TCP_FLAGS) & 0xFF;
        if (k != n - 1) {
            flags &= ~(FIN | PSH);
        }
        if (k != 0) {
            flags &= ~CWR;
        }
        dst.set(ValueLayout.JAVA_BYTE, l4 + TCP_FLAGS, (byte) flags);
        dst.set(U16_BE, l4 + TCP_CHECKSUM, (short) 0);
        long sum = Checksum.add(pseudo + OffloadCheck.IPPROTO_TCP + tcpLength, dst, l4, tcpLength);
        dst.set(U16_BE, l4 + TCP_CHECKSUM, (short) Checksum.finish(sum));
        return segLength;
    }
}
