package io.vswitch.sys;


import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/** A sendmsg that breaks the rules the product keeps: more descriptors than vhost-user allows, as a hostile peer would. */
final class RawSend {
    private static final MethodHandle SENDMSG = Libc.call("sendmsg",
            FunctionDescriptor.of(Libc.C_LONG, Libc.C_INT, Libc.C_POINTER, Libc.C_INT));

    private RawSend() {
    }

    /** Sends {@code length} bytes with {@code total} descriptors, cycling through the first {@code distinct} of fds. */
    static void sendWithFds(int socket, MemorySegment data, long length, int[] fds, int distinct, int total) throws Throwable {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment msg = arena.allocate(UnixSocket.MSGHDR_SIZE, 8);
            MemorySegment iov = arena.allocate(UnixSocket.IOVEC_SIZE, 8);
            int controlLen = UnixSocket.CMSGHDR_SIZE + UnixSocket.align8(total * 4);
            MemorySegment control = arena.allocate(controlLen, 8);
            control.set(ValueLayout.JAVA_LONG, UnixSocket.CMSG_LEN, UnixSocket.CMSGHDR_SIZE + total * 4L);
            control.set(ValueLayout.JAVA_INT, UnixSocket.CMSG_LEVEL, 1);
            control.set(ValueLayout.JAVA_INT, UnixSocket.CMSG_TYPE, 1);
            for (int i = 0; i < total; i++) {
                control.set(ValueLayout.JAVA_INT, UnixSocket.CMSGHDR_SIZE + 4L * i, fds[i % distinct]);
            }
            iov.set(ValueLayout.ADDRESS, 0, data);
            iov.set(ValueLayout.JAVA_LONG, 8, length);
            msg.set(ValueLayout.ADDRESS, UnixSocket.MSG_IOV, iov);
            msg.set(ValueLayout.JAVA_LONG, UnixSocket.MSG_IOVLEN, 1);
            msg.set(ValueLayout.ADDRESS, UnixSocket.MSG_CONTROL, control);
            msg.set(ValueLayout.JAVA_LONG, UnixSocket.MSG_CONTROLLEN, controlLen);
            MemorySegment state = Libc.callState();
            long n = (long) SENDMSG.invokeExact(state, socket, msg, 0);
            if (n < 0) {
                throw SysCallException.of("sendmsg", Libc.errno(state));
            }
        }
    }
}
