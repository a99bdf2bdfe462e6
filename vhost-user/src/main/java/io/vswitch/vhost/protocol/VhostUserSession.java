package io.vswitch.vhost.protocol;

import io.vswitch.protocol.VhostUserMessage;
import io.vswitch.protocol.Features;
import io.vswitch.protocol.VhostUserRequest;
import io.vswitch.sys.EventFd;
import io.vswitch.vhost.memory.DirtyLog;
import io.vswitch.vhost.memory.GuestMemory;
import io.vswitch.vhost.memory.GuestMemoryException;
import io.vswitch.vhost.memory.MemoryRegion;
import io.vswitch.vhost.net.VirtioNetDevice;
import io.vswitch.sys.ReceivedFds;
import io.vswitch.sys.UnixSocket;

import java.io.EOFException;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.util.EnumMap;
import java.util.Map;

import static io.vswitch.protocol.VhostUserMessage.*;

/**
 * One frontend connection: reads messages, checks them, and applies them to a {@link VirtioNetDevice}
 * through a table of handlers (request, payload size, what it needs from the data path, handler). The device
 * and data path know nothing of the wire format.
 *
 * <p>The table's {@link DataPath} column says, for every message, whether its handler may run while workers
 * poll the device, and {@link #dispatch()} enforces it around the handler: a handler cannot forget to stop
 * the data path or to wait for a grace period, and no reply (ack included) goes out before that is done, so
 * once the frontend hears back, the backend no longer uses what the message replaced.
 *
 * <p>A message we cannot frame (bad version, oversized payload, truncated descriptors) ends the connection,
 * since nothing after it can be trusted. A message we can frame but refuse (bad size, bad index, memory we
 * will not map) is logged, counted, answered with a failure when the frontend asked for an answer, and
 * marks the device broken where it touches the rings.
 */
public final class VhostUserSession implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger("vswitch.vhost");

    /** Thrown by a handler to refuse a message: logged, counted and nacked. */
    static final class Refused extends Exception {
        Refused(String message) {
            super(message, null, false, false);
        }
    }

    @FunctionalInterface
    interface Handler {
        /** Applies the request; writes a reply into {@code msg} and returns true when it has one to send. */
        boolean handle(VhostUserMessage msg, ReceivedFds fds) throws Refused;
    }

    /** What a message needs from the workers that poll the device; enforced by {@link #dispatch()}. */
    public enum DataPath {
        /** Reads state, or changes set-up the workers never look at (applied when a ring starts): runs as is. */
        UNTOUCHED,
        /**
         * Replaces something the workers may be using right now without stopping them (the call and error
         * eventfds: QEMU swaps call eventfds at run time as the guest masks and unmasks interrupts, which must
         * not bounce the link). What it replaced is closed only after a grace period, before the reply.
         */
        GRACE_PERIOD,
        /**
         * Changes what the rings are or where they live (memory table, ring addresses and positions, kick,
         * enable, reset): the data path is stopped and the workers out of it before the handler runs, and
         * started again afterwards when the device is ready. On a running device that is a link bounce, which
         * is fine for messages a frontend sends while it sets rings up or tears them down. (The device's own
         * methods also stop the data path where they must, so they stay safe when called directly.)
         */
        STOPPED
    }

    private record Entry(int payloadSize, DataPath dataPath, Handler handler) {
        static final int VARIABLE = -1;
    }

    private final String port;
    private final UnixSocket socket;
    private final VirtioNetDevice device;
    private final SessionCounters counters;
    private final Arena arena = Arena.ofConfined();
    private final VhostUserMessage msg;
    private final ReceivedFds fds = new ReceivedFds();
    private final Map<VhostUserRequest, Entry> handlers = new EnumMap<>(VhostUserRequest.class);

    public VhostUserSession(String port, UnixSocket socket, VirtioNetDevice device, SessionCounters counters) {
        this.port = port;
        this.socket = socket;
        this.device = device;
        this.counters = counters;
        this.msg = new VhostUserMessage(arena);
        registerHandlers();
    }

    private void registerHandlers() {
        final DataPath untouched = DataPath.UNTOUCHED;
        final DataPath grace = DataPath.GRACE_PERIOD;
        final DataPath stopped = DataPath.STOPPED;
        on(VhostUserRequest.GET_FEATURES, 0, untouched, (m, f) -> replyU64(m, device.offeredFeatures()));
        on(VhostUserRequest.SET_FEATURES, U64_SIZE, untouched, (m, f) -> apply(device.setFeatures(m.u64(0))));
        on(VhostUserRequest.GET_PROTOCOL_FEATURES, 0, untouched, (m, f) -> replyU64(m, device.offeredProtocolFeatures()));
        on(VhostUserRequest.SET_PROTOCOL_FEATURES, U64_SIZE, untouched, (m, f) -> apply(device.setProtocolFeatures(m.u64(0))));
        on(VhostUserRequest.SET_OWNER, 0, untouched, (m, f) -> false);
        on(VhostUserRequest.RESET_OWNER, 0, stopped, (m, f) -> {
            device.reset();
            return false;
        });
        on(VhostUserRequest.RESET_DEVICE, 0, stopped, (m, f) -> {
            device.reset();
            return false;
        });
        // the queue pairs the port serves (its topology's 'queues'); a frontend that wants more refuses to start
        on(VhostUserRequest.GET_QUEUE_NUM, 0, untouched, (m, f) -> replyU64(m, device.queuePairs()));
        on(VhostUserRequest.GET_MAX_MEM_SLOTS, 0, untouched, (m, f) -> replyU64(m, GuestMemory.MAX_REGIONS));
        on(VhostUserRequest.SET_MEM_TABLE, Entry.VARIABLE, stopped, this::setMemTable);
        // regions come and go while the guest runs (memory hotplug): the rings stay, a removed region is
        // unmapped after a grace period (the device falls back to stopping when a ring lies in it)
        on(VhostUserRequest.ADD_MEM_REG, MEM_REG_SIZE, grace, this::addMemReg);
        on(VhostUserRequest.REM_MEM_REG, MEM_REG_SIZE, grace, this::remMemReg);
        // NUM and BASE only record set-up that is applied when the ring starts (KICK, ENABLE)
        on(VhostUserRequest.SET_VRING_NUM, VRING_STATE_SIZE, untouched,
                (m, f) -> apply(device.setVringNum(m.u32(VRING_STATE_INDEX), m.u32(VRING_STATE_NUM))));
        on(VhostUserRequest.SET_VRING_BASE, VRING_STATE_SIZE, untouched,
                (m, f) -> apply(device.setVringBase(m.u32(VRING_STATE_INDEX), m.u32(VRING_STATE_NUM))));
        on(VhostUserRequest.SET_VRING_ADDR, VRING_ADDR_SIZE, stopped, (m, f) -> apply(device.setVringAddr(
                m.u32(VRING_ADDR_INDEX), m.u64(VRING_ADDR_DESC), m.u64(VRING_ADDR_USED), m.u64(VRING_ADDR_AVAIL),
                (m.u32(VRING_ADDR_FLAGS) & VRING_F_LOG) != 0 ? m.u64(VRING_ADDR_LOG) : -1)));
        on(VhostUserRequest.GET_VRING_BASE, VRING_STATE_SIZE, stopped, this::getVringBase);
        on(VhostUserRequest.SET_VRING_KICK, U64_SIZE, stopped, (m, f) -> apply(device.setVringKick(queueIndex(m), eventFd(m, f))));
        on(VhostUserRequest.SET_VRING_CALL, U64_SIZE, grace, (m, f) -> apply(device.setVringCall(queueIndex(m), eventFd(m, f))));
        on(VhostUserRequest.SET_VRING_ERR, U64_SIZE, grace, (m, f) -> apply(device.setVringErr(queueIndex(m), eventFd(m, f))));
        on(VhostUserRequest.SET_VRING_ENABLE, VRING_STATE_SIZE, stopped,
                (m, f) -> apply(device.setVringEnable(m.u32(VRING_STATE_INDEX), m.u32(VRING_STATE_NUM) != 0)));
        on(VhostUserRequest.SET_STATUS, U64_SIZE, untouched, (m, f) -> {
            device.setStatus(m.u64(0) & 0xFF);
            return false;
        });
        on(VhostUserRequest.GET_STATUS, 0, untouched, (m, f) -> replyU64(m, device.status()));
        on(VhostUserRequest.NET_SET_MTU, U64_SIZE, untouched, (m, f) -> apply(device.setMtu(m.u64(0))));
        on(VhostUserRequest.SEND_RARP, U64_SIZE, untouched, (m, f) -> {
            byte[] mac = new byte[6];
            for (int i = 0; i < mac.length; i++) {
                mac[i] = (byte) m.u8(i);
            }
            if ((mac[0] & 1) != 0) {
                throw new Refused("SEND_RARP with a multicast MAC");
            }
            device.announce(mac);
            return false;
        });
        // a replaced log is unmapped after a grace period (the device waits for it itself)
        on(VhostUserRequest.SET_LOG_BASE, LOG_SIZE, grace, this::setLogBase);
        on(VhostUserRequest.SET_LOG_FD, Entry.VARIABLE, untouched, (m, f) -> {
            // the log-sync eventfd of the kernel vhost interface; with LOG_SHMFD nothing signals it here
            f.closeAll();
            return false;
        });
    }

    private void on(VhostUserRequest request, int payloadSize, DataPath dataPath, Handler handler) {
        handlers.put(request, new Entry(payloadSize, dataPath, handler));
    }

    /** What {@code request} needs from the data path, or null when the session does not handle it. */
    DataPath dataPath(VhostUserRequest request) {
        Entry entry = handlers.get(request);
        return entry == null ? null : entry.dataPath();
    }

    /**
     * Serves messages until the frontend disconnects or sends something that cannot be framed. Returns
     * normally on a clean disconnect.
     */
    public void serve() throws IOException {
        while (true) {
            try {
                socket.receive(msg.header(), HEADER_SIZE, fds);
            } catch (EOFException e) {
                fds.closeAll();
                return;
            }
            try {
                if ((msg.flags() & VERSION_MASK) != VERSION) {
                    throw protocolError("bad version in flags 0x" + Integer.toHexString(msg.flags()));
                }
                int size = msg.size();
                if (size < 0 || size > MAX_PAYLOAD) {
                    throw protocolError("payload size " + Integer.toUnsignedString(size) + " exceeds " + MAX_PAYLOAD);
                }
                if (size > 0) {
                    socket.receive(msg.payload(), size, fds);
                }
                dispatch();
            } finally {
                fds.closeAll();
            }
        }
    }

    private IOException protocolError(String what) {
        counters.protocolErrors++;
        LOG.log(Level.WARNING, "port {0}: closing connection: {1}", port, what);
        return new IOException(what);
    }

    private void dispatch() throws IOException {
        int code = msg.request();
        int flags = msg.flags();
        VhostUserRequest request = VhostUserRequest.of(code);
        counters.messages++;
        Entry entry = request == null ? null : handlers.get(request);
        String name = request == null ? "request " + code : request.name();
        boolean ok;
        boolean replied = false;
        try {
            if (entry == null) {
                throw new Refused("unsupported " + name);
            }
            if (fds.count() > request.maxFds()) {
                throw new Refused(name + " carried " + fds.count() + " descriptors, at most " + request.maxFds() + " allowed");
            }
            if (entry.payloadSize() != Entry.VARIABLE && msg.size() != entry.payloadSize()) {
                throw new Refused(name + " payload is " + msg.size() + " bytes, expected " + entry.payloadSize());
            }
            replied = handle(entry);
            ok = true;
        } catch (Refused e) {
            counters.refusedMessages++;
            LOG.log(Level.WARNING, "port {0}: refused {1}: {2}", port, name, e.getMessage());
            ok = false;
            if (request != null && request.replies()) {
                // the frontend waits for this reply: answer with zeros rather than leave it hanging
                // (SET_LOG_BASE's reply is a status where 0 means success: a refusal must not say 0)
                msg.reply(code, request == VhostUserRequest.GET_VRING_BASE ? VRING_STATE_SIZE : U64_SIZE)
                        .putU64(0, request == VhostUserRequest.SET_LOG_BASE ? 1 : 0);
                replied = true;
            }
        }
        if (replied) {
            send(msg);
        } else if ((flags & FLAG_NEED_REPLY) != 0 && device.hasProtocolFeature(Features.PROTOCOL_F_REPLY_ACK)) {
            send(msg.reply(code, U64_SIZE).putU64(0, ok ? 0 : 1));
        }
    }

    /** Runs the handler inside what its {@link DataPath} column asks for; returns whether it wrote a reply. */
    private boolean handle(Entry entry) throws Refused {
        switch (entry.dataPath()) {
            case UNTOUCHED -> {
                return entry.handler().handle(msg, fds);
            }
            case GRACE_PERIOD -> {
                try {
                    return entry.handler().handle(msg, fds);
                } finally {
                    device.releaseRetired();
                }
            }
            case STOPPED -> {
                device.pauseDataPath();
                try {
                    return entry.handler().handle(msg, fds);
                } finally {
                    device.resumeDataPath();
                    device.releaseRetired();
                }
            }
            default -> throw new AssertionError(entry.dataPath());
        }
    }

    private void send(VhostUserMessage reply) throws IOException {
        socket.send(reply.buffer(), reply.wireLength(), null, 0);
    }

    private static boolean replyU64(VhostUserMessage m, long value) {
        m.reply(m.request(), U64_SIZE).putU64(0, value);
        return true;
    }

    private static boolean apply(String problem) throws Refused {
        if (problem != null) {
            throw new Refused(problem);
        }
        return false;
    }

    private static int queueIndex(VhostUserMessage m) {
        return (int) (m.u64(0) & VRING_INDEX_MASK);
    }

    /** The eventfd a SET_VRING_KICK/CALL/ERR carries, or null with the "no fd" flag (poll instead). */
    private static EventFd eventFd(VhostUserMessage m, ReceivedFds f) throws Refused {
        boolean noFd = (m.u64(0) & VRING_NOFD_MASK) != 0;
        if (noFd) {
            if (f.count() != 0) {
                throw new Refused("descriptor sent although the no-fd flag is set");
            }
            return null;
        }
        if (f.count() != 1) {
            throw new Refused("expected one eventfd, got " + f.count());
        }
        try {
            return EventFd.adopt(f.take(0));
        } catch (RuntimeException e) {
            throw new Refused("unusable eventfd: " + e.getMessage());
        }
    }

    private boolean getVringBase(VhostUserMessage m, ReceivedFds f) throws Refused {
        int index = m.u32(VRING_STATE_INDEX);
        long base = device.getVringBase(index);
        if (base < 0) {
            throw new Refused("GET_VRING_BASE for queue " + index + " out of range");
        }
        m.reply(m.request(), VRING_STATE_SIZE).putU32(VRING_STATE_INDEX, index).putU32(VRING_STATE_NUM, (int) base);
        return true;
    }

    private boolean setMemTable(VhostUserMessage m, ReceivedFds f) throws Refused {
        if (m.size() < MEMORY_REGIONS) {
            throw new Refused("SET_MEM_TABLE payload of " + m.size() + " bytes is too short");
        }
        int n = m.u32(MEMORY_NREGIONS);
        if (n < 1 || n > ReceivedFds.MAX_FDS) {
            throw new Refused("SET_MEM_TABLE with " + Integer.toUnsignedString(n) + " regions (1.." + ReceivedFds.MAX_FDS + ")");
        }
        if (m.size() != MEMORY_REGIONS + n * REGION_SIZE) {
            throw new Refused("SET_MEM_TABLE payload is " + m.size() + " bytes for " + n + " regions");
        }
        if (f.count() != n) {
            throw new Refused("SET_MEM_TABLE has " + n + " regions but " + f.count() + " descriptors");
        }
        GuestMemory memory = GuestMemory.empty();
        try {
            for (int i = 0; i < n; i++) {
                int at = MEMORY_REGIONS + i * REGION_SIZE;
                MemoryRegion region = MemoryRegion.map(f.take(i), m.u64(at + REGION_GUEST_PHYS),
                        m.u64(at + REGION_MEMORY_SIZE), m.u64(at + REGION_USERSPACE), m.u64(at + REGION_MMAP_OFFSET));
                try {
                    memory = memory.with(region);
                } catch (GuestMemoryException e) {
                    region.close();   // mapped but refused (overlap): not in memory, so unmap it here
                    throw e;
                }
            }
        } catch (GuestMemoryException e) {
            memory.close();
            device.markBroken("memory table refused: " + e.getMessage());
            throw new Refused(e.getMessage());
        }
        device.setMemory(memory);
        LOG.log(Level.INFO, "port {0}: mapped {1} memory region(s)", port, n);
        return false;
    }

    private boolean setLogBase(VhostUserMessage m, ReceivedFds f) throws Refused {
        if (f.count() != 1) {
            throw new Refused("SET_LOG_BASE needs one descriptor (LOG_SHMFD), got " + f.count());
        }
        long size = m.u64(LOG_MMAP_SIZE);
        long offset = m.u64(LOG_MMAP_OFFSET);
        int fd = f.take(0);
        DirtyLog log;
        try {
            log = DirtyLog.map(fd, size, offset);
        } catch (GuestMemoryException | io.vswitch.sys.SysCallException e) {
            throw new Refused("dirty log refused: " + e.getMessage());
        } finally {
            io.vswitch.sys.Libc.closeQuietly(fd);
        }
        device.setDirtyLog(log);
        LOG.log(Level.INFO, "port {0}: dirty log of {1} bytes mapped (covers {2} MiB of guest memory)", port, size,
                size * 8 * 4096 >> 20);
        return replyU64(m, 0);
    }

    private boolean addMemReg(VhostUserMessage m, ReceivedFds f) throws Refused {
        if (f.count() != 1) {
            throw new Refused("ADD_MEM_REG needs one descriptor, got " + f.count());
        }
        MemoryRegion known = device.addReference(m.u64(MEM_REG_REGION + REGION_GUEST_PHYS),
                m.u64(MEM_REG_REGION + REGION_MEMORY_SIZE), m.u64(MEM_REG_REGION + REGION_USERSPACE),
                m.u64(MEM_REG_REGION + REGION_MMAP_OFFSET));
        if (known != null) {
            // a multiqueue frontend's other vhost device adds the regions again: counted, not mapped twice
            // (the descriptor is closed with the message's)
            LOG.log(Level.DEBUG, "port {0}: memory region {1} added again (one more reference)", port, known);
            return false;
        }
        MemoryRegion region;
        try {
            region = MemoryRegion.map(f.take(0), m.u64(MEM_REG_REGION + REGION_GUEST_PHYS),
                    m.u64(MEM_REG_REGION + REGION_MEMORY_SIZE), m.u64(MEM_REG_REGION + REGION_USERSPACE),
                    m.u64(MEM_REG_REGION + REGION_MMAP_OFFSET));
        } catch (GuestMemoryException e) {
            throw new Refused(e.getMessage());
        }
        try {
            device.addRegion(region);
        } catch (GuestMemoryException e) {
            region.close();   // refused (overlap, too many regions): unmap what was just mapped
            throw new Refused(e.getMessage());
        }
        logRegions("added", region);
        return false;
    }

    private boolean remMemReg(VhostUserMessage m, ReceivedFds f) throws Refused {
        MemoryRegion removed;
        try {
            removed = device.removeRegion(m.u64(MEM_REG_REGION + REGION_GUEST_PHYS), m.u64(MEM_REG_REGION + REGION_MEMORY_SIZE),
                    m.u64(MEM_REG_REGION + REGION_USERSPACE));
        } catch (GuestMemoryException e) {
            throw new Refused(e.getMessage());
        }
        logRegions("removed", removed);
        return false;
    }

    /** Hotplug on a running device is worth a line; the dozens of regions of a set-up are summed up at link up. */
    private void logRegions(String what, MemoryRegion region) {
        Level level = device.isRunning() ? Level.INFO : Level.DEBUG;
        LOG.log(level, "port {0}: memory region {1} {2} ({3} region(s) now)", port, what, region,
                device.memory().regionCount());
    }

    @Override
    public void close() {
        fds.closeAll();
        arena.close();
    }
}
