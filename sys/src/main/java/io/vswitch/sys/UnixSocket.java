package io.vswitch.sys;


import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Optional;

import static io.vswitch.sys.Libc.C_INT;
import static io.vswitch.sys.Libc.C_LONG;
import static io.vswitch.sys.Libc.C_POINTER;

/**
 * A Unix stream socket that carries a message's bytes and its SCM_RIGHTS descriptors in one call, which is
 * what vhost-user needs and what neither {@code java.nio} nor Netty can do.
 *
 * <pre>
 * struct msghdr {                 // 56 bytes          struct cmsghdr {        // 16 bytes, then data
 *     void   *msg_name;       //  0                       size_t cmsg_len;    //  0
 *     int     msg_namelen;    //  8                       int    cmsg_level;  //  8
 *     struct iovec *msg_iov;  // 16                       int    cmsg_type;   // 12
 *     size_t  msg_iovlen;     // 24                   };                      // data at 16
 *     void   *msg_control;    // 32
 *     size_t  msg_controllen; // 40                   struct iovec { void *base; size_t len; } // 16 bytes
 *     int     msg_flags;      // 48
 * };
 * struct sockaddr_un { sa_family_t sun_family; char sun_path[108]; }   // 110 bytes
 * </pre>
 */
public final class UnixSocket implements AutoCloseable {
    static final int MSGHDR_SIZE = 56;
    static final int MSG_NAME = 0;
    static final int MSG_NAMELEN = 8;
    static final int MSG_IOV = 16;
    static final int MSG_IOVLEN = 24;
    static final int MSG_CONTROL = 32;
    static final int MSG_CONTROLLEN = 40;
    static final int MSG_FLAGS = 48;
    static final int IOVEC_SIZE = 16;
    static final int CMSGHDR_SIZE = 16;
    static final int CMSG_LEN = 0;
    static final int CMSG_LEVEL = 8;
    static final int CMSG_TYPE = 12;
    static final int SOCKADDR_UN_SIZE = 110;
    static final int SUN_PATH_MAX = 107;

    private static final int AF_UNIX = 1;
    private static final int SOCK_STREAM = 1;
    private static final int SOCK_CLOEXEC = 0x80000;
    private static final int SOL_SOCKET = 1;
    private static final int SCM_RIGHTS = 1;
    private static final int MSG_CTRUNC = 0x8;
    private static final int MSG_NOSIGNAL = 0x4000;
    private static final int MSG_CMSG_CLOEXEC = 0x40000000;
    private static final int SHUT_RDWR = 2;
    /** CMSG_SPACE(8 * sizeof(int)): room for the most descriptors vhost-user may send. */
    static final int CONTROL_SPACE = CMSGHDR_SIZE + align8(ReceivedFds.MAX_FDS * 4);

    private static final MethodHandle SOCKET = Libc.call("socket", FunctionDescriptor.of(C_INT, C_INT, C_INT, C_INT));
    private static final MethodHandle BIND = Libc.call("bind", FunctionDescriptor.of(C_INT, C_INT, C_POINTER, C_INT));
    private static final MethodHandle LISTEN = Libc.call("listen", FunctionDescriptor.of(C_INT, C_INT, C_INT));
    private static final MethodHandle ACCEPT4 = Libc.call("accept4", FunctionDescriptor.of(C_INT, C_INT, C_POINTER, C_POINTER, C_INT));
    private static final MethodHandle CONNECT = Libc.call("connect", FunctionDescriptor.of(C_INT, C_INT, C_POINTER, C_INT));
    private static final MethodHandle SENDMSG = Libc.call("sendmsg", FunctionDescriptor.of(C_LONG, C_INT, C_POINTER, C_INT));
    private static final MethodHandle RECVMSG = Libc.call("recvmsg", FunctionDescriptor.of(C_LONG, C_INT, C_POINTER, C_INT));
    private static final MethodHandle SHUTDOWN = Libc.call("shutdown", FunctionDescriptor.of(C_INT, C_INT, C_INT));
    private static final MethodHandle GETSOCKOPT = Libc.call("getsockopt",
            FunctionDescriptor.of(C_INT, C_INT, C_INT, C_INT, C_POINTER, C_POINTER));
    private static final int SOCK_NONBLOCK = 0x800;
    private static final int SO_PEERCRED = 17;
    /** struct ucred { pid_t pid; uid_t uid; gid_t gid; } */
    private static final int UCRED_SIZE = 12;
    private static final MethodHandle SOCKETPAIR = Libc.call("socketpair", FunctionDescriptor.of(C_INT, C_INT, C_INT, C_INT, C_POINTER));

    private final int fd;
    private final Path path;
    private volatile boolean closed;

    private UnixSocket(int fd, Path path) {
        this.fd = fd;
        this.path = path;
    }

    static int align8(int n) {
        return (n + 7) & ~7;
    }

    /** Binds and listens on {@code path}. A stale socket file at the path must be removed by the caller. */
    public static UnixSocket listen(Path path, int backlog) {
        int fd = newSocket();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment addr = sockaddr(arena, path);
            MemorySegment state = Libc.callState();
            if ((int) BIND.invokeExact(state, fd, addr, SOCKADDR_UN_SIZE) < 0) {
                throw SysCallException.of("bind", Libc.errno(state), path.toString());
            }
            if ((int) LISTEN.invokeExact(state, fd, backlog) < 0) {
                throw SysCallException.of("listen", Libc.errno(state), path.toString());
            }
            return new UnixSocket(fd, path);
        } catch (RuntimeException e) {
            Libc.closeQuietly(fd);
            throw e;
        } catch (Throwable t) {
            Libc.closeQuietly(fd);
            throw new AssertionError(t);
        }
    }

    /** Connects to a listening socket at {@code path}. */
    public static UnixSocket connect(Path path) {
        int fd = newSocket();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment addr = sockaddr(arena, path);
            MemorySegment state = Libc.callState();
            int rc;
            do {
                rc = (int) CONNECT.invokeExact(state, fd, addr, SOCKADDR_UN_SIZE);
            } while (rc < 0 && Libc.errno(state) == Errno.EINTR);
            if (rc < 0) {
                throw SysCallException.of("connect", Libc.errno(state), path.toString());
            }
            return new UnixSocket(fd, path);
        } catch (RuntimeException e) {
            Libc.closeQuietly(fd);
            throw e;
        } catch (Throwable t) {
            Libc.closeQuietly(fd);
            throw new AssertionError(t);
        }
    }

    /** A process that listens on a socket path; {@code pid} is 0 when its backlog was full, so it was not asked. */
    public record Listener(long pid) {
        public String describe() {
            return pid > 0 ? "pid " + pid : "pid unknown";
        }
    }

    /**
     * Asks whether a process listens on {@code path}, without waiting: connects (non-blocking) and, if that
     * succeeds, reads the listener's pid from the connection ({@code SO_PEERCRED}, which Linux fills in from the
     * process that called {@code listen}), then closes it. The listener sees a connection that ends before its
     * first byte. Empty when nobody listens: no file ({@code ENOENT}), or a socket file left by a process that is
     * gone ({@code ECONNREFUSED}), which the caller may remove.
     *
     * @throws SysCallException for any other failure, e.g. {@code EACCES}: then nobody can tell
     */
    public static Optional<Listener> probeListener(Path path) {
        MemorySegment state = Libc.callState();
        int fd;
        try {
            fd = (int) SOCKET.invokeExact(state, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (fd < 0) {
            throw SysCallException.of("socket", Libc.errno(state));
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment addr = sockaddr(arena, path);
            int rc;
            do {
                rc = (int) CONNECT.invokeExact(state, fd, addr, SOCKADDR_UN_SIZE);
            } while (rc < 0 && Libc.errno(state) == Errno.EINTR);
            if (rc < 0) {
                int errno = Libc.errno(state);
                return switch (errno) {
                    case Errno.ECONNREFUSED, Errno.ENOENT -> Optional.empty();
                    case Errno.EAGAIN -> Optional.of(new Listener(0));   // listening, backlog full
                    default -> throw SysCallException.of("connect", errno, path.toString());
                };
            }
            MemorySegment cred = arena.allocate(UCRED_SIZE, 4);
            MemorySegment length = arena.allocate(ValueLayout.JAVA_INT);
            length.set(ValueLayout.JAVA_INT, 0, UCRED_SIZE);
            if ((int) GETSOCKOPT.invokeExact(state, fd, SOL_SOCKET, SO_PEERCRED, cred, length) < 0) {
                return Optional.of(new Listener(0));
            }
            return Optional.of(new Listener(Integer.toUnsignedLong(cred.get(ValueLayout.JAVA_INT, 0))));
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        } finally {
            Libc.closeQuietly(fd);
        }
    }

    /** Two connected sockets, for tests and in-process peers. */
    public static UnixSocket[] pair() {
        MemorySegment state = Libc.callState();
        MemorySegment fds = Libc.scratch();
        try {
            if ((int) SOCKETPAIR.invokeExact(state, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) {
                throw SysCallException.of("socketpair", Libc.errno(state));
            }
        } catch (SysCallException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        return new UnixSocket[] {
            new UnixSocket(fds.get(ValueLayout.JAVA_INT, 0), null),
            new UnixSocket(fds.get(ValueLayout.JAVA_INT, 4), null),
        };
    }

    private static int newSocket() {
        MemorySegment state = Libc.callState();
        int fd;
        try {
            fd = (int) SOCKET.invokeExact(state, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (fd < 0) {
            throw SysCallException.of("socket", Libc.errno(state));
        }
        return fd;
    }

    private static MemorySegment sockaddr(Arena arena, Path path) {
        byte[] name = path.toString().getBytes(StandardCharsets.UTF_8);
        if (name.length > SUN_PATH_MAX) {
            throw new IllegalArgumentException("socket path longer than " + SUN_PATH_MAX + " bytes: " + path);
        }
        MemorySegment addr = arena.allocate(SOCKADDR_UN_SIZE, 8);
        addr.set(ValueLayout.JAVA_SHORT, 0, (short) AF_UNIX);
        MemorySegment.copy(name, 0, addr, ValueLayout.JAVA_BYTE, 2, name.length);
        return addr;
    }

    /** Blocks until a peer connects; throws {@link SysCallException} once this socket is shut down or closed. */
    public UnixSocket accept() {
        MemorySegment state = Libc.callState();
        int client;
        try {
            do {
                client = (int) ACCEPT4.invokeExact(state, fd, MemorySegment.NULL, MemorySegment.NULL, SOCK_CLOEXEC);
            } while (client < 0 && Libc.errno(state) == Errno.EINTR);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (client < 0) {
            throw SysCallException.of("accept", Libc.errno(state), String.valueOf(path));
        }
        return new UnixSocket(client, path);
    }

    /**
     * Sends {@code length} bytes of {@code data} with {@code fdCount} descriptors from {@code fds} attached to the
     * first byte, in one sendmsg; the rest, if the kernel takes only part, follows without descriptors.
     */
    public void send(MemorySegment data, long length, int[] fds, int fdCount) throws IOException {
        if (fdCount < 0 || fdCount > ReceivedFds.MAX_FDS || (fds == null && fdCount > 0)) {
            throw new IllegalArgumentException("cannot send " + fdCount + " descriptors");
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment msg = arena.allocate(MSGHDR_SIZE, 8);
            MemorySegment iov = arena.allocate(IOVEC_SIZE, 8);
            if (fdCount > 0) {
                int controlLen = CMSGHDR_SIZE + align8(fdCount * 4);
                MemorySegment control = arena.allocate(controlLen, 8);
                control.set(ValueLayout.JAVA_LONG, CMSG_LEN, CMSGHDR_SIZE + fdCount * 4L);
                control.set(ValueLayout.JAVA_INT, CMSG_LEVEL, SOL_SOCKET);
                control.set(ValueLayout.JAVA_INT, CMSG_TYPE, SCM_RIGHTS);
                for (int i = 0; i < fdCount; i++) {
                    control.set(ValueLayout.JAVA_INT, CMSGHDR_SIZE + 4L * i, fds[i]);
                }
                msg.set(ValueLayout.ADDRESS, MSG_CONTROL, control);
                msg.set(ValueLayout.JAVA_LONG, MSG_CONTROLLEN, controlLen);
            }
            msg.set(ValueLayout.ADDRESS, MSG_IOV, iov);
            msg.set(ValueLayout.JAVA_LONG, MSG_IOVLEN, 1);
            long sent = 0;
            MemorySegment state = Libc.callState();
            while (sent < length) {
                iov.set(ValueLayout.ADDRESS, 0, data.asSlice(sent));
                iov.set(ValueLayout.JAVA_LONG, 8, length - sent);
                long n = (long) SENDMSG.invokeExact(state, fd, msg, MSG_NOSIGNAL);
                if (n < 0) {
                    int errno = Libc.errno(state);
                    if (errno == Errno.EINTR) {
                        continue;
                    }
                    throw new IOException(SysCallException.of("sendmsg", errno).getMessage());
                }
                sent += n;
                msg.set(ValueLayout.ADDRESS, MSG_CONTROL, MemorySegment.NULL);
                msg.set(ValueLayout.JAVA_LONG, MSG_CONTROLLEN, 0);
            }
        } catch (IOException | RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /**
     * Receives exactly {@code length} bytes into {@code buffer}; descriptors that come with them are added to
     * {@code fdsOut} (which owns them from then on, even when this throws). A truncated control message
     * (MSG_CTRUNC: more descriptors than fit) closes every descriptor received and throws.
     *
     * @throws EOFException when the peer closed the connection before the first byte
     */
    public void receive(MemorySegment buffer, long length, ReceivedFds fdsOut) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment msg = arena.allocate(MSGHDR_SIZE, 8);
            MemorySegment iov = arena.allocate(IOVEC_SIZE, 8);
            MemorySegment control = arena.allocate(CONTROL_SPACE, 8);
            MemorySegment state = Libc.callState();
            long received = 0;
            while (received < length) {
                msg.fill((byte) 0);
                iov.set(ValueLayout.ADDRESS, 0, buffer.asSlice(received));
                iov.set(ValueLayout.JAVA_LONG, 8, length - received);
                msg.set(ValueLayout.ADDRESS, MSG_IOV, iov);
                msg.set(ValueLayout.JAVA_LONG, MSG_IOVLEN, 1);
                msg.set(ValueLayout.ADDRESS, MSG_CONTROL, control);
                msg.set(ValueLayout.JAVA_LONG, MSG_CONTROLLEN, CONTROL_SPACE);
                long n = (long) RECVMSG.invokeExact(state, fd, msg, MSG_CMSG_CLOEXEC);
                if (n < 0) {
                    int errno = Libc.errno(state);
                    if (errno == Errno.EINTR) {
                        continue;
                    }
                    throw new IOException(SysCallException.of("recvmsg", errno).getMessage());
                }
                collectFds(msg, control, fdsOut);
                if ((msg.get(ValueLayout.JAVA_INT, MSG_FLAGS) & MSG_CTRUNC) != 0) {
                    fdsOut.closeAll();
                    throw new IOException("recvmsg: control message truncated (a peer sent more than "
                            + ReceivedFds.MAX_FDS + " descriptors); every descriptor received was closed");
                }
                if (n == 0) {
                    if (received == 0) {
                        throw new EOFException("peer closed the connection");
                    }
                    throw new EOFException("peer closed the connection after " + received + " of " + length + " bytes");
                }
                received += n;
            }
        } catch (IOException | RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    private static void collectFds(MemorySegment msg, MemorySegment control, ReceivedFds fdsOut) throws IOException {
        long controlLen = msg.get(ValueLayout.JAVA_LONG, MSG_CONTROLLEN);
        long offset = 0;
        IOException failure = null;
        while (offset + CMSGHDR_SIZE <= controlLen) {
            long cmsgLen = control.get(ValueLayout.JAVA_LONG, offset + CMSG_LEN);
            if (cmsgLen < CMSGHDR_SIZE || offset + cmsgLen > controlLen) {
                break;
            }
            int level = control.get(ValueLayout.JAVA_INT, offset + CMSG_LEVEL);
            int type = control.get(ValueLayout.JAVA_INT, offset + CMSG_TYPE);
            if (level == SOL_SOCKET && type == SCM_RIGHTS) {
                int n = (int) ((cmsgLen - CMSGHDR_SIZE) / 4);
                for (int i = 0; i < n; i++) {
                    int received = control.get(ValueLayout.JAVA_INT, offset + CMSGHDR_SIZE + 4L * i);
                    try {
                        fdsOut.add(received);
                    } catch (IllegalStateException e) {
                        failure = new IOException(e.getMessage());
                    }
                }
            }
            offset += align8((int) cmsgLen);
        }
        if (failure != null) {
            fdsOut.closeAll();
            throw failure;
        }
    }

    /** Wakes any thread blocked in accept or receive on this socket; they fail, and the socket can be closed. */
    public void shutdown() {
        MemorySegment state = Libc.callState();
        try {
            int ignored = (int) SHUTDOWN.invokeExact(state, fd, SHUT_RDWR);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    public int fd() {
        return fd;
    }

    public Path path() {
        return path;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            Libc.closeQuietly(fd);
        }
    }
}
