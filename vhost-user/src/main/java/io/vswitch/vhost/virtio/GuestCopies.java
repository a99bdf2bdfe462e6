package io.vswitch.vhost.virtio;

import io.vswitch.vhost.memory.DirtyLog;
import io.vswitch.vhost.memory.GuestMemory;

import java.lang.foreign.MemorySegment;

/**
 * Frame copies into guests' receive buffers, recorded while a burst is enqueued and done together when it ends
 * (DPDK's batch copy, {@code do_data_copy_enqueue}). One per worker; the worker thread only; no allocation.
 *
 * <p>Why. A receive buffer is a line the guest's core read last (it received into that buffer a lap ago), so each
 * frame copied into it is a store that waits for the line to come back. Stores leave the core in order: behind
 * one such store, every later store of the worker (its own fields, arrays, stack) waits in the store buffer, and
 * when that buffer is full the worker stops. Copying frame after frame between everything else the enqueue does
 * stops it once per frame or two; copying the burst's frames in one tight loop keeps a dozen of these lines in
 * flight at once. Measured in the packed-ring loopback with the two cores far apart (about 500 ns per line
 * transfer): 5.2 to 7.3-7.6 Mpps (bench/RESULTS.md, session 8).
 *
 * <p>How. Each copy of 32 bytes or more is done with 32-byte vector loads and stores ({@code jdk.incubator.vector},
 * one {@code vmovdqu} pair per 32 bytes; a length that is not a multiple of 32 ends with one more block that
 * overlaps the one before). {@link MemorySegment#copy} goes through a runtime stub instead: a call, the stack
 * spills around it and two stores of the thread's unsafe-access flag, so that a 64-byte frame took about 6
 * stores instead of the stub's 2. Waiting behind the first store whose line is still on its way, those stores fill the
 * store queue after a handful of frames, and the handful is how many line transfers overlap. Measured in the
 * packed-ring loopback (bench/RESULTS.md, session 10). Shorter copies go through {@link GuestMemory#copyToGuest},
 * and so does every copy in a JVM without the module ({@code --add-modules jdk.incubator.vector}, in jvm.options)
 * or without 32-byte vectors, or with {@code -Dvswitch.vectorCopy=false} (for comparisons).
 *
 * <p>Rules, which {@link VirtQueue#enqueue(PacketBatch, int, long, int, GuestCopies)} and its caller keep:
 * <ul>
 *   <li>only unchecked guest memory ({@link GuestMemory#CHECKED} false) defers: every destination was validated
 *       to lie inside one region before it is recorded, and the mapping lives until the pass ends (quiescence);
 *       checked memory, the fault tests' mode, copies at once so that a failure is attributed where it happens;</li>
 *   <li>not while the guest's dirty log is on (live migration): a page is marked after its bytes land, never before;</li>
 *   <li>recorded last, once nothing of the frame's enqueue can fail any more (a failed enqueue leaves no copy);</li>
 *   <li>only a frame in one piece whose source stays readable until {@link #drain} (a burst's frames, which live
 *       in the source guest's buffers until the burst is completed, or in an uplink's until its next receive);</li>
 *   <li>{@link #drain} before the burst's source buffers are returned and before any used index or used
 *       descriptor is published ({@link VirtQueue#flushRx}): a guest never sees a buffer before its bytes.</li>
 * </ul>
 */
public final class GuestCopies {
    /** Copies held at most; one more drains the ones held first (the order of copies to distinct buffers is free). */
    public static final int CAPACITY = 256;
    /** Whether copies of {@link VectorCopy#BYTES} bytes or more are done by {@link VectorCopy} (see "How" above). */
    static final boolean VECTOR = Boolean.parseBoolean(System.getProperty("vswitch.vectorCopy", "true"))
            && ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent()   // before VectorCopy is touched
            && VectorCopy.usable();

    private final MemorySegment[] source = new MemorySegment[CAPACITY];
    private final long[] sourceOffset = new long[CAPACITY];
    private final long[] destination = new long[CAPACITY];
    private final int[] length = new int[CAPACITY];
    private int count;
    private RuntimeException overflowFailure;

    /**
     * Whether a frame of {@code pieces} pieces may be deferred here, into a guest whose dirty log is {@code log}
     * (null: off); see the rules above.
     */
    static boolean defers(GuestCopies copies, int pieces, DirtyLog log) {
        return copies != null && pieces == 1 && log == null && !GuestMemory.CHECKED;
    }

    /** Records the copy of {@code n} bytes at {@code srcOffset} of {@code src} to {@code dst} of {@link GuestMemory#EVERYTHING}. */
    void add(MemorySegment src, long srcOffset, long dst, int n) {
        int c = count;
        if (c == CAPACITY) {
            try {
                drain();
            } catch (RuntimeException e) {
                overflowFailure = e;   // thrown by the next drain: recording never fails (see the rules above)
            }
            c = 0;
        }
        if (source[c] != src) {   // burst after burst the same source segment: skip the reference store (GC barrier)
            source[c] = src;
        }
        sourceOffset[c] = srcOffset;
        destination[c] = dst;
        length[c] = n;
        count = c + 1;
    }

    /** Copies held, not yet done. */
    public int pending() {
        return count;
    }

    /**
     * Does the copies recorded, in the order they were recorded. Should one fail (a source that is no longer
     * readable), the others are still done, and the first failure is thrown at the end: the buffers of the others
     * are about to be published.
     */
    public void drain() {
        final int n = count;
        RuntimeException failed = overflowFailure;
        overflowFailure = null;
        if (n == 0) {
            if (failed != null) {
                throw failed;
            }
            return;
        }
        count = 0;
        for (int c = 0; c < n; c++) {
            try {
                final MemorySegment src = source[c];
                final int len = length[c];
                final long dst = destination[c];
                if (VECTOR && len >= VectorCopy.BYTES) {
                    if (src == GuestMemory.EVERYTHING) {
                        VectorCopy.copy(GuestMemory.EVERYTHING, sourceOffset[c], dst, len);
                    } else {
                        VectorCopy.copy(src, sourceOffset[c], dst, len);
                    }
                } else {
                    GuestMemory.copyToGuest(src, sourceOffset[c], GuestMemory.EVERYTHING, dst, len);
                }
            } catch (RuntimeException e) {
                if (failed == null) {
                    failed = e;
                }
            }
        }
        if (failed != null) {
            throw failed;
        }
    }
}
