package io.vswitch.engine;

import io.vswitch.config.NotifyMode;
import io.vswitch.notify.KickSources;
import io.vswitch.notify.MonitorStrategy;
import io.vswitch.notify.NotifyStrategy;
import io.vswitch.notify.PollStrategy;
import io.vswitch.notify.SleepingStrategy;
import io.vswitch.rings.PacketBufferPool;
import io.vswitch.rings.SpscLongRing;
import io.vswitch.sys.Epoll;
import io.vswitch.sys.EventFd;
import io.vswitch.vhost.net.VirtioNetDevice;
import io.vswitch.vhost.net.WorkerEpoch;
import io.vswitch.vhost.virtio.PacketBatch;
import io.vswitch.vhost.virtio.VirtQueue;
import org.agrona.concurrent.Agent;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.ManyToOneConcurrentArrayQueue;
import org.agrona.concurrent.status.AtomicCounter;

import java.lang.foreign.MemorySegment;

/**
 * A busy-polling worker: the loop that owns some ports' queues, runs the commands control threads queue for
 * it between bursts, takes bursts from its guests' transmit queues and uplinks, and hands each burst to its
 * {@link Forwarding} (where frames go, one copy into the destination), frames for another worker's ports to
 * its {@link Handoff}, and waits through its {@link NotifyStrategy} when there is nothing to do.
 *
 * <p>Control threads never touch the worker's state: they queue commands, and wait for a grace period
 * (the worker's {@link WorkerEpoch}) before freeing anything the worker might still be reading.
 *
 * <p>The worker runs no control-plane code in return: it never logs, never stops or breaks a device and never
 * waits for anyone. What it finds wrong with a device it raises on the device ({@link
 * VirtioNetDevice#raiseQueueFault()}, {@link VirtioNetDevice#raiseBroken}: a flag, lock-free and without
 * allocation) for a control thread to act on.
 */
public final class Worker implements Agent, KickSources {
    /** The upper bound on one sleep (a missed wake-up costs at most this much latency, never a hang). */
    static final int DEFAULT_MAX_SLEEP_MILLIS = SleepingStrategy.DEFAULT_MAX_SLEEP_MILLIS;

    private final int id;
    private final MacTable macTable;
    private final Forwarding forwarding;
    /** Null with a single worker. */
    private final Handoff handoff;
    private final PacketBatch batch;
    private final ManyToOneConcurrentArrayQueue<Runnable> commands = new ManyToOneConcurrentArrayQueue<>(256);
    private final AtomicCounter busyLoops;
    private final AtomicCounter idleLoops;
    /**
     * Diagnostic, off by default: {@code -Dvswitch.loopTiming=true} adds the counters busy_ns and idle_ns, the time
     * spent in loops that did work and in loops that found none (idling included). Loop counts alone mislead: a
     * loaded worker's idle loops are many but short. Costs one clock read per loop (about 20 ns here).
     */
    static final boolean LOOP_TIMING = Boolean.getBoolean("vswitch.loopTiming");
    private final AtomicCounter busyNanos;
    private final AtomicCounter idleNanos;
    private long loopStart;

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

    private final NotifyMode mode;
    private final NotifyStrategy notify;
    /** The strategy's epoll set, or null when it never sleeps. */
    private final Epoll epoll;

    public Worker(int id, boolean learning, MacTable macTable, SwitchPort[] allPorts, int burst, PacketBufferPool pool,
           int workers, CountersFile counters, NotifyMode mode, int quietPolls) {
        this.id = id;
        this.epoch = new WorkerEpoch("worker " + id);
        this.mode = mode;
        String worker = Integer.toString(id);
        AtomicCounter sleeps = counters.newCounter("worker", worker, "sleeps");
        AtomicCounter wakeups = counters.newCounter("worker", worker, "wakeups");
        int maxSleep = Integer.getInteger("vswitch.maxSleepMillis", DEFAULT_MAX_SLEEP_MILLIS);
        this.notify = switch (mode) {
            case POLL -> new PollStrategy();
            case MONITOR -> new MonitorStrategy();
            case INTERRUPT -> SleepingStrategy.interrupt(maxSleep, sleeps, wakeups);
            case HYBRID -> SleepingStrategy.hybrid(quietPolls, maxSleep, sleeps, wakeups);
        };
        if (notify instanceof SleepingStrategy sleeping) {
            sleeping.bind(this);
        }
        this.epoll = notify.epoll();
        this.macTable = macTable;
        this.batch = new PacketBatch(burst);
        batch.captureAddresses(learning);   // the learning bridge reads each frame's addresses
        this.handoff = pool == null ? null
                : new Handoff(pool, workers, burst, counters.newCounter("worker", worker, "cross_worker_frames"));
        this.forwarding = new Forwarding(id, learning, macTable, allPorts, handoff);
        this.busyLoops = counters.newCounter("worker", worker, "busy_loops");
        this.idleLoops = counters.newCounter("worker", worker, "idle_loops");
        this.busyNanos = LOOP_TIMING ? counters.newCounter("worker", worker, "busy_ns") : null;
        this.idleNanos = LOOP_TIMING ? counters.newCounter("worker", worker, "idle_ns") : null;
        if (handoff == null) {
            counters.newCounter("worker", worker, "cross_worker_frames");   // always exported, 0 with one worker
        }
    }

    void setPeers(Worker[] peers) {
        if (handoff != null) {
            NotifyStrategy[] notifies = new NotifyStrategy[peers.length];
            PacketBufferPool[] pools = new PacketBufferPool[peers.length];
            for (int i = 0; i < peers.length; i++) {
                notifies[i] = peers[i].notify;
                pools[i] = peers[i].handoff == null ? null : peers[i].handoff.pool();
            }
            handoff.setPeers(pools, notifies);
        }
    }

    /** How the runner idles this worker: the notify mode in action. */
    IdleStrategy idleStrategy() {
        return notify;
    }

    /** Wakes the worker if it sleeps (a link changed, a command or a peer's frames are waiting). */
    void wake() {
        notify.wake();
    }

    /** The switch is closing: wake the worker and keep it from sleeping again until its runner stops it. */
    void stopSleeping() {
        notify.stopSleeping();
    }

    // KickSources: the sleeping strategies' view of this worker

    @Override
    public int armKicks() {
        epoch.enter();
        try {
            boolean pending = !commands.isEmpty();
            boolean napOnly = false;
            for (SwitchPort port : forwarding.ports) {
                if (port.device != null && port.device.isRunning()) {
                    for (int m = port.seenTxMask; m != 0; m &= m - 1) {
                        int pair = Integer.numberOfTrailingZeros(m);
                        VirtQueue tx = port.device.txQueue(pair);
                        tx.setKicksWanted(true);
                        pending |= tx.hasAvailable();
                        // a frontend that gave no kick eventfd ("poll instead") cannot wake us: nap, don't sleep
                        napOnly |= port.kicks[pair] == null;
                    }
                }
            }
            pending |= handoff != null && handoff.hasInbound();
            return pending ? PENDING : napOnly ? NAP : SLEEP;
        } finally {
            epoch.leave();
        }
    }

    @Override
    public void kicked(long data) {
        epoch.enter();
        try {
            SwitchPort[] ports = forwarding.ports;
            if (data >= 0 && data < ports.length) {
                SwitchPort port = ports[(int) data];
                for (EventFd kick : port.kicks) {
                    long kicks = kick == null ? 0 : kick.drain();
                    if (kicks > 0) {
                        port.add(port.counters.kicks, kicks);
                    }
                }
            }
        } finally {
            epoch.leave();
        }
    }

    @Override
    public void suppressKicks() {
        epoch.enter();
        try {
            for (SwitchPort port : forwarding.ports) {
                if (port.device != null && port.device.isRunning()) {
                    for (int m = port.seenTxMask; m != 0; m &= m - 1) {
                        int pair = Integer.numberOfTrailingZeros(m);
                        if (port.kicks[pair] != null) {
                            port.device.txQueue(pair).setKicksWanted(false);
                        }
                    }
                }
            }
        } finally {
            epoch.leave();
        }
    }

    /** Wires the rings between this worker and {@code other}: frames go out on {@code out}, come back on {@code back}. */
    void connect(Worker other, SpscLongRing out, SpscLongRing back) {
        handoff.connect(id, other.id, other.handoff, out, back);
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
        notify.wake();
        return queued;
    }

    /** Adds a port to this worker (through a command, so the worker never sees a half-built list). */
    public void addPort(SwitchPort port) {
        Runnable add = () -> {
            SwitchPort[] ports = forwarding.ports;
            SwitchPort[] next = java.util.Arrays.copyOf(ports, ports.length + 1);
            port.localIndex = ports.length;
            next[ports.length] = port;
            forwarding.ports = next;
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
        return submit(forwarding.portTableCommand(table));
    }

    /**
     * Queues the removal of {@code port} from this worker: on the worker thread, its link goes down (its MACs
     * are forgotten, its kick unwatched), its last counts are published, it leaves the list, and {@code done}
     * runs. After that the worker never touches the port's device again.
     */
    boolean removePort(SwitchPort port, Runnable done) {
        return submit(() -> {
            SwitchPort[] ports = forwarding.ports;
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
                            } else if (epoll != null) {
                                for (EventFd kick : next[j].kicks) {
                                    if (kick != null) {
                                        epoll.modify(kick.fd(), Epoll.EPOLLIN | Epoll.EPOLLET, j);
                                    }
                                }
                            }
                        }
                        j++;
                    }
                }
                forwarding.ports = next;
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
        for (SwitchPort port : forwarding.ports) {
            for (int p = 0; p < port.kicks.length; p++) {
                if (port.kicks[p] != null) {
                    port.kicks[p].close();
                    port.kicks[p] = null;
                }
            }
        }
        notify.close();
        epoch.markStopped();
    }

    @Override
    public int doWork() {
        if (LOOP_TIMING) {
            timeLastLoop();
        }
        int work = commands.drain(Runnable::run);
        epoch.enter();
        try {
            work += pass();
        } finally {
            epoch.leave();
        }
        lastPassIdle = work == 0;
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
            forwarding.forward(port, announceBatch, 1);
        }
        announcements = 0;
        return n;
    }

    /** Whether the last pass found nothing to do (the next one reads the clock afresh; see Forwarding.beginPass). */
    private boolean lastPassIdle = true;

    /** With {@link #LOOP_TIMING}: the time since the last loop started, counted as the last loop's (idling included). */
    private void timeLastLoop() {
        final long now = System.nanoTime();
        if (loopStart != 0) {
            (lastPassIdle ? idleNanos : busyNanos).getAndAddRelease(now - loopStart);
        }
        loopStart = now;
    }

    private int pass() {
        forwarding.beginPass(lastPassIdle);
        int work = announcements > 0 ? sendAnnouncements() : 0;
        final SwitchPort[] local = forwarding.ports;
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
            // every transmit queue this worker owns and the guest enabled (one, without multiqueue)
            for (int m = port.seenTxMask; m != 0; m &= m - 1) {
                int pair = Integer.numberOfTrailingZeros(m);
                VirtQueue tx = device.txQueue(pair);
                int n = tx.dequeueBurst(b);
                if (n > 0) {
                    try {
                        forwarding.forward(port, b, n);
                        port.countQueueRx(pair, forwarding.forwardedFrames, forwarding.forwardedBytes);
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
                    port.add(port.counters.dropInvalid, invalid);
                    work += invalid;
                }
                tx.completeTx(b);
            }
            if (port.queueBroken()) {
                if (!port.faultReported) {
                    port.faultReported = true;   // once per fault, not once per pass while it lasts
                    port.counters.queueFaults.increment();
                    device.raiseQueueFault();   // a control thread logs it and tells the frontend
                }
            } else {
                port.faultReported = false;
            }
        }
        if (handoff != null) {
            work += handoff.receive(forwarding);
            handoff.sendStaged(forwarding.allPorts);
            handoff.reclaim();
        }
        for (SwitchPort port : local) {
            if (port.uplink != null) {
                port.uplink.flush();
                port.uplink.publishCounts();
            } else if (port.seenRunning) {
                for (int m = port.seenRxMask; m != 0; m &= m - 1) {
                    port.device.rxQueue(Integer.numberOfTrailingZeros(m)).flushRx();
                }
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
            forwarding.forward(port, b, n);
        }
        return n;
    }

    private void linkUp(SwitchPort port) {
        port.seenRunning = true;
        port.seenGeneration = port.device.generation();
        // the pairs this worker serves in this generation (fixed until the device stops)
        port.seenRxMask = port.device.rxMask() & port.ownedPairs;
        port.seenTxMask = port.device.txMask() & port.ownedPairs;
        // we never wait for receive-queue kicks; transmit kicks only in interrupt mode (hybrid asks before sleeping)
        for (int m = port.seenRxMask; m != 0; m &= m - 1) {
            port.device.rxQueue(Integer.numberOfTrailingZeros(m)).setKicksWanted(false);
        }
        for (int m = port.seenTxMask; m != 0; m &= m - 1) {
            int pair = Integer.numberOfTrailingZeros(m);
            port.device.txQueue(pair).setKicksWanted(notify.kicksWhilePolling());
            if (epoll != null) {
                EventFd kick = null;
                try {
                    kick = port.device.duplicateTxKick(pair);
                    if (kick != null) {
                        epoll.add(kick.fd(), Epoll.EPOLLIN | Epoll.EPOLLET, port.localIndex);
                    }
                    port.kicks[pair] = kick;
                } catch (RuntimeException e) {
                    if (kick != null) {
                        kick.close();
                    }
                    // not ours to stop the device (control threads own that state): raise it. Until a control
                    // thread has stopped it the port has no kick, so the worker naps rather than sleeps.
                    port.device.raiseBroken("cannot watch the kick eventfd: " + e.getMessage());
                }
            }
        }
        port.counters.linkUp.setRelease(1);
    }

    private void linkDown(SwitchPort port) {
        port.seenRunning = false;
        port.counters.linkUp.setRelease(0);
        port.seenRxMask = 0;
        port.seenTxMask = 0;
        for (int p = 0; p < port.kicks.length; p++) {
            if (port.kicks[p] != null) {
                epoll.remove(port.kicks[p].fd());
                port.kicks[p].close();
                port.kicks[p] = null;
            }
        }
        if (macTable != null) {
            macTable.flush(port.index);
        }
    }
}
