package io.vswitch.sys;


import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

import static io.vswitch.sys.Libc.C_INT;
import static io.vswitch.sys.Libc.C_LONG;
import static io.vswitch.sys.Libc.C_POINTER;
import static io.vswitch.sys.Libc.C_SIZE_T;

/**
 * A Linux eventfd: the kick (guest to switch) and call (switch to guest) doorbells of a virtqueue.
 *
 * <p>Always non-blocking. A descriptor received from a frontend is {@link #adopt adopted}: it is switched to
 * non-blocking so that a hostile peer handing over a pipe or a blocking fd can never stall a worker.
 *
 * <p>Once closed, {@link #signal} and {@link #drain} do nothing: no system call is made with the old number,
 * which the kernel hands out again to the next descriptor anyone opens (eight bytes written into somebody
 * else's pipe, socket or eventfd would be a silent corruption). The number is kept in one volatile field that
 * {@link #close} sets to -1 before closing, and each operation reads it exactly once, so an operation that
 * starts after {@code close()} returned cannot reach the old number.
 *
 * <p>What this cannot exclude on its own is an operation that read the number just before a concurrent
 * {@code close()} and makes its system call just after the number was reused. Closing therefore follows the
 * switch's grace-period contract: an eventfd a worker may use is closed only after the worker has passed a
 * quiescent point since it was unpublished (see {@code VirtioNetDevice} and {@code Quiescence}), so no
 * operation on it is in flight when {@code close()} runs.
 */
public final class EventFd implements AutoCloseable {
    public static final int EFD_CLOEXEC = 0x80000;
    public static final int EFD_NONBLOCK = 0x800;
    /** What /proc/self/fd shows for an eventfd. */
    private static final String EVENTFD_LINK = "anon_inode:[eventfd]";

    private static final MethodHandle EVENTFD = Libc.call("eventfd", FunctionDescriptor.of(C_INT, C_INT, C_INT));
    private static final MethodHandle READ = Libc.call("read", FunctionDescriptor.of(C_LONG, C_INT, C_POINTER, C_SIZE_T));
    private static final MethodHandle WRITE = Libc.call("write", FunctionDescriptor.of(C_LONG, C_INT, C_POINTER, C_SIZE_T));

    private static final VarHandle FD;

    static {
        try {
            FD = MethodHandles.lookup().findVarHandle(EventFd.class, "fd", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private static final int CLOSED = -1;

    /** The descriptor, or {@link #CLOSED}: read once per operation (see the class comment). */
    private volatile int fd;
    /** The number it had, for messages only: never used for a system call. */
    private final int number;

    private EventFd(int fd) {
        this.fd = fd;
        this.number = fd;
    }

    /** A new eventfd with counter 0. */
    public static EventFd create() {
        MemorySegment state = Libc.callState();
        int fd;
        try {
            fd = (int) EVENTFD.invokeExact(state, 0, EFD_CLOEXEC | EFD_NONBLOCK);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (fd < 0) {
            throw SysCallException.of("eventfd", Libc.errno(state));
        }
        return new EventFd(fd);
    }

    /**
     * Takes ownership of a descriptor received from a peer; it is closed by {@link #close()}, and also when it
     * is refused here because it is not an eventfd (a socket, a pipe, a memory file...).
     */
    public static EventFd adopt(int fd) {
        if (fd < 0) {
            throw new IllegalArgumentException("not a descriptor: " + fd);
        }
        try {
            String kind = describe(fd);
            if (!EVENTFD_LINK.equals(kind)) {
                throw new IllegalArgumentException("descriptor " + fd + " is " + kind + ", not an eventfd");
            }
            Libc.setNonBlocking(fd);
        } catch (RuntimeException e) {
            Libc.closeQuietly(fd);
            throw e;
        }
        return new EventFd(fd);
    }

    /** An independent descriptor for the same eventfd, owned by the caller: safe to use after this one closes. */
    public EventFd duplicate() {
        int f = fd;
        if (f == CLOSED) {
            throw new IllegalStateException("eventfd " + number + " is closed");
        }
        return new EventFd(Libc.dup(f));
    }

    /** What the kernel says {@code fd} is, e.g. {@code anon_inode:[eventfd]} or {@code socket:[1234]}. */
    static String describe(int fd) {
        try {
            return java.nio.file.Files.readSymbolicLink(java.nio.file.Path.of("/proc/self/fd/" + fd)).toString();
        } catch (java.io.IOException | UnsupportedOperationException e) {
            return "unknown (" + e.getMessage() + ")";
        }
    }

    /** The descriptor number, or -1 once closed. */
    public int fd() {
        return fd;
    }

    /**
     * Adds one to the counter, waking any waiter. Returns false when the write did not happen: the eventfd is
     * closed (no system call is made), the counter is saturated (the peer is not reading, so it is already
     * signalled) or the peer's fd is not writable.
     */
    public boolean signal() {
        final int f = fd;
        if (f == CLOSED) {
            return false;
        }
        MemorySegment state = Libc.callState();
        MemorySegment value = Libc.scratch();
        value.set(ValueLayout.JAVA_LONG, 0, 1L);
        long written;
        try {
            written = (long) WRITE.invokeExact(state, f, value, 8L);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        return written == 8;
    }

    /** Reads and resets the counter; 0 when nothing was signalled since the last drain, or when closed (no system call). */
    public long drain() {
        final int f = fd;
        if (f == CLOSED) {
            return 0;
        }
        MemorySegment state = Libc.callState();
        MemorySegment value = Libc.scratch();
        long read;
        try {
            read = (long) READ.invokeExact(state, f, value, 8L);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (read == 8) {
            return value.get(ValueLayout.JAVA_LONG, 0);
        }
        if (read < 0) {
            int errno = Libc.errno(state);
            if (errno == Errno.EAGAIN || errno == Errno.EINTR) {
                return 0;
            }
            throw SysCallException.of("read(eventfd)", errno);
        }
        return 0;
    }

    public boolean isClosed() {
        return fd == CLOSED;
    }

    /**
     * Closes the descriptor; later operations on this object do nothing. Idempotent and safe to race with
     * itself: exactly one caller closes. See the class comment for what must hold about concurrent users.
     */
    @Override
    public void close() {
        int f = (int) FD.getAndSet(this, CLOSED);
        if (f != CLOSED) {
            Libc.closeQuietly(f);
        }
    }

    @Override
    public String toString() {
        return "EventFd[" + number + (isClosed() ? ", closed]" : "]");
    }
}
