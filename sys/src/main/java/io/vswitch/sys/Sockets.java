package io.vswitch.sys;


import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.net.Inet4Address;

import static io.vswitch.sys.Libc.C_INT;
import static io.vswitch.sys.Libc.C_POINTER;

/**
 * The socket calls the uplink ports need, over FFM: socket, bind, setsockopt, recvmmsg, sendmmsg,
 * if_nametoindex. The batch calls take {@code struct mmsghdr} arrays the caller built once (see {@link MsgVec}).
 *
 * <pre>
 * struct sockaddr_in {          // 16 bytes
 *     sa_family_t sin_family;   //  0  AF_INET = 2 (host order)
 *     in_port_t   sin_port;     //  2  network order
 *     in_addr_t   sin_addr;     //  4  network order
 *     uint8_t     sin_zero[8];  //  8
 * };
 * </pre>
 */
public final class Sockets {
    public static final int AF_INET = 2;
    public static final int AF_PACKET = 17;
    public static final int SOCK_DGRAM = 2;
    public static final int SOCK_RAW = 3;
    public static final int SOCK_NONBLOCK = 0x800;
    public static final int SOCK_CLOEXEC = 0x80000;
    public static final int MSG_DONTWAIT = 0x40;
    public static final int MSG_TRUNC = 0x20;
    public static final int SOL_SOCKET = 1;
    public static final int SO_REUSEADDR = 2;
    public static final int SO_SNDBUF = 7;
    public static final int SO_RCVBUF = 8;
    public static final int SO_SNDBUFFORCE = 32;
    public static final int SO_RCVBUFFORCE = 33;
    public static final int ENOBUFS = 105;
    public static final int EIO = 5;
    public static final int EMSGSIZE = 90;
    public static final int MSG_CTRUNC = 0x8;
    /** UDP-level socket options (linux/udp.h): {@code UDP_SEGMENT} (GSO size of a send), {@code UDP_GRO}. */
    public static final int SOL_UDP = 17;
    public static final int UDP_SEGMENT = 103;
    public static final int UDP_GRO = 104;

    public static final int SOCKADDR_IN_SIZE = 16;
    static final int SIN_FAMILY = 0;
    static final int SIN_PORT = 2;
    static final int SIN_ADDR = 4;

    private static final ValueLayout.OfShort U16_BE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(java.nio.ByteOrder.BIG_ENDIAN);
    private static final ValueLayout.OfInt U32_BE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(java.nio.ByteOrder.BIG_ENDIAN);

    private static final MethodHandle SOCKET = Libc.call("socket", FunctionDescriptor.of(C_INT, C_INT, C_INT, C_INT));
    private static final MethodHandle BIND = Libc.call("bind", FunctionDescriptor.of(C_INT, C_INT, C_POINTER, C_INT));
    private static final MethodHandle SETSOCKOPT = Libc.call("setsockopt",
            FunctionDescriptor.of(C_INT, C_INT, C_INT, C_INT, C_POINTER, C_INT));
    private static final MethodHandle GETSOCKOPT = Libc.call("getsockopt",
            FunctionDescriptor.of(C_INT, C_INT, C_INT, C_INT, C_POINTER, C_POINTER));
    private static final MethodHandle RECVMMSG = Libc.call("recvmmsg",
            FunctionDescriptor.of(C_INT, C_INT, C_POINTER, C_INT, C_INT, C_POINTER));
    private static final MethodHandle SENDMMSG = Libc.call("sendmmsg",
            FunctionDescriptor.of(C_INT, C_INT, C_POINTER, C_INT, C_INT));
    private static final MethodHandle SENDTO = Libc.call("sendto",
            FunctionDescriptor.of(ValueLayout.JAVA_LONG, C_INT, C_POINTER, ValueLayout.JAVA_LONG, C_INT, C_POINTER, C_INT));
    private static final MethodHandle IF_NAMETOINDEX = Libc.call("if_nametoindex", FunctionDescriptor.of(C_INT, C_POINTER));

    private Sockets() {
    }

    /** {@code socket(2)}; the descriptor belongs to the caller. */
    public static int socket(int domain, int type, int protocol) {
        MemorySegment state = Libc.callState();
        int fd;
        try {
            fd = (int) SOCKET.invokeExact(state, domain, type, protocol);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (fd < 0) {
            throw SysCallException.of("socket", Libc.errno(state), "domain " + domain + " type " + type);
        }
        return fd;
    }

    /** Writes a {@code sockaddr_in} for {@code address:port} at {@code offset} of {@code at}. */
    public static void sockaddrIn(MemorySegment at, long offset, Inet4Address address, int port) {
        at.asSlice(offset, SOCKADDR_IN_SIZE).fill((byte) 0);
        at.set(ValueLayout.JAVA_SHORT_UNALIGNED, offset + SIN_FAMILY, (short) AF_INET);
        at.set(U16_BE, offset + SIN_PORT, (short) port);
        byte[] b = address.getAddress();
        at.set(U32_BE, offset + SIN_ADDR, ((b[0] & 0xFF) << 24) | ((b[1] & 0xFF) << 16) | ((b[2] & 0xFF) << 8) | (b[3] & 0xFF));
    }

    /** The IPv4 address of the {@code sockaddr_in} at {@code offset}, as a big-endian int. */
    public static int sockaddrInAddress(MemorySegment at, long offset) {
        return at.get(U32_BE, offset + SIN_ADDR);
    }

    public static int sockaddrInPort(MemorySegment at, long offset) {
        return Short.toUnsignedInt(at.get(U16_BE, offset + SIN_PORT));
    }

    public static int sockaddrInFamily(MemorySegment at, long offset) {
        return Short.toUnsignedInt(at.get(ValueLayout.JAVA_SHORT_UNALIGNED, offset + SIN_FAMILY));
    }

    /** {@code bind(2)} to a {@code sockaddr} of {@code length} bytes. */
    public static void bind(int fd, MemorySegment address, int length, String what) {
        MemorySegment state = Libc.callState();
        int rc;
        try {
            rc = (int) BIND.invokeExact(state, fd, address, length);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (rc < 0) {
            throw SysCallException.of("bind", Libc.errno(state), what);
        }
    }

    public static void setIntOption(int fd, int level, int option, int value, String what) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment v = arena.allocate(ValueLayout.JAVA_INT);
            v.set(ValueLayout.JAVA_INT, 0, value);
            setOption(fd, level, option, v, what);
        }
    }

    public static void setOption(int fd, int level, int option, MemorySegment value, String what) {
        MemorySegment state = Libc.callState();
        int rc;
        try {
            rc = (int) SETSOCKOPT.invokeExact(state, fd, level, option, value, (int) value.byteSize());
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (rc < 0) {
            throw SysCallException.of("setsockopt", Libc.errno(state), what);
        }
    }

    public static int getIntOption(int fd, int level, int option, String what) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment v = arena.allocate(ValueLayout.JAVA_INT);
            MemorySegment len = arena.allocate(ValueLayout.JAVA_INT);
            len.set(ValueLayout.JAVA_INT, 0, 4);
            MemorySegment state = Libc.callState();
            int rc;
            try {
                rc = (int) GETSOCKOPT.invokeExact(state, fd, level, option, v, len);
            } catch (Throwable t) {
                throw new AssertionError(t);
            }
            if (rc < 0) {
                throw SysCallException.of("getsockopt", Libc.errno(state), what);
            }
            return v.get(ValueLayout.JAVA_INT, 0);
        }
    }

    /** {@code getsockopt(2)} into {@code value}, {@code length} in/out; 0 or -errno. Allocates nothing. */
    public static int getOption(int fd, int level, int option, MemorySegment value, MemorySegment length) {
        MemorySegment state = Libc.callState();
        int rc;
        try {
            rc = (int) GETSOCKOPT.invokeExact(state, fd, level, option, value, length);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        return rc < 0 ? -Libc.errno(state) : 0;
    }

    /**
     * {@code recvmmsg(fd, msgs, count, MSG_DONTWAIT, NULL)}: how many messages arrived, 0 when none was waiting
     * (EAGAIN), never blocking; -errno on another failure. Allocates nothing.
     */
    public static int recvmmsg(int fd, MemorySegment msgs, int count) {
        MemorySegment state = Libc.callState();
        int n;
        try {
            n = (int) RECVMMSG.invokeExact(state, fd, msgs, count, MSG_DONTWAIT, MemorySegment.NULL);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (n >= 0) {
            return n;
        }
        int errno = Libc.errno(state);
        return errno == Errno.EAGAIN || errno == Errno.EINTR ? 0 : -errno;
    }

    /** {@code sendmmsg(fd, msgs, count, MSG_DONTWAIT)}: how many were sent, or -errno (EAGAIN too). */
    public static int sendmmsg(int fd, MemorySegment msgs, int count) {
        MemorySegment state = Libc.callState();
        int n;
        try {
            n = (int) SENDMMSG.invokeExact(state, fd, msgs, count, MSG_DONTWAIT);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        return n >= 0 ? n : -Libc.errno(state);
    }

    /** {@code sendto(fd, buf, len, MSG_DONTWAIT, NULL, 0)}: a kick for a PACKET_TX_RING; -errno on failure. */
    public static long kick(int fd) {
        MemorySegment state = Libc.callState();
        long n;
        try {
            n = (long) SENDTO.invokeExact(state, fd, MemorySegment.NULL, 0L, MSG_DONTWAIT, MemorySegment.NULL, 0);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        return n >= 0 ? n : -Libc.errno(state);
    }

    /** The index of interface {@code name}; throws when there is none. */
    public static int interfaceIndex(String name) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = Libc.callState();
            int index;
            try {
                index = (int) IF_NAMETOINDEX.invokeExact(state, arena.allocateFrom(name));
            } catch (Throwable t) {
                throw new AssertionError(t);
            }
            if (index == 0) {
                throw SysCallException.of("if_nametoindex", Libc.errno(state), "interface " + name);
            }
            return index;
        }
    }
}
