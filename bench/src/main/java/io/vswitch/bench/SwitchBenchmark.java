package io.vswitch.bench;

import io.vswitch.engine.CountersFile;
import io.vswitch.engine.Worker;
import io.vswitch.engine.SwitchPort;
import io.vswitch.engine.MacTable;
import io.vswitch.engine.PortCounters;
import io.vswitch.bench.GuestRam;
import io.vswitch.bench.QueueDriver;
import io.vswitch.config.NotifyMode;
import io.vswitch.vhost.VhostUserPort;
import io.vswitch.vhost.net.VirtioNetDevice;
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
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

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
    static final int BURST = 32;
    static final int QUEUE_SIZE = 256;
    static final int FRAME = 64;
    static final int BUFFER = 2048;
    static final long RAM = 4L << 20;
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

    private Path dir;
    private CountersFile counters;
    private Worker worker;
    private SwitchPort[] all;
    private GuestRam[] rams;
    private QueueDriver[] txDrivers;
    private QueueDriver[] rxDrivers;

    /** Frames the worker forwarded; JMH reports it per second. */
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    @State(Scope.Thread)
    public static class Forwarded {
        public long frames;

        @Setup(Level.Iteration)
        public void reset() {
            frames = 0;
        }
    }

    static long mac(int port, int host) {
        return 0x02_00_00_00_00_00L | ((long) host << 16) | (port + 1);   // locally administered unicast
    }

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        if (ports < 2 || ports % 2 != 0) {
            throw new IllegalArgumentException("ports must be an even number >= 2: " + ports);
        }
        if (hosts < 1 || hosts > QUEUE_SIZE) {
            throw new IllegalArgumentException("hosts must be in 1.." + QUEUE_SIZE + ": " + hosts);
        }
        boolean learning = switch (mode) {
            case "cross-connect" -> false;
            case "learning" -> true;
            default -> throw new IllegalArgumentException("mode must be cross-connect or learning: " + mode);
        };
        dir = Files.createTempDirectory("vswitch-bench");
        counters = CountersFile.create(dir.resolve(CountersFile.FILE_NAME), 64 + ports * 24 + 8);
        int[] limits = new int[ports];
        java.util.Arrays.fill(limits, 1024);
        MacTable macTable = learning ? new MacTable(4096, 300_000, limits) : null;

        all = new SwitchPort[ports];
        rams = new GuestRam[ports];
        txDrivers = new QueueDriver[ports];
        rxDrivers = new QueueDriver[ports];
        for (int i = 0; i < ports; i++) {
            String name = "vm" + i;
            GuestRam ram = new GuestRam("bench-" + name, RAM);
            rams[i] = ram;
            QueueDriver rx = new QueueDriver(ram, QUEUE_SIZE);
            QueueDriver tx = new QueueDriver(ram, QUEUE_SIZE);
            rx.rxBuffers(BUFFER, false);
            tx.txBuffers(FRAME, BUFFER, false);
            for (int head = 0; head < QUEUE_SIZE; head++) {
                tx.writeEthernet(head, mac(i ^ 1, head % hosts), mac(i, head % hosts), 0x0800);
            }
            rxDrivers[i] = rx;
            txDrivers[i] = tx;

            VhostUserPort vhost = new VhostUserPort(name, dir.resolve(name + ".sock"), VhostUserPort.Role.SERVER);
            VirtioNetDevice device = vhost.device();
            check(device.setFeatures(FEATURES));
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
            all[i] = new SwitchPort(i, name, vhost, 0, 1500, new PortCounters(counters, name));
        }
        if (!learning) {
            for (int i = 0; i < ports; i += 2) {
                all[i].peer = all[i + 1];
                all[i + 1].peer = all[i];
            }
        }
        worker = new Worker(0, learning, macTable, all, BURST, null, 1, counters, NotifyMode.POLL, 1000);
        for (SwitchPort port : all) {
            worker.addPort(port);
        }
        for (QueueDriver rx : rxDrivers) {
            rx.post(QUEUE_SIZE);
        }
        worker.doWork();   // takes the ports, brings their links up
        for (SwitchPort port : all) {
            if (!port.seenRunning) {
                throw new IllegalStateException(port + " is not up in the worker");
            }
        }
    }

    private static void check(String problem) {
        if (problem != null) {
            throw new IllegalStateException(problem);
        }
    }

    @Benchmark
    public int pass(Forwarded forwarded) {
        final QueueDriver[] tx = txDrivers;
        final QueueDriver[] rx = rxDrivers;
        for (int i = 0; i < tx.length; i++) {
            tx[i].post(BURST);
            int returned = rx[i].reap();
            if (returned > 0) {
                rx[i].post(returned);
            }
        }
        int work = worker.doWork();
        forwarded.frames += work;
        return work;
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        try {
            StringBuilder problems = new StringBuilder();
            for (int i = 0; i < ports; i++) {
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
            worker.onClose();
            for (SwitchPort p : all) {
                p.device.reset();   // unmaps the device's view of guest memory
            }
            for (GuestRam ram : rams) {
                ram.close();
            }
            counters.close();
            try (Stream<Path> files = Files.walk(dir)) {
                files.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
            }
        }
    }
}
