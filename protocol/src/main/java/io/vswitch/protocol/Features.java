package io.vswitch.protocol;

/** Feature bits: virtio-net device features and vhost-user protocol features that we use or refuse. */
public final class Features {
    public static final int VIRTIO_NET_F_CSUM = 0;
    public static final int VIRTIO_NET_F_GUEST_CSUM = 1;
    public static final int VIRTIO_NET_F_MTU = 3;
    public static final int VIRTIO_NET_F_MAC = 5;
    public static final int VIRTIO_NET_F_GUEST_TSO4 = 7;
    public static final int VIRTIO_NET_F_GUEST_TSO6 = 8;
    public static final int VIRTIO_NET_F_GUEST_ECN = 9;
    public static final int VIRTIO_NET_F_GUEST_UFO = 10;
    public static final int VIRTIO_NET_F_HOST_TSO4 = 11;
    public static final int VIRTIO_NET_F_HOST_TSO6 = 12;
    public static final int VIRTIO_NET_F_HOST_ECN = 13;
    public static final int VIRTIO_NET_F_HOST_UFO = 14;
    public static final int VIRTIO_NET_F_MRG_RXBUF = 15;
    public static final int VIRTIO_NET_F_STATUS = 16;
    public static final int VIRTIO_NET_F_CTRL_VQ = 17;
    public static final int VIRTIO_NET_F_GUEST_ANNOUNCE = 21;
    public static final int VIRTIO_NET_F_MQ = 22;
    public static final int VIRTIO_F_NOTIFY_ON_EMPTY = 24;
    public static final int VHOST_F_LOG_ALL = 26;
    public static final int VIRTIO_F_ANY_LAYOUT = 27;
    public static final int VIRTIO_RING_F_INDIRECT_DESC = 28;
    public static final int VIRTIO_RING_F_EVENT_IDX = 29;
    public static final int VHOST_USER_F_PROTOCOL_FEATURES = 30;
    public static final int VIRTIO_F_VERSION_1 = 32;
    public static final int VIRTIO_F_RING_PACKED = 34;
    public static final int VIRTIO_F_IN_ORDER = 35;

    public static final int PROTOCOL_F_MQ = 0;
    public static final int PROTOCOL_F_LOG_SHMFD = 1;
    public static final int PROTOCOL_F_RARP = 2;
    public static final int PROTOCOL_F_REPLY_ACK = 3;
    public static final int PROTOCOL_F_MTU = 4;
    public static final int PROTOCOL_F_CONFIGURE_MEM_SLOTS = 15;
    public static final int PROTOCOL_F_STATUS = 16;

    /**
     * What the switch offers to a virtio-net frontend: only what the data path really implements, with
     * {@link #OFFLOAD_FEATURES} unless the port turned them off. RING_PACKED: packed virtqueues; IN_ORDER:
     * buffers are used in the order they were made available (a TX burst returns as one used element). LOG_ALL: dirty-page
     * logging for live migration. CTRL_VQ and GUEST_ANNOUNCE: the frontend serves the control queue itself
     * (QEMU, DPDK virtio-user), so that a migrated guest announces its own MAC. MTU: the frontend tells the
     * guest its MTU (QEMU's {@code host_mtu}) and checks it with us first (NET_SET_MTU), which refuses an MTU
     * above the port's {@code mtu}.
     */
    public static final long DEVICE_FEATURES = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_NET_F_MRG_RXBUF)
            | bit(VIRTIO_RING_F_EVENT_IDX) | bit(VIRTIO_RING_F_INDIRECT_DESC) | bit(VIRTIO_NET_F_STATUS)
            | bit(VIRTIO_F_ANY_LAYOUT) | bit(VHOST_USER_F_PROTOCOL_FEATURES) | bit(VHOST_F_LOG_ALL)
            | bit(VIRTIO_NET_F_CTRL_VQ) | bit(VIRTIO_NET_F_GUEST_ANNOUNCE) | bit(VIRTIO_NET_F_MTU)
            | bit(VIRTIO_F_RING_PACKED) | bit(VIRTIO_F_IN_ORDER) | offloadBits();

    /**
     * Checksum and TCP segmentation offloads, both ways (see {@code io.vswitch.vhost.net.offload}): the guest may
     * send frames with a partial checksum (CSUM) and TCP frames up to 64 KiB to be cut at gso_size (HOST_TSO4/6,
     * with the CWR bit: HOST_ECN); the switch validates the header and either hands the frame on as it is to a
     * guest that negotiated the matching GUEST_* features, or finishes the work in software. UFO is not offered:
     * Linux stopped sending it (4.14) and IPv4 fragmentation in software is not implemented.
     * A port with {@code offloads: false} offers none of these.
     */
    public static final long OFFLOAD_FEATURES = offloadBits();

    private static long offloadBits() {
        return bit(VIRTIO_NET_F_CSUM) | bit(VIRTIO_NET_F_GUEST_CSUM) | bit(VIRTIO_NET_F_HOST_TSO4)
                | bit(VIRTIO_NET_F_HOST_TSO6) | bit(VIRTIO_NET_F_HOST_ECN) | bit(VIRTIO_NET_F_GUEST_TSO4)
                | bit(VIRTIO_NET_F_GUEST_TSO6) | bit(VIRTIO_NET_F_GUEST_ECN);
    }

    /**
     * The protocol features we implement for a single-queue port. A multiqueue port adds {@link #PROTOCOL_F_MQ}
     * (see {@link #protocolFeatures(int)}).
     */
    public static final long PROTOCOL_FEATURES = bit(PROTOCOL_F_REPLY_ACK) | bit(PROTOCOL_F_CONFIGURE_MEM_SLOTS)
            | bit(PROTOCOL_F_STATUS) | bit(PROTOCOL_F_LOG_SHMFD) | bit(PROTOCOL_F_RARP) | bit(PROTOCOL_F_MTU);

    /**
     * What a port with {@code queuePairs} queue pairs offers: multiqueue (VIRTIO_NET_F_MQ, so the guest may use
     * more than one pair, with the pair count set through the control queue, which the frontend serves) only when
     * it has more than one pair, so a single-queue port negotiates exactly what it did before multiqueue existed.
     */
    public static long deviceFeatures(int queuePairs) {
        return queuePairs > 1 ? DEVICE_FEATURES | bit(VIRTIO_NET_F_MQ) : DEVICE_FEATURES;
    }

    /** The protocol features of a port with {@code queuePairs} queue pairs: PROTOCOL_F_MQ (GET_QUEUE_NUM) above one. */
    public static long protocolFeatures(int queuePairs) {
        return queuePairs > 1 ? PROTOCOL_FEATURES | bit(PROTOCOL_F_MQ) : PROTOCOL_FEATURES;
    }

    private Features() {
    }

    public static long bit(int n) {
        return 1L << n;
    }

    public static boolean has(long features, int n) {
        return (features & bit(n)) != 0;
    }
}
