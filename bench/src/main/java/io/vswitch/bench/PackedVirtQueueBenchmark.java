package io.vswitch.bench;

import io.vswitch.vhost.virtio.PacketBatch;
import io.vswitch.vhost.virtio.VirtQueue;
import io.vswitch.protocol.VirtioNetHeader;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.TimeUnit;

import static io.vswitch.bench.VirtQueueBenchmark.BUFFER;
import static io.vswitch.bench.VirtQueueBenchmark.FRAME;
import static io.vswitch.bench.VirtQueueBenchmark.PACKETS;
import static io.vswitch.bench.VirtQueueBenchmark.QUEUE_SIZE;
import static io.vswitch.bench.VirtQueueBenchmark.RAM;

/**
 * {@link VirtQueueBenchmark}'s {@code tx} and {@code rx} on packed rings (one direct descriptor per buffer),
 * with and without IN_ORDER: ns per 64-byte frame, device and in-memory driver together, one thread.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)   // JVM flags: jvm.options, added to every fork by BenchMain
public class PackedVirtQueueBenchmark {

    @State(Scope.Thread)
    public static class Tx {
        @Param({"32"})
        public int burst;

        @Param({"false", "true"})
        public boolean inOrder;

        GuestRam guest;
        PackedQueueDriver driver;
        VirtQueue queue;
        PacketBatch batch;

        @Setup(Level.Trial)
        public void setUp() {
            guest = new GuestRam("bench-ptx", RAM);
            driver = new PackedQueueDriver(guest, QUEUE_SIZE);
            driver.txBuffers(FRAME, BUFFER);
            queue = new VirtQueue("bench packed tx");
            configure(queue, guest, driver, false, inOrder);
            batch = new PacketBatch(burst);
        }

        @TearDown(Level.Trial)
        public void check() {
            try {
                VirtQueueBenchmark.checkHealthy(queue);
                if (!driver.deviceCaughtUp(inOrder)) {
                    throw new IllegalStateException("the device did not return the last buffer");
                }
            } finally {
                queue.unconfigure();
                guest.close();
            }
        }
    }

    @State(Scope.Thread)
    public static class Rx {
        @Param({"32"})
        public int burst;

        @Param({"true"})
        public boolean mergeable;

        GuestRam guest;
        GuestRam sender;
        PackedQueueDriver driver;
        VirtQueue queue;
        MemorySegment source;
        long[] sourceOffset;
        int next;
        long failed;

        @Setup(Level.Trial)
        public void setUp() {
            guest = new GuestRam("bench-prx", RAM);
            driver = new PackedQueueDriver(guest, QUEUE_SIZE);
            driver.rxBuffers(BUFFER);
            queue = new VirtQueue("bench packed rx");
            configure(queue, guest, driver, mergeable, false);
            driver.post(QUEUE_SIZE);
            sender = new GuestRam("bench-prx-sender", RAM);
            sourceOffset = new long[QUEUE_SIZE];
            for (int i = 0; i < QUEUE_SIZE; i++) {
                long at = sender.alloc(BUFFER, 64) + VirtioNetHeader.SIZE;
                sourceOffset[i] = at;
                for (int b = 0; b < FRAME; b++) {
                    sender.ram.set(ValueLayout.JAVA_BYTE, at + b, (byte) (i + b));
                }
            }
            // as the switch reads a frame it took from a guest: through GuestMemory.EVERYTHING at its host address
            // (unchecked guest memory, the default), or through the region's own segment (checked)
            MemorySegment region = sender.memory.segment(0);
            source = sender.memory.dataSegment(0);
            if (source != region) {
                for (int i = 0; i < QUEUE_SIZE; i++) {
                    sourceOffset[i] += region.address();
                }
            }
        }

        @TearDown(Level.Trial)
        public void check() {
            try {
                VirtQueueBenchmark.checkHealthy(queue);
                if (failed != 0 || queue.rxNoRoom != 0) {
                    throw new IllegalStateException(failed + " enqueues failed");
                }
            } finally {
                queue.unconfigure();
                guest.close();
                sender.close();
            }
        }
    }

    static void configure(VirtQueue queue, GuestRam guest, PackedQueueDriver driver, boolean mergeable, boolean inOrder) {
        String problem = queue.configure(guest.memory, driver.size, driver.descAddr(), driver.driverAddr(),
                driver.deviceAddr(), false, mergeable, true, inOrder, 0x8000);
        if (problem != null) {
            throw new IllegalStateException(problem);
        }
    }

    @Benchmark
    @OperationsPerInvocation(PACKETS)
    public int tx(Tx s) {
        final PackedQueueDriver d = s.driver;
        final VirtQueue q = s.queue;
        final PacketBatch b = s.batch;
        final int n = s.burst;
        int frames = 0;
        for (int r = PACKETS / n; r > 0; r--) {
            d.post(n);
            frames += q.dequeueBurst(b);
            q.completeTx(b);
        }
        return frames;
    }

    @Benchmark
    @OperationsPerInvocation(PACKETS)
    public int rx(Rx s) {
        final PackedQueueDriver d = s.driver;
        final VirtQueue q = s.queue;
        final MemorySegment src = s.source;
        final long[] offsets = s.sourceOffset;
        final int n = s.burst;
        int at = s.next;
        int frames = 0;
        for (int r = PACKETS / n; r > 0; r--) {
            for (int i = 0; i < n; i++) {
                if (q.enqueue(src, offsets[at], FRAME)) {
                    frames++;
                } else {
                    s.failed++;
                }
                at = (at + 1) & (QUEUE_SIZE - 1);
            }
            q.flushRx();
            d.post(n);
        }
        s.next = at;
        return frames;
    }
}
