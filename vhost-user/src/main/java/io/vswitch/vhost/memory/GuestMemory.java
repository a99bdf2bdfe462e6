package io.vswitch.vhost.memory;

import io.vswitch.vhost.os.MappedMemory;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * The guest RAM a frontend shared with us: up to {@link #MAX_REGIONS} regions, each mapped from its own
 * descriptor. Immutable once built: a new memory table builds a new {@code GuestMemory}, published to the
 * data path only after the old one is no longer in use (see {@code VirtioNetDevice}).
 *
 * <p>Two address spaces are translated: guest-physical (descriptor addresses) and frontend-virtual (ring
 * addresses in SET_VRING_ADDR). A range is valid only when it lies wholly inside one region.
 */
public final class GuestMemory implements AutoCloseable {
    /** The most regions we accept, reported by GET_MAX_MEM_SLOTS. */
    public static final int MAX_REGIONS = 32;

    private final MemoryRegion[] regions;
    private final MemorySegment[] segments;
    private final long[] guestStart;
    private final long[] guestEnd;   // exclusive
    private final long[] userStart;
    private final long[] userEnd;    // exclusive

    private GuestMemory(List<MemoryRegion> list) {
        int n = list.size();
        regions = list.toArray(new MemoryRegion[0]);
        segments = new MemorySegment[n];
        guestStart = new long[n];
        guestEnd = new long[n];
        userStart = new long[n];
        userEnd = new long[n];
        for (int i = 0; i < n; i++) {
            MemoryRegion r = regions[i];
            segments[i] = r.segment();
            guestStart[i] = r.guestPhysAddr();
            guestEnd[i] = r.guestPhysAddr() + r.size();
            userStart[i] = r.userAddr();
            userEnd[i] = r.userAddr() + r.size();
        }
    }

    public static GuestMemory empty() {
        return new GuestMemory(List.of());
    }

    /** A memory with {@code region} added; overlaps with existing regions are refused. */
    public GuestMemory with(MemoryRegion region) {
        if (regions.length >= MAX_REGIONS) {
            throw new GuestMemoryException("more than " + MAX_REGIONS + " memory regions");
        }
        for (MemoryRegion r : regions) {
            if (overlaps(r.guestPhysAddr(), r.size(), region.guestPhysAddr(), region.size())) {
                throw new GuestMemoryException("region " + region + " overlaps guest-physical range of " + r);
            }
            if (overlaps(r.userAddr(), r.size(), region.userAddr(), region.size())) {
                throw new GuestMemoryException("region " + region + " overlaps frontend-virtual range of " + r);
            }
        }
        List<MemoryRegion> list = new ArrayList<>(List.of(regions));
        list.add(region);
        return new GuestMemory(list);
    }

    /** A memory without the region matching {@code guestPhysAddr, size, userAddr}; that region is returned in {@code removed[0]}. */
    public GuestMemory without(long guestPhysAddr, long size, long userAddr, MemoryRegion[] removed) {
        List<MemoryRegion> list = new ArrayList<>();
        for (MemoryRegion r : regions) {
            if (removed[0] == null && r.guestPhysAddr() == guestPhysAddr && r.size() == size && r.userAddr() == userAddr) {
                removed[0] = r;
            } else {
                list.add(r);
            }
        }
        if (removed[0] == null) {
            throw new GuestMemoryException(String.format("no region at guest 0x%x size 0x%x user 0x%x", guestPhysAddr, size, userAddr));
        }
        return new GuestMemory(list);
    }

    private static boolean overlaps(long aStart, long aSize, long bStart, long bSize) {
        return Long.compareUnsigned(aStart, bStart + bSize) < 0 && Long.compareUnsigned(bStart, aStart + aSize) < 0;
    }

    public int regionCount() {
        return regions.length;
    }

    public MemoryRegion region(int i) {
        return regions[i];
    }

    /**
     * The region holding guest-physical range {@code [gpa, gpa+length)} wholly, or -1. Zero-length ranges
     * must still start inside a region.
     */
    public int findGuest(long gpa, long length) {
        final long[] starts = guestStart;
        final long[] ends = guestEnd;
        for (int i = 0; i < starts.length; i++) {
            long offset = gpa - starts[i];
            if (Long.compareUnsigned(gpa, starts[i]) >= 0 && Long.compareUnsigned(gpa, ends[i]) < 0
                    && Long.compareUnsigned(length, ends[i] - starts[i] - offset) <= 0) {
                return i;
            }
        }
        return -1;
    }

    /** As {@link #findGuest}, for a frontend-virtual address. */
    public int findUser(long uva, long length) {
        final long[] starts = userStart;
        final long[] ends = userEnd;
        for (int i = 0; i < starts.length; i++) {
            long offset = uva - starts[i];
            if (Long.compareUnsigned(uva, starts[i]) >= 0 && Long.compareUnsigned(uva, ends[i]) < 0
                    && Long.compareUnsigned(length, ends[i] - starts[i] - offset) <= 0) {
                return i;
            }
        }
        return -1;
    }

    public MemorySegment segment(int region) {
        return segments[region];
    }

    public long guestOffset(int region, long gpa) {
        return gpa - guestStart[region];
    }

    /** The guest-physical address of frontend-virtual {@code uva}, or -1 when no region holds it. */
    public long userToGuest(long uva) {
        int r = findUser(uva, 1);
        return r < 0 ? -1 : uva - userStart[r] + guestStart[r];
    }

    /** The bytes at guest-physical {@code [gpa, gpa+length)}, or null when they are not wholly in one region. */
    public MemorySegment sliceGuest(long gpa, long length) {
        int r = findGuest(gpa, length);
        return r < 0 ? null : segments[r].asSlice(gpa - guestStart[r], length);
    }

    /** The bytes at frontend-virtual {@code [uva, uva+length)}, or null when they are not wholly in one region. */
    public MemorySegment sliceUser(long uva, long length) {
        int r = findUser(uva, length);
        return r < 0 ? null : segments[r].asSlice(uva - userStart[r], length);
    }

    /** Unmaps every region. */
    @Override
    public void close() {
        for (MemoryRegion r : regions) {
            r.close();
        }
    }
}
