package io.vswitch.engine;

import io.vswitch.config.UplinkConfig;
import io.vswitch.sys.MsgVec;
import io.vswitch.sys.Sockets;
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
    private boolean closed;

    /**
     * Opens and binds the socket. {@code burst} frames per receive; {@code mtu} the largest inner payload
     * (the inner frame may be 18 bytes longer: Ethernet header and one VLAN tag).
     */
    public VxlanUplink(String name, UplinkConfig.Vxlan config, int mtu, int burst, PortCounters portCounters,
                UplinkCounters counters) {
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

        rxBuffers = arena.allocate((long) rxSlots * slotSize, 64);
        rxNames = arena.allocate((long) rxSlots * Sockets.SOCKADDR_IN_SIZE, 8);
        rx = new MsgVec(arena.allocate((long) rxSlots * MsgVec.MMSGHDR_SIZE, 8),
                arena.allocate((long) rxSlots * MsgVec.IOVEC_SIZE, 8), rxSlots, 1);
        for (int i = 0; i < rxSlots; i++) {
            rx.name(i, rxNames.asSlice((long) i * Sockets.SOCKADDR_IN_SIZE, Sockets.SOCKADDR_IN_SIZE),
                    Sockets.SOCKADDR_IN_SIZE);
            // one byte more than the largest valid packet, so that a longer one shows as too long
            // (MSG_TRUNC), not as a valid frame cut short
            rx.iov(i, 0, rxBuffers.address() + (long) i * slotSize, Math.min(slotSize, HEADER_SIZE + maxFrame + 1));
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

        int socket = Sockets.socket(Sockets.AF_INET, Sockets.SOCK_DGRAM | Sockets.SOCK_NONBLOCK | Sockets.SOCK_CLOEXEC, 0);
        try {
            bufferSize(socket, Sockets.SO_RCVBUFFORCE, Sockets.SO_RCVBUF);
            bufferSize(socket, Sockets.SO_SNDBUFFORCE, Sockets.SO_SNDBUF);
            MemorySegment local = arena.allocate(Sockets.SOCKADDR_IN_SIZE, 8);
            Sockets.sockaddrIn(local, 0, config.local().address(), config.local().port());
            Sockets.bind(socket, local, Sockets.SOCKADDR_IN_SIZE, "port " + name + ": VXLAN local " + config.local());
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
        tx.name(m, remoteNames.address() + (long) remote * Sockets.SOCKADDR_IN_SIZE, Sockets.SOCKADDR_IN_SIZE);
        tx.iov(m, 0, address, bytes);
    }

    @Override
    public void flush() {
        int sent = 0;
        int total = txMsgs;
        while (sent < total) {
            int r = Sockets.sendmmsg(fd, tx.from(sent), total - sent);
            if (r > 0) {
                sent += r;
            } else if (r == -Errno.EAGAIN || r == -Sockets.ENOBUFS) {
                pendingNoBuffers += total - sent;   // the socket buffer is full: the rest of the burst is dropped
                break;
            } else {
                pendingTxError++;   // this message failed (e.g. no route): skip it, send the rest
                sent++;
            }
        }
        txMsgs = 0;
        txFrames = 0;
    }

    @Override
    public void publishCounts() {
        if ((pendingMalformed | pendingVni | pendingForeign | pendingOverMtu | pendingTxError | pendingNoBuffers) == 0) {
            return;
        }
        publish(counters.dropMalformed, pendingMalformed);
        publish(counters.dropVni, pendingVni);
        publish(counters.dropForeignVtep, pendingForeign);
        publish(portCounters.dropOverMtu, pendingOverMtu);
        publish(counters.dropTxError, pendingTxError);
        publish(portCounters.dropNoBuffers, pendingNoBuffers);
        pendingMalformed = pendingVni = pendingForeign = pendingOverMtu = pendingTxError = pendingNoBuffers = 0;
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
