package io.vswitch.vhost.virtio;

import io.vswitch.protocol.VirtioNetHeader;
import io.vswitch.protocol.PackedDescriptor;
import io.vswitch.protocol.SplitRing;
import io.vswitch.protocol.EventSuppression;
import io.vswitch.sys.EventFd;
import io.vswitch.vhost.memory.DirtyLog;
import io.vswitch.vhost.memory.GuestMemory;
import io.vswitch.vhost.memory.RegionCache;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;

import static io.vswitch.protocol.PackedDescriptor.F_INDIRECT;
import static io.vswitch.protocol.PackedDescriptor.F_NEXT;
import static io.vswitch.protocol.PackedDescriptor.F_WRITE;

/**
 * The device side of one packed virtqueue (VIRTIO_F_RING_PACKED, virtio 1.2, 2.8): the data path that a
 * {@link VirtQueue} delegates to when the frontend negotiated packed rings. Same threads, same contract and
 * the same fault catalogue as the split ring ({@link QueueFault}); counters and faults are the owning
 * {@link VirtQueue}'s.
 *
 * <p>Positions. The device keeps two positions in the descriptor ring, each an offset {@code 0..size-1} and
 * a wrap counter that flips each time the offset wraps: the next descriptor to read ({@code avail}) and the
 * next slot to write a used descriptor into ({@code used}). A chain of n descriptors advances both by n, an
 * indirect descriptor by 1. GET_VRING_BASE and SET_VRING_BASE carry both ({@link PackedRingBase}).
 *
 * <p>Publishing. A burst's used descriptors are written with id and len first; their flags are stored with
 * release semantics, the first descriptor's last, so the driver sees the whole burst at once. RX used
 * descriptors are staged and written only in {@link #flushRx()} (a frame that does not fit is rolled back
 * without having touched the ring: the used slots are the very slots of descriptors that will be read again).
 * With VIRTIO_F_IN_ORDER a TX burst is returned as one used descriptor carrying the last buffer's ID, and the
 * used position skips the whole burst (2.8.20).
 *
 * <p>Validation, per {@link QueueFault}: a buffer ID not below the queue size (HEAD_OUT_OF_RANGE), a chain
 * longer than the queue (CHAIN_LOOP), a chain that runs into a descriptor the driver has not made available
 * (CHAIN_NOT_AVAILABLE), buffers or indirect tables not inside one guest memory region
 * (ADDRESS_OUT_OF_MEMORY), an indirect descriptor with NEXT, of zero length, of a length that is not a
 * multiple of 16 or longer than the queue (BAD_INDIRECT), INDIRECT inside a table (NESTED_INDIRECT), and a
 * direction that does not fit the queue (WRONG_DIRECTION). NEXT inside an indirect table is ignored: the
 * table is sequential (2.8.19).
 */
final class PackedVirtQueue {
    private final VirtQueue owner;
    private final EventSuppression driverEvent = new EventSuppression();
    private final EventSuppression deviceEvent = new EventSuppression();

    // configuration, written by the control thread while the queue is not published
    private int size;
    /**
     * The descriptor ring while configured (null otherwise): {@link GuestMemory#EVERYTHING} with the ring at host
     * address {@code ringBase}, or with {@code -Dvswitch.checkedGuestMemory=true} the ring's own checked slice
     * ({@code ringBase} 0). The ring's range was validated at set-up ({@code sliceUser}), like the split rings'.
     */
    private MemorySegment ring;
    private long ringBase;
    /** Where descriptors are translated: replaced while published when regions come and go (VirtQueue.replaceMemory). */
    private volatile GuestMemory memory;
    /** The fast paths' translation of buffer addresses (the worker's; see RegionCache). */
    private final RegionCache regions = new RegionCache();
    private boolean eventIdx;
    private boolean mergeable;
    private boolean inOrder;
    /** Guest-physical addresses of the descriptor ring and device area, for the dirty log (-1: unknown). */
    private long ringGpa = -1;
    private long deviceAreaGpa = -1;

    // data-path state, owned by the worker while published
    private int availPos;
    private int availWrap;
    private int usedPos;
    private int usedWrap;
    /** Where the used position was when we last decided whether to call the driver. */
    private int checkedPos;
    private int checkedWrap;

    // the chains the last TX burst took, in ring order (completeTx returns them)
    private int[] chainId = new int[0];
    private int[] chainDescs = new int[0];
    private int chains;

    // RX used descriptors staged until flushRx
    private int[] stagedId = new int[0];
    private int[] stagedLen = new int[0];
    private int[] stagedDescs = new int[0];
    private int staged;
    /** Descriptor slots taken by the staged entries: never more than the ring holds. */
    private int stagedSlots;

    // chain cursor (beginChain / nextDescriptor)
    private int cursorPos;
    private int cursorWrap;
    private int ringDescs;
    private boolean inIndirect;
    private MemorySegment tableSegment;
    private long tableBase;
    private int tableSize;
    private int tableCursor;
    private boolean chainDone;
    private int bufferId;
    private MemorySegment descSegment;
    private long descOffset;
    private long descAddr;
    private long descLength;
    private boolean descWrite;

    PackedVirtQueue(VirtQueue owner) {
        this.owner = owner;
    }

    /** See {@link VirtQueue#configurePacked}; returns null or why the rings are unusable. */
    String configure(GuestMemory memory, int size, long descAddr, long driverAddr, long deviceAddr,
                     boolean eventIdx, boolean mergeable, boolean inOrder, int base) {
        if (size < 1 || size > SplitRing.MAX_QUEUE_SIZE) {
            return "queue size " + size + " is not in 1.." + SplitRing.MAX_QUEUE_SIZE;
        }
        if ((descAddr & 15) != 0 || (driverAddr & 3) != 0 || (deviceAddr & 3) != 0) {
            return String.format("misaligned packed ring: descriptors 0x%x, driver area 0x%x, device area 0x%x",
                    descAddr, driverAddr, deviceAddr);
        }
        MemorySegment d = memory.sliceUser(descAddr, (long) PackedDescriptor.SIZE * size);
        MemorySegment drv = memory.sliceUser(driverAddr, EventSuppression.SIZE);
        MemorySegment dev = memory.sliceUser(deviceAddr, EventSuppression.SIZE);
        if (d == null || drv == null || dev == null) {
            return String.format("packed ring not inside guest memory: descriptors 0x%x, driver area 0x%x,"
                    + " device area 0x%x (size %d)", descAddr, driverAddr, deviceAddr, size);
        }
        if ((d.address() & 15) != 0 || (drv.address() & 3) != 0 || (dev.address() & 3) != 0) {
            // aligned in the frontend's address space but not in ours: the memory table's addresses disagree
            return String.format("packed ring misaligned in the mapping: descriptors at 0x%x", d.address());
        }
        String badBase = PackedRingBase.problem(base, size);
        if (badBase != null) {
            return badBase;
        }
        this.memory = memory;
        this.size = size;
        this.ring = GuestMemory.CHECKED ? d : GuestMemory.EVERYTHING;
        this.ringBase = GuestMemory.CHECKED ? 0 : d.address();
        this.driverEvent.wrap(drv, 0);
        this.deviceEvent.wrap(dev, 0);
        this.eventIdx = eventIdx;
        this.mergeable = mergeable;
        this.inOrder = inOrder;
        this.ringGpa = memory.userToGuest(descAddr);
        this.deviceAreaGpa = memory.userToGuest(deviceAddr);
        // both positions as the frontend gave them: descriptors between used and avail were in flight in the
        // device that stopped (never returned by us); without bits 16-31 the used position is the avail one
        this.availPos = PackedRingBase.availOffset(base);
        this.availWrap = PackedRingBase.availWrap(base);
        this.usedPos = PackedRingBase.usedOffset(base);
        this.usedWrap = PackedRingBase.usedWrap(base);
        this.checkedPos = usedPos;
        this.checkedWrap = usedWrap;
        if (chainId.length < size) {
            chainId = new int[size];
            chainDescs = new int[size];
            stagedId = new int[size];
            stagedLen = new int[size];
            stagedDescs = new int[size];
        }
        chains = 0;
        staged = 0;
        stagedSlots = 0;
        return null;
    }

    void unconfigure() {
        memory = null;
        regions.clear();
        ring = null;
        chains = 0;
        staged = 0;
        stagedSlots = 0;
    }

    /** GET_VRING_BASE: the next descriptor to read and the next used slot, with their wrap counters ({@link PackedRingBase}). */
    int lastAvailIndex() {
        return PackedRingBase.encode(availPos, availWrap, usedPos, usedWrap);
    }

    boolean isConfigured() {
        return ring != null;
    }

    // ---------------------------------------------------------------- notifications

    /**
     * Asks the driver to kick or not (virtio 1.2, 2.8.10). With EVENT_IDX a wanted kick is a descriptor event
     * (flags DESC): kick once the descriptor at our avail position is made available, the one the device reads
     * next, so a driver that keeps adding while we have not looked again does not kick again (the split ring's
     * avail_event). Not wanted: DISABLE, honoured with or without EVENT_IDX.
     */
    void setKicksWanted(boolean wanted) {
        if (ring == null || owner.isBroken()) {
            return;
        }
        try {
            if (wanted && eventIdx) {
                deviceEvent.setDescEvent(availPos, availWrap);
            } else {
                deviceEvent.setFlags(wanted ? EventSuppression.ENABLE : EventSuppression.DISABLE);
            }
            DirtyLog log = owner.dirtyLog();
            if (log != null && deviceAreaGpa >= 0) {
                log.markGuest(deviceAreaGpa, EventSuppression.SIZE);
            }
            VarHandle.fullFence();
        } catch (RuntimeException e) {
            owner.fail(QueueFault.MEMORY_GONE, e.getMessage());
        }
    }

    boolean hasAvailable() {
        if (ring == null || owner.isBroken()) {
            return false;
        }
        try {
            return PackedDescriptor.isAvailable(PackedDescriptor.flagsAcquire(GuestMemory.direct(ring), ringBase + (long) availPos * PackedDescriptor.SIZE), availWrap);
        } catch (RuntimeException e) {
            return owner.fail(QueueFault.MEMORY_GONE, e.getMessage());
        }
    }

    /**
     * After used descriptors from {@code checked} up to {@code used} were published: calls the driver unless
     * its event suppression says not to. With EVENT_IDX and flags DESC, only when the descriptor it named was
     * among those just used.
     */
    private void callIfAsked() {
        final int oldPos = checkedPos;
        final int oldWrap = checkedWrap;
        final int newPos = usedPos;
        final int newWrap = usedWrap;
        checkedPos = newPos;
        checkedWrap = newWrap;
        EventFd c = owner.call();
        if (c == null) {
            return;
        }
        VarHandle.fullFence();
        // one load for both fields: the driver writes off_wrap before flags, never seen the other way round
        final int word = driverEvent.wordAcquire();
        int flags = EventSuppression.flagsOf(word);
        if (flags == EventSuppression.DISABLE) {
            return;
        }
        if (flags == EventSuppression.DESC && eventIdx) {
            int offWrap = EventSuppression.offWrapOf(word);
            int event = EventSuppression.offset(offWrap);
            int oldLinear = oldPos;
            if (newPos <= oldPos) {
                oldLinear -= size;   // the used position wrapped since the last check
            }
            if (EventSuppression.wrapCounter(offWrap) != newWrap) {
                event -= size;       // the driver named a slot of the previous lap
            }
            if (!SplitRing.needEvent(event & 0xFFFF, newPos, oldLinear & 0xFFFF)) {
                return;
            }
        }
        // ENABLE; DESC without EVENT_IDX and the reserved value 3 are read as ENABLE: never lose a wake-up
        if (c.signal()) {
            owner.callsSent++;
        }
    }

    // ---------------------------------------------------------------- descriptor chains

    /** Starts reading the chain whose first descriptor is at ring slot {@code pos}, already seen available. */
    private void beginChain(int pos, int wrap) {
        cursorPos = pos;
        cursorWrap = wrap;
        ringDescs = 0;
        inIndirect = false;
        chainDone = false;
    }

    /** See {@link VirtQueue#replaceMemory}. */
    void replaceMemory(GuestMemory memory) {
        if (this.memory != null) {
            this.memory = memory;
        }
    }

    /** Advances to the next non-empty buffer: 1 when there is one, 0 at the chain's end, -1 on a fault. */
    private int nextDescriptor() {
        final GuestMemory memory = this.memory;   // one memory for the whole descriptor (see replaceMemory)
        while (!chainDone) {
            long addr;
            long length;
            int flags;
            if (inIndirect) {
                if (tableCursor == tableSize) {
                    chainDone = true;
                    return 0;
                }
                final long at = tableBase + (long) tableCursor * PackedDescriptor.SIZE;
                tableCursor++;
                final long word = PackedDescriptor.lenIdFlags(tableSegment, at);
                addr = PackedDescriptor.addr(tableSegment, at);
                length = word & 0xFFFF_FFFFL;
                flags = (int) (word >>> 48);
                if ((flags & F_INDIRECT) != 0) {
                    owner.fail(QueueFault.NESTED_INDIRECT, "indirect descriptor " + (tableCursor - 1) + " inside an indirect table");
                    return -1;
                }
            } else {
                if (ringDescs == size) {
                    owner.fail(QueueFault.CHAIN_LOOP, "chain of more than " + size + " descriptors from slot " + cursorPos);
                    return -1;
                }
                // the head's flags were read with acquire semantics, and the driver makes the head available
                // last: the chain's other descriptors are visible, one 8-byte load each for len, id and flags
                final long at = ringBase + (long) cursorPos * PackedDescriptor.SIZE;
                final long word = PackedDescriptor.lenIdFlags(GuestMemory.direct(ring), at);
                flags = (int) (word >>> 48);
                if (ringDescs > 0 && !PackedDescriptor.isAvailable(flags, cursorWrap)) {
                    owner.fail(QueueFault.CHAIN_NOT_AVAILABLE, "slot " + cursorPos + " (flags 0x" + Integer.toHexString(flags)
                            + ", wrap " + cursorWrap + ") continues a chain but is not available");
                    return -1;
                }
                addr = PackedDescriptor.addr(GuestMemory.direct(ring), at);
                length = word & 0xFFFF_FFFFL;
                bufferId = (int) (word >>> 32) & 0xFFFF;   // the chain's last descriptor carries the buffer ID that counts
                ringDescs++;
                if (++cursorPos == size) {
                    cursorPos = 0;
                    cursorWrap ^= 1;
                }
                if ((flags & F_NEXT) == 0) {
                    chainDone = true;
                    if (bufferId >= size) {
                        owner.fail(QueueFault.HEAD_OUT_OF_RANGE, "buffer id " + bufferId + " >= queue size " + size);
                        return -1;
                    }
                }
                if ((flags & F_INDIRECT) != 0) {
                    if ((flags & F_NEXT) != 0 || length == 0 || length % PackedDescriptor.SIZE != 0
                            || length / PackedDescriptor.SIZE > size) {
                        owner.fail(QueueFault.BAD_INDIRECT, "indirect table of " + length + " bytes, flags 0x" + Integer.toHexString(flags));
                        return -1;
                    }
                    int region = memory.findGuest(addr, length);
                    if (region < 0) {
                        owner.fail(QueueFault.ADDRESS_OUT_OF_MEMORY, String.format("indirect table at 0x%x (+%d)", addr, length));
                        return -1;
                    }
                    tableSegment = memory.dataSegment(region);
                    tableBase = memory.hostAddress(region, addr);
                    tableSize = (int) (length / PackedDescriptor.SIZE);
                    tableCursor = 0;
                    inIndirect = true;
                    chainDone = false;
                    continue;
                }
            }
            if (length == 0) {
                continue;
            }
            int region = memory.findGuest(addr, length);
            if (region < 0) {
                owner.fail(QueueFault.ADDRESS_OUT_OF_MEMORY, String.format("buffer at 0x%x (+%d)", addr, length));
                return -1;
            }
            descSegment = memory.dataSegment(region);
            descOffset = memory.hostAddress(region, addr);
            descAddr = addr;
            descLength = length;
            descWrite = (flags & F_WRITE) != 0;
            return 1;
        }
        return 0;
    }

    // ---------------------------------------------------------------- guest TX: dequeue

    int dequeueBurst(PacketBatch batch) {
        batch.clear();
        chains = 0;
        if (ring == null || owner.isBroken()) {
            return 0;
        }
        try {
            int pos = availPos;
            int wrap = availWrap;
            final int capacity = batch.capacity();
            int slots = 0;
            while (batch.count() + batch.dropped < capacity) {
                int flags = PackedDescriptor.flagsAcquire(GuestMemory.direct(ring), ringBase + (long) pos * PackedDescriptor.SIZE);
                if (!PackedDescriptor.isAvailable(flags, wrap)) {
                    break;
                }
                if ((flags & (F_NEXT | F_INDIRECT | F_WRITE)) == 0 && slots < size && readOneDescriptor(pos, batch)) {
                    slots++;
                    if (++pos == size) {
                        pos = 0;
                        wrap ^= 1;
                    }
                    continue;
                }
                beginChain(pos, wrap);
                if (!readTxChain(batch)) {
                    batch.clear();
                    chains = 0;
                    return 0;
                }
                slots += ringDescs;
                if (slots > size) {
                    // only a driver that rewrote descriptors we hold gets here
                    owner.fail(QueueFault.AVAIL_INDEX_JUMP, "more than " + size + " descriptors made available without being returned");
                    batch.clear();
                    chains = 0;
                    return 0;
                }
                chainId[chains] = bufferId;
                chainDescs[chains] = ringDescs;
                chains++;
                pos = cursorPos;
                wrap = cursorWrap;
            }
            availPos = pos;
            availWrap = wrap;
            return batch.count();
        } catch (RuntimeException e) {
            batch.clear();
            chains = 0;
            owner.fail(QueueFault.MEMORY_GONE, String.valueOf(e.getMessage()));
            return 0;
        }
    }

    /**
     * The usual TX chain, without the chain cursor: the one descriptor at {@code pos} (already seen available,
     * without NEXT, INDIRECT or WRITE) holds the header and a whole frame inside one region. False when it does
     * not, and then nothing was recorded: the general walk reads it again and judges it.
     */
    private boolean readOneDescriptor(int pos, PacketBatch batch) {
        final long at = ringBase + (long) pos * PackedDescriptor.SIZE;
        final long word = PackedDescriptor.lenIdFlags(GuestMemory.direct(ring), at);
        final long length = word & 0xFFFF_FFFFL;
        final int id = (int) (word >>> 32) & 0xFFFF;
        if (id >= size || length <= VirtioNetHeader.SIZE || length > VirtQueue.MAX_FRAME + VirtioNetHeader.SIZE) {
            return false;
        }
        final long addr = PackedDescriptor.addr(GuestMemory.direct(ring), at);
        final long host = regions.host(memory, addr, length);
        if (host < 0) {
            return false;
        }
        batch.addGuestFrame(id, GuestMemory.direct(regions.segment()), host, length);
        chainId[chains] = id;
        chainDescs[chains] = 1;
        chains++;
        return true;
    }

    private boolean readTxChain(PacketBatch batch) {
        final int first = batch.pieces;
        int pieces = 0;
        long total = 0;
        boolean drop = false;
        int r;
        while ((r = nextDescriptor()) > 0) {
            if (descWrite) {
                return owner.fail(QueueFault.WRONG_DIRECTION, "device-writable descriptor in a TX chain (slot " + cursorPos + ")");
            }
            long start = 0;
            if (total < VirtioNetHeader.SIZE) {
                start = Math.min(descLength, VirtioNetHeader.SIZE - total);
                batch.captureHeader(batch.count(), (int) total, descSegment, descOffset, (int) start);   // for the offload checks
            }
            total += descLength;
            if (drop || start == descLength) {
                continue;
            }
            if (total > VirtQueue.MAX_FRAME + VirtioNetHeader.SIZE) {
                owner.framesTooLarge++;
                drop = true;
                continue;
            }
            if (pieces == PacketBatch.MAX_PIECES_PER_FRAME) {
                owner.framesTooManyPieces++;
                drop = true;
                continue;
            }
            int p = first + pieces++;
            batch.pieceSegment[p] = descSegment;
            batch.pieceOffset[p] = descOffset + start;
            batch.pieceLength[p] = (int) (descLength - start);
        }
        if (r < 0) {
            return false;
        }
        if (!drop && total <= VirtioNetHeader.SIZE) {
            owner.framesTooShort++;
            drop = true;
        }
        if (drop) {
            batch.droppedHead[batch.dropped++] = bufferId;
        } else {
            batch.pieces = first + pieces;
            batch.commitFrame(bufferId, (int) (total - VirtioNetHeader.SIZE), first, pieces);
        }
        return true;
    }

    /** Returns every chain of the last burst, in ring order (with IN_ORDER as one used descriptor), and calls if asked. */
    void completeTx() {
        final int n = chains;
        if (n == 0 || ring == null || owner.isBroken()) {
            return;
        }
        chains = 0;
        try {
            final int firstPos = usedPos;
            final int firstWrap = usedWrap;
            int pos = firstPos;
            int wrap = firstWrap;
            final MemorySegment r = GuestMemory.direct(ring);
            final DirtyLog log = owner.dirtyLog();
            if (inOrder) {
                int descs = 0;
                for (int i = 0; i < n; i++) {
                    descs += chainDescs[i];
                }
                pos += descs;
                while (pos >= size) {
                    pos -= size;
                    wrap ^= 1;
                }
                PackedDescriptor.publishUsed(r, ringBase + (long) firstPos * PackedDescriptor.SIZE,
                        PackedDescriptor.usedWord(chainId[n - 1], 0, PackedDescriptor.usedFlags(firstWrap)));
                if (log != null) {
                    logRing(log, firstPos, 1);
                }
            } else {
                for (int i = 0; i < n; i++) {
                    if (i > 0) {
                        PackedDescriptor.publishUsed(r, ringBase + (long) pos * PackedDescriptor.SIZE,
                                PackedDescriptor.usedWord(chainId[i], 0, PackedDescriptor.usedFlags(wrap)));
                    }
                    if (log != null) {
                        logRing(log, pos, 1);
                    }
                    pos += chainDescs[i];
                    if (pos >= size) {
                        pos -= size;
                        wrap ^= 1;
                    }
                }
                // the first one last: the driver sees the whole burst at once
                PackedDescriptor.publishUsed(r, ringBase + (long) firstPos * PackedDescriptor.SIZE,
                        PackedDescriptor.usedWord(chainId[0], 0, PackedDescriptor.usedFlags(firstWrap)));
            }
            usedPos = pos;
            usedWrap = wrap;
            callIfAsked();
        } catch (RuntimeException e) {
            owner.fail(QueueFault.MEMORY_GONE, String.valueOf(e.getMessage()));
        }
    }

    private void logRing(DirtyLog log, int pos, int descriptors) {
        if (ringGpa >= 0) {
            log.markGuest(ringGpa + (long) pos * PackedDescriptor.SIZE, (long) descriptors * PackedDescriptor.SIZE);
        }
    }

    // ---------------------------------------------------------------- guest RX: enqueue

    /**
     * As {@link VirtQueue#enqueue(MemorySegment[], long[], int[], int, int, int)}, on the packed ring. Small on purpose
     * (the JIT inlines it into its caller): the usual descriptor, one device-writable buffer with room for the
     * whole frame, is taken by {@link #writeOneDescriptor}; anything else (a chain, an indirect table, a buffer too
     * small, no room, a fault) by {@link #enqueueChain}, which reads the descriptor again and judges it.
     */
    boolean enqueue(MemorySegment[] segments, long[] offsets, int[] lengths, int first, int count, int frameLength,
                    MemorySegment headerStage, long headerWord, int csumOffset, GuestCopies copies) {
        if (ring == null || owner.isBroken()) {
            return false;
        }
        try {
            final int flags = PackedDescriptor.flagsAcquire(GuestMemory.direct(ring), ringBase + (long) availPos * PackedDescriptor.SIZE);
            if (PackedDescriptor.isAvailable(flags, availWrap) && (flags & (F_NEXT | F_INDIRECT | F_WRITE)) == F_WRITE
                    && writeOneDescriptor(segments, offsets, lengths, first, count, frameLength, headerWord, csumOffset, copies)) {
                return true;
            }
        } catch (RuntimeException e) {
            // nothing was written to the ring or to our state (writeOneDescriptor stages last; a deferred copy is
            // recorded after that, and recording cannot fail)
            if (!PacketBatch.readable(segments, offsets, lengths, first, count)) {
                throw e;
            }
            return owner.fail(QueueFault.MEMORY_GONE, String.valueOf(e.getMessage()));
        }
        return enqueueChain(segments, offsets, lengths, first, count, frameLength, headerStage, headerWord, csumOffset);
    }

    /** The general walk of {@link #enqueue}: chains, indirect tables, frames over several buffers, and every fault. */
    private boolean enqueueChain(MemorySegment[] segments, long[] offsets, int[] lengths, int first, int count, int frameLength,
                                 MemorySegment headerStage, long headerWord, int csumOffset) {
        final int startPos = availPos;
        final int startWrap = availWrap;
        final int startStaged = staged;
        final int startSlots = stagedSlots;
        try {
            headerStage.set(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, 0, headerWord);   // offload fields, or zero
            headerStage.set(java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED, 8, csumOffset & 0xFFFF);
            int piece = -1;
            MemorySegment srcSegment = headerStage;
            long srcOffset = 0;
            long srcLeft = VirtioNetHeader.SIZE;
            long remaining = VirtioNetHeader.SIZE + (long) frameLength;
            MemorySegment numBuffersSegment = null;
            long numBuffersOffset = 0;
            int buffers = 0;
            final DirtyLog log = owner.dirtyLog();
            while (remaining > 0) {
                int flags = PackedDescriptor.flagsAcquire(GuestMemory.direct(ring), ringBase + (long) availPos * PackedDescriptor.SIZE);
                if (!PackedDescriptor.isAvailable(flags, availWrap)) {
                    owner.rxNoRoom++;
                    owner.refusal = VirtQueue.REFUSED_NO_ROOM;
                    return rollback(startPos, startWrap, startStaged, startSlots);
                }
                beginChain(availPos, availWrap);
                long written = 0;
                int r;
                while (remaining > 0 && (r = nextDescriptor()) != 0) {
                    if (r < 0) {
                        return rollback(startPos, startWrap, startStaged, startSlots);
                    }
                    if (!descWrite) {
                        owner.fail(QueueFault.WRONG_DIRECTION, "device-readable descriptor in an RX chain (slot " + availPos + ")");
                        return rollback(startPos, startWrap, startStaged, startSlots);
                    }
                    long dstOffset = descOffset;
                    long room = descLength;
                    final long writtenBefore = written;
                    if (piece < 0 && srcOffset == 0 && room >= VirtioNetHeader.SIZE) {
                        final MemorySegment d = descSegment;
                        d.set(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, dstOffset, headerWord);
                        d.set(java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED, dstOffset + 8, csumOffset & 0xFFFF);
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
                            numBuffersSegment = descSegment;
                            numBuffersOffset = dstOffset + VirtioNetHeader.NUM_BUFFERS - srcOffset;
                        }
                        GuestMemory.copyToGuest(srcSegment, srcOffset, descSegment, dstOffset, chunk);
                        srcOffset += chunk;
                        srcLeft -= chunk;
                        dstOffset += chunk;
                        room -= chunk;
                        remaining -= chunk;
                        written += chunk;
                    }
                    if (log != null) {
                        log.markGuest(descAddr, written - writtenBefore);
                    }
                }
                // the chain may hold more descriptors than the frame needed: they are returned with it
                while (!chainDone) {
                    int more = nextDescriptor();
                    if (more < 0) {
                        return rollback(startPos, startWrap, startStaged, startSlots);
                    }
                    if (more > 0 && !descWrite) {
                        owner.fail(QueueFault.WRONG_DIRECTION, "device-readable descriptor in an RX chain (slot " + availPos + ")");
                        return rollback(startPos, startWrap, startStaged, startSlots);
                    }
                }
                stagedSlots += ringDescs;
                if (stagedSlots > size) {
                    owner.fail(QueueFault.AVAIL_INDEX_JUMP, "more than " + size + " descriptors made available without being returned");
                    return rollback(startPos, startWrap, startStaged, startSlots);
                }
                stagedId[staged] = bufferId;
                stagedLen[staged] = (int) written;
                stagedDescs[staged] = ringDescs;
                staged++;
                availPos = cursorPos;
                availWrap = cursorWrap;
                buffers++;
                if (remaining > 0 && !mergeable) {
                    owner.rxBufferTooSmall++;
                owner.refusal = VirtQueue.REFUSED_TOO_SMALL;
                    return rollback(startPos, startWrap, startStaged, startSlots);
                }
            }
            if (numBuffersSegment != null) {
                numBuffersSegment.set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, numBuffersOffset, (short) buffers);
            } else {
                owner.rxBufferTooSmall++;
                owner.refusal = VirtQueue.REFUSED_TOO_SMALL;
                return rollback(startPos, startWrap, startStaged, startSlots);
            }
            return true;
        } catch (RuntimeException e) {
            rollback(startPos, startWrap, startStaged, startSlots);
            if (!PacketBatch.readable(segments, offsets, lengths, first, count)) {
                throw e;
            }
            return owner.fail(QueueFault.MEMORY_GONE, String.valueOf(e.getMessage()));
        }
    }

    /**
     * The usual RX case, without the chain cursor: the descriptor at the avail position (already seen available,
     * WRITE without NEXT or INDIRECT) lies inside one region and has room for the header and the whole frame.
     * Writes the header (num_buffers 1) and the frame and stages the used descriptor; false when the descriptor
     * is anything else, and then nothing was written: the general walk takes it (faults included).
     */
    private boolean writeOneDescriptor(MemorySegment[] segments, long[] offsets, int[] lengths, int first, int count,
                                       int frameLength, long headerWord, int csumOffset, GuestCopies copies) {
        if (stagedSlots >= size) {
            return false;   // the general walk says why (a driver that rewrote descriptors we hold)
        }
        final long at = ringBase + (long) availPos * PackedDescriptor.SIZE;
        final long word = PackedDescriptor.lenIdFlags(GuestMemory.direct(ring), at);
        final long length = word & 0xFFFF_FFFFL;
        final int id = (int) (word >>> 32) & 0xFFFF;
        final long needed = VirtioNetHeader.SIZE + (long) frameLength;
        if (id >= size || length < needed) {
            return false;
        }
        final long addr = PackedDescriptor.addr(GuestMemory.direct(ring), at);
        final long host = regions.host(memory, addr, length);   // the whole buffer, as the general walk checks it
        if (host < 0) {
            return false;
        }
        // the header store and the copy are VirtQueue's small static helpers: this method must stay under C2's
        // 325 bytecodes for hot callees, or every frame pays a call (bench/RESULTS.md, sessions 7 and 9)
        final MemorySegment all = GuestMemory.direct(regions.segment());
        VirtQueue.storeRxHeader(all, host, headerWord, csumOffset);   // only where it differs (see there)
        final long dst = host + VirtioNetHeader.SIZE;
        final DirtyLog log = owner.dirtyLog();
        final boolean defer = GuestCopies.defers(copies, count, log);   // see GuestCopies
        if (!defer) {
            VirtQueue.copyFrame(segments, offsets, lengths, first, count, all, dst);
            if (log != null) {
                log.markGuest(addr, needed);
            }
        }
        stageOne(id, (int) needed);
        if (defer) {
            copies.add(segments[first], offsets[first], dst, lengths[first]);   // last: nothing after it can fail
        }
        return true;
    }

    /** Stages the used descriptor of a one-descriptor buffer just written and moves the avail position past it. */
    private void stageOne(int id, int length) {
        final int n = staged;
        stagedId[n] = id;
        stagedLen[n] = length;
        stagedDescs[n] = 1;
        staged = n + 1;
        stagedSlots++;
        if (++availPos == size) {
            availPos = 0;
            availWrap ^= 1;
        }
    }

    private boolean rollback(int pos, int wrap, int stagedCount, int slots) {
        availPos = pos;
        availWrap = wrap;
        staged = stagedCount;
        stagedSlots = slots;
        return false;
    }

    /** Writes the used descriptors staged since the last flush (the first one's flags last) and calls if asked. */
    void flushRx() {
        final int n = staged;
        if (n == 0 || ring == null || owner.isBroken()) {
            return;
        }
        staged = 0;
        stagedSlots = 0;
        try {
            final int firstPos = usedPos;
            final int firstWrap = usedWrap;
            int pos = firstPos;
            int wrap = firstWrap;
            final MemorySegment r = GuestMemory.direct(ring);
            final DirtyLog log = owner.dirtyLog();
            for (int i = 1; i < n; i++) {
                pos += stagedDescs[i - 1];
                if (pos >= size) {
                    pos -= size;
                    wrap ^= 1;
                }
                PackedDescriptor.publishUsed(r, ringBase + (long) pos * PackedDescriptor.SIZE,
                        PackedDescriptor.usedWord(stagedId[i], stagedLen[i], PackedDescriptor.usedFlags(wrap)));
                if (log != null) {
                    logRing(log, pos, 1);
                }
            }
            pos += stagedDescs[n - 1];
            if (pos >= size) {
                pos -= size;
                wrap ^= 1;
            }
            // the first one last: the driver sees the whole burst at once
            PackedDescriptor.publishUsed(r, ringBase + (long) firstPos * PackedDescriptor.SIZE,
                    PackedDescriptor.usedWord(stagedId[0], stagedLen[0], PackedDescriptor.usedFlags(firstWrap)));
            if (log != null) {
                logRing(log, firstPos, 1);
            }
            usedPos = pos;
            usedWrap = wrap;
            callIfAsked();
        } catch (RuntimeException e) {
            owner.fail(QueueFault.MEMORY_GONE, String.valueOf(e.getMessage()));
        }
    }
}
