package io.vswitch.bench;

import io.vswitch.protocol.VirtioNetHeader;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

import static io.vswitch.protocol.SplitRing.*;

/**
 * The driver side of one split virtqueue for benchmarks, written to cost as little as possible per packet.
 *
 * <p>Descriptors are laid out once ({@link #txBuffers} / {@link #rxBuffers}) with head {@code i} owning
 * buffer {@code i}, and never change. Because the device returns buffers in the order it took them, the
 * buffer in avail slot {@code j} is always head {@code j & mask}: refilling is one 2-byte store per packet
 * into the avail ring plus one release store of {@code avail.idx} per burst ({@link #post}), and reading
 * what came back is one acquire load of {@code used.idx} ({@link #usedIdx}). The driver never reads used
 * elements or frame bytes. No event index, no interrupts: {@code call} is never set.
 */
public final class QueueDriver {
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED;
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final VarHandle U16_ATOMIC = ValueLayout.JAVA_SHORT.varHandle();

    private final GuestRam guest;
    private final MemorySegment ram;
    public final int size;
    private final int mask;
    public final long descOffset;
    public final long availOffset;
    public final long usedOffset;
    private final long availRing;
    private final long availIdxOffset;
    private final long usedIdxOffset;
    /** Offset of each head's buffer (for frames: where the virtio-net header starts). */
    public final long[] bufferOffset;

    /** The driver's avail.idx (16-bit, kept unwrapped here). */
    private int availIdx;
    /** used.idx as the driver last saw it. */
    private int usedSeen;

    public QueueDriver(GuestRam guest, int size) {
        if (Integer.bitCount(size) != 1) {
            throw new IllegalArgumentException("queue size must be a power of two: " + size);
        }
        this.guest = guest;
        this.ram = guest.ram;
        this.size = size;
        this.mask = size - 1;
        this.descOffset = guest.alloc(descTableBytes(size), 4096);
        this.availOffset = guest.alloc(availBytes(size), 4096);
        this.usedOffset = guest.alloc(usedBytes(size), 4096);
        this.availRing = availOffset + AVAIL_RING;
        this.availIdxOffset = availOffset + AVAIL_IDX;
        this.usedIdxOffset = usedOffset + USED_IDX;
        this.bufferOffset = new long[size];
    }

    public long descAddr() {
        return guest.uva(descOffset);
    }

    public long availAddr() {
        return guest.uva(availOffset);
    }

    public long usedAddr() {
        return guest.uva(usedOffset);
    }

    private void desc(long table, int i, long gpa, int length, int flags, int next) {
        long at = table + (long) i * DESC_SIZE;
        ram.set(U64, at + DESC_ADDR, gpa);
        ram.set(U32, at + DESC_LEN, length);
        ram.set(U16, at + DESC_FLAGS, (short) flags);
        ram.set(U16, at + DESC_NEXT, (short) next);
    }

    /**
     * Transmit buffers: each head holds header + frame in {@code bufferSize} bytes. Directly, one descriptor
     * of {@code 12 + frameLength} bytes (a driver that pushes the header in front of the frame, as DPDK and
     * Linux do with VERSION_1); with {@code indirect}, an indirect table of two entries, header and frame
     * (a driver that keeps them apart).
     */
    public void txBuffers(int frameLength, int bufferSize, boolean indirect) {
        txBuffers(frameLength, bufferSize, bufferSize, indirect);
    }

    /** As {@link #txBuffers(int, int, boolean)}, the buffers {@code stride} bytes apart (at least {@code bufferSize}). */
    public void txBuffers(int frameLength, int bufferSize, int stride, boolean indirect) {
        for (int i = 0; i < size; i++) {
            long buf = guest.alloc(Math.max(stride, bufferSize), 64);
            bufferOffset[i] = buf;
            if (indirect) {
                long table = guest.alloc(2L * DESC_SIZE, 16);
                desc(table, 0, guest.gpa(buf), VirtioNetHeader.SIZE, DESC_F_NEXT, 1);
                desc(table, 1, guest.gpa(buf + VirtioNetHeader.SIZE), frameLength, 0, 0);
                desc(descOffset, i, guest.gpa(table), 2 * DESC_SIZE, DESC_F_INDIRECT, 0);
            } else {
                desc(descOffset, i, guest.gpa(buf), VirtioNetHeader.SIZE + frameLength, 0, 0);
            }
        }
    }

    /**
     * Receive buffers of {@code bufferSize} bytes: one device-writable descriptor each, or with
     * {@code indirect} an indirect table of two, a 12-byte header and {@code bufferSize} bytes of data.
     */
    public void rxBuffers(int bufferSize, boolean indirect) {
        rxBuffers(bufferSize, bufferSize, indirect);
    }

    /** As {@link #rxBuffers(int, boolean)}, the buffers {@code stride} bytes apart (at least their size). */
    public void rxBuffers(int bufferSize, int stride, boolean indirect) {
        for (int i = 0; i < size; i++) {
            if (indirect) {
                long buf = guest.alloc(VirtioNetHeader.SIZE + (long) bufferSize, 64);
                bufferOffset[i] = buf;
                long table = guest.alloc(2L * DESC_SIZE, 16);
                desc(table, 0, guest.gpa(buf), VirtioNetHeader.SIZE, DESC_F_WRITE | DESC_F_NEXT, 1);
                desc(table, 1, guest.gpa(buf + VirtioNetHeader.SIZE), bufferSize, DESC_F_WRITE, 0);
                desc(descOffset, i, guest.gpa(table), 2 * DESC_SIZE, DESC_F_INDIRECT, 0);
            } else {
                long buf = guest.alloc(Math.max(stride, bufferSize), 64);
                bufferOffset[i] = buf;
                desc(descOffset, i, guest.gpa(buf), bufferSize, DESC_F_WRITE, 0);
            }
        }
    }

    /** Writes an Ethernet header into transmit buffer {@code head}'s frame (after the virtio-net header). */
    public void writeEthernet(int head, long dstMac, long srcMac, int etherType) {
        long at = bufferOffset[head] + VirtioNetHeader.SIZE;
        for (int b = 0; b < 6; b++) {
            ram.set(ValueLayout.JAVA_BYTE, at + b, (byte) (dstMac >>> (40 - 8 * b)));
            ram.set(ValueLayout.JAVA_BYTE, at + 6 + b, (byte) (srcMac >>> (40 - 8 * b)));
        }
        ram.set(ValueLayout.JAVA_BYTE, at + 12, (byte) (etherType >>> 8));
        ram.set(ValueLayout.JAVA_BYTE, at + 13, (byte) etherType);
    }

    /** Makes the next {@code n} buffers available: n 2-byte stores and one release store of avail.idx. */
    public void post(int n) {
        int idx = availIdx;
        final MemorySegment r = ram;
        final long ring = availRing;
        final int m = mask;
        for (int i = 0; i < n; i++, idx++) {
            r.set(U16, ring + 2L * (idx & m), (short) (idx & m));
        }
        availIdx = idx;
        U16_ATOMIC.setRelease(r, availIdxOffset, (short) idx);
    }

    /** The device's used.idx (acquire). */
    public int usedIdx() {
        return (short) U16_ATOMIC.getAcquire(ram, usedIdxOffset) & 0xFFFF;
    }

    /** How many buffers the device returned since the last call (one acquire load). */
    public int reap() {
        int used = usedIdx();
        int n = (used - usedSeen) & 0xFFFF;
        usedSeen = used;
        return n;
    }

    /** Buffers made available and not yet returned, as of the last {@link #reap}. */
    public int outstanding() {
        return (availIdx - usedSeen) & 0xFFFF;
    }

    /** avail.idx as the driver last published it (16 bits). */
    public int availIdx() {
        return availIdx & 0xFFFF;
    }

    /** Reads used element {@code i} (mod size): {id, len}. For checks only, never in a measured loop. */
    public int[] usedElement(int i) {
        long at = usedOffset + USED_RING + (long) USED_ELEM_SIZE * (i & mask);
        return new int[] {ram.get(U32, at + USED_ELEM_ID), ram.get(U32, at + USED_ELEM_LEN)};
    }

    public MemorySegment ram() {
        return ram;
    }
}
