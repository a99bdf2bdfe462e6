package io.vswitch.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;

/**
 * The one place where libc functions are bound through the FFM linker.
 *
 * <p>Handles made by {@link #call} take, as their first argument, a call-state segment in which the
 * linker stores {@code errno} right after the call; {@link #callState()} hands out one per thread so
 * that a failing call on the hot path allocates nothing.
 */
public final class Libc {
    public static final ValueLayout.OfInt C_INT = ValueLayout.JAVA_INT;
    public static final ValueLayout.OfLong C_LONG = ValueLayout.JAVA_LONG;
    public static final ValueLayout.OfLong C_SIZE_T = ValueLayout.JAVA_LONG;
    public static final ValueLayout C_POINTER = ValueLayout.ADDRESS;

    /** Size of the per-thread scratch buffer for small out-parameters (eventfd counters, sockaddr, stat). */
    public static final int SCRATCH_BYTES = 256;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LOOKUP = LINKER.defaultLookup();
    private static final Linker.Option CAPTURE_ERRNO = Linker.Option.captureCallState("errno");
    private static final StructLayout CALL_STATE_LAYOUT = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CALL_STATE_LAYOUT.varHandle(groupElement("errno"));

    private static final ThreadLocal<MemorySegment> CALL_STATE =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(CALL_STATE_LAYOUT));
    private static final ThreadLocal<MemorySegment> SCRATCH =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(SCRATCH_BYTES, 16));

    private static final MethodHandle CLOSE = call("close", FunctionDescriptor.of(C_INT, C_INT));
    private static final MethodHandle FCNTL = call("fcntl", FunctionDescriptor.of(C_INT, C_INT, C_INT, C_INT),
            Linker.Option.firstVariadicArg(2));
    private static final MethodHandle DUP = call("fcntl", FunctionDescriptor.of(C_INT, C_INT, C_INT, C_INT),
            Linker.Option.firstVariadicArg(2));
    private static final int F_DUPFD_CLOEXEC = 1030;
    private static final MethodHandle STRERROR = plain("strerror", FunctionDescriptor.of(C_POINTER, C_INT));
    private static final MethodHandle OPEN = call("open", FunctionDescriptor.of(C_INT, C_POINTER, C_INT, C_INT),
            Linker.Option.firstVariadicArg(2));
    private static final MethodHandle FLOCK = call("flock", FunctionDescriptor.of(C_INT, C_INT, C_INT));
    private static final MethodHandle PWRITE = call("pwrite", FunctionDescriptor.of(C_LONG, C_INT, C_POINTER, C_SIZE_T, C_LONG));
    private static final MethodHandle FTRUNCATE = call("ftruncate", FunctionDescriptor.of(C_INT, C_INT, C_LONG));

    public static final int F_GETFL = 3;
    public static final int F_SETFL = 4;
    public static final int F_GETFD = 1;
    public static final int O_NONBLOCK = 0x800;
    public static final int O_RDWR = 0x2;
    public static final int O_CREAT = 0x40;
    public static final int O_NOFOLLOW = 0x20000;
    public static final int O_CLOEXEC = 0x80000;
    public static final int LOCK_EX = 2;
    public static final int LOCK_NB = 4;
    public static final int LOCK_UN = 8;

    private Libc() {
    }

    /** Binds {@code name} with errno capture: the handle's first parameter is a call-state segment. */
    public static MethodHandle call(String name, FunctionDescriptor descriptor, Linker.Option... extra) {
        Linker.Option[] options = new Linker.Option[extra.length + 1];
        options[0] = CAPTURE_ERRNO;
        System.arraycopy(extra, 0, options, 1, extra.length);
        return LINKER.downcallHandle(symbol(name), descriptor, options);
    }

    /** Binds {@code name} without errno capture, for calls whose failure needs no explanation. */
    public static MethodHandle plain(String name, FunctionDescriptor descriptor, Linker.Option... options) {
        return LINKER.downcallHandle(symbol(name), descriptor, options);
    }

    private static MemorySegment symbol(String name) {
        return LOOKUP.find(name).orElseThrow(() -> new UnsatisfiedLinkError("libc has no symbol " + name));
    }

    /** This thread's call-state segment; reused, never freed while the thread lives. */
    public static MemorySegment callState() {
        return CALL_STATE.get();
    }

    /** This thread's scratch buffer of {@link #SCRATCH_BYTES} bytes; contents are clobbered by the next call. */
    public static MemorySegment scratch() {
        return SCRATCH.get();
    }

    public static int errno(MemorySegment callState) {
        return (int) ERRNO.get(callState, 0L);
    }

    /** Describes errno the way libc does, e.g. {@code Cannot allocate memory}. */
    public static String strerror(int errno) {
        try {
            MemorySegment text = (MemorySegment) STRERROR.invokeExact(errno);
            return text.reinterpret(1024).getString(0);
        } catch (Throwable t) {
            return "errno " + errno;
        }
    }

    /** Closes {@code fd}; a negative fd is ignored. Errors are reported, EINTR is not retried (Linux frees the fd anyway). */
    public static void close(int fd) {
        if (fd < 0) {
            return;
        }
        MemorySegment state = callState();
        int rc;
        try {
            rc = (int) CLOSE.invokeExact(state, fd);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (rc < 0 && errno(state) != Errno.EINTR) {
            throw SysCallException.of("close", errno(state));
        }
    }

    /** Closes {@code fd} and swallows any error: for cleanup paths that must not throw. */
    public static void closeQuietly(int fd) {
        try {
            close(fd);
        } catch (RuntimeException ignored) {
            // nothing more can be done for a descriptor that will not close
        }
    }

    /** Sets {@code O_NONBLOCK} on fd, so that a descriptor received from a peer can never block a worker. */
    public static void setNonBlocking(int fd) {
        MemorySegment state = callState();
        try {
            int flags = (int) FCNTL.invokeExact(state, fd, F_GETFL, 0);
            if (flags < 0) {
                throw SysCallException.of("fcntl(F_GETFL)", errno(state));
            }
            if ((flags & O_NONBLOCK) == 0 && (int) FCNTL.invokeExact(state, fd, F_SETFL, flags | O_NONBLOCK) < 0) {
                throw SysCallException.of("fcntl(F_SETFL)", errno(state));
            }
        } catch (SysCallException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** A new descriptor (close-on-exec) for the same open file, owned by the caller. */
    public static int dup(int fd) {
        MemorySegment state = callState();
        int copy;
        try {
            copy = (int) DUP.invokeExact(state, fd, F_DUPFD_CLOEXEC, 0);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (copy < 0) {
            throw SysCallException.of("fcntl(F_DUPFD_CLOEXEC)", errno(state), "fd " + fd);
        }
        return copy;
    }

    /** True when {@code fd} names an open descriptor of this process. */
    public static boolean isOpen(int fd) {
        MemorySegment state = callState();
        try {
            return (int) FCNTL.invokeExact(state, fd, F_GETFD, 0) >= 0;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** {@code open(2)}: a new descriptor for {@code path}, owned by the caller. */
    public static int open(java.nio.file.Path path, int flags, int mode) {
        MemorySegment state = callState();
        int fd;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment name = arena.allocateFrom(path.toString());
            do {
                fd = (int) OPEN.invokeExact(state, name, flags, mode);
            } while (fd < 0 && errno(state) == Errno.EINTR);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (fd < 0) {
            throw SysCallException.of("open", errno(state), path.toString());
        }
        return fd;
    }

    /**
     * {@code flock(fd, LOCK_EX | LOCK_NB)}: takes the exclusive BSD lock of the open file, or returns false at once
     * when another open file description holds it. The lock belongs to this descriptor (and its duplicates), is
     * released when it is closed or its process dies, and, unlike an fcntl lock, is not dropped when the process
     * closes some other descriptor of the same file.
     */
    public static boolean tryLockExclusive(int fd) {
        MemorySegment state = callState();
        int rc;
        try {
            do {
                rc = (int) FLOCK.invokeExact(state, fd, LOCK_EX | LOCK_NB);
            } while (rc < 0 && errno(state) == Errno.EINTR);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (rc == 0) {
            return true;
        }
        if (errno(state) == Errno.EAGAIN) {   // EWOULDBLOCK
            return false;
        }
        throw SysCallException.of("flock", errno(state), "fd " + fd);
    }

    /** Writes all of {@code bytes} at {@code offset} of the file ({@code pwrite(2)}, retried on short writes). */
    public static void pwriteFully(int fd, byte[] bytes, long offset) {
        MemorySegment state = callState();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(Math.max(1, bytes.length));
            MemorySegment.copy(bytes, 0, buffer, ValueLayout.JAVA_BYTE, 0, bytes.length);
            long done = 0;
            while (done < bytes.length) {
                long n = (long) PWRITE.invokeExact(state, fd, buffer.asSlice(done), (long) bytes.length - done, offset + done);
                if (n < 0 && errno(state) == Errno.EINTR) {
                    continue;
                }
                if (n < 0) {
                    throw SysCallException.of("pwrite", errno(state), "fd " + fd);
                }
                done += n;
            }
        } catch (SysCallException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** {@code ftruncate(2)}. */
    public static void ftruncate(int fd, long length) {
        MemorySegment state = callState();
        int rc;
        try {
            rc = (int) FTRUNCATE.invokeExact(state, fd, length);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (rc < 0) {
            throw SysCallException.of("ftruncate", errno(state), "fd " + fd);
        }
    }
}
