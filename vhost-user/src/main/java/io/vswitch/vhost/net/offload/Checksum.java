package io.vswitch.vhost.net.offload;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum of 16-bit big-endian
 * words. Sums are kept unfolded in a {@code long} (32-bit words added as they come, which is the same sum
 * modulo 0xFFFF) and folded once at the end. No allocation.
 */
public final class Checksum {
    private static final ValueLayout.OfInt U32_BE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    private static final ValueLayout.OfShort U16_BE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);

    private Checksum() {
    }

    /**
     * Adds {@code length} bytes at {@code offset} of {@code s} to {@code sum}, as 16-bit big-endian words counted
     * from {@code offset} (an odd last byte is the high byte of a word padded with zero).
     */
    public static long add(long sum, MemorySegment s, long offset, int length) {
        long at = offset;
        long end = offset + length;
        // 32-bit words: up to 2^14 of them per 64 KiB, far from overflowing a long
        for (; at + 4 <= end; at += 4) {
            sum += Integer.toUnsignedLong(s.get(U32_BE, at));
        }
        if (at + 2 <= end) {
            sum += Short.toUnsignedInt(s.get(U16_BE, at));
            at += 2;
        }
        if (at < end) {
            sum += (s.get(ValueLayout.JAVA_BYTE, at) & 0xFF) << 8;
        }
        return sum;
    }

    /** Folds an unfolded sum to 16 bits (end-around carries), not complemented. */
    public static int fold(long sum) {
        while ((sum >>> 16) != 0) {
            sum = (sum & 0xFFFF) + (sum >>> 16);
        }
        return (int) sum;
    }

    /** The checksum field value for {@code sum}: the complement of its fold; 0 is sent as 0xFFFF (as Linux does). */
    public static int finish(long sum) {
        int c = ~fold(sum) & 0xFFFF;
        return c == 0 ? 0xFFFF : c;
    }

    /**
     * Completes a partial checksum as a device does for VIRTIO_NET_HDR_F_NEEDS_CSUM: sums from {@code start} to
     * {@code end} (the field at {@code start + offset} holds the pseudo-header sum the sender put there) and
     * stores the result in that field. The caller has checked that the field lies inside {@code [start, end)}.
     */
    public static void complete(MemorySegment frame, long frameOffset, int start, int offset, int end) {
        long sum = add(0, frame, frameOffset + start, end - start);
        frame.set(U16_BE, frameOffset + start + offset, (short) finish(sum));
    }

    /** The IPv4 header checksum of the {@code headerLength}-byte header at {@code offset}, its field zeroed first. */
    public static void ipv4Header(MemorySegment s, long offset, int headerLength) {
        s.set(U16_BE, offset + 10, (short) 0);
        s.set(U16_BE, offset + 10, (short) (~fold(add(0, s, offset, headerLength)) & 0xFFFF));
    }
}
