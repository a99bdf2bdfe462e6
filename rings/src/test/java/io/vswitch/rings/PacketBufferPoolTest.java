package io.vswitch.rings;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

class PacketBufferPoolTest {

    private static final long BUFFER_SIZE = 2048;

    private Arena arena;

    @BeforeEach
    void openArena() {
        arena = Arena.ofShared();
    }

    @AfterEach
    void closeArena() {
        arena.close();
    }

    private PacketBufferPool pool(int count) {
        return new PacketBufferPool(arena.allocate(BUFFER_SIZE * count, 64), BUFFER_SIZE, count);
    }

    @Test
    void rejectsBadGeometry() {
        MemorySegment mem = arena.allocate(4096);
        assertThrows(IllegalArgumentException.class, () -> new PacketBufferPool(mem, 0, 1));
        assertThrows(IllegalArgumentException.class, () -> new PacketBufferPool(mem, 2048, 0));
        assertThrows(IllegalArgumentException.class, () -> new PacketBufferPool(mem, 2048, 3));
        assertThrows(NullPointerException.class, () -> new PacketBufferPool(null, 2048, 1));
        assertEquals(2, new PacketBufferPool(mem, 2048, 2).bufferCount());
    }

    @Test
    void handsOutEveryBufferOnceThenReportsExhaustion() {
        PacketBufferPool pool = pool(16);
        Set<Long> seen = new HashSet<>();
        for (int i = 0; i < 16; i++) {
            long h = pool.acquire();
            assertTrue(h >= 0 && h < 16, "handle " + h);
            assertTrue(seen.add(h), "handle handed out twice: " + h);
        }
        assertEquals(0, pool.available());
        assertEquals(16, pool.inUse());
        assertEquals(PacketBufferPool.NO_BUFFER, pool.acquire());
        assertEquals(PacketBufferPool.NO_BUFFER, pool.acquire());
        assertEquals(2, pool.exhaustedCount());
    }

    @Test
    void freshPoolHandsOutBuffersInAddressOrder() {
        PacketBufferPool pool = pool(4);
        for (long expected = 0; expected < 4; expected++) {
            assertEquals(expected, pool.acquire());
        }
    }

    @Test
    void lastReleasedIsFirstAcquired() {
        PacketBufferPool pool = pool(8);
        long a = pool.acquire();
        long b = pool.acquire();
        long c = pool.acquire();
        pool.release(a);
        pool.release(c);
        pool.release(b);
        assertEquals(b, pool.acquire());
        assertEquals(c, pool.acquire());
        assertEquals(a, pool.acquire());
    }

    @Test
    void burstAcquireIsPartialWhenThePoolRunsLow() {
        PacketBufferPool pool = pool(10);
        long[] handles = new long[32];
        assertEquals(10, pool.acquire(handles, 0, 32));
        assertEquals(22, pool.exhaustedCount(), "every buffer short counts");
        assertEquals(0, pool.acquire(handles, 10, 5));
        assertEquals(27, pool.exhaustedCount());
        Set<Long> seen = new HashSet<>();
        for (int i = 0; i < 10; i++) {
            assertTrue(seen.add(handles[i]));
        }
    }

    @Test
    void burstReleaseThenBurstAcquireIsLifo() {
        PacketBufferPool pool = pool(8);
        long[] out = new long[4];
        assertEquals(4, pool.acquire(out, 0, 4));
        assertArrayEquals(new long[] {0, 1, 2, 3}, out);
        pool.release(out, 0, 4);
        long[] again = new long[4];
        assertEquals(4, pool.acquire(again, 0, 4));
        assertArrayEquals(new long[] {3, 2, 1, 0}, again, "released last, handed out first");
        assertEquals(4, pool.inUse());
    }

    @Test
    void doubleReleaseIsDetectedAndLeavesThePoolIntact() {
        PacketBufferPool pool = pool(4);
        long h = pool.acquire();
        pool.release(h);
        assertThrows(IllegalStateException.class, () -> pool.release(h));
        assertThrows(IllegalStateException.class, () -> pool.release(3), "never acquired");
        assertEquals(2, pool.doubleReleaseCount());
        assertEquals(4, pool.available(), "no buffer entered the free list twice");
        Set<Long> seen = new HashSet<>();
        for (int i = 0; i < 4; i++) {
            assertTrue(seen.add(pool.acquire()));
        }
        assertEquals(PacketBufferPool.NO_BUFFER, pool.acquire());
    }

    @Test
    void foreignHandlesAreRejected() {
        PacketBufferPool pool = pool(4);
        assertThrows(IndexOutOfBoundsException.class, () -> pool.release(4));
        assertThrows(IndexOutOfBoundsException.class, () -> pool.release(-1));
        assertThrows(IndexOutOfBoundsException.class, () -> pool.segment(PacketBufferPool.NO_BUFFER));
        assertThrows(IndexOutOfBoundsException.class, () -> pool.offset(Long.MAX_VALUE));
        assertEquals(4, pool.available());
    }

    @Test
    void buffersAreDisjointSlicesOfTheBackingMemory() {
        MemorySegment mem = arena.allocate(BUFFER_SIZE * 4, 64);
        PacketBufferPool pool = new PacketBufferPool(mem, BUFFER_SIZE, 4);
        assertSame(mem, pool.memory());
        for (long h = 0; h < 4; h++) {
            MemorySegment seg = pool.segment(h);
            assertEquals(BUFFER_SIZE, seg.byteSize());
            assertEquals(h * BUFFER_SIZE, pool.offset(h));
            assertEquals(mem.address() + pool.offset(h), seg.address());
            assertSame(seg, pool.segment(h), "slices are made once");
            seg.fill((byte) h);
        }
        for (long h = 0; h < 4; h++) {
            assertEquals((byte) h, mem.get(ValueLayout.JAVA_BYTE, pool.offset(h)));
            assertEquals((byte) h, mem.get(ValueLayout.JAVA_BYTE, pool.offset(h) + BUFFER_SIZE - 1));
        }
    }

    @Test
    void isAcquiredTracksOwnership() {
        PacketBufferPool pool = pool(70); // more than one bitset word
        long[] hs = new long[70];
        pool.acquire(hs, 0, 70);
        for (long h : hs) {
            assertTrue(pool.isAcquired(h));
        }
        pool.release(69);
        assertFalse(pool.isAcquired(69));
        assertTrue(pool.isAcquired(5));
    }

    /**
     * The owner acquires buffers and sends them to a worker over one ring; the worker sends them
     * back over another, and the owner reclaims them. No buffer may be lost or doubled.
     */
    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void buffersComeBackFromAnotherThreadThroughARing() throws Exception {
        final int count = 64;
        final PacketBufferPool pool = pool(count);
        final SpscLongRing toWorker = new SpscLongRing(128);
        final SpscLongRing back = new SpscLongRing(128);
        final long rounds = 1_000_000;
        final AtomicReference<Throwable> failure = new AtomicReference<>();

        Thread worker = new Thread(() -> {
            try {
                long[] burst = new long[32];
                long moved = 0;
                while (moved < rounds) {
                    int n = toWorker.poll(burst, 0, 32);
                    int sent = 0;
                    while (sent < n) {
                        sent += back.offer(burst, sent, n - sent);
                    }
                    moved += n;
                }
            } catch (Throwable t) {
                failure.set(t);
            }
        }, "pool-worker");
        worker.start();

        long[] burst = new long[32];
        long sent = 0;
        long reclaimed = 0;
        while (reclaimed < rounds) {
            if (sent < rounds) {
                int want = (int) Math.min(32, rounds - sent);
                int got = pool.acquire(burst, 0, want);
                int offered = toWorker.offer(burst, 0, got);
                pool.release(burst, offered, got - offered); // what the ring did not take
                sent += offered;
            }
            reclaimed += pool.reclaim(back);
        }
        worker.join();
        if (failure.get() != null) {
            throw new AssertionError(failure.get());
        }
        assertEquals(count, pool.available());
        assertEquals(0, pool.doubleReleaseCount());
        assertTrue(toWorker.isEmpty());
        assertTrue(back.isEmpty());
    }
}
