package io.vswitch.bench;

import io.vswitch.rings.SpscLongRing;
import java.nio.ByteBuffer;
import java.util.concurrent.TimeUnit;
import org.agrona.BufferUtil;
import org.agrona.MutableDirectBuffer;
import org.agrona.concurrent.MessageHandler;
import org.agrona.concurrent.UnsafeBuffer;
import org.agrona.concurrent.ringbuffer.OneToOneRingBuffer;
import org.agrona.concurrent.ringbuffer.RecordDescriptor;
import org.agrona.concurrent.ringbuffer.RingBufferDescriptor;
import org.jctools.queues.MessagePassingQueue;
import org.jctools.queues.SpscArrayQueue;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Group;
import org.openjdk.jmh.annotations.GroupThreads;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * SPSC hand-off of packet-buffer handles between two threads, one producer and one consumer,
 * in bursts of 1 and 32, through three rings of 1024 slots:
 *
 * <ul>
 *   <li>{@code vswitch}: our {@link SpscLongRing}, single-element {@code offer/poll} for burst 1,
 *       the array burst API otherwise;</li>
 *   <li>{@code jctools}: JCTools {@link SpscArrayQueue} of preallocated {@code Long}s (no boxing
 *       in the loop), {@code offer/poll} for burst 1, {@code fill/drain} with a limit otherwise;</li>
 *   <li>{@code agrona}: Agrona {@link OneToOneRingBuffer} with 8-byte messages, written in place
 *       with {@code tryClaim/commit} and read with {@code read(handler, burst)}.</li>
 * </ul>
 *
 * <p>The number to read is {@code packets}: handles taken out by the consumer per second. The
 * group's own score counts calls of both methods, which includes failed offers and empty polls,
 * and means nothing.
 *
 * <p>{@code idle} is what a thread does after a call that moved nothing (ring full or empty):
 * {@code none} calls again at once, the harshest case, where the idle side hammers the other
 * side's cache lines; {@code pause} executes one {@link Thread#onSpinWait()} (x86 PAUSE) first,
 * which is what a busy-polling switch worker does, or close to it, since it goes on to poll
 * its other queues rather than the same ring again.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
// Agrona 2 reaches for jdk.internal.misc.Unsafe and JCTools for sun.misc.Unsafe.
@Fork(1)   // JVM flags: jvm.options, added to every fork by BenchMain
@State(Scope.Group)
public class RingBenchmark {

    static final int CAPACITY = 1024;
    /** Burst sizes above this are not supported by the per-thread arrays. */
    static final int MAX_BURST = 32;
    static final int MSG_TYPE = 1;

    @Param({"1", "32"})
    public int burst;

    @Param({"none", "pause"})
    public String idle;

    boolean pause;

    SpscLongRing vswitchRing;
    SpscArrayQueue<Long> jctoolsQueue;
    OneToOneRingBuffer agronaRing;
    UnsafeBuffer agronaBuffer;

    @Setup(Level.Trial)
    public void createRings() {
        if (burst < 1 || burst > MAX_BURST) {
            throw new IllegalArgumentException("burst must be in [1, " + MAX_BURST + "]: " + burst);
        }
        pause = switch (idle) {
            case "none" -> false;
            case "pause" -> true;
            default -> throw new IllegalArgumentException("idle must be none or pause: " + idle);
        };
        vswitchRing = new SpscLongRing(CAPACITY);
        jctoolsQueue = new SpscArrayQueue<>(CAPACITY);
        // A record is an 8-byte header plus the 8-byte handle, so 16 bytes a slot.
        final int recordLength = RecordDescriptor.HEADER_LENGTH + Long.BYTES;
        final int bytes = CAPACITY * recordLength + RingBufferDescriptor.TRAILER_LENGTH;
        final ByteBuffer memory = BufferUtil.allocateDirectAligned(bytes, 128);
        agronaBuffer = new UnsafeBuffer(memory);
        agronaRing = new OneToOneRingBuffer(agronaBuffer);
    }

    /** Handles the producer sends; each thread has its own, so nothing here is shared. */
    @State(Scope.Thread)
    public static class ProducerState implements MessagePassingQueue.Supplier<Long> {
        final long[] handles = new long[MAX_BURST];
        /** Boxed once so JCTools' queue moves references, not fresh allocations. */
        final Long[] boxedHandles = new Long[MAX_BURST];
        int next;

        @Setup(Level.Trial)
        public void fill() {
            for (int i = 0; i < MAX_BURST; i++) {
                handles[i] = 1000 + i; // past Long's small-value cache, so they are distinct objects
                boxedHandles[i] = Long.valueOf(handles[i]);
            }
        }

        long nextHandle() {
            final int i = next;
            next = (i + 1) & (MAX_BURST - 1);
            return handles[i];
        }

        @Override
        public Long get() {
            final int i = next;
            next = (i + 1) & (MAX_BURST - 1);
            return boxedHandles[i];
        }
    }

    /**
     * What the consumer does with a handle: add it to a field of a state object, a store the
     * JIT must keep, so no read of a handle can be optimised away.
     */
    @State(Scope.Thread)
    public static class ConsumerState implements MessagePassingQueue.Consumer<Long>, MessageHandler {
        final long[] handles = new long[MAX_BURST];
        long sum;

        @Override
        public void accept(Long handle) {
            sum += handle;
        }

        @Override
        public void onMessage(int msgTypeId, MutableDirectBuffer buffer, int index, int length) {
            sum += buffer.getLong(index);
        }
    }

    /** Packets that reached the consumer; JMH reports it per second. */
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    @State(Scope.Thread)
    public static class Moved {
        public long packets;

        @Setup(Level.Iteration)
        public void reset() {
            packets = 0;
        }
    }

    // ---- vswitch SpscLongRing ----

    @Benchmark
    @Group("vswitch")
    @GroupThreads(1)
    public void vswitchProduce(ProducerState p) {
        final SpscLongRing ring = vswitchRing;
        final int n;
        if (burst == 1) {
            n = ring.offer(p.nextHandle()) ? 1 : 0;
        } else {
            n = ring.offer(p.handles, 0, burst);
        }
        idleIfNothingMoved(n);
    }

    @Benchmark
    @Group("vswitch")
    @GroupThreads(1)
    public void vswitchConsume(ConsumerState c, Moved moved) {
        final SpscLongRing ring = vswitchRing;
        int n = 0;
        if (burst == 1) {
            final long handle = ring.poll();
            if (handle != SpscLongRing.EMPTY) {
                c.sum += handle;
                n = 1;
            }
        } else {
            final long[] handles = c.handles;
            n = ring.poll(handles, 0, burst);
            long sum = 0;
            for (int i = 0; i < n; i++) {
                sum += handles[i];
            }
            c.sum += sum;
        }
        moved.packets += n;
        idleIfNothingMoved(n);
    }

    // ---- JCTools SpscArrayQueue<Long> ----

    @Benchmark
    @Group("jctools")
    @GroupThreads(1)
    public void jctoolsProduce(ProducerState p) {
        final SpscArrayQueue<Long> queue = jctoolsQueue;
        final int n;
        if (burst == 1) {
            n = queue.offer(p.get()) ? 1 : 0;
        } else {
            n = queue.fill(p, burst);
        }
        idleIfNothingMoved(n);
    }

    @Benchmark
    @Group("jctools")
    @GroupThreads(1)
    public void jctoolsConsume(ConsumerState c, Moved moved) {
        final SpscArrayQueue<Long> queue = jctoolsQueue;
        int n = 0;
        if (burst == 1) {
            final Long handle = queue.poll();
            if (handle != null) {
                c.sum += handle;
                n = 1;
            }
        } else {
            n = queue.drain(c, burst);
        }
        moved.packets += n;
        idleIfNothingMoved(n);
    }

    // ---- Agrona OneToOneRingBuffer ----

    @Benchmark
    @Group("agrona")
    @GroupThreads(1)
    public void agronaProduce(ProducerState p) {
        final OneToOneRingBuffer ring = agronaRing;
        final UnsafeBuffer buffer = agronaBuffer;
        final int max = burst;
        int n = 0;
        while (n < max) {
            final int index = ring.tryClaim(MSG_TYPE, Long.BYTES);
            if (index < 0) {
                break; // full
            }
            buffer.putLong(index, p.nextHandle());
            ring.commit(index);
            n++;
        }
        idleIfNothingMoved(n);
    }

    @Benchmark
    @Group("agrona")
    @GroupThreads(1)
    public void agronaConsume(ConsumerState c, Moved moved) {
        final int n = agronaRing.read(c, burst);
        moved.packets += n;
        idleIfNothingMoved(n);
    }

    private void idleIfNothingMoved(int moved) {
        if (moved == 0 && pause) {
            Thread.onSpinWait();
        }
    }
}
