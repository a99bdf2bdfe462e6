package io.vswitch.rings;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

class SpscLongRingTest {

    @Test
    void capacityMustBeAPowerOfTwo() {
        assertThrows(IllegalArgumentException.class, () -> new SpscLongRing(0));
        assertThrows(IllegalArgumentException.class, () -> new SpscLongRing(1));
        assertThrows(IllegalArgumentException.class, () -> new SpscLongRing(3));
        assertThrows(IllegalArgumentException.class, () -> new SpscLongRing(-8));
        assertThrows(IllegalArgumentException.class, () -> new SpscLongRing(1 << 31));
        assertEquals(2, new SpscLongRing(2).capacity());
        assertEquals(1024, new SpscLongRing(1024).capacity());
    }

    @Test
    void singleElementsComeOutInOrder() {
        SpscLongRing ring = new SpscLongRing(8);
        assertTrue(ring.isEmpty());
        for (long v = 10; v < 15; v++) {
            assertTrue(ring.offer(v));
        }
        assertEquals(5, ring.size());
        for (long v = 10; v < 15; v++) {
            assertEquals(v, ring.poll());
        }
        assertEquals(SpscLongRing.EMPTY, ring.poll());
        assertTrue(ring.isEmpty());
    }

    @Test
    void fullRingRejectsAndEmptyRingReturnsNothing() {
        SpscLongRing ring = new SpscLongRing(4);
        for (long v = 0; v < 4; v++) {
            assertTrue(ring.offer(v));
        }
        assertFalse(ring.offer(99));
        assertEquals(0, ring.offer(new long[] {1, 2}, 0, 2));
        assertEquals(4, ring.size());

        long[] dst = new long[8];
        assertEquals(4, ring.poll(dst, 0, 8));
        assertArrayEquals(new long[] {0, 1, 2, 3}, java.util.Arrays.copyOf(dst, 4));
        assertEquals(0, ring.poll(dst, 0, 8));
        assertEquals(SpscLongRing.EMPTY, ring.poll());
        assertEquals(0, ring.size());

        // Room again after the consumer freed the slots, although the producer's cached limit said full.
        assertTrue(ring.offer(4));
        assertEquals(4, ring.poll());
    }

    @Test
    void zeroLengthBurstsAreNoOps() {
        SpscLongRing ring = new SpscLongRing(4);
        assertEquals(0, ring.offer(new long[0], 0, 0));
        assertEquals(0, ring.poll(new long[0], 0, 0));
        ring.offer(7);
        assertEquals(0, ring.poll(new long[4], 2, 0));
        assertEquals(1, ring.size());
    }

    @Test
    void burstRangesAreChecked() {
        SpscLongRing ring = new SpscLongRing(4);
        assertThrows(IndexOutOfBoundsException.class, () -> ring.offer(new long[4], 2, 3));
        assertThrows(IndexOutOfBoundsException.class, () -> ring.offer(new long[4], -1, 1));
        assertThrows(IndexOutOfBoundsException.class, () -> ring.poll(new long[4], 0, -1));
        assertThrows(IndexOutOfBoundsException.class, () -> ring.poll(new long[4], 4, 1));
        assertEquals(0, ring.size());
    }

    @Test
    void burstsArePartiallyAcceptedFromTheStartOfTheRange() {
        SpscLongRing ring = new SpscLongRing(8);
        long[] src = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
        assertEquals(5, ring.offer(src, 0, 5));
        assertEquals(3, ring.offer(src, 5, 7), "only 3 slots were left");
        assertEquals(0, ring.offer(src, 8, 4));

        long[] dst = new long[12];
        assertEquals(3, ring.poll(dst, 0, 3));
        assertEquals(3, ring.offer(src, 8, 4), "3 slots were freed");
        assertEquals(8, ring.poll(dst, 3, 9), "partial poll: fewer than asked");
        assertArrayEquals(java.util.Arrays.copyOf(src, 11), java.util.Arrays.copyOf(dst, 11));
    }

    @Test
    void burstsWrapAroundTheEndOfTheArray() {
        SpscLongRing ring = new SpscLongRing(8);
        long next = 0;
        long expected = 0;
        long[] src = new long[5];
        long[] dst = new long[5];
        // Bursts of 5 through 8 slots start at every offset mod 8, so every wrap split is hit.
        for (int round = 0; round < 100; round++) {
            for (int i = 0; i < 5; i++) {
                src[i] = next + i;
            }
            assertEquals(5, ring.offer(src, 0, 5));
            next += 5;
            assertEquals(5, ring.poll(dst, 0, 5));
            for (int i = 0; i < 5; i++) {
                assertEquals(expected++, dst[i]);
            }
        }
        assertEquals(500, ring.producedCount());
        assertEquals(500, ring.consumedCount());
    }

    @Test
    void singleAndBurstCallsMix() {
        SpscLongRing ring = new SpscLongRing(16);
        long[] buf = new long[16];
        long in = 0;
        long out = 0;
        for (int round = 0; round < 1000; round++) {
            int burst = round % 7;
            for (int i = 0; i < burst; i++) {
                buf[i] = in++;
            }
            assertEquals(burst, ring.offer(buf, 0, burst));
            assertTrue(ring.offer(in++));
            assertEquals(out++, ring.poll());
            int got = ring.poll(buf, 0, 16);
            assertEquals(burst, got);
            for (int i = 0; i < got; i++) {
                assertEquals(out++, buf[i]);
            }
        }
    }

    @Test
    void negativeValuesPassThroughBurstPoll() {
        SpscLongRing ring = new SpscLongRing(4);
        ring.offer(-1);
        ring.offer(Long.MIN_VALUE);
        long[] dst = new long[2];
        assertEquals(2, ring.poll(dst, 0, 2));
        assertArrayEquals(new long[] {-1, Long.MIN_VALUE}, dst);
    }

    /**
     * Two threads pass 10 million sequence numbers in bursts of varying size through a small
     * ring (so it is full and empty often); the consumer checks that every number arrives once,
     * in order.
     */
    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void twoThreadsPassTenMillionSequenceNumbersInOrder() throws Exception {
        final long total = 10_000_000;
        final SpscLongRing ring = new SpscLongRing(256);
        final AtomicReference<Throwable> failure = new AtomicReference<>();

        Thread producer = new Thread(() -> {
            long[] src = new long[32];
            long next = 0;
            int burst = 1;
            while (next < total && failure.get() == null) {
                int n = (int) Math.min(burst, total - next);
                for (int i = 0; i < n; i++) {
                    src[i] = next + i;
                }
                int accepted = ring.offer(src, 0, n);
                next += accepted;
                if (accepted == 0) {
                    Thread.onSpinWait();
                }
                burst = burst % 32 + 1;
            }
        }, "ring-producer");

        Thread consumer = new Thread(() -> {
            try {
                long[] dst = new long[32];
                long expected = 0;
                int max = 32;
                while (expected < total) {
                    int n = ring.poll(dst, 0, max);
                    for (int i = 0; i < n; i++) {
                        if (dst[i] != expected) {
                            throw new AssertionError("expected " + expected + " got " + dst[i]);
                        }
                        expected++;
                    }
                    if (n == 0) {
                        Thread.onSpinWait();
                    }
                    // Also poll one at a time now and then, mixing the two paths.
                    if ((expected & 1023) == 0 && expected < total) {
                        long v = ring.poll();
                        if (v != SpscLongRing.EMPTY) {
                            if (v != expected) {
                                throw new AssertionError("expected " + expected + " got " + v);
                            }
                            expected++;
                        }
                    }
                    max = max == 1 ? 32 : max - 1;
                }
            } catch (Throwable t) {
                failure.set(t);
            }
        }, "ring-consumer");

        producer.start();
        consumer.start();
        producer.join();
        consumer.join();
        if (failure.get() != null) {
            throw new AssertionError(failure.get());
        }
        assertTrue(ring.isEmpty());
        assertEquals(total, ring.producedCount());
        assertEquals(total, ring.consumedCount());
        assertEquals(SpscLongRing.EMPTY, ring.poll(), "nothing duplicated at the end");
    }

    /** size() seen from a third thread stays within [0, capacity] while both sides run. */
    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void sizeFromAnObserverStaysInRange() throws Exception {
        final SpscLongRing ring = new SpscLongRing(64);
        final long total = 2_000_000;
        final AtomicReference<Throwable> failure = new AtomicReference<>();
        Thread producer = new Thread(() -> {
            long next = 0;
            while (next < total) {
                if (ring.offer(next)) {
                    next++;
                }
            }
        });
        Thread consumer = new Thread(() -> {
            long[] dst = new long[16];
            long got = 0;
            while (got < total) {
                got += ring.poll(dst, 0, 16);
            }
        });
        Thread observer = new Thread(() -> {
            while (consumer.isAlive()) {
                int size = ring.size();
                if (size < 0 || size > 64) {
                    failure.compareAndSet(null, new AssertionError("size " + size));
                    return;
                }
            }
        });
        producer.start();
        consumer.start();
        observer.start();
        producer.join();
        consumer.join();
        observer.join();
        if (failure.get() != null) {
            throw new AssertionError(failure.get());
        }
    }
}
