package io.vswitch.vhost.virtio;

import io.vswitch.protocol.VirtioNetHeader;
import io.vswitch.sys.EventFd;
import io.vswitch.vhost.memory.DirtyLog;
import io.vswitch.vhost.memory.GuestMemory;
import io.vswitch.vhost.memory.RegionCache;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

import static io.vswitch.protocol.SplitRing.*;

/**
 * The device side of one split virtqueue in guest memory.
 *
 * <p>Two threads touch a queue, never at once: the control thread configures it while it is not
 * published to a worker, and one worker runs the data path while it is. Everything the guest wrote is
 * checked before use; a violation records a {@link QueueFault} and the queue does nothing more until the
 * frontend sets it up again. No exception escapes the data-path methods but one: {@link #enqueue}
 * rethrows a failure to read the caller's source frame (another guest's memory that went away) without
 * faulting this queue, because the fault is the source's, not this guest's (see {@link
 * #enqueue(MemorySegment[], long[], int[], int, int, int)}).
 *
 * <p>Ring indices: {@code avail.idx} is read once per burst with acquire semantics, {@code used.idx} is
 * written once per burst with release semantics, and a full fence orders that write before the read of the
 * guest's interrupt suppression (flags or used_event), as the virtio memory model requires.
 */
public final class VirtQueue {
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED;
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED;
    /**
     * Loads {@link DirtyLog} with this class. C2 does not inline a method whose signature names a class that is not
     * loaded yet ("unloaded signature classes" in -XX:+PrintInlining), and DirtyLog, in the signatures of both rings'
     * fast paths, is otherwise loaded only when a migration first turns the log on: until then every frame called
     * them (bench/RESULTS.md, session 9).
     */
    private static final Class<?> FAST_PATH_SIGNATURES = DirtyLog.class;
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final VarHandle U16_ATOMIC = ValueLayout.JAVA_SHORT.varHandle();

    /** The largest frame accepted from a guest (a TSO frame's IP packet is at most 64 KiB): plus an Ethernet header and VLAN tag. */
    public static final int MAX_FRAME = 65536 + 18;

    private final String name;
    private final MemorySegment headerStage;

    // configuration, written by the control thread while the queue is not published
    private int size;
    private int mask;
    /**
     * The rings while configured (null otherwise): {@link GuestMemory#EVERYTHING} at host addresses {@code descBase},
     * {@code availBase} and {@code usedBase}, validated in {@link #configure} to lie wholly inside one mapped region
     * and accessed unchecked from then on; or, with {@link GuestMemory#CHECKED}, the rings' own checked slices at
     * base 0.
     */
    private MemorySegment desc;
    private MemorySegment avail;
    private MemorySegment used;
    private long descBase;
    private long availBase;
    private long usedBase;
    /** Where descriptors are translated: replaced while published when regions come and go (see {@link #replaceMemory}). */
    private volatile GuestMemory memory;
    private boolean eventIdx;
    private boolean mergeable;
    /** VIRTIO_F_IN_ORDER: a TX burst is returned as one used element (the last chain's head). */
    private boolean inOrder;
    /** VIRTIO_F_RING_PACKED: every data-path call goes to {@link #packedRing} instead. */
    private boolean packed;
    private final PackedVirtQueue packedRing = new PackedVirtQueue(this);
    /** Guest-physical address of the used ring for the dirty log, or -1 when its writes are not logged. */
    private long usedLogAddr = -1;
    private volatile EventFd call;
    /** Set while VHOST_F_LOG_ALL is on (live migration): every write into guest memory marks its pages. */
    private volatile DirtyLog dirtyLog;

    // data-path state, owned by the worker while published
    private int lastAvail;
    private int availCache;
    private int usedIdx;
    private int usedPublished;
    private int burstLastHead;
    private volatile QueueFault fault = QueueFault.NONE;
    private volatile String faultDetail = "";

    // the chain being read (see beginChain / nextDescriptor)
    private final DescriptorChain chain = new DescriptorChain();
    /** The fast paths' translation of buffer addresses (the worker's; see RegionCache). */
    private final RegionCache regions = new RegionCache();

    // counters: written by the owning worker only, read by anyone (64-bit writes are atomic)
    public long callsSent;
    public long framesTooLarge;
    public long framesTooManyPieces;
    public long framesTooShort;
    public long rxNoRoom;
    public long rxBufferTooSmall;
    public long faults;
    /** Why the last {@link #enqueue} of a healthy queue returned false: {@link #REFUSED_NO_ROOM} or {@link #REFUSED_TOO_SMALL}. */
    public int refusal;
    public static final int REFUSED_NO_ROOM = 1;
    public static final int REFUSED_TOO_SMALL = 2;

    /**
     * Used elements of the fast path's frames since the last flush, written together just before used.idx
     * ({@link #publishUsed}): their line is one the driver reads, and a store to it held the store buffer once per
     * frame where the burst's stores now come in one run (see {@link GuestCopies}; loopback, far placement, +12 %).
     * Slot (index &amp; mask) and value. Not while the dirty log is on: an element is marked after it is written.
     */
    private int[] stagedUsedSlot = new int[0];
    private long[] stagedUsedValue = new long[0];
    private int stagedUsed;
    // flat-source cursor for enqueue of a single buffer
    private final MemorySegment[] flatSegment = new MemorySegment[1];
    private final long[] flatOffset = new long[1];
    private final int[] flatLength = new int[1];

    public VirtQueue(String name) {
        this.name = name;
        this.headerStage = MemorySegment.ofArray(new byte[VirtioNetHeader.SIZE]);
    }

    public String name() {
        return name;
    }

    /**
     * Points the queue at rings given as frontend-virtual addresses. Returns null when they are usable, or
     * why not. Call only while the queue is not published.
     */
    public String configure(GuestMemory memory, int size, long descAddr, long availAddr, long usedAddr,
                            boolean eventIdx, boolean mergeable, int base) {
        return configure(memory, size, descAddr, availAddr, usedAddr, eventIdx, mergeable, false, false, base);
    }

    /**
     * As {@link #configure(GuestMemory, int, long, long, long, boolean, boolean, int)}, choosing the ring layout:
     * with {@code packed} the addresses are the descriptor ring, the driver area and the device area of a
     * packed virtqueue, and {@code base} carries the wrap counter in bit 15. {@code inOrder}: VIRTIO_F_IN_ORDER.
     */
    public String configure(GuestMemory memory, int size, long descAddr, long availAddr, long usedAddr,
                            boolean eventIdx, boolean mergeable, boolean packed, boolean inOrder, int base) {
        if (packed) {
            String problem = packedRing.configure(memory, size, descAddr, availAddr, usedAddr, eventIdx, mergeable, inOrder, base);
            if (problem == null) {
                this.packed = true;
                this.size = size;
                this.fault = QueueFault.NONE;
                this.faultDetail = "";
            }
            return problem;
        }
        this.packed = false;
        this.inOrder = inOrder;
        if (size < 1 || size > MAX_QUEUE_SIZE || Integer.bitCount(size) != 1) {
            return "queue size " + size + " is not a power of two in 1.." + MAX_QUEUE_SIZE;
        }
        if ((descAddr & 15) != 0 || (availAddr & 1) != 0 || (usedAddr & 3) != 0) {
            return String.format("misaligned rings: desc 0x%x, avail 0x%x, used 0x%x", descAddr, availAddr, usedAddr);
        }
        MemorySegment d = memory.sliceUser(descAddr, descTableBytes(size));
        MemorySegment a = memory.sliceUser(availAddr, availBytes(size));
        MemorySegment u = memory.sliceUser(usedAddr, usedBytes(size));
        if (d == null || a == null || u == null) {
            return String.format("rings not inside guest memory: desc 0x%x, avail 0x%x, used 0x%x (size %d)",
                    descAddr, availAddr, usedAddr, size);
        }
        if ((d.address() & 15) != 0 || (a.address() & 1) != 0 || (u.address() & 3) != 0) {
            // aligned in the frontend's space but not in ours: a region whose mmap_offset is not aligned
            return String.format("rings misaligned where they are mapped (a memory region's mmap_offset is not aligned):"
                    + " desc 0x%x, avail 0x%x, used 0x%x", descAddr, availAddr, usedAddr);
        }
        this.memory = memory;
        this.size = size;
        this.mask = size - 1;
        final boolean checked = GuestMemory.CHECKED;
        this.desc = checked ? d : GuestMemory.EVERYTHING;
        this.avail = checked ? a : GuestMemory.EVERYTHING;
        this.used = checked ? u : GuestMemory.EVERYTHING;
        this.descBase = checked ? 0 : d.address();
        this.availBase = checked ? 0 : a.address();
        this.usedBase = checked ? 0 : u.address();
        this.eventIdx = eventIdx;
        this.mergeable = mergeable;
        this.lastAvail = base & 0xFFFF;
        this.usedIdx = base & 0xFFFF;
        int inMemory = (short) U16_ATOMIC.getAcquire(u, (long) USED_IDX) & 0xFFFF;
        if (inMemory != usedIdx) {
            // The frontend's base disagrees with what we last published (e.g. after our own restart):
            // the used ring is the truth, in-flight buffers are lost either way.
            this.lastAvail = inMemory;
            this.usedIdx = inMemory;
        }
        this.usedPublished = usedIdx;
        this.availCache = lastAvail;
        if (stagedUsedSlot.length < size) {
            stagedUsedSlot = new int[size];
            stagedUsedValue = new long[size];
        }
        this.stagedUsed = 0;
        this.fault = QueueFault.NONE;
        this.faultDetail = "";
        return null;
    }

    /** Forgets the rings (memory is about to be unmapped). Call only while the queue is not published. */
    public void unconfigure() {
        packedRing.unconfigure();   // keeps its position (and packed stays set) for GET_VRING_BASE
        memory = null;
        regions.clear();
        desc = null;
        avail = null;
        used = null;
        // the frontend is setting the ring up again (or has gone): the old fault no longer describes it
        fault = QueueFault.NONE;
        faultDetail = "";
    }

    public boolean isConfigured() {
        return packed ? packedRing.isConfigured() : used != null;
    }

    /**
     * Translates descriptors in {@code memory} from now on, while the queue may be published (ADD_MEM_REG,
     * REM_MEM_REG): the worker picks it up at its next descriptor. The rings must lie in regions that both
     * memories share, and the regions only the old memory has must stay mapped until a grace period has
     * passed, since the worker may still be translating with it.
     */
    public void replaceMemory(GuestMemory memory) {
        if (packed) {
            packedRing.replaceMemory(memory);
        } else if (this.memory != null) {
            this.memory = memory;
        }
    }

    public int size() {
        return size;
    }

    /**
     * What GET_VRING_BASE reports: the next available index to process; for a packed ring both positions with
     * their wrap counters ({@link PackedRingBase}; bit 31 may be set).
     */
    public int lastAvailIndex() {
        return packed ? packedRing.lastAvailIndex() : lastAvail;
    }

    public void setCall(EventFd call) {
        this.call = call;
    }

    /**
     * Where the used ring lies in guest-physical memory for the dirty log (SET_VRING_ADDR's log_guest_addr
     * with VHOST_VRING_F_LOG), or -1. Call only while the queue is not published.
     */
    public void setUsedLogAddress(long guestPhysAddr) {
        this.usedLogAddr = guestPhysAddr;
    }

    /**
     * Starts (non-null) or stops (null) dirty logging; the worker sees it from its next burst. A log that is
     * replaced may still be written until the worker's next quiescent point.
     */
    public void setDirtyLog(DirtyLog log) {
        this.dirtyLog = log;
    }

    public DirtyLog dirtyLog() {
        return dirtyLog;
    }

    private void logUsed(DirtyLog log, long offset, long length) {
        if (usedLogAddr >= 0) {
            log.markGuest(usedLogAddr + offset, length);
        }
    }

    public EventFd call() {
        return call;
    }

    public QueueFault fault() {
        return fault;
    }

    public String faultDetail() {
        return faultDetail;
    }

    public boolean isBroken() {
        return fault != QueueFault.NONE;
    }

    /** True when the frontend negotiated packed rings for this queue (as configured). */
    public boolean isPacked() {
        return packed;
    }

    boolean fail(QueueFault why, String detail) {
        if (fault == QueueFault.NONE) {
            faultDetail = detail;
            fault = why;
            faults++;
        }
        return false;
    }

    /**
     * Records that this queue's guest memory went away under it, found by its owning worker outside the queue's
     * own methods: reading a burst {@link #dequeueBurst} described (a {@link PacketBatch}) threw. Worker only,
     * like the data-path methods; the first fault is the one kept.
     */
    public void failMemoryGone(RuntimeException e) {
        fail(QueueFault.MEMORY_GONE, "reading a frame of this queue: " + e.getMessage());
    }

    /**
     * Asks the guest not to kick (busy-polling) or to kick (the worker is about to sleep). With EVENT_IDX the
     * request is the avail_event index: kick when the entry after the last one we saw is made available, or
     * (not wanted) when the index that is one behind that comes round again.
     */
    public void setKicksWanted(boolean wanted) {
        if (packed) {
            packedRing.setKicksWanted(wanted);
            return;
        }
        MemorySegment u = used;
        if (u == null || fault != QueueFault.NONE) {
            return;
        }
        try {
            final DirtyLog log = dirtyLog;
            if (eventIdx) {
                // kick when the entry at lastAvail is made available; or, with the index just behind it,
                // only after the driver has gone all the way round the 16-bit index (practically never)
                U16_ATOMIC.setRelease(u, usedBase + availEventOffset(size), (short) (wanted ? lastAvail : lastAvail - 1));
                if (log != null) {
                    logUsed(log, availEventOffset(size), 2);
                }
            } else {
                u.set(U16, usedBase + USED_FLAGS, (short) (wanted ? 0 : USED_F_NO_NOTIFY));
                if (log != null) {
                    logUsed(log, USED_FLAGS, 2);
                }
            }
            VarHandle.fullFence();
        } catch (RuntimeException e) {
            fail(QueueFault.MEMORY_GONE, e.getMessage());
        }
    }

    /** True when the guest has made entries available that we have not taken yet. */
    public boolean hasAvailable() {
        if (packed) {
            return packedRing.hasAvailable();
        }
        MemorySegment a = avail;
        if (a == null || fault != QueueFault.NONE) {
            return false;
        }
        try {
            return ((short) U16_ATOMIC.getAcquire(GuestMemory.direct(a), availBase + AVAIL_IDX) & 0xFFFF) != lastAvail;
        } catch (RuntimeException e) {
            return fail(QueueFault.MEMORY_GONE, e.getMessage());
        }
    }

    // ---------------------------------------------------------------- descriptor chains

    private boolean beginChain(int head) {
        if (head >= size) {
            return fail(QueueFault.HEAD_OUT_OF_RANGE, "head " + head + " >= queue size " + size);
        }
        chain.begin(desc, descBase, size, head);
        return true;
    }

    /** Advances the chain to its next non-empty buffer: 1 when there is one, 0 at its end, -1 on a fault (recorded). */
    private int nextDescriptor() {
        // one memory for the whole descriptor (see replaceMemory)
        int r = chain.next(memory);
        if (r < 0) {
            fail(chain.fault(), chain.faultDetail());
        }
        return r;
    }

    // ---------------------------------------------------------------- guest TX: dequeue

    /**
     * Takes up to {@code batch.capacity()} frames the guest transmitted, described in place. Frames that
     * are well-formed but unusable (too long, too many pieces, shorter than a header) are dropped and
     * counted; their descriptors are returned by {@link #completeTx}.
     */
    public int dequeueBurst(PacketBatch batch) {
        if (packed) {
            return packedRing.dequeueBurst(batch);
        }
        batch.clear();
        final MemorySegment a = avail;
        if (a == null || fault != QueueFault.NONE) {
            return 0;
        }
        final MemorySegment ar = GuestMemory.direct(a);
        try {
            int availIdx = (short) U16_ATOMIC.getAcquire(ar, availBase + AVAIL_IDX) & 0xFFFF;
            int pending = (availIdx - lastAvail) & 0xFFFF;
            if (pending == 0) {
                return 0;
            }
            if (pending > size) {
                fail(QueueFault.AVAIL_INDEX_JUMP, "avail.idx " + availIdx + " is " + pending + " ahead of " + lastAvail);
                return 0;
            }
            int n = Math.min(pending, batch.capacity());
            final int m = mask;
            int next = lastAvail;
            int head = 0;
            for (int i = 0; i < n; i++) {
                head = ar.get(U16, availBase + AVAIL_RING + (long) AVAIL_ELEM_SIZE * (next & m)) & 0xFFFF;
                // the usual chain here, inlined; the general walk (a call) for anything else
                if (!(head < size && readOneDescriptor(head, batch)) && !readTxChain(head, batch)) {
                    batch.clear();
                    return 0;
                }
                next = (next + 1) & 0xFFFF;
            }
            lastAvail = next;
            burstLastHead = head;
            return batch.count();
        } catch (RuntimeException e) {
            batch.clear();
            fail(QueueFault.MEMORY_GONE, String.valueOf(e.getMessage()));
            return 0;
        }
    }

    /** The general walk of a TX chain (after {@link #readOneDescriptor} declined it): drops and faults included. */
    private boolean readTxChain(int head, PacketBatch batch) {
        if (!beginChain(head)) {
            return false;
        }
        final int first = batch.pieces;
        int pieces = 0;
        long total = 0;
        boolean drop = false;
        int r;
        while ((r = nextDescriptor()) > 0) {
            if (chain.writable()) {
                return fail(QueueFault.WRONG_DIRECTION, "device-writable descriptor in a TX chain (head " + head + ")");
            }
            long start = 0;
            if (total < VirtioNetHeader.SIZE) {
                start = Math.min(chain.length(), VirtioNetHeader.SIZE - total);
                batch.captureHeader(batch.count(), (int) total, chain.segment(), chain.offset(), (int) start);   // for the offload checks
            }
            total += chain.length();
            if (drop || start == chain.length()) {
                continue;
            }
            if (total > MAX_FRAME + VirtioNetHeader.SIZE) {
                framesTooLarge++;
                drop = true;
                continue;
            }
            if (pieces == PacketBatch.MAX_PIECES_PER_FRAME) {
                framesTooManyPieces++;
                drop = true;
                continue;
            }
            int p = first + pieces++;
            batch.pieceSegment[p] = chain.segment();
            batch.pieceOffset[p] = chain.offset() + start;
            batch.pieceLength[p] = (int) (chain.length() - start);
        }
        if (r < 0) {
            return false;
        }
        if (!drop && total <= VirtioNetHeader.SIZE) {
            framesTooShort++;
            drop = true;
        }
        if (drop) {
            batch.droppedHead[batch.dropped++] = head;
        } else {
            batch.pieces = first + pieces;
            batch.commitFrame(head, (int) (total - VirtioNetHeader.SIZE), first, pieces);
        }
        return true;
    }

    /**
     * The usual TX chain, taken without the chain cursor: one descriptor (no NEXT, INDIRECT or WRITE) holding
     * the header and a whole frame, inside one region. False when the chain is anything else, and then nothing
     * was recorded: the general walk reads it again and judges it (faults and drops included).
     */
    private boolean readOneDescriptor(int head, PacketBatch batch) {
        final MemorySegment d = GuestMemory.direct(desc);
        final long at = descBase + (long) head * DESC_SIZE;
        final long word = d.get(U64, at + DESC_LEN);
        final long length = word & 0xFFFF_FFFFL;
        if ((word & 0xFFFF_0000_0000L) != 0 || length <= VirtioNetHeader.SIZE || length > MAX_FRAME + VirtioNetHeader.SIZE) {
            return false;
        }
        final long bufferAddr = d.get(U64, at + DESC_ADDR);
        final long host = regions.host(memory, bufferAddr, length);
        if (host < 0) {
            return false;
        }
        batch.addGuestFrame(head, GuestMemory.direct(regions.segment()), host, length);
        return true;
    }

    /** Returns every descriptor of the last burst to the guest, publishes used.idx once, and calls if asked. */
    public void completeTx(PacketBatch batch) {
        if (packed) {
            packedRing.completeTx();
            return;
        }
        final MemorySegment u = GuestMemory.direct(used);
        if (used == null || fault != QueueFault.NONE) {
            return;
        }
        if (inOrder) {
            completeTxInOrder(u, batch.count() + batch.dropped);
            return;
        }
        try {
            final int m = mask;
            int idx = usedIdx;
            for (int i = 0, n = batch.count(); i < n; i++) {
                long at = usedBase + USED_RING + (long) USED_ELEM_SIZE * (idx & m);
                u.set(U64, at, usedElement(batch.head[i], 0));
                idx = (idx + 1) & 0xFFFF;
            }
            for (int i = 0, n = batch.dropped; i < n; i++) {
                long at = usedBase + USED_RING + (long) USED_ELEM_SIZE * (idx & m);
                u.set(U64, at, usedElement(batch.droppedHead[i], 0));
                idx = (idx + 1) & 0xFFFF;
            }
            final DirtyLog log = dirtyLog;
            if (log != null) {
                for (int i = usedIdx; i != idx; i = (i + 1) & 0xFFFF) {
                    logUsed(log, USED_RING + (long) USED_ELEM_SIZE * (i & m), USED_ELEM_SIZE);
                }
            }
            usedIdx = idx;
            publishUsed();
        } catch (RuntimeException e) {
            fail(QueueFault.MEMORY_GONE, String.valueOf(e.getMessage()));
        }
    }

    /** IN_ORDER: one used element, the last chain's head, stands for the whole burst of {@code n} chains (2.7.9). */
    private void completeTxInOrder(MemorySegment u, int n) {
        if (n == 0) {
            return;
        }
        try {
            int idx = usedIdx;
            long at = USED_RING + (long) USED_ELEM_SIZE * ((idx + n - 1) & mask);
            u.set(U64, usedBase + at, usedElement(burstLastHead, 0));
            final DirtyLog log = dirtyLog;
            if (log != null) {
                logUsed(log, at, USED_ELEM_SIZE);
            }
            usedIdx = (idx + n) & 0xFFFF;
            publishUsed();
        } catch (RuntimeException e) {
            fail(QueueFault.MEMORY_GONE, String.valueOf(e.getMessage()));
        }
    }

    // ---------------------------------------------------------------- guest RX: enqueue

    /** Copies frame {@code frame} of {@code batch} into the guest's receive buffers; false when it does not fit. */
    public boolean enqueue(PacketBatch batch, int frame) {
        return enqueue(batch.pieceSegment, batch.pieceOffset, batch.pieceLength, batch.firstPiece(frame),
                batch.pieceCount(frame), batch.frameLength(frame));
    }

    /** As {@link #enqueue(PacketBatch, int)}, with the offload fields of its virtio-net header (see the array form). */
    public boolean enqueue(PacketBatch batch, int frame, long headerWord, int csumOffset) {
        return enqueue(batch, frame, headerWord, csumOffset, null);
    }

    /**
     * As {@link #enqueue(PacketBatch, int, long, int)}; the frame's bytes may be copied later, by {@code copies}
     * (null: now). The caller drains {@code copies} before {@link #flushRx} and before the batch's buffers are
     * returned (see {@link GuestCopies}).
     */
    public boolean enqueue(PacketBatch batch, int frame, long headerWord, int csumOffset, GuestCopies copies) {
        return enqueue(batch.pieceSegment, batch.pieceOffset, batch.pieceLength, batch.firstPiece(frame),
                batch.pieceCount(frame), batch.frameLength(frame), headerWord, csumOffset, copies);
    }

    /** Copies {@code length} bytes of {@code frame} at {@code offset} into the guest's receive buffers. */
    public boolean enqueue(MemorySegment frame, long offset, int length) {
        flatSegment[0] = frame;
        flatOffset[0] = offset;
        flatLength[0] = length;
        return enqueue(flatSegment, flatOffset, flatLength, 0, 1, length);
    }

    /**
     * Copies a frame given as pieces {@code first .. first+count-1} of the three arrays (which must add up to
     * {@code frameLength} bytes) into the guest's receive buffers; false when it does not fit.
     *
     * <p>Failures are attributed to the memory that failed. When this guest's memory fails, the queue faults
     * with {@link QueueFault#MEMORY_GONE} and false is returned. When the <em>source</em> frame cannot be read
     * (it lives in another guest's memory, which was unmapped), this queue is healthy: it forgets the partial
     * copy, stays usable, and rethrows the exception for the caller to fault the source. Which one failed is
     * worked out in the catch block only, so the copy loop does no extra work.
     *
     * @throws RuntimeException only when the source pieces cannot be read
     */
    public boolean enqueue(MemorySegment[] segments, long[] offsets, int[] lengths, int first, int count, int frameLength) {
        return enqueue(segments, offsets, lengths, first, count, frameLength, 0L, 0);
    }

    /**
     * As {@link #enqueue(MemorySegment[], long[], int[], int, int, int)}, with a virtio-net header that carries
     * offload fields: {@code headerWord} is its bytes 0..7 (flags, gso_type, hdr_len, gso_size, csum_start, as
     * {@link PacketBatch#headerWord}), {@code csumOffset} bytes 8..9; num_buffers is filled in here. Only for a
     * guest that negotiated the offloads those fields use (the caller's check).
     */
    public boolean enqueue(MemorySegment[] segments, long[] offsets, int[] lengths, int first, int count, int frameLength,
                           long headerWord, int csumOffset) {
        return enqueue(segments, offsets, lengths, first, count, frameLength, headerWord, csumOffset, null);
    }

    private boolean enqueue(MemorySegment[] segments, long[] offsets, int[] lengths, int first, int count, int frameLength,
                            long headerWord, int csumOffset, GuestCopies copies) {
        // a small dispatcher, inlined into the caller: the packed ring's enqueue is small too (its fast path is
        // inlined with it), where this whole method, split ring included, is too big to inline (one call per frame)
        if (packed) {
            return packedRing.enqueue(segments, offsets, lengths, first, count, frameLength, headerStage, headerWord, csumOffset, copies);
        }
        return enqueueSplit(segments, offsets, lengths, first, count, frameLength, headerWord, csumOffset, copies);
    }

    /**
     * {@link #enqueue(MemorySegment[], long[], int[], int, int, int, long, int)} on the split ring. Small on purpose
     * (inlined into the caller with {@link #writeOneDescriptor}): the usual buffer, the next one the driver made
     * available since we last read avail.idx, is taken here; anything else by {@link #enqueueSplitWalk}, which
     * reads the same head again (the fast path changes nothing when it declines).
     */
    private boolean enqueueSplit(MemorySegment[] segments, long[] offsets, int[] lengths, int first, int count, int frameLength,
                                 long headerWord, int csumOffset, GuestCopies copies) {
        if (avail == null || fault != QueueFault.NONE) {
            return false;
        }
        final int next = lastAvail;
        final boolean tried = availCache != next;
        if (tried) {
            try {
                final int head = GuestMemory.direct(avail).get(U16, availBase + AVAIL_RING + (long) AVAIL_ELEM_SIZE * (next & mask)) & 0xFFFF;
                if (head < size
                        && writeOneDescriptor(head, segments, offsets, lengths, first, count, frameLength, headerWord, csumOffset, dirtyLog, copies)) {
                    lastAvail = (next + 1) & 0xFFFF;
                    return true;
                }
            } catch (RuntimeException e) {
                // nothing was written to our state (writeOneDescriptor stages and records its copy last)
                if (!PacketBatch.readable(segments, offsets, lengths, first, count)) {
                    throw e;   // the source's memory failed, not ours: the caller faults the source
                }
                return fail(QueueFault.MEMORY_GONE, String.valueOf(e.getMessage()));
            }
        }
        return enqueueSplitWalk(segments, offsets, lengths, first, count, frameLength, headerWord, csumOffset, copies, tried);
    }

    /**
     * The general walk of {@link #enqueueSplit}: chains, indirect tables, frames over several buffers, and every
     * fault. {@code fastTried}: the fast path already declined the first head (not tried again on it).
     */
    private boolean enqueueSplitWalk(MemorySegment[] segments, long[] offsets, int[] lengths, int first, int count, int frameLength,
                                     long headerWord, int csumOffset, GuestCopies copies, boolean fastTried) {
        final MemorySegment a = GuestMemory.direct(avail);
        final MemorySegment u = GuestMemory.direct(used);
        final int startAvail = lastAvail;
        final int startUsed = usedIdx;
        try {
            final MemorySegment header = headerStage;   // staged below, only when the general walk takes the frame
            // source cursor: piece -1 is the header, then the frame's pieces
            int piece = -1;
            MemorySegment srcSegment = header;
            long srcOffset = 0;
            long srcLeft = VirtioNetHeader.SIZE;
            long remaining = VirtioNetHeader.SIZE + (long) frameLength;
            MemorySegment numBuffersSegment = null;
            long numBuffersOffset = 0;
            int buffers = 0;
            final int m = mask;
            final DirtyLog log = dirtyLog;
            while (remaining > 0) {
                if (availCache == lastAvail) {
                    availCache = (short) U16_ATOMIC.getAcquire(a, availBase + AVAIL_IDX) & 0xFFFF;
                    int pending = (availCache - lastAvail) & 0xFFFF;
                    if (pending > size) {
                        fail(QueueFault.AVAIL_INDEX_JUMP, "avail.idx " + availCache + " is " + pending + " ahead of " + lastAvail);
                        return false;
                    }
                    if (pending == 0) {
                        rxNoRoom++;
                        refusal = REFUSED_NO_ROOM;
                        return rollback(startAvail, startUsed);
                    }
                }
                int head = a.get(U16, availBase + AVAIL_RING + (long) AVAIL_ELEM_SIZE * (lastAvail & m)) & 0xFFFF;
                lastAvail = (lastAvail + 1) & 0xFFFF;
                if (buffers == 0 && !fastTried && head < size
                        && writeOneDescriptor(head, segments, offsets, lengths, first, count, frameLength, headerWord, csumOffset, log, copies)) {
                    return true;
                }
                if (buffers == 0) {
                    // the general walk: the header as a source piece, for one that straddles descriptors (the
                    // usual one is stored below). Not before the fast path, which stores it itself: these two
                    // heap-segment stores were 5-9 % of SwitchBenchmark's samples when done for every frame
                    header.set(U64, 0, headerWord);
                    header.set(U32, 8, csumOffset & 0xFFFF);
                }
                if (!beginChain(head)) {
                    return rollback(startAvail, startUsed);
                }
                long written = 0;
                int r;
                while (remaining > 0 && (r = nextDescriptor()) != 0) {
                    if (r < 0) {
                        return rollback(startAvail, startUsed);
                    }
                    if (!chain.writable()) {
                        fail(QueueFault.WRONG_DIRECTION, "device-readable descriptor in an RX chain (head " + head + ")");
                        return rollback(startAvail, startUsed);
                    }
                    final MemorySegment dst = GuestMemory.direct(chain.segment());
                    long dstOffset = chain.offset();
                    long room = chain.length();
                    final long writtenBefore = written;
                    if (piece < 0 && srcOffset == 0 && room >= VirtioNetHeader.SIZE) {
                        // the usual case: the header fits the first buffer, so write it (offload fields, or
                        // zero, and num_buffers, patched below) with two stores instead of copying it
                        final MemorySegment d = dst;
                        d.set(U64, dstOffset, headerWord);
                        d.set(U32, dstOffset + 8, csumOffset & 0xFFFF);
                        numBuffersSegment = d;
                        numBuffersOffset = dstOffset + VirtioNetHeader.NUM_BUFFERS;
                        srcOffset = VirtioNetHeader.SIZE;
                        srcLeft = 0;
                        dstOffset += VirtioNetHeader.SIZE;
                        room -= VirtioNetHeader.SIZE;
                        remaining -= VirtioNetHeader.SIZE;
                        written += VirtioNetHeader.SIZE;
                    }
                    while (room > 0 && remaining > 0) {
                        if (srcLeft == 0) {
                            piece = piece < 0 ? first : piece + 1;
                            srcSegment = segments[piece];
                            srcOffset = offsets[piece];
                            srcLeft = lengths[piece];
                            continue;
                        }
                        long chunk = Math.min(room, srcLeft);
                        if (piece < 0 && numBuffersSegment == null && srcOffset <= VirtioNetHeader.NUM_BUFFERS
                                && srcOffset + chunk >= VirtioNetHeader.NUM_BUFFERS + 2) {
                            numBuffersSegment = dst;
                            numBuffersOffset = dstOffset + VirtioNetHeader.NUM_BUFFERS - srcOffset;
                        }
                        GuestMemory.copyToGuest(srcSegment, srcOffset, dst, dstOffset, chunk);
                        srcOffset += chunk;
                        srcLeft -= chunk;
                        dstOffset += chunk;
                        room -= chunk;
                        remaining -= chunk;
                        written += chunk;
                    }
                    if (log != null) {
                        log.markGuest(chain.addr(), written - writtenBefore);
                    }
                }
                long at = USED_RING + (long) USED_ELEM_SIZE * (usedIdx & m);
                u.set(U64, usedBase + at, usedElement(head, (int) written));
                if (log != null) {
                    logUsed(log, at, USED_ELEM_SIZE);
                }
                usedIdx = (usedIdx + 1) & 0xFFFF;
                buffers++;
                if (remaining > 0 && !mergeable) {
                    rxBufferTooSmall++;
                    refusal = REFUSED_TOO_SMALL;
                    return rollback(startAvail, startUsed);
                }
            }
            if (numBuffersSegment != null) {
                numBuffersSegment.set(U16, numBuffersOffset, (short) buffers);
            } else {
                // the header's num_buffers field straddled two descriptors: no real driver does that
                rxBufferTooSmall++;
                return rollback(startAvail, startUsed);
            }
            return true;
        } catch (RuntimeException e) {
            rollback(startAvail, startUsed);
            if (!PacketBatch.readable(segments, offsets, lengths, first, count)) {
                throw e;   // the source's memory failed, not ours: the caller faults the source
            }
            return fail(QueueFault.MEMORY_GONE, String.valueOf(e.getMessage()));
        }
    }

    /**
     * The usual RX case, without the chain cursor: the chain at {@code head} is one device-writable descriptor
     * (no NEXT or INDIRECT) inside one region with room for the header and the whole frame. Writes the header
     * (num_buffers 1), the frame and the used element; false when the chain is anything else, and then nothing
     * was written: the general walk takes the chain (faults included).
     */
    private boolean writeOneDescriptor(int head, MemorySegment[] segments, long[] offsets, int[] lengths, int first, int count,
                                       int frameLength, long headerWord, int csumOffset, DirtyLog log, GuestCopies copies) {
        final MemorySegment d = GuestMemory.direct(desc);
        final long at = descBase + (long) head * DESC_SIZE;
        final long word = d.get(U64, at + DESC_LEN);
        final long length = word & 0xFFFF_FFFFL;
        final long needed = VirtioNetHeader.SIZE + (long) frameLength;
        if ((word & 0xFFFF_0000_0000L) != (long) DESC_F_WRITE << 32 || length < needed) {
            return false;
        }
        final long bufferAddr = d.get(U64, at + DESC_ADDR);
        final long host = regions.host(memory, bufferAddr, length);   // the whole buffer, as the general walk checks it
        if (host < 0) {
            return false;
        }
        final MemorySegment all = GuestMemory.direct(regions.segment());
        storeRxHeader(all, host, headerWord, csumOffset);
        final long dst = host + VirtioNetHeader.SIZE;
        final boolean defer = GuestCopies.defers(copies, count, log);   // see GuestCopies
        if (!defer) {
            copyFrame(segments, offsets, lengths, first, count, all, dst);
        }
        final int slot = usedIdx & mask;
        final int s = stagedUsed;
        if (s < stagedUsedSlot.length && log == null) {
            stagedUsedSlot[s] = slot;
            stagedUsedValue[s] = usedElement(head, (int) needed);
            stagedUsed = s + 1;
        } else {
            writeUsedNow(slot, usedElement(head, (int) needed), log, bufferAddr, needed);
        }
        usedIdx = (usedIdx + 1) & 0xFFFF;
        if (defer) {
            copies.add(segments[first], offsets[first], dst, lengths[first]);   // last: nothing after it can fail
        }
        return true;
    }

    /**
     * The virtio-net header of a frame received in one buffer (num_buffers 1) at {@code host} of {@code all} (a
     * {@link GuestMemory#direct} segment), both rings' fast paths.
     *
     * <p>When the header has a line of its own (testpmd's virtio-user puts it at the end of the mbuf's headroom,
     * the frame on the next line), each field is stored only where it differs from what the buffer holds (DPDK's
     * ASSIGN_UNLESS_EQUAL): a recycled buffer usually holds the header we wrote last time, read by the driver
     * since; a store would take that shared line back from the driver's core (one line transfer per frame), a
     * load of a shared line does not.
     *
     * <p>When the frame begins on the header's line (Linux's virtio-net and most drivers: the header right before
     * the frame), the frame's copy takes that line anyway, and the load would only add a transfer in front of it
     * (the line fetched shared, then taken back for the store), on the frame's way to the guest: the header is
     * stored as it is. bench/RESULTS.md, session 15: the ping-pong's p50 0.89 x, same rounds.
     */
    static void storeRxHeader(MemorySegment all, long host, long headerWord, int csumOffset) {
        final int tail = (csumOffset & 0xFFFF) | 1 << 16;   // csum_offset, num_buffers = 1
        // host: an address (unchecked) or an offset into a page-aligned mapping (checked): its line is the buffer's
        if ((host >>> 6) == (host + VirtioNetHeader.SIZE >>> 6)) {
            all.set(U64, host, headerWord);
            all.set(U32, host + 8, tail);
            return;
        }
        if (all.get(U64, host) != headerWord) {
            all.set(U64, host, headerWord);
        }
        if (all.get(U32, host + 8) != tail) {
            all.set(U32, host + 8, tail);
        }
    }

    /**
     * The frame's pieces copied one after the other into guest memory at {@code dst} of {@code all} (a
     * {@link GuestMemory#direct} segment), both rings' fast paths. Apart from their {@code writeOneDescriptor} to keep
     * those small enough to be inlined (325 bytecodes); small itself, inlined where it is hot (the usual frame's copy
     * is deferred to {@link GuestCopies} instead).
     */
    static void copyFrame(MemorySegment[] segments, long[] offsets, int[] lengths, int first, int count,
                                  MemorySegment all, long dst) {
        for (int i = first, end = first + count; i < end; i++) {
            final int n = lengths[i];
            GuestMemory.copyToGuest(segments[i], offsets[i], all, dst, n);
            dst += n;
        }
    }

    /**
     * The fast path's used element written at once rather than staged (the staging is full, or the dirty log is
     * on: then it is marked after it lands, with the buffer written at {@code bufferAddr}).
     */
    private void writeUsedNow(int slot, long element, DirtyLog log, long bufferAddr, long written) {
        final long usedAt = USED_RING + (long) USED_ELEM_SIZE * slot;
        GuestMemory.direct(used).set(U64, usedBase + usedAt, element);
        if (log != null) {
            log.markGuest(bufferAddr, written);
            logUsed(log, usedAt, USED_ELEM_SIZE);
        }
    }

    /** A used ring element {id, len} as one little-endian 8-byte store. */
    private static long usedElement(int id, int length) {
        return (id & 0xFFFF_FFFFL) | ((long) length << 32);
    }

    /** Forgets a frame's partial progress (also on a fault, so that GET_VRING_BASE reports the last whole frame). */
    private boolean rollback(int startAvail, int startUsed) {
        lastAvail = startAvail;
        usedIdx = startUsed;
        return false;
    }

    /** Publishes what {@link #enqueue} wrote since the last flush (once per burst) and calls the guest if asked. */
    public void flushRx() {
        if (packed) {
            packedRing.flushRx();
            return;
        }
        if (usedIdx == usedPublished || used == null || fault != QueueFault.NONE) {
            return;
        }
        try {
            publishUsed();
        } catch (RuntimeException e) {
            fail(QueueFault.MEMORY_GONE, String.valueOf(e.getMessage()));
        }
    }

    private void publishUsed() {
        final int newIdx = usedIdx;
        final int oldIdx = usedPublished;
        if (newIdx == oldIdx) {
            return;
        }
        final int n = stagedUsed;
        if (n > 0) {
            stagedUsed = 0;
            final MemorySegment u = GuestMemory.direct(used);
            final long ring = usedBase + USED_RING;
            for (int i = 0; i < n; i++) {
                u.set(U64, ring + (long) USED_ELEM_SIZE * stagedUsedSlot[i], stagedUsedValue[i]);
            }
        }
        U16_ATOMIC.setRelease(GuestMemory.direct(used), usedBase + USED_IDX, (short) newIdx);
        final DirtyLog log = dirtyLog;
        if (log != null) {
            logUsed(log, USED_IDX, 2);
        }
        usedPublished = newIdx;
        EventFd c = call;
        if (c == null) {
            return;
        }
        VarHandle.fullFence();
        if (eventIdx) {
            int usedEvent = GuestMemory.direct(avail).get(U16, availBase + usedEventOffset(size)) & 0xFFFF;
            if (!needEvent(usedEvent, newIdx, oldIdx)) {
                return;
            }
        } else if ((GuestMemory.direct(avail).get(U16, availBase + AVAIL_FLAGS) & AVAIL_F_NO_INTERRUPT) != 0) {
            return;
        }
        if (c.signal()) {
            callsSent++;
        }
    }

    @Override
    public String toString() {
        return name;
    }
}
