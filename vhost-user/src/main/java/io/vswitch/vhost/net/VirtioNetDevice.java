package io.vswitch.vhost.net;

import io.vswitch.sys.EventFd;
import io.vswitch.vhost.memory.DirtyLog;
import io.vswitch.vhost.memory.GuestMemory;
import io.vswitch.vhost.memory.MemoryRegion;
import io.vswitch.protocol.Features;
import io.vswitch.protocol.SplitRing;
import io.vswitch.vhost.virtio.PackedRingBase;
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
 * <p>Queue numbering is virtio-net's: 2p is queue pair p's receive queue (we enqueue), 2p+1 its transmit
 * queue (we dequeue). A multiqueue device ({@link #queuePairs()} above 1) runs as soon as pair 0 is started and
 * enabled; every other pair joins when both its rings are started and enabled, which the worker sees in
 * {@link #rxMask()} and {@link #txMask()}. Those masks change only while the data path is stopped (every
 * message that starts, enables or disables a ring stops it first), so within one {@link #generation()} they
 * are fixed. A fault on any queue stops the whole device (the port is isolated as a whole, like a single-queue
 * port; other ports keep forwarding).
 */
public final class VirtioNetDevice {
    public static final int RX_QUEUE = 0;
    public static final int TX_QUEUE = 1;
    public static final int QUEUES = 2;
    /** Most queue pairs a device serves (the topology's {@code queues} bound). */
    public static final int MAX_QUEUE_PAIRS = 16;

    private static final System.Logger LOG = System.getLogger("vswitch.vhost");

    private final String name;
    private final VirtQueue[] queues;
    private final QueueSetup[] setup;
    /** Queue pairs this device offers (GET_QUEUE_NUM); rings 0..2*pairs-1 exist. */
    private final int pairs;
    /** Pairs whose receive (transmit) ring is started, configured and enabled: bit p for pair p. Fixed while running. */
    private volatile int rxMask;
    private volatile int txMask;
    private GuestMemory memory = GuestMemory.empty();
    private long features;
    private long protocolFeatures;
    private long status;
    /** The port's MTU: the most NET_SET_MTU may set (the switch drops longer frames anyway). */
    private volatile int maxMtu = 1500;
    /** False when the port says offloads: false: GET_FEATURES then leaves out {@link Features#OFFLOAD_FEATURES}. */
    private volatile boolean offloadsOffered = true;
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
        this(name, 1);
    }

    /** A device with {@code queuePairs} queue pairs (1..{@link #MAX_QUEUE_PAIRS}). */
    public VirtioNetDevice(String name, int queuePairs) {
        if (queuePairs < 1 || queuePairs > MAX_QUEUE_PAIRS) {
            throw new IllegalArgumentException("queue pairs " + queuePairs + " outside 1.." + MAX_QUEUE_PAIRS);
        }
        this.name = name;
        this.pairs = queuePairs;
        this.queues = new VirtQueue[2 * queuePairs];
        this.setup = new QueueSetup[2 * queuePairs];
        for (int p = 0; p < queuePairs; p++) {
            String suffix = queuePairs == 1 ? "" : Integer.toString(p);
            queues[2 * p] = new VirtQueue(name + " rx" + suffix);
            queues[2 * p + 1] = new VirtQueue(name + " tx" + suffix);
        }
        for (int i = 0; i < setup.length; i++) {
            setup[i] = new QueueSetup();
        }
    }

    /** Queue pairs the device offers (GET_QUEUE_NUM). */
    public int queuePairs() {
        return pairs;
    }

    /** The feature bits offered (GET_FEATURES): multiqueue only with more than one pair. */
    public long offeredFeatures() {
        long f = Features.deviceFeatures(pairs);
        return offloadsOffered ? f : f & ~Features.OFFLOAD_FEATURES;
    }

    /** The protocol feature bits offered (GET_PROTOCOL_FEATURES). */
    public long offeredProtocolFeatures() {
        return Features.protocolFeatures(pairs);
    }

    public String name() {
        return name;
    }

    // ---------------------------------------------------------------- what the worker uses

    /** True while both rings are started and enabled and the worker may run the data path. */
    public boolean isRunning() {
        return running;
    }

    /** The guest's receive queue of pair 0: we enqueue into it. */
    public VirtQueue rxQueue() {
        return queues[RX_QUEUE];
    }

    /** The guest's transmit queue of pair 0: we dequeue from it. */
    public VirtQueue txQueue() {
        return queues[TX_QUEUE];
    }

    /** The receive queue of pair {@code pair}. */
    public VirtQueue rxQueue(int pair) {
        return queues[2 * pair];
    }

    /** The transmit queue of pair {@code pair}. */
    public VirtQueue txQueue(int pair) {
        return queues[2 * pair + 1];
    }

    /** Pairs whose receive queue the worker may fill (bit p: pair p); 0 while not running. Fixed per generation. */
    public int rxMask() {
        return rxMask;
    }

    /** Pairs whose transmit queue the worker polls (bit p: pair p); 0 while not running. Fixed per generation. */
    public int txMask() {
        return txMask;
    }

    /**
     * A duplicate of the transmit queue's kick eventfd for a worker that sleeps until kicked, or null when
     * the frontend gave none. The caller owns (and closes) the duplicate. Call only while running.
     */
    public EventFd duplicateTxKick() {
        return duplicateTxKick(0);
    }

    /** Like {@link #duplicateTxKick()} for the transmit queue of pair {@code pair}. */
    public EventFd duplicateTxKick(int pair) {
        EventFd kick = setup[2 * pair + 1].kick;
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
        if (broken) {
            return true;
        }
        for (VirtQueue q : queues) {
            if (q.isBroken()) {
                return true;
            }
        }
        return false;
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
        this.offloadsOffered = offered;
    }

    /** Accepts negotiated features; returns an error text when the frontend asks for something not offered. */
    public synchronized String setFeatures(long requested) {
        long unknown = requested & ~offeredFeatures();
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
        long unknown = requested & ~offeredProtocolFeatures();
        if (unknown != 0) {
            return "frontend set protocol features we never offered: 0x" + Long.toHexString(unknown);
        }
        protocolFeatures = requested;
        return null;
    }

    /** Replaces guest memory (SET_MEM_TABLE). Rings started on the old memory are translated again on the new one. */
    public synchronized void setMemory(GuestMemory newMemory) {
        GuestMemory old = memory;
        regionRefs.clear();
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
     * Extra references to mapped regions, by guest-physical address: a multiqueue QEMU has one vhost device per
     * queue pair on the same connection, and each sends ADD_MEM_REG (and later REM_MEM_REG) for every region
     * of guest memory. The second ADD of an identical region only counts here; a REM drops a reference first.
     */
    private final java.util.Map<Long, Integer> regionRefs = new java.util.HashMap<>();

    /**
     * ADD_MEM_REG of a region identical to one already mapped (address, size, frontend address, offset): takes
     * one more reference on it instead of mapping it again, and returns it; null when there is no such region.
     */
    public synchronized MemoryRegion addReference(long guestPhysAddr, long size, long userAddr, long mmapOffset) {
        for (int i = 0; i < memory.regionCount(); i++) {
            MemoryRegion r = memory.region(i);
            if (r.guestPhysAddr() == guestPhysAddr && r.size() == size && r.userAddr() == userAddr
                    && r.mmapOffset() == mmapOffset) {
                regionRefs.merge(guestPhysAddr, 1, Integer::sum);
                return r;
            }
        }
        return null;
    }

    /** Drops an extra reference taken by {@link #addReference}; returns the region still mapped, or null when none was taken. */
    private MemoryRegion dropReference(long guestPhysAddr, long size, long userAddr) {
        Integer refs = regionRefs.get(guestPhysAddr);
        if (refs == null) {
            return null;
        }
        for (int i = 0; i < memory.regionCount(); i++) {
            MemoryRegion r = memory.region(i);
            if (r.guestPhysAddr() == guestPhysAddr && r.size() == size && r.userAddr() == userAddr) {
                if (refs == 1) {
                    regionRefs.remove(guestPhysAddr);
                } else {
                    regionRefs.put(guestPhysAddr, refs - 1);
                }
                return r;
            }
        }
        return null;
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
        MemoryRegion stillUsed = dropReference(guestPhysAddr, size, userAddr);
        if (stillUsed != null) {
            return stillUsed;   // another queue pair's vhost device of the frontend still holds it
        }
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
        for (int i = 0; i < queues.length; i++) {
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
        for (int i = 0; i < queues.length; i++) {
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

    /**
     * SET_VRING_BASE. Split rings: bits 0-15, the next avail index. Packed rings: all 32 bits, both positions
     * ({@link PackedRingBase}); a state that does not fit the ring size set so far is refused (the frontend hears
     * why, the message is counted) and still recorded, so the ring does not start from a stale base: it is
     * checked again when the ring starts.
     */
    public synchronized String setVringBase(int index, int base) {
        String bad = checkIndex(index);
        if (bad != null) {
            return bad;
        }
        boolean packed = Features.has(features, Features.VIRTIO_F_RING_PACKED);
        setup[index].base = packed ? base : base & 0xFFFF;
        int size = setup[index].size;
        String problem = packed && size > 0 ? PackedRingBase.problem(base, size) : null;
        return problem == null ? null : "queue " + index + ": " + problem;
    }

    /**
     * Stops the ring and returns where the frontend should resume (GET_VRING_BASE) as an unsigned 32-bit value
     * (a packed ring's used wrap counter is bit 31), or -1 for a bad index.
     */
    public synchronized long getVringBase(int index) {
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
        return base & 0xFFFF_FFFFL;
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

    private String checkIndex(int index) {
        if (index >= 0 && index < queues.length) {
            return null;
        }
        return "queue index " + Integer.toUnsignedString(index) + " out of range: the port has " + pairs + " queue pair(s), rings 0.."
                + (queues.length - 1) + (pairs < MAX_QUEUE_PAIRS ? " (raise the port's 'queues' for more)" : "");
    }

    /**
     * On a control thread, after a worker saw a queue fault ({@link #handleRaised()}): logs it once, tells the
     * frontend through the error eventfd, and keeps the device stopped until the frontend sets the ring up again.
     */
    public synchronized void reportFault() {
        for (int i = 0; i < queues.length; i++) {
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
        for (int i = 0; i < queues.length; i++) {
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
        regionRefs.clear();
        loggedShape = -1;
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
            rxMask = 0;
            txMask = 0;
            quiescence.await();
            notifyListeners();
        }
    }

    /**
     * Starts the data path when pair 0's rings are ready and enabled; configures rings that are started but not
     * yet configured, and publishes which other pairs are ready and enabled ({@link #rxMask()}, {@link #txMask()}).
     */
    private void update() {
        if (running) {
            return;
        }
        boolean ready = true;
        int rx = 0;
        int tx = 0;
        for (int i = 0; i < queues.length; i++) {
            QueueSetup s = setup[i];
            VirtQueue q = queues[i];
            if (!s.started || !s.addressed || s.size == 0 || memory.regionCount() == 0) {
                if (i < QUEUES) {
                    ready = false;
                }
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
                broken = false;   // a ring set up again (after a fault, after a refused set-up) starts clean
            }
            if (!s.enabled) {
                if (i < QUEUES) {
                    ready = false;
                }
                continue;
            }
            if ((i & 1) == 0) {
                rx |= 1 << (i >> 1);
            } else {
                tx |= 1 << (i >> 1);
            }
        }
        if (ready && !isBroken()) {
            generation++;
            rxMask = rx;
            txMask = tx;
            running = true;   // publishes the masks
            if (pairs == 1) {
                LOG.log(Level.INFO, "port {0}: link up (features 0x{1}, rx {2} / tx {3} entries, {4} memory region(s))", name,
                        Long.toHexString(features), setup[RX_QUEUE].size, setup[TX_QUEUE].size, memory.regionCount());
            } else {
                // a multiqueue frontend sets pair after pair up on a running device: each message restarts the data
                // path, and only a change of what is in use is worth a line
                long shape = ((long) rx << 16) | tx;
                Level level = shape == loggedShape ? Level.DEBUG : Level.INFO;
                loggedShape = shape;
                LOG.log(level, "port {0}: link up (features 0x{1}, {2} of {3} queue pair(s) enabled: rx {4}, tx {5};"
                        + " {6} / {7} entries, {8} memory region(s))", name, Long.toHexString(features),
                        Integer.bitCount(rx & tx), pairs, pairList(rx), pairList(tx), setup[RX_QUEUE].size,
                        setup[TX_QUEUE].size, memory.regionCount());
            }
            notifyListeners();
        }
    }

    /** The pairs in use when link up was last logged (rx << 16 | tx), -1 after a reset. */
    private long loggedShape = -1;

    /** "0,1,3" for the pairs of {@code mask}. */
    public static String pairList(int mask) {
        if (mask == 0) {
            return "none";
        }
        StringBuilder b = new StringBuilder();
        for (int m = mask; m != 0; m &= m - 1) {
            b.append(b.isEmpty() ? "" : ",").append(Integer.numberOfTrailingZeros(m));
        }
        return b.toString();
    }

    /** Queue pairs a frontend enabled, whether or not the device runs: for {@code vswitch show}. */
    public synchronized int enabledPairs() {
        int n = 0;
        for (int p = 0; p < pairs; p++) {
            if (setup[2 * p].enabled && setup[2 * p + 1].enabled && setup[2 * p].started && setup[2 * p + 1].started) {
                n++;
            }
        }
        return n;
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
