package io.vswitch.vhost.memory;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/**
 * The guest RAM a frontend shared with us: up to {@link #MAX_REGIONS} regions, each mapped from its own
 * descriptor. Immutable once built (but for a lookup hint, below): a new memory table, an added or a removed
 * region builds a new {@code GuestMemory}; the regions it shares with the old one stay mapped, and a region it
 * dropped is unmapped only after a grace period (see {@code VirtioNetDevice}).
 *
 * <p>Two address spaces are translated: guest-physical (descriptor addresses, on the data path) and
 * frontend-virtual (ring addresses in SET_VRING_ADDR, at set-up). A range is valid only when it lies wholly
 * inside one region.
 *
 * <p>Guest-physical lookups stay fast with hundreds of regions: regions are kept sorted by guest-physical
 * address (they never overlap), a lookup first tries the region that answered the previous one (consecutive
 * descriptors almost always share a region), and otherwise scans them (up to {@value #LINEAR_SCAN_MAX}
 * regions) or binary-searches the sorted starts. Nothing is allocated. The hint is a plain field that workers may race on: it is only ever a guess that the full range
 * check confirms, so a stale or torn value costs a binary search, never a wrong answer.
 */
public final class GuestMemory implements AutoCloseable {
    /**
     * The most regions we accept, reported by GET_MAX_MEM_SLOTS: the 509 that QEMU (ACPI memory slots on
     * x86 and Arm) and rust-vmm frontends use at most. SET_MEM_TABLE still carries at most 8 (one message's
     * descriptors); more come one by one with ADD_MEM_REG (PROTOCOL_F_CONFIGURE_MEM_SLOTS).
     */
    public static final int MAX_REGIONS = 509;

    /** Up to this many regions a missed hint falls back to a scan, above to a binary search. */
    static final int LINEAR_SCAN_MAX = 8;

    private static final GuestMemory EMPTY = new GuestMemory(List.of());

    /** Sorted by guest-physical address; index i of every array below describes regions[i]. */
    private final MemoryRegion[] regions;
    private final MemorySegment[] segments;
    private final long[] guestStart;
    private final long[] userStart;
    private final long[] size;
    /** Per region: its mapping's host address minus its guest-physical start (host address = gpa + hostBias). */
    private final long[] hostBias;
    /**
     * Every address of this process, unchecked: what the data path reads and writes guest memory through. An
     * address is used only after {@link #findGuest} (or, for rings, {@link #findUser} at set-up) has found the
     * whole range inside one region, so the validation is the same as with checked segments; what goes is the
     * FFM liveness and bounds check on every access. The mapping's life is guaranteed by the quiescence protocol
     * instead: a region leaves a worker's hands only after a grace period ({@code WorkerEpoch}, which never
     * gives up). Measured in bench/RESULTS.md ("Unchecked guest memory"): +7.8 % in SwitchBenchmark over the
     * same code with checked segments.
     */
    public static final MemorySegment EVERYTHING = MemorySegment.NULL.reinterpret(Long.MAX_VALUE);

    /**
     * {@code -Dvswitch.checkedGuestMemory=true}: translate into the regions' own segments instead, so that every
     * access is bounded by its region and checked for liveness (an access to unmapped memory throws instead of
     * a SIGSEGV). For diagnosing a suspected quiescence bug, and for the tests that unmap memory on purpose and
     * prove that the fault checks run before any access (the build runs them this way).
     */
    public static final boolean CHECKED = Boolean.getBoolean("vswitch.checkedGuestMemory");
    /** The region that answered the last guest-physical lookup: a guess, checked before use (see above). */
    private int hint;

    private GuestMemory(List<MemoryRegion> list) {
        int n = list.size();
        regions = list.toArray(new MemoryRegion[0]);
        Arrays.sort(regions, Comparator.comparing(MemoryRegion::guestPhysAddr, Long::compareUnsigned));
        segments = new MemorySegment[n];
        guestStart = new long[n];
        userStart = new long[n];
        size = new long[n];
        hostBias = new long[n];
        for (int i = 0; i < n; i++) {
            MemoryRegion r = regions[i];
            segments[i] = r.segment();
            guestStart[i] = r.guestPhysAddr();
            userStart[i] = r.userAddr();
            size[i] = r.size();
            hostBias[i] = r.segment().address() - r.guestPhysAddr();
        }
    }

    public static GuestMemory empty() {
        return EMPTY;
    }

    /** A memory with {@code region} added; overlaps with existing regions and a region beyond the limit are refused. */
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
        List<MemoryRegion> list = new ArrayList<>(regions.length + 1);
        list.addAll(List.of(regions));
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

    /** Region {@code i}, in guest-physical order. */
    public MemoryRegion region(int i) {
        return regions[i];
    }

    /** True when {@code region} is one of this memory's regions (the same mapping, not only the same numbers). */
    public boolean contains(MemoryRegion region) {
        for (MemoryRegion r : regions) {
            if (r == region) {
                return true;
            }
        }
        return false;
    }

    /**
     * The region holding guest-physical range {@code [gpa, gpa+length)} wholly, or -1. Zero-length ranges
     * must still start inside a region. Allocation-free; see the class comment for how it searches.
     */
    public int findGuest(long gpa, long length) {
        final long[] starts = guestStart;
        final long[] sizes = size;
        int h = hint;
        if (h < starts.length && inside(gpa - starts[h], length, sizes[h])) {
            return h;
        }
        int n = starts.length;
        if (n <= LINEAR_SCAN_MAX) {
            // few regions: a scan beats a binary search's mispredicted branches (MemoryLookupBenchmark)
            for (int i = 0; i < n; i++) {
                if (inside(gpa - starts[i], length, sizes[i])) {
                    hint = i;
                    return i;
                }
            }
            return -1;
        }
        // the last region starting at or below gpa is the only one that can hold it
        int lo = 0;
        int hi = n - 1;
        int found = -1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (Long.compareUnsigned(starts[mid], gpa) <= 0) {
                found = mid;
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        if (found >= 0 && inside(gpa - starts[found], length, sizes[found])) {
            hint = found;
            return found;
        }
        return -1;
    }

    /** {@code [offset, offset+length)} lies within {@code [0, size)}; offsets below the start wrap to huge values. */
    private static boolean inside(long offset, long length, long size) {
        return Long.compareUnsigned(offset, size) < 0 && Long.compareUnsigned(length, size - offset) <= 0;
    }

    /** As {@link #findGuest}, for a frontend-virtual address (set-up only: a linear scan). */
    public int findUser(long uva, long length) {
        final long[] starts = userStart;
        final long[] sizes = size;
        for (int i = 0; i < starts.length; i++) {
            if (inside(uva - starts[i], length, sizes[i])) {
                return i;
            }
        }
        return -1;
    }

    public MemorySegment segment(int region) {
        return segments[region];
    }

    /** Region {@code region}'s first guest-physical address. */
    public long guestStart(int region) {
        return guestStart[region];
    }

    /** Region {@code region}'s size in bytes. */
    public long regionSize(int region) {
        return size[region];
    }

    public long guestOffset(int region, long gpa) {
        return gpa - guestStart[region];
    }

    /** The host address of guest-physical {@code gpa} in {@code region} (found by {@link #findGuest}), for {@link #EVERYTHING}. */
    public long hostAddress(int region, long gpa) {
        return CHECKED ? gpa - guestStart[region] : gpa + hostBias[region];
    }

    /**
     * The segment to access guest memory through, given the one that covers it ({@code segment}: a ring's slice,
     * a {@link #dataSegment}): {@link #EVERYTHING} itself, the constant, unless guest memory is checked. C2 folds
     * FFM's class, bounds and session checks only for a constant segment; read from a field or an array, even
     * {@code EVERYTHING} costs about 20 instructions of checks per access (bench/RESULTS.md, session 7). Small
     * enough to be inlined into every caller, where it is the constant.
     */
    public static MemorySegment direct(MemorySegment segment) {
        return CHECKED ? segment : EVERYTHING;
    }

    /**
     * Copies {@code n} bytes from {@code srcOffset} of {@code src} into guest memory at {@code dstOffset} of
     * {@code dst} (a {@link #dataSegment}, the range validated). Unchecked, both segments are named as the
     * constant {@link #EVERYTHING} where they are it (the destination always, the source when it is a guest's
     * frame): C2 folds FFM's class, bounds and session checks only for a constant segment, not for one read
     * from a field or an array (bench/RESULTS.md, session 7). Small enough to be inlined into every caller.
     */
    public static void copyToGuest(MemorySegment src, long srcOffset, MemorySegment dst, long dstOffset, long n) {
        if (CHECKED) {
            MemorySegment.copy(src, srcOffset, dst, dstOffset, n);
        } else if (src == EVERYTHING) {
            MemorySegment.copy(EVERYTHING, srcOffset, EVERYTHING, dstOffset, n);
        } else {
            MemorySegment.copy(src, srcOffset, EVERYTHING, dstOffset, n);
        }
    }

    /** The segment {@link #hostAddress} is an offset in. */
    public MemorySegment dataSegment(int region) {
        return CHECKED ? segments[region] : EVERYTHING;
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

    /** True when frontend-virtual {@code [uva, uva+length)} overlaps {@code region} at all. */
    public static boolean touches(MemoryRegion region, long uva, long length) {
        return Long.compareUnsigned(uva, region.userAddr() + region.size()) < 0
                && Long.compareUnsigned(region.userAddr(), uva + length) < 0;
    }

    /** Unmaps every region. */
    @Override
    public void close() {
        for (MemoryRegion r : regions) {
            r.close();
        }
    }
}
