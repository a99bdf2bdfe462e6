package io.vswitch.rings;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.Objects;

/*
 * Field layout. HotSpot places a superclass's fields before its subclass's fields, and keeps
 * fields declared in one class together, so a chain of classes is the only portable way to
 * put the producer's and the consumer's hot fields on cache lines of their own without
 * @Contended (which is JDK-internal). Each pad is 128 bytes rather than 64 because Intel's
 * adjacent-line prefetcher pulls cache lines in pairs, which makes 64-byte neighbours
 * falsely shared all the same.
 */

abstract class SpscLongRingPad0 {
    byte b000, b001, b002, b003, b004, b005, b006, b007;
    byte b010, b011, b012, b013, b014, b015, b016, b017;
    byte b020, b021, b022, b023, b024, b025, b026, b027;
    byte b030, b031, b032, b033, b034, b035, b036, b037;
    byte b040, b041, b042, b043, b044, b045, b046, b047;
    byte b050, b051, b052, b053, b054, b055, b056, b057;
    byte b060, b061, b062, b063, b064, b065, b066, b067;
    byte b070, b071, b072, b073, b074, b075, b076, b077;
    byte b100, b101, b102, b103, b104, b105, b106, b107;
    byte b110, b111, b112, b113, b114, b115, b116, b117;
    byte b120, b121, b122, b123, b124, b125, b126, b127;
    byte b130, b131, b132, b133, b134, b135, b136, b137;
    byte b140, b141, b142, b143, b144, b145, b146, b147;
    byte b150, b151, b152, b153, b154, b155, b156, b157;
    byte b160, b161, b162, b163, b164, b165, b166, b167;
    byte b170, b171, b172, b173, b174, b175, b176, b177;
}

/** Read-only after construction, so both sides may share this line without invalidating it. */
abstract class SpscLongRingConstants extends SpscLongRingPad0 {
    /**
     * Slots live at {@code ARRAY_PAD + (index & mask)}: the unused longs at both ends of the
     * array keep the first and last slots off the cache lines of the array header and of
     * whatever object the allocator puts next to the array.
     */
    static final int ARRAY_PAD = 16;

    final long[] buffer;
    final long mask;
    final long capacity;

    SpscLongRingConstants(int capacity) {
        if (capacity < 2 || capacity > (1 << 30) || Integer.bitCount(capacity) != 1) {
            throw new IllegalArgumentException("capacity must be a power of two in [2, 2^30]: " + capacity);
        }
        this.buffer = new long[capacity + 2 * ARRAY_PAD];
        this.mask = capacity - 1;
        this.capacity = capacity;
    }
}

abstract class SpscLongRingPad1 extends SpscLongRingConstants {
    byte b000, b001, b002, b003, b004, b005, b006, b007;
    byte b010, b011, b012, b013, b014, b015, b016, b017;
    byte b020, b021, b022, b023, b024, b025, b026, b027;
    byte b030, b031, b032, b033, b034, b035, b036, b037;
    byte b040, b041, b042, b043, b044, b045, b046, b047;
    byte b050, b051, b052, b053, b054, b055, b056, b057;
    byte b060, b061, b062, b063, b064, b065, b066, b067;
    byte b070, b071, b072, b073, b074, b075, b076, b077;
    byte b100, b101, b102, b103, b104, b105, b106, b107;
    byte b110, b111, b112, b113, b114, b115, b116, b117;
    byte b120, b121, b122, b123, b124, b125, b126, b127;
    byte b130, b131, b132, b133, b134, b135, b136, b137;
    byte b140, b141, b142, b143, b144, b145, b146, b147;
    byte b150, b151, b152, b153, b154, b155, b156, b157;
    byte b160, b161, b162, b163, b164, b165, b166, b167;
    byte b170, b171, b172, b173, b174, b175, b176, b177;

    SpscLongRingPad1(int capacity) {
        super(capacity);
    }
}

/** Written by the producer only; the consumer reads {@code producerIndex} and nothing else here. */
abstract class SpscLongRingProducerFields extends SpscLongRingPad1 {
    static final VarHandle PRODUCER_INDEX;

    static {
        try {
            PRODUCER_INDEX = MethodHandles.lookup()
                    .findVarHandle(SpscLongRingProducerFields.class, "producerIndex", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** Total number of elements ever offered; published to the consumer with release semantics. */
    private long producerIndex;
    /**
     * The producer may write slots up to (excluding) this index without looking at the consumer:
     * a stale consumer index plus capacity. It only ever underestimates the free space, which is
     * safe, and saves pulling the consumer's cache line over on every offer.
     */
    long producerLimit;

    SpscLongRingProducerFields(int capacity) {
        super(capacity);
        this.producerLimit = capacity;
    }

    /** Plain load: only the producer thread writes this field, so it always sees its own latest write. */
    final long lpProducerIndex() {
        return producerIndex;
    }

    /** Acquire load: pairs with {@link #soProducerIndex} so the consumer sees the slots it covers. */
    final long lvProducerIndex() {
        return (long) PRODUCER_INDEX.getAcquire(this);
    }

    /** Release store: makes every slot written before it visible to a consumer that acquires the index. */
    final void soProducerIndex(long value) {
        PRODUCER_INDEX.setRelease(this, value);
    }
}

abstract class SpscLongRingPad2 extends SpscLongRingProducerFields {
    byte b000, b001, b002, b003, b004, b005, b006, b007;
    byte b010, b011, b012, b013, b014, b015, b016, b017;
    byte b020, b021, b022, b023, b024, b025, b026, b027;
    byte b030, b031, b032, b033, b034, b035, b036, b037;
    byte b040, b041, b042, b043, b044, b045, b046, b047;
    byte b050, b051, b052, b053, b054, b055, b056, b057;
    byte b060, b061, b062, b063, b064, b065, b066, b067;
    byte b070, b071, b072, b073, b074, b075, b076, b077;
    byte b100, b101, b102, b103, b104, b105, b106, b107;
    byte b110, b111, b112, b113, b114, b115, b116, b117;
    byte b120, b121, b122, b123, b124, b125, b126, b127;
    byte b130, b131, b132, b133, b134, b135, b136, b137;
    byte b140, b141, b142, b143, b144, b145, b146, b147;
    byte b150, b151, b152, b153, b154, b155, b156, b157;
    byte b160, b161, b162, b163, b164, b165, b166, b167;
    byte b170, b171, b172, b173, b174, b175, b176, b177;

    SpscLongRingPad2(int capacity) {
        super(capacity);
    }
}

/** Written by the consumer only; the producer reads {@code consumerIndex} and nothing else here. */
abstract class SpscLongRingConsumerFields extends SpscLongRingPad2 {
    static final VarHandle CONSUMER_INDEX;

    static {
        try {
            CONSUMER_INDEX = MethodHandles.lookup()
                    .findVarHandle(SpscLongRingConsumerFields.class, "consumerIndex", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** Total number of elements ever polled; published to the producer with release semantics. */
    private long consumerIndex;
    /**
     * The consumer may read slots up to (excluding) this index without looking at the producer:
     * a stale producer index, which only ever underestimates what is available.
     */
    long consumerLimit;

    SpscLongRingConsumerFields(int capacity) {
        super(capacity);
    }

    /** Plain load: only the consumer thread writes this field. */
    final long lpConsumerIndex() {
        return consumerIndex;
    }

    /** Acquire load: pairs with {@link #soConsumerIndex} so the producer never overwrites an unread slot. */
    final long lvConsumerIndex() {
        return (long) CONSUMER_INDEX.getAcquire(this);
    }

    /** Release store: orders the consumer's slot reads before the producer can see those slots as free. */
    final void soConsumerIndex(long value) {
        CONSUMER_INDEX.setRelease(this, value);
    }
}

abstract class SpscLongRingPad3 extends SpscLongRingConsumerFields {
    byte b000, b001, b002, b003, b004, b005, b006, b007;
    byte b010, b011, b012, b013, b014, b015, b016, b017;
    byte b020, b021, b022, b023, b024, b025, b026, b027;
    byte b030, b031, b032, b033, b034, b035, b036, b037;
    byte b040, b041, b042, b043, b044, b045, b046, b047;
    byte b050, b051, b052, b053, b054, b055, b056, b057;
    byte b060, b061, b062, b063, b064, b065, b066, b067;
    byte b070, b071, b072, b073, b074, b075, b076, b077;
    byte b100, b101, b102, b103, b104, b105, b106, b107;
    byte b110, b111, b112, b113, b114, b115, b116, b117;
    byte b120, b121, b122, b123, b124, b125, b126, b127;
    byte b130, b131, b132, b133, b134, b135, b136, b137;
    byte b140, b141, b142, b143, b144, b145, b146, b147;
    byte b150, b151, b152, b153, b154, b155, b156, b157;
    byte b160, b161, b162, b163, b164, b165, b166, b167;
    byte b170, b171, b172, b173, b174, b175, b176, b177;

    SpscLongRingPad3(int capacity) {
        super(capacity);
    }
}

/**
 * A bounded, lock-free, allocation-free single-producer/single-consumer ring of {@code long}
 * values, built for handing packet-buffer handles between two worker threads in bursts.
 *
 * <p>Exactly one thread may call the {@code offer} methods and exactly one (other) thread the
 * {@code poll} methods; {@link #size()}, {@link #isEmpty()} and {@link #capacity()} may be
 * called from any thread. Using two producers or two consumers corrupts the ring silently:
 * nothing checks, because a check would cost as much as the ring.
 *
 * <p>A burst is published with one release store of the index, so the consumer sees either
 * none or all of it, and the two threads exchange one cache line per burst rather than per
 * element. Each side also keeps a cached copy of the other side's index and reads the real one
 * only when the cached one says there is not enough room (producer) or data (consumer).
 *
 * <p>Use the burst methods on hot paths. When one side has caught up with the other, every
 * single-element call has to fetch the other side's index from the other core; a burst pays
 * that once. Under saturation bursts of 32 move about 3x as many elements per second as single
 * calls, and beat JCTools' {@code SpscArrayQueue}, while single calls are about 3x slower than
 * JCTools' (bench/RESULTS.md).
 *
 * <p>{@link #poll()} signals "empty" with {@link #EMPTY} ({@code -1}), which is never a valid
 * buffer handle; rings that carry arbitrary values, {@code -1} included, should use the burst
 * {@link #poll(long[], int, int)}, whose return value is unambiguous.
 */
public final class SpscLongRing extends SpscLongRingPad3 {

    /** Returned by {@link #poll()} when the ring is empty. */
    public static final long EMPTY = -1L;

    /**
     * @param capacity number of slots, a power of two in [2, 2^30] so that an index maps to a
     *                 slot with a mask instead of a division
     */
    public SpscLongRing(int capacity) {
        super(capacity);
    }

    /** Producer only. Returns {@code false}, and leaves the ring unchanged, if the ring is full. */
    public boolean offer(long value) {
        final long pIndex = lpProducerIndex();
        if (pIndex >= producerLimit && !refreshProducerLimit(pIndex, 1)) {
            return false;
        }
        buffer[ARRAY_PAD + (int) (pIndex & mask)] = value;
        soProducerIndex(pIndex + 1);
        return true;
    }

    /**
     * Producer only. Appends up to {@code count} values from {@code src[offset...]} in order and
     * publishes them at once.
     *
     * @return how many were accepted, from the start of the range: {@code count}, fewer when the
     *         ring has less room, 0 when it is full
     */
    public int offer(long[] src, int offset, int count) {
        Objects.checkFromIndexSize(offset, count, src.length);
        final long pIndex = lpProducerIndex();
        long free = producerLimit - pIndex;
        if (free < count) {
            // The cached limit may just be stale: look at the consumer once and settle for what is there.
            refreshProducerLimit(pIndex, count);
            free = producerLimit - pIndex;
        }
        final int n = (int) Math.min(free, count);
        if (n <= 0) {
            return 0;
        }
        copyIn(src, offset, pIndex, n);
        soProducerIndex(pIndex + n);
        return n;
    }

    /** Consumer only. Returns the oldest value, or {@link #EMPTY} if there is none. */
    public long poll() {
        final long cIndex = lpConsumerIndex();
        if (cIndex >= consumerLimit && !refreshConsumerLimit(cIndex, 1)) {
            return EMPTY;
        }
        final long value = buffer[ARRAY_PAD + (int) (cIndex & mask)];
        soConsumerIndex(cIndex + 1);
        return value;
    }

    /**
     * Consumer only. Moves up to {@code max} of the oldest values, in order, into
     * {@code dst[offset...]} and frees their slots at once.
     *
     * @return how many were moved, 0 when the ring is empty
     */
    public int poll(long[] dst, int offset, int max) {
        Objects.checkFromIndexSize(offset, max, dst.length);
        final long cIndex = lpConsumerIndex();
        long available = consumerLimit - cIndex;
        if (available < max) {
            // Asking the producer costs a cache miss, but a full burst is worth it downstream.
            refreshConsumerLimit(cIndex, max);
            available = consumerLimit - cIndex;
        }
        final int n = (int) Math.min(available, max);
        if (n <= 0) {
            return 0;
        }
        copyOut(dst, offset, cIndex, n);
        soConsumerIndex(cIndex + n);
        return n;
    }

    /**
     * Number of values in the ring: exact when called by the producer or the consumer while the
     * other side is idle, otherwise a value that the ring held at some instant during the call.
     */
    public int size() {
        // Re-read the consumer index until it did not move while the producer index was read, so
        // the difference is a real snapshot, never negative and never above capacity.
        long after = lvConsumerIndex();
        while (true) {
            final long before = after;
            final long pIndex = lvProducerIndex();
            after = lvConsumerIndex();
            if (before == after) {
                return (int) (pIndex - after);
            }
        }
    }

    public boolean isEmpty() {
        return lvConsumerIndex() == lvProducerIndex();
    }

    /** Number of slots; a power of two. */
    public int capacity() {
        return (int) capacity;
    }

    /** Total values ever accepted; any thread, for statistics. */
    public long producedCount() {
        return lvProducerIndex();
    }

    /** Total values ever polled; any thread, for statistics. */
    public long consumedCount() {
        return lvConsumerIndex();
    }

    /** Re-reads the consumer index; {@code true} if {@code needed} slots are now free. Cold path. */
    private boolean refreshProducerLimit(long pIndex, int needed) {
        final long limit = lvConsumerIndex() + capacity;
        producerLimit = limit;
        return limit - pIndex >= needed;
    }

    /** Re-reads the producer index; {@code true} if {@code needed} values are now readable. */
    private boolean refreshConsumerLimit(long cIndex, int needed) {
        final long limit = lvProducerIndex();
        consumerLimit = limit;
        return limit - cIndex >= needed;
    }

    /** Copies {@code n} values into the slots starting at {@code index}, wrapping at the end of the ring. */
    private void copyIn(long[] src, int offset, long index, int n) {
        final long[] buffer = this.buffer;
        final int start = (int) (index & mask);
        final int first = Math.min(n, (int) capacity - start);
        System.arraycopy(src, offset, buffer, ARRAY_PAD + start, first);
        if (first < n) {
            System.arraycopy(src, offset + first, buffer, ARRAY_PAD, n - first);
        }
    }

    /** Copies {@code n} values out of the slots starting at {@code index}, wrapping at the end of the ring. */
    private void copyOut(long[] dst, int offset, long index, int n) {
        final long[] buffer = this.buffer;
        final int start = (int) (index & mask);
        final int first = Math.min(n, (int) capacity - start);
        System.arraycopy(buffer, ARRAY_PAD + start, dst, offset, first);
        if (first < n) {
            System.arraycopy(buffer, ARRAY_PAD, dst, offset + first, n - first);
        }
    }
}
