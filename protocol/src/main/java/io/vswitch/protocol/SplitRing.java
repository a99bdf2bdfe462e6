package io.vswitch.protocol;

/**
 * Layout of a split virtqueue (virtio 1.1, 2.6), shared with the guest. All fields little-endian.
 *
 * <pre>
 * Descriptor table: queue_size entries of 16 bytes, 16-byte aligned
 *   struct virtq_desc { le64 addr; le32 len; le16 flags; le16 next; }
 *                        0         8         12         14
 *
 * Available ring (driver writes), 2-byte aligned
 *   struct virtq_avail { le16 flags; le16 idx; le16 ring[queue_size]; le16 used_event; }
 *                         0          2         4                      4 + 2 * queue_size
 *
 * Used ring (device writes), 4-byte aligned
 *   struct virtq_used  { le16 flags; le16 idx; struct { le32 id; le32 len; } ring[queue_size]; le16 avail_event; }
 *                         0          2         4 (8 bytes each)                                 4 + 8 * queue_size
 * </pre>
 */
public final class SplitRing {
    public static final int DESC_SIZE = 16;
    public static final int DESC_ADDR = 0;
    public static final int DESC_LEN = 8;
    public static final int DESC_FLAGS = 12;
    public static final int DESC_NEXT = 14;

    public static final int DESC_F_NEXT = 1;
    public static final int DESC_F_WRITE = 2;
    public static final int DESC_F_INDIRECT = 4;

    public static final int AVAIL_FLAGS = 0;
    public static final int AVAIL_IDX = 2;
    public static final int AVAIL_RING = 4;
    public static final int AVAIL_ELEM_SIZE = 2;
    public static final int AVAIL_F_NO_INTERRUPT = 1;

    public static final int USED_FLAGS = 0;
    public static final int USED_IDX = 2;
    public static final int USED_RING = 4;
    public static final int USED_ELEM_SIZE = 8;
    public static final int USED_ELEM_ID = 0;
    public static final int USED_ELEM_LEN = 4;
    public static final int USED_F_NO_NOTIFY = 1;

    public static final int MAX_QUEUE_SIZE = 32768;

    private SplitRing() {
    }

    public static long descTableBytes(int queueSize) {
        return (long) DESC_SIZE * queueSize;
    }

    /** Including used_event, which exists only with EVENT_IDX but costs nothing to require. */
    public static long availBytes(int queueSize) {
        return AVAIL_RING + (long) AVAIL_ELEM_SIZE * queueSize + 2;
    }

    public static long usedEventOffset(int queueSize) {
        return AVAIL_RING + (long) AVAIL_ELEM_SIZE * queueSize;
    }

    /** Including avail_event. */
    public static long usedBytes(int queueSize) {
        return USED_RING + (long) USED_ELEM_SIZE * queueSize + 2;
    }

    public static long availEventOffset(int queueSize) {
        return USED_RING + (long) USED_ELEM_SIZE * queueSize;
    }

    /** virtio's vring_need_event: has {@code eventIdx} been passed while moving from {@code oldIdx} to {@code newIdx}? */
    public static boolean needEvent(int eventIdx, int newIdx, int oldIdx) {
        return ((newIdx - eventIdx - 1) & 0xFFFF) < ((newIdx - oldIdx) & 0xFFFF);
    }
}
