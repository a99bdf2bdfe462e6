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

    public static final int F_GETFL = 3;
    public static final int F_SETFL = 4;
    public static final int F_GETFD = 1;
    public static final int O_NONBLOCK = 0x800;

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
}
