package io.vswitch.sys;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Flyweight over an array of {@code struct mmsghdr} (x86-64 / aarch64 LP64 layout), each with its own
 * {@code iovec} array, for {@code recvmmsg}/{@code sendmmsg}. Built once, rewritten in place, never allocated
 * per packet.
 *
 * <pre>
 * struct mmsghdr {                  // 64 bytes
 *     struct msghdr {
 *         void         *msg_name;       //  0
 *         socklen_t     msg_namelen;    //  8  (+4 padding)
 *         struct iovec *msg_iov;        // 16
 *         size_t        msg_iovlen;     // 24
 *         void         *msg_control;    // 32
 *         size_t        msg_controllen; // 40
 *         int           msg_flags;      // 48  (+4 padding)
 *     } msg_hdr;
 *     unsigned int msg_len;             // 56  (+4 padding)
 * };
 * struct iovec {                    // 16 bytes
 *     void  *iov_base;                  //  0
 *     size_t iov_len;                   //  8
 * };
 * </pre>
 */
public final class MsgVec {
    public static final int MMSGHDR_SIZE = 64;
    static final int MSG_NAME = 0;
    static final int MSG_NAMELEN = 8;
    static final int MSG_IOV = 16;
    static final int MSG_IOVLEN = 24;
    static final int MSG_CONTROL = 32;
    static final int MSG_CONTROLLEN = 40;
    static final int MSG_FLAGS = 48;
    static final int MSG_LEN = 56;
    public static final int IOVEC_SIZE = 16;
    static final int IOV_BASE = 0;
    static final int IOV_LEN = 8;

    private final MemorySegment msgs;
    private final MemorySegment iovs;
    private final int count;
    private final int iovPerMsg;

    /** {@code msgs} holds {@code count} headers, {@code iovs} {@code count * iovPerMsg} iovecs; both zeroed here. */
    public MsgVec(MemorySegment msgs, MemorySegment iovs, int count, int iovPerMsg) {
        if (msgs.byteSize() < (long) count * MMSGHDR_SIZE || iovs.byteSize() < (long) count * iovPerMsg * IOVEC_SIZE) {
            throw new IllegalArgumentException("segments too small for " + count + " messages");
        }
        this.msgs = msgs;
        this.iovs = iovs;
        this.count = count;
        this.iovPerMsg = iovPerMsg;
        msgs.fill((byte) 0);
        iovs.fill((byte) 0);
        for (int i = 0; i < count; i++) {
            msgs.set(ValueLayout.ADDRESS, (long) i * MMSGHDR_SIZE + MSG_IOV, iovs.asSlice((long) i * iovPerMsg * IOVEC_SIZE));
        }
    }

    public int count() {
        return count;
    }

    /** The headers from message {@code first} on, for the syscall. */
    public MemorySegment from(int first) {
        return first == 0 ? msgs : msgs.asSlice((long) first * MMSGHDR_SIZE);
    }

    public void name(int msg, MemorySegment address, int length) {
        long at = (long) msg * MMSGHDR_SIZE;
        msgs.set(ValueLayout.ADDRESS, at + MSG_NAME, address);
        msgs.set(ValueLayout.JAVA_INT, at + MSG_NAMELEN, length);
    }

    /** Like {@link #name(int, MemorySegment, int)} with a raw address: no segment to allocate on a hot path. */
    public void name(int msg, long address, int length) {
        long at = (long) msg * MMSGHDR_SIZE;
        msgs.set(ValueLayout.JAVA_LONG, at + MSG_NAME, address);
        msgs.set(ValueLayout.JAVA_INT, at + MSG_NAMELEN, length);
    }

    public void nameLength(int msg, int length) {
        msgs.set(ValueLayout.JAVA_INT, (long) msg * MMSGHDR_SIZE + MSG_NAMELEN, length);
    }

    /** Points iovec {@code iov} of message {@code msg} at {@code length} bytes at raw address {@code address}. */
    public void iov(int msg, int iov, long address, long length) {
        long at = ((long) msg * iovPerMsg + iov) * IOVEC_SIZE;
        iovs.set(ValueLayout.JAVA_LONG, at + IOV_BASE, address);
        iovs.set(ValueLayout.JAVA_LONG, at + IOV_LEN, length);
    }

    /** Points message {@code msg}'s ancillary data at {@code length} bytes at raw address {@code address} (0, 0: none). */
    public void control(int msg, long address, int length) {
        long at = (long) msg * MMSGHDR_SIZE;
        msgs.set(ValueLayout.JAVA_LONG, at + MSG_CONTROL, address);
        msgs.set(ValueLayout.JAVA_LONG, at + MSG_CONTROLLEN, length);
    }

    /** The ancillary bytes the kernel wrote for message {@code msg} (after a receive). */
    public int controlLength(int msg) {
        return (int) msgs.get(ValueLayout.JAVA_LONG, (long) msg * MMSGHDR_SIZE + MSG_CONTROLLEN);
    }

    public long nameAddress(int msg) {
        return msgs.get(ValueLayout.JAVA_LONG, (long) msg * MMSGHDR_SIZE + MSG_NAME);
    }

    public long iovAddress(int msg, int iov) {
        return iovs.get(ValueLayout.JAVA_LONG, ((long) msg * iovPerMsg + iov) * IOVEC_SIZE + IOV_BASE);
    }

    public long iovLength(int msg, int iov) {
        return iovs.get(ValueLayout.JAVA_LONG, ((long) msg * iovPerMsg + iov) * IOVEC_SIZE + IOV_LEN);
    }

    public void iovCount(int msg, int n) {
        msgs.set(ValueLayout.JAVA_LONG, (long) msg * MMSGHDR_SIZE + MSG_IOVLEN, n);
    }

    /** Makes message {@code msg} use the iovecs of message {@code owner} (a flood: one payload, several names). */
    public void shareIov(int msg, int owner, int n) {
        msgs.set(ValueLayout.JAVA_LONG, (long) msg * MMSGHDR_SIZE + MSG_IOV,
                iovs.address() + (long) owner * iovPerMsg * IOVEC_SIZE);
        iovCount(msg, n);
    }

    /** Bytes the kernel transferred for message {@code msg}. */
    public int length(int msg) {
        return msgs.get(ValueLayout.JAVA_INT, (long) msg * MMSGHDR_SIZE + MSG_LEN);
    }

    public int flags(int msg) {
        return msgs.get(ValueLayout.JAVA_INT, (long) msg * MMSGHDR_SIZE + MSG_FLAGS);
    }
}
