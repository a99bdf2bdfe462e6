package io.vswitch.notify;

import io.vswitch.sys.Errno;
import io.vswitch.sys.Libc;
import io.vswitch.sys.SysCallException;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

import static io.vswitch.sys.Libc.C_INT;
import static io.vswitch.sys.Libc.C_LONG;
import static io.vswitch.sys.Libc.C_POINTER;
import static io.vswitch.sys.Libc.C_SIZE_T;

/**
 * A Linux eventfd: the kick (guest to switch) and call (switch to guest) doorbells of a virtqueue.
 *
 * <p>Always non-blocking. A descriptor received from a frontend is {@link #adopt adopted}: it is switched to
 * non-blocking so that a hostile peer handing over a pipe or a blocking fd can never stall a worker.
 */
public final class EventFd implements AutoCloseable {
    public static final int EFD_CLOEXEC = 0x80000;
    public static final int EFD_NONBLOCK = 0x800;
    /** What /proc/self/fd shows for an eventfd. */
    private static final String EVENTFD_LINK = "anon_inode:[eventfd]";

    private static final MethodHandle EVENTFD = Libc.call("eventfd", FunctionDescriptor.of(C_INT, C_INT, C_INT));
    private static final MethodHandle READ = Libc.call("read", FunctionDescriptor.of(C_LONG, C_INT, C_POINTER, C_SIZE_T));
    private static final MethodHandle WRITE = Libc.call("write", FunctionDescriptor.of(C_LONG, C_INT, C_POINTER, C_SIZE_T));

    private final int fd;
    private volatile boolean closed;

    private EventFd(int fd) {
        this.fd = fd;
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
        return new EventFd(Libc.dup(fd));
    }

    /** What the kernel says {@code fd} is, e.g. {@code anon_inode:[eventfd]} or {@code socket:[1234]}. */
    static String describe(int fd) {
        try {
            return java.nio.file.Files.readSymbolicLink(java.nio.file.Path.of("/proc/self/fd/" + fd)).toString();
        } catch (java.io.IOException | UnsupportedOperationException e) {
            return "unknown (" + e.getMessage() + ")";
        }
    }

    public int fd() {
        return fd;
    }

    /**
     * Adds one to the counter, waking any waiter. Returns false when the write did not happen: the counter is
     * saturated (the peer is not reading, so it is already signalled) or the peer's fd is not writable.
     */
    public boolean signal() {
        MemorySegment state = Libc.callState();
        MemorySegment value = Libc.scratch();
        value.set(ValueLayout.JAVA_LONG, 0, 1L);
        long written;
        try {
            written = (long) WRITE.invokeExact(state, fd, value, 8L);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        return written == 8;
    }

    /** Reads and resets the counter; 0 when nothing was signalled since the last drain. */
    public long drain() {
        MemorySegment state = Libc.callState();
        MemorySegment value = Libc.scratch();
        long read;
        try {
            read = (long) READ.invokeExact(state, fd, value, 8L);
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
        return closed;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            Libc.closeQuietly(fd);
        }
    }

    @Override
    public String toString() {
        return "EventFd[" + fd + (closed ? ", closed]" : "]");
    }
}
