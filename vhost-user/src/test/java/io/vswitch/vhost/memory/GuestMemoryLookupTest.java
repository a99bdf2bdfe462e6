package io.vswitch.vhost.memory;

import io.vswitch.sys.Libc;
import io.vswitch.sys.SharedMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Guest-physical lookups with many regions (sorted + last-hit hint) answer exactly what a plain scan of every
 * region answers, for addresses inside, between, at the edges of and far outside the regions, and ranges that
 * straddle two adjacent regions (never valid: a range must lie wholly in one region).
 */
class GuestMemoryLookupTest {
    private static final long PAGE = 4096;
    private final List<MemoryRegion> mapped = new ArrayList<>();

    @AfterEach
    void unmap() {
        mapped.forEach(MemoryRegion::close);
    }

    private MemoryRegion region(long gpa, long size, long uva) {
        int fd = SharedMemory.memfd("lookup", size, false);
        MemoryRegion r = MemoryRegion.map(fd, gpa, size, uva, 0);   // map closes fd
        mapped.add(r);
        return r;
    }

    /** What findGuest must answer: the one region holding the range wholly, by brute force. */
    private static int reference(List<MemoryRegion> regions, GuestMemory memory, long gpa, long length) {
        for (MemoryRegion r : regions) {
            long off = gpa - r.guestPhysAddr();
            if (Long.compareUnsigned(off, r.size()) < 0 && Long.compareUnsigned(length, r.size() - off) <= 0) {
                for (int i = 0; i < memory.regionCount(); i++) {
                    if (memory.region(i) == r) {
                        return i;
                    }
                }
            }
        }
        return -1;
    }

    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(ints = {1, 5, GuestMemory.LINEAR_SCAN_MAX, GuestMemory.LINEAR_SCAN_MAX + 1, 100})
    void regionsInAnyOrderAnswerLikeABruteForceScan(int count) {
        SplittableRandom random = new SplittableRandom(11 + count);
        List<MemoryRegion> regions = new ArrayList<>();
        GuestMemory memory = GuestMemory.empty();
        long gpa = 0x10_0000;
        for (int i = 0; i < count; i++) {
            long size = PAGE * (1 + random.nextInt(4));
            // adjacent regions and gaps alike
            gpa += random.nextBoolean() ? 0 : PAGE * random.nextInt(1, 3);
            regions.add(region(gpa, size, 0x7f00_0000_0000L + gpa * 2));
            gpa += size;
        }
        List<MemoryRegion> shuffled = new ArrayList<>(regions);
        java.util.Collections.shuffle(shuffled, new java.util.Random(5));
        for (MemoryRegion r : shuffled) {
            memory = memory.with(r);
        }
        for (int i = 1; i < memory.regionCount(); i++) {
            assertTrue(Long.compareUnsigned(memory.region(i - 1).guestPhysAddr(), memory.region(i).guestPhysAddr()) < 0,
                    "kept in guest-physical order");
        }
        long end = gpa;
        for (int n = 0; n < 50_000; n++) {
            long at = switch (random.nextInt(4)) {
                case 0 -> random.nextLong(0, end + PAGE * 4);
                case 1 -> regions.get(random.nextInt(regions.size())).guestPhysAddr() + random.nextInt(-2, 3);
                case 2 -> { MemoryRegion r = regions.get(random.nextInt(regions.size())); yield r.guestPhysAddr() + r.size() - random.nextInt(0, 3); }
                default -> random.nextLong();   // anywhere, wrap-around included
            };
            long length = switch (random.nextInt(3)) {
                case 0 -> random.nextInt(0, 3 * (int) PAGE);
                case 1 -> random.nextInt(0, 4);
                default -> random.nextLong();
            };
            assertEquals(reference(regions, memory, at, length), memory.findGuest(at, length),
                    String.format("gpa 0x%x length %d", at, length));
        }
    }

    @Test
    void theHintIsCheckedNotTrusted() {
        MemoryRegion a = region(0x1000_0000L, PAGE, 0x7f00_0000_0000L);
        MemoryRegion b = region(0x1000_0000L + PAGE, PAGE, 0x7f00_1000_0000L);
        GuestMemory memory = GuestMemory.empty().with(a).with(b);
        assertEquals(1, memory.findGuest(b.guestPhysAddr() + 8, 8));
        assertEquals(0, memory.findGuest(a.guestPhysAddr(), PAGE), "the hint (region 1) does not hold it");
        assertEquals(-1, memory.findGuest(a.guestPhysAddr() + PAGE - 4, 8), "straddles two adjacent regions");
        assertEquals(-1, memory.findGuest(b.guestPhysAddr() + PAGE, 0), "one past the end");
        assertEquals(-1, GuestMemory.empty().findGuest(0, 0));
    }

    @Test
    void upTo509RegionsAndNotOneMore() {
        int fd = SharedMemory.memfd("slots", PAGE, false);
        try {
            GuestMemory memory = GuestMemory.empty();
            for (int i = 0; i < GuestMemory.MAX_REGIONS; i++) {
                MemoryRegion r = MemoryRegion.map(io.vswitch.testing.TestFrontend.dup(fd), 0x1_0000_0000L + i * PAGE * 2, PAGE, 0x7f00_0000_0000L + i * PAGE, 0);
                mapped.add(r);
                memory = memory.with(r);
            }
            assertEquals(509, memory.regionCount());
            for (int i = 0; i < GuestMemory.MAX_REGIONS; i++) {
                long at = 0x1_0000_0000L + i * PAGE * 2;
                assertEquals(i, memory.findGuest(at + 100, 100));
                assertEquals(-1, memory.findGuest(at + PAGE, 1), "the gap after region " + i);
            }
            MemoryRegion extra = MemoryRegion.map(io.vswitch.testing.TestFrontend.dup(fd), 0x2_0000_0000L, PAGE, 0x7f10_0000_0000L, 0);
            mapped.add(extra);
            GuestMemory full = memory;
            GuestMemoryException e = assertThrows(GuestMemoryException.class, () -> full.with(extra));
            assertTrue(e.getMessage().contains("509"), e.getMessage());
            assertFalse(full.contains(extra));
        } finally {
            Libc.closeQuietly(fd);
        }
    }
}
