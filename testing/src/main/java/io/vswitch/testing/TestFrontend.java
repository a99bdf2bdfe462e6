package io.vswitch.testing;

import io.vswitch.sys.EventFd;
import io.vswitch.sys.Libc;
import io.vswitch.sys.MappedMemory;
import io.vswitch.sys.ReceivedFds;
import io.vswitch.sys.SharedMemory;
import io.vswitch.sys.UnixSocket;
import io.vswitch.protocol.Features;
import io.vswitch.protocol.VhostUserMessage;
import io.vswitch.protocol.VhostUserRequest;
import io.vswitch.protocol.VirtioNetHeader;

import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;

import static io.vswitch.protocol.SplitRing.*;

/**
 * A vhost-user frontend (driver side) for tests: what QEMU or DPDK virtio-user do, in plain Java.
 *
 * <p>Guest RAM is one memfd of {@link Options#memorySize} bytes, shared at file offset
 * {@link Options#mmapOffset}. Guest-physical addresses start at {@link #GUEST_PHYS_BASE}; the frontend
 * pretends it mapped the RAM at the frontend-virtual address {@link #USER_BASE} (ring addresses in
 * SET_VRING_ADDR use that space), so both of the backend's translations are exercised and cannot be mixed
 * up. Memory layout, as offsets into guest RAM:
 *
 * <pre>
 *   queue 0 (guest RX): descriptor table | avail ring | used ring      (each part 4 KiB aligned)
 *   queue 1 (guest TX): descriptor table | avail ring | used ring
 *   buffers and indirect tables: a bump allocator that wraps around
 * </pre>
 *
 * <p>Messages: every request that has no reply of its own asks for an ack (NEED_REPLY) once REPLY_ACK is
 * negotiated, so each call returns after the backend applied it. Not thread-safe; speed and allocation do not
 * matter here, clarity does.
 */
public final class TestFrontend implements AutoCloseable {
    public static final long GUEST_PHYS_BASE = 0x10_0000L;
    public static final long USER_BASE = 0x7f3a_5000_0000L;
    public static final int RX = 0;
    public static final int TX = 1;
    public static final int HEADER = VirtioNetHeader.SIZE;
    /** How long to wait for a reply before failing the test instead of hanging it. */
    public static final long REPLY_TIMEOUT_MS = 5000;

    private static final AtomicInteger SERIAL = new AtomicInteger();
    private static final VarHandle U16_ATOMIC = ValueLayout.JAVA_SHORT.varHandle();
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED;
    private static final MethodHandle POLL = Libc.call("poll",
            FunctionDescriptor.of(Libc.C_INT, Libc.C_POINTER, Libc.C_LONG, Libc.C_INT));
    private static final short POLLIN = 1;
    private static final MethodHandle DUP = Libc.call("dup", FunctionDescriptor.of(Libc.C_INT, Libc.C_INT));

    /** What to negotiate and how to lay out guest memory. */
    public static final class Options {
        public long memorySize = 2L << 20;
        /** Where guest RAM starts in the memfd (the file is this much larger). Not 0, to exercise mmap_offset. */
        public long mmapOffset = 4096;
        public int queueSize = 256;
        public boolean eventIdx;
        public boolean mergeable;
        public boolean indirect = true;
        /** VHOST_USER_F_PROTOCOL_FEATURES: without it there is no REPLY_ACK and no SET_VRING_ENABLE. */
        public boolean protocolFeatures = true;
        public boolean replyAck = true;
        /** VIRTIO_F_RING_PACKED: the rings are packed (drive them with {@link PackedDriver}). */
        public boolean packed;
        /** VIRTIO_F_IN_ORDER. */
        public boolean inOrder;
        /** Queue pairs (rings 0..2N-1); above 1 the frontend negotiates MQ, sets up pair 0 only, see {@link #setUpPair}. */
        public int queuePairs = 1;
        /** Further feature bits to negotiate (offloads, say). */
        public long extraFeatures;

        public Options extraFeatures(long bits) {
            extraFeatures = bits;
            return this;
        }

        public Options queuePairs(int n) {
            queuePairs = n;
            return this;
        }

        public Options packed(boolean on) {
            packed = on;
            return this;
        }

        public Options inOrder(boolean on) {
            inOrder = on;
            return this;
        }

        /** The ring base a fresh queue starts from: 0, or for a packed ring offset 0 with wrap counter 1. */
        public int initialBase() {
            return packed ? 0x8000 : 0;
        }

        public Options eventIdx(boolean on) {
            eventIdx = on;
            return this;
        }

        public Options mergeable(boolean on) {
            mergeable = on;
            return this;
        }

        public Options protocolFeatures(boolean on) {
            protocolFeatures = on;
            return this;
        }

        public Options queueSize(int n) {
            queueSize = n;
            return this;
        }

        public Options memorySize(long n) {
            memorySize = n;
            return this;
        }

        public long features() {
            long f = Features.bit(Features.VIRTIO_F_VERSION_1);
            if (eventIdx) {
                f |= Features.bit(Features.VIRTIO_RING_F_EVENT_IDX);
            }
            if (mergeable) {
                f |= Features.bit(Features.VIRTIO_NET_F_MRG_RXBUF);
            }
            if (indirect) {
                f |= Features.bit(Features.VIRTIO_RING_F_INDIRECT_DESC);
            }
            if (protocolFeatures) {
                f |= Features.bit(Features.VHOST_USER_F_PROTOCOL_FEATURES);
            }
            if (packed) {
                f |= Features.bit(Features.VIRTIO_F_RING_PACKED);
            }
            if (inOrder) {
                f |= Features.bit(Features.VIRTIO_F_IN_ORDER);
            }
            if (queuePairs > 1) {
                f |= Features.bit(Features.VIRTIO_NET_F_MQ);
            }
            return f | extraFeatures;
        }
    }

    /** One region of a memory table as sent in SET_MEM_TABLE. */
    public record Region(long guestPhysAddr, long size, long userAddr, long mmapOffset) {
    }

    /** A reply read from the backend. */
    public record Reply(int request, int flags, int size, byte[] payload) {
        public long u64(int offset) {
            return ByteBuffer.wrap(payload).order(ByteOrder.LITTLE_ENDIAN).getLong(offset);
        }

        public int u32(int offset) {
            return ByteBuffer.wrap(payload).order(ByteOrder.LITTLE_ENDIAN).getInt(offset);
        }
    }

    /** A frame received on queue 0, without its virtio-net header. */
    public record RxFrame(byte[] data, int numBuffers, byte[] header) {
    }

    /** A used entry: descriptor head and the length the device reported. */
    public record Used(int id, int length) {
    }

    /** The driver's view of one queue. */
    private final class Ring {
        final int index;
        final int size;
        final long descOffset;
        final long availOffset;
        final long usedOffset;
        int availIdx;        // next avail.idx the driver publishes (shadow)
        int lastUsed;        // used entries consumed so far
        final ArrayDeque<Integer> free = new ArrayDeque<>();
        /** head -> descriptor ids of the chain and the buffers (gpa, length) it points at. */
        final Map<Integer, int[]> chainIds = new HashMap<>();
        final Map<Integer, List<long[]>> chainBuffers = new HashMap<>();
        EventFd call;
        EventFd kick;
        EventFd err;

        Ring(int index, int size, long descOffset, long availOffset, long usedOffset) {
            this.index = index;
            this.size = size;
            this.descOffset = descOffset;
            this.availOffset = availOffset;
            this.usedOffset = usedOffset;
            resetDriverState();
        }

        void resetDriverState() {
            availIdx = 0;
            lastUsed = 0;
            free.clear();
            for (int i = 0; i < size; i++) {
                free.add(i);
            }
            chainIds.clear();
            chainBuffers.clear();
            if ((index & 1) == 1) {
                inOrderHeads.clear();
            }
            ram.asSlice(descOffset, descTableBytes(size)).fill((byte) 0);
            ram.asSlice(availOffset, availBytes(size)).fill((byte) 0);
            ram.asSlice(usedOffset, usedBytes(size)).fill((byte) 0);
        }
    }

    private final Options options;
    private final String memName;
    private final UnixSocket socket;
    private final Arena arena = Arena.ofShared();
    private final VhostUserMessage msg = new VhostUserMessage(arena);
    private final int memfd;
    private final MappedMemory mapping;
    private final MemorySegment ram;
    private final Ring[] rings;
    /** The rings the guest TX/RX helpers use (pair 0's unless {@link #usePair} chose another). */
    private int txRing = TX;
    private int rxRing = RX;
    private final long bufferStart;
    private long nextBuffer;
    private boolean ackEnabled;
    private boolean closed;

    /** Takes over a connected socket (closed by {@link #close()}) and creates guest memory; sends nothing yet. */
    public TestFrontend(UnixSocket socket, Options options) {
        this.socket = socket;
        this.options = options;
        this.memName = "vtest-guest-" + ProcessHandle.current().pid() + "-" + SERIAL.incrementAndGet();
        this.memfd = SharedMemory.memfd(memName, options.mmapOffset + options.memorySize, false);
        this.mapping = SharedMemory.map(memfd, options.mmapOffset + options.memorySize, 0);
        this.ram = mapping.segment().asSlice(options.mmapOffset, options.memorySize);
        long at = 0;
        this.rings = new Ring[2 * options.queuePairs];
        for (int q = 0; q < rings.length; q++) {
            int n = options.queueSize;
            long desc = at;
            long avail = align(desc + descTableBytes(n), 4096);
            long used = align(avail + availBytes(n), 4096);
            at = align(used + usedBytes(n), 4096);
            rings[q] = new Ring(q, n, desc, avail, used);
        }
        bufferStart = at;
        nextBuffer = at;
        if (bufferStart >= options.memorySize) {
            throw new IllegalArgumentException("guest memory too small for the rings");
        }
    }

    /** Connects to a backend listening at {@code path} (the server role of a port). */
    public static TestFrontend connect(Path path, Options options) {
        return new TestFrontend(UnixSocket.connect(path), options);
    }

    public static TestFrontend connect(Path path) {
        return connect(path, new Options());
    }

    private static long align(long v, long a) {
        return (v + a - 1) & -a;
    }

    public Options options() {
        return options;
    }

    /** The memfd's name as it appears in /proc/self/maps ("/memfd:NAME (deleted)"). */
    public String memoryName() {
        return memName;
    }

    public int memfd() {
        return memfd;
    }

    public UnixSocket socket() {
        return socket;
    }

    public MemorySegment ram() {
        return ram;
    }

    public int queueSize(int q) {
        return rings[q].size;
    }

    // ================================================================ messages

    /** The whole start-up sequence; afterwards both rings are started and enabled (asserted by acks). */
    public TestFrontend setUp() throws IOException {
        long offered = getFeatures();
        long wanted = options.features();
        if ((offered & wanted) != wanted) {
            throw new AssertionError("backend does not offer 0x" + Long.toHexString(wanted & ~offered));
        }
        expectOk(setFeatures(wanted), "SET_FEATURES");
        if (options.protocolFeatures) {
            long offeredProtocol = getProtocolFeatures();
            long wantedProtocol = (options.replyAck ? Features.bit(Features.PROTOCOL_F_REPLY_ACK) : 0)
                    | (options.queuePairs > 1 ? Features.bit(Features.PROTOCOL_F_MQ) : 0);
            if ((offeredProtocol & wantedProtocol) != wantedProtocol) {
                throw new AssertionError("backend does not offer REPLY_ACK");
            }
            expectOk(setProtocolFeatures(wantedProtocol), "SET_PROTOCOL_FEATURES");
            ackEnabled = options.replyAck;
        }
        expectOk(setOwner(), "SET_OWNER");
        expectOk(setMemTable(), "SET_MEM_TABLE");
        for (int q = 0; q < 2; q++) {
            setUpRing(q, options.initialBase());
        }
        sync();
        return this;
    }

    /** Sets up both rings of pair {@code pair} (as {@link #setUp()} does for pair 0). */
    public void setUpPair(int pair) throws IOException {
        setUpRing(2 * pair, options.initialBase());
        setUpRing(2 * pair + 1, options.initialBase());
        sync();
    }

    /** Makes the guest TX and RX helpers (transmit, txCompleted, postRxBuffers, receive...) use pair {@code pair}. */
    public TestFrontend usePair(int pair) {
        txRing = 2 * pair + 1;
        rxRing = 2 * pair;
        return this;
    }

    /** SET_VRING_NUM, BASE, ADDR, CALL, ERR and KICK (each a new eventfd the frontend keeps) and ENABLE for one queue. */
    public void setUpRing(int q, int base) throws IOException {
        Ring r = rings[q];
        expectOk(setVringNum(q, r.size), "SET_VRING_NUM");
        expectOk(setVringBase(q, base), "SET_VRING_BASE");
        expectOk(setVringAddr(q, descUserAddr(q), usedUserAddr(q), availUserAddr(q)), "SET_VRING_ADDR");
        EventFd call = EventFd.create();
        if (r.call != null) {
            r.call.close();
        }
        r.call = call;
        expectOk(send(VhostUserRequest.SET_VRING_CALL, u64(q), call.fd()), "SET_VRING_CALL");
        EventFd kick = EventFd.create();
        if (r.kick != null) {
            r.kick.close();
        }
        r.kick = kick;
        EventFd err = EventFd.create();
        if (r.err != null) {
            r.err.close();
        }
        r.err = err;
        expectOk(send(VhostUserRequest.SET_VRING_ERR, u64(q), err.fd()), "SET_VRING_ERR");
        expectOk(send(VhostUserRequest.SET_VRING_KICK, u64(q), kick.fd()), "SET_VRING_KICK");
        if (options.protocolFeatures) {
            expectOk(setVringEnable(q, true), "SET_VRING_ENABLE");
        }
    }

    /**
     * What a driver does to restart a queue after a device error: stops it (GET_VRING_BASE), clears the rings
     * and its own state, and sets the queue up again from index 0. Returns the base the backend reported.
     */
    public int resetRing(int q) throws IOException {
        int base = getVringBase(q);
        rings[q].resetDriverState();
        setUpRing(q, options.initialBase());
        sync();
        return base;
    }

    /** A round trip: once it returns, every message sent before was handled (messages are served in order). */
    public void sync() throws IOException {
        getFeatures();
    }

    public static void expectOk(long ack, String what) {
        if (ack != 0) {
            throw new AssertionError(what + " was refused (ack " + ack + ")");
        }
    }

    public long getFeatures() throws IOException {
        return ask(VhostUserRequest.GET_FEATURES, new byte[0]).u64(0);
    }

    public long setFeatures(long features) throws IOException {
        return send(VhostUserRequest.SET_FEATURES, u64(features));
    }

    public long getProtocolFeatures() throws IOException {
        return ask(VhostUserRequest.GET_PROTOCOL_FEATURES, new byte[0]).u64(0);
    }

    public long setProtocolFeatures(long features) throws IOException {
        return send(VhostUserRequest.SET_PROTOCOL_FEATURES, u64(features));
    }

    public long setOwner() throws IOException {
        return send(VhostUserRequest.SET_OWNER, new byte[0]);
    }

    /** The standard table: all of guest RAM as one region, the memfd attached. */
    public long setMemTable() throws IOException {
        return setMemTable(List.of(standardRegion()), memfd);
    }

    public Region standardRegion() {
        return new Region(GUEST_PHYS_BASE, options.memorySize, USER_BASE, options.mmapOffset);
    }

    public long setMemTable(List<Region> regions, int... fds) throws IOException {
        return send(VhostUserRequest.SET_MEM_TABLE, memTable(regions.size(), regions), fds);
    }

    public long setVringNum(int q, int num) throws IOException {
        return send(VhostUserRequest.SET_VRING_NUM, vringState(q, num));
    }

    public long setVringBase(int q, int base) throws IOException {
        return send(VhostUserRequest.SET_VRING_BASE, vringState(q, base));
    }

    public long setVringAddr(int q, long descUser, long usedUser, long availUser) throws IOException {
        ByteBuffer b = le(VhostUserMessage.VRING_ADDR_SIZE);
        b.putInt(q).putInt(0).putLong(descUser).putLong(usedUser).putLong(availUser).putLong(0);
        return send(VhostUserRequest.SET_VRING_ADDR, b.array());
    }

    public long setVringEnable(int q, boolean enable) throws IOException {
        return send(VhostUserRequest.SET_VRING_ENABLE, vringState(q, enable ? 1 : 0));
    }

    /** SET_VRING_KICK with a new eventfd the frontend keeps. */
    public long setVringKick(int q) throws IOException {
        EventFd kick = EventFd.create();
        Ring r = rings[q];
        if (r.kick != null) {
            r.kick.close();
        }
        r.kick = kick;
        return send(VhostUserRequest.SET_VRING_KICK, u64(q), kick.fd());
    }

    /** GET_VRING_BASE: stops the queue and returns where the backend got to. */
    public int getVringBase(int q) throws IOException {
        Reply reply = ask(VhostUserRequest.GET_VRING_BASE, vringState(q, 0));
        if (reply.size() != VhostUserMessage.VRING_STATE_SIZE || reply.u32(0) != q) {
            throw new AssertionError("bad GET_VRING_BASE reply " + reply);
        }
        return reply.u32(VhostUserMessage.VRING_STATE_NUM);
    }

    /**
     * Sends a request that has no reply of its own, with NEED_REPLY when REPLY_ACK is on, and returns the ack
     * (0 success, non-zero refused); returns 0 without waiting when acks are off.
     */
    public long send(VhostUserRequest request, byte[] payload, int... fds) throws IOException {
        int flags = ackEnabled ? VhostUserMessage.FLAG_NEED_REPLY : 0;
        sendRaw(request.code(), VhostUserMessage.VERSION | flags, payload.length, payload, fds);
        if (!ackEnabled) {
            return 0;
        }
        return expectReply(request.code()).u64(0);
    }

    /** Sends a request that always has a reply and returns that reply. */
    public Reply ask(VhostUserRequest request, byte[] payload, int... fds) throws IOException {
        sendRaw(request.code(), VhostUserMessage.VERSION, payload.length, payload, fds);
        return expectReply(request.code());
    }

    /** Sends any request code with NEED_REPLY set and returns the ack (REPLY_ACK must be on). */
    public long sendWithAck(int code, byte[] payload, int... fds) throws IOException {
        sendRaw(code, VhostUserMessage.VERSION | VhostUserMessage.FLAG_NEED_REPLY, payload.length, payload, fds);
        return expectReply(code).u64(0);
    }

    private Reply expectReply(int code) throws IOException {
        Reply reply = readReply();
        if (reply.request() != code || (reply.flags() & VhostUserMessage.FLAG_REPLY) == 0
                || (reply.flags() & VhostUserMessage.VERSION_MASK) != VhostUserMessage.VERSION) {
            throw new AssertionError("expected a reply to request " + code + ", got " + reply);
        }
        return reply;
    }

    /**
     * Sends exactly this: a header with {@code flags} as given (version bits included) and {@code declaredSize},
     * followed by {@code payload} (which need not match the declared size), with {@code fds} attached.
     */
    public void sendRaw(int request, int flags, int declaredSize, byte[] payload, int... fds) throws IOException {
        MemorySegment buffer = msg.buffer();
        buffer.set(U32, VhostUserMessage.REQUEST, request);
        buffer.set(U32, VhostUserMessage.FLAGS, flags);
        buffer.set(U32, VhostUserMessage.SIZE, declaredSize);
        if (payload.length > VhostUserMessage.MAX_PAYLOAD) {
            throw new IllegalArgumentException("payload longer than the message buffer");
        }
        MemorySegment.copy(payload, 0, buffer, ValueLayout.JAVA_BYTE, VhostUserMessage.HEADER_SIZE, payload.length);
        socket.send(buffer, VhostUserMessage.HEADER_SIZE + payload.length, fds, fds.length);
    }

    /** Reads one reply (waiting at most {@link #REPLY_TIMEOUT_MS}); descriptors that come with it are closed. */
    public Reply readReply() throws IOException {
        if (!waitReadable(socket.fd(), REPLY_TIMEOUT_MS)) {
            throw new AssertionError("no reply from the backend within " + REPLY_TIMEOUT_MS + " ms");
        }
        ReceivedFds fds = new ReceivedFds();
        try {
            socket.receive(msg.header(), VhostUserMessage.HEADER_SIZE, fds);
            int size = msg.size();
            if (size < 0 || size > VhostUserMessage.MAX_PAYLOAD) {
                throw new AssertionError("reply with payload size " + size);
            }
            if (size > 0) {
                socket.receive(msg.payload(), size, fds);
            }
            byte[] payload = msg.payload().asSlice(0, size).toArray(ValueLayout.JAVA_BYTE);
            return new Reply(msg.request(), msg.flags(), size, payload);
        } finally {
            fds.closeAll();
        }
    }

    /** True when the backend closed the connection within {@code timeoutMs} (the next read sees end of file). */
    public boolean closedByPeer(long timeoutMs) throws IOException {
        if (!waitReadable(socket.fd(), timeoutMs)) {
            return false;
        }
        ReceivedFds fds = new ReceivedFds();
        try (Arena scratch = Arena.ofConfined()) {
            socket.receive(scratch.allocate(1), 1, fds);
            return false;
        } catch (EOFException e) {
            return true;
        } catch (IOException e) {
            return e.getMessage() != null && e.getMessage().contains("ECONNRESET");
        } finally {
            fds.closeAll();
        }
    }

    /** A second descriptor for the same open file (the caller closes it). */
    public static int dup(int fd) {
        int copy;
        try {
            copy = (int) DUP.invokeExact(Libc.callState(), fd);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        if (copy < 0) {
            throw new IllegalStateException("dup(" + fd + ") failed");
        }
        return copy;
    }

    public static boolean waitReadable(int fd, long timeoutMs) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment pfd = a.allocate(8, 4);
            pfd.set(ValueLayout.JAVA_INT, 0, fd);
            pfd.set(ValueLayout.JAVA_SHORT, 4, POLLIN);
            long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
            while (true) {
                int left = (int) Math.max(0, (deadline - System.nanoTime()) / 1_000_000L);
                int rc = (int) POLL.invokeExact(Libc.callState(), pfd, 1L, left);
                if (rc > 0) {
                    return true;
                }
                if (rc == 0 || left == 0) {
                    return false;
                }
                // EINTR: retry
            }
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    // ---------------------------------------------------------------- payload builders

    public static ByteBuffer le(int size) {
        return ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
    }

    public static byte[] u64(long value) {
        return le(8).putLong(value).array();
    }

    public static byte[] vringState(int index, int num) {
        return le(8).putInt(index).putInt(num).array();
    }

    /** A vhost_memory payload declaring {@code nregions} and carrying {@code regions}. */
    public static byte[] memTable(int nregions, List<Region> regions) {
        ByteBuffer b = le(VhostUserMessage.MEMORY_REGIONS + VhostUserMessage.REGION_SIZE * regions.size());
        b.putInt(nregions).putInt(0);
        for (Region r : regions) {
            b.putLong(r.guestPhysAddr()).putLong(r.size()).putLong(r.userAddr()).putLong(r.mmapOffset());
        }
        return b.array();
    }

    // ================================================================ guest memory

    public long descUserAddr(int q) {
        return USER_BASE + rings[q].descOffset;
    }

    public long availUserAddr(int q) {
        return USER_BASE + rings[q].availOffset;
    }

    public long usedUserAddr(int q) {
        return USER_BASE + rings[q].usedOffset;
    }

    /** Allocates {@code length} bytes of guest RAM (16-byte aligned) for buffers or tables; returns the guest-physical address. */
    public long allocate(long length) {
        long at = align(nextBuffer, 16);
        if (at + length > options.memorySize) {
            at = bufferStart;
            if (at + length > options.memorySize) {
                throw new IllegalArgumentException(length + " bytes do not fit in guest memory");
            }
        }
        nextBuffer = at + length;
        return GUEST_PHYS_BASE + at;
    }

    public void write(long gpa, byte[] bytes) {
        MemorySegment.copy(bytes, 0, ram, ValueLayout.JAVA_BYTE, gpa - GUEST_PHYS_BASE, bytes.length);
    }

    public byte[] read(long gpa, int length) {
        return ram.asSlice(gpa - GUEST_PHYS_BASE, length).toArray(ValueLayout.JAVA_BYTE);
    }

    // ================================================================ rings, raw

    /** Takes a free descriptor index of queue q (the caller owns it until it shows up in the used ring). */
    public int takeDescriptor(int q) {
        Integer id = rings[q].free.poll();
        if (id == null) {
            throw new IllegalStateException("queue " + q + " has no free descriptor");
        }
        return id;
    }

    public void writeDescriptor(int q, int id, long addr, int length, int flags, int next) {
        long at = rings[q].descOffset + (long) id * DESC_SIZE;
        writeDescriptorAt(ram, at, addr, length, flags, next);
    }

    private static void writeDescriptorAt(MemorySegment s, long at, long addr, int length, int flags, int next) {
        s.set(U64, at + DESC_ADDR, addr);
        s.set(U32, at + DESC_LEN, length);
        s.set(U16, at + DESC_FLAGS, (short) flags);
        s.set(U16, at + DESC_NEXT, (short) next);
    }

    /** Writes a descriptor into an indirect table at guest-physical {@code table}. */
    public void writeIndirectDescriptor(long table, int i, long addr, int length, int flags, int next) {
        writeDescriptorAt(ram, table - GUEST_PHYS_BASE + (long) i * DESC_SIZE, addr, length, flags, next);
    }

    /**
     * Puts {@code head} in the next avail ring slot and publishes avail.idx (release), then kicks; while transmits
     * are held ({@link #holdTransmits}), a TX head only goes into its slot.
     */
    public void publish(int q, int head) {
        Ring r = rings[q];
        int pending = q == txRing ? heldTransmits : 0;
        ram.set(U16, r.availOffset + AVAIL_RING + (long) AVAIL_ELEM_SIZE * ((r.availIdx + pending) & (r.size - 1)), (short) head);
        if (q == txRing && holdingTransmits) {
            heldTransmits++;
            return;
        }
        setAvailIdx(q, (r.availIdx + 1) & 0xFFFF);
    }

    private boolean holdingTransmits;
    private int heldTransmits;

    /**
     * From now until {@link #releaseTransmits}, frames transmitted are written into the TX ring without moving
     * avail.idx, so that the device finds them all at once: one burst (split rings).
     */
    public void holdTransmits() {
        if (options.packed) {
            throw new IllegalStateException("holdTransmits drives split rings only");
        }
        holdingTransmits = true;
    }

    /** Publishes the transmits held since {@link #holdTransmits} with one store of avail.idx, then kicks. */
    public void releaseTransmits() {
        holdingTransmits = false;
        int n = heldTransmits;
        heldTransmits = 0;
        setAvailIdx(txRing, (rings[txRing].availIdx + n) & 0xFFFF);
    }

    /** Writes avail.idx (release) to any value, as a hostile driver may. */
    public void setAvailIdx(int q, int idx) {
        Ring r = rings[q];
        int old = r.availIdx;
        r.availIdx = idx & 0xFFFF;
        U16_ATOMIC.setRelease(ram, r.availOffset + AVAIL_IDX, (short) idx);
        VarHandle.fullFence();
        if (kickWanted(r, old, r.availIdx) && r.kick != null) {
            r.kick.signal();
        }
    }

    private boolean kickWanted(Ring r, int oldIdx, int newIdx) {
        if (options.eventIdx) {
            int availEvent = ram.get(U16, r.usedOffset + availEventOffset(r.size)) & 0xFFFF;
            return needEvent(availEvent, newIdx, oldIdx);
        }
        return (ram.get(U16, r.usedOffset + USED_FLAGS) & USED_F_NO_NOTIFY) == 0;
    }

    /** The avail.idx the driver published last. */
    public int availIdx(int q) {
        return rings[q].availIdx;
    }

    /** used.idx as the device published it (acquire). */
    public int usedIdx(int q) {
        return (short) U16_ATOMIC.getAcquire(ram, rings[q].usedOffset + USED_IDX) & 0xFFFF;
    }

    public Used usedEntry(int q, int slot) {
        Ring r = rings[q];
        long at = r.usedOffset + USED_RING + (long) USED_ELEM_SIZE * (slot & (r.size - 1));
        return new Used(ram.get(U32, at + USED_ELEM_ID), ram.get(U32, at + USED_ELEM_LEN));
    }

    public void setAvailFlags(int q, int flags) {
        ram.set(U16, rings[q].availOffset + AVAIL_FLAGS, (short) flags);
        VarHandle.fullFence();
    }

    /** With EVENT_IDX: ask for a call once the device's used index passes {@code idx}. */
    public void setUsedEvent(int q, int idx) {
        Ring r = rings[q];
        ram.set(U16, r.availOffset + usedEventOffset(r.size), (short) idx);
        VarHandle.fullFence();
    }

    /** With EVENT_IDX: the avail index after which the device wants a kick. */
    public int availEvent(int q) {
        Ring r = rings[q];
        return ram.get(U16, r.usedOffset + availEventOffset(r.size)) & 0xFFFF;
    }

    public int usedFlags(int q) {
        return ram.get(U16, rings[q].usedOffset + USED_FLAGS) & 0xFFFF;
    }

    public EventFd callFd(int q) {
        return rings[q].call;
    }

    public EventFd kickFd(int q) {
        return rings[q].kick;
    }

    /** Reads and resets queue q's call eventfd: how often the device signalled since the last drain. */
    public long drainCalls(int q) {
        return rings[q].call.drain();
    }

    /** Reads and resets queue q's error eventfd (signalled when the device stops the queue on a fault). */
    public long drainErrors(int q) {
        return rings[q].err.drain();
    }

    // ================================================================ guest TX (queue 1)

    /** Transmits {@code frame} in one descriptor, behind a zero virtio-net header. Returns the head. */
    public int transmit(byte[] frame) {
        return transmit(frame, 1, false);
    }

    /**
     * Transmits {@code frame} behind a zero header, the header and frame split over {@code descriptors} buffers
     * in separate places in guest RAM, chained in the ring or (with {@code indirect}) in an indirect table.
     */
    public int transmit(byte[] frame, int descriptors, boolean indirect) {
        byte[] all = new byte[HEADER + frame.length];
        System.arraycopy(frame, 0, all, HEADER, frame.length);
        if (descriptors < 1 || descriptors > all.length) {
            throw new IllegalArgumentException("cannot split " + all.length + " bytes into " + descriptors + " descriptors");
        }
        byte[][] parts = new byte[descriptors][];
        int at = 0;
        for (int i = 0; i < descriptors; i++) {
            int end = (int) ((long) all.length * (i + 1) / descriptors);
            parts[i] = Arrays.copyOfRange(all, at, end);
            at = end;
        }
        return transmitParts(parts, indirect);
    }

    /** Transmits exactly these descriptor contents (the caller includes the header), chained or indirect. */
    public int transmitParts(byte[][] parts, boolean indirect) {
        Ring r = rings[txRing];
        List<long[]> buffers = new ArrayList<>();
        for (byte[] part : parts) {
            long gpa = allocate(Math.max(1, part.length));
            write(gpa, part);
            buffers.add(new long[] {gpa, part.length});
        }
        int head;
        int[] ids;
        if (indirect) {
            long table = allocate((long) DESC_SIZE * parts.length);
            for (int i = 0; i < parts.length; i++) {
                boolean last = i == parts.length - 1;
                writeIndirectDescriptor(table, i, buffers.get(i)[0], parts[i].length, last ? 0 : DESC_F_NEXT, last ? 0 : i + 1);
            }
            head = takeDescriptor(txRing);
            writeDescriptor(txRing, head, table, DESC_SIZE * parts.length, DESC_F_INDIRECT, 0);
            ids = new int[] {head};
        } else {
            ids = new int[parts.length];
            for (int i = 0; i < parts.length; i++) {
                ids[i] = takeDescriptor(txRing);
            }
            for (int i = 0; i < parts.length; i++) {
                boolean last = i == parts.length - 1;
                writeDescriptor(txRing, ids[i], buffers.get(i)[0], parts[i].length, last ? 0 : DESC_F_NEXT, last ? 0 : ids[i + 1]);
            }
            head = ids[0];
        }
        r.chainIds.put(head, ids);
        r.chainBuffers.put(head, buffers);
        inOrderHeads.add(head);
        publish(txRing, head);
        return head;
    }

    /** The TX used entries the device returned since the last call; their descriptors become free again. */
    public List<Used> txCompleted() {
        return consumeUsed(txRing);
    }

    /**
     * With IN_ORDER: the TX used entries since the last call, where one entry may stand for every chain made
     * available before it (the device writes only the burst's last); frees the chains in the order they were
     * made available.
     */
    public List<Used> txCompletedInOrder() {
        Ring r = rings[txRing];
        int idx = usedIdx(txRing);
        List<Used> out = new ArrayList<>();
        while (r.lastUsed != idx) {
            int head = inOrderHeads.poll();
            r.lastUsed = (r.lastUsed + 1) & 0xFFFF;
            out.add(new Used(head, 0));
            release(r, head);
        }
        return out;
    }

    private final ArrayDeque<Integer> inOrderHeads = new ArrayDeque<>();

    private List<Used> consumeUsed(int q) {
        Ring r = rings[q];
        int idx = usedIdx(q);
        List<Used> out = new ArrayList<>();
        while (r.lastUsed != idx) {
            Used u = usedEntry(q, r.lastUsed);
            r.lastUsed = (r.lastUsed + 1) & 0xFFFF;
            out.add(u);
            release(r, u.id());
        }
        return out;
    }

    private void release(Ring r, int head) {
        if (r.index == txRing) {
            inOrderHeads.remove(Integer.valueOf(head));
        }
        int[] ids = r.chainIds.remove(head);
        r.chainBuffers.remove(head);
        if (ids == null) {
            throw new AssertionError("queue " + r.index + ": device returned " + head + ", which is not an outstanding head");
        }
        for (int id : ids) {
            r.free.add(id);
        }
    }

    /** Descriptor heads made available on queue q and not yet returned by the device. */
    public int outstanding(int q) {
        return rings[q].chainIds.size();
    }

    // ================================================================ guest RX (queue 0)

    /** Makes {@code count} write-only buffers of {@code size} bytes available on queue 0. */
    public void postRxBuffers(int count, int size) {
        for (int i = 0; i < count; i++) {
            postRxChain(size);
        }
    }

    /** Makes one chain of write-only buffers of these sizes available on queue 0; returns its head. */
    public int postRxChain(int... sizes) {
        return postRxChainWithFlags(DESC_F_WRITE, sizes);
    }

    /** As {@link #postRxChain} with the given flags on every descriptor (NEXT is added for all but the last). */
    public int postRxChainWithFlags(int flags, int... sizes) {
        Ring r = rings[rxRing];
        int[] ids = new int[sizes.length];
        List<long[]> buffers = new ArrayList<>();
        for (int i = 0; i < sizes.length; i++) {
            ids[i] = takeDescriptor(rxRing);
            long gpa = allocate(sizes[i]);
            ram.asSlice(gpa - GUEST_PHYS_BASE, sizes[i]).fill((byte) 0xEE);
            buffers.add(new long[] {gpa, sizes[i]});
        }
        for (int i = 0; i < sizes.length; i++) {
            boolean last = i == sizes.length - 1;
            writeDescriptor(rxRing, ids[i], buffers.get(i)[0], sizes[i], flags | (last ? 0 : DESC_F_NEXT), last ? 0 : ids[i + 1]);
        }
        r.chainIds.put(ids[0], ids);
        r.chainBuffers.put(ids[0], buffers);
        publish(rxRing, ids[0]);
        return ids[0];
    }

    /**
     * Reads the RX used entries published since the last call and reassembles frames: each starts with a
     * virtio-net header whose num_buffers says how many used entries (buffers) the frame spans.
     */
    public List<RxFrame> receive() {
        Ring r = rings[rxRing];
        int idx = usedIdx(rxRing);
        List<RxFrame> frames = new ArrayList<>();
        while (r.lastUsed != idx) {
            byte[] first = takeUsedBytes(r);
            if (first.length < HEADER) {
                throw new AssertionError("used entry of " + first.length + " bytes is shorter than a virtio-net header");
            }
            byte[] header = Arrays.copyOf(first, HEADER);
            int numBuffers = ByteBuffer.wrap(header).order(ByteOrder.LITTLE_ENDIAN).getShort(VirtioNetHeader.NUM_BUFFERS) & 0xFFFF;
            if (numBuffers < 1 || (!options.mergeable && numBuffers != 1)) {
                throw new AssertionError("num_buffers " + numBuffers + (options.mergeable ? "" : " without MRG_RXBUF"));
            }
            java.io.ByteArrayOutputStream data = new java.io.ByteArrayOutputStream();
            data.write(first, HEADER, first.length - HEADER);
            for (int i = 1; i < numBuffers; i++) {
                if (r.lastUsed == idx) {
                    throw new AssertionError("frame spans " + numBuffers + " buffers but only " + i + " were published");
                }
                byte[] more = takeUsedBytes(r);
                data.write(more, 0, more.length);
            }
            frames.add(new RxFrame(data.toByteArray(), numBuffers, header));
        }
        return frames;
    }

    private byte[] takeUsedBytes(Ring r) {
        Used u = usedEntry(rxRing, r.lastUsed);
        r.lastUsed = (r.lastUsed + 1) & 0xFFFF;
        List<long[]> buffers = r.chainBuffers.get(u.id());
        if (buffers == null) {
            throw new AssertionError("device used RX head " + u.id() + ", which is not outstanding");
        }
        long capacity = 0;
        for (long[] b : buffers) {
            capacity += b[1];
        }
        if (Integer.toUnsignedLong(u.length()) > capacity) {
            throw new AssertionError("used length " + u.length() + " exceeds the chain's " + capacity + " bytes");
        }
        byte[] out = new byte[u.length()];
        int at = 0;
        for (long[] b : buffers) {
            int n = (int) Math.min(b[1], out.length - at);
            MemorySegment.copy(ram, ValueLayout.JAVA_BYTE, b[0] - GUEST_PHYS_BASE, out, at, n);
            at += n;
        }
        release(r, u.id());
        return out;
    }

    // ================================================================

    /** Disconnects and releases everything: socket, eventfds, memory. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        socket.close();
        for (Ring r : rings) {
            if (r.call != null) {
                r.call.close();
            }
            if (r.kick != null) {
                r.kick.close();
            }
            if (r.err != null) {
                r.err.close();
            }
        }
        mapping.close();
        Libc.closeQuietly(memfd);
        arena.close();
    }
}
