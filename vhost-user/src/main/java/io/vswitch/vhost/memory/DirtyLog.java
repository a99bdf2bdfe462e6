package io.vswitch.vhost.memory;

import io.vswitch.sys.MappedMemory;
import io.vswitch.sys.SharedMemory;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

/**
 * The frontend's dirty-page log for live migration (SET_LOG_BASE with PROTOCOL_F_LOG_SHMFD): one bit per
 * 4 KiB page of guest-physical memory, which the backend sets for every page it writes while VHOST_F_LOG_ALL
 * is negotiated, so that the frontend copies that page again.
 *
 * <pre>
 *   byte:   0                       1                        ...  n
 *   bit:    7 6 5 4 3 2 1 0         7 6 5 4 3 2 1 0
 *   page:   7 6 5 4 3 2 1 0        15 ...            8            page p = guest-physical address >> 12
 *                                                                 is bit (p & 7) of byte (p >> 3)
 * </pre>
 *
 * QEMU reads the log as 64-bit little-endian words, so the bits are set with an atomic OR on the aligned
 * 64-bit word that holds them ({@link #LOG_WORD} bytes, bit {@code p & 63} of word {@code p >> 6}): the
 * frontend clears words with an atomic exchange while we set bits. A bit that is already set is not
 * written again. A page beyond the log's end is counted in {@link #outOfRange()}, never written.
 */
public final class DirtyLog implements AutoCloseable {
    public static final int PAGE_SHIFT = 12;
    public static final int LOG_WORD = 8;
    private static final VarHandle WORD = ValueLayout.JAVA_LONG.varHandle();

    private final MappedMemory mapping;
    private final MemorySegment bits;
    private final long words;
    private long outOfRange;

    private DirtyLog(MappedMemory mapping, MemorySegment bits) {
        this.mapping = mapping;
        this.bits = bits;
        this.words = bits.byteSize() / LOG_WORD;
    }

    /**
     * Maps {@code size} bytes of {@code fd} from {@code offset}; the caller keeps ownership of the fd. Throws
     * {@link GuestMemoryException} for a size or offset that cannot be a log.
     */
    public static DirtyLog map(int fd, long size, long offset) {
        if (size <= 0 || size > (1L << 40) || offset < 0 || offset > (1L << 40)) {
            throw new GuestMemoryException("dirty log of " + size + " bytes at offset " + offset + " refused");
        }
        if (SharedMemory.size(fd) < size + offset) {
            throw new GuestMemoryException("dirty log fd holds " + SharedMemory.size(fd) + " bytes, less than "
                    + size + " at offset " + offset);
        }
        long pageOffset = offset & ~4095L;
        MappedMemory mapping = SharedMemory.map(fd, size + (offset - pageOffset), pageOffset);
        MemorySegment bits = mapping.segment().asSlice(offset - pageOffset, size);
        if ((bits.address() & (LOG_WORD - 1)) != 0) {
            mapping.close();
            throw new GuestMemoryException("dirty log offset " + offset + " is not 8-byte aligned");
        }
        return new DirtyLog(mapping, bits);
    }

    /** Wraps memory the caller owns (tests, benchmarks); its size must be a multiple of 8 bytes, 8-aligned. */
    public static DirtyLog of(MemorySegment bits) {
        return new DirtyLog(null, bits);
    }

    /** Marks every page that {@code length} bytes at guest-physical {@code gpa} touch. Worker thread only. */
    public void markGuest(long gpa, long length) {
        if (length <= 0) {
            return;
        }
        long first = gpa >>> PAGE_SHIFT;
        long last = (gpa + length - 1) >>> PAGE_SHIFT;
        for (long page = first; page <= last; page++) {
            long word = page >>> 6;
            if (word >= words || page < 0) {
                outOfRange++;
                continue;
            }
            long bit = 1L << (page & 63);
            long at = word * LOG_WORD;
            if (((long) WORD.getOpaque(bits, at) & bit) == 0) {
                WORD.getAndBitwiseOr(bits, at, bit);
            }
        }
    }

    /** True when the page holding guest-physical {@code gpa} is marked (tests). */
    public boolean isMarked(long gpa) {
        long page = gpa >>> PAGE_SHIFT;
        long word = page >>> 6;
        return word < words && (((long) WORD.getVolatile(bits, word * LOG_WORD)) & (1L << (page & 63))) != 0;
    }

    /** Pages that were written beyond the log's end (the frontend sized it too small). */
    public long outOfRange() {
        return outOfRange;
    }

    public long byteSize() {
        return bits.byteSize();
    }

    @Override
    public void close() {
        if (mapping != null) {
            mapping.close();
        }
    }
}
