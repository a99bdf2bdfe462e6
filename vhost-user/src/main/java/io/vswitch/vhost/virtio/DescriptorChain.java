package io.vswitch.vhost.virtio;

import io.vswitch.vhost.memory.GuestMemory;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static io.vswitch.protocol.SplitRing.DESC_ADDR;
import static io.vswitch.protocol.SplitRing.DESC_F_INDIRECT;
import static io.vswitch.protocol.SplitRing.DESC_F_NEXT;
import static io.vswitch.protocol.SplitRing.DESC_F_WRITE;
import static io.vswitch.protocol.SplitRing.DESC_LEN;
import static io.vswitch.protocol.SplitRing.DESC_SIZE;

/**
 * A cursor over one descriptor chain of a split virtqueue, in guest memory (rust-vmm's {@code DescriptorChain}):
 * it follows {@code next} links through the ring's descriptor table and, at most once, into an indirect table,
 * and yields the chain's non-empty buffers one at a time, each already translated to a segment and an offset.
 * One instance per queue, reused for every chain: no allocation per frame.
 *
 * <p>Everything the guest wrote is checked before use, and a violation ends the walk with a {@link QueueFault}
 * and its detail (for the queue to record): a loop (more descriptors than the table holds), a {@code next}
 * outside the table, an indirect descriptor inside an indirect table, an indirect table whose size is not a
 * whole number of descriptors or exceeds the queue, and a buffer or table outside guest memory.
 */
final class DescriptorChain {
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED;

    private int queueSize;
    // where the descriptors are: the ring's table, or an indirect table
    private MemorySegment table;
    private long tableBase;
    private int tableSize;
    private boolean inIndirect;
    private int cursor;
    private int visited;
    private boolean done;
    // the current buffer
    private MemorySegment segment;
    private long offset;
    private long addr;
    private long length;
    private boolean writable;
    // why the walk stopped with -1
    private QueueFault fault = QueueFault.NONE;
    private String faultDetail = "";

    /** Starts the chain whose head is descriptor {@code head} (already checked below {@code queueSize}) of {@code ring}. */
    void begin(MemorySegment ring, long ringBase, int queueSize, int head) {
        this.queueSize = queueSize;
        this.table = ring;
        this.tableBase = ringBase;
        this.tableSize = queueSize;
        this.inIndirect = false;
        this.cursor = head;
        this.visited = 0;
        this.done = false;
    }

    /**
     * Advances to the chain's next non-empty buffer, translated through {@code memory}: 1 when there is one,
     * 0 at the end of the chain, -1 on a violation ({@link #fault()}, {@link #faultDetail()}).
     */
    int next(GuestMemory memory) {
        while (!done) {
            if (++visited > tableSize) {
                return loop();
            }
            long at = tableBase + (long) cursor * DESC_SIZE;
            final MemorySegment t = GuestMemory.direct(table);
            long bufferAddr = t.get(U64, at + DESC_ADDR);
            // len, flags and next in one 8-byte load (little-endian: len low, then flags, then next)
            long word = t.get(U64, at + DESC_LEN);
            long bufferLength = word & 0xFFFF_FFFFL;
            int flags = (int) (word >>> 32) & 0xFFFF;
            if ((flags & DESC_F_INDIRECT) != 0) {
                if (!enterIndirect(memory, bufferAddr, bufferLength, flags)) {
                    return -1;
                }
                continue;
            }
            if ((flags & DESC_F_NEXT) != 0) {
                int next = (int) (word >>> 48);
                if (next >= tableSize) {
                    return nextOutOfRange(next);
                }
                cursor = next;
            } else {
                done = true;
            }
            if (bufferLength == 0) {
                continue;
            }
            int region = memory.findGuest(bufferAddr, bufferLength);
            if (region < 0) {
                return outsideMemory("buffer", bufferAddr, bufferLength);
            }
            segment = memory.dataSegment(region);
            offset = memory.hostAddress(region, bufferAddr);
            addr = bufferAddr;
            length = bufferLength;
            writable = (flags & DESC_F_WRITE) != 0;
            return 1;
        }
        return 0;
    }

    /** Continues the walk in the indirect table an INDIRECT descriptor points to; false on a violation. */
    private boolean enterIndirect(GuestMemory memory, long tableAddr, long tableLength, int flags) {
        if (inIndirect) {
            violation(QueueFault.NESTED_INDIRECT, "indirect descriptor " + cursor + " inside an indirect table");
            return false;
        }
        if ((flags & DESC_F_NEXT) != 0 || tableLength == 0 || tableLength % DESC_SIZE != 0 || tableLength / DESC_SIZE > queueSize) {
            violation(QueueFault.BAD_INDIRECT, "indirect table of " + tableLength + " bytes, flags 0x" + Integer.toHexString(flags));
            return false;
        }
        int region = memory.findGuest(tableAddr, tableLength);
        if (region < 0) {
            outsideMemory("indirect table", tableAddr, tableLength);
            return false;
        }
        table = memory.dataSegment(region);
        tableBase = memory.hostAddress(region, tableAddr);
        tableSize = (int) (tableLength / DESC_SIZE);
        inIndirect = true;
        cursor = 0;
        visited = 0;
        return true;
    }

    // the violations, out of line so that next() stays small enough to inline

    private int loop() {
        return violation(QueueFault.CHAIN_LOOP, "chain visits more than " + tableSize + " descriptors");
    }

    private int nextOutOfRange(int next) {
        return violation(QueueFault.NEXT_OUT_OF_RANGE, "next " + next + " >= table size " + tableSize);
    }

    private int outsideMemory(String what, long at, long bytes) {
        return violation(QueueFault.ADDRESS_OUT_OF_MEMORY, String.format("%s at 0x%x (+%d)", what, at, bytes));
    }

    private int violation(QueueFault why, String detail) {
        fault = why;
        faultDetail = detail;
        done = true;
        return -1;
    }

    /** The current buffer's mapping. */
    MemorySegment segment() {
        return segment;
    }

    /** The current buffer's offset in {@link #segment()}. */
    long offset() {
        return offset;
    }

    /** The current buffer's guest-physical address (for the dirty-page log). */
    long addr() {
        return addr;
    }

    /** The current buffer's length in bytes, never 0. */
    long length() {
        return length;
    }

    /** Whether the device may write the current buffer (VIRTQ_DESC_F_WRITE). */
    boolean writable() {
        return writable;
    }

    /** Why the last {@link #next} returned -1. */
    QueueFault fault() {
        return fault;
    }

    String faultDetail() {
        return faultDetail;
    }
}
