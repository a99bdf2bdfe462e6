package io.vswitch.bench;

import io.vswitch.config.NotifyMode;
import io.vswitch.engine.MacTable;
import io.vswitch.engine.Worker;
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
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

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
    static final int BURST = SyntheticGuests.BURST;

    /** cross-connect (the configuration) or learning (one MAC table shared by the workers). */
    @Param({"cross-connect"})
    public String mode;

    /** Hosts (MACs) behind each guest, as in {@link SwitchBenchmark#hosts}; only learning reads addresses. */
    @Param({"1"})
    public int hosts;

    private SyntheticGuests guests;
    private QueueDriver[] txDrivers;
    private QueueDriver[] rxDrivers;
    /** One per thread: worker {@code w} serves ports {@code lanePorts[w]}. */
    private Worker[] workers;
    private int[][] lanePorts;
    private final AtomicInteger nextLane = new AtomicInteger();

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
        boolean learning = SwitchBenchmark.learning(mode);
        int[] limits = new int[PORTS];
        Arrays.fill(limits, 1024);
        MacTable macTable = learning ? new MacTable(4096, 300_000, limits) : null;
        // two workers: vm0, vm1 on worker 0; vm2, vm3 on worker 1
        guests = new SyntheticGuests("vswitch-bench-scaling", PORTS, hosts, learning, SwitchBenchmark.FEATURES,
                i -> threads == 1 ? 0 : i / 2);
        txDrivers = guests.tx;
        rxDrivers = guests.rx;
        workers = new Worker[threads];
        lanePorts = threads == 1 ? new int[][] {{0, 1, 2, 3}} : new int[][] {{0, 1}, {2, 3}};
        for (int w = 0; w < threads; w++) {
            // no hand-off pool: each pair is served by one worker, so no frame crosses workers
            workers[w] = new Worker(w, learning, macTable, guests.ports, BURST, null, 1, guests.counters, NotifyMode.POLL, 1000);
            for (int p : lanePorts[w]) {
                workers[w].addPort(guests.ports[p]);
            }
        }
        guests.start(workers);
    }

    private static int pass(Lane lane, SwitchBenchmark.Forwarded forwarded) {
        int work = SyntheticGuests.pass(lane.tx, lane.rx, lane.worker);
        forwarded.frames += work;
        return work;
    }

    /** One worker serves all four ports, on one thread. */
    @Benchmark
    @Threads(1)
    public int oneWorker(Lane lane, SwitchBenchmark.Forwarded forwarded) {
        return pass(lane, forwarded);
    }

    /** Two workers, one pair each, each on its own thread. */
    @Benchmark
    @Threads(2)
    public int twoWorkers(Lane lane, SwitchBenchmark.Forwarded forwarded) {
        return pass(lane, forwarded);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        try {
            SyntheticGuests.check(guests.problems());
        } finally {
            for (Worker w : workers) {
                w.onClose();
            }
            guests.close();
            nextLane.set(0);
        }
    }
}
