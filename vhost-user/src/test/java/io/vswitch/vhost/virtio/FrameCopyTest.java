package io.vswitch.vhost.virtio;

import io.vswitch.vhost.memory.GuestMemory;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * {@link FrameCopy}: every length from 0 to past {@link FrameCopy#INLINE_MAX}, at unaligned offsets, through
 * {@link GuestMemory#EVERYTHING} (the inline loop up to INLINE_MAX) and through ordinary segments (always
 * {@link MemorySegment#copy}): the destination holds exactly the source's bytes, and not one byte before or after
 * the range changes.
 */
class FrameCopyTest {
    private static final int GUARD = 16;

    @Test
    void copiesExactlyTheRangeThroughEverything() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment src = arena.allocate(512, 64);
            MemorySegment dst = arena.allocate(512, 64);
            for (int length = 0; length <= FrameCopy.INLINE_MAX + 9; length++) {
                for (int misalign = 0; misalign < 3; misalign++) {
                    fill(src, (byte) 0x11, length);
                    dst.fill((byte) 0x5A);
                    long from = src.address() + GUARD + misalign;
                    long to = dst.address() + GUARD + 2 * misalign + 1;
                    FrameCopy.copy(GuestMemory.EVERYTHING, from, GuestMemory.EVERYTHING, to, length);
                    check(src, GUARD + misalign, dst, GUARD + 2 * misalign + 1, length);
                }
            }
        }
    }

    @Test
    void copiesExactlyTheRangeBetweenOtherSegments() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment src = arena.allocate(512, 64);
            MemorySegment dst = arena.allocate(512, 64);
            for (int length = 0; length <= FrameCopy.INLINE_MAX + 9; length += 7) {
                fill(src, (byte) 0x22, length);
                dst.fill((byte) 0x5A);
                FrameCopy.copy(src, GUARD + 1, dst, GUARD + 3, length);
                check(src, GUARD + 1, dst, GUARD + 3, length);
            }
        }
    }

    private static void fill(MemorySegment src, byte seed, int length) {
        for (int i = 0; i < src.byteSize(); i++) {
            src.set(ValueLayout.JAVA_BYTE, i, (byte) (seed + i * 7));
        }
    }

    private static void check(MemorySegment src, long srcAt, MemorySegment dst, long dstAt, int length) {
        for (long i = 0; i < dst.byteSize(); i++) {
            byte expected = i >= dstAt && i < dstAt + length ? src.get(ValueLayout.JAVA_BYTE, srcAt + i - dstAt) : (byte) 0x5A;
            assertEquals(expected, dst.get(ValueLayout.JAVA_BYTE, i), "length " + length + ", byte " + i);
        }
    }
}
