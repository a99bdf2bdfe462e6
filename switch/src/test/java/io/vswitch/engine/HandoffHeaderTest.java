package io.vswitch.engine;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Pins the cross-worker buffer header's layout (the ASCII diagram in {@link HandoffHeader}). */
class HandoffHeaderTest {
    @Test
    void layoutIsSixWordsBeforeTheFrame() {
        assertEquals(0, HandoffHeader.LENGTH);
        assertEquals(4, HandoffHeader.DESTINATION);
        assertEquals(8, HandoffHeader.SOURCE);
        assertEquals(12, HandoffHeader.VLAN);
        assertEquals(16, HandoffHeader.HASH);
        assertEquals(20, HandoffHeader.PAIR);
        assertEquals(24, HandoffHeader.SIZE);
        assertEquals(1 << 16, HandoffHeader.TAGGED, "the tag flag sits above the 12-bit VLAN id");
        assertEquals(-1, HandoffHeader.FLOOD);
        assertEquals(-1, HandoffHeader.NO_PAIR);
    }

    @Test
    void fieldsRoundTripWithoutTouchingTheFrame() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(64);
            buffer.fill((byte) 0x5A);
            HandoffHeader.write(buffer, 16, 1514, HandoffHeader.FLOOD, 7, 4094, true, 0xDEADBEEF, HandoffHeader.NO_PAIR);
            assertEquals(1514, HandoffHeader.length(buffer, 16));
            assertEquals(HandoffHeader.FLOOD, HandoffHeader.destination(buffer, 16));
            assertEquals(7, HandoffHeader.source(buffer, 16));
            assertEquals(4094, HandoffHeader.vlan(buffer, 16));
            assertTrue(HandoffHeader.tagged(buffer, 16));
            assertEquals(0xDEADBEEF, HandoffHeader.hash(buffer, 16));
            assertEquals(HandoffHeader.NO_PAIR, HandoffHeader.pair(buffer, 16));
            HandoffHeader.write(buffer, 16, 60, 3, 2, 0, false, 0, 15);
            assertEquals(0, HandoffHeader.vlan(buffer, 16));
            assertFalse(HandoffHeader.tagged(buffer, 16));
            assertEquals(0, HandoffHeader.hash(buffer, 16));
            assertEquals(15, HandoffHeader.pair(buffer, 16));
            for (int i = 0; i < 16; i++) {
                assertEquals((byte) 0x5A, buffer.get(java.lang.foreign.ValueLayout.JAVA_BYTE, i), "byte " + i + " before the header");
            }
            for (int i = 16 + HandoffHeader.SIZE; i < 64; i++) {
                assertEquals((byte) 0x5A, buffer.get(java.lang.foreign.ValueLayout.JAVA_BYTE, i), "frame byte " + i);
            }
        }
    }
}
