package io.vswitch.bench;

import io.vswitch.protocol.PackedDescriptor;
import io.vswitch.protocol.VirtioNetHeader;

import java.lang.foreign.MemorySegment;

/**
 * The driver side of one packed virtqueue for benchmarks, as cheap as {@link QueueDriver}: slot {@code i}
 * always holds buffer {@code i} (buffer ID {@code i}), laid out once; making {@code n} buffers available is
 * one 8-byte release store per slot (len, id and flags, which the device's used descriptor overwrote). The
 * driver never reads used descriptors in the measured loop; {@link #deviceCaughtUp} checks at the end.
 */
public final class PackedQueueDriver {
    private final GuestRam guest;
    private final MemorySegment ram;
    public final int size;
    public final long descOffset;
    public final long driverOffset;
    public final long deviceOffset;
    private final int[] length;
    private final int[] flags;
    private int next;
    private int wrap = 1;
    /** Where the last {@link #post} started (slot, wrap counter): with IN_ORDER the device's one used descriptor goes there. */
    private int lastStart;
    private int lastStartWrap = 1;

    public PackedQueueDriver(GuestRam guest, int size) {
        this.guest = guest;
        this.ram = guest.ram;
        this.size = size;
        this.descOffset = guest.alloc((long) PackedDescriptor.SIZE * size, 4096);
        this.driverOffset = guest.alloc(4, 4096);
        this.deviceOffset = guest.alloc(4, 4096);
        this.length = new int[size];
        this.flags = new int[size];
    }

    public long descAddr() {
        return guest.uva(descOffset);
    }

    public long driverAddr() {
        return guest.uva(driverOffset);
    }

    public long deviceAddr() {
        return guest.uva(deviceOffset);
    }

    /** Transmit buffers: header + frame in one descriptor each. */
    public void txBuffers(int frameLength, int bufferSize) {
        for (int i = 0; i < size; i++) {
            long buf = guest.alloc(bufferSize, 64);
            ram.set(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, descOffset + (long) i * PackedDescriptor.SIZE, guest.gpa(buf));
            length[i] = VirtioNetHeader.SIZE + frameLength;
        }
    }

    /** Receive buffers of {@code bufferSize} bytes, one device-writable descriptor each. */
    public void rxBuffers(int bufferSize) {
        for (int i = 0; i < size; i++) {
            long buf = guest.alloc(bufferSize, 64);
            ram.set(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, descOffset + (long) i * PackedDescriptor.SIZE, guest.gpa(buf));
            length[i] = bufferSize;
            flags[i] = PackedDescriptor.F_WRITE;
        }
    }

    /** Makes the next {@code n} buffers available: one 8-byte release store per slot. */
    public void post(int n) {
        final MemorySegment r = ram;
        int slot = next;
        int w = wrap;
        lastStart = slot;
        lastStartWrap = w;
        for (int i = 0; i < n; i++) {
            PackedDescriptor.publishUsed(r, descOffset + (long) slot * PackedDescriptor.SIZE,
                    PackedDescriptor.usedWord(slot, length[slot], PackedDescriptor.availFlags(w, flags[slot])));
            if (++slot == size) {
                slot = 0;
                w ^= 1;
            }
        }
        next = slot;
        wrap = w;
    }

    /**
     * True when the device returned every buffer of the last {@link #post}: the slot before the driver's next one
     * holds a used descriptor; with IN_ORDER ({@code inOrder}) the first slot of that post holds the one used
     * descriptor of the burst, carrying the last buffer's ID (virtio 1.2, 2.8.20).
     */
    public boolean deviceCaughtUp(boolean inOrder) {
        int last = next == 0 ? size - 1 : next - 1;
        int lastWrap = next == 0 ? wrap ^ 1 : wrap;
        if (inOrder) {
            long at = descOffset + (long) lastStart * PackedDescriptor.SIZE;
            return PackedDescriptor.isUsed(PackedDescriptor.flagsAcquire(ram, at), lastStartWrap)
                    && ram.get(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, at + PackedDescriptor.ID) == (short) last;
        }
        return PackedDescriptor.isUsed(PackedDescriptor.flagsAcquire(ram, descOffset + (long) last * PackedDescriptor.SIZE), lastWrap);
    }
}
