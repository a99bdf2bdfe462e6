package io.vswitch.bench;

import io.vswitch.engine.CountersFile;
import io.vswitch.engine.VxlanUplink;
import io.vswitch.engine.UplinkCounters;
import io.vswitch.engine.PortCounters;
import io.vswitch.config.UplinkConfig;
import io.vswitch.vhost.virtio.PacketBatch;
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
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * VXLAN encapsulation plus decapsulation in one thread, the kernel's UDP loopback included: one operation is
 * what a worker does with a burst toward a tunnel and back from one, on two {@link VxlanUplink}s facing
 * each other on 127.0.0.1: 32 frames of 64 bytes copied into A's transmit buffers behind the VXLAN header
 * and sent with one {@code sendmmsg}, then received on B with {@code recvmmsg} (as many calls as it takes, at
 * most 64) and checked (flags, VNI, sender, length) as the worker would before forwarding them.
 *
 * <p>Read {@code frames}: frames encapsulated and decapsulated per second on one core. {@code lost} counts
 * frames the kernel dropped on the way (socket buffer full); it should stay 0. {@code cpuNs}: process CPU
 * nanoseconds per second of wall time (1e9 = one core busy), so CPU per frame = cpuNs / frames, comparable
 * with {@code NettyVxlanBenchmark}'s. {@code segmentation}: UDP GSO on send and GRO on receive (the port's
 * default) or plain {@code sendmmsg}/{@code recvmmsg}, one datagram per frame.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)   // JVM flags: jvm.options, added to every fork by BenchMain
@State(Scope.Thread)
public class VxlanBenchmark {
    static final int BURST = 32;
    static final int FRAME = 64;

    @Param({"false", "true"})
    public boolean segmentation;

    private Path dir;
    private CountersFile counters;
    private VxlanUplink a;
    private VxlanUplink b;
    private PacketBatch batch;
    private final MemorySegment[] segments = new MemorySegment[1];
    private final long[] offsets = new long[1];
    private final int[] lengths = {FRAME};

    @AuxCounters(AuxCounters.Type.OPERATIONS)
    @State(Scope.Thread)
    public static class Tunnelled {
        public long frames;
        public long lost;
        public long cpuNs;

        @Setup(Level.Iteration)
        public void reset() {
            frames = 0;
            lost = 0;
            cpuNs = 0;
        }
    }

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        dir = Files.createTempDirectory("vsu-vxlan-bench");
        counters = CountersFile.create(dir.resolve("counters"), 64);
        Inet4Address lo = (Inet4Address) InetAddress.ofLiteral("127.0.0.1");
        var pa = new UplinkConfig.Endpoint(lo, 47881);
        var pb = new UplinkConfig.Endpoint(lo, 47882);
        a = new VxlanUplink("a", new UplinkConfig.Vxlan(pa, List.of(pb), 42), 1500, BURST,
                new PortCounters(counters, "a"), new UplinkCounters(counters, "a"), segmentation);
        b = new VxlanUplink("b", new UplinkConfig.Vxlan(pb, List.of(pa), 42), 1500, BURST,
                new PortCounters(counters, "b"), new UplinkCounters(counters, "b"), segmentation);
        batch = new PacketBatch(BURST);
        MemorySegment frame = Arena.global().allocate(FRAME);
        for (int i = 0; i < 6; i++) {
            frame.set(java.lang.foreign.ValueLayout.JAVA_BYTE, i, (byte) (i == 0 ? 0x02 : i));
            frame.set(java.lang.foreign.ValueLayout.JAVA_BYTE, 6 + i, (byte) (i == 0 ? 0x02 : 0x10 + i));
        }
        frame.set(java.lang.foreign.ValueLayout.JAVA_BYTE, 12, (byte) 0x88);
        frame.set(java.lang.foreign.ValueLayout.JAVA_BYTE, 13, (byte) 0xb5);
        segments[0] = frame;
        lastCpu = os.getProcessCpuTime();
    }

    private long lastCpu;
    private final com.sun.management.OperatingSystemMXBean os =
            (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean();

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        a.close();
        b.close();
        counters.close();
        Files.deleteIfExists(dir.resolve("counters"));
        Files.deleteIfExists(dir);
    }

    @Benchmark
    public int encapsulateAndDecapsulate(Tunnelled t) {
        for (int i = 0; i < BURST; i++) {
            a.transmit(segments, offsets, lengths, 1, FRAME);
        }
        a.flush();
        int got = 0;
        for (int tries = 0; got < BURST && tries < 64; tries++) {
            got += b.receive(batch);
        }
        t.frames += got;
        t.lost += BURST - got;
        long cpu = os.getProcessCpuTime();
        t.cpuNs += cpu - lastCpu;
        lastCpu = cpu;
        return got;
    }
}
