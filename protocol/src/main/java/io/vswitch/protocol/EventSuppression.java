package io.vswitch.protocol;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

/**
 * Flyweight over a packed virtqueue's event suppression structure (virtio 1.2, 2.8.10). Each queue has two:
 * the driver's (driver area, SET_VRING_ADDR's "avail" address; the driver writes it and the device reads it
 * before calling) and the device's (device area, the "used" address; the device writes it and the driver
 * reads it before kicking).
 *
 * <pre>
 * struct pvirtq_event_suppress {
 *     le16 off_wrap;  // 0  bits 0..14: descriptor ring offset, bit 15: wrap counter (used with flags DESC)
 *     le16 flags;     // 2  bits 0..1: ENABLE 0, DISABLE 1, DESC 2 (only with EVENT_IDX); 3 is reserved
 * };                  // 4 bytes, 4-byte aligned
 * </pre>
 */
public final class EventSuppression {
    public static final int SIZE = 4;
    public static final int OFF_WRAP = 0;
    public static final int FLAGS = 2;

    public static final int FLAGS_MASK = 3;
    public static final int ENABLE = 0;
    public static final int DISABLE = 1;
    public static final int DESC = 2;

    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final VarHandle U16_ATOMIC = ValueLayout.JAVA_SHORT.varHandle();
    private static final VarHandle U32_ATOMIC = ValueLayout.JAVA_INT.varHandle();

    private MemorySegment segment;
    private long base;

    public EventSuppression wrap(MemorySegment segment, long offset) {
        this.segment = segment;
        this.base = offset;
        return this;
    }

    public int offWrap() {
        return segment.get(U16, base + OFF_WRAP) & 0xFFFF;
    }

    /** The flags field's two defined bits. */
    public int flags() {
        return segment.get(U16, base + FLAGS) & FLAGS_MASK;
    }

    public void setOffWrap(int offset, int wrap) {
        segment.set(U16, base + OFF_WRAP, (short) ((offset & 0x7FFF) | (wrap << 15)));
    }

    /** Stores the flags with release semantics (after off_wrap, which they make meaningful). */
    public void setFlags(int flags) {
        U16_ATOMIC.setRelease(segment, base + FLAGS, (short) flags);
    }

    /**
     * Both fields in one 4-byte store with release semantics: flags DESC and the descriptor {@code offset} of lap
     * {@code wrap}, so that a reader never sees the new flags with the old position (the structure is 4-byte
     * aligned; drivers read it as one 32-bit snapshot, as Linux does).
     */
    public void setDescEvent(int offset, int wrap) {
        U32_ATOMIC.setRelease(segment, base + OFF_WRAP, ((offset & 0x7FFF) | (wrap << 15)) | (DESC << 16));
    }

    /** Both fields in one 4-byte load with acquire semantics: off_wrap in bits 0..15, flags in bits 16..31 (use {@link #flagsOf}, {@link #offWrapOf}). */
    public int wordAcquire() {
        return (int) U32_ATOMIC.getAcquire(segment, base + OFF_WRAP);
    }

    public static int flagsOf(int word) {
        return (word >>> 16) & FLAGS_MASK;
    }

    public static int offWrapOf(int word) {
        return word & 0xFFFF;
    }

    public static int offset(int offWrap) {
        return offWrap & 0x7FFF;
    }

    public static int wrapCounter(int offWrap) {
        return offWrap >>> 15;
    }
}
