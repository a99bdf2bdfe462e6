package io.vswitch.bench;

import io.vswitch.config.NotifyMode;
import io.vswitch.engine.CountersFile;
import io.vswitch.engine.MacTable;
import io.vswitch.engine.PortCounters;
import io.vswitch.engine.SwitchPort;
import io.vswitch.engine.Worker;
import io.vswitch.vhost.VhostUserPort;
import io.vswitch.vhost.net.VirtioNetDevice;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.BenchmarkParams;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Comparator;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

/**
 * Worker scaling in-process (issue 9 item 5): four synthetic guests in two cross-connected pairs
 * (vm0-vm1, vm2-vm3), served either by one {@link Worker} on one thread ({@link #oneWorker}) or by two workers,
 * each serving one pair on its own thread ({@link #twoWorkers}, {@code @Threads(2)}). Everything else is
 * {@link SwitchBenchmark}'s: the same memfd guests ({@link GuestRam}), the same allocation-free drivers
 * ({@link QueueDriver}: 32 frames posted per guest and pass, RX buffers given back), the real worker in poll
 * mode, 64-byte frames, 256-entry rings, MRG_RXBUF.
 *
 * <p>One operation on a thread = that thread's guests refill (each of its ports: TX post of 32, RX reap and
 * repost), then one {@code doWork()} of its worker. The number to read is {@code frames}: frames forwarded per
 * second, summed over the threads by JMH (an {@link AuxCounters} of type OPERATIONS). The ratio
 * twoWorkers / oneWorker is the scaling; with two vCPUs the two threads take both, and JMH's harness thread
 * sleeps while they run.
 *
 * <p>The two workers share what a switch's workers share in cross-connect: the counters file (Agrona lays
 * counters 128 bytes apart) and the port table ({@code allPorts}, read only). Each has its own ports, guests,
 * batch and forwarding state. With {@code -p mode=learning} they also share the {@link MacTable} (each guest
 * sends to its pair's MACs, so every frame stays on its own worker, as in cross-connect).
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)   // JVM flags: jvm.options, added to every fork by BenchMain
@State(Scope.Benchmark)
public class WorkerScalingBenchmark {
    static final int PORTS = 4;
    static final int BURST = SwitchBenchmark.BURST;
    static final int QUEUE_SIZE = SwitchBenchmark.QUEUE_SIZE;

    /** cross-connect (the configuration) or learning (one MAC table shared by the workers). */
    @Param({"cross-connect"})
    public String mode;

    /** Hosts (MACs) behind each guest, as in {@link SwitchBenchmark#hosts}; only learning reads addresses. */
    @Param({"1"})
    public int hosts;

    private Path dir;
    private CountersFile counters;
    private SwitchPort[] all;
    private GuestRam[] rams;
    private QueueDriver[] txDrivers;
    private QueueDriver[] rxDrivers;
    /** One per thread: worker {@code w} serves ports {@code lanePorts[w]}. */
    private Worker[] workers;
    private int[][] lanePorts;
    private final AtomicInteger nextLane = new AtomicInteger();

    /** Frames the thread's worker forwarded; JMH sums the threads' and reports it per second. */
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    @State(Scope.Thread)
    public static class Forwarded {
        public long frames;

        @Setup(Level.Iteration)
        public void reset() {
            frames = 0;
        }
    }

    /** One thread's share: its worker and its guests' drivers (copied into this thread's own object). */
    @State(Scope.Thread)
    public static class Lane {
        Worker worker;
        QueueDriver[] tx;
        QueueDriver[] rx;

        @Setup(Level.Trial)
        public void take(WorkerScalingBenchmark b) {
            int lane = b.nextLane.getAndIncrement();
            if (lane >= b.workers.length) {
                throw new IllegalStateException("more threads than workers: lane " + lane);
            }
            worker = b.workers[lane];
            int[] ports = b.lanePorts[lane];
            tx = new QueueDriver[ports.length];
            rx = new QueueDriver[ports.length];
            for (int i = 0; i < ports.length; i++) {
                tx[i] = b.txDrivers[ports[i]];
                rx[i] = b.rxDrivers[ports[i]];
            }
        }
    }

    @Setup(Level.Trial)
    public void setUp(BenchmarkParams params) throws IOException {
        int threads = params.getThreads();
        if (threads != 1 && threads != 2) {
            throw new IllegalArgumentException("1 or 2 threads (one per worker): " + threads);
        }
        boolean learning = switch (mode) {
            case "cross-connect" -> false;
            case "learning" -> true;
            default -> throw new IllegalArgumentException("mode must be cross-connect or learning: " + mode);
        };
        if (hosts < 1 || hosts > QUEUE_SIZE) {
            throw new IllegalArgumentException("hosts must be in 1.." + QUEUE_SIZE + ": " + hosts);
        }
        int[] limits = new int[PORTS];
        Arrays.fill(limits, 1024);
        MacTable macTable = learning ? new MacTable(4096, 300_000, limits) : null;
        dir = Files.createTempDirectory("vswitch-bench-scaling");
        counters = CountersFile.create(dir.resolve(CountersFile.FILE_NAME), 64 + PORTS * 24 + 16);
        all = new SwitchPort[PORTS];
        rams = new GuestRam[PORTS];
        txDrivers = new QueueDriver[PORTS];
        rxDrivers = new QueueDriver[PORTS];
        for (int i = 0; i < PORTS; i++) {
            String name = "vm" + i;
            GuestRam ram = new GuestRam("bench-scaling-" + name, SwitchBenchmark.RAM);
            rams[i] = ram;
            QueueDriver rx = new QueueDriver(ram, QUEUE_SIZE);
            QueueDriver tx = new QueueDriver(ram, QUEUE_SIZE);
            rx.rxBuffers(SwitchBenchmark.BUFFER, false);
            tx.txBuffers(SwitchBenchmark.FRAME, SwitchBenchmark.BUFFER, false);
            for (int head = 0; head < QUEUE_SIZE; head++) {
                tx.writeEthernet(head, SwitchBenchmark.mac(i ^ 1, head % hosts), SwitchBenchmark.mac(i, head % hosts), 0x0800);
            }
            rxDrivers[i] = rx;
            txDrivers[i] = tx;

            VhostUserPort vhost = new VhostUserPort(name, dir.resolve(name + ".sock"), VhostUserPort.Role.SERVER);
            VirtioNetDevice device = vhost.device();
            check(device.setFeatures(SwitchBenchmark.FEATURES));
            device.setMemory(ram.memory);
            ram.memoryHandedOver();
            QueueDriver[] drivers = {rx, tx};
            for (int q = 0; q < VirtioNetDevice.QUEUES; q++) {
                check(device.setVringNum(q, QUEUE_SIZE));
                check(device.setVringAddr(q, drivers[q].descAddr(), drivers[q].usedAddr(), drivers[q].availAddr()));
                check(device.setVringBase(q, 0));
                check(device.setVringKick(q, null));
            }
            if (!device.isRunning()) {
                throw new IllegalStateException(name + " did not start");
            }
            int worker = threads == 1 ? 0 : i / 2;   // two workers: vm0, vm1 on worker 0; vm2, vm3 on worker 1
            all[i] = new SwitchPort(i, name, vhost, worker, 1500, new PortCounters(counters, name));
        }
        if (!learning) {
            for (int i = 0; i < PORTS; i += 2) {
                all[i].peer = all[i + 1];
                all[i + 1].peer = all[i];
            }
        }
        workers = new Worker[threads];
        lanePorts = threads == 1 ? new int[][] {{0, 1, 2, 3}} : new int[][] {{0, 1}, {2, 3}};
        for (int w = 0; w < threads; w++) {
            // no hand-off pool: each pair is served by one worker, so no frame crosses workers
            workers[w] = new Worker(w, learning, macTable, all, BURST, null, 1, counters, NotifyMode.POLL, 1000);
            for (int p : lanePorts[w]) {
                workers[w].addPort(all[p]);
            }
        }
        for (QueueDriver rx : rxDrivers) {
            rx.post(QUEUE_SIZE);
        }
        for (Worker w : workers) {
            w.doWork();   // takes the ports, brings their links up
        }
        for (SwitchPort port : all) {
            if (!port.seenRunning) {
                throw new IllegalStateException(port + " is not up in its worker");
            }
        }
    }

    private static void check(String problem) {
        if (problem != null) {
            throw new IllegalStateException(problem);
        }
    }

    private static int pass(Lane lane, Forwarded forwarded) {
        final QueueDriver[] tx = lane.tx;
        final QueueDriver[] rx = lane.rx;
        for (int i = 0; i < tx.length; i++) {
            tx[i].post(BURST);
            int returned = rx[i].reap();
            if (returned > 0) {
                rx[i].post(returned);
            }
        }
        int work = lane.worker.doWork();
        forwarded.frames += work;
        return work;
    }

    /** One worker serves all four ports, on one thread. */
    @Benchmark
    @Threads(1)
    public int oneWorker(Lane lane, Forwarded forwarded) {
        return pass(lane, forwarded);
    }

    /** Two workers, one pair each, each on its own thread. */
    @Benchmark
    @Threads(2)
    public int twoWorkers(Lane lane, Forwarded forwarded) {
        return pass(lane, forwarded);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        try {
            StringBuilder problems = new StringBuilder();
            for (int i = 0; i < PORTS; i++) {
                SwitchPort p = all[i];
                PortCounters c = p.counters;
                long drops = c.dropRxRingFull.get() + c.dropNoBuffers.get() + c.dropPortDown.get()
                        + c.dropInvalid.get() + c.dropOverMtu.get();
                if (drops != 0 || p.device.isBroken()) {
                    problems.append(String.format("%s: %d drops (ring full %d, port down %d), broken %b; ", p,
                            drops, c.dropRxRingFull.get(), c.dropPortDown.get(), p.device.isBroken()));
                }
                txDrivers[i].reap();
                if (txDrivers[i].outstanding() != 0) {
                    problems.append(p).append(": ").append(txDrivers[i].outstanding()).append(" TX buffers not returned; ");
                }
                if (c.rxPackets.get() == 0 || c.txPackets.get() == 0) {
                    problems.append(p).append(": nothing forwarded; ");
                }
            }
            if (!problems.isEmpty()) {
                throw new IllegalStateException("the benchmark did not measure what it claims: " + problems);
            }
        } finally {
            for (Worker w : workers) {
                w.onClose();
            }
            for (SwitchPort p : all) {
                p.device.reset();
            }
            for (GuestRam ram : rams) {
                ram.close();
            }
            counters.close();
            nextLane.set(0);
            try (Stream<Path> files = Files.walk(dir)) {
                files.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
            }
        }
    }
}
