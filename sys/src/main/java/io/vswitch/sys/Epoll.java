package io.vswitch.sys;


import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

import static io.vswitch.sys.Libc.C_INT;
import static io.vswitch.sys.Libc.C_POINTER;

/**
 * An epoll instance owned by one thread: the sleeping half of interrupt and hybrid notification.
 *
 * <pre>
 * struct epoll_event {          // packed on x86-64: 12 bytes
 *     uint32_t events;          //  0
 *     uint64_t data;            //  4
 * };
 * </pre>
 * The event array is allocated once; {@link #await} allocates nothing.
 */
public final class Epoll implements AutoCloseable {
    public static final int EPOLLIN = 0x001;
    public static final int EPOLLOUT = 0x004;
    public static final int EPOLLERR = 0x008;
    public static final int EPOLLHUP = 0x010;
    public static final int EPOLLRDHUP = 0x2000;
    public static final int EPOLLET = 1 << 31;

    static final int EVENT_SIZE = 12;
    static final int EVENTS_OFFSET = 0;
    static final int DATA_OFFSET = 4;

    private static final int EPOLL_CLOEXEC = 0x80000;
    private static final int EPOLL_CTL_ADD = 1;
    private static final int EPOLL_CTL_DEL = 2;
    private static final int EPOLL_CTL_MOD = 3;

    private static final ValueLayout.OfInt EVENTS = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfLong DATA = ValueLayout.JAVA_LONG_UNALIGNED;

    private static final MethodHandle CREATE = Libc.call("epoll_create1", FunctionDescriptor.of(C_INT, C_INT));
    private static final MethodHandle CTL = Libc.call("epoll_ctl", FunctionDescriptor.of(C_INT, C_INT, C_INT, C_INT, C_POINTER));
    private static final MethodHandle WAIT = Libc.call("epoll_wait", FunctionDescriptor.of(C_INT, C_INT, C_POINTER, C_INT, C_INT));

    private final int epfd;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment events;
    private final MemorySegment ctlEvent;
    private final int capacity;
    private boolean closed;

    private Epoll(int epfd, int capacity) {
        this.epfd = epfd;
        this.capacity = capacity;
        this.events = arena.allocate((long) EVENT_SIZE * capacity, 8);
        this.ctlEvent = arena.allocate(EVENT_SIZE, 8);
    }

    /** An epoll instance that reports up to {@code capacity} ready descriptors per {@link #await}. */
    public static Epoll create(int capacity) {
        if (capacity < 1) {
            throw new IllegalArgumentException("capacity must be positive: " + capacity);
        }
        MemorySegment state = Libc.callState();
        int fd;
        try {
            fd = (int) CREATE.invokeExact(state, EPOLL_CLOEXEC);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (fd < 0) {
            throw SysCallException.of("epoll_create1", Libc.errno(state));
        }
        return new Epoll(fd, capacity);
    }

    public int fd() {
        return epfd;
    }

    /** Watches fd for {@code events}; {@code data} comes back from {@link #data(int)} when it is ready. */
    public void add(int fd, int events, long data) {
        control(EPOLL_CTL_ADD, fd, events, data, "epoll_ctl(ADD)");
    }

    public void modify(int fd, int events, long data) {
        control(EPOLL_CTL_MOD, fd, events, data, "epoll_ctl(MOD)");
    }

    /** Stops watching fd; a descriptor that is already closed (and so gone from the set) is not an error. */
    public void remove(int fd) {
        try {
            control(EPOLL_CTL_DEL, fd, 0, 0, "epoll_ctl(DEL)");
        } catch (SysCallException e) {
            if (e.errno() != Errno.EBADF && e.errno() != Errno.ENOENT) {
                throw e;
            }
        }
    }

    private synchronized void control(int op, int fd, int events, long data, String call) {
        ctlEvent.set(EVENTS, EVENTS_OFFSET, events);
        ctlEvent.set(DATA, DATA_OFFSET, data);
        MemorySegment state = Libc.callState();
        int rc;
        try {
            rc = (int) CTL.invokeExact(state, epfd, op, fd, ctlEvent);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (rc < 0) {
            throw SysCallException.of(call, Libc.errno(state), "fd " + fd);
        }
    }

    /**
     * Waits up to {@code timeoutMillis} (-1: forever, 0: just look) and returns how many descriptors are ready;
     * 0 on timeout or when a signal interrupted the wait.
     */
    public int await(int timeoutMillis) {
        MemorySegment state = Libc.callState();
        int n;
        try {
            n = (int) WAIT.invokeExact(state, epfd, events, capacity, timeoutMillis);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (n < 0) {
            int errno = Libc.errno(state);
            if (errno == Errno.EINTR) {
                return 0;
            }
            throw SysCallException.of("epoll_wait", errno);
        }
        return n;
    }

    /** The data word registered for the i-th ready descriptor of the last {@link #await}. */
    public long data(int i) {
        return events.get(DATA, (long) i * EVENT_SIZE + DATA_OFFSET);
    }

    /** The ready-event bits of the i-th ready descriptor of the last {@link #await}. */
    public int events(int i) {
        return events.get(EVENTS, (long) i * EVENT_SIZE + EVENTS_OFFSET);
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            Libc.closeQuietly(epfd);
            arena.close();
        }
    }
}
