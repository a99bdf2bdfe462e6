package io.vswitch.bench;

import io.vswitch.sys.Libc;
import io.vswitch.vhost.memory.GuestMemory;
import io.vswitch.vhost.memory.MemoryRegion;
import io.vswitch.sys.SharedMemory;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * Guest-physical address translation ({@link GuestMemory#findGuest}, what every descriptor costs) with 1, 8
 * and 64 memory regions, in nanoseconds per lookup. Regions are 64 KiB pages of one memfd, mapped one by one as
 * the switch maps what ADD_MEM_REG sends, with a gap between neighbours; each lookup is a 1514-byte buffer at a
 * random offset of its region.
 *
 * <ul>
 *   <li>{@code pattern=same}: 32 lookups in a row hit one region, then the next run moves to another: what a
 *       guest whose buffers come from one DIMM or from main RAM looks like (the last-hit hint answers).</li>
 *   <li>{@code pattern=random}: every lookup picks a region at random: the worst case, a binary search
 *       each time.</li>
 *   <li>{@code linearScan}: the same lookups through a plain scan of every region (the translation before
 *       this benchmark existed), for comparison.</li>
 * </ul>
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)   // JVM flags: jvm.options, added to every fork by BenchMain
public class MemoryLookupBenchmark {
    static final int LOOKUPS = 1024;
    static final int PER_INVOCATION = 32;
    static final long REGION = 64 * 1024;
    static final long GPA_BASE = 0x1_0000_0000L;
    static final int LENGTH = 1514;

    @State(Scope.Thread)
    public static class Regions {
        @Param({"1", "8", "64"})
        public int regions;

        @Param({"same", "random"})
        public String pattern;

        GuestMemory memory;
        long[] gpa = new long[LOOKUPS];
        long[] starts;
        long[] sizes;
        int next;

        @Setup(Level.Trial)
        public void setUp() {
            int fd = SharedMemory.memfd("bench-lookup", REGION * regions, false);
            try {
                memory = GuestMemory.empty();
                starts = new long[regions];
                sizes = new long[regions];
                for (int i = 0; i < regions; i++) {
                    int dup = Libc.dup(fd);
                    long at = GPA_BASE + i * 2 * REGION;   // a gap after every region
                    memory = memory.with(MemoryRegion.map(dup, at, REGION, 0x7f00_0000_0000L + i * 2 * REGION, i * REGION));
                    starts[i] = at;
                    sizes[i] = REGION;
                }
            } finally {
                Libc.closeQuietly(fd);
            }
            SplittableRandom random = new SplittableRandom(42);
            int region = 0;
            for (int i = 0; i < LOOKUPS; i++) {
                if (pattern.equals("random") || i % PER_INVOCATION == 0) {
                    region = random.nextInt(regions);
                }
                gpa[i] = GPA_BASE + region * 2 * REGION + random.nextLong(REGION - LENGTH);
            }
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            for (int i = 0; i < LOOKUPS; i++) {
                if (memory.findGuest(gpa[i], LENGTH) < 0 || linear(starts, sizes, gpa[i], LENGTH) < 0) {
                    throw new IllegalStateException("lookup of 0x" + Long.toHexString(gpa[i]) + " failed");
                }
            }
            memory.close();
        }
    }

    @Benchmark
    @OperationsPerInvocation(PER_INVOCATION)
    public int findGuest(Regions s) {
        final GuestMemory m = s.memory;
        final long[] gpa = s.gpa;
        int from = s.next;
        s.next = (from + PER_INVOCATION) & (LOOKUPS - 1);
        int sum = 0;
        for (int i = 0; i < PER_INVOCATION; i++) {
            sum += m.findGuest(gpa[from + i], LENGTH);
        }
        return sum;
    }

    @Benchmark
    @OperationsPerInvocation(PER_INVOCATION)
    public int linearScan(Regions s) {
        final long[] starts = s.starts;
        final long[] sizes = s.sizes;
        final long[] gpa = s.gpa;
        int from = s.next;
        s.next = (from + PER_INVOCATION) & (LOOKUPS - 1);
        int sum = 0;
        for (int i = 0; i < PER_INVOCATION; i++) {
            sum += linear(starts, sizes, gpa[from + i], LENGTH);
        }
        return sum;
    }

    /** The translation as it was: every region in turn, the first that holds the range. */
    static int linear(long[] starts, long[] sizes, long gpa, long length) {
        for (int i = 0; i < starts.length; i++) {
            long offset = gpa - starts[i];
            if (Long.compareUnsigned(offset, sizes[i]) < 0 && Long.compareUnsigned(length, sizes[i] - offset) <= 0) {
                return i;
            }
        }
        return -1;
    }
}
