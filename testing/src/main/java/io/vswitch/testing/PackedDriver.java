package io.vswitch.testing;

import io.vswitch.protocol.EventSuppression;
import io.vswitch.protocol.PackedDescriptor;
import io.vswitch.protocol.VirtioNetHeader;

import java.io.ByteArrayOutputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static io.vswitch.testing.TestFrontend.GUEST_PHYS_BASE;
import static io.vswitch.testing.TestFrontend.HEADER;
import static io.vswitch.testing.TestFrontend.RX;
import static io.vswitch.testing.TestFrontend.TX;
import static io.vswitch.testing.TestFrontend.USER_BASE;
import static io.vswitch.protocol.PackedDescriptor.F_INDIRECT;
import static io.vswitch.protocol.PackedDescriptor.F_NEXT;
import static io.vswitch.protocol.PackedDescriptor.F_WRITE;

/**
 * The driver side of packed virtqueues for tests, over the rings of a {@link TestFrontend} that negotiated
 * VIRTIO_F_RING_PACKED: what Linux's or DPDK's packed-ring driver does, in plain Java. The frontend's ring
 * areas are used as the descriptor ring ("desc"), the driver event suppression area ("avail") and the device
 * event suppression area ("used").
 *
 * <p>Buffer IDs come from a pool of 0..size-1; a chain carries its ID in every descriptor. Used descriptors
 * are read in ring order; with IN_ORDER one used descriptor may stand for every buffer up to the one it names.
 * Raw methods ({@link #writeDescriptor}, {@link #availFlags}) let fault tests break every rule.
 */
public final class PackedDriver {
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED;

    /** A buffer the driver made available: its ID, how many ring slots it took, and the buffers it points at. */
    private record Outstanding(int id, int slots, List<long[]> buffers) {
    }

    private final class Ring {
        final int q;
        final int size;
        final long descOffset;
        final long driverOffset;
        final long deviceOffset;
        int nextAvail;
        int availWrap = 1;
        int nextUsed;
        int usedWrap = 1;
        int freeSlots;
        final ArrayDeque<Integer> freeIds = new ArrayDeque<>();
        final Map<Integer, Outstanding> byId = new HashMap<>();
        final ArrayDeque<Integer> order = new ArrayDeque<>();

        Ring(int q) {
            this.q = q;
            this.size = fe.queueSize(q);
            this.descOffset = fe.descUserAddr(q) - USER_BASE;
            this.driverOffset = fe.availUserAddr(q) - USER_BASE;
            this.deviceOffset = fe.usedUserAddr(q) - USER_BASE;
            reset();
        }

        void reset() {
            nextAvail = 0;
            availWrap = 1;
            nextUsed = 0;
            usedWrap = 1;
            freeSlots = size;
            freeIds.clear();
            for (int i = 0; i < size; i++) {
                freeIds.add(i);
            }
            byId.clear();
            order.clear();
        }
    }

    private final TestFrontend fe;
    private final MemorySegment ram;
    private final Ring[] rings = new Ring[2];
    private final PackedDescriptor desc = new PackedDescriptor();
    private final EventSuppression event = new EventSuppression();

    public PackedDriver(TestFrontend fe) {
        if (!fe.options().packed) {
            throw new IllegalArgumentException("the frontend did not negotiate packed rings");
        }
        this.fe = fe;
        this.ram = fe.ram();
        rings[RX] = new Ring(RX);
        rings[TX] = new Ring(TX);
    }

    /** After {@link TestFrontend#resetRing}: the driver starts the ring again from slot 0, wrap counter 1. */
    public int resetRing(int q) throws java.io.IOException {
        int base = fe.resetRing(q);
        rings[q].reset();
        return base;
    }

    // ================================================================ raw

    /** The slot the next descriptor goes into, and the wrap counter it must be made available with. */
    public int nextSlot(int q) {
        return rings[q].nextAvail;
    }

    public int availWrap(int q) {
        return rings[q].availWrap;
    }

    /** Flags that make a descriptor available in the driver's current lap of queue q, plus {@code other}. */
    public int availFlags(int q, int other) {
        return PackedDescriptor.availFlags(rings[q].availWrap, other);
    }

    /** Writes the descriptor at {@code slot} of queue q (flags last, release). */
    public void writeDescriptor(int q, int slot, long addr, int length, int id, int flags) {
        desc.wrap(ram, rings[q].descOffset + (long) slot * PackedDescriptor.SIZE).write(addr, length, id, flags);
    }

    /** Writes a descriptor of an indirect table at guest-physical {@code table}. */
    public void writeIndirectDescriptor(long table, int i, long addr, int length, int flags) {
        desc.wrap(ram, table - GUEST_PHYS_BASE + (long) i * PackedDescriptor.SIZE).write(addr, length, 0, flags);
    }

    /**
     * Makes {@code n} raw descriptors available in the next slots: {@code addrs[i], lengths[i], flags[i]} (the
     * AVAIL/USED bits are added), all with buffer ID {@code id}; the first one's flags are written last. Kicks
     * if the device asks. The driver's bookkeeping does not know them (a fault test's queue is reset after).
     */
    public void publishRaw(int q, int id, long[] addrs, int[] lengths, int[] flags) {
        Ring r = rings[q];
        int head = r.nextAvail;
        int headWrap = r.availWrap;
        int slot = head;
        int wrap = headWrap;
        for (int i = 0; i < addrs.length; i++) {
            if (i > 0) {
                writeDescriptor(q, slot, addrs[i], lengths[i], id, PackedDescriptor.availFlags(wrap, flags[i]));
            }
            if (++slot == r.size) {
                slot = 0;
                wrap ^= 1;
            }
        }
        writeDescriptor(q, head, addrs[0], lengths[0], id, PackedDescriptor.availFlags(headWrap, flags[0]));
        r.nextAvail = slot;
        r.availWrap = wrap;
        kickIfWanted(r, addrs.length);
    }

    // ================================================================ notifications

    /**
     * After {@code added} descriptors were made available: kicks unless the device's event suppression says not
     * to. With EVENT_IDX and flags DESC, only when the descriptor it named is among those just made available,
     * as Linux's virtqueue_kick_prepare_packed decides (the named slot is taken as one of the previous lap when
     * its wrap counter is not the driver's).
     */
    private void kickIfWanted(Ring r, int added) {
        VarHandle.fullFence();
        int word = event.wrap(ram, r.deviceOffset).wordAcquire();
        int flags = EventSuppression.flagsOf(word);
        boolean kick;
        if (flags == EventSuppression.DESC && fe.options().eventIdx) {
            int offWrap = EventSuppression.offWrapOf(word);
            int eventIdx = EventSuppression.offset(offWrap);
            if (EventSuppression.wrapCounter(offWrap) != r.availWrap) {
                eventIdx -= r.size;
            }
            int newIdx = r.nextAvail;
            int oldIdx = newIdx - added;
            kick = io.vswitch.protocol.SplitRing.needEvent(eventIdx & 0xFFFF, newIdx, oldIdx & 0xFFFF);
        } else {
            kick = flags != EventSuppression.DISABLE;
        }
        if (kick && fe.kickFd(r.q) != null) {
            kicks[r.q]++;
            fe.kickFd(r.q).signal();
        }
    }

    private final long[] kicks = new long[2];

    /** Kicks this driver sent on queue q (each one signal of the kick eventfd). */
    public long kicksSent(int q) {
        return kicks[q];
    }

    /** The device's event suppression flags for queue q (ENABLE 0: kick me, DISABLE 1: don't, DESC 2: at off_wrap). */
    public int deviceEventFlags(int q) {
        return event.wrap(ram, rings[q].deviceOffset).flags();
    }

    /** The device's event suppression off_wrap for queue q: the descriptor (bits 0-14) and lap (bit 15) it wants a kick for. */
    public int deviceEventOffWrap(int q) {
        return event.wrap(ram, rings[q].deviceOffset).offWrap();
    }

    /** The slot the driver reads the next used descriptor from, and its wrap counter. */
    public int nextUsedSlot(int q) {
        return rings[q].nextUsed;
    }

    public int usedWrap(int q) {
        return rings[q].usedWrap;
    }

    /** Sets the driver's event suppression for queue q: when the device should call. */
    public void setDriverEvent(int q, int flags, int offset, int wrap) {
        EventSuppression e = event.wrap(ram, rings[q].driverOffset);
        e.setOffWrap(offset, wrap);
        e.setFlags(flags);
        VarHandle.fullFence();
    }

    // ================================================================ guest TX

    public int transmit(byte[] frame) {
        return transmit(frame, 1, false);
    }

    /** Transmits {@code frame} behind a zero header, split over {@code descriptors} buffers, chained or indirect. Returns the buffer ID. */
    public int transmit(byte[] frame, int descriptors, boolean indirect) {
        byte[] all = new byte[HEADER + frame.length];
        System.arraycopy(frame, 0, all, HEADER, frame.length);
        byte[][] parts = new byte[descriptors][];
        int at = 0;
        for (int i = 0; i < descriptors; i++) {
            int end = (int) ((long) all.length * (i + 1) / descriptors);
            parts[i] = Arrays.copyOfRange(all, at, end);
            at = end;
        }
        List<long[]> buffers = new ArrayList<>();
        for (byte[] part : parts) {
            long gpa = fe.allocate(Math.max(1, part.length));
            fe.write(gpa, part);
            buffers.add(new long[] {gpa, part.length});
        }
        if (indirect) {
            long table = fe.allocate((long) PackedDescriptor.SIZE * parts.length);
            for (int i = 0; i < parts.length; i++) {
                writeIndirectDescriptor(table, i, buffers.get(i)[0], parts[i].length, 0);
            }
            return publish(TX, buffers, new long[] {table}, new int[] {PackedDescriptor.SIZE * parts.length}, new int[] {F_INDIRECT});
        }
        long[] addrs = new long[parts.length];
        int[] lengths = new int[parts.length];
        int[] flags = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            addrs[i] = buffers.get(i)[0];
            lengths[i] = parts[i].length;
            flags[i] = i < parts.length - 1 ? F_NEXT : 0;
        }
        return publish(TX, buffers, addrs, lengths, flags);
    }

    private int publish(int q, List<long[]> buffers, long[] addrs, int[] lengths, int[] flags) {
        Ring r = rings[q];
        if (r.freeSlots < addrs.length || r.freeIds.isEmpty()) {
            throw new IllegalStateException("queue " + q + " is full");
        }
        int id = r.freeIds.poll();
        r.freeSlots -= addrs.length;
        r.byId.put(id, new Outstanding(id, addrs.length, buffers));
        r.order.add(id);
        publishRaw(q, id, addrs, lengths, flags);
        return id;
    }

    /** The used descriptors the device wrote since the last call, one entry per buffer returned. */
    public List<TestFrontend.Used> txCompleted() {
        List<TestFrontend.Used> out = new ArrayList<>();
        for (TestFrontend.Used u; (u = takeUsed(rings[TX], out)) != null; ) {
            // takeUsed added the buffers
        }
        return out;
    }

    /** How many used descriptors (not buffers) the device wrote for queue q since the driver last looked: counts IN_ORDER batching. */
    public int usedDescriptorsSeen(int q) {
        return usedDescriptors[q];
    }

    private final int[] usedDescriptors = new int[2];

    /**
     * Reads the used descriptor at the driver's used slot, if the device wrote one; appends to {@code out} each
     * buffer it returns (with IN_ORDER, every outstanding buffer up to the one it names) and returns it, or null.
     */
    private TestFrontend.Used takeUsed(Ring r, List<TestFrontend.Used> out) {
        PackedDescriptor d = desc.wrap(ram, r.descOffset + (long) r.nextUsed * PackedDescriptor.SIZE);
        int flags = d.flagsAcquire();
        if (!PackedDescriptor.isUsed(flags, r.usedWrap)) {
            return null;
        }
        int id = d.id();
        int length = (int) d.len();
        usedDescriptors[r.q]++;
        if (!r.byId.containsKey(id)) {
            throw new AssertionError("queue " + r.q + ": device returned buffer id " + id + ", which is not outstanding");
        }
        while (true) {
            int next = fe.options().inOrder ? r.order.peek() : id;
            Outstanding o = r.byId.remove(next);
            r.order.remove(next);
            r.freeIds.add(next);
            r.freeSlots += o.slots();
            r.nextUsed += o.slots();
            if (r.nextUsed >= r.size) {
                r.nextUsed -= r.size;
                r.usedWrap ^= 1;
            }
            TestFrontend.Used u = new TestFrontend.Used(next, next == id ? length : 0);
            out.add(u);
            if (next == id) {
                return u;
            }
        }
    }

    /** Buffers made available on queue q and not yet returned. */
    public int outstanding(int q) {
        return rings[q].byId.size();
    }

    // ================================================================ guest RX

    public void postRxBuffers(int count, int size) {
        for (int i = 0; i < count; i++) {
            postRxChain(size);
        }
    }

    /** One chain of device-writable buffers of these sizes; returns its buffer ID. */
    public int postRxChain(int... sizes) {
        List<long[]> buffers = new ArrayList<>();
        long[] addrs = new long[sizes.length];
        int[] flags = new int[sizes.length];
        for (int i = 0; i < sizes.length; i++) {
            long gpa = fe.allocate(sizes[i]);
            ram.asSlice(gpa - GUEST_PHYS_BASE, sizes[i]).fill((byte) 0xEE);
            buffers.add(new long[] {gpa, sizes[i]});
            addrs[i] = gpa;
            flags[i] = F_WRITE | (i < sizes.length - 1 ? F_NEXT : 0);
        }
        return publish(RX, buffers, addrs, sizes.clone(), flags);
    }

    /** Frames the device delivered since the last call, reassembled by num_buffers. */
    public List<TestFrontend.RxFrame> receive() {
        Ring r = rings[RX];
        List<TestFrontend.RxFrame> frames = new ArrayList<>();
        while (true) {
            byte[] first = takeRxBytes(r);
            if (first == null) {
                return frames;
            }
            if (first.length < HEADER) {
                throw new AssertionError("used length " + first.length + " is shorter than a virtio-net header");
            }
            byte[] header = Arrays.copyOf(first, HEADER);
            int numBuffers = ByteBuffer.wrap(header).order(ByteOrder.LITTLE_ENDIAN).getShort(VirtioNetHeader.NUM_BUFFERS) & 0xFFFF;
            ByteArrayOutputStream data = new ByteArrayOutputStream();
            data.write(first, HEADER, first.length - HEADER);
            for (int i = 1; i < numBuffers; i++) {
                byte[] more = takeRxBytes(r);
                if (more == null) {
                    throw new AssertionError("frame spans " + numBuffers + " buffers but only " + i + " were used");
                }
                data.write(more, 0, more.length);
            }
            frames.add(new TestFrontend.RxFrame(data.toByteArray(), numBuffers, header));
        }
    }

    private byte[] takeRxBytes(Ring r) {
        PackedDescriptor d = desc.wrap(ram, r.descOffset + (long) r.nextUsed * PackedDescriptor.SIZE);
        if (!PackedDescriptor.isUsed(d.flagsAcquire(), r.usedWrap)) {
            return null;
        }
        int id = d.id();
        Outstanding o = r.byId.get(id);
        if (o == null) {
            throw new AssertionError("device used RX buffer id " + id + ", which is not outstanding");
        }
        long capacity = o.buffers().stream().mapToLong(b -> b[1]).sum();
        long length = d.len();
        if (length > capacity) {
            throw new AssertionError("used length " + length + " exceeds the chain's " + capacity + " bytes");
        }
        List<TestFrontend.Used> ignored = new ArrayList<>();
        takeUsed(r, ignored);
        byte[] out = new byte[(int) length];
        int at = 0;
        for (long[] b : o.buffers()) {
            int n = (int) Math.min(b[1], out.length - at);
            MemorySegment.copy(ram, ValueLayout.JAVA_BYTE, b[0] - GUEST_PHYS_BASE, out, at, n);
            at += n;
        }
        return out;
    }

    /** Reads the 16-bit flags of the descriptor in {@code slot} of queue q. */
    public int flagsAt(int q, int slot) {
        return ram.get(U16, rings[q].descOffset + (long) slot * PackedDescriptor.SIZE + PackedDescriptor.FLAGS) & 0xFFFF;
    }
}
