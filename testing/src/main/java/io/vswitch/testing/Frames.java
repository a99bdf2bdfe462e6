package io.vswitch.testing;

import java.lang.foreign.MemorySegment;

/** Test frames with recognisable contents. */
public final class Frames {
    private Frames() {
    }

    /** A frame of {@code length} bytes: unicast destination and source MACs, then a pattern derived from {@code seed}. */
    public static byte[] frame(int length, int seed) {
        byte[] f = new byte[length];
        for (int i = 0; i < length; i++) {
            f[i] = (byte) (seed * 31 + i * 7 + (i >> 8));
        }
        if (length >= 12) {
            f[0] = 0x02;   // locally administered unicast
            f[6] = 0x02;
        }
        return f;
    }

    public static MemorySegment segment(byte[] frame) {
        return MemorySegment.ofArray(frame);
    }
}
