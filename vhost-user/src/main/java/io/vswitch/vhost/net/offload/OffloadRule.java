package io.vswitch.vhost.net.offload;

/**
 * Why {@link OffloadCheck} refused a transmitted frame's virtio-net header. Each is counted as
 * {@code drop_bad_offload_header} on the sending port; the frame is never forwarded, never segmented, and
 * nothing is written anywhere because of it.
 */
public enum OffloadRule {
    /** flags has a bit other than NEEDS_CSUM (DATA_VALID is ignored on transmit): RSC_INFO or unknown bits. */
    UNKNOWN_FLAGS,
    /** hdr_len is longer than the frame. */
    HDR_LEN_OUTSIDE_FRAME,
    /** NEEDS_CSUM although VIRTIO_NET_F_CSUM was not negotiated. */
    CSUM_NOT_NEGOTIATED,
    /** csum_start lies inside the Ethernet header (before byte 14). */
    CSUM_START_IN_ETHERNET_HEADER,
    /** csum_start + csum_offset + 2 is beyond the frame: the checksum field would lie outside it. */
    CSUM_OUTSIDE_FRAME,
    /** gso_type is none of NONE, TCPV4, UDP, TCPV6, UDP_L4 (with or without the ECN bit). */
    UNKNOWN_GSO_TYPE,
    /** The ECN bit without a GSO type. */
    ECN_WITHOUT_GSO,
    /** A GSO type whose HOST_* feature (TSO4, TSO6, ECN; UFO and USO are never offered) was not negotiated. */
    GSO_NOT_NEGOTIATED,
    /** A GSO type without NEEDS_CSUM (virtio 1.2, 5.1.6.2: the driver must set both). */
    GSO_WITHOUT_CSUM,
    /** TCPV4 on a frame that is not IPv4/TCP, TCPV6 on one that is not IPv6/TCP (extension headers included). */
    GSO_TYPE_MISMATCH,
    /** An IPv4 header shorter than 20 bytes or longer than the frame, or a fragment. */
    MALFORMED_IP_HEADER,
    /** A TCP header with a data offset below 5, or beyond the frame. */
    MALFORMED_TCP_HEADER,
    /** For GSO: csum_start is not where the TCP header starts, or csum_offset is not TCP's 16. */
    CSUM_NOT_AT_TCP_CHECKSUM,
    /** A TCP segment with CWR set but no ECN bit in gso_type (the driver must say so, virtio 1.2 5.1.6.2). */
    CWR_WITHOUT_ECN,
    /** gso_size below 64, or one segment (headers + gso_size) longer than the port's MTU allows. */
    GSO_SIZE_OUT_OF_RANGE,
    /** A GSO frame without TCP payload. */
    GSO_WITHOUT_PAYLOAD
}
