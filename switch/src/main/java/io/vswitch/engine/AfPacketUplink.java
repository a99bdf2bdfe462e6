package io.vswitch.engine;

import io.vswitch.config.UplinkConfig;
import io.vswitch.sys.Sockets;
import io.vswitch.sys.Errno;
import io.vswitch.sys.Libc;
import io.vswitch.sys.MappedMemory;
import io.vswitch.sys.SharedMemory;
import io.vswitch.vhost.virtio.PacketBatch;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * A Linux interface (NIC, veth, bond) opened with AF_PACKET and PACKET_MMAP TPACKET_V3: received frames are
 * read in place from the kernel's receive ring (blocks of frames, handed back once forwarded), transmitted ones
 * are written into the transmit ring and sent with one kick per pass. Promiscuous, outgoing traffic of the
 * host itself ignored.
 *
 * <pre>
 *  mmap: [ RX ring: RX_BLOCKS blocks of RX_BLOCK_SIZE ][ TX ring: TX_FRAMES frames of txFrameSize ]
 *
 *  RX block (struct tpacket_block_desc)         RX frame (struct tpacket3_hdr), at offset_to_first_pkt,
 *   0  u32 version                                then at tp_next_offset from each other
 *   4  u32 offset_to_priv                          0 u32 tp_next_offset    16 u32 tp_len (on the wire)
 *   8  u32 block_status  TP_STATUS_USER = 1        4 u32 tp_sec            20 u32 tp_status
 *  12  u32 num_pkts      (0 = TP_STATUS_KERNEL)    8 u32 tp_nsec           24 u16 tp_mac (frame offset)
 *  16  u32 offset_to_first_pkt                    12 u32 tp_snaplen (here) 26 u16 tp_net
 *  20  u32 blk_len                                28 u32 tp_rxhash, 32 u32 tp_vlan_tci, 36 u16 tp_vlan_tpid
 *
 *  TX frame: tpacket3_hdr (tp_len at 16, tp_status at 20: AVAILABLE 0, SEND_REQUEST 1, SENDING 2,
 *  WRONG_FORMAT 4), the frame itself at TX_DATA_OFFSET = TPACKET3_HDRLEN - sizeof(sockaddr_ll) = 68 - 20.
 * </pre>
 *
 * The ring is shared with the kernel, but the kernel is not hostile: still, every offset and length it
 * hands over is checked against the block before a frame is read.
 */
final class AfPacketUplink implements Uplink {
    static final int SOL_PACKET = 263;
    static final int PACKET_ADD_MEMBERSHIP = 1;
    static final int PACKET_RX_RING = 5;
    static final int PACKET_STATISTICS = 6;
    static final int PACKET_VERSION = 10;
    static final int PACKET_TX_RING = 13;
    static final int PACKET_IGNORE_OUTGOING = 23;
    static final int PACKET_FANOUT = 18;
    /** PACKET_FANOUT type: by the flow's hash (addresses and ports), so one flow stays on one socket. */
    static final int PACKET_FANOUT_HASH = 0;
    /** Reassemble IP fragments before hashing, so that a fragmented datagram is not split across sockets. */
    static final int PACKET_FANOUT_FLAG_DEFRAG = 0x8000;
    static final int TPACKET_V3 = 2;
    static final int PACKET_MR_PROMISC = 1;
    static final int ETH_P_ALL = 0x0003;

    static final int TPACKET_REQ3_SIZE = 28;
    static final int SOCKADDR_LL_SIZE = 20;
    static final int PACKET_MREQ_SIZE = 16;

    static final int BLOCK_STATUS = 8;
    static final int BLOCK_NUM_PKTS = 12;
    static final int BLOCK_FIRST_PKT = 16;
    static final int BLOCK_LEN = 20;
    static final int TP_STATUS_KERNEL = 0;
    static final int TP_STATUS_USER = 1;
    static final int TP_STATUS_VLAN_VALID = 0x10;

    static final int PKT_NEXT_OFFSET = 0;
    static final int PKT_SNAPLEN = 12;
    static final int PKT_LEN = 16;
    static final int PKT_STATUS = 20;
    static final int PKT_MAC = 24;
    static final int PKT_VLAN_TCI = 32;
    static final int TPACKET3_HDR_SIZE = 48;

    static final int TX_STATUS_AVAILABLE = 0;
    static final int TX_STATUS_SEND_REQUEST = 1;
    static final int TX_STATUS_WRONG_FORMAT = 4;
    static final int TX_DATA_OFFSET = 48;

    /**
     * Small blocks, many of them: the kernel hands a block over when it is full or after {@link
     * #RX_BLOCK_TIMEOUT_MS}, so a block must fill at the rates that matter (16 KiB: about 120 frames of 64
     * bytes, 10 of 1500), or every burst waits for the timeout (measured: 1 ms per round trip with 128 KiB
     * blocks, bench/RESULTS.md).
     */
    static final int RX_BLOCK_SIZE = 1 << 14;
    static final int RX_BLOCKS = 256;
    static final int RX_FRAME_SIZE = 2048;
    /** A block that is not full is handed to us after this many ms: the latency bound at low rates. */
    static final int RX_BLOCK_TIMEOUT_MS = 1;
    static final int TX_FRAMES = 512;
    /** Read the kernel's drop count (a getsockopt) once every this many passes. */
    static final int STATS_EVERY = 1024;

    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfShort U16_BE = U16.withOrder(ByteOrder.BIG_ENDIAN);
    private static final VarHandle STATUS = ValueLayout.JAVA_INT.varHandle();

    private final String name;
    private final String interfaceName;
    private final int fd;
    private final MappedMemory mapping;
    private final MemorySegment ring;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment stats;
    private final MemorySegment statsLength;
    private final int maxFrame;
    private final long txBase;
    private final int txFrameSize;

    // receive position: the block we read, the next frame in it, how many of its frames are left
    private int block;
    private long nextPacket;
    private int packetsLeft;
    private boolean inBlock;
    /** Blocks read completely whose frames the worker may still be forwarding: handed back at the next receive. */
    private final int[] toRelease = new int[RX_BLOCKS];
    private int releases;
    private int txNext;
    private int txQueued;
    private int passes;

    private final PortCounters portCounters;
    private final UplinkCounters counters;
    private long pendingOverMtu;
    private long pendingVlan;
    private long pendingMalformed;
    private long pendingNoBuffers;
    private long pendingTxError;
    private long pendingKernelDrops;
    /** Per-socket counts of a fanout member ({@code socket <port>/<worker> rx_packets|tx_packets}), or null. */
    private final org.agrona.concurrent.status.AtomicCounter socketRx;
    private final org.agrona.concurrent.status.AtomicCounter socketTx;
    private long pendingSocketRx;
    private long pendingSocketTx;
    private final String member;
    private boolean closed;

    AfPacketUplink(String name, UplinkConfig.AfPacket config, int mtu, PortCounters portCounters, UplinkCounters counters) {
        this(name, config, mtu, portCounters, counters, -1, -1, null);
    }

    /**
     * {@code fanoutGroup} 0..65535: the socket joins that PACKET_FANOUT group (hash, flow-consistent) after
     * binding, as the member of worker {@code worker}, with its own counters in {@code socketCounters}; -1: a
     * socket of its own.
     */
    AfPacketUplink(String name, UplinkConfig.AfPacket config, int mtu, PortCounters portCounters, UplinkCounters counters,
                   int fanoutGroup, int worker, CountersFile socketCounters) {
        this.name = name;
        this.member = fanoutGroup < 0 ? "" : " fanout group " + fanoutGroup + ", worker " + worker + "'s socket";
        this.interfaceName = config.interfaceName();
        this.maxFrame = mtu + 18;
        this.portCounters = portCounters;
        this.counters = counters;
        this.txFrameSize = Integer.highestOneBit(TX_DATA_OFFSET + maxFrame - 1) << 1;   // a power of two >= both
        int ifindex = Sockets.interfaceIndex(interfaceName);
        int socket = Sockets.socket(Sockets.AF_PACKET, Sockets.SOCK_RAW | Sockets.SOCK_NONBLOCK | Sockets.SOCK_CLOEXEC,
                Short.toUnsignedInt(Short.reverseBytes((short) ETH_P_ALL)));
        MappedMemory mapped = null;
        try (Arena setup = Arena.ofConfined()) {
            String what = "port " + name + ": interface " + interfaceName;
            Sockets.setIntOption(socket, SOL_PACKET, PACKET_VERSION, TPACKET_V3, what + ": TPACKET_V3");
            MemorySegment req = setup.allocate(TPACKET_REQ3_SIZE, 4);
            req.set(U32, 0, RX_BLOCK_SIZE);
            req.set(U32, 4, RX_BLOCKS);
            req.set(U32, 8, RX_FRAME_SIZE);
            req.set(U32, 12, RX_BLOCK_SIZE / RX_FRAME_SIZE * RX_BLOCKS);
            req.set(U32, 16, RX_BLOCK_TIMEOUT_MS);
            Sockets.setOption(socket, SOL_PACKET, PACKET_RX_RING, req, what + ": PACKET_RX_RING");
            int txBlockSize = Math.max(4096, txFrameSize);
            int txBlocks = TX_FRAMES * txFrameSize / txBlockSize;
            req.fill((byte) 0);
            req.set(U32, 0, txBlockSize);
            req.set(U32, 4, txBlocks);
            req.set(U32, 8, txFrameSize);
            req.set(U32, 12, TX_FRAMES);
            Sockets.setOption(socket, SOL_PACKET, PACKET_TX_RING, req, what + ": PACKET_TX_RING");
            Sockets.setIntOption(socket, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1, what + ": PACKET_IGNORE_OUTGOING");
            long rxBytes = (long) RX_BLOCK_SIZE * RX_BLOCKS;
            mapped = SharedMemory.map(socket, rxBytes + (long) TX_FRAMES * txFrameSize, 0);
            MemorySegment ll = setup.allocate(SOCKADDR_LL_SIZE, 4);
            ll.set(U16, 0, (short) Sockets.AF_PACKET);
            ll.set(U16_BE, 2, (short) ETH_P_ALL);
            ll.set(U32, 4, ifindex);
            Sockets.bind(socket, ll, SOCKADDR_LL_SIZE, what);
            MemorySegment mreq = setup.allocate(PACKET_MREQ_SIZE, 4);
            mreq.set(U32, 0, ifindex);
            mreq.set(U16, 4, (short) PACKET_MR_PROMISC);
            Sockets.setOption(socket, SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq, what + ": promiscuous mode");
            if (fanoutGroup >= 0) {   // after bind: the kernel joins only a running socket to a group
                Sockets.setIntOption(socket, SOL_PACKET, PACKET_FANOUT,
                        (fanoutGroup & 0xFFFF) | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16),
                        what + ": PACKET_FANOUT group " + fanoutGroup);
            }
            this.txBase = rxBytes;
        } catch (RuntimeException e) {
            if (mapped != null) {
                mapped.close();
            }
            Libc.closeQuietly(socket);
            arena.close();
            throw e;
        }
        this.fd = socket;
        this.mapping = mapped;
        this.ring = mapped.segment();
        this.stats = arena.allocate(12, 4);
        this.statsLength = arena.allocate(4, 4);
        this.socketRx = socketCounters == null ? null : socketCounters.newCounter("socket", name + "/" + worker, "rx_packets");
        this.socketTx = socketCounters == null ? null : socketCounters.newCounter("socket", name + "/" + worker, "tx_packets");
    }

    @Override
    public int fd() {
        return fd;
    }

    @Override
    public String describe() {
        return "afpacket interface " + interfaceName + " (TPACKET_V3, promiscuous" + member + ")";
    }

    @Override
    public int receive(PacketBatch batch) {
        batch.reset();
        for (int i = 0; i < releases; i++) {
            STATUS.setRelease(ring, (long) toRelease[i] * RX_BLOCK_SIZE + BLOCK_STATUS, TP_STATUS_KERNEL);
        }
        releases = 0;
        if (++passes == STATS_EVERY) {
            passes = 0;
            readKernelDrops();
        }
        int frames = 0;
        int capacity = batch.capacity();
        while (frames < capacity) {
            long blockAt = (long) block * RX_BLOCK_SIZE;
            if (!inBlock) {
                if (((int) STATUS.getAcquire(ring, blockAt + BLOCK_STATUS) & TP_STATUS_USER) == 0) {
                    break;   // the kernel still fills it
                }
                int first = ring.get(U32, blockAt + BLOCK_FIRST_PKT);
                packetsLeft = ring.get(U32, blockAt + BLOCK_NUM_PKTS);
                nextPacket = blockAt + first;
                inBlock = true;
                if (first < 0 || first >= RX_BLOCK_SIZE || packetsLeft < 0) {
                    packetsLeft = 0;
                }
            }
            while (packetsLeft > 0 && frames < capacity) {
                long at = nextPacket;
                long blockEnd = blockAt + RX_BLOCK_SIZE;
                if (at < blockAt || at + TPACKET3_HDR_SIZE > blockEnd) {
                    pendingMalformed += packetsLeft;   // never from a sane kernel: give up on this block
                    packetsLeft = 0;
                    break;
                }
                int next = ring.get(U32, at + PKT_NEXT_OFFSET);
                int snap = ring.get(U32, at + PKT_SNAPLEN);
                int len = ring.get(U32, at + PKT_LEN);
                int status = ring.get(U32, at + PKT_STATUS);
                int mac = Short.toUnsignedInt(ring.get(U16, at + PKT_MAC));
                packetsLeft--;
                nextPacket = at + next;
                if (snap < 0 || at + mac + (long) snap > blockEnd) {
                    pendingMalformed++;
                } else if (snap != len || len > maxFrame) {
                    pendingOverMtu++;   // longer than the port's MTU (or than the ring keeps)
                } else if ((status & TP_STATUS_VLAN_VALID) != 0 && (ring.get(U32, at + PKT_VLAN_TCI) & 0xFFF) != 0) {
                    pendingVlan++;      // the NIC took the 802.1Q tag off: re-inserting it is not implemented
                } else if (len < 14) {
                    pendingMalformed++;
                } else {
                    batch.addFrame(ring, at + mac, len);
                    frames++;
                    pendingSocketRx++;
                }
            }
            if (packetsLeft == 0) {
                toRelease[releases++] = block;
                inBlock = false;
                block = (block + 1) % RX_BLOCKS;
                if (releases == RX_BLOCKS) {
                    break;
                }
            }
        }
        return frames;
    }

    private void readKernelDrops() {
        statsLength.set(ValueLayout.JAVA_INT, 0, 12);
        if (Sockets.getOption(fd, SOL_PACKET, PACKET_STATISTICS, stats, statsLength) == 0) {
            pendingKernelDrops += Integer.toUnsignedLong(stats.get(ValueLayout.JAVA_INT, 4));   // tp_drops (read resets)
        }
    }

    @Override
    public boolean transmit(MemorySegment[] segments, long[] offsets, int[] lengths, int count, int length) {
        if (length > maxFrame) {
            pendingOverMtu++;
            return false;
        }
        long at = txBase + (long) txNext * txFrameSize;
        int status = (int) STATUS.getAcquire(ring, at + PKT_STATUS);
        if (status == TX_STATUS_WRONG_FORMAT) {
            pendingTxError++;   // the kernel refused the frame we left here before; the slot is ours again
        } else if (status != TX_STATUS_AVAILABLE) {
            pendingNoBuffers++;   // the kernel has not sent what we queued a ring ago: full
            return false;
        }
        long data = at + TX_DATA_OFFSET;
        for (int p = 0; p < count; p++) {
            MemorySegment.copy(segments[p], offsets[p], ring, data, lengths[p]);
            data += lengths[p];
        }
        ring.set(U32, at + PKT_LEN, length);
        STATUS.setRelease(ring, at + PKT_STATUS, TX_STATUS_SEND_REQUEST);
        txNext = (txNext + 1) % TX_FRAMES;
        txQueued++;
        pendingSocketTx++;
        return true;
    }

    @Override
    public void flush() {
        if (txQueued == 0) {
            return;
        }
        txQueued = 0;
        long rc = Sockets.kick(fd);
        if (rc < 0 && rc != -Errno.EAGAIN && rc != -Sockets.ENOBUFS) {
            pendingTxError++;   // the frames stay queued in the ring; the next kick sends them
        }
    }

    @Override
    public void publishCounts() {
        if (socketRx != null && (pendingSocketRx | pendingSocketTx) != 0) {
            add(socketRx, pendingSocketRx);
            add(socketTx, pendingSocketTx);
            pendingSocketRx = pendingSocketTx = 0;
        }
        if ((pendingOverMtu | pendingVlan | pendingMalformed | pendingNoBuffers | pendingTxError | pendingKernelDrops) == 0) {
            return;
        }
        add(portCounters.dropOverMtu, pendingOverMtu);
        add(portCounters.dropVlan, pendingVlan);
        add(counters.dropMalformed, pendingMalformed);
        add(portCounters.dropNoBuffers, pendingNoBuffers);
        add(counters.dropTxError, pendingTxError);
        add(portCounters.dropRxRingFull, pendingKernelDrops);
        pendingOverMtu = pendingVlan = pendingMalformed = pendingNoBuffers = pendingTxError = pendingKernelDrops = 0;
    }

    private static void add(org.agrona.concurrent.status.AtomicCounter counter, long delta) {
        if (delta != 0) {
            counter.getAndAdd(delta);
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        mapping.close();
        Libc.closeQuietly(fd);
        arena.close();
    }

    @Override
    public String toString() {
        return name + " (" + describe() + ")";
    }
}
