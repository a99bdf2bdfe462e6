package io.vswitch.bench;

import io.vswitch.engine.Worker;
import io.vswitch.engine.SwitchPort;
import io.vswitch.engine.MacTable;
import io.vswitch.config.NotifyMode;
import io.vswitch.protocol.Features;
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
import org.openjdk.jmh.annotations.Warmup;

import java.io.IOException;
import java.util.concurrent.TimeUnit;

/**
 * The whole switch data path in one thread: one {@link Worker} (the real one, polling mode) with
 * {@code ports} synthetic guests, 64-byte frames, in cross-connect (ports paired 0-1, 2-3, ...) or learning
 * mode (each guest sends to its pair's MACs: after the first burst every frame is a learned unicast;
 * {@link #hosts} MACs behind each guest).
 *
 * <p>Each guest's memory is a memfd ({@link GuestRam}); its {@link VirtioNetDevice} is set up through the
 * same control methods a vhost-user session calls (features, memory, ring size/addresses, kick "none"),
 * without a socket. One benchmark operation is what a guest driver does between two passes, then one
 * {@code worker.doWork()}: every guest makes 32 frames available on its TX ring (32 two-byte avail stores
 * and one release store of avail.idx) and gives back the RX buffers the worker filled (one acquire load of
 * used.idx, then the same stores); the driver never reads frames or used elements. TX chains are one
 * descriptor (header + frame), RX buffers one 2 KiB descriptor, MRG_RXBUF on, 256-entry rings: what DPDK's
 * virtio-user does. The worker's burst is 32 (the default).
 *
 * <p>The number to read is {@code frames}: frames forwarded per second (each is taken from one guest's TX
 * ring and copied into one other guest's RX ring). The operation score counts passes. Allocation: JMH's
 * {@code gc.alloc.rate.norm} is per pass, i.e. per {@code ports x 32} frames.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)   // JVM flags: jvm.options, added to every fork by BenchMain
@State(Scope.Thread)
public class SwitchBenchmark {
    static final int BURST = SyntheticGuests.BURST;
    static final long FEATURES = Features.bit(Features.VIRTIO_F_VERSION_1) | Features.bit(Features.VIRTIO_NET_F_MRG_RXBUF);

    @Param({"2", "8"})
    public int ports;

    @Param({"cross-connect", "learning"})
    public String mode;

    /**
     * Hosts (MAC addresses) behind each guest: frame {@code k} of a guest goes from its host {@code k % hosts}
     * to host {@code k % hosts} behind the paired guest. With 1, every frame of a burst has the same source
     * and destination; with more, the learning bridge learns and looks up a different pair frame after frame.
     * Cross-connect does not look at addresses.
     */
    @Param({"1", "64"})
    public int hosts;

    /**
     * Bytes from one guest buffer to the next. 2048: every buffer starts at a multiple of 2 KiB, so all the
     * headers and first frame lines fall into two of the L1 cache's 64 sets (16 lines for every buffer of every
     * ring); the benchmark's layout up to session 8. 2368: the spacing of testpmd's mbufs (a mempool element: 64 B
     * header, 128 B {@code rte_mbuf}, 2176 B data room), whose lines spread over all the sets, as a real
     * driver's buffers do.
     */
    @Param({"2048"})
    public int stride;

    private SyntheticGuests guests;
    private Worker worker;
    private QueueDriver[] txDrivers;
    private QueueDriver[] rxDrivers;

    /** Frames the worker forwarded (per thread: JMH sums the threads'); JMH reports it per second. Also WorkerScalingBenchmark's. */
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    @State(Scope.Thread)
    public static class Forwarded {
        public long frames;

        @Setup(Level.Iteration)
        public void reset() {
            frames = 0;
        }
    }

    /** Whether {@code mode} names the learning bridge (else cross-connect); refuses anything else. */
    static boolean learning(String mode) {
        return switch (mode) {
            case "cross-connect" -> false;
            case "learning" -> true;
            default -> throw new IllegalArgumentException("mode must be cross-connect or learning: " + mode);
        };
    }

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        boolean learning = learning(mode);
        int[] limits = new int[ports];
        java.util.Arrays.fill(limits, 1024);
        MacTable macTable = learning ? new MacTable(4096, 300_000, limits) : null;
        guests = new SyntheticGuests("vswitch-bench", ports, hosts, learning, FEATURES, i -> 0, stride);
        txDrivers = guests.tx;
        rxDrivers = guests.rx;
        worker = new Worker(0, learning, macTable, guests.ports, BURST, null, 1, guests.counters, NotifyMode.POLL, 1000);
        for (SwitchPort port : guests.ports) {
            worker.addPort(port);
        }
        guests.start(worker);
    }

    @Benchmark
    public int pass(Forwarded forwarded) {
        int work = SyntheticGuests.pass(txDrivers, rxDrivers, worker);
        forwarded.frames += work;
        return work;
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        try {
            SyntheticGuests.check(guests.problems());
        } finally {
            worker.onClose();
            guests.close();
        }
    }
}
