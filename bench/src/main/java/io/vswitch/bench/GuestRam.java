package io.vswitch.bench;

import io.vswitch.sys.Libc;
import io.vswitch.vhost.memory.GuestMemory;
import io.vswitch.vhost.memory.MemoryRegion;
import io.vswitch.sys.MappedMemory;
import io.vswitch.sys.SharedMemory;

import java.lang.foreign.MemorySegment;

/**
 * Guest RAM for in-process benchmarks: one memfd, mapped twice, as a real frontend and the switch would:
 * once for the synthetic driver ({@link #ram}, what the "guest" writes through) and once by the device side
 * exactly as the switch maps a region it received ({@link MemoryRegion#map}), wrapped in a
 * {@link GuestMemory}. Both mappings share the same pages.
 *
 * <p>Guest-physical addresses start at {@link #GUEST_PHYS_BASE} and frontend-virtual addresses at
 * {@link #USER_BASE}, as two different spaces, so the device's two translations are both exercised.
 * Space is handed out by a bump allocator ({@link #alloc}); offsets are into {@link #ram}.
 */
public final class GuestRam implements AutoCloseable {
    public static final long GUEST_PHYS_BASE = 0x10_0000L;
    public static final long USER_BASE = 0x7f3a_5000_0000L;

    private final MappedMemory driverMapping;
    /** The driver's view of guest RAM. */
    public final MemorySegment ram;
    /** The device's view: what {@code VirtQueue.configure} and {@code VirtioNetDevice.setMemory} take. */
    public final GuestMemory memory;
    private final long size;
    private long next;
    private boolean memoryHandedOver;

    public GuestRam(String name, long size) {
        this.size = size;
        int fd = SharedMemory.memfd(name, size, false);
        MappedMemory mapping;
        try {
            mapping = SharedMemory.map(fd, size, 0);
        } catch (RuntimeException e) {
            Libc.closeQuietly(fd);
            throw e;
        }
        this.driverMapping = mapping;
        this.ram = mapping.segment();
        // MemoryRegion.map closes the descriptor; the driver's mapping keeps the memory alive too
        this.memory = GuestMemory.empty().with(MemoryRegion.map(fd, GUEST_PHYS_BASE, size, USER_BASE, 0));
    }

    /** Offset of {@code bytes} fresh bytes aligned to {@code align} (a power of two). */
    public long alloc(long bytes, long align) {
        long at = (next + align - 1) & -align;
        if (at + bytes > size) {
            throw new IllegalStateException("guest RAM of " + size + " bytes exhausted");
        }
        next = at + bytes;
        return at;
    }

    /** Guest-physical address of offset {@code offset}: what descriptors carry. */
    public long gpa(long offset) {
        return GUEST_PHYS_BASE + offset;
    }

    /** Frontend-virtual address of offset {@code offset}: what ring addresses (SET_VRING_ADDR) carry. */
    public long uva(long offset) {
        return USER_BASE + offset;
    }

    /** Call when a {@code VirtioNetDevice} took ownership of {@link #memory} (its reset unmaps it). */
    public void memoryHandedOver() {
        memoryHandedOver = true;
    }

    @Override
    public void close() {
        if (!memoryHandedOver) {
            memory.close();
        }
        driverMapping.close();
    }
}
