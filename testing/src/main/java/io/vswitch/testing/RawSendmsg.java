package io.vswitch.testing;

import io.vswitch.sys.Libc;
import io.vswitch.sys.SysCallException;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * One sendmsg with any number of SCM_RIGHTS descriptors, which {@code UnixSocket.send} refuses to do: what a
 * hostile frontend sends to overflow the backend's control buffer.
 *
 * <pre>
 * struct msghdr { name 0, namelen 8, iov 16, iovlen 24, control 32, controllen 40, flags 48 }   56 bytes
 * struct cmsghdr { size_t len 0; int level 8; int type 12; } then the descriptors                16 bytes
 * </pre>
 */
public final class RawSendmsg {
    private static final MethodHandle SENDMSG = Libc.call("sendmsg",
            FunctionDescriptor.of(Libc.C_LONG, Libc.C_INT, Libc.C_POINTER, Libc.C_INT));
    private static final int SOL_SOCKET = 1;
    private static final int SCM_RIGHTS = 1;

    private RawSendmsg() {
    }

    public static void send(int socket, byte[] data, int[] fds) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment msg = arena.allocate(56, 8);
            MemorySegment iov = arena.allocate(16, 8);
            MemorySegment bytes = arena.allocate(Math.max(1, data.length));
            MemorySegment.copy(data, 0, bytes, ValueLayout.JAVA_BYTE, 0, data.length);
            int controlLen = 16 + ((fds.length * 4 + 7) & ~7);
            MemorySegment control = arena.allocate(controlLen, 8);
            control.set(ValueLayout.JAVA_LONG, 0, 16L + fds.length * 4L);
            control.set(ValueLayout.JAVA_INT, 8, SOL_SOCKET);
            control.set(ValueLayout.JAVA_INT, 12, SCM_RIGHTS);
            for (int i = 0; i < fds.length; i++) {
                control.set(ValueLayout.JAVA_INT, 16 + 4L * i, fds[i]);
            }
            iov.set(ValueLayout.ADDRESS, 0, bytes);
            iov.set(ValueLayout.JAVA_LONG, 8, data.length);
            msg.set(ValueLayout.ADDRESS, 16, iov);
            msg.set(ValueLayout.JAVA_LONG, 24, 1);
            msg.set(ValueLayout.ADDRESS, 32, control);
            msg.set(ValueLayout.JAVA_LONG, 40, controlLen);
            MemorySegment state = Libc.callState();
            long n = (long) SENDMSG.invokeExact(state, socket, msg, 0);
            if (n != data.length) {
                throw SysCallException.of("sendmsg", Libc.errno(state));
            }
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }
}
