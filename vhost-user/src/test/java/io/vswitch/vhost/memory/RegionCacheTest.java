package io.vswitch.vhost.memory;

import io.vswitch.sys.SharedMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * A queue's region cache answers exactly what {@link GuestMemory#findGuest} and {@link GuestMemory#hostAddress}
 * answer, whatever it cached before: for ranges inside, across the edges of and outside the cached region, for
 * another memory that holds the same guest-physical range elsewhere, and after {@link RegionCache#clear}.
 */
class RegionCacheTest {
    private static final long PAGE = 4096;
    private final List<MemoryRegion> mapped = new ArrayList<>();

    @AfterEach
    void unmap() {
        mapped.forEach(MemoryRegion::close);
    }

    private MemoryRegion region(long gpa, long size, long uva) {
        MemoryRegion r = MemoryRegion.map(SharedMemory.memfd("cache", size, false), gpa, size, uva, 0);
        mapped.add(r);
        return r;
    }

    /** What the cache must answer: findGuest and hostAddress of the memory asked, -1 when no region holds the range. */
    private static long expected(GuestMemory memory, long gpa, long length) {
        int region = memory.findGuest(gpa, length);
        return region < 0 ? -1 : memory.hostAddress(region, gpa);
    }

    @Test
    void answersLikeTheMemoryItIsAsked() {
        MemoryRegion a = region(0x10_0000, 4 * PAGE, 0x7f00_0000_0000L);
        MemoryRegion b = region(0x10_0000 + 4 * PAGE, 2 * PAGE, 0x7f00_1000_0000L);   // adjacent to a
        MemoryRegion c = region(0x40_0000, 3 * PAGE, 0x7f00_2000_0000L);
        GuestMemory memory = GuestMemory.empty().with(a).with(b).with(c);
        RegionCache cache = new RegionCache();
        SplittableRandom random = new SplittableRandom(7);
        long[] edges = {a.guestPhysAddr(), b.guestPhysAddr(), c.guestPhysAddr(), c.guestPhysAddr() + c.size(), 0x20_0000};
        for (int n = 0; n < 100_000; n++) {
            long gpa = switch (random.nextInt(3)) {
                case 0 -> edges[random.nextInt(edges.length)] + random.nextInt(-16, 17);
                case 1 -> random.nextLong(0x10_0000, 0x40_0000 + 4 * PAGE);
                default -> random.nextLong();
            };
            long length = random.nextInt(4) == 0 ? random.nextLong() : random.nextInt(0, (int) (3 * PAGE));
            assertEquals(expected(memory, gpa, length), cache.host(memory, gpa, length),
                    String.format("gpa 0x%x length %d", gpa, length));
        }
    }

    /** The long at guest-physical {@code gpa} of {@code memory}, read where the cache says it is. */
    private static long readThrough(RegionCache cache, GuestMemory memory, long gpa) {
        long host = cache.host(memory, gpa, 8);
        assertEquals(expected(memory, gpa, 8), host);
        return GuestMemory.direct(cache.segment()).get(ValueLayout.JAVA_LONG_UNALIGNED, host);
    }

    @Test
    void anotherMemoryIsNeverAnsweredFromTheCache() {
        MemoryRegion first = region(0x10_0000, 2 * PAGE, 0x7f00_0000_0000L);
        MemoryRegion second = region(0x10_0000, 2 * PAGE, 0x7f00_1000_0000L);   // the same guest range, another mapping
        first.segment().set(ValueLayout.JAVA_LONG_UNALIGNED, 64, 0x1111L);
        second.segment().set(ValueLayout.JAVA_LONG_UNALIGNED, 64, 0x2222L);
        GuestMemory before = GuestMemory.empty().with(first);
        GuestMemory after = GuestMemory.empty().with(second);
        RegionCache cache = new RegionCache();
        assertEquals(0x1111L, readThrough(cache, before, 0x10_0000 + 64));
        assertEquals(0x2222L, readThrough(cache, after, 0x10_0000 + 64), "replaced memory: looked up again");
        assertEquals(0x1111L, readThrough(cache, before, 0x10_0000 + 64), "and back");
        assertEquals(-1, cache.host(GuestMemory.empty(), 0x10_0000 + 64, 8), "a memory without the region");
        cache.clear();
        assertEquals(-1, cache.host(before, 0x10_0000 + 2 * PAGE - 4, 8), "past the region's end, after clear");
        assertEquals(0x1111L, readThrough(cache, before, 0x10_0000 + 64));
    }
}
