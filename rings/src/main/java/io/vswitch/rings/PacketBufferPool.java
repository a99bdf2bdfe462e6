package io.vswitch.rings;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.Objects;

/**
 * A fixed number of fixed-size packet buffers carved out of one caller-supplied
 * {@link MemorySegment}, handed out as {@code long} handles.
 *
 * <p>A handle is the buffer's index, {@code 0 <= handle < bufferCount()}: it fits in an
 * {@link SpscLongRing}, and {@link #offset(long)} turns it into a byte offset in
 * {@link #memory()} with one multiplication. {@code -1} ({@link #NO_BUFFER}) is never a handle.
 *
 * <p><b>Single owner.</b> {@code acquire} and {@code release} may be called by one thread only,
 * the pool's owner, and are neither locked nor atomic. A buffer that ends up on another thread
 * (after being transmitted by another worker, say) travels back to the owner through an
 * {@link SpscLongRing}, which the owner drains with {@link #reclaim(SpscLongRing)}. The
 * accessors ({@link #offset}, {@link #segment}, sizes) and the counters may be read from any
 * thread; the counters can be a little stale there.
 *
 * <p><b>LIFO.</b> The free list is a stack, so the buffer released last is acquired first: its
 * memory is most likely still in this core's cache and its TLB entry still loaded.
 *
 * <p><b>Double release.</b> One bit per buffer records whether it is out; releasing a buffer
 * that is not out (released twice, or never acquired) throws {@link IllegalStateException} and
 * leaves the pool unchanged. The check costs a load, a test and a store per buffer, which is
 * cheap next to the corruption a buffer on the free list twice would cause (two packets in one
 * buffer), so it is always on.
 *
 * <p>Nothing here allocates after construction: {@link #segment(long)} returns one of the
 * slices made up front.
 */
public final class PacketBufferPool {

    /** Returned by {@link #acquire()} when the pool is empty; never a valid handle. */
    public static final long NO_BUFFER = -1L;

    private static final VarHandle EXHAUSTED;
    private static final VarHandle DOUBLE_RELEASES;

    static {
        try {
            final MethodHandles.Lookup lookup = MethodHandles.lookup();
            EXHAUSTED = lookup.findVarHandle(PacketBufferPool.class, "exhausted", long.class);
            DOUBLE_RELEASES = lookup.findVarHandle(PacketBufferPool.class, "doubleReleases", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final MemorySegment memory;
    private final MemorySegment[] slices;
    private final long bufferSize;
    private final int bufferCount;

    /** Free handles; {@code freeStack[freeTop - 1]} is the next one handed out. */
    private final int[] freeStack;
    private int freeTop;
    /** Bit {@code h} set while buffer {@code h} is out of the pool. */
    private final long[] outBits;
    /** Burst buffer for {@link #reclaim}, owned by the owner thread like everything else here. */
    private final long[] reclaimScratch = new long[32];

    // Written with opaque stores so a statistics thread reading them sees a whole, recent value.
    private long exhausted;
    private long doubleReleases;

    /**
     * @param memory      backing memory, at least {@code bufferSize * bufferCount} bytes; the
     *                    caller owns it (hugepage-backed in the switch) and must keep it alive as
     *                    long as the pool is used
     * @param bufferSize  bytes per buffer; a multiple of 64 keeps every buffer on its own cache
     *                    lines, which matters when two threads touch neighbouring buffers
     * @param bufferCount number of buffers, at least 1
     */
    public PacketBufferPool(MemorySegment memory, long bufferSize, int bufferCount) {
        Objects.requireNonNull(memory, "memory");
        if (bufferSize <= 0) {
            throw new IllegalArgumentException("bufferSize must be positive: " + bufferSize);
        }
        if (bufferCount <= 0) {
            throw new IllegalArgumentException("bufferCount must be positive: " + bufferCount);
        }
        final long needed = Math.multiplyExact(bufferSize, (long) bufferCount);
        if (memory.byteSize() < needed) {
            throw new IllegalArgumentException("memory holds " + memory.byteSize() + " bytes, "
                    + bufferCount + " buffers of " + bufferSize + " need " + needed);
        }
        this.memory = memory;
        this.bufferSize = bufferSize;
        this.bufferCount = bufferCount;
        this.slices = new MemorySegment[bufferCount];
        this.freeStack = new int[bufferCount];
        this.outBits = new long[(bufferCount + 63) >>> 6];
        for (int i = 0; i < bufferCount; i++) {
            slices[i] = memory.asSlice(i * bufferSize, bufferSize);
            // Handle 0 on top, so a fresh pool hands buffers out in address order.
            freeStack[i] = bufferCount - 1 - i;
        }
        this.freeTop = bufferCount;
    }

    /** Owner only. Returns a free buffer's handle, or {@link #NO_BUFFER} if none is free. */
    public long acquire() {
        final int top = freeTop;
        if (top == 0) {
            countExhausted(1);
            return NO_BUFFER;
        }
        final int handle = freeStack[top - 1];
        freeTop = top - 1;
        outBits[handle >>> 6] |= 1L << handle;
        return handle;
    }

    /**
     * Owner only. Fills {@code dst[offset...]} with up to {@code count} handles.
     *
     * @return how many were handed out; every handle short of {@code count} counts in
     *         {@link #exhaustedCount()}
     */
    public int acquire(long[] dst, int offset, int count) {
        Objects.checkFromIndexSize(offset, count, dst.length);
        final int[] freeStack = this.freeStack;
        final long[] outBits = this.outBits;
        final int top = freeTop;
        final int n = Math.min(top, count);
        for (int i = 0; i < n; i++) {
            final int handle = freeStack[top - 1 - i];
            outBits[handle >>> 6] |= 1L << handle;
            dst[offset + i] = handle;
        }
        freeTop = top - n;
        if (n < count) {
            countExhausted(count - n);
        }
        return n;
    }

    /**
     * Owner only. Returns a buffer to the pool.
     *
     * @throws IndexOutOfBoundsException if {@code handle} is not a handle of this pool
     * @throws IllegalStateException     if the buffer is not out: released twice or never acquired
     */
    public void release(long handle) {
        final int h = (int) Objects.checkIndex(handle, bufferCount);
        final long bit = 1L << h;
        final long word = outBits[h >>> 6];
        if ((word & bit) == 0) {
            countDoubleRelease();
            throw new IllegalStateException("buffer " + handle + " released but not acquired");
        }
        outBits[h >>> 6] = word & ~bit;
        freeStack[freeTop++] = h;
    }

    /**
     * Owner only. Returns {@code count} buffers, {@code src[offset]} first (so the last one is
     * acquired next). Stops at the first invalid handle and throws; the ones before it are
     * already back in the pool.
     *
     * @throws IndexOutOfBoundsException if a handle is not a handle of this pool
     * @throws IllegalStateException     if a buffer is not out: released twice or never acquired
     */
    public void release(long[] src, int offset, int count) {
        Objects.checkFromIndexSize(offset, count, src.length);
        for (int i = 0; i < count; i++) {
            release(src[offset + i]);
        }
    }

    /**
     * Owner only. Drains a ring of handles that other threads sent back and releases them,
     * the one way a buffer that left the owner thread comes back.
     *
     * @return how many buffers came back
     * @throws IllegalStateException if the ring carried a buffer that was not out; the handles
     *                               polled with it and not yet released are then lost, which
     *                               only matters to a program that is already wrong
     */
    public int reclaim(SpscLongRing returns) {
        final long[] scratch = reclaimScratch;
        int total = 0;
        int n;
        // Bounded: every handle that comes back was out, so at most bufferCount of them can.
        while ((n = returns.poll(scratch, 0, scratch.length)) > 0) {
            release(scratch, 0, n);
            total += n;
        }
        return total;
    }

    /** Byte offset of the buffer in {@link #memory()}. Any thread. */
    public long offset(long handle) {
        return Objects.checkIndex(handle, bufferCount) * bufferSize;
    }

    /** The buffer as a segment of exactly {@link #bufferSize()} bytes; no allocation. Any thread. */
    public MemorySegment segment(long handle) {
        return slices[(int) Objects.checkIndex(handle, bufferCount)];
    }

    /** The whole backing memory, for address arithmetic with {@link #offset(long)}. */
    public MemorySegment memory() {
        return memory;
    }

    public long bufferSize() {
        return bufferSize;
    }

    public int bufferCount() {
        return bufferCount;
    }

    /** Free buffers right now. Exact on the owner thread. */
    public int available() {
        return freeTop;
    }

    /** Buffers out of the pool right now. Exact on the owner thread. */
    public int inUse() {
        return bufferCount - freeTop;
    }

    /** Whether {@code handle} is out of the pool. Owner thread. */
    public boolean isAcquired(long handle) {
        final int h = (int) Objects.checkIndex(handle, bufferCount);
        return (outBits[h >>> 6] & (1L << h)) != 0;
    }

    /** Buffers asked for but not handed out because the pool was empty, since creation. */
    public long exhaustedCount() {
        return (long) EXHAUSTED.getOpaque(this);
    }

    /** Releases rejected because the buffer was not out, since creation. */
    public long doubleReleaseCount() {
        return (long) DOUBLE_RELEASES.getOpaque(this);
    }

    private void countExhausted(int n) {
        EXHAUSTED.setOpaque(this, exhausted + n);
    }

    private void countDoubleRelease() {
        DOUBLE_RELEASES.setOpaque(this, doubleReleases + 1);
    }

    @Override
    public String toString() {
        return "PacketBufferPool[" + bufferCount + " x " + bufferSize + " B, free " + freeTop
                + ", exhausted " + exhaustedCount() + ", doubleReleases " + doubleReleaseCount() + "]";
    }
}
