package io.vswitch.testing;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Hand-built Ethernet/IPv4|IPv6/TCP frames for the offload tests, and an independent reference for their
 * checksums: a plain byte-pair loop over arrays, sharing no code with the switch's {@code Checksum}.
 */
public final class TcpFrames {
    public static final int ETH = 14;
    public static final int IPV4 = 20;
    public static final int IPV6 = 40;
    public static final int TCP = 20;
    public static final int FIN = 0x01;
    public static final int PSH = 0x08;
    public static final int ACK = 0x10;
    public static final int CWR = 0x80;

    private TcpFrames() {
    }

    /**
     * A frame of {@code payload} bytes of TCP payload (a pattern from {@code seed}) from 10.0.0.1:40000 to
     * 10.0.0.2:5001 (IPv4) or fd00::1 to fd00::2 (IPv6), with sequence {@code seq}, TCP {@code flags}, IPv4 id
     * {@code id}, one 802.1Q tag of VLAN {@code vlan} when it is above 0. IP lengths cover the whole frame; the
     * TCP checksum field holds the pseudo-header sum (what a sender using NEEDS_CSUM leaves there), the IPv4
     * header checksum is correct.
     */
    public static byte[] tcp(boolean ipv6, int vlan, int payload, int seed, long seq, int flags, int id) {
        int l3 = ETH + (vlan > 0 ? 4 : 0);
        int l4 = l3 + (ipv6 ? IPV6 : IPV4);
        byte[] f = new byte[l4 + TCP + payload];
        ByteBuffer b = ByteBuffer.wrap(f).order(ByteOrder.BIG_ENDIAN);
        b.put(0, new byte[] {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01});
        if (vlan > 0) {
            b.putShort(12, (short) 0x8100);
            b.putShort(14, (short) vlan);
        }
        b.putShort(l3 - 2, (short) (ipv6 ? 0x86DD : 0x0800));
        if (!ipv6) {
            b.put(l3, (byte) 0x45);
            b.putShort(l3 + 2, (short) (f.length - l3));
            b.putShort(l3 + 4, (short) id);
            b.putShort(l3 + 6, (short) 0x4000);   // DF
            b.put(l3 + 8, (byte) 64);
            b.put(l3 + 9, (byte) 6);
            b.put(l3 + 12, new byte[] {10, 0, 0, 1, 10, 0, 0, 2});
            b.putShort(l3 + 10, (short) ~sum(f, l3, l3 + IPV4, 0));
        } else {
            b.putInt(l3, 0x6000_0000);
            b.putShort(l3 + 4, (short) (f.length - l4));
            b.put(l3 + 6, (byte) 6);
            b.put(l3 + 7, (byte) 64);
            b.put(l3 + 8, (byte) 0xfd);
            b.put(l3 + 23, (byte) 1);
            b.put(l3 + 24, (byte) 0xfd);
            b.put(l3 + 39, (byte) 2);
        }
        b.putShort(l4, (short) 40000);
        b.putShort(l4 + 2, (short) 5001);
        b.putInt(l4 + 4, (int) seq);
        b.putInt(l4 + 8, 12345);
        b.put(l4 + 12, (byte) 0x50);
        b.put(l4 + 13, (byte) flags);
        b.putShort(l4 + 14, (short) 64240);
        for (int i = 0; i < payload; i++) {
            f[l4 + TCP + i] = (byte) (seed + i * 13 + (i >> 7));
        }
        b.putShort(l4 + 16, (short) pseudoHeaderSum(f, l3, ipv6, f.length - l4));
        return f;
    }

    /** The folded (not complemented) ones' complement sum of {@code f[from..to)}, plus {@code initial}: byte pairs. */
    public static int sum(byte[] f, int from, int to, long initial) {
        long s = initial;
        for (int i = from; i < to; i += 2) {
            int hi = f[i] & 0xFF;
            int lo = i + 1 < to ? f[i + 1] & 0xFF : 0;
            s += hi << 8 | lo;
        }
        while (s > 0xFFFF) {
            s = (s & 0xFFFF) + (s >> 16);
        }
        return (int) s;
    }

    /** The folded sum of the TCP pseudo-header for a segment of {@code tcpLength} bytes. */
    public static int pseudoHeaderSum(byte[] f, int l3, boolean ipv6, int tcpLength) {
        int s = ipv6 ? sum(f, l3 + 8, l3 + 40, 0) : sum(f, l3 + 12, l3 + 20, 0);
        return sum(new byte[0], 0, 0, (long) s + 6 + tcpLength);
    }

    /** True when the frame's TCP checksum is right (the sum over pseudo-header and segment is 0xFFFF). */
    public static boolean tcpChecksumOk(byte[] f, int l3, boolean ipv6) {
        int l4 = l3 + (ipv6 ? IPV6 : (f[l3] & 0xF) * 4);
        return sum(f, l4, f.length, pseudoHeaderSum(f, l3, ipv6, f.length - l4)) == 0xFFFF;
    }

    /** True when the IPv4 header checksum is right. */
    public static boolean ipv4ChecksumOk(byte[] f, int l3) {
        return sum(f, l3, l3 + (f[l3] & 0xF) * 4, 0) == 0xFFFF;
    }

    /** A 12-byte virtio-net header (num_buffers 0). */
    public static byte[] header(int flags, int gsoType, int hdrLen, int gsoSize, int csumStart, int csumOffset) {
        ByteBuffer h = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN);
        h.put(0, (byte) flags).put(1, (byte) gsoType).putShort(2, (short) hdrLen).putShort(4, (short) gsoSize)
                .putShort(6, (short) csumStart).putShort(8, (short) csumOffset);
        return h.array();
    }

    public static int u16(byte[] f, int at) {
        return (f[at] & 0xFF) << 8 | f[at + 1] & 0xFF;
    }

    public static long u32(byte[] f, int at) {
        return ((long) u16(f, at) << 16) | u16(f, at + 2);
    }
}
