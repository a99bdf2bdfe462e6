package io.vswitch.protocol;

/**
 * The header in front of every frame on a virtio-net queue. With VERSION_1 (always negotiated here) it is
 * 12 bytes whether or not MRG_RXBUF is.
 *
 * <pre>
 * struct virtio_net_hdr_v1 {
 *     u8   flags;        //  0   we offer no checksum offload: always 0
 *     u8   gso_type;     //  1   we offer no GSO: always 0 (GSO_NONE)
 *     le16 hdr_len;      //  2
 *     le16 gso_size;     //  4
 *     le16 csum_start;   //  6
 *     le16 csum_offset;  //  8
 *     le16 num_buffers;  // 10   with MRG_RXBUF: how many used entries this frame spans
 * };                     // 12 bytes
 * </pre>
 */
public final class VirtioNetHeader {
    public static final int SIZE = 12;
    public static final int FLAGS = 0;
    public static final int GSO_TYPE = 1;
    public static final int NUM_BUFFERS = 10;

    private VirtioNetHeader() {
    }
}
