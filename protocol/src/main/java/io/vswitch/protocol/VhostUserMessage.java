package io.vswitch.protocol;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * One vhost-user message in a reusable native buffer (header, then payload), as it travels on the socket.
 *
 * <pre>
 * struct vhost_user_msg {
 *     u32 request;         //  0   front-end request code (VhostUserRequest)
 *     u32 flags;           //  4   bits 0-1 version (1), bit 2 reply, bit 3 need_reply
 *     u32 size;            //  8   payload bytes that follow
 *     u8  payload[size];   // 12
 * };
 *
 * payloads used here:
 *   u64                                  features, protocol features, GET_QUEUE_NUM, ack, status, kick/call/err
 *                                        (bits 0-7 queue index, bit 8 "no fd: poll")
 *   struct vhost_vring_state { u32 index; u32 num; }                                       8 bytes
 *   struct vhost_vring_addr  { u32 index; u32 flags; u64 desc; u64 used; u64 avail; u64 log; }   40 bytes
 *   struct vhost_memory      { u32 nregions; u32 padding; region[nregions]; }            8 + 32 n bytes
 *   struct vhost_memory_region { u64 guest_phys_addr; u64 memory_size; u64 userspace_addr; u64 mmap_offset; }
 *   struct vhost_user_mem_reg  { u64 padding; vhost_memory_region region; }              40 bytes
 *   struct vhost_user_log      { u64 mmap_size; u64 mmap_offset; }                         16 bytes
 * </pre>
 */
public final class VhostUserMessage {
    public static final int HEADER_SIZE = 12;
    public static final int REQUEST = 0;
    public static final int FLAGS = 4;
    public static final int SIZE = 8;
    /** Larger than any payload a net backend is sent (the 8-region memory table is 264 bytes). */
    public static final int MAX_PAYLOAD = 4096;

    public static final int VERSION = 0x1;
    public static final int VERSION_MASK = 0x3;
    public static final int FLAG_REPLY = 0x4;
    public static final int FLAG_NEED_REPLY = 0x8;

    public static final int U64_SIZE = 8;
    public static final int VRING_STATE_SIZE = 8;
    public static final int VRING_STATE_INDEX = 0;
    public static final int VRING_STATE_NUM = 4;
    public static final int VRING_ADDR_SIZE = 40;
    public static final int VRING_ADDR_INDEX = 0;
    public static final int VRING_ADDR_FLAGS = 4;
    public static final int VRING_ADDR_DESC = 8;
    public static final int VRING_ADDR_USED = 16;
    public static final int VRING_ADDR_AVAIL = 24;
    public static final int VRING_ADDR_LOG = 32;
    public static final int MEMORY_NREGIONS = 0;
    public static final int MEMORY_REGIONS = 8;
    public static final int REGION_SIZE = 32;
    public static final int REGION_GUEST_PHYS = 0;
    public static final int REGION_MEMORY_SIZE = 8;
    public static final int REGION_USERSPACE = 16;
    public static final int REGION_MMAP_OFFSET = 24;
    public static final int MEM_REG_SIZE = 40;
    public static final int MEM_REG_REGION = 8;
    public static final int LOG_SIZE = 16;
    public static final int LOG_MMAP_SIZE = 0;
    public static final int LOG_MMAP_OFFSET = 8;
    /** SET_VRING_ADDR flags: log the used ring's writes at log_guest_addr. */
    public static final int VRING_F_LOG = 1;
    public static final long VRING_INDEX_MASK = 0xFF;
    public static final long VRING_NOFD_MASK = 0x100;

    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED;

    private final MemorySegment buffer;

    public VhostUserMessage(Arena arena) {
        this.buffer = arena.allocate(HEADER_SIZE + MAX_PAYLOAD, 8);
    }

    public MemorySegment buffer() {
        return buffer;
    }

    public MemorySegment header() {
        return buffer.asSlice(0, HEADER_SIZE);
    }

    public MemorySegment payload() {
        return buffer.asSlice(HEADER_SIZE, MAX_PAYLOAD);
    }

    public int request() {
        return buffer.get(U32, REQUEST);
    }

    public int flags() {
        return buffer.get(U32, FLAGS);
    }

    public int size() {
        return buffer.get(U32, SIZE);
    }

    public boolean needsReply() {
        return (flags() & FLAG_NEED_REPLY) != 0;
    }

    public long u64(int offset) {
        return buffer.get(U64, HEADER_SIZE + offset);
    }

    public int u32(int offset) {
        return buffer.get(U32, HEADER_SIZE + offset);
    }

    public int u8(int offset) {
        return buffer.get(ValueLayout.JAVA_BYTE, HEADER_SIZE + offset) & 0xFF;
    }

    /** Turns this buffer into a reply to {@code request} with {@code size} payload bytes (to be filled in). */
    public VhostUserMessage reply(int request, int size) {
        buffer.set(U32, REQUEST, request);
        buffer.set(U32, FLAGS, VERSION | FLAG_REPLY);
        buffer.set(U32, SIZE, size);
        return this;
    }

    /** Starts a front-end request (used by test frontends). */
    public VhostUserMessage request(int request, int flags, int size) {
        buffer.set(U32, REQUEST, request);
        buffer.set(U32, FLAGS, VERSION | flags);
        buffer.set(U32, SIZE, size);
        return this;
    }

    public VhostUserMessage putU64(int offset, long value) {
        buffer.set(U64, HEADER_SIZE + offset, value);
        return this;
    }

    public VhostUserMessage putU32(int offset, int value) {
        buffer.set(U32, HEADER_SIZE + offset, value);
        return this;
    }

    /** Header plus payload bytes, as sent. */
    public int wireLength() {
        return HEADER_SIZE + size();
    }
}
