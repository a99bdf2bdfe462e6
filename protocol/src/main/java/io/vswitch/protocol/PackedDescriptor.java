package io.vswitch.protocol;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

/**
 * Flyweight over one 16-byte descriptor of a packed virtqueue (virtio 1.2, 2.8), in the descriptor ring or
 * in an indirect table. All fields little-endian. Point it at a descriptor with {@link #wrap}; nothing is
 * copied and nothing is allocated, so one instance serves a whole ring.
 *
 * <pre>
 * struct pvirtq_desc {
 *     le64 addr;    //  0  buffer address (guest-physical)
 *     le32 len;     //  8  buffer length; for a used descriptor: bytes written by the device
 *     le16 id;      // 12  buffer ID (the driver's, echoed back by the device in the used descriptor)
 *     le16 flags;   // 14  NEXT 0x1, WRITE 0x2, INDIRECT 0x4, AVAIL 0x80 (bit 7), USED 0x8000 (bit 15)
 * };                // 16 bytes, ring of queue_size entries, 16-byte aligned
 *
 *   a descriptor is available when  AVAIL == driver's wrap counter  and  USED != driver's wrap counter
 *   a descriptor is used      when  AVAIL == USED == device's used wrap counter
 * </pre>
 *
 * The driver writes {@code flags} last (with release semantics) and the device reads it first (acquire),
 * so a descriptor's other fields are read only after its flags said it is available; the device writes a
 * used descriptor's id and len first and its flags last, with release semantics.
 */
public final class PackedDescriptor {
    public static final int SIZE = 16;
    public static final int ADDR = 0;
    public static final int LEN = 8;
    public static final int ID = 12;
    public static final int FLAGS = 14;

    public static final int F_NEXT = 1;
    public static final int F_WRITE = 2;
    public static final int F_INDIRECT = 4;
    public static final int F_AVAIL = 1 << 7;
    public static final int F_USED = 1 << 15;

    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED;
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final VarHandle U16_ATOMIC = ValueLayout.JAVA_SHORT.varHandle();

    private MemorySegment segment;
    private long base;

    /** Points this flyweight at the descriptor at byte {@code offset} of {@code segment}; returns this. */
    public PackedDescriptor wrap(MemorySegment segment, long offset) {
        this.segment = segment;
        this.base = offset;
        return this;
    }

    public long addr() {
        return segment.get(U64, base + ADDR);
    }

    /** The length, unsigned. */
    public long len() {
        return segment.get(U32, base + LEN) & 0xFFFF_FFFFL;
    }

    public int id() {
        return segment.get(U16, base + ID) & 0xFFFF;
    }

    public int flags() {
        return segment.get(U16, base + FLAGS) & 0xFFFF;
    }

    /** The flags with acquire semantics: what follows reads the fields the driver wrote before them. */
    public int flagsAcquire() {
        return (short) U16_ATOMIC.getAcquire(segment, base + FLAGS) & 0xFFFF;
    }

    /** Writes a used descriptor's id and len; its flags are published separately ({@link #publishFlags}). */
    public void writeIdAndLength(int id, int length) {
        // len and id are adjacent (8..13): one 8-byte store would also cover flags, so two stores
        segment.set(U32, base + LEN, length);
        segment.set(U16, base + ID, (short) id);
    }

    /** Stores {@code flags} with release semantics: id and len written before become visible with it. */
    public void publishFlags(int flags) {
        U16_ATOMIC.setRelease(segment, base + FLAGS, (short) flags);
    }

    /** Writes every field (driver side: tests and benchmarks); flags last, with release semantics. */
    public void write(long addr, int length, int id, int flags) {
        segment.set(U64, base + ADDR, addr);
        segment.set(U32, base + LEN, length);
        segment.set(U16, base + ID, (short) id);
        publishFlags(flags);
    }

    // ---------------------------------------------------------------- static access for the data path
    // (no flyweight state: the worker's loops keep the ring segment and the offset in locals)

    private static final VarHandle U64_ATOMIC = ValueLayout.JAVA_LONG.varHandle();

    /** The flags of the descriptor at {@code offset}, with acquire semantics. */
    public static int flagsAcquire(MemorySegment ring, long offset) {
        return (short) U16_ATOMIC.getAcquire(ring, offset + FLAGS) & 0xFFFF;
    }

    /** len, id and flags of the descriptor at {@code offset} in one 8-byte load: len in bits 0..31, id 32..47, flags 48..63. */
    public static long lenIdFlags(MemorySegment ring, long offset) {
        return ring.get(U64, offset + LEN);
    }

    public static long addr(MemorySegment ring, long offset) {
        return ring.get(U64, offset + ADDR);
    }

    /** A used descriptor's len, id and flags as the 8-byte word at offset {@link #LEN}. */
    public static long usedWord(int id, int length, int flags) {
        return (length & 0xFFFF_FFFFL) | ((long) (id & 0xFFFF) << 32) | ((long) flags << 48);
    }

    /**
     * Writes a used descriptor's len, id and flags with one 8-byte store with release semantics (the flags
     * become visible together with id and len). {@code offset} is the descriptor's, 16-byte aligned.
     */
    public static void publishUsed(MemorySegment ring, long offset, long usedWord) {
        U64_ATOMIC.setRelease(ring, offset + LEN, usedWord);
    }

    /** True when {@code flags} mark the descriptor available for a driver whose wrap counter is {@code wrap} (0 or 1). */
    public static boolean isAvailable(int flags, int wrap) {
        return ((flags >>> 7) & 1) == wrap && ((flags >>> 15) & 1) != wrap;
    }

    /** True when {@code flags} mark the descriptor used for a driver whose used wrap counter is {@code wrap}. */
    public static boolean isUsed(int flags, int wrap) {
        return ((flags >>> 7) & 1) == wrap && ((flags >>> 15) & 1) == wrap;
    }

    /** The flags of a used descriptor written while the device's used wrap counter is {@code wrap}. */
    public static int usedFlags(int wrap) {
        return wrap != 0 ? F_AVAIL | F_USED : 0;
    }

    /** The flags a driver with wrap counter {@code wrap} sets to make a descriptor available (plus {@code other}). */
    public static int availFlags(int wrap, int other) {
        return (wrap != 0 ? F_AVAIL : F_USED) | other;
    }
}
