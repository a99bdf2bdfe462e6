package io.vswitch.vhost.net.offload;

import io.vswitch.protocol.Features;
import io.vswitch.vhost.virtio.PacketBatch;

import static io.vswitch.protocol.VirtioNetHeader.*;

/**
 * Validates the virtio-net header of a frame a guest transmitted against the frame itself and the features
 * the guest negotiated, like a descriptor: before anything acts on it. One per worker (it keeps where the
 * headers of the frame it last accepted lie, for {@link SoftwareOffload}); no allocation.
 *
 * <p>The header word is {@link PacketBatch#headerWord}: bytes 0..7 of the header, little-endian.
 */
public final class OffloadCheck {
    /** No offload asked for: switch the frame as it is. */
    public static final int PLAIN = 0;
    /** NEEDS_CSUM without GSO: the checksum at csum_start/csum_offset is still to be completed. */
    public static final int CSUM = 1;
    /** TCP segmentation (TCPV4/TCPV6): the frame is to be cut into gso_size segments. */
    public static final int TSO = 2;
    /** Refused: see {@link #failed()}. */
    public static final int BAD = -1;

    /** Below this gso_size a frame would be cut into more than about a thousand segments: refused as nonsense. */
    public static final int MIN_GSO_SIZE = 64;
    static final int ETH_HEADER = 14;
    static final int ETH_P_IPV4 = 0x0800;
    static final int ETH_P_IPV6 = 0x86DD;
    static final int ETH_P_8021Q = 0x8100;
    static final int IPPROTO_TCP = 6;
    static final int TCP_CSUM_OFFSET = 16;
    static final int TCP_CWR = 0x80;

    // where the frame last accepted as TSO keeps its headers
    private int l3;
    private boolean ipv6;
    private int l4;
    private int payload;
    private int gsoSize;
    private OffloadRule failed;

    public static int flags(long word) {
        return (int) word & 0xFF;
    }

    public static int gsoType(long word) {
        return (int) (word >>> 8) & 0xFF;
    }

    public static int hdrLen(long word) {
        return (int) (word >>> 16) & 0xFFFF;
    }

    public static int gsoSize(long word) {
        return (int) (word >>> 32) & 0xFFFF;
    }

    public static int csumStart(long word) {
        return (int) (word >>> 48) & 0xFFFF;
    }

    /** A header word from its fields (tests, and the frames the switch builds). */
    public static long word(int flags, int gsoType, int hdrLen, int gsoSize, int csumStart) {
        return (flags & 0xFFL) | (gsoType & 0xFFL) << 8 | (hdrLen & 0xFFFFL) << 16 | (gsoSize & 0xFFFFL) << 32
                | (csumStart & 0xFFFFL) << 48;
    }

    /**
     * Checks frame {@code frame} of {@code b} ({@code length} bytes, header word {@code word}, csum_offset
     * {@code csumOffset}) from a guest that negotiated {@code features}, on a port whose frames may be at most
     * {@code maxFrame} bytes. Returns {@link #PLAIN}, {@link #CSUM}, {@link #TSO} or {@link #BAD}.
     */
    public int check(long word, int csumOffset, long features, PacketBatch b, int frame, int length, int maxFrame) {
        failed = null;
        int flags = flags(word) & ~F_DATA_VALID;   // a device may ignore DATA_VALID on transmit
        int type = gsoType(word);
        int gso = type & ~GSO_ECN;
        if ((flags & ~F_NEEDS_CSUM) != 0) {
            return fail(OffloadRule.UNKNOWN_FLAGS);
        }
        if (hdrLen(word) > length) {
            return fail(OffloadRule.HDR_LEN_OUTSIDE_FRAME);
        }
        if (gso == GSO_NONE) {
            if (type != GSO_NONE) {
                return fail(OffloadRule.ECN_WITHOUT_GSO);
            }
            if (flags == 0) {
                return PLAIN;   // csum_start, csum_offset, gso_size mean nothing without NEEDS_CSUM or GSO
            }
            return checkCsum(word, csumOffset, features, length) ? CSUM : BAD;
        }
        if (gso != GSO_TCPV4 && gso != GSO_TCPV6) {
            return fail(gso == GSO_UDP || gso == GSO_UDP_L4 ? OffloadRule.GSO_NOT_NEGOTIATED : OffloadRule.UNKNOWN_GSO_TYPE);
        }
        boolean v6 = gso == GSO_TCPV6;
        if (!Features.has(features, v6 ? Features.VIRTIO_NET_F_HOST_TSO6 : Features.VIRTIO_NET_F_HOST_TSO4)
                || (type & GSO_ECN) != 0 && !Features.has(features, Features.VIRTIO_NET_F_HOST_ECN)) {
            return fail(OffloadRule.GSO_NOT_NEGOTIATED);
        }
        if (flags != F_NEEDS_CSUM) {
            return fail(OffloadRule.GSO_WITHOUT_CSUM);
        }
        if (!checkCsum(word, csumOffset, features, length)) {
            return BAD;
        }
        // the frame must be what gso_type says: Ethernet (one 802.1Q tag at most), IPv4 or IPv6, TCP
        int at = ETH_HEADER;
        int ethertype = b.u16(frame, 12);
        if (ethertype == ETH_P_8021Q && length >= ETH_HEADER + 4) {
            ethertype = b.u16(frame, 16);
            at += 4;
        }
        int tcp;
        if (!v6) {
            if (ethertype != ETH_P_IPV4 || length < at + 20 || b.frameByte(frame, at) >>> 4 != 4
                    || b.frameByte(frame, at + 9) != IPPROTO_TCP) {
                return fail(OffloadRule.GSO_TYPE_MISMATCH);
            }
            int ihl = (b.frameByte(frame, at) & 0xF) * 4;
            if (ihl < 20 || at + ihl > length || (b.u16(frame, at + 6) & 0x3FFF) != 0) {
                return fail(OffloadRule.MALFORMED_IP_HEADER);   // too short, beyond the frame, or a fragment (MF, offset)
            }
            tcp = at + ihl;
        } else {
            if (ethertype != ETH_P_IPV6 || length < at + 40 || b.frameByte(frame, at) >>> 4 != 6
                    || b.frameByte(frame, at + 6) != IPPROTO_TCP) {
                return fail(OffloadRule.GSO_TYPE_MISMATCH);
            }
            tcp = at + 40;
        }
        if (csumStart(word) != tcp || csumOffset != TCP_CSUM_OFFSET) {
            return fail(OffloadRule.CSUM_NOT_AT_TCP_CHECKSUM);
        }
        if (tcp + 20 > length) {
            return fail(OffloadRule.MALFORMED_TCP_HEADER);
        }
        int doff = (b.frameByte(frame, tcp + 12) >>> 4) * 4;
        if (doff < 20 || tcp + doff > length) {
            return fail(OffloadRule.MALFORMED_TCP_HEADER);
        }
        if ((b.frameByte(frame, tcp + 13) & TCP_CWR) != 0 && (type & GSO_ECN) == 0) {
            return fail(OffloadRule.CWR_WITHOUT_ECN);
        }
        int mss = gsoSize(word);
        if (mss < MIN_GSO_SIZE || tcp + doff + mss > maxFrame) {
            return fail(OffloadRule.GSO_SIZE_OUT_OF_RANGE);
        }
        if (tcp + doff == length) {
            return fail(OffloadRule.GSO_WITHOUT_PAYLOAD);
        }
        this.l3 = at;
        this.ipv6 = v6;
        this.l4 = tcp;
        this.payload = tcp + doff;
        this.gsoSize = mss;
        return TSO;
    }

    private boolean checkCsum(long word, int csumOffset, long features, int length) {
        if (!Features.has(features, Features.VIRTIO_NET_F_CSUM)) {
            fail(OffloadRule.CSUM_NOT_NEGOTIATED);
            return false;
        }
        int start = csumStart(word);
        if (start < ETH_HEADER) {
            fail(OffloadRule.CSUM_START_IN_ETHERNET_HEADER);
            return false;
        }
        if ((long) start + csumOffset + 2 > length) {
            fail(OffloadRule.CSUM_OUTSIDE_FRAME);
            return false;
        }
        return true;
    }

    private int fail(OffloadRule rule) {
        failed = rule;
        return BAD;
    }

    /** Why the last {@link #check} returned {@link #BAD}, or null. */
    public OffloadRule failed() {
        return failed;
    }

    /** Offset of the IP header of the frame last accepted as {@link #TSO}. */
    public int l3Offset() {
        return l3;
    }

    public boolean isIpv6() {
        return ipv6;
    }

    /** Offset of its TCP header. */
    public int l4Offset() {
        return l4;
    }

    /** Offset of its TCP payload (end of all headers). */
    public int payloadOffset() {
        return payload;
    }

    public int mss() {
        return gsoSize;
    }

    /**
     * True when a guest that negotiated {@code features} takes a frame with this (accepted) header as it is:
     * GUEST_CSUM for a partial checksum, and GUEST_TSO4/TSO6 (GUEST_ECN with the ECN bit) for a TSO frame.
     */
    public static boolean receiverTakes(long features, long word) {
        if (!Features.has(features, Features.VIRTIO_NET_F_GUEST_CSUM)) {
            return false;
        }
        int type = gsoType(word);
        return switch (type & ~GSO_ECN) {
            case GSO_NONE -> true;
            case GSO_TCPV4 -> Features.has(features, Features.VIRTIO_NET_F_GUEST_TSO4)
                    && ((type & GSO_ECN) == 0 || Features.has(features, Features.VIRTIO_NET_F_GUEST_ECN));
            case GSO_TCPV6 -> Features.has(features, Features.VIRTIO_NET_F_GUEST_TSO6)
                    && ((type & GSO_ECN) == 0 || Features.has(features, Features.VIRTIO_NET_F_GUEST_ECN));
            default -> false;
        };
    }

    /**
     * The header word as it is handed to a receiving guest: csum_start (and a non-zero hdr_len) moved by
     * {@code delta} bytes when a VLAN tag is inserted (+4) or stripped (-4) on the way, DATA_VALID cleared.
     */
    public static long forReceiver(long word, int delta) {
        int flags = flags(word) & F_NEEDS_CSUM;
        int hdrLen = hdrLen(word);
        return word(flags, gsoType(word), hdrLen == 0 ? 0 : hdrLen + delta, gsoSize(word), csumStart(word) + delta);
    }
}
