package io.vswitch.engine;

import io.vswitch.config.BridgeMode;
import io.vswitch.config.Link;
import io.vswitch.config.NotifyMode;
import io.vswitch.config.PortConfig;
import io.vswitch.config.SocketRole;
import io.vswitch.config.SwitchConfig;
import io.vswitch.config.SwitchSettings;
import io.vswitch.config.VlanMode;
import io.vswitch.rings.PacketBufferPool;
import io.vswitch.rings.SpscLongRing;
import io.vswitch.sys.Affinity;
import io.vswitch.vhost.SocketInUseException;
import io.vswitch.vhost.VhostUserPort;
import io.vswitch.sys.MappedMemory;
import io.vswitch.sys.SharedMemory;
import io.vswitch.sys.UnixSocket;
import io.vswitch.vhost.net.offload.OffloadRule;
import io.vswitch.vhost.virtio.VirtQueue;
import org.agrona.concurrent.AgentRunner;
import org.agrona.concurrent.ManyToOneConcurrentArrayQueue;
import org.agrona.concurrent.status.AtomicCounter;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.GroupPrincipal;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.PosixFilePermission;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * A running switch built from a {@link SwitchConfig}: its ports (each a vhost-user socket with its own
 * control thread), its workers (Agrona agents on their own threads), the counters file, and a housekeeping
 * thread that mirrors control-plane counters into it and does the control-plane work workers must not do:
 * acting on the faults they raise on devices (log, signal the error eventfd, stop the device) and logging
 * their errors. A worker only sets a flag or offers to a lock-free queue; it never logs and never waits.
 * It holds its runtime directory's {@link InstanceLock} from start to close: one switch per directory.
 */
public final class Switch implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger("vswitch");
    /** Buffers per worker for frames that cross workers. */
    private static final int POOL_BUFFERS = 4096;
    /**
     * How often housekeeping wakes: it looks for what workers raised (the delay before a queue fault is reported;
     * the worker itself stops using a faulted queue at once) and, every {@link #MIRROR_MILLIS}, mirrors the
     * control-plane counters. Each wake-up costs about 0.1 ms of a cpu in this VM and takes that cpu from whoever
     * runs there, a guest's vCPU or a worker (bench/RESULTS.md, sessions 5 and 11): one wake-up every 250 ms
     * instead of two timers (100 and 250 ms, 14 wake-ups a second). {@code -Dvswitch.raisedPollMillis=N} changes it.
     */
    static final long RAISED_POLL_MILLIS = Math.max(1, Long.getLong("vswitch.raisedPollMillis", 250));
    /** How often the control-plane counters are mirrored into the counters file (at most once per wake-up). */
    static final long MIRROR_MILLIS = 250;

    /** Port indices a switch hands out over its life (ports added at runtime take new ones; never reused). */
    static final int MAX_PORT_INDICES = 1024;
    /** Counters file room for ports beyond the topology's, added at runtime (a deleted port's are freed). */
    static final int RUNTIME_PORT_ROOM = 128;

    /** The running topology: the file's, then as changed at runtime (see {@link LiveTopology}). */
    private volatile SwitchConfig config;
    private final InstanceLock lock;
    private final CountersFile counters;
    /** The learning bridge's table (null in cross-connect mode), read by housekeeping for the per-port MAC gauge. */
    private MacTable macTable;
    /** The live ports; copy-on-write, as housekeeping iterates it while the control socket adds and deletes. */
    private final List<SwitchPort> ports = new java.util.concurrent.CopyOnWriteArrayList<>();
    /** Every port ever, by index: the live ones and deleted ones (whose index is never reused). */
    private SwitchPort[] table = new SwitchPort[0];
    /** Held by housekeeping while it writes port counters, and by a deletion while it frees them. */
    final Object countersLock = new Object();
    private final List<Worker> workers = new ArrayList<>();
    private final List<AgentRunner> runners = new ArrayList<>();
    /** What unpinned workers may run on when housekeeping-cpus confined the process (null: not confined). */
    private final BitSet unpinnedWorkerCpus;
    private final List<MappedMemory> poolMemory = new ArrayList<>();
    private final List<Uplink> uplinks = new ArrayList<>();
    private final ScheduledExecutorService housekeeping;
    /** Errors thrown on worker threads, logged by housekeeping (the worker thread must not log). */
    private final ManyToOneConcurrentArrayQueue<Throwable> workerErrors = new ManyToOneConcurrentArrayQueue<>(64);
    private final AtomicLong workerErrorsLost = new AtomicLong();

    private Switch(SwitchConfig config, InstanceLock lock, CountersFile counters, BitSet unpinnedWorkerCpus) {
        this.config = config;
        this.lock = lock;
        this.counters = counters;
        this.unpinnedWorkerCpus = unpinnedWorkerCpus;
        this.housekeeping = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "vswitch-housekeeping");
            t.setDaemon(true);
            return t;
        });
    }

    /** Refuses settings the data plane does not implement yet, rather than silently ignoring them. */
    public static List<String> unsupported(SwitchConfig config) {
        List<String> problems = new ArrayList<>();
        Map<String, String> interfaces = new HashMap<>();
        for (PortConfig p : config.ports()) {
            if (p.uplink() instanceof io.vswitch.config.UplinkConfig.AfPacket a) {
                String other = interfaces.putIfAbsent(a.interfaceName(), p.name());
                if (other != null) {
                    problems.add("port " + p.name() + ": interface " + a.interfaceName() + " is already port " + other
                            + "'s (one afpacket port per interface; several workers serve one with 'workers:')");
                }
            }
        }
        try {
            NotifyMode[] modes = workerModes(config);
            for (PortConfig p : config.ports()) {
                if (p.uplink() instanceof io.vswitch.config.UplinkConfig.AfPacket a && a.fanout()) {
                    problems.addAll(FanoutPorts.problems(p, a, modes, config.settings().mode()));
                }
            }
        } catch (IllegalArgumentException e) {
            problems.add(e.getMessage());
        }
        return problems;
    }

    /**
     * A worker waits one way for all its ports: the mode its ports agree on (the switch's, unless they
     * override it together). Ports that disagree must be given different workers.
     */
    static NotifyMode[] workerModes(SwitchConfig config) {
        NotifyMode[] modes = new NotifyMode[config.settings().workers()];
        String[] decidedBy = new String[modes.length];
        for (PortConfig p : config.ports()) {
            for (int w : p.allQueueWorkers()) {   // every worker that owns one of the port's queue pairs
                if (modes[w] == null) {
                    modes[w] = p.notifyMode();
                    decidedBy[w] = p.name();
                } else if (modes[w] != p.notifyMode()) {
                    throw new IllegalArgumentException("ports " + decidedBy[w] + " and " + p.name() + " share worker " + w
                            + " but ask for notify " + modes[w].yamlName() + " and " + p.notifyMode().yamlName()
                            + ": give them different workers (port key 'worker')");
                }
            }
        }
        for (int w = 0; w < modes.length; w++) {
            if (modes[w] == null) {
                modes[w] = config.settings().notifyMode();
            }
        }
        return modes;
    }

    public static Switch start(SwitchConfig config) throws IOException {
        List<String> problems = unsupported(config);
        if (!problems.isEmpty()) {
            throw new IllegalArgumentException(String.join("\n", problems));
        }
        SwitchSettings settings = config.settings();
        // Nothing of another switch's is touched before both checks pass: the runtime directory's lock, then
        // every server socket path (which may lie outside the directory, and so be served by a switch with
        // another directory). A free lock means the previous owner is gone: its counters file is replaced and
        // its sockets, which nobody listens on any more, are removed when the ports bind.
        InstanceLock lock = InstanceLock.acquire(settings.runtimeDir());
        CountersFile counters;
        BitSet unpinnedWorkerCpus;
        try {
            refuseServedSockets(config);
            unpinnedWorkerCpus = confineHousekeeping(settings);
            counters = CountersFile.create(settings.runtimeDir().resolve(CountersFile.FILE_NAME),
                    64 + (config.ports().size() + RUNTIME_PORT_ROOM) * 28 + settings.workers() * 4
                            + config.ports().stream().mapToInt(p -> p.queues() > 1 ? 4 * p.queues() : 0).sum());
        } catch (RuntimeException | IOException e) {
            lock.close();
            throw e;
        }
        Switch sw = new Switch(config, lock, counters, unpinnedWorkerCpus);
        try {
            sw.build();
        } catch (RuntimeException | IOException e) {
            sw.close();
            throw e;
        }
        return sw;
    }

    /**
     * {@code housekeeping-cpus}: confines every thread the process has now (the JVM's JIT compiler, GC and
     * service threads, the caller's) to those cpus; the threads the switch starts afterwards (control, housekeeping,
     * metrics) inherit it from their creator, and so do the ones the JVM adds later (compiler threads start
     * compiler threads). Workers set their own: their {@code cpus:} core, or else the cpus the process had before,
     * returned here (null when there is nothing to confine). It applies to the whole process, embedding one too.
     */
    private static BitSet confineHousekeeping(SwitchSettings settings) {
        if (settings.housekeepingCpus().isEmpty()) {
            return null;
        }
        BitSet before = Affinity.allowed(0);
        BitSet cpus = new BitSet();
        settings.housekeepingCpus().forEach(cpus::set);
        int confined;
        try {
            confined = Affinity.confineProcess(cpus);
        } catch (io.vswitch.sys.SysCallException e) {
            throw new IllegalArgumentException("housekeeping-cpus " + settings.housekeepingCpus() + ": " + e.getMessage(), e);
        }
        LOG.log(Level.INFO, "housekeeping-cpus {0}: {1} thread(s) confined, and every thread started from them; workers on {2}",
                settings.housekeepingCpus(), confined,
                settings.cpus().isEmpty() ? "the cpus the process had: " + before : "cpus " + settings.cpus());
        if (settings.cpus().stream().anyMatch(settings.housekeepingCpus()::contains)) {
            LOG.log(Level.WARNING, "housekeeping-cpus {0} overlap the workers'' cpus {1}: JIT, GC and control threads"
                    + " may take a worker''s core", settings.housekeepingCpus(), settings.cpus());
        }
        return before;
    }

    /** Throws {@link SocketInUseException} for the first server socket path on which a live process listens. */
    private static void refuseServedSockets(SwitchConfig config) {
        for (PortConfig p : config.ports()) {
            if (p.isVhostUser() && p.role() == SocketRole.SERVER && Files.exists(p.socket(), java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                var listener = UnixSocket.probeListener(p.socket());
                if (listener.isPresent()) {
                    throw new SocketInUseException(p.socket(), listener.get());
                }
            }
        }
    }

    private void build() throws IOException {
        SwitchSettings settings = config.settings();
        boolean learning = settings.mode() == BridgeMode.LEARNING;
        int[] macLimits = java.util.Arrays.copyOf(config.ports().stream().mapToInt(PortConfig::macLimit).toArray(),
                Math.max(MAX_PORT_INDICES, config.ports().size()));
        macTable = learning ? new MacTable(Math.max(4096, 4 * sum(macLimits)),
                settings.macAgingSeconds() * 1000L, macLimits) : null;

        SwitchPort[] all = new SwitchPort[config.ports().size()];
        Map<String, SwitchPort> byName = new HashMap<>();
        for (int i = 0; i < all.length; i++) {
            PortConfig pc = config.ports().get(i);
            SwitchPort port = newPort(i, pc);
            all[i] = port;
            byName.put(pc.name(), port);
            ports.add(port);
        }
        table = all;
        for (Link link : config.links()) {
            byName.get(link.first()).peer = byName.get(link.second());
            byName.get(link.second()).peer = byName.get(link.first());
        }
        for (SwitchPort port : all) {
            for (SwitchPort shard : port.shards()) {
                shard.peer = port.peer;   // every shard of a spread port sends to the same peer
            }
        }

        int n = settings.workers();
        NotifyMode[] workerModes = workerModes(config);
        int maxMtu = config.ports().stream().mapToInt(PortConfig::mtu).max().orElse(1500);
        long bufferSize = (HandoffHeader.SIZE + maxMtu + 18 + 63) & ~63L;
        PacketBufferPool[] pools = new PacketBufferPool[n];
        for (int w = 0; w < n; w++) {
            pools[w] = n > 1 ? newPool(bufferSize) : null;
            workers.add(new Worker(w, learning, macTable, all, settings.burst(), pools[w], n, counters,
                    workerModes[w], settings.hybridQuietPolls()));
        }
        int ringSize = Integer.highestOneBit(POOL_BUFFERS - 1) << 1;
        Worker[] peerArray = workers.toArray(new Worker[0]);
        for (Worker a : workers) {
            a.setPeers(peerArray);
            for (Worker b : workers) {
                if (a != b) {
                    a.connect(b, new SpscLongRing(ringSize), new SpscLongRing(ringSize));
                }
            }
        }
        for (SwitchPort port : all) {
            attach(port);
        }
        for (SwitchPort port : all) {
            if (port.uplink != null) {
                continue;
            }
            port.vhost.start();
            PortConfig pc = config.ports().get(port.index);
            if (port.vhost.role() == VhostUserPort.Role.SERVER) {
                applySocketOwnership(pc);
            }
        }
        for (Worker worker : workers) {
            int cpu = settings.cpus().isEmpty() ? -1 : settings.cpus().get(worker.id() % settings.cpus().size());
            AgentRunner runner = new AgentRunner(worker.idleStrategy(), this::onWorkerError, null,
                    new PinnedAgent(worker, cpu, unpinnedWorkerCpus, this::onWorkerError));
            runners.add(runner);
            AgentRunner.startOnThread(runner);
        }
        housekeeping.scheduleAtFixedRate(this::housekeepingTick, RAISED_POLL_MILLIS, RAISED_POLL_MILLIS,
                TimeUnit.MILLISECONDS);
        LOG.log(Level.INFO, "vswitch up: {0} mode, {1} port(s), {2} worker(s), notify {3}, counters in {4}",
                settings.mode().name().toLowerCase().replace('_', '-'), all.length, n,
                settings.notifyMode().name().toLowerCase(), counters.path());
    }

    /** A port's data-plane view of {@code pc}, at index {@code index}, with its counters. */
    SwitchPort newPort(int index, PortConfig pc) {
        int access = pc.vlan() instanceof VlanMode.Access a ? a.vlan() : -1;
        List<Integer> trunk = pc.vlan() instanceof VlanMode.Trunk t ? t.vlans() : null;
        if (pc.isVhostUser()) {
            VhostUserPort vhost = new VhostUserPort(pc.name(), pc.socket(),
                    pc.role() == SocketRole.CLIENT ? VhostUserPort.Role.CLIENT : VhostUserPort.Role.SERVER, pc.queues());
            vhost.device().setOffloadsOffered(pc.offloads());   // GET_FEATURES offers them unless offloads: false
            return MultiQueue.newPort(index, pc, vhost, new PortCounters(counters, pc.name()),
                    QueueCounters.forPort(counters, pc.name(), pc.queues()), access, trunk);
        }
        PortCounters portCounters = new PortCounters(counters, pc.name());
        UplinkCounters uplinkCounters = new UplinkCounters(counters, pc.name());
        if (pc.uplink() instanceof io.vswitch.config.UplinkConfig.AfPacket a && a.fanout()) {
            return FanoutPorts.open(index, pc, a, config.settings().workers(), portCounters, uplinkCounters, counters,
                    uplinks, access, trunk);
        }
        Uplink uplink = Uplinks.open(pc, config.settings(), portCounters, uplinkCounters);
        uplinks.add(uplink);
        LOG.log(Level.INFO, "port {0}: {1}", pc.name(), uplink.describe());
        return new SwitchPort(index, pc.name(), null, uplink, pc.worker(), pc.mtu(), portCounters, access, trunk);
    }

    /** Hands {@code port} to its worker (a queued command) and wires its device to that worker. */
    void attach(SwitchPort port) {
        Worker owner = workers.get(port.worker);
        for (SwitchPort shard : port.shards()) {
            workers.get(shard.worker).addPort(shard);
        }
        if (port.uplink != null) {
            FanoutPorts.attachMembers(port, workers);
            return;
        }
        port.device.setQuiescence(MultiQueue.quiescence(port, workers));
        for (SwitchPort shard : port.shards()) {
            port.device.addStateListener(workers.get(shard.worker)::wake);
        }
        port.device.setAnnouncer(mac -> {
            if (!owner.announce(port, mac)) {
                LOG.log(Level.WARNING, "port {0}: announcement dropped (the worker''s command queue is full)", port.name);
            }
        });
    }

    /** Applies socket-mode and socket-group of a server port, whose socket is bound. */
    void applyOwnership(PortConfig pc) throws IOException {
        applySocketOwnership(pc);
    }

    List<SwitchPort> livePorts() {
        return ports;
    }

    List<Worker> workers() {
        return workers;
    }

    MacTable macTable() {
        return macTable;
    }

    CountersFile counters() {
        return counters;
    }

    SwitchPort[] table() {
        return table;
    }

    /** Control plane only: a port added at runtime joins the table and the live list. */
    void addToTable(SwitchPort port, SwitchPort[] grown) {
        table = grown;
        ports.add(port);
    }

    void removeLive(SwitchPort port) {
        ports.remove(port);
    }

    void setConfig(SwitchConfig running) {
        config = running;
    }

    /** The largest frame that fits the buffers frames cross workers in; unlimited with one worker (no pool). */
    int maxCrossWorkerFrame() {
        return poolBufferSize == 0 ? Integer.MAX_VALUE : (int) poolBufferSize - HandoffHeader.SIZE;
    }

    private long poolBufferSize;

    private PacketBufferPool newPool(long bufferSize) {
        poolBufferSize = bufferSize;
        long bytes = bufferSize * POOL_BUFFERS;
        long huge = 2L << 20;
        int fd;
        long length;
        try {
            length = (bytes + huge - 1) / huge * huge;
            fd = SharedMemory.memfd("vswitch-pool", length, true);
        } catch (RuntimeException noHugepages) {
            length = bytes;
            fd = SharedMemory.memfd("vswitch-pool", length, false);
            LOG.log(Level.INFO, "packet pool in regular pages (no free hugepages: {0})", noHugepages.getMessage());
        }
        try {
            MappedMemory mapping = SharedMemory.map(fd, length, 0);
            poolMemory.add(mapping);
            return new PacketBufferPool(mapping.segment(), bufferSize, POOL_BUFFERS);
        } finally {
            io.vswitch.sys.Libc.closeQuietly(fd);
        }
    }

    private static int sum(int[] values) {
        long total = 0;
        for (int v : values) {
            total += v;
        }
        return (int) Math.min(1 << 24, total);
    }

    private void applySocketOwnership(PortConfig pc) throws IOException {
        if (pc.socketMode().isPresent()) {
            Files.setPosixFilePermissions(pc.socket(), permissions(pc.socketMode().getAsInt()));
        }
        if (pc.socketGroup().isPresent()) {
            GroupPrincipal group = pc.socket().getFileSystem().getUserPrincipalLookupService()
                    .lookupPrincipalByGroupName(pc.socketGroup().get());
            Files.getFileAttributeView(pc.socket(), PosixFileAttributeView.class).setGroup(group);
        }
    }

    static Set<PosixFilePermission> permissions(int mode) {
        Set<PosixFilePermission> set = EnumSet.noneOf(PosixFilePermission.class);
        PosixFilePermission[] order = {
            PosixFilePermission.OTHERS_EXECUTE, PosixFilePermission.OTHERS_WRITE, PosixFilePermission.OTHERS_READ,
            PosixFilePermission.GROUP_EXECUTE, PosixFilePermission.GROUP_WRITE, PosixFilePermission.GROUP_READ,
            PosixFilePermission.OWNER_EXECUTE, PosixFilePermission.OWNER_WRITE, PosixFilePermission.OWNER_READ,
        };
        for (int bit = 0; bit < order.length; bit++) {
            if ((mode & (1 << bit)) != 0) {
                set.add(order[bit]);
            }
        }
        return set;
    }

    /** On a worker thread (Agrona's error handler): hands the error to housekeeping, lock-free, and goes on. */
    private void onWorkerError(Throwable t) {
        if (!workerErrors.offer(t)) {
            workerErrorsLost.incrementAndGet();
        }
    }

    /** When the counters were last mirrored (housekeeping's thread only). */
    private long lastMirror = System.nanoTime() - TimeUnit.MILLISECONDS.toNanos(MIRROR_MILLIS);

    /** Housekeeping's one periodic task (see {@link #RAISED_POLL_MILLIS}). */
    private void housekeepingTick() {
        try {
            handleWorkerReports();
            long now = System.nanoTime();
            if (now - lastMirror >= TimeUnit.MILLISECONDS.toNanos(MIRROR_MILLIS) - TimeUnit.MILLISECONDS.toNanos(RAISED_POLL_MILLIS) / 2) {
                lastMirror = now;
                mirrorControlCounters();
            }
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, "housekeeping: {0}", e.toString());   // an escaping exception would end the schedule
        }
    }

    /**
     * On the housekeeping thread: acts on what workers raised on devices (each device serializes this with its
     * port's control thread) and logs the errors workers handed over.
     */
    private void handleWorkerReports() {
        for (SwitchPort port : ports) {
            if (port.uplink != null) {
                continue;
            }
            try {
                port.device.handleRaised();
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, "port {0}: handling a fault its worker raised: {1}", port.name, e.toString());
            }
            OffloadRule bad = port.takeBadOffload();   // at most one line per port and poll interval
            if (bad != null) {
                LOG.log(Level.WARNING, "port {0}: dropped a frame whose virtio-net header is invalid ({1}); "
                        + "counted as drop_bad_offload_header", port.name, bad);
            }
        }
        logWorkerErrors();
    }

    private void logWorkerErrors() {
        workerErrors.drain(t -> {
            if (t instanceof WorkerWarning) {
                LOG.log(Level.WARNING, t.getMessage());
            } else {
                LOG.log(Level.ERROR, "worker error (the worker keeps running)", t);
            }
        });
        long lost = workerErrorsLost.getAndSet(0);
        if (lost > 0) {
            LOG.log(Level.ERROR, "{0} more worker error(s) not logged (too many at once)", lost);
        }
    }

    private void mirrorControlCounters() {
        synchronized (countersLock) {
            mirrorControlCountersLocked();
        }
    }

    private void mirrorControlCountersLocked() {
        try {
            for (SwitchPort port : ports) {
                if (port.uplink != null) {
                    if (macTable != null) {
                        set(port.counters.macs, macTable.learnedOn(port.index));
                    }
                    continue;
                }
                long calls = 0;
                long tooShort = 0;
                long tooLarge = 0;
                long tooManyPieces = 0;
                for (int pair = 0; pair < port.pairs; pair++) {
                    VirtQueue rx = port.device.rxQueue(pair);
                    VirtQueue tx = port.device.txQueue(pair);
                    calls += rx.callsSent + tx.callsSent;
                    tooShort += tx.framesTooShort;
                    tooLarge += tx.framesTooLarge;
                    tooManyPieces += tx.framesTooManyPieces;
                }
                set(port.counters.notifications, calls);
                set(port.counters.invalidTooShort, tooShort);
                set(port.counters.invalidTooLarge, tooLarge);
                set(port.counters.invalidTooManyPieces, tooManyPieces);
                set(port.counters.connections, port.vhost.counters().connections);
                set(port.counters.protocolErrors, port.vhost.counters().protocolErrors + port.vhost.counters().refusedMessages);
                if (macTable != null) {
                    set(port.counters.macs, macTable.learnedOn(port.index));
                }
            }
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, "housekeeping: {0}", e.toString());
        }
    }

    private static void set(AtomicCounter counter, long value) {
        counter.setRelease(value);
    }

    /** The data-plane view of a port, for tests in this package. */
    SwitchPort port(String name) {
        return ports.stream().filter(p -> p.name.equals(name)).findFirst().orElseThrow();
    }

    public Path countersPath() {
        return counters.path();
    }

    public SwitchConfig config() {
        return config;
    }

    /** Stops ports (frontends see the socket close: link down), then workers; removes socket files. */
    @Override
    public void close() {
        housekeeping.shutdownNow();
        for (SwitchPort port : ports) {
            if (port.vhost == null) {
                continue;
            }
            try {
                port.vhost.close();
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, "closing port {0}: {1}", port.name, e.toString());
            }
        }
        for (Worker worker : workers) {
            worker.stopSleeping();   // else a worker asleep in epoll_wait stops only when its sleep times out
        }
        for (AgentRunner runner : runners) {
            runner.close();
        }
        logWorkerErrors();   // what the workers reported since housekeeping's last run
        for (Uplink uplink : uplinks) {
            uplink.close();   // after the workers: nothing polls them any more
        }
        for (MappedMemory m : poolMemory) {
            m.close();
        }
        counters.close();
        lock.close();
    }

    /** Something a worker wants logged as a warning, without a stack trace. */
    private static final class WorkerWarning extends RuntimeException {
        WorkerWarning(String message) {
            super(message, null, false, false);
        }
    }

    /** Sets the worker's thread name and CPU before it starts polling. */
    private record PinnedAgent(Worker worker, int cpu, BitSet unpinned, Consumer<Throwable> errors)
            implements org.agrona.concurrent.Agent {
        @Override
        public void onStart() {
            worker.onStart();
            if (cpu >= 0) {
                try {
                    Affinity.pinCurrentThread(cpu);
                } catch (RuntimeException e) {
                    errors.accept(new WorkerWarning("worker " + worker.id() + ": cannot pin to cpu " + cpu + ": "
                            + e.getMessage()));
                }
            } else if (unpinned != null) {
                try {
                    Affinity.setAllowed(0, unpinned);   // not the housekeeping cpus it inherited
                } catch (RuntimeException e) {
                    errors.accept(new WorkerWarning("worker " + worker.id() + ": cannot leave the housekeeping cpus: "
                            + e.getMessage()));
                }
            }
        }

        @Override
        public int doWork() {
            return worker.doWork();
        }

        @Override
        public void onClose() {
            worker.onClose();
        }

        @Override
        public String roleName() {
            return worker.roleName();
        }
    }
}
