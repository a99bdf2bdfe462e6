package io.vswitch.engine;

import io.vswitch.rings.PacketBufferPool;
import io.vswitch.rings.SpscLongRing;
import org.agrona.concurrent.status.AtomicCounter;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The sending side of the cross-worker hand-off. A pass may stage more frames for one worker than a burst:
 * several queues or ports of the sender each bring a burst for the same other worker. Those frames must all
 * go on the ring (the stage is sent when full), not be dropped as if no buffer were free. What the ring itself
 * has no room for is counted as drop_no_buffers on the destination port, and its buffers return to the pool.
 */
class HandoffTest {
    private static final int BURST = 4;
    private static final int BUFFERS = 64;

    @TempDir
    Path dir;
    private CountersFile counters;
    private final Arena arena = Arena.ofConfined();
    private SwitchPort src;
    private SwitchPort dst;
    private AtomicCounter crossWorker;

    @BeforeEach
    void setUp() throws IOException {
        counters = CountersFile.create(dir.resolve("counters"), 256);
        src = new SwitchPort(0, "src", null, 0, 1500, new PortCounters(counters, "src"));
        dst = new SwitchPort(1, "dst", null, 1, 1500, new PortCounters(counters, "dst"));
        crossWorker = counters.newCounter("worker", "0", "cross_worker_frames");
    }

    @AfterEach
    void tearDown() {
        counters.close();
        arena.close();
    }

    @Test
    void morePerPassThanABurstAllGoOnTheRing() {
        PacketBufferPool pool = pool();
        Handoff sender = new Handoff(pool, 2, BURST, crossWorker);
        Handoff receiver = new Handoff(pool(), 2, BURST, counters.newCounter("worker", "1", "cross_worker_frames"));
        SpscLongRing out = new SpscLongRing(64);
        sender.connect(0, 1, receiver, out, new SpscLongRing(64));

        int frames = 3 * BURST + 1;   // three queues' bursts and one more frame, in one pass
        for (int i = 0; i < frames; i++) {
            stage(sender, i);
        }
        sender.sendStaged(new SwitchPort[]{src, dst});

        assertEquals(0, dst.counters.dropNoBuffers.get(), "drop_no_buffers on the destination");
        assertEquals(0, src.counters.dropNoBuffers.get(), "drop_no_buffers on the source");
        assertEquals(frames, out.size(), "frames on the ring to worker 1");
        assertEquals(frames, crossWorker.get(), "cross_worker_frames");
        // in order: each frame's first byte is its number
        for (int i = 0; i < frames; i++) {
            long handle = out.poll();
            assertEquals(i, pool.memory().get(ValueLayout.JAVA_BYTE, pool.offset(handle) + HandoffHeader.SIZE), "frame " + i);
        }
    }

    @Test
    void whatTheRingHasNoRoomForIsCountedAndItsBuffersReturn() {
        PacketBufferPool pool = pool();
        Handoff sender = new Handoff(pool, 2, BURST, crossWorker);
        Handoff receiver = new Handoff(pool(), 2, BURST, counters.newCounter("worker", "1", "cross_worker_frames"));
        SpscLongRing out = new SpscLongRing(BURST * 2);
        sender.connect(0, 1, receiver, out, new SpscLongRing(64));

        int frames = 3 * BURST;
        for (int i = 0; i < frames; i++) {
            stage(sender, i);
        }
        sender.sendStaged(new SwitchPort[]{src, dst});

        assertEquals(out.capacity(), out.size(), "the ring is full");
        assertEquals(frames - out.capacity(), dst.counters.dropNoBuffers.get(), "drop_no_buffers on the destination");
        assertEquals(out.capacity(), crossWorker.get(), "cross_worker_frames");
        assertEquals(out.capacity(), pool.inUse(), "buffers out of the pool: only those on the ring");
    }

    private void stage(Handoff sender, int i) {
        MemorySegment frame = arena.allocate(64);
        frame.set(ValueLayout.JAVA_BYTE, 0, (byte) i);
        sender.stageFlat(1, new SwitchPort[]{src, dst}, src, dst.index, HandoffHeader.NO_PAIR, 0, null, 0, frame, 64,
                -1, false);
    }

    private PacketBufferPool pool() {
        long size = (HandoffHeader.SIZE + 1518 + 63) & ~63L;
        return new PacketBufferPool(arena.allocate(size * BUFFERS, 64), size, BUFFERS);
    }
}
