package io.vswitch.vhost.memory;

import java.lang.foreign.MemorySegment;

/**
 * One queue's cache of the guest memory region that answered its last lookup: the fast paths' translation of a
 * descriptor's guest-physical range into a host address without going through {@link GuestMemory}'s arrays.
 *
 * <p>Used by one thread at a time, like the rest of a queue's data-path state: the queue's worker while the queue
 * is published, the control thread ({@link #clear}, from {@code unconfigure}) only while it is not. Its fields are
 * plain and never raced on, so they are never seen torn (unlike {@link GuestMemory}'s hint, which workers share and
 * which is therefore only an index, checked against the arrays). The cached region belongs to the {@link GuestMemory} it was found in, and it answers
 * only for that memory: a queue whose memory is replaced ({@code replaceMemory}) misses once and looks the range
 * up in the new memory. A hit is the same range check {@link GuestMemory#findGuest} does, on the same numbers.
 *
 * <pre>
 *   host(memory, gpa, length):
 *     memory == cached memory  and  [gpa, gpa+length) inside [start, start+size)  ->  gpa + bias
 *     otherwise  ->  memory.findGuest (the region becomes the cached one), or -1 when no region holds it
 * </pre>
 */
public final class RegionCache {
    private GuestMemory memory;
    private long start;
    /** 0 while nothing is cached: no range is inside an empty region. */
    private long size;
    private long bias;
    private MemorySegment segment = GuestMemory.EVERYTHING;

    /**
     * The address of guest-physical {@code [gpa, gpa+length)} of {@code memory} in {@link #segment()} (a host
     * address, or an offset in the region's segment when guest memory is checked), or -1 when the range is not
     * wholly inside one region. Small on purpose: inlined into the rings' fast paths, the miss is a call.
     */
    public long host(GuestMemory memory, long gpa, long length) {
        final long offset = gpa - start;
        if (memory == this.memory && Long.compareUnsigned(offset, size) < 0 && Long.compareUnsigned(length, size - offset) <= 0) {
            return GuestMemory.CHECKED ? offset : gpa + bias;
        }
        return miss(memory, gpa, length);
    }

    private long miss(GuestMemory memory, long gpa, long length) {
        final int region = memory.findGuest(gpa, length);
        if (region < 0) {
            return -1;
        }
        this.memory = memory;
        this.start = memory.guestStart(region);
        this.size = memory.regionSize(region);
        this.bias = memory.hostAddress(region, 0);
        this.segment = memory.dataSegment(region);
        return memory.hostAddress(region, gpa);
    }

    /**
     * The segment the address {@link #host} returned is in: {@link GuestMemory#EVERYTHING} unless guest memory is
     * checked (callers name it through {@link GuestMemory#direct}, where it is the constant).
     */
    public MemorySegment segment() {
        return segment;
    }

    /** Forgets the cached region (the queue's memory is going away). */
    public void clear() {
        memory = null;
        start = 0;
        size = 0;
        bias = 0;
        segment = GuestMemory.EVERYTHING;
    }
}
