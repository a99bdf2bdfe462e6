package io.vswitch.engine;

import io.vswitch.config.UplinkConfig;
import io.vswitch.sys.MsgVec;
import io.vswitch.sys.Sockets;
import io.vswitch.sys.UdpCmsg;
import io.vswitch.sys.Errno;
import io.vswitch.sys.Libc;
import io.vswitch.vhost.virtio.PacketBatch;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * A VXLAN tunnel endpoint (RFC 7348) on a non-blocking UDP socket: bursts arrive with one {@code recvmmsg} and
 * leave with one {@code sendmmsg} per pass, through buffers and message arrays allocated once.
 *
 * <pre>
 *  VXLAN header (8 bytes, after the outer IPv4 and UDP headers the kernel handles)
 *   0               1               2               3
 *  +-------+-------+---------------+---------------+---------------+
 *  |R|R|R|R|I|R|R|R|            Reserved (24 bits)                 |  0  FLAGS: I (0x08) must be set
 *  +---------------+---------------+---------------+---------------+
 *  |            VXLAN Network Identifier (VNI)     |   Reserved    |  4  VNI: 24 bits, big-endian
 *  +---------------+---------------+---------------+---------------+
 *  |                  inner Ethernet frame ...                      |  8
 * </pre>
 *
 * Received packets are checked before the worker sees them: shorter than the header plus an Ethernet header,
 * or with the I flag clear, is {@code drop_malformed}; another VNI is {@code drop_vni}; a sender that is not one
 * of the configured remotes is {@code drop_foreign_vtep}; a packet larger than the port's MTU allows is
 * {@code drop_over_mtu}. Reserved bits are ignored, as the RFC asks of receivers.
 *
 * <p>Transmit: an inner source MAC seen behind a remote is remembered (a small open-addressing table owned by
 * the worker); a frame to it goes to that remote only, anything else (broadcast, multicast, unknown) to every
 * remote: the flood list. A flood sends one copy of the buffer per remote (one message each, same iovec).
 *
 * <p>UDP segmentation offload ({@code segmentation}, see {@link #SEGMENTATION_PROPERTY}): on transmit, the
 * frames of a pass to one remote that have one length (the last may be shorter) leave as one {@code sendmmsg}
 * message with a {@code UDP_SEGMENT} cmsg, which the kernel cuts into datagrams (one route lookup and one skb
 * down the stack per group instead of per frame); on receive, {@code UDP_GRO} lets the kernel hand over a burst
 * of one sender's datagrams as one buffer with the segment size in a cmsg, which is split back into datagrams
 * here, each checked like a datagram that came alone. A group the kernel refuses (EMSGSIZE, or EINVAL before
 * Linux 6.x: a segment beyond the route's MTU; EIO on older kernels: no checksum offload on the route) is sent
 * again datagram by datagram, and segmentation stays off on this port from then on.
 */
public final class VxlanUplink implements Uplink {
    static final int HEADER_SIZE = 8;
    static final int FLAGS_OFFSET = 0;
    static final int VNI_OFFSET = 4;
    static final int FLAG_I = 0x08;
    static final int ETH_HEADER = 14;
    private static final ValueLayout.OfInt U32_BE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    private static final ValueLayout.OfShort U16_BE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);

    /** MAC-to-remote table: power of two, a few probes, the oldest claim of a full neighbourhood is overwritten. */
    static final int VTEP_TABLE = 4096;
    private static final int PROBES = 8;
    private static final long OCCUPIED = 1L << 62;

    /**
     * {@code -Dvswitch.vxlan.segmentation=true|false}: UDP GSO on transmit and GRO on receive (default
     * {@link #SEGMENTATION_DEFAULT}); a switch-wide choice, for measurements and as a way out.
     */
    static final String SEGMENTATION_PROPERTY = "vswitch.vxlan.segmentation";
    static final boolean SEGMENTATION_DEFAULT = true;
    /** Datagrams per GSO send at most (the kernel's UDP_MAX_SEGMENTS is 64 before Linux 6.9, 128 after). */
    static final int MAX_SEGMENTS = 64;
    /** Bytes of payload per GSO send at most (an IPv4 datagram's payload is at most 65507). */
    static final int MAX_GSO_BYTES = 65000;
    /** A receive buffer with GRO on: the largest coalesced payload (an IPv4 UDP payload is at most 65507). */
    static final int GRO_BUFFER = 65536;

    /** Read the kernel's drop count of the socket (SO_MEMINFO, a getsockopt) once every this many receives. */
    static final int STATS_EVERY = 1024;
    static final int SO_MEMINFO = 55;
    /** struct sk_meminfo: u32[SK_MEMINFO_VARS = 9]; SK_MEMINFO_DROPS = 8 counts datagrams dropped (buffer full). */
    static final int SK_MEMINFO_SIZE = 36;
    static final int SK_MEMINFO_DROPS = 8;

    static boolean segmentationDefault() {
        String v = System.getProperty(SEGMENTATION_PROPERTY);
        return v == null ? SEGMENTATION_DEFAULT : Boolean.parseBoolean(v);
    }

    private final String name;
    private final UplinkConfig.Vxlan config;
    private final int fd;
    private final Arena arena = Arena.ofShared();
    private final int vni;
    private final int maxFrame;
    private final int slotSize;

    private final int rxSlots;
    private final MemorySegment rxBuffers;
    private final MemorySegment rxNames;
    private final MsgVec rx;

    private final int txSlots;
    private final MemorySegment txBuffers;
    private final MsgVec tx;
    private final MemorySegment remoteNames;
    private final int[] remoteAddress;
    private final int remotes;
    private int txFrames;
    private int txMsgs;
    /** The pass's messages before {@link #flush()} lays them out: remote, buffer address, bytes. */
    private final int[] msgRemote;
    private final long[] msgAddress;
    private final int[] msgBytes;

    /** Segmentation (GSO/GRO), see the class comment; gso goes off for good when the kernel refuses a group. */
    private boolean gso;
    private final boolean gro;
    private final MsgVec gsoTx;
    private final MemorySegment gsoControl;
    private final int[] groupFrames;
    private final MemorySegment rxControl;
    private final int rxBufferSize;
    /** GRO receive: messages of the last recvmmsg not yet handed over (a buffer can hold more than a batch). */
    private int rxHeld;
    private int rxNext;
    private int rxNextSegment;
    private final int[] rxSegmentSize;
    /** For tests and benchmarks (plain fields, the worker's own): UDP_SEGMENT sends, UDP_GRO buffers received. */
    private long segmentedSends;
    private long coalescedReceives;

    private final long[] vtepKey = new long[VTEP_TABLE];
    private final int[] vtepRemote = new int[VTEP_TABLE];

    private final PortCounters portCounters;
    private final UplinkCounters counters;
    private long pendingMalformed;
    private long pendingVni;
    private long pendingForeign;
    private long pendingOverMtu;
    private long pendingTxError;
    private long pendingNoBuffers;
    private long pendingKernelDrops;
    private long kernelDropsSeen;
    private int receives;
    private final MemorySegment meminfo;
    private final MemorySegment meminfoLength;
    private boolean closed;

    /**
     * Opens and binds the socket. {@code burst} frames per receive; {@code mtu} the largest inner payload
     * (the inner frame may be 18 bytes longer: Ethernet header and one VLAN tag).
     */
    public VxlanUplink(String name, UplinkConfig.Vxlan config, int mtu, int burst, PortCounters portCounters,
                UplinkCounters counters) {
        this(name, config, mtu, burst, portCounters, counters, segmentationDefault());
    }

    /** As above, with UDP GSO/GRO on or off ({@code segmentation}) instead of the property's default. */
    public VxlanUplink(String name, UplinkConfig.Vxlan config, int mtu, int burst, PortCounters portCounters,
                UplinkCounters counters, boolean segmentation) {
        this.name = name;
        this.config = config;
        this.vni = config.vni();
        this.maxFrame = mtu + 18;
        this.slotSize = (HEADER_SIZE + maxFrame + 63) & ~63;
        this.portCounters = portCounters;
        this.counters = counters;
        this.remotes = config.remotes().size();
        this.rxSlots = burst;
        this.txSlots = Math.max(burst, 64);
        int txMsgCapacity = txSlots * remotes;

        this.gso = segmentation;
        this.gro = segmentation;
        this.rxBufferSize = gro ? GRO_BUFFER : slotSize;
        rxBuffers = arena.allocate((long) rxSlots * rxBufferSize, 64);
        rxNames = arena.allocate((long) rxSlots * Sockets.SOCKADDR_IN_SIZE, 8);
        meminfo = arena.allocate(SK_MEMINFO_SIZE, 4);
        meminfoLength = arena.allocate(4, 4);
        rxControl = arena.allocate((long) rxSlots * UdpCmsg.SPACE, 8);
        rxSegmentSize = new int[rxSlots];
        rx = new MsgVec(arena.allocate((long) rxSlots * MsgVec.MMSGHDR_SIZE, 8),
                arena.allocate((long) rxSlots * MsgVec.IOVEC_SIZE, 8), rxSlots, 1);
        for (int i = 0; i < rxSlots; i++) {
            rx.name(i, rxNames.asSlice((long) i * Sockets.SOCKADDR_IN_SIZE, Sockets.SOCKADDR_IN_SIZE),
                    Sockets.SOCKADDR_IN_SIZE);
            // one byte more than the largest valid packet, so that a longer one shows as too long
            // (MSG_TRUNC), not as a valid frame cut short; with GRO room for the largest coalesced payload
            rx.iov(i, 0, rxBuffers.address() + (long) i * rxBufferSize,
                    gro ? GRO_BUFFER : Math.min(slotSize, HEADER_SIZE + maxFrame + 1));
            rx.iovCount(i, 1);
        }

        txBuffers = arena.allocate((long) txSlots * slotSize, 64);
        for (int i = 0; i < txSlots; i++) {
            long at = (long) i * slotSize;
            txBuffers.set(ValueLayout.JAVA_BYTE, at + FLAGS_OFFSET, (byte) FLAG_I);
            txBuffers.set(U32_BE, at + VNI_OFFSET, vni << 8);
        }
        tx = new MsgVec(arena.allocate((long) txMsgCapacity * MsgVec.MMSGHDR_SIZE, 8),
                arena.allocate((long) txMsgCapacity * MsgVec.IOVEC_SIZE, 8), txMsgCapacity, 1);
        remoteNames = arena.allocate((long) remotes * Sockets.SOCKADDR_IN_SIZE, 8);
        remoteAddress = new int[remotes];
        for (int r = 0; r < remotes; r++) {
            UplinkConfig.Endpoint e = config.remotes().get(r);
            Sockets.sockaddrIn(remoteNames, (long) r * Sockets.SOCKADDR_IN_SIZE, e.address(), e.port());
            remoteAddress[r] = Sockets.sockaddrInAddress(remoteNames, (long) r * Sockets.SOCKADDR_IN_SIZE);
        }
        for (int m = 0; m < txMsgCapacity; m++) {
            tx.iovCount(m, 1);
        }
        msgRemote = new int[txMsgCapacity];
        msgAddress = new long[txMsgCapacity];
        msgBytes = new int[txMsgCapacity];
        gsoTx = new MsgVec(arena.allocate((long) txMsgCapacity * MsgVec.MMSGHDR_SIZE, 8),
                arena.allocate((long) txMsgCapacity * MAX_SEGMENTS * MsgVec.IOVEC_SIZE, 8), txMsgCapacity, MAX_SEGMENTS);
        gsoControl = arena.allocate((long) txMsgCapacity * UdpCmsg.SPACE, 8);
        groupFrames = new int[txMsgCapacity];

        int socket = Sockets.socket(Sockets.AF_INET, Sockets.SOCK_DGRAM | Sockets.SOCK_NONBLOCK | Sockets.SOCK_CLOEXEC, 0);
        try {
            bufferSize(socket, Sockets.SO_RCVBUFFORCE, Sockets.SO_RCVBUF);
            bufferSize(socket, Sockets.SO_SNDBUFFORCE, Sockets.SO_SNDBUF);
            MemorySegment local = arena.allocate(Sockets.SOCKADDR_IN_SIZE, 8);
            Sockets.sockaddrIn(local, 0, config.local().address(), config.local().port());
            Sockets.bind(socket, local, Sockets.SOCKADDR_IN_SIZE, "port " + name + ": VXLAN local " + config.local());
            if (gro) {
                Sockets.setIntOption(socket, Sockets.SOL_UDP, Sockets.UDP_GRO, 1, "port " + name + ": UDP_GRO");
            }
        } catch (RuntimeException e) {
            Libc.closeQuietly(socket);
            arena.close();
            throw e;
        }
        this.fd = socket;
    }

    /** Socket buffers of 4 MiB, beyond rmem_max when we may (root), else what the system allows. */
    private static void bufferSize(int fd, int force, int plain) {
        try {
            Sockets.setIntOption(fd, Sockets.SOL_SOCKET, force, 4 << 20, "socket buffer");
        } catch (RuntimeException notPermitted) {
            Sockets.setIntOption(fd, Sockets.SOL_SOCKET, plain, 4 << 20, "socket buffer");
        }
    }

    @Override
    public int fd() {
        return fd;
    }

    @Override
    public String describe() {
        return "vxlan vni " + vni + " local " + config.local() + " remote " + config.remotes();
    }

    @Override
    public int receive(PacketBatch batch) {
        if (++receives == STATS_EVERY) {
            receives = 0;
            readKernelDrops();
        }
        if (gro) {
            return receiveCoalesced(batch);
        }
        batch.reset();
        int want = Math.min(rxSlots, batch.capacity());
        for (int i = 0; i < want; i++) {
            rx.nameLength(i, Sockets.SOCKADDR_IN_SIZE);
        }
        int n = Sockets.recvmmsg(fd, rx.from(0), want);
        if (n <= 0) {
            return 0;   // nothing waiting (or an error queued on the socket, which carried no frame)
        }
        int frames = 0;
        for (int i = 0; i < n; i++) {
            long at = (long) i * slotSize;
            int length = rx.length(i);
            if ((rx.flags(i) & Sockets.MSG_TRUNC) != 0 || length > HEADER_SIZE + maxFrame) {
                pendingOverMtu++;
                continue;
            }
            if (length < HEADER_SIZE + ETH_HEADER
                    || (rxBuffers.get(ValueLayout.JAVA_BYTE, at + FLAGS_OFFSET) & FLAG_I) == 0) {
                pendingMalformed++;
                continue;
            }
            if (rxBuffers.get(U32_BE, at + VNI_OFFSET) >>> 8 != vni) {
                pendingVni++;
                continue;
            }
            long name = (long) i * Sockets.SOCKADDR_IN_SIZE;
            int remote = Sockets.sockaddrInFamily(rxNames, name) == Sockets.AF_INET
                    ? remoteOf(Sockets.sockaddrInAddress(rxNames, name)) : -1;
            if (remote < 0) {
                pendingForeign++;
                continue;
            }
            long frame = at + HEADER_SIZE;
            long srcMac = mac(rxBuffers, frame + 6);
            if ((srcMac & 0x0100_0000_0000L) == 0) {
                learn(srcMac, remote);
            }
            batch.addFrame(rxBuffers, frame, length - HEADER_SIZE);
            frames++;
        }
        return frames;
    }

    /**
     * GRO receive: each message is one datagram or several of one sender ({@code UDP_GRO} cmsg: the segment
     * size); messages left over when the batch is full are handed over by the next call, before any new
     * {@code recvmmsg} (which would overwrite them).
     */
    private int receiveCoalesced(PacketBatch batch) {
        batch.reset();
        int capacity = batch.capacity();
        if (rxNext == rxHeld) {
            rxHeld = 0;
            rxNext = 0;
            rxNextSegment = 0;
            int want = rxSlots;
            for (int i = 0; i < want; i++) {
                rx.nameLength(i, Sockets.SOCKADDR_IN_SIZE);
                rx.control(i, rxControl.address() + (long) i * UdpCmsg.SPACE, UdpCmsg.SPACE);
            }
            int n = Sockets.recvmmsg(fd, rx.from(0), want);
            if (n <= 0) {
                return 0;
            }
            for (int i = 0; i < n; i++) {
                int length = rx.length(i);
                int size = UdpCmsg.groSegmentSize(rxControl, (long) i * UdpCmsg.SPACE, rx.controlLength(i));
                rxSegmentSize[i] = size > 0 && size < length ? size : Math.max(length, 1);
                if (size > 0 && size < length) {
                    coalescedReceives++;
                }
            }
            rxHeld = n;
        }
        int frames = 0;
        while (rxNext < rxHeld && frames < capacity) {
            int i = rxNext;
            long base = (long) i * rxBufferSize;
            int length = rx.length(i);
            int size = rxSegmentSize[i];
            long name = (long) i * Sockets.SOCKADDR_IN_SIZE;
            int remote = Sockets.sockaddrInFamily(rxNames, name) == Sockets.AF_INET
                    ? remoteOf(Sockets.sockaddrInAddress(rxNames, name)) : -1;
            boolean truncated = (rx.flags(i) & Sockets.MSG_TRUNC) != 0;
            int segments = length == 0 ? 1 : (length + size - 1) / size;
            int s = rxNextSegment;
            for (; s < segments && frames < capacity; s++) {
                long at = base + (long) s * size;
                int segLength = Math.min(size, length - s * size);
                if (truncated || segLength > HEADER_SIZE + maxFrame) {
                    pendingOverMtu++;
                    continue;
                }
                if (segLength < HEADER_SIZE + ETH_HEADER
                        || (rxBuffers.get(ValueLayout.JAVA_BYTE, at + FLAGS_OFFSET) & FLAG_I) == 0) {
                    pendingMalformed++;
                    continue;
                }
                if (rxBuffers.get(U32_BE, at + VNI_OFFSET) >>> 8 != vni) {
                    pendingVni++;
                    continue;
                }
                if (remote < 0) {
                    pendingForeign++;
                    continue;
                }
                long frame = at + HEADER_SIZE;
                long srcMac = mac(rxBuffers, frame + 6);
                if ((srcMac & 0x0100_0000_0000L) == 0) {
                    learn(srcMac, remote);
                }
                batch.addFrame(rxBuffers, frame, segLength - HEADER_SIZE);
                frames++;
            }
            if (s < segments) {
                rxNextSegment = s;
                break;
            }
            rxNext++;
            rxNextSegment = 0;
        }
        return frames;
    }

    /** Datagrams the kernel dropped because the socket's receive buffer was full: drop_rx_ring_full. */
    private void readKernelDrops() {
        meminfoLength.set(ValueLayout.JAVA_INT, 0, SK_MEMINFO_SIZE);
        if (Sockets.getOption(fd, Sockets.SOL_SOCKET, SO_MEMINFO, meminfo, meminfoLength) == 0
                && meminfoLength.get(ValueLayout.JAVA_INT, 0) >= SK_MEMINFO_SIZE) {
            long drops = Integer.toUnsignedLong(meminfo.get(ValueLayout.JAVA_INT, (long) SK_MEMINFO_DROPS * 4));
            pendingKernelDrops += (drops - kernelDropsSeen) & 0xFFFF_FFFFL;   // cumulative, 32 bits
            kernelDropsSeen = drops;
        }
    }

    private int remoteOf(int address) {
        for (int r = 0; r < remotes; r++) {
            if (remoteAddress[r] == address) {
                return r;
            }
        }
        return -1;
    }

    private static long mac(MemorySegment s, long at) {
        return (Short.toUnsignedLong(s.get(U16_BE, at)) << 32) | Integer.toUnsignedLong(s.get(U32_BE, at + 2));
    }

    private static int home(long mac) {
        long h = mac * 0x9E3779B97F4A7C15L;
        return (int) (h >>> 52) & (VTEP_TABLE - 1);
    }

    void learn(long mac, int remote) {
        long key = mac | OCCUPIED;
        int h = home(mac);
        for (int p = 0; p < PROBES; p++) {
            int i = (h + p) & (VTEP_TABLE - 1);
            if (vtepKey[i] == key || vtepKey[i] == 0) {
                vtepKey[i] = key;
                vtepRemote[i] = remote;
                return;
            }
        }
        vtepKey[h] = key;   // a full neighbourhood: the newest MAC takes the home slot
        vtepRemote[h] = remote;
    }

    /** The remote {@code mac} was learned behind, or -1. */
    int remoteFor(long mac) {
        long key = mac | OCCUPIED;
        int h = home(mac);
        for (int p = 0; p < PROBES; p++) {
            int i = (h + p) & (VTEP_TABLE - 1);
            if (vtepKey[i] == key) {
                return vtepRemote[i];
            }
            if (vtepKey[i] == 0) {
                return -1;
            }
        }
        return -1;
    }

    @Override
    public boolean transmit(MemorySegment[] segments, long[] offsets, int[] lengths, int count, int length) {
        if (length > maxFrame) {
            pendingOverMtu++;
            return false;
        }
        if (length < ETH_HEADER) {
            pendingMalformed++;
            return false;
        }
        if (txFrames == txSlots) {
            flush();
        }
        long slot = (long) txFrames * slotSize;
        long at = slot + HEADER_SIZE;
        for (int p = 0; p < count; p++) {
            MemorySegment.copy(segments[p], offsets[p], txBuffers, at, lengths[p]);
            at += lengths[p];
        }
        long dstMac = mac(txBuffers, slot + HEADER_SIZE);
        int remote = (dstMac & 0x0100_0000_0000L) == 0 ? remoteFor(dstMac) : -1;
        long address = txBuffers.address() + slot;
        int bytes = HEADER_SIZE + length;
        if (remote >= 0) {
            message(remote, address, bytes);
        } else {
            for (int r = 0; r < remotes; r++) {
                message(r, address, bytes);
            }
        }
        txFrames++;
        return true;
    }

    private void message(int remote, long address, int bytes) {
        int m = txMsgs++;
        msgRemote[m] = remote;
        msgAddress[m] = address;
        msgBytes[m] = bytes;
    }

    @Override
    public void flush() {
        if (gso) {
            flushSegmented();
        } else {
            sendPlain(0, txMsgs);
        }
        txMsgs = 0;
        txFrames = 0;
    }

    /** Messages {@code first..first+count-1} one datagram each, with {@code sendmmsg}. */
    private void sendPlain(int first, int count) {
        for (int k = 0; k < count; k++) {
            int m = first + k;
            tx.name(k, remoteNames.address() + (long) msgRemote[m] * Sockets.SOCKADDR_IN_SIZE, Sockets.SOCKADDR_IN_SIZE);
            tx.iov(k, 0, msgAddress[m], msgBytes[m]);
        }
        int sent = 0;
        while (sent < count) {
            int r = Sockets.sendmmsg(fd, tx.from(sent), count - sent);
            if (r > 0) {
                sent += r;
            } else if (r == -Errno.EAGAIN || r == -Sockets.ENOBUFS) {
                pendingNoBuffers += count - sent;   // the socket buffer is full: the rest of the burst is dropped
                break;
            } else {
                pendingTxError++;   // this message failed (e.g. no route): skip it, send the rest
                sent++;
            }
        }
    }

    /**
     * Groups the pass's messages per remote into runs of one length (the last of a run may be shorter), at
     * most {@link #MAX_SEGMENTS} and {@link #MAX_GSO_BYTES} each, one {@code UDP_SEGMENT} message per run of
     * more than one; frames keep their order per remote.
     */
    private void flushSegmented() {
        int groups = 0;
        int total = txMsgs;
        for (int r = 0; r < remotes; r++) {
            int g = -1;
            int size = 0;
            int bytes = 0;
            boolean closedRun = true;
            for (int m = 0; m < total; m++) {
                if (msgRemote[m] != r) {
                    continue;
                }
                int b = msgBytes[m];
                if (closedRun || b > size || groupFrames[g] == MAX_SEGMENTS || bytes + b > MAX_GSO_BYTES) {
                    if (g >= 0) {
                        finishGroup(g, size);
                    }
                    g = groups++;
                    gsoTx.name(g, remoteNames.address() + (long) r * Sockets.SOCKADDR_IN_SIZE, Sockets.SOCKADDR_IN_SIZE);
                    groupFrames[g] = 0;
                    size = b;
                    bytes = 0;
                    closedRun = false;
                }
                gsoTx.iov(g, groupFrames[g]++, msgAddress[m], b);
                bytes += b;
                if (b < size) {
                    closedRun = true;   // a shorter datagram can only end a run
                }
            }
            if (g >= 0) {
                finishGroup(g, size);
            }
        }
        int sent = 0;
        while (sent < groups) {
            int r = Sockets.sendmmsg(fd, gsoTx.from(sent), groups - sent);
            if (r > 0) {
                sent += r;
            } else if (r == -Errno.EAGAIN || r == -Sockets.ENOBUFS) {
                for (int g = sent; g < groups; g++) {
                    pendingNoBuffers += groupFrames[g];
                }
                break;
            } else if (groupFrames[sent] > 1 && (r == -Sockets.EIO || r == -Errno.EINVAL || r == -Sockets.EMSGSIZE)) {
                gso = false;   // the route cannot segment: this group datagram by datagram, and plain from now on
                resendGroup(sent);
                sent++;
            } else {
                pendingTxError += groupFrames[sent];
                sent++;
            }
        }
    }

    private void finishGroup(int g, int size) {
        gsoTx.iovCount(g, groupFrames[g]);
        if (groupFrames[g] > 1) {
            long at = (long) g * UdpCmsg.SPACE;
            UdpCmsg.segment(gsoControl, at, size);
            gsoTx.control(g, gsoControl.address() + at, UdpCmsg.SPACE);
            segmentedSends++;
        } else {
            gsoTx.control(g, 0, 0);
        }
    }

    /** A group the kernel refused to segment, sent again as plain datagrams (its iovecs become messages). */
    private void resendGroup(int g) {
        int n = groupFrames[g];
        long name = remoteNames.address();
        int remote = 0;
        for (int r = 0; r < remotes; r++) {
            if (gsoTx.nameAddress(g) == name + (long) r * Sockets.SOCKADDR_IN_SIZE) {
                remote = r;
            }
        }
        for (int k = 0; k < n; k++) {
            msgRemote[k] = remote;
            msgAddress[k] = gsoTx.iovAddress(g, k);
            msgBytes[k] = (int) gsoTx.iovLength(g, k);
        }
        sendPlain(0, n);
    }

    /** Whether transmits still use UDP_SEGMENT (false from the start without segmentation, or after a refusal). */
    boolean segmenting() {
        return gso;
    }

    long segmentedSends() {
        return segmentedSends;
    }

    long coalescedReceives() {
        return coalescedReceives;
    }

    @Override
    public void publishCounts() {
        if ((pendingMalformed | pendingVni | pendingForeign | pendingOverMtu | pendingTxError | pendingNoBuffers
                | pendingKernelDrops) == 0) {
            return;
        }
        publish(counters.dropMalformed, pendingMalformed);
        publish(counters.dropVni, pendingVni);
        publish(counters.dropForeignVtep, pendingForeign);
        publish(portCounters.dropOverMtu, pendingOverMtu);
        publish(counters.dropTxError, pendingTxError);
        publish(portCounters.dropNoBuffers, pendingNoBuffers);
        publish(portCounters.dropRxRingFull, pendingKernelDrops);
        pendingMalformed = pendingVni = pendingForeign = pendingOverMtu = pendingTxError = pendingNoBuffers = 0;
        pendingKernelDrops = 0;
    }

    private static void publish(org.agrona.concurrent.status.AtomicCounter counter, long delta) {
        if (delta != 0) {
            counter.getAndAdd(delta);   // atomic: other workers may count no_buffers on this port too
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        Libc.closeQuietly(fd);
        arena.close();
    }

    @Override
    public String toString() {
        return name + " (" + describe() + ")";
    }
}
