package io.vswitch.vhost.virtio;

/** Why a queue stopped: the guest broke the ring's rules. Kept for the log line and the counters. */
public enum QueueFault {
    NONE("no fault"),
    HEAD_OUT_OF_RANGE("descriptor head index out of range"),
    NEXT_OUT_OF_RANGE("next descriptor index out of range"),
    CHAIN_LOOP("descriptor chain longer than the queue (loop)"),
    ADDRESS_OUT_OF_MEMORY("descriptor address range not inside one guest memory region"),
    BAD_INDIRECT("invalid indirect descriptor table"),
    NESTED_INDIRECT("indirect descriptor inside an indirect table"),
    WRONG_DIRECTION("descriptor direction wrong for the queue (write flag on TX or missing on RX)"),
    AVAIL_INDEX_JUMP("available index moved by more than the queue size"),
    CHAIN_NOT_AVAILABLE("packed ring: a descriptor chain continues into a descriptor the driver has not made available"),
    MEMORY_GONE("guest memory was unmapped under the queue");

    private final String description;

    QueueFault(String description) {
        this.description = description;
    }

    public String description() {
        return description;
    }
}
