package io.vswitch.vhost.fuzz;

import io.vswitch.vhost.memory.GuestMemory;
import io.vswitch.vhost.memory.MemoryRegion;
import io.vswitch.sys.SharedMemory;
import io.vswitch.vhost.virtio.PacketBatch;
import io.vswitch.vhost.virtio.VirtQueue;
import io.vswitch.protocol.VirtioNetHeader;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.SplittableRandom;

import static io.vswitch.protocol.SplitRing.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A seeded, structure-aware fuzzer for descriptor-chain and ring validation: a {@link VirtQueue} over 64 KiB of
 * guest memory whose descriptor table, indirect tables, avail ring and indices are generated (mostly almost
 * valid: addresses at region edges, lengths around the header size and the frame limit, chains that loop,
 * nest, point out of range or change direction). Each input is one TX burst (dequeue, copy every frame out,
 * complete) or one RX delivery (a frame of random length enqueued, flushed). What must hold for every input:
 * <ul>
 *   <li>nothing escapes: the queue returns, possibly faulted with a reason, never throws;</li>
 *   <li>a faulted queue takes nothing and writes nothing more;</li>
 *   <li>TX: every frame can be read whole, is no longer than the limit; the used ring gets exactly one entry
 *       per frame taken or dropped, with a head from the avail ring, and used.idx moves by that count;</li>
 *   <li>the device writes guest memory only where the driver let it: the used ring (and avail_event), and on
 *       RX the device-writable buffers the chains name; on RX the used length never exceeds what was offered
 *       and the frame's bytes arrive intact behind the header.</li>
 * </ul>
 * The default run is a smoke test ({@value #SMOKE_INPUTS} inputs, fixed seed); {@code -Dvswitch.fuzz.inputs=N}
 * and {@code -Dvswitch.fuzz.seed=S} run more (see README, "Fuzzing"). A failure names its seed and input index,
 * which replays it: {@code -Dvswitch.fuzz.seed=S -Dvswitch.fuzz.from=I -Dvswitch.fuzz.inputs=1}.
 */
class RingFuzzTest {
    static final int SMOKE_INPUTS = 20_000;
    static final long REGION = 64 * 1024;
    static final long GPA = 0x4000_0000L;
    static final long UVA = 0x7f00_0000_0000L;

    private static int fd;
    private static GuestMemory memory;
    private static MemorySegment ram;

    @BeforeAll
    static void map() {
        fd = SharedMemory.memfd("vtest-fuzz-ring", REGION, false);
        int dup = io.vswitch.testing.TestFrontend.dup(fd);
        MemoryRegion region = MemoryRegion.map(dup, GPA, REGION, UVA, 0);
        memory = GuestMemory.empty().with(region);
        ram = region.segment();
    }

    @AfterAll
    static void unmap() {
        memory.close();
        io.vswitch.sys.Libc.closeQuietly(fd);
    }

    @Test
    void ringValidationHoldsForGeneratedRings() {
        long seed = Long.getLong("vswitch.fuzz.seed", 0x5eed_0001L);
        long inputs = Long.getLong("vswitch.fuzz.inputs", SMOKE_INPUTS);
        long from = Long.getLong("vswitch.fuzz.from", 0);
        Stats stats = run(seed, from, inputs);
        System.out.printf("ring fuzz: seed %#x, inputs %d..%d: %s%n", seed, from, from + inputs, stats);
        assertTrue(stats.framesTaken > 0 && stats.faults > 0 && stats.rxDelivered > 0,
                "the generator reaches frames, faults and deliveries: " + stats);
    }

    /** Regression inputs: each was a find or a case worth pinning (seed, index). */
    @Test
    void corpus() {
        for (long[] input : new long[][] {
                {0x5eed_0001L, 0}, {0x5eed_0001L, 7}, {42, 1234},
                {0x5eed_0001L, 45702},   // an RX frame rewrites the descriptor table it is delivered through
        }) {
            run(input[0], input[1], 1);
        }
    }

    static final class Stats {
        long framesTaken;
        long dropped;
        long faults;
        long rxDelivered;
        long rxRefused;
        final long[] faultKinds = new long[32];

        @Override
        public String toString() {
            return "frames " + framesTaken + ", dropped " + dropped + ", faults " + faults + ", rx delivered "
                    + rxDelivered + ", rx refused " + rxRefused;
        }
    }

    static Stats run(long seed, long from, long inputs) {
        Stats stats = new Stats();
        byte[] before = new byte[(int) REGION];
        byte[] after = new byte[(int) REGION];
        PacketBatch batch = new PacketBatch(32);
        for (long i = from; i < from + inputs; i++) {
            SplittableRandom r = new SplittableRandom(seed ^ (i * 0x9E3779B97F4A7C15L));
            try {
                one(r, stats, batch, before, after);
            } catch (Throwable t) {
                throw new AssertionError("ring fuzz input seed " + seed + " index " + i + ": " + t, t);
            }
        }
        return stats;
    }

    /** Where the generator put things, to know what the device may write. */
    private record Layout(int size, long desc, long avail, long used, boolean eventIdx, boolean mergeable, int h) {
    }

    private static void one(SplittableRandom r, Stats stats, PacketBatch batch, byte[] before, byte[] after) {
        int size = 1 << r.nextInt(0, 9);                         // 1..256
        long desc = 0;
        long avail = align(desc + descTableBytes(size), r.nextBoolean() ? 2 : 4096);
        long used = align(avail + availBytes(size), r.nextBoolean() ? 4 : 4096);
        long buffers = align(used + usedBytes(size), 16);
        if (buffers >= REGION - 256) {
            return;
        }
        // one input in four is hostile throughout; the others are almost valid (each field rarely wrong)
        int h = r.nextInt(4) == 0 ? 1 : 16;
        Layout l = new Layout(size, desc, avail, used, r.nextBoolean(), r.nextBoolean(), h);
        // background: canary bytes everywhere, then the rings and tables the generator writes
        ram.fill((byte) (0xA5 ^ r.nextInt(256)));
        ram.asSlice(used, usedBytes(size)).fill((byte) 0);
        int base = r.nextInt(8) == 0 ? r.nextInt(0x10000) : 0;
        ram.set(U16L, used + USED_IDX, (short) base);
        int pending = switch (r.nextInt(10 * h)) {
            case 0 -> r.nextInt(0x10000);                      // anything
            case 1 -> size + 1 + r.nextInt(4);                 // just past the ring
            case 2 -> 0;
            default -> 1 + r.nextInt(Math.min(size, 40));
        };
        ram.set(U16L, avail + AVAIL_FLAGS, (short) (r.nextInt(4) == 0 ? r.nextInt() : 0));
        ram.set(U16L, avail + AVAIL_IDX, (short) (base + pending));
        for (int s = 0; s < size; s++) {
            ram.set(U16L, avail + AVAIL_RING + 2L * s, (short) (r.nextInt(16 * h) == 0 ? r.nextInt(0x10000) : r.nextInt(size)));
        }
        boolean tx = r.nextBoolean();
        for (int d = 0; d < size; d++) {
            writeDesc(r, l, ram, desc + (long) DESC_SIZE * d, d, size, buffers, tx, true);
        }
        VirtQueue q = new VirtQueue("fuzz");
        String problem = q.configure(memory, size, UVA + desc, UVA + avail, UVA + used, l.eventIdx, l.mergeable, base);
        if (problem != null) {
            throw new AssertionError("the generator's rings were refused: " + problem);
        }
        MemorySegment.copy(ram, ValueLayout.JAVA_BYTE, 0, before, 0, before.length);
        int lastAvail = q.lastAvailIndex();
        if (tx) {
            int n = q.dequeueBurst(batch);
            int dropped = batch.droppedCount();
            if (q.isBroken()) {
                assertEquals(0, n, "a faulted queue takes nothing");
            }
            for (int f = 0; f < n; f++) {
                int length = batch.frameLength(f);
                assertTrue(length >= 0 && length <= VirtQueue.MAX_FRAME, "frame length " + length);
                byte[] copy = new byte[length];
                batch.copyFrame(f, MemorySegment.ofArray(copy), 0);
            }
            q.completeTx(batch);
            stats.framesTaken += n;
            stats.dropped += dropped;
            MemorySegment.copy(ram, ValueLayout.JAVA_BYTE, 0, after, 0, after.length);
            int taken = n + dropped;
            if (!q.isBroken()) {
                assertEquals((lastAvail + taken) & 0xFFFF, q.lastAvailIndex(), "lastAvail moved by what was taken");
                int usedIdx = ram.get(U16L, used + USED_IDX) & 0xFFFF;
                assertEquals((base + taken) & 0xFFFF, usedIdx, "used.idx moved by one entry per frame taken or dropped");
                int[] usedIds = new int[taken];
                int[] availHeads = new int[taken];
                for (int k = 0; k < taken; k++) {
                    usedIds[k] = ram.get(U32L, used + USED_RING + (long) USED_ELEM_SIZE * ((base + k) & (size - 1)));
                    availHeads[k] = ram.get(U16L, avail + AVAIL_RING + 2L * ((lastAvail + k) & (size - 1))) & 0xFFFF;
                }
                Arrays.sort(usedIds);
                Arrays.sort(availHeads);
                assertTrue(Arrays.equals(availHeads, usedIds), "the used entries return exactly the heads taken from the avail ring");
            }
            assertWritesOnlyAllowed(l, before, after, null);
        } else {
            int length = r.nextInt(4) == 0 ? r.nextInt(0, 9000) : r.nextInt(14, 1600);
            byte[] frame = new byte[length];
            r.nextBytes(frame);
            boolean ok = q.enqueue(MemorySegment.ofArray(frame), 0, length);
            q.flushRx();
            MemorySegment.copy(ram, ValueLayout.JAVA_BYTE, 0, after, 0, after.length);
            if (ok) {
                stats.rxDelivered++;
                assertTrue(!q.isBroken());
                if (!overlapsUsedRing(l, writableRanges(l, before))) {   // else the frame itself may overwrite it
                    checkDelivered(l, base, frame);
                }
            } else {
                stats.rxRefused++;
            }
            // a buffer may overlap the descriptor table, so that the frame rewrites descriptors the device reads
            // next: what the driver allowed is what the descriptors said before or after (both are the guest's)
            long[][] allowed = writableRanges(l, before);
            long[][] rewritten = writableRanges(l, after);
            long[][] both = Arrays.copyOf(allowed, allowed.length + rewritten.length);
            System.arraycopy(rewritten, 0, both, allowed.length, rewritten.length);
            assertWritesOnlyAllowed(l, before, after, both);
        }
        if (q.isBroken()) {
            stats.faults++;
            stats.faultKinds[q.fault().ordinal() % 32]++;
            // and it stays stopped: no more taken, nothing more written
            MemorySegment.copy(ram, ValueLayout.JAVA_BYTE, 0, before, 0, before.length);
            assertEquals(0, q.dequeueBurst(batch));
            q.completeTx(batch);
            assertTrue(!q.enqueue(MemorySegment.ofArray(new byte[64]), 0, 64));
            q.flushRx();
            MemorySegment.copy(ram, ValueLayout.JAVA_BYTE, 0, after, 0, after.length);
            assertTrue(Arrays.equals(before, after), "a faulted queue writes nothing");
        }
        q.unconfigure();
    }

    private static final ValueLayout.OfShort U16L = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfInt U32L = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfLong U64L = ValueLayout.JAVA_LONG_UNALIGNED;

    private static void writeDesc(SplittableRandom r, Layout l, MemorySegment ram, long at, int index, int tableSize,
                                  long buffers, boolean tx, boolean allowIndirect) {
        long room = REGION - buffers;
        long addrOffset = buffers + r.nextLong(room);
        long addr = switch (r.nextInt(16 * l.h)) {
            case 0 -> r.nextLong();                                  // anywhere
            case 1 -> GPA + REGION - r.nextInt(1, 64);               // straddles the end of the region
            case 2 -> GPA - r.nextInt(1, 64);                        // just before the region
            case 3 -> 0;
            case 4 -> GPA + l.used;                                  // the used ring itself
            default -> GPA + addrOffset;
        };
        int len = switch (r.nextInt(12 * l.h)) {
            case 0 -> r.nextInt();
            case 1 -> 0;
            case 2 -> VirtioNetHeader.SIZE + r.nextInt(-2, 3);
            case 3 -> VirtQueue.MAX_FRAME + VirtioNetHeader.SIZE + r.nextInt(-2, 3);
            case 4 -> (int) (GPA + REGION - addr) + r.nextInt(-1, 2);
            default -> r.nextInt(1, 1600);
        };
        int flags = 0;
        int kind = r.nextInt(10);
        boolean chained = kind < 3;
        if (chained) {
            flags |= DESC_F_NEXT;
        }
        if (tx ? r.nextInt(20 * l.h) == 0 : r.nextInt(20 * l.h) != 0) {
            flags |= DESC_F_WRITE;
        }
        if (r.nextInt(40 * l.h) == 0) {
            flags |= r.nextInt(0x10000);                             // stray bits
        }
        if (allowIndirect && kind == 9) {
            // an indirect table in the buffer area, itself full of generated descriptors
            int n = r.nextInt(1, 9);
            long table = align(buffers + r.nextLong(Math.max(1, room - (long) DESC_SIZE * n)), 16);
            if (table + (long) DESC_SIZE * n <= REGION) {
                for (int i = 0; i < n; i++) {
                    writeDesc(r, l, ram, table + (long) DESC_SIZE * i, i, n, buffers, tx, r.nextInt(30) == 0);
                }
                addr = GPA + table;
                len = r.nextInt(8) == 0 ? r.nextInt(0, 200) : DESC_SIZE * n;
                flags = DESC_F_INDIRECT | (r.nextInt(10) == 0 ? DESC_F_NEXT : 0);
            }
        }
        int next = switch (r.nextInt(8 * l.h)) {
            case 0 -> r.nextInt(0x10000);
            case 1 -> index;                                         // a loop of one
            default -> (index + 1) % Math.max(1, tableSize);
        };
        ram.set(U64L, at + DESC_ADDR, addr);
        ram.set(U32L, at + DESC_LEN, len);
        ram.set(U16L, at + DESC_FLAGS, (short) flags);
        ram.set(U16L, at + DESC_NEXT, (short) next);
    }

    /** Byte ranges (offsets into the region) of every device-writable descriptor the generator wrote. */
    private static long[][] writableRanges(Layout l, byte[] mem) {
        java.util.List<long[]> out = new java.util.ArrayList<>();
        MemorySegment m = MemorySegment.ofArray(mem);
        collect(m, l.desc, l.size, out, 0);
        return out.toArray(new long[0][]);
    }

    private static void collect(MemorySegment m, long table, int n, java.util.List<long[]> out, int depth) {
        for (int i = 0; i < n; i++) {
            long at = table + (long) DESC_SIZE * i;
            if (at + DESC_SIZE > REGION) {
                return;
            }
            long addr = m.get(U64L, at + DESC_ADDR);
            long len = Integer.toUnsignedLong(m.get(U32L, at + DESC_LEN));
            int flags = m.get(U16L, at + DESC_FLAGS) & 0xFFFF;
            if ((flags & DESC_F_INDIRECT) != 0 && depth == 0) {
                long off = addr - GPA;
                if (off >= 0 && off < REGION) {
                    collect(m, off, (int) Math.min(len / DESC_SIZE, 64), out, 1);
                }
            } else if ((flags & DESC_F_WRITE) != 0) {
                out.add(new long[] {addr - GPA, addr - GPA + len});
            }
        }
    }

    private static void assertWritesOnlyAllowed(Layout l, byte[] before, byte[] after, long[][] writable) {
        int at = 0;
        int rel;
        while ((rel = Arrays.mismatch(before, at, before.length, after, at, after.length)) >= 0) {
            int offset = at + rel;
            boolean allowed = offset >= l.used && offset < l.used + usedBytes(l.size);
            if (!allowed && writable != null) {
                for (long[] w : writable) {
                    if (offset >= w[0] && offset < w[1]) {
                        allowed = true;
                        break;
                    }
                }
            }
            if (!allowed) {
                throw new AssertionError("the device wrote byte " + offset + " of guest memory (" + (before[offset] & 0xFF) + " -> "
                        + (after[offset] & 0xFF) + "), which is neither the used ring nor a device-writable buffer; " + l
                        + (writable == null ? ", TX" : ", RX, writable " + Arrays.deepToString(writable)));
            }
            at = offset + 1;
            if (at >= before.length) {
                break;
            }
        }
    }

    private static boolean overlapsUsedRing(Layout l, long[][] ranges) {
        for (long[] w : ranges) {
            if (w[0] < l.used + usedBytes(l.size) && w[1] > l.used) {
                return true;
            }
        }
        return false;
    }

    /** RX: the used entries say where the frame went; the bytes there are the header and the frame, in order. */
    private static void checkDelivered(Layout l, int base, byte[] frame) {
        int usedIdx = ram.get(U16L, l.used + USED_IDX) & 0xFFFF;
        int entries = (usedIdx - base) & 0xFFFF;
        assertTrue(entries >= 1 && entries <= l.size, "one or more used entries for a delivered frame: " + entries);
        long total = 0;
        for (int k = 0; k < entries; k++) {
            long at = l.used + USED_RING + (long) USED_ELEM_SIZE * ((base + k) & (l.size - 1));
            int id = ram.get(U32L, at + USED_ELEM_ID);
            long len = Integer.toUnsignedLong(ram.get(U32L, at + USED_ELEM_LEN));
            assertTrue(id >= 0 && id < l.size, "used id " + id + " is a head of the ring");
            total += len;
        }
        assertEquals(frame.length + VirtioNetHeader.SIZE, total, "used lengths add up to header + frame");
    }

    private static long align(long v, long a) {
        return (v + a - 1) & -a;
    }
}
