package io.vswitch.sys;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Flyweight over the one ancillary-data message ({@code struct cmsghdr}, x86-64 / aarch64 LP64 layout) that
 * UDP segmentation offload uses: on a send, {@code SOL_UDP}/{@code UDP_SEGMENT} with a 16-bit segment size
 * (the kernel cuts the datagram's payload into datagrams of that size, the last one may be shorter); on a
 * receive from a socket with {@code UDP_GRO} on, {@code SOL_UDP}/{@code UDP_GRO} with a 32-bit segment size
 * (the payload is several datagrams of one sender, each that long but the last).
 *
 * <pre>
 * struct cmsghdr {                  // 16 bytes, then the data, the whole padded to 8: CMSG_SPACE
 *     size_t cmsg_len;                  //  0  CMSG_LEN(data) = 16 + data bytes
 *     int    cmsg_level;                //  8  SOL_UDP = 17
 *     int    cmsg_type;                 // 12  UDP_SEGMENT = 103 | UDP_GRO = 104
 *     unsigned char data[];             // 16  uint16_t (UDP_SEGMENT) | int (UDP_GRO)
 * };
 * </pre>
 */
public final class UdpCmsg {
    static final int CMSG_LEN = 0;
    static final int CMSG_LEVEL = 8;
    static final int CMSG_TYPE = 12;
    static final int CMSG_DATA = 16;
    static final int HEADER = 16;
    /** CMSG_SPACE of a 4-byte datum: room for either message. */
    public static final int SPACE = 24;

    private UdpCmsg() {
    }

    /** Writes a {@code UDP_SEGMENT} message for {@code segmentSize} at {@code offset} of {@code at}. */
    public static void segment(MemorySegment at, long offset, int segmentSize) {
        at.set(ValueLayout.JAVA_LONG_UNALIGNED, offset + CMSG_LEN, HEADER + 2);
        at.set(ValueLayout.JAVA_INT_UNALIGNED, offset + CMSG_LEVEL, Sockets.SOL_UDP);
        at.set(ValueLayout.JAVA_INT_UNALIGNED, offset + CMSG_TYPE, Sockets.UDP_SEGMENT);
        at.set(ValueLayout.JAVA_SHORT_UNALIGNED, offset + CMSG_DATA, (short) segmentSize);
    }

    /**
     * The segment size of a received {@code UDP_GRO} message in the {@code length} ancillary bytes at
     * {@code offset}, or 0 when there is none (the datagram came as it was sent).
     */
    public static int groSegmentSize(MemorySegment at, long offset, int length) {
        long p = 0;
        while (p + HEADER <= length) {
            long cmsgLen = at.get(ValueLayout.JAVA_LONG_UNALIGNED, offset + p + CMSG_LEN);
            if (cmsgLen < HEADER || p + cmsgLen > length) {
                return 0;
            }
            if (at.get(ValueLayout.JAVA_INT_UNALIGNED, offset + p + CMSG_LEVEL) == Sockets.SOL_UDP
                    && at.get(ValueLayout.JAVA_INT_UNALIGNED, offset + p + CMSG_TYPE) == Sockets.UDP_GRO
                    && cmsgLen >= HEADER + 4) {
                return at.get(ValueLayout.JAVA_INT_UNALIGNED, offset + p + CMSG_DATA);
            }
            p += (cmsgLen + 7) & ~7L;
        }
        return 0;
    }
}
