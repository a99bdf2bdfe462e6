package io.vswitch.protocol;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Pins the packed-ring layouts to the virtio 1.2 structs, field by field, and the flag arithmetic. */
class PackedLayoutTest {
    private static final StructLayout PVIRTQ_DESC = MemoryLayout.structLayout(
            ValueLayout.JAVA_LONG.withName("addr"),
            ValueLayout.JAVA_INT.withName("len"),
            ValueLayout.JAVA_SHORT.withName("id"),
            ValueLayout.JAVA_SHORT.withName("flags"));
    private static final StructLayout PVIRTQ_EVENT_SUPPRESS = MemoryLayout.structLayout(
            ValueLayout.JAVA_SHORT.withName("off_wrap"),
            ValueLayout.JAVA_SHORT.withName("flags"));

    @Test
    void descriptorIsSixteenBytes() {
        assertEquals(16, PackedDescriptor.SIZE);
        assertEquals(PVIRTQ_DESC.byteSize(), PackedDescriptor.SIZE);
        assertEquals(PVIRTQ_DESC.byteOffset(groupElement("addr")), PackedDescriptor.ADDR);
        assertEquals(PVIRTQ_DESC.byteOffset(groupElement("len")), PackedDescriptor.LEN);
        assertEquals(PVIRTQ_DESC.byteOffset(groupElement("id")), PackedDescriptor.ID);
        assertEquals(PVIRTQ_DESC.byteOffset(groupElement("flags")), PackedDescriptor.FLAGS);
        assertEquals(SplitRing.DESC_SIZE, PackedDescriptor.SIZE, "same size as a split descriptor");
    }

    @Test
    void eventSuppressionIsFourBytes() {
        assertEquals(4, EventSuppression.SIZE);
        assertEquals(PVIRTQ_EVENT_SUPPRESS.byteSize(), EventSuppression.SIZE);
        assertEquals(PVIRTQ_EVENT_SUPPRESS.byteOffset(groupElement("off_wrap")), EventSuppression.OFF_WRAP);
        assertEquals(PVIRTQ_EVENT_SUPPRESS.byteOffset(groupElement("flags")), EventSuppression.FLAGS);
    }

    @Test
    void flagBitsAreTheSpecsAndTheFlyweightsAreLittleEndian() {
        assertEquals(0x1, PackedDescriptor.F_NEXT);
        assertEquals(0x2, PackedDescriptor.F_WRITE);
        assertEquals(0x4, PackedDescriptor.F_INDIRECT);
        assertEquals(0x80, PackedDescriptor.F_AVAIL);
        assertEquals(0x8000, PackedDescriptor.F_USED);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(32);
            new PackedDescriptor().wrap(s, 16).write(0x1122334455667788L, 0x99AABBCC, 0x1234, 0x8082);
            assertEquals((byte) 0x88, s.get(ValueLayout.JAVA_BYTE, 16));
            assertEquals((byte) 0xCC, s.get(ValueLayout.JAVA_BYTE, 24));
            assertEquals((byte) 0x34, s.get(ValueLayout.JAVA_BYTE, 28));
            assertEquals((byte) 0x82, s.get(ValueLayout.JAVA_BYTE, 30));
            PackedDescriptor d = new PackedDescriptor().wrap(s, 16);
            assertEquals(0x99AABBCCL, d.len());
            assertEquals(0x1234, d.id());
            EventSuppression e = new EventSuppression().wrap(s, 0);
            e.setOffWrap(0x123, 1);
            e.setFlags(EventSuppression.DESC);
            assertEquals(0x8123, e.offWrap());
            assertEquals(0x123, EventSuppression.offset(e.offWrap()));
            assertEquals(1, EventSuppression.wrapCounter(e.offWrap()));
            assertEquals(EventSuppression.DESC, e.flags());
        }
    }

    @Test
    void availableAndUsedFollowTheWrapCounters() {
        for (int wrap = 0; wrap <= 1; wrap++) {
            int avail = PackedDescriptor.availFlags(wrap, 0);
            assertTrue(PackedDescriptor.isAvailable(avail, wrap));
            assertFalse(PackedDescriptor.isAvailable(avail, wrap ^ 1));
            assertFalse(PackedDescriptor.isUsed(avail, wrap));
            int used = PackedDescriptor.usedFlags(wrap);
            assertTrue(PackedDescriptor.isUsed(used, wrap));
            assertFalse(PackedDescriptor.isAvailable(used, wrap));
            assertFalse(PackedDescriptor.isAvailable(used, wrap ^ 1), "a used descriptor is never available");
        }
        assertFalse(PackedDescriptor.isAvailable(0, 1), "a zeroed ring holds nothing for a fresh driver (wrap 1)");
    }
}
