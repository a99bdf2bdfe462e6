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

/**
 * The device side of one split virtqueue, in nanoseconds per 64-byte frame, against an in-memory driver
 * in the same thread ({@link QueueDriver}): guest RAM is a memfd mapped once for the driver and once by
 * the device side exactly as the switch maps a frontend's region; the rings live in it.
 *
 * <ul>
 *   <li>{@code tx}: the driver makes {@code burst} frames available (burst 2-byte avail stores, one
 *       release store of avail.idx), the device takes them with {@link VirtQueue#dequeueBurst} (describes
 *       them in place, copies nothing) and returns them with {@link VirtQueue#completeTx} (used ring,
 *       one release store of used.idx).</li>
 *   <li>{@code rx}: the device copies {@code burst} frames from another memfd ("the sending guest") into
 *       the guest's receive buffers with {@link VirtQueue#enqueue}, publishes them with
 *       {@link VirtQueue#flushRx}; the driver gives the same buffers back (burst avail stores + idx).</li>
 *   <li>{@code driverOnly}: the driver's share of both alone, so it can be subtracted.</li>
 * </ul>
 *
 * <p>One invocation handles {@value #PACKETS} frames as {@code 32 / burst} bursts, so the score is per
 * frame whatever the burst. Queues of 256 entries; no EVENT_IDX and no call eventfd (a polling guest).
 * {@code indirect}: each chain is one descriptor of header + frame (TX) or one 2 KiB buffer (RX) when
 * false; an indirect table of two entries (header, frame / header, 2 KiB) when true. {@code mergeable}
 * only changes whether a frame may span buffers; a 64-byte frame never does.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)   // JVM flags: jvm.options, added to every fork by BenchMain
public class VirtQueueBenchmark {
    static final int PACKETS = 32;
    static final int QUEUE_SIZE = 256;
    static final int FRAME = 64;
    static final int BUFFER = 2048;
    static final long RAM = 4L << 20;

    /** A guest transmit queue with its driver. */
    @State(Scope.Thread)
    public static class Tx {
        @Param({"1", "8", "32"})
        public int burst;

        @Param({"false", "true"})
        public boolean indirect;

        GuestRam guest;
        QueueDriver driver;
        VirtQueue queue;
        PacketBatch batch;
        int rounds;

        @Setup(Level.Trial)
        public void setUp() {
            rounds = rounds(burst);
            guest = new GuestRam("bench-tx", RAM);
            driver = new QueueDriver(guest, QUEUE_SIZE);
            driver.txBuffers(FRAME, BUFFER, indirect);
            queue = new VirtQueue("bench tx");
            configure(queue, guest, driver, false);
            batch = new PacketBatch(burst);
        }

        int run() {
            final QueueDriver d = driver;
            final VirtQueue q = queue;
            final PacketBatch b = batch;
            final int n = burst;
            int frames = 0;
            for (int r = rounds; r > 0; r--) {
                d.post(n);
                frames += q.dequeueBurst(b);
                q.completeTx(b);
            }
            return frames;
        }

        @TearDown(Level.Trial)
        public void check() {
            try {
                checkHealthy(queue);
                if (queue.framesTooShort + queue.framesTooLarge + queue.framesTooManyPieces != 0) {
                    throw new IllegalStateException("frames dropped by the device");
                }
                if (driver.usedIdx() != driver.availIdx()) {
                    throw new IllegalStateException("used.idx " + driver.usedIdx() + " != avail.idx " + driver.availIdx());
                }
            } finally {
                queue.unconfigure();
                guest.close();
            }
        }
    }

    /** A guest receive queue with its driver, and a sending guest's memory holding the frames. */
    @State(Scope.Thread)
    public static class Rx {
        @Param({"1", "8", "32"})
        public int burst;

        @Param({"true", "false"})
        public boolean mergeable;

        @Param({"false", "true"})
        public boolean indirect;

        /** Live migration's dirty-page logging: "off" is the normal case, "on" marks every page written. */
        @Param({"off"})
        public String dirtyLog;

        GuestRam guest;
        GuestRam sender;
        java.lang.foreign.Arena logArena;
        QueueDriver driver;
        VirtQueue queue;
        MemorySegment source;
        long[] sourceOffset;
        int next;
        int rounds;
        long failed;

        @Setup(Level.Trial)
        public void setUp() {
            rounds = rounds(burst);
            guest = new GuestRam("bench-rx", RAM);
            driver = new QueueDriver(guest, QUEUE_SIZE);
            driver.rxBuffers(BUFFER, indirect);
            queue = new VirtQueue("bench rx");
            if (dirtyLog.equals("on")) {
                queue.setUsedLogAddress(guest.gpa(driver.usedAddr() - GuestRam.USER_BASE));   // used-ring writes too
            }
            configure(queue, guest, driver, mergeable);
            driver.post(QUEUE_SIZE);
            // the frames come from another guest's transmit buffers, as in the switch: 256 of them, 2 KiB apart
            sender = new GuestRam("bench-rx-sender", RAM);
            sourceOffset = new long[QUEUE_SIZE];
            for (int i = 0; i < QUEUE_SIZE; i++) {
                long at = sender.alloc(BUFFER, 64) + VirtioNetHeader.SIZE;
                sourceOffset[i] = at;
                for (int b = 0; b < FRAME; b++) {
                    sender.ram.set(ValueLayout.JAVA_BYTE, at + b, (byte) (i + b));
                }
            }
            source = sender.memory.segment(0);
            if (dirtyLog.equals("on")) {
                // one bit per 4 KiB page of guest-physical memory, from 0 to the end of the guest's RAM
                long pages = (GuestRam.GUEST_PHYS_BASE + RAM + 4095) >>> io.vswitch.vhost.memory.DirtyLog.PAGE_SHIFT;
                logArena = java.lang.foreign.Arena.ofConfined();
                queue.setDirtyLog(io.vswitch.vhost.memory.DirtyLog.of(logArena.allocate((pages + 63) / 64 * 8, 8)));
            }
        }

        int run() {
            final QueueDriver d = driver;
            final VirtQueue q = queue;
            final MemorySegment src = source;
            final long[] offsets = sourceOffset;
            final int n = burst;
            int at = next;
            int frames = 0;
            for (int r = rounds; r > 0; r--) {
                for (int i = 0; i < n; i++) {
                    if (q.enqueue(src, offsets[at], FRAME)) {
                        frames++;
                    } else {
                        failed++;
                    }
                    at = (at + 1) & (QUEUE_SIZE - 1);
                }
                q.flushRx();
                d.post(n);
            }
            next = at;
            return frames;
        }

        @TearDown(Level.Trial)
        public void check() {
            try {
                checkHealthy(queue);
                if (failed != 0 || queue.rxNoRoom != 0 || queue.rxBufferTooSmall != 0) {
                    throw new IllegalStateException(failed + " enqueues failed (no room " + queue.rxNoRoom
                            + ", too small " + queue.rxBufferTooSmall + ")");
                }
                int expected = (driver.availIdx() - QUEUE_SIZE) & 0xFFFF;
                if (driver.usedIdx() != expected) {
                    throw new IllegalStateException("used.idx " + driver.usedIdx() + " != " + expected);
                }
                if (dirtyLog.equals("on") && !queue.dirtyLog().isMarked(guest.gpa(driver.usedAddr() - GuestRam.USER_BASE))) {
                    throw new IllegalStateException("dirty logging on, but the used ring's page is not marked");
                }
                int[] last = driver.usedElement(expected - 1);
                if (last[1] != VirtioNetHeader.SIZE + FRAME) {
                    throw new IllegalStateException("used.len " + last[1] + " != " + (VirtioNetHeader.SIZE + FRAME));
                }
            } finally {
                queue.unconfigure();
                guest.close();
                sender.close();
                if (logArena != null) {
                    logArena.close();
                }
            }
        }
    }

    /** The driver alone: what {@code tx} and {@code rx} spend on the guest's side of the ring. */
    @State(Scope.Thread)
    public static class DriverOnly {
        @Param({"1", "8", "32"})
        public int burst;

        GuestRam guest;
        QueueDriver driver;
        int rounds;

        @Setup(Level.Trial)
        public void setUp() {
            rounds = rounds(burst);
            guest = new GuestRam("bench-driver", RAM);
            driver = new QueueDriver(guest, QUEUE_SIZE);
        }

        @TearDown(Level.Trial)
        public void close() {
            guest.close();
        }
    }

    static int rounds(int burst) {
        if (burst < 1 || PACKETS % burst != 0) {
            throw new IllegalArgumentException("burst must divide " + PACKETS + ": " + burst);
        }
        return PACKETS / burst;
    }

    static void configure(VirtQueue queue, GuestRam guest, QueueDriver driver, boolean mergeable) {
        String problem = queue.configure(guest.memory, driver.size, driver.descAddr(), driver.availAddr(),
                driver.usedAddr(), false, mergeable, 0);
        if (problem != null) {
            throw new IllegalStateException(problem);
        }
    }

    static void checkHealthy(VirtQueue queue) {
        if (queue.isBroken()) {
            throw new IllegalStateException(queue + " broke: " + queue.fault() + " " + queue.faultDetail());
        }
    }

    @Benchmark
    @OperationsPerInvocation(PACKETS)
    public int tx(Tx s) {
        return s.run();
    }

    @Benchmark
    @OperationsPerInvocation(PACKETS)
    public int rx(Rx s) {
        return s.run();
    }

    @Benchmark
    @OperationsPerInvocation(PACKETS)
    public void driverOnly(DriverOnly s) {
        final QueueDriver d = s.driver;
        final int n = s.burst;
        for (int r = s.rounds; r > 0; r--) {
            d.post(n);
        }
    }
}
