package io.vswitch.protocol;

/**
 * Front-end request codes (QEMU docs/interop/vhost-user.rst), with how many descriptors each may carry and
 * whether it always gets a reply. Requests without an entry here are unknown to us.
 */
public enum VhostUserRequest {
    GET_FEATURES(1, 0, true),
    SET_FEATURES(2, 0, false),
    SET_OWNER(3, 0, false),
    RESET_OWNER(4, 0, false),
    SET_MEM_TABLE(5, 8, false),
    SET_LOG_BASE(6, 1, true),
    SET_LOG_FD(7, 1, false),
    SET_VRING_NUM(8, 0, false),
    SET_VRING_ADDR(9, 0, false),
    SET_VRING_BASE(10, 0, false),
    GET_VRING_BASE(11, 0, true),
    SET_VRING_KICK(12, 1, false),
    SET_VRING_CALL(13, 1, false),
    SET_VRING_ERR(14, 1, false),
    GET_PROTOCOL_FEATURES(15, 0, true),
    SET_PROTOCOL_FEATURES(16, 0, false),
    GET_QUEUE_NUM(17, 0, true),
    SET_VRING_ENABLE(18, 0, false),
    SEND_RARP(19, 0, false),
    NET_SET_MTU(20, 0, false),
    SET_BACKEND_REQ_FD(21, 1, false),
    IOTLB_MSG(22, 0, false),
    SET_VRING_ENDIAN(23, 0, false),
    GET_CONFIG(24, 0, true),
    SET_CONFIG(25, 0, false),
    GET_INFLIGHT_FD(31, 0, true),
    SET_INFLIGHT_FD(32, 1, false),
    RESET_DEVICE(34, 0, false),
    VRING_KICK(35, 0, false),
    GET_MAX_MEM_SLOTS(36, 0, true),
    ADD_MEM_REG(37, 1, false),
    REM_MEM_REG(38, 1, false),
    SET_STATUS(39, 0, false),
    GET_STATUS(40, 0, true);

    private static final VhostUserRequest[] BY_CODE = new VhostUserRequest[64];

    static {
        for (VhostUserRequest r : values()) {
            BY_CODE[r.code] = r;
        }
    }

    private final int code;
    private final int maxFds;
    private final boolean replies;

    VhostUserRequest(int code, int maxFds, boolean replies) {
        this.code = code;
        this.maxFds = maxFds;
        this.replies = replies;
    }

    public int code() {
        return code;
    }

    /** The most descriptors this request may carry; any beyond are closed and the request refused. */
    public int maxFds() {
        return maxFds;
    }

    /** True when the request always has a reply (not only an ack with REPLY_ACK). */
    public boolean replies() {
        return replies;
    }

    /** The request with this code, or null. */
    public static VhostUserRequest of(int code) {
        return code > 0 && code < BY_CODE.length ? BY_CODE[code] : null;
    }
}
