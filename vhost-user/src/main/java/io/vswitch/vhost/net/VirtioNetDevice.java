package io.vswitch.vhost.net;

import io.vswitch.sys.EventFd;
import io.vswitch.vhost.memory.DirtyLog;
import io.vswitch.vhost.memory.GuestMemory;
import io.vswitch.vhost.memory.MemoryRegion;
import io.vswitch.protocol.Features;
import io.vswitch.protocol.SplitRing;
import io.vswitch.vhost.virtio.VirtQueue;

import java.lang.System.Logger.Level;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * A virtio-net device as one vhost-user frontend drives it: one receive and one transmit queue over the
 * guest memory it shared. The control thread changes it through the methods here; the worker sees it only
 * while {@link #isRunning()}, and every change that could pull memory or a queue from under the worker
 * first stops the data path and waits for {@link Quiescence}.
 *
 * <p>Threads. Control methods are {@code synchronized} on the device: the port's control thread (the
 * vhost-user session) and the switch's housekeeping thread (acting on what a worker raised) both call them,
 * one at a time. The worker never takes that lock, never waits and never calls them: it reads what is
 * published to it ({@link #isRunning()}, the queues) and reports trouble with {@link #raiseQueueFault()} and
 * {@link #raiseBroken}, which only set a flag for {@link #handleRaised()} on a control thread.
 *
 * <p>Grace periods. An eventfd the worker may be signalling (call, err) is never closed as it is replaced:
 * it is retired, and {@link #releaseRetired()} closes it after a grace period; so is a memory region removed
 * with REM_MEM_REG while the data path runs. Other guest memory and kick eventfds are released only while the
 * data path is stopped, after {@link #stop()} waited for quiescence.
 *
 * <p>Queue numbering is virtio-net's: 0 is the guest's receive queue (we enqueue), 1 its transmit queue
 * (we dequeue).
 */
public final class VirtioNetDevice {
    public static final int RX_QUEUE = 0;
    public static final int TX_QUEUE = 1;
    public static final int QUEUES = 2;

    private static final System.Logger LOG = System.getLogger("vswitch.vhost");

    private final String name;
    private final VirtQueue[] queues;
    private final QueueSetup[] setup = {new QueueSetup(), new QueueSetup()};
    private GuestMemory memory = GuestMemory.empty();
    private long features;
    private long protocolFeatures;
    private long status;
    /** The port's MTU: the most NET_SET_MTU may set (the switch drops longer frames anyway). */
    private volatile int maxMtu = 1500;
    /** What GET_FEATURES offers: every device feature, less the offloads when the port turned them off. */
    private volatile long offeredFeatures = Features.DEVICE_FEATURES;
    /** The MTU the frontend gave the guest (NET_SET_MTU), or 0 when it gave none. */
    private int mtu;
    private volatile boolean running;
    /** Incremented each time the device starts running, so a worker notices a restart it did not see stop. */
    private volatile int generation;
    private volatile Quiescence quiescence = Quiescence.NONE;
    private volatile boolean broken;
    private final List<Runnable> stateListeners = new ArrayList<>();
    /** The frontend's dirty-page log (SET_LOG_BASE), written while VHOST_F_LOG_ALL is negotiated. */
    private DirtyLog dirtyLog;
    private volatile Consumer<byte[]> announcer = mac -> { };
    /**
     * Replaced eventfds the worker may still be signalling and removed memory regions it may still be
     * translating into: closed by {@link #releaseRetired()} after a grace period.
     */
    private final List<AutoCloseable> retired = new ArrayList<>();

    // what the worker raised for a control thread to act on (see handleRaised)
    private static final VarHandle RAISED;
    private static final int RAISED_QUEUE_FAULT = 1;
    private static final int RAISED_BROKEN = 2;

    static {
        try {
            RAISED = MethodHandles.lookup().findVarHandle(VirtioNetDevice.class, "raised", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    @SuppressWarnings("unused")
    private volatile int raised;
    private volatile String raisedWhy;
    private volatile int raisedGeneration;

    /** What the frontend told us about one queue; applied to the {@link VirtQueue} when the ring starts. */
    private static final class QueueSetup {
        int size;
        long descAddr;
        long availAddr;
        long usedAddr;
        /** Guest-physical address of the used ring for the dirty log (VHOST_VRING_F_LOG), or -1. */
        long usedLogAddr = -1;
        boolean addressed;
        int base;
        boolean enabled;
        boolean started;
        EventFd kick;
        EventFd call;
        EventFd err;
    }

    public VirtioNetDevice(String name) {
        this.name = name;
        this.queues = new VirtQueue[] {new VirtQueue(name + " rx"), new VirtQueue(name + " tx")};
    }

    public String name() {
        return name;
    }

    // ---------------------------------------------------------------- what the worker uses

    /** True while both rings are started and enabled and the worker may run the data path. */
    public boolean isRunning() {
        return running;
    }

    /** The guest's receive queue: we enqueue into it. */
    public VirtQueue rxQueue() {
        return queues[RX_QUEUE];
    }

    /** The guest's transmit queue: we dequeue from it. */
    public VirtQueue txQueue() {
        return queues[TX_QUEUE];
    }

    /**
     * A duplicate of the transmit queue's kick eventfd for a worker that sleeps until kicked, or null when
     * the frontend gave none. The caller owns (and closes) the duplicate. Call only while running.
     */
    public EventFd duplicateTxKick() {
        EventFd kick = setup[TX_QUEUE].kick;
        return kick == null || kick.isClosed() ? null : kick.duplicate();
    }

    /** Which start of the device this is; changes whenever it starts running again. */
    public int generation() {
        return generation;
    }

    /**
     * Worker: a queue of this device faulted. Only sets a flag (lock-free, no allocation); a control thread
     * logs it, tells the frontend and marks the device broken in {@link #handleRaised()}.
     */
    public void raiseQueueFault() {
        RAISED.getAndBitwiseOr(this, RAISED_QUEUE_FAULT);
    }

    /**
     * Worker: the device cannot be served as set up ({@code why}), so it must be stopped until the frontend sets
     * it up again. Only records it (lock-free); a control thread acts in {@link #handleRaised()}, and only if
     * the device has not restarted since.
     */
    public void raiseBroken(String why) {
        raisedWhy = why;
        raisedGeneration = generation;
        RAISED.getAndBitwiseOr(this, RAISED_BROKEN);   // publishes the two fields above
    }

    /** True when a worker raised something {@link #handleRaised()} has not acted on yet. */
    public boolean hasRaised() {
        return raised != 0;
    }

    /** Set by the switch when a worker starts polling this device. */
    public synchronized void setQuiescence(Quiescence quiescence) {
        this.quiescence = quiescence == null ? Quiescence.NONE : quiescence;
    }

    /** Called (on the control thread) whenever the device starts or stops running. */
    public synchronized void addStateListener(Runnable listener) {
        stateListeners.add(listener);
    }

    /** True once a queue fault or a rejected setup stopped the device until the frontend resets it. */
    public boolean isBroken() {
        return broken || queues[0].isBroken() || queues[1].isBroken();
    }

    // ---------------------------------------------------------------- control threads

    /**
     * Acts on what the worker raised, on the calling (control) thread: a queue fault is logged once and
     * signalled on the queue's error eventfd; a device that cannot be served is marked broken and stopped.
     * Cheap when nothing was raised; the switch calls it periodically.
     */
    public void handleRaised() {
        if (raised == 0) {
            return;
        }
        synchronized (this) {
            int what = (int) RAISED.getAndSet(this, 0);
            if ((what & RAISED_QUEUE_FAULT) != 0) {
                reportFault();
            }
            if ((what & RAISED_BROKEN) != 0 && running && generation == raisedGeneration) {
                markBroken(raisedWhy);
            }
        }
    }

    /**
     * Stops the data path and waits until no worker can still be inside it: for a message that changes what
     * the rings are or where they live. {@link #resumeDataPath()} starts it again when the device is ready.
     */
    public synchronized void pauseDataPath() {
        stop();
    }

    /** Starts the data path again after {@link #pauseDataPath()}, if the device is (still) ready to run. */
    public synchronized void resumeDataPath() {
        update();
    }

    /**
     * Closes the eventfds replaced since the last call (the worker may have been signalling them) once a grace
     * period has passed; returns at once when nothing was replaced. The device is not locked during the wait:
     * the eventfds are no longer the device's, and a slow worker must not hold up other control work on it.
     */
    public void releaseRetired() {
        AutoCloseable[] due;
        Quiescence q;
        synchronized (this) {
            if (retired.isEmpty()) {
                return;
            }
            due = retired.toArray(new AutoCloseable[0]);
            retired.clear();
            q = quiescence;
        }
        q.await();
        for (AutoCloseable c : due) {
            try {
                c.close();
            } catch (Exception e) {
                LOG.log(Level.WARNING, "port {0}: releasing {1}: {2}", name, c, e.toString());
            }
        }
    }

    public long features() {
        return features;
    }

    public long protocolFeatures() {
        return protocolFeatures;
    }

    public boolean hasProtocolFeature(int bit) {
        return Features.has(protocolFeatures, bit);
    }

    public long status() {
        return status;
    }

    public synchronized void setStatus(long status) {
        this.status = status;
    }

    public GuestMemory memory() {
        return memory;
    }

    /** The port's MTU, set by the switch: NET_SET_MTU is refused above it. */
    public void setMaxMtu(int maxMtu) {
        this.maxMtu = maxMtu;
    }

    public int maxMtu() {
        return maxMtu;
    }

    /** The guest's MTU as the frontend set it (NET_SET_MTU), or 0. */
    public int mtu() {
        return mtu;
    }

    /**
     * NET_SET_MTU: the frontend is about to give the guest this MTU (VIRTIO_NET_F_MTU). Refused (and the
     * frontend does not start the device) when it is outside 68..the port's MTU: the guest would send frames
     * the switch drops.
     */
    public synchronized String setMtu(long requested) {
        if (requested < 68 || requested > maxMtu) {
            return "guest MTU " + Long.toUnsignedString(requested) + " outside 68.." + maxMtu + " (the port's mtu)";
        }
        mtu = (int) requested;
        LOG.log(Level.INFO, "port {0}: guest MTU {1} (port mtu {2})", name, Integer.toString(mtu), Integer.toString(maxMtu));
        return null;
    }

    /**
     * Whether GET_FEATURES offers the checksum/TSO offloads ({@link Features#OFFLOAD_FEATURES}); set by the switch
     * from the port's {@code offloads} setting before a frontend connects.
     */
    public void setOffloadsOffered(boolean offered) {
        this.offeredFeatures = offered ? Features.DEVICE_FEATURES : Features.DEVICE_FEATURES & ~Features.OFFLOAD_FEATURES;
    }

    /** The feature bits GET_FEATURES answers. */
    public long offeredFeatures() {
        return offeredFeatures;
    }

    /** Accepts negotiated features; returns an error text when the frontend asks for something not offered. */
    public synchronized String setFeatures(long requested) {
        long unknown = requested & ~offeredFeatures;
        if (unknown != 0) {
            return "frontend set features we never offered: 0x" + Long.toHexString(unknown);
        }
        if (!Features.has(requested, Features.VIRTIO_F_VERSION_1)) {
            // A legacy (pre-1.0) driver: its virtio-net header is 10 bytes without MRG_RXBUF and its rings
            // are guest-endian. We implement the 1.0 layout only and say so instead of corrupting frames.
            return "frontend did not accept VIRTIO_F_VERSION_1: legacy (pre-virtio-1.0) drivers are not supported;"
                    + " use a modern driver (QEMU: do not set disable-modern=on)";
        }
        features = requested;
        applyDirtyLog();
        if (!Features.has(requested, Features.VHOST_USER_F_PROTOCOL_FEATURES)) {
            // Without protocol features there is no SET_VRING_ENABLE: rings are enabled from the start.
            for (QueueSetup s : setup) {
                s.enabled = true;
            }
        }
        update();
        return null;
    }

    public synchronized String setProtocolFeatures(long requested) {
        long unknown = requested & ~Features.PROTOCOL_FEATURES;
        if (unknown != 0) {
            return "frontend set protocol features we never offered: 0x" + Long.toHexString(unknown);
        }
        protocolFeatures = requested;
        return null;
    }

    /** Replaces guest memory (SET_MEM_TABLE). Rings started on the old memory are translated again on the new one. */
    public synchronized void setMemory(GuestMemory newMemory) {
        GuestMemory old = memory;
        swapMemory(newMemory, old::close);
    }

    /**
     * Adds one region (ADD_MEM_REG) without stopping the data path: the regions already mapped stay mapped
     * and the rings stay where they are, so the queues simply translate in the larger memory from their next
     * descriptor (QEMU adds a region while the guest runs when a DIMM is plugged).
     */
    public synchronized void addRegion(MemoryRegion region) {
        GuestMemory larger = memory.with(region);
        memory = larger;
        for (VirtQueue q : queues) {
            q.replaceMemory(larger);
        }
        update();   // the first regions may be what a ring was waiting for
    }

    /**
     * Removes one region (REM_MEM_REG). When no ring lies in it, the data path keeps running: the queues
     * translate in the smaller memory from their next descriptor, and the region is unmapped by
     * {@link #releaseRetired()} once the worker can no longer be using the old memory (a descriptor the guest
     * still points into the removed range is then a queue fault, as any address outside its memory). A region
     * that holds a ring stops the data path first; the ring is then outside memory and the device stays
     * stopped until the frontend sets the ring up again.
     */
    public synchronized MemoryRegion removeRegion(long guestPhysAddr, long size, long userAddr) {
        MemoryRegion[] removed = new MemoryRegion[1];
        GuestMemory smaller = memory.without(guestPhysAddr, size, userAddr, removed);
        if (holdsARing(removed[0])) {
            swapMemory(smaller, removed[0]::close);
            return removed[0];
        }
        memory = smaller;
        for (VirtQueue q : queues) {
            q.replaceMemory(smaller);
        }
        retire(removed[0]);
        return removed[0];
    }

    private boolean holdsARing(MemoryRegion region) {
        for (int i = 0; i < QUEUES; i++) {
            QueueSetup s = setup[i];
            if (queues[i].isConfigured() && (GuestMemory.touches(region, s.descAddr, SplitRing.descTableBytes(s.size))
                    || GuestMemory.touches(region, s.availAddr, SplitRing.availBytes(s.size))
                    || GuestMemory.touches(region, s.usedAddr, SplitRing.usedBytes(s.size)))) {
                return true;
            }
        }
        return false;
    }

    private void swapMemory(GuestMemory next, Runnable releaseOld) {
        stop();
        for (int i = 0; i < QUEUES; i++) {
            if (queues[i].isConfigured()) {
                // keep the ring's position: what we processed is in the queue, not in the frontend's base
                setup[i].base = queues[i].lastAvailIndex();
            }
            queues[i].unconfigure();
        }
        memory = next;
        releaseOld.run();
        update();
    }

    public synchronized String setVringNum(int index, int size) {
        String bad = checkIndex(index);
        if (bad != null) {
            return bad;
        }
        boolean packed = Features.has(features, Features.VIRTIO_F_RING_PACKED);
        if (size < 1 || size > 32768 || (!packed && Integer.bitCount(size) != 1)) {
            return "queue " + index + " size " + size + (packed ? " is not in 1..32768" : " is not a power of two in 1..32768");
        }
        setup[index].size = size;
        return null;
    }

    public String setVringAddr(int index, long desc, long used, long avail) {
        return setVringAddr(index, desc, used, avail, -1);
    }

    /** SET_VRING_ADDR; {@code usedLogAddr} is the used ring's guest-physical address when the frontend asks
     * for its writes to be logged (VHOST_VRING_F_LOG), else -1. */
    public synchronized String setVringAddr(int index, long desc, long used, long avail, long usedLogAddr) {
        String bad = checkIndex(index);
        if (bad != null) {
            return bad;
        }
        QueueSetup s = setup[index];
        s.descAddr = desc;
        s.usedAddr = used;
        s.availAddr = avail;
        s.usedLogAddr = usedLogAddr;
        s.addressed = true;
        if (s.started) {
            stop();
            queues[index].unconfigure();
            s.base = queues[index].lastAvailIndex();
            update();
        }
        return null;
    }

    public synchronized String setVringBase(int index, int base) {
        String bad = checkIndex(index);
        if (bad != null) {
            return bad;
        }
        setup[index].base = base & 0xFFFF;
        return null;
    }

    /** Stops the ring and returns where the frontend should resume (GET_VRING_BASE), or -1 for a bad index. */
    public synchronized int getVringBase(int index) {
        if (checkIndex(index) != null) {
            return -1;
        }
        QueueSetup s = setup[index];
        stop();
        int base = queues[index].isConfigured() ? queues[index].lastAvailIndex() : s.base;
        queues[index].unconfigure();
        s.started = false;
        s.base = base;
        EventFd kick = s.kick;
        s.kick = null;
        if (kick != null) {
            kick.close();
        }
        update();
        return base;
    }

    /** Takes the kick eventfd (or none: the frontend wants us to poll) and starts the ring. */
    public synchronized String setVringKick(int index, EventFd kick) {
        String bad = checkIndex(index);
        if (bad != null) {
            if (kick != null) {
                kick.close();
            }
            return bad;
        }
        QueueSetup s = setup[index];
        stop();
        EventFd old = s.kick;
        s.kick = kick;
        if (old != null) {
            old.close();
        }
        s.started = true;
        update();
        return null;
    }

    public synchronized String setVringCall(int index, EventFd call) {
        String bad = checkIndex(index);
        if (bad != null) {
            if (call != null) {
                call.close();
            }
            return bad;
        }
        QueueSetup s = setup[index];
        EventFd old = s.call;
        s.call = call;
        queues[index].setCall(call);
        retire(old);   // the worker may be about to signal it: closed after a grace period
        return null;
    }

    public synchronized String setVringErr(int index, EventFd err) {
        String bad = checkIndex(index);
        if (bad != null) {
            if (err != null) {
                err.close();
            }
            return bad;
        }
        EventFd old = setup[index].err;
        setup[index].err = err;
        retire(old);   // closed after a grace period, like a replaced call eventfd
        return null;
    }

    public synchronized String setVringEnable(int index, boolean enable) {
        String bad = checkIndex(index);
        if (bad != null) {
            return bad;
        }
        setup[index].enabled = enable;
        if (!enable) {
            stop();
        }
        update();
        return null;
    }

    /**
     * Takes the frontend's dirty-page log (SET_LOG_BASE). A log it replaces is unmapped once the worker
     * cannot be writing it any more.
     */
    private boolean dirtyLogging;

    public synchronized void setDirtyLog(DirtyLog log) {
        DirtyLog old = dirtyLog;
        dirtyLog = log;
        applyDirtyLog();
        if (old != null) {
            quiescence.await();
            old.close();
        }
    }

    public DirtyLog dirtyLog() {
        return dirtyLog;
    }

    /** Logging is on while VHOST_F_LOG_ALL is negotiated and a log is mapped; the queues see it at their next burst. */
    private void applyDirtyLog() {
        DirtyLog active = Features.has(features, Features.VHOST_F_LOG_ALL) ? dirtyLog : null;
        for (VirtQueue q : queues) {
            q.setDirtyLog(active);
        }
        if ((active != null) != dirtyLogging) {
            dirtyLogging = active != null;
            LOG.log(Level.INFO, "port {0}: dirty-page logging {1}", name,
                    dirtyLogging ? "on (a live migration copies this guest)" : "off");
        }
    }

    /** True while writes into guest memory are being logged (a live migration is copying the guest). */
    public synchronized boolean dirtyLogging() {
        return dirtyLogging;
    }

    /** Who injects the announcement frame for SEND_RARP (the switch); called on the control thread. */
    public void setAnnouncer(Consumer<byte[]> announcer) {
        this.announcer = announcer == null ? mac -> { } : announcer;
    }

    /** SEND_RARP: the guest behind this port now has {@code mac} here (after a migration); announce it. */
    public void announce(byte[] mac) {
        LOG.log(Level.INFO, "port {0}: announcing {1} (SEND_RARP)", name, formatMac(mac));
        announcer.accept(mac.clone());
    }

    private static String formatMac(byte[] mac) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < mac.length; i++) {
            b.append(i == 0 ? "" : ":").append(String.format("%02x", mac[i] & 0xFF));
        }
        return b.toString();
    }

    private void retire(AutoCloseable what) {
        if (what != null) {
            retired.add(what);
        }
    }

    private static String checkIndex(int index) {
        return index >= 0 && index < QUEUES ? null : "queue index " + index + " out of range (this device has " + QUEUES + ")";
    }

    /**
     * On a control thread, after a worker saw a queue fault ({@link #handleRaised()}): logs it once, tells the
     * frontend through the error eventfd, and keeps the device stopped until the frontend sets the ring up again.
     */
    public synchronized void reportFault() {
        for (int i = 0; i < QUEUES; i++) {
            VirtQueue q = queues[i];
            if (q.isBroken() && !broken) {
                broken = true;
                LOG.log(Level.WARNING, "port {0}: queue {1} stopped: {2} ({3}); other ports keep forwarding",
                        name, q.name(), q.fault().description(), q.faultDetail());
                EventFd err = setup[i].err;
                if (err != null) {
                    err.signal();
                }
            }
        }
    }

    /** Marks the device unusable (a setup the guest gave was refused) until it is set up again. */
    public synchronized void markBroken(String why) {
        if (!broken) {
            LOG.log(Level.WARNING, "port {0}: device stopped: {1}", name, why);
        }
        broken = true;
        stop();
    }

    /** Forgets everything the frontend set up (RESET_OWNER, RESET_DEVICE, disconnect), releasing fds and memory. */
    public synchronized void reset() {
        stop();
        releaseRetired();
        for (int i = 0; i < QUEUES; i++) {
            QueueSetup s = setup[i];
            queues[i].unconfigure();
            queues[i].setCall(null);
            for (EventFd fd : new EventFd[] {s.kick, s.call, s.err}) {
                if (fd != null) {
                    fd.close();
                }
            }
            setup[i] = new QueueSetup();
        }
        memory.close();
        memory = GuestMemory.empty();
        features = 0;
        applyDirtyLog();
        if (dirtyLog != null) {
            dirtyLog.close();   // stop() above waited for the worker: nothing writes it any more
            dirtyLog = null;
        }
        protocolFeatures = 0;
        status = 0;
        mtu = 0;
        broken = false;
        RAISED.getAndSet(this, 0);   // whatever a worker raised was about the set-up just forgotten
        notifyListeners();
    }

    /** Unpublishes the device from the worker and waits until the worker cannot be using it any more. */
    private void stop() {
        if (running) {
            running = false;
            quiescence.await();
            notifyListeners();
        }
    }

    /** Starts the data path when both rings are ready; configures rings that are started but not yet configured. */
    private void update() {
        if (running) {
            return;
        }
        boolean ready = true;
        for (int i = 0; i < QUEUES; i++) {
            QueueSetup s = setup[i];
            VirtQueue q = queues[i];
            if (!s.started || !s.addressed || s.size == 0 || memory.regionCount() == 0) {
                ready = false;
                continue;
            }
            if (!q.isConfigured()) {
                String problem = q.configure(memory, s.size, s.descAddr, s.availAddr, s.usedAddr,
                        Features.has(features, Features.VIRTIO_RING_F_EVENT_IDX),
                        Features.has(features, Features.VIRTIO_NET_F_MRG_RXBUF),
                        Features.has(features, Features.VIRTIO_F_RING_PACKED),
                        Features.has(features, Features.VIRTIO_F_IN_ORDER), s.base);
                if (problem != null) {
                    markBroken("queue " + i + ": " + problem);
                    return;
                }
                q.setCall(s.call);
                q.setUsedLogAddress(s.usedLogAddr);
                broken = false;
            }
            if (!s.enabled) {
                ready = false;
            }
        }
        if (ready && !isBroken()) {
            generation++;
            running = true;
            LOG.log(Level.INFO, "port {0}: link up (features 0x{1}, rx {2} / tx {3} entries, {4} memory region(s))", name,
                    Long.toHexString(features), setup[RX_QUEUE].size, setup[TX_QUEUE].size, memory.regionCount());
            notifyListeners();
        }
    }

    private synchronized void notifyListeners() {
        for (Runnable r : stateListeners) {
            r.run();
        }
    }

    // ---------------------------------------------------------------- for tests in this package
    // (unlocked: a test reads them while a control thread holds the lock in a grace period)

    EventFd call(int index) {
        return setup[index].call;
    }

    EventFd err(int index) {
        return setup[index].err;
    }

    EventFd kick(int index) {
        return setup[index].kick;
    }
}
