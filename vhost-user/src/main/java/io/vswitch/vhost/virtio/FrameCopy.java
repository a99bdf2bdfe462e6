package io.vswitch.vhost.virtio;

import io.vswitch.vhost.memory.GuestMemory;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The copy of one frame piece from a guest's buffer into another's, for the rings' RX fast paths. A short
 * piece (at most {@value #INLINE_MAX} bytes) between two buffers addressed through {@link GuestMemory#EVERYTHING}
 * (unchecked guest memory: every guest buffer is) is copied with 8-byte loads and stores in the caller's own code;
 * {@link MemorySegment#copy} costs a call into the JIT's copy stub per piece, which for a 64-byte frame is more
 * than the copy itself (perfasm of {@code PackedVirtQueueBenchmark.rx}). Anything else, longer pieces and checked
 * segments included, goes to {@link MemorySegment#copy}.
 *
 * <p>The short loop copies forward: for a source and destination that overlap (only a guest that points its own
 * receive buffer into its own transmit buffer can arrange that) the bytes it gets in its own memory differ from a
 * memmove's; nothing outside the two validated ranges is touched either way.
 */
final class FrameCopy {
    /** Pieces up to this length are copied inline; a minimum-size frame is 60-64 bytes, a TCP ACK 66. */
    static final int INLINE_MAX = 128;
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED;

    private FrameCopy() {
    }

    static void copy(MemorySegment src, long srcOffset, MemorySegment dst, long dstOffset, int length) {
        if (length <= INLINE_MAX && src == GuestMemory.EVERYTHING && dst == GuestMemory.EVERYTHING) {
            copyShort(srcOffset, dstOffset, length);
        } else {
            MemorySegment.copy(src, srcOffset, dst, dstOffset, length);
        }
    }

    private static void copyShort(long from, long to, int length) {
        final MemorySegment all = GuestMemory.EVERYTHING;
        int i = 0;
        for (; i <= length - 8; i += 8) {
            all.set(U64, to + i, all.get(U64, from + i));
        }
        if (i < length) {
            // the last 1-7 bytes: the 8 bytes that end where the piece ends (re-copying a few) when the piece has 8,
            // else byte by byte
            if (length >= 8) {
                all.set(U64, to + length - 8, all.get(U64, from + length - 8));
            } else {
                for (; i < length; i++) {
                    all.set(ValueLayout.JAVA_BYTE, to + i, all.get(ValueLayout.JAVA_BYTE, from + i));
                }
            }
        }
    }
}
