package io.vswitch.protocol;

/**
 * The header in front of every frame on a virtio-net queue. With VERSION_1 (always negotiated here) it is
 * 12 bytes whether or not MRG_RXBUF is.
 *
 * <pre>
 * struct virtio_net_hdr_v1 {
 *     u8   flags;        //  0   NEEDS_CSUM 1, DATA_VALID 2, RSC_INFO 4
 *     u8   gso_type;     //  1   NONE 0, TCPV4 1, UDP 3, TCPV6 4, UDP_L4 5, | ECN 0x80
 *     le16 hdr_len;      //  2   Ethernet + IP + TCP headers (a hint: Linux gives its linear part)
 *     le16 gso_size;     //  4   MSS of the segments to cut
 *     le16 csum_start;   //  6   where the checksum's coverage starts (from the Ethernet header)
 *     le16 csum_offset;  //  8   where from csum_start the 16-bit checksum field lies
 *     le16 num_buffers;  // 10   with MRG_RXBUF: how many used entries this frame spans
 * };                     // 12 bytes
 * </pre>
 */
public final class VirtioNetHeader {
    public static final int SIZE = 12;
    public static final int FLAGS = 0;
    public static final int GSO_TYPE = 1;
    public static final int HDR_LEN = 2;
    public static final int GSO_SIZE = 4;
    public static final int CSUM_START = 6;
    public static final int CSUM_OFFSET = 8;
    public static final int NUM_BUFFERS = 10;

    public static final int F_NEEDS_CSUM = 1;
    public static final int F_DATA_VALID = 2;
    public static final int F_RSC_INFO = 4;
    public static final int GSO_NONE = 0;
    public static final int GSO_TCPV4 = 1;
    public static final int GSO_UDP = 3;
    public static final int GSO_TCPV6 = 4;
    public static final int GSO_UDP_L4 = 5;
    public static final int GSO_ECN = 0x80;

    private VirtioNetHeader() {
    }
}
