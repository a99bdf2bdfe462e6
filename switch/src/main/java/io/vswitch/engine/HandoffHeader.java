package io.vswitch.engine;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The header at the start of every buffer one worker hands to another (see {@link Handoff}); the frame's
 * bytes follow it. Native byte order; the buffers never leave the process.
 *
 * <pre>
 *  0               4               8               12              16              20              24
 *  +---------------+---------------+---------------+-------+-------+---------------+---------------+------ - -
 *  | length (u32)  | destination   | source port   | vlan  | flags | flow hash     | receive pair  | frame
 *  |               | port (s32,    | (u32)         | (u16) | (u16) | (u32, 0 with- | (s32, -1: not | bytes ...
 *  |               |  -1: flood)   |               |       |       |  out mq)      |  picked yet)  |
 *  +---------------+---------------+---------------+-------+-------+---------------+---------------+------ - -
 *  flags bit 0: the frame's bytes carry an 802.1Q tag
 * </pre>
 *
 * <p>Multiqueue: the flow hash is {@link FlowHash}'s, computed once by the sender; the receive pair is the one
 * the sender picked for a port whose pairs live on several workers (it picked this worker by picking the pair),
 * else {@link #NO_PAIR} and the receiving worker picks among the pairs it serves.
 */
final class HandoffHeader {
    static final int LENGTH = 0;
    static final int DESTINATION = 4;
    static final int SOURCE = 8;
    /** VLAN in the low 16 bits, {@link #TAGGED} above it. */
    static final int VLAN = 12;
    static final int TAGGED = 1 << 16;
    /** The frame's flow hash ({@link FlowHash}). */
    static final int HASH = 16;
    /** The destination's receive pair the sender picked, or {@link #NO_PAIR}. */
    static final int PAIR = 20;
    static final int SIZE = 24;
    /** {@link #PAIR} when the sender picked none (the receiving worker picks by the hash). */
    static final int NO_PAIR = -1;
    /** {@link #DESTINATION} of a frame to flood to every port of the receiving worker. */
    static final int FLOOD = -1;

    private HandoffHeader() {
    }

    static void write(MemorySegment buffer, long at, int length, int destination, int source, int vlan, boolean tagged,
                      int hash, int pair) {
        buffer.set(ValueLayout.JAVA_INT, at + LENGTH, length);
        buffer.set(ValueLayout.JAVA_INT, at + DESTINATION, destination);
        buffer.set(ValueLayout.JAVA_INT, at + SOURCE, source);
        buffer.set(ValueLayout.JAVA_INT, at + VLAN, vlan | (tagged ? TAGGED : 0));
        buffer.set(ValueLayout.JAVA_INT, at + HASH, hash);
        buffer.set(ValueLayout.JAVA_INT, at + PAIR, pair);
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

    static int hash(MemorySegment buffer, long at) {
        return buffer.get(ValueLayout.JAVA_INT, at + HASH);
    }

    static int pair(MemorySegment buffer, long at) {
        return buffer.get(ValueLayout.JAVA_INT, at + PAIR);
    }
}
