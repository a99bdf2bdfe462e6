package io.vswitch.engine;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The header at the start of every buffer one worker hands to another (see {@link Handoff}); the frame's
 * bytes follow it. Native byte order; the buffers never leave the process.
 *
 * <pre>
 *  0               4               8               12              16
 *  +---------------+---------------+---------------+-------+-------+---------------- - -
 *  | length (u32)  | destination   | source port   | vlan  | flags | frame bytes ...
 *  |               | port (s32,    | (u32)         | (u16) | (u16) |
 *  |               |  -1: flood)   |               |       |       |
 *  +---------------+---------------+---------------+-------+-------+---------------- - -
 *  flags bit 0: the frame's bytes carry an 802.1Q tag
 * </pre>
 */
final class HandoffHeader {
    static final int LENGTH = 0;
    static final int DESTINATION = 4;
    static final int SOURCE = 8;
    /** VLAN in the low 16 bits, {@link #TAGGED} above it. */
    static final int VLAN = 12;
    static final int TAGGED = 1 << 16;
    static final int SIZE = 16;
    /** {@link #DESTINATION} of a frame to flood to every port of the receiving worker. */
    static final int FLOOD = -1;

    private HandoffHeader() {
    }

    static void write(MemorySegment buffer, long at, int length, int destination, int source, int vlan, boolean tagged) {
        buffer.set(ValueLayout.JAVA_INT, at + LENGTH, length);
        buffer.set(ValueLayout.JAVA_INT, at + DESTINATION, destination);
        buffer.set(ValueLayout.JAVA_INT, at + SOURCE, source);
        buffer.set(ValueLayout.JAVA_INT, at + VLAN, vlan | (tagged ? TAGGED : 0));
    }

    static int length(MemorySegment buffer, long at) {
        return buffer.get(ValueLayout.JAVA_INT, at + LENGTH);
    }

    static int destination(MemorySegment buffer, long at) {
        return buffer.get(ValueLayout.JAVA_INT, at + DESTINATION);
    }

    static int source(MemorySegment buffer, long at) {
        return buffer.get(ValueLayout.JAVA_INT, at + SOURCE);
    }

    static int vlan(MemorySegment buffer, long at) {
        return buffer.get(ValueLayout.JAVA_INT, at + VLAN) & 0xFFFF;
    }

    static boolean tagged(MemorySegment buffer, long at) {
        return (buffer.get(ValueLayout.JAVA_INT, at + VLAN) & TAGGED) != 0;
    }
}
