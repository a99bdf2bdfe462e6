package io.vswitch.engine;

import io.vswitch.config.NotifyMode;
import io.vswitch.notify.Epoll;
import io.vswitch.notify.EventFd;
import io.vswitch.rings.PacketBufferPool;
import io.vswitch.rings.SpscLongRing;
import io.vswitch.vhost.net.VirtioNetDevice;
import io.vswitch.vhost.net.WorkerEpoch;
import io.vswitch.vhost.net.offload.OffloadCheck;
import io.vswitch.vhost.net.offload.SoftwareOffload;
import io.vswitch.vhost.virtio.PacketBatch;
import io.vswitch.vhost.virtio.VirtQueue;
import org.agrona.concurrent.Agent;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.BusySpinIdleStrategy;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.ManyToOneConcurrentArrayQueue;
import org.agrona.concurrent.status.AtomicCounter;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

/**
 * A busy-polling worker: owns some ports' queues, takes bursts from its guests' transmit queues and copies
 * each frame once into the destination guests' receive queues.
 *
 * <p>Frames for ports of another worker are copied into a buffer of this worker's pool and handed over on
 * an SPSC ring; the other worker copies them into its guest and hands the buffer back on a return ring.
 * Control threads never touch the worker's state: they queue commands, and wait for a grace period
 * (the worker's {@link WorkerEpoch}) before freeing anything the worker might still be reading.
 *
 * <p>The worker runs no control-plane code in return: it never logs, never stops or breaks a device and never
 * waits for anyone. What it finds wrong with a device it raises on the device ({@link
 * VirtioNetDevice#raiseQueueFault()}, {@link VirtioNetDevice#raiseBroken}: a flag, lock-free and without
 * allocation) for a control thread to act on.
 */
final class Worker implements Agent {
    /** Cross-worker buffer header: frame length, destination port (-1: flood), source port. */
    static final int META_LENGTH = 0;
    static final int META_DESTINATION = 4;
    static final int META_SOURCE = 8;
    /** VLAN of the frame, plus {@link #META_TAGGED} when the bytes carry an 802.1Q tag. */
    static final int META_VLAN = 12;
    static final int META_TAGGED = 1 << 16;
    static final int META_SIZE = 16;
    static final int ETH_P_8021Q = 0x8100;
    static final int TAG_SIZE = 4;
    static final int FLOOD = -1;

    private final int id;
    private final boolean learning;
    private final MacTable macTable;
    /** Every port by index (the switch's table; indices are never reused); replaced by a command when a port is added. */
    private SwitchPort[] allPorts;
    private SwitchPort[] ports;
    private final PacketBatch batch;
    private final ManyToOneConcurrentArrayQueue<Runnable> commands = new ManyToOneConcurrentArrayQueue<>(256);
    private final AtomicCounter busyLoops;
    private final AtomicCounter idleLoops;
    private final AtomicCounter crossWorkerFrames;

    // cross-worker hand-off, indexed by the other worker's id (null for this one)
    private final PacketBufferPool pool;
    private final SpscLongRing[] outbound;
    private final SpscLongRing[] inbound;
    private final SpscLongRing[] returnsToOwner;
    private final SpscLongRing[] returnsFromPeers;
    private final long[][] staged;
    private final int[] stagedCount;
    private final long[] handles;
    // a frame spliced around a VLAN tag: its pieces, and the tag itself
    private final MemorySegment[] spliceSegments = new MemorySegment[PacketBatch.MAX_PIECES_PER_FRAME + 3];
    private final long[] spliceOffsets = new long[PacketBatch.MAX_PIECES_PER_FRAME + 3];
    private final int[] spliceLengths = new int[PacketBatch.MAX_PIECES_PER_FRAME + 3];
    private final MemorySegment tag = MemorySegment.ofArray(new byte[TAG_SIZE]);

    // offloads (see io.vswitch.vhost.net.offload): the frame being forwarded, as forward() checked it. A frame
    // whose header asks for CSUM or TSO goes as it is to a guest that negotiated the matching GUEST_* features,
    // and is finished in software (checksum, segmentation) for any other receiver.
    private final OffloadCheck offloadCheck = new OffloadCheck();
    private final SoftwareOffload softwareOffload = new SoftwareOffload();
    private int frameOffload = OffloadCheck.PLAIN;
    private long frameHeader;
    private int frameCsumOffset;

    // frames the control plane asks to send as if a port's guest had sent them (SEND_RARP after a
    // migration); queued by a command, sent inside the next pass
    static final int MAX_PENDING_ANNOUNCEMENTS = 16;
    private final SwitchPort[] announcePort = new SwitchPort[MAX_PENDING_ANNOUNCEMENTS];
    private final MemorySegment[] announceFrame = new MemorySegment[MAX_PENDING_ANNOUNCEMENTS];
    private int announcements;
    private final PacketBatch announceBatch = new PacketBatch(1);

    /** Odd while inside the data path; what control threads wait on before they free anything. */
    private final WorkerEpoch epoch;
    private volatile boolean running = true;

    // notification: how the worker waits when there is nothing to do
    private final NotifyMode mode;
    private final int quietPolls;
    private final Epoll epoll;
    private final EventFd wakeup;
    private volatile boolean sleeping;
    private int quiet;
    private Worker[] peers;
    private final AtomicCounter sleeps;
    private final AtomicCounter wakeups;
    /** Upper bound on one sleep, so a missed wake-up would cost at most this much latency, never a hang. */
    static final int DEFAULT_MAX_SLEEP_MILLIS = 200;
    private final int maxSleepMillis = Integer.getInteger("vswitch.maxSleepMillis", DEFAULT_MAX_SLEEP_MILLIS);
    private static final long WAKEUP_DATA = Long.MAX_VALUE;

    Worker(int id, boolean learning, MacTable macTable, SwitchPort[] allPorts, int burst, PacketBufferPool pool,
           int workers, CountersFile counters, NotifyMode mode, int quietPolls) {
        this.id = id;
        this.epoch = new WorkerEpoch("worker " + id);
        this.mode = mode;
        this.quietPolls = Math.max(1, quietPolls);
        boolean sleepsOnKicks = mode == NotifyMode.INTERRUPT || mode == NotifyMode.HYBRID;
        this.epoll = sleepsOnKicks ? Epoll.create(64) : null;
        this.wakeup = sleepsOnKicks ? EventFd.create() : null;
        if (epoll != null) {
            epoll.add(wakeup.fd(), Epoll.EPOLLIN | Epoll.EPOLLET, WAKEUP_DATA);
        }
        this.learning = learning;
        this.macTable = macTable;
        this.allPorts = allPorts;
        this.ports = new SwitchPort[0];
        this.batch = new PacketBatch(burst);
        this.pool = pool;
        this.outbound = new SpscLongRing[workers];
        this.inbound = new SpscLongRing[workers];
        this.returnsToOwner = new SpscLongRing[workers];
        this.returnsFromPeers = new SpscLongRing[workers];
        this.staged = new long[workers][burst];
        this.stagedCount = new int[workers];
        this.handles = new long[burst];
        this.busyLoops = counters.newCounter("worker", Integer.toString(id), "busy_loops");
        this.idleLoops = counters.newCounter("worker", Integer.toString(id), "idle_loops");
        this.crossWorkerFrames = counters.newCounter("worker", Integer.toString(id), "cross_worker_frames");
        this.sleeps = counters.newCounter("worker", Integer.toString(id), "sleeps");
        this.wakeups = counters.newCounter("worker", Integer.toString(id), "wakeups");
    }

    void setPeers(Worker[] peers) {
        this.peers = peers;
    }

    /** How the runner idles this worker: the notify mode in action. */
    IdleStrategy idleStrategy() {
        return switch (mode) {
            case POLL -> new BusySpinIdleStrategy();
            // watch the rings' indices with PAUSE, then yield, then park for at most 100 µs: the software MWAIT
            case MONITOR -> new BackoffIdleStrategy(200, 50, 1_000, 100_000);
            case INTERRUPT, HYBRID -> new IdleStrategy() {
                @Override
                public void idle(int workCount) {
                    idleOnKicks(workCount);
                }

                @Override
                public void idle() {
                    idleOnKicks(0);
                }

                @Override
                public void reset() {
                    quiet = 0;
                }
            };
        };
    }

    /** Wakes the worker if it sleeps (a link changed, a command or a peer's frames are waiting). */
    void wake() {
        VarHandle.fullFence();
        if (sleeping) {
            wakeup.signal();
        }
    }

    private void idleOnKicks(int workCount) {
        if (workCount > 0) {
            quiet = 0;
            return;
        }
        if (mode == NotifyMode.HYBRID && ++quiet < quietPolls) {
            Thread.onSpinWait();
            return;
        }
        quiet = 0;
        sleepUntilKicked();
    }

    /**
     * Asks every guest to kick, re-checks every ring (a frame made available before the request would
     * otherwise never be kicked: the lost wake-up), then sleeps in epoll_wait on the kick eventfds and the
     * worker's own wake-up eventfd. Hybrid mode then goes back to polling with kicks suppressed.
     */
    private void sleepUntilKicked() {
        epoch.enter();
        boolean pending;
        boolean napOnly = false;
        try {
            sleeping = true;
            VarHandle.fullFence();
            pending = !commands.isEmpty();
            for (SwitchPort port : ports) {
                if (port.device != null && port.device.isRunning()) {
                    VirtQueue tx = port.device.txQueue();
                    tx.setKicksWanted(true);
                    pending |= tx.hasAvailable();
                    // a frontend that gave no kick eventfd ("poll instead") cannot wake us: nap, don't sleep
                    napOnly |= port.kick == null;
                }
            }
            for (SpscLongRing ring : inbound) {
                pending |= ring != null && !ring.isEmpty();
            }
        } finally {
            epoch.leave();
        }
        if (!pending) {
            sleeps.incrementRelease();
            int ready = epoll.await(napOnly ? 1 : maxSleepMillis);
            epoch.enter();
            try {
                for (int i = 0; i < ready; i++) {
                    long data = epoll.data(i);
                    if (data == WAKEUP_DATA) {
                        wakeup.drain();
                    } else if (data >= 0 && data < ports.length) {
                        SwitchPort port = ports[(int) data];
                        if (port.kick != null) {
                            long kicks = port.kick.drain();
                            if (kicks > 0) {
                                port.counters.kicks.getAndAddRelease(kicks);
                            }
                        }
                    }
                }
            } finally {
                epoch.leave();
            }
            wakeups.incrementRelease();
        }
        sleeping = false;
        if (mode == NotifyMode.HYBRID) {
            epoch.enter();
            try {
                for (SwitchPort port : ports) {
                    if (port.kick != null && port.device.isRunning()) {
                        port.device.txQueue().setKicksWanted(false);
                    }
                }
            } finally {
                epoch.leave();
            }
        }
    }

    /** Wires the rings between this worker and {@code other}: frames go out on {@code out}, come back on {@code back}. */
    void connect(Worker other, SpscLongRing out, SpscLongRing back) {
        outbound[other.id] = out;
        returnsFromPeers[other.id] = back;
        other.inbound[id] = out;
        other.returnsToOwner[id] = back;
    }

    int id() {
        return id;
    }

    NotifyMode mode() {
        return mode;
    }

    @Override
    public String roleName() {
        return "vswitch-worker-" + id;
    }

    /** Queues {@code command} to run on the worker thread between bursts. */
    boolean submit(Runnable command) {
        boolean queued = commands.offer(command);
        if (wakeup != null) {
            wake();
        }
        return queued;
    }

    /** Adds a port to this worker (through a command, so the worker never sees a half-built list). */
    void addPort(SwitchPort port) {
        Runnable add = () -> {
            SwitchPort[] next = java.util.Arrays.copyOf(ports, ports.length + 1);
            port.localIndex = ports.length;
            next[ports.length] = port;
            ports = next;
        };
        if (!running) {
            add.run();
        } else {
            while (!submit(add)) {   // a control thread: wait for room rather than lose the port
                Thread.onSpinWait();
            }
        }
    }

    /** Queues the switch's grown port table (a port was added at runtime); existing indices keep their port. */
    boolean setAllPorts(SwitchPort[] table) {
        return submit(() -> allPorts = table);
    }

    /**
     * Queues the removal of {@code port} from this worker: on the worker thread, its link goes down (its MACs
     * are forgotten, its kick unwatched), its last counts are published, it leaves the list, and {@code done}
     * runs. After that the worker never touches the port's device again.
     */
    boolean removePort(SwitchPort port, Runnable done) {
        return submit(() -> {
            int at = -1;
            for (int i = 0; i < ports.length; i++) {
                if (ports[i] == port) {
                    at = i;
                }
            }
            if (at >= 0) {
                if (port.seenRunning) {
                    linkDown(port);
                }
                port.publishCounts();
                SwitchPort[] next = new SwitchPort[ports.length - 1];
                for (int i = 0, j = 0; i < ports.length; i++) {
                    if (i != at) {
                        next[j] = ports[i];
                        if (next[j].localIndex != j) {
                            next[j].localIndex = j;
                            if (next[j].uplink != null) {
                                if (next[j].seenRunning && epoll != null && next[j].uplink.fd() >= 0) {
                                    epoll.modify(next[j].uplink.fd(), Epoll.EPOLLIN, j);   // as pollUplink added it
                                }
                            } else if (next[j].kick != null) {
                                epoll.modify(next[j].kick.fd(), Epoll.EPOLLIN | Epoll.EPOLLET, j);
                            }
                        }
                        j++;
                    }
                }
                ports = next;
            }
            done.run();
        });
    }

    /**
     * The epoch that is odd while the worker may touch devices' rings and memory, even while it cannot
     * (between passes, asleep in epoll_wait): the devices' {@code Quiescence}. Its {@code await()} returns once
     * the worker cannot be using anything unpublished before the call, and never gives up (see {@link WorkerEpoch}).
     */
    WorkerEpoch epoch() {
        return epoch;
    }

    /** On the worker thread, before the first pass: the epoch learns which thread the worker is. */
    @Override
    public void onStart() {
        epoch.bindToCurrentThread();
    }

    @Override
    public void onClose() {
        running = false;
        for (SwitchPort port : ports) {
            if (port.kick != null) {
                port.kick.close();
                port.kick = null;
            }
        }
        if (epoll != null) {
            epoll.close();
            wakeup.close();
        }
        epoch.markStopped();
    }

    @Override
    public int doWork() {
        int work = commands.drain(Runnable::run);
        epoch.enter();
        try {
            work += pass();
        } finally {
            epoch.leave();
        }
        if (work > 0) {
            busyLoops.incrementRelease();
        } else {
            idleLoops.incrementRelease();
        }
        return work;
    }

    /**
     * Sends a RARP from {@code mac} on {@code port}'s behalf at the worker's next pass: a learning bridge
     * learns (or moves) the MAC to the port at once, and the frame is flooded like any broadcast, so that
     * other switches learn it too. False when too many announcements are already waiting.
     */
    boolean announce(SwitchPort port, byte[] mac) {
        MemorySegment frame = MemorySegment.ofArray(Rarp.frame(mac));
        return submit(() -> {
            if (announcements < MAX_PENDING_ANNOUNCEMENTS) {
                announcePort[announcements] = port;
                announceFrame[announcements++] = frame;
            } else {
                port.counters.dropNoBuffers.increment();
            }
        });
    }

    private int sendAnnouncements() {
        int n = announcements;
        for (int i = 0; i < n; i++) {
            SwitchPort port = announcePort[i];
            MemorySegment frame = announceFrame[i];
            announcePort[i] = null;
            announceFrame[i] = null;
            announceBatch.setSingleFrame(frame, 0, (int) frame.byteSize());
            forward(port, announceBatch, 1);
        }
        announcements = 0;
        return n;
    }

    private int pass() {
        int work = announcements > 0 ? sendAnnouncements() : 0;
        final SwitchPort[] local = ports;
        final PacketBatch b = batch;
        for (SwitchPort port : local) {
            if (port.uplink != null) {
                work += pollUplink(port, b);
                continue;
            }
            VirtioNetDevice device = port.device;
            if (!device.isRunning()) {
                if (port.seenRunning) {
                    linkDown(port);
                }
                continue;
            }
            if (!port.seenRunning || port.seenGeneration != device.generation()) {
                if (port.seenRunning) {
                    linkDown(port);   // restarted between two passes: treat as down, then up
                }
                linkUp(port);
            }
            VirtQueue tx = device.txQueue();
            int n = tx.dequeueBurst(b);
            if (n > 0) {
                try {
                    forward(port, b, n);
                } catch (RuntimeException e) {
                    if (b.isReadable()) {
                        throw e;   // not the guest's memory: a bug of ours, for the error handler
                    }
                    // The burst lives in this guest's memory, which is gone (destination queues handle their
                    // own memory failures and rethrow only the source's). The fault is this guest's: its
                    // queue stops, the rest of the burst is not read, the destinations stay healthy.
                    tx.failMemoryGone(e);
                }
                work += n;
            }
            int invalid = b.droppedCount();
            if (invalid > 0) {
                port.counters.dropInvalid.getAndAddRelease(invalid);
                work += invalid;
            }
            tx.completeTx(b);
            if (tx.isBroken() || device.rxQueue().isBroken()) {
                if (!port.faultReported) {
                    port.faultReported = true;   // once per fault, not once per pass while it lasts
                    port.counters.queueFaults.incrementRelease();
                    device.raiseQueueFault();   // a control thread logs it and tells the frontend
                }
            } else {
                port.faultReported = false;
            }
        }
        if (pool != null) {
            work += receiveFromPeers();
            sendStaged();
            for (SpscLongRing back : returnsFromPeers) {
                if (back != null) {
                    pool.reclaim(back);
                }
            }
        }
        for (SwitchPort port : local) {
            if (port.uplink != null) {
                port.uplink.flush();
                port.uplink.publishCounts();
            } else if (port.seenRunning) {
                port.device.rxQueue().flushRx();
            }
            port.publishCounts();
        }
        return work;
    }

    /** One burst from an uplink ({@link Uplink}): it is up from its first pass on, its socket watched when we sleep. */
    private int pollUplink(SwitchPort port, PacketBatch b) {
        if (!port.seenRunning) {
            port.seenRunning = true;
            if (epoll != null && port.uplink.fd() >= 0) {
                epoll.add(port.uplink.fd(), Epoll.EPOLLIN, port.localIndex);   // level-triggered: no lost wake-up
            }
            port.counters.linkUp.setRelease(1);
        }
        int n = port.uplink.receive(b);
        if (n > 0) {
            forward(port, b, n);
        }
        return n;
    }

    private void linkUp(SwitchPort port) {
        port.seenRunning = true;
        port.seenGeneration = port.device.generation();
        // we never wait for receive-queue kicks; transmit kicks only in interrupt mode (hybrid asks before sleeping)
        port.device.rxQueue().setKicksWanted(false);
        port.device.txQueue().setKicksWanted(mode == NotifyMode.INTERRUPT);
        if (epoll != null) {
            EventFd kick = null;
            try {
                kick = port.device.duplicateTxKick();
                if (kick != null) {
                    epoll.add(kick.fd(), Epoll.EPOLLIN | Epoll.EPOLLET, port.localIndex);
                }
                port.kick = kick;
            } catch (RuntimeException e) {
                if (kick != null) {
                    kick.close();
                }
                // not ours to stop the device (control threads own that state): raise it. Until a control
                // thread has stopped it the port has no kick, so the worker naps rather than sleeps.
                port.device.raiseBroken("cannot watch the kick eventfd: " + e.getMessage());
            }
        }
        port.counters.linkUp.setRelease(1);
    }

    private void linkDown(SwitchPort port) {
        port.seenRunning = false;
        port.counters.linkUp.setRelease(0);
        if (port.kick != null) {
            epoll.remove(port.kick.fd());
            port.kick.close();
            port.kick = null;
        }
        if (macTable != null) {
            macTable.flush(port.index);
        }
    }

    private void forward(SwitchPort src, PacketBatch b, int n) {
        long bytes = 0;
        final int maxFrame = src.maxFrame;
        final long now = learning ? macTable.now() : 0;
        int invalid = 0;
        for (int i = 0; i < n; i++) {
            int length = b.frameLength(i);
            if (length < 14) {
                src.counters.dropInvalid.incrementRelease();   // refused as invalid: counted apart, never as rx
                invalid++;
                continue;
            }
            long header = b.headerWord(i);
            int offload = OffloadCheck.PLAIN;
            if (header != 0) {   // only guests write one; uplinks' and the switch's own frames have none
                offload = offloadCheck.check(header, b.csumOffset(i), src.device.features(), b, i, length, maxFrame);
                if (offload == OffloadCheck.BAD) {
                    src.counters.dropBadOffloadHeader.incrementRelease();   // refused like an invalid frame: not rx
                    src.reportBadOffload(offloadCheck.failed());             // housekeeping logs it, not us
                    invalid++;
                    continue;
                }
            }
            frameOffload = offload;
            frameHeader = header;
            frameCsumOffset = offload == OffloadCheck.PLAIN ? 0 : b.csumOffset(i);
            bytes += length;
            if (length > maxFrame && offload != OffloadCheck.TSO) {   // a TSO frame's segments were checked against it
                src.counters.dropOverMtu.incrementRelease();
                continue;
            }
            // which VLAN the frame belongs to, and whether its bytes carry the tag
            int vlan = 0;
            boolean tagged = false;
            if (src.trunk != null) {
                vlan = length >= 18 && b.u16(i, 12) == ETH_P_8021Q ? b.u16(i, 14) & 0xFFF : -1;
                tagged = true;
                if (vlan <= 0 || !src.carries(vlan)) {
                    src.counters.dropVlan.incrementRelease();   // untagged, or a VLAN the trunk does not carry
                    continue;
                }
            } else if (src.accessVlan > 0) {
                if (b.u16(i, 12) == ETH_P_8021Q) {
                    src.counters.dropVlan.incrementRelease();   // access ports take untagged frames only
                    continue;
                }
                vlan = src.accessVlan;
            }
            if (!learning) {
                if (src.peer == null) {
                    src.pendingPortDown++;   // a cross-connect port without a link (yet): counted, not lost
                    continue;
                }
                deliver(src, src.peer, b, i, length, vlan, tagged);
                continue;
            }
            long vlanKey = (long) vlan << 48;
            long dstMac = b.mac(i, 0);
            long srcMac = b.mac(i, 6);
            // the table refreshes an entry at most once a second anyway: skip it for the same source within that
            if ((srcMac & 0x0100_0000_0000L) == 0 && ((srcMac | vlanKey) != src.lastSourceMac || now - src.lastSourceLearnedAt > 500)) {
                int learned = macTable.learn(srcMac | vlanKey, src.index, now);
                if (learned == MacTable.LEARNED_NEW) {
                    src.counters.macsLearned.incrementRelease();
                } else if (learned == MacTable.LEARNED_MOVE) {
                    src.counters.macMoves.incrementRelease();
                }
                src.lastSourceMac = learned == MacTable.LEARNED_LIMITED ? -1 : srcMac | vlanKey;
                src.lastSourceLearnedAt = now;
            }
            int out;
            if ((dstMac & 0x0100_0000_0000L) != 0) {
                out = MacTable.MISS;
            } else if ((dstMac | vlanKey) == src.lastDestinationMac && now == src.lastDestinationAt) {
                out = src.lastDestinationPort;   // same destination within the same millisecond
            } else {
                out = macTable.lookup(dstMac | vlanKey, now);
                src.lastDestinationMac = dstMac | vlanKey;
                src.lastDestinationPort = out;
                src.lastDestinationAt = now;
            }
            if (out == MacTable.MISS) {
                flood(src, b, i, length, vlan, tagged);
            } else if (out != src.index) {
                deliver(src, allPorts[out], b, i, length, vlan, tagged);
            } else {
                src.pendingHairpin++;   // its destination lives behind the port it came from: not sent back, counted
            }
        }
        src.counters.rxPackets.getAndAddRelease(n - invalid);
        src.counters.rxBytes.getAndAddRelease(bytes);
    }

    private void flood(SwitchPort src, PacketBatch b, int frame, int length, int vlan, boolean tagged) {
        final SwitchPort[] local = ports;
        for (SwitchPort dst : local) {
            if (dst != src) {
                deliver(src, dst, b, frame, length, vlan, tagged);
            }
        }
        for (int w = 0; w < outbound.length; w++) {
            if (outbound[w] != null) {
                stage(w, src, FLOOD, b, frame, length, vlan, tagged);
            }
        }
    }

    private void deliver(SwitchPort src, SwitchPort dst, PacketBatch b, int frame, int length, int vlan, boolean tagged) {
        if (dst == null || !dst.carries(vlan)) {
            return;
        }
        if (dst.worker != id) {
            stage(dst.worker, src, dst.index, b, frame, length, vlan, tagged);
            return;
        }
        deliverLocal(dst, b, frame, null, 0, length, vlan, tagged);
    }

    /**
     * Copies a frame into a local port's guest: frame {@code frame} of {@code b}, or when {@code b} is null
     * the {@code length} bytes at {@code flatOffset} of {@code flat} (a buffer from another worker). A tag is
     * inserted toward a trunk and stripped toward an access port on the way, without an extra copy.
     */
    private void deliverLocal(SwitchPort dst, PacketBatch b, int frame, MemorySegment flat, long flatOffset,
                              int length, int vlan, boolean tagged) {
        if (dst.uplink != null) {
            if (b != null && frameOffload != OffloadCheck.PLAIN) {
                deliverFinished(dst, b, frame, length, vlan, tagged);   // uplinks send plain frames
                return;
            }
            deliverUplink(dst, b, frame, flat, flatOffset, length, vlan, tagged);
            return;
        }
        if (!dst.seenRunning || !dst.device.isRunning()) {
            dst.pendingPortDown++;
            return;
        }
        VirtQueue rx = dst.device.rxQueue();
        boolean insert = dst.trunk != null && !tagged;
        boolean strip = dst.trunk == null && tagged;
        long header = 0;
        int csumOffset = 0;
        if (b != null && frameOffload != OffloadCheck.PLAIN) {
            if (!OffloadCheck.receiverTakes(dst.device.features(), frameHeader)) {
                deliverFinished(dst, b, frame, length, vlan, tagged);
                return;
            }
            // the guest takes it as it is: one frame, one copy, the header carried over (moved with the tag)
            header = OffloadCheck.forReceiver(frameHeader, insert ? TAG_SIZE : strip ? -TAG_SIZE : 0);
            csumOffset = frameCsumOffset;
        }
        boolean delivered;
        int outLength = length;
        if (!insert && !strip) {
            delivered = b != null ? rx.enqueue(b, frame, header, csumOffset) : rx.enqueue(flat, flatOffset, length);
        } else {
            int skip = strip ? TAG_SIZE : 0;
            int n = piecesOf(b, frame, flat, flatOffset, 0, 12, 0);
            if (insert) {
                n += tagPiece(vlan, n);
            }
            n += piecesOf(b, frame, flat, flatOffset, 12 + skip, length - 12 - skip, n);
            outLength = insert ? length + TAG_SIZE : length - TAG_SIZE;
            delivered = rx.enqueue(spliceSegments, spliceOffsets, spliceLengths, 0, n, outLength, header, csumOffset);
        }
        if (delivered) {
            dst.pendingTxPackets++;
            dst.pendingTxBytes += outLength;
        } else {
            dst.pendingRxRingFull++;
        }
    }

    /**
     * The software fallback: the frame's checksum completed, or the frame cut into MSS-sized segments, each
     * delivered as a plain frame (tag inserted or stripped as for any frame).
     */
    private void deliverFinished(SwitchPort dst, PacketBatch b, int frame, int length, int vlan, boolean tagged) {
        int n = softwareOffload.prepare(b, frame, length, frameOffload, frameHeader, frameCsumOffset, offloadCheck);
        for (int k = 0; k < n; k++) {
            int segment = softwareOffload.segment(k);
            deliverLocal(dst, null, 0, softwareOffload.output(), 0, segment, vlan, tagged);
        }
    }

    /** Like {@link #deliverLocal} toward an uplink, which copies the frame into its own burst (drops it counts itself). */
    private void deliverUplink(SwitchPort dst, PacketBatch b, int frame, MemorySegment flat, long flatOffset,
                               int length, int vlan, boolean tagged) {
        boolean insert = dst.trunk != null && !tagged;
        boolean strip = dst.trunk == null && tagged;
        int skip = strip ? TAG_SIZE : 0;
        int n = piecesOf(b, frame, flat, flatOffset, 0, 12, 0);
        if (insert) {
            n += tagPiece(vlan, n);
        }
        n += piecesOf(b, frame, flat, flatOffset, 12 + skip, length - 12 - skip, n);
        int outLength = insert ? length + TAG_SIZE : strip ? length - TAG_SIZE : length;
        if (dst.uplink.transmit(spliceSegments, spliceOffsets, spliceLengths, n, outLength)) {
            dst.pendingTxPackets++;
            dst.pendingTxBytes += outLength;
        }
    }

    /** Puts the pieces holding bytes {@code [from, from+length)} of the frame at index {@code at} of the splice arrays. */
    private int piecesOf(PacketBatch b, int frame, MemorySegment flat, long flatOffset, int from, int length, int at) {
        if (b != null) {
            return b.slice(frame, from, length, spliceSegments, spliceOffsets, spliceLengths, at);
        }
        spliceSegments[at] = flat;
        spliceOffsets[at] = flatOffset + from;
        spliceLengths[at] = length;
        return 1;
    }

    /** Puts an 802.1Q tag for {@code vlan} at index {@code at} of the splice arrays; returns 1. */
    private int tagPiece(int vlan, int at) {
        tag.set(ValueLayout.JAVA_BYTE, 0, (byte) (ETH_P_8021Q >>> 8));
        tag.set(ValueLayout.JAVA_BYTE, 1, (byte) ETH_P_8021Q);
        tag.set(ValueLayout.JAVA_BYTE, 2, (byte) (vlan >>> 8));
        tag.set(ValueLayout.JAVA_BYTE, 3, (byte) vlan);
        spliceSegments[at] = tag;
        spliceOffsets[at] = 0;
        spliceLengths[at] = TAG_SIZE;
        return 1;
    }

    private void stage(int worker, SwitchPort src, int dstIndex, PacketBatch b, int frame, int length, int vlan, boolean tagged) {
        if (b != null && frameOffload != OffloadCheck.PLAIN) {
            // pool buffers are MTU-sized and carry no virtio-net header: hand over finished, plain frames
            int n = softwareOffload.prepare(b, frame, length, frameOffload, frameHeader, frameCsumOffset, offloadCheck);
            for (int k = 0; k < n; k++) {
                int segment = softwareOffload.segment(k);
                stageFlat(worker, src, dstIndex, null, 0, softwareOffload.output(), segment, vlan, tagged);
            }
            return;
        }
        stageFlat(worker, src, dstIndex, b, frame, null, length, vlan, tagged);
    }

    /** Stages frame {@code frame} of {@code b}, or when {@code b} is null the first {@code length} bytes of {@code flat}. */
    private void stageFlat(int worker, SwitchPort src, int dstIndex, PacketBatch b, int frame, MemorySegment flat,
                           int length, int vlan, boolean tagged) {
        SwitchPort dropOn = dstIndex >= 0 ? allPorts[dstIndex] : src;
        if (stagedCount[worker] == staged[worker].length || length + META_SIZE > pool.bufferSize()) {
            dropOn.counters.dropNoBuffers.increment();   // several workers may count on one port: atomic
            return;
        }
        long handle = pool.acquire();
        if (handle == PacketBufferPool.NO_BUFFER) {
            dropOn.counters.dropNoBuffers.increment();
            return;
        }
        MemorySegment memory = pool.memory();
        long at = pool.offset(handle);
        memory.set(ValueLayout.JAVA_INT, at + META_LENGTH, length);
        memory.set(ValueLayout.JAVA_INT, at + META_DESTINATION, dstIndex);
        memory.set(ValueLayout.JAVA_INT, at + META_SOURCE, src.index);
        memory.set(ValueLayout.JAVA_INT, at + META_VLAN, vlan | (tagged ? META_TAGGED : 0));
        try {
            if (b != null) {
                b.copyFrame(frame, memory, at + META_SIZE);   // reads the source guest's memory: may fail
            } else {
                MemorySegment.copy(flat, 0, memory, at + META_SIZE, length);
            }
        } catch (RuntimeException e) {
            pool.release(handle);   // not staged: give it back, then let pass() attribute the failure
            throw e;
        }
        staged[worker][stagedCount[worker]++] = handle;
    }

    private void sendStaged() {
        for (int w = 0; w < outbound.length; w++) {
            int count = stagedCount[w];
            if (count == 0) {
                continue;
            }
            int sent = outbound[w].offer(staged[w], 0, count);
            for (int i = sent; i < count; i++) {
                long handle = staged[w][i];
                int dst = pool.memory().get(ValueLayout.JAVA_INT, pool.offset(handle) + META_DESTINATION);
                allPorts[dst >= 0 ? dst : pool.memory().get(ValueLayout.JAVA_INT, pool.offset(handle) + META_SOURCE)]
                        .counters.dropNoBuffers.increment();
                pool.release(handle);
            }
            crossWorkerFrames.getAndAddRelease(sent);
            stagedCount[w] = 0;
            if (sent > 0 && peers != null && peers[w].wakeup != null) {
                peers[w].wake();
            }
        }
    }

    private int receiveFromPeers() {
        int work = 0;
        frameOffload = OffloadCheck.PLAIN;   // hand-offs are plain frames (see stage)
        final long[] h = handles;
        for (int w = 0; w < inbound.length; w++) {
            SpscLongRing ring = inbound[w];
            if (ring == null) {
                continue;
            }
            int n = ring.poll(h, 0, h.length);
            if (n == 0) {
                continue;
            }
            PacketBufferPool owner = poolOf(w);
            MemorySegment memory = owner.memory();
            for (int i = 0; i < n; i++) {
                long at = owner.offset(h[i]);
                int length = memory.get(ValueLayout.JAVA_INT, at + META_LENGTH);
                int dst = memory.get(ValueLayout.JAVA_INT, at + META_DESTINATION);
                int vlanWord = memory.get(ValueLayout.JAVA_INT, at + META_VLAN);
                int vlan = vlanWord & 0xFFFF;
                boolean tagged = (vlanWord & META_TAGGED) != 0;
                if (dst >= 0) {
                    deliverBuffer(allPorts[dst], memory, at + META_SIZE, length, vlan, tagged);
                } else {
                    for (SwitchPort port : ports) {
                        deliverBuffer(port, memory, at + META_SIZE, length, vlan, tagged);
                    }
                }
            }
            // the ring back is as large as the owner's pool, so it always has room
            returnsToOwner[w].offer(h, 0, n);
            work += n;
        }
        return work;
    }

    private PacketBufferPool[] peerPools;

    void setPeerPools(PacketBufferPool[] pools) {
        this.peerPools = pools;
    }

    private PacketBufferPool poolOf(int worker) {
        return peerPools[worker];
    }

    private void deliverBuffer(SwitchPort dst, MemorySegment memory, long offset, int length, int vlan, boolean tagged) {
        if (dst.carries(vlan)) {
            deliverLocal(dst, null, 0, memory, offset, length, vlan, tagged);
        }
    }
}
