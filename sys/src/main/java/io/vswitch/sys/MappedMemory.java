package io.vswitch.sys;


import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * One shared mapping with an explicit lifetime. Its segment belongs to a shared arena, so closing it
 * (munmap) makes every later access from any thread fail with {@link IllegalStateException} instead of
 * touching unmapped memory, for every access made through {@link #segment()}. (The switch's data path reads
 * guest memory through raw addresses instead and relies on its grace periods; see {@code GuestMemory.EVERYTHING}.)
 */
public final class MappedMemory implements AutoCloseable {
    private final long address;
    private final long length;
    private final Arena arena;
    private final MemorySegment segment;

    MappedMemory(long address, long length) {
        this.address = address;
        this.length = length;
        this.arena = Arena.ofShared();
        this.segment = MemorySegment.ofAddress(address).reinterpret(length, arena, ignored -> unmap(address, length));
    }

    private static void unmap(long address, long length) {
        MemorySegment state = Libc.callState();
        int rc;
        try {
            rc = (int) SharedMemory.MUNMAP.invokeExact(state, MemorySegment.ofAddress(address), length);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (rc < 0) {
            throw SysCallException.of("munmap", Libc.errno(state));
        }
    }

    public MemorySegment segment() {
        return segment;
    }

    public long address() {
        return address;
    }

    public long length() {
        return length;
    }

    public boolean isMapped() {
        return arena.scope().isAlive();
    }

    /** Unmaps; waits for accesses in progress on other threads to finish (the shared arena's handshake). */
    @Override
    public void close() {
        if (arena.scope().isAlive()) {
            try {
                arena.close();
            } catch (IllegalStateException alreadyClosed) {
                // a concurrent close won the race
            }
        }
    }
}
