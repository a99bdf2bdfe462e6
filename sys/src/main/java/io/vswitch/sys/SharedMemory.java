package io.vswitch.sys;


import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

import static io.vswitch.sys.Libc.C_INT;
import static io.vswitch.sys.Libc.C_LONG;
import static io.vswitch.sys.Libc.C_POINTER;
import static io.vswitch.sys.Libc.C_SIZE_T;

/**
 * Shared memory by descriptor: memfd (optionally hugetlb-backed), ftruncate, fstat and shared mappings.
 * Guest RAM reaches the switch as such descriptors (hugetlbfs files, memfds, /dev/shm files).
 *
 * <pre>
 * struct stat (x86-64, 144 bytes): st_mode at 24 (u32), st_size at 48 (i64), st_blksize at 56 (i64)
 * </pre>
 */
public final class SharedMemory {
    public static final int MFD_CLOEXEC = 0x1;
    public static final int MFD_ALLOW_SEALING = 0x2;
    public static final int MFD_HUGETLB = 0x4;
    static final int STAT_SIZE = 144;
    static final int ST_MODE = 24;
    static final int ST_SIZE = 48;
    static final int ST_BLKSIZE = 56;
    private static final int S_IFMT = 0xF000;
    private static final int S_IFREG = 0x8000;

    private static final int PROT_READ = 0x1;
    private static final int PROT_WRITE = 0x2;
    private static final int MAP_SHARED = 0x1;

    private static final MethodHandle MEMFD_CREATE = Libc.call("memfd_create", FunctionDescriptor.of(C_INT, C_POINTER, C_INT));
    private static final MethodHandle FTRUNCATE = Libc.call("ftruncate", FunctionDescriptor.of(C_INT, C_INT, C_LONG));
    private static final MethodHandle FSTAT = Libc.call("fstat", FunctionDescriptor.of(C_INT, C_INT, C_POINTER));
    private static final MethodHandle MMAP = Libc.call("mmap",
            FunctionDescriptor.of(C_POINTER, C_POINTER, C_SIZE_T, C_INT, C_INT, C_INT, C_LONG));
    static final MethodHandle MUNMAP = Libc.call("munmap", FunctionDescriptor.of(C_INT, C_POINTER, C_SIZE_T));

    private SharedMemory() {
    }

    /** A new anonymous memory file of {@code size} bytes; with {@code hugetlb}, backed by the default huge page size. */
    public static int memfd(String name, long size, boolean hugetlb) {
        MemorySegment state = Libc.callState();
        int fd;
        try (Arena arena = Arena.ofConfined()) {
            fd = (int) MEMFD_CREATE.invokeExact(state, arena.allocateFrom(name),
                    MFD_CLOEXEC | (hugetlb ? MFD_HUGETLB : 0));
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (fd < 0) {
            throw SysCallException.of("memfd_create", Libc.errno(state), hugetlb ? "(MFD_HUGETLB)" : null);
        }
        try {
            truncate(fd, size);
        } catch (RuntimeException e) {
            Libc.closeQuietly(fd);
            throw e;
        }
        return fd;
    }

    public static void truncate(int fd, long size) {
        MemorySegment state = Libc.callState();
        int rc;
        try {
            rc = (int) FTRUNCATE.invokeExact(state, fd, size);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (rc < 0) {
            throw SysCallException.of("ftruncate", Libc.errno(state), "to " + size + " bytes");
        }
    }

    /** The size in bytes of the file behind fd (fstat st_size). */
    public static long size(int fd) {
        return stat(fd, ST_SIZE);
    }

    /** The file's preferred block size: the huge page size for hugetlbfs files and MFD_HUGETLB memfds. */
    public static long blockSize(int fd) {
        return stat(fd, ST_BLKSIZE);
    }

    /** True when fd is a regular file (memfds, hugetlbfs and /dev/shm files are); sockets, pipes, eventfds are not. */
    public static boolean isRegularFile(int fd) {
        return (stat(fd, ST_MODE) & S_IFMT) == S_IFREG;
    }

    private static long stat(int fd, int field) {
        MemorySegment state = Libc.callState();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment st = arena.allocate(STAT_SIZE, 8);
            if ((int) FSTAT.invokeExact(state, fd, st) < 0) {
                throw SysCallException.of("fstat", Libc.errno(state), "fd " + fd);
            }
            return field == ST_MODE ? Integer.toUnsignedLong(st.get(ValueLayout.JAVA_INT, ST_MODE))
                    : st.get(ValueLayout.JAVA_LONG, field);
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /**
     * Maps {@code length} bytes of fd from file offset {@code offset} (page aligned) shared, read-write. The
     * descriptor may be closed afterwards; the mapping lives until {@link MappedMemory#close()}.
     */
    public static MappedMemory map(int fd, long length, long offset) {
        if (length <= 0 || offset < 0) {
            throw new IllegalArgumentException("bad mapping: length " + length + ", offset " + offset);
        }
        MemorySegment state = Libc.callState();
        MemorySegment address;
        try {
            address = (MemorySegment) MMAP.invokeExact(state, MemorySegment.NULL, length,
                    PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (address.address() == -1L) {
            int errno = Libc.errno(state);
            throw SysCallException.of("mmap", errno, length + " bytes of fd " + fd + " at offset " + offset
                    + (errno == Errno.ENOMEM ? " (are enough hugepages reserved?)" : ""));
        }
        return new MappedMemory(address.address(), length);
    }
}
