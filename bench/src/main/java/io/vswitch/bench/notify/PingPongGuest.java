package io.vswitch.bench.notify;

import io.vswitch.testing.TestFrontend;
import io.vswitch.protocol.SplitRing;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;

/**
 * One guest of the ping-pong, as a spin-polling driver (what a DPDK guest does): the vhost-user session and
 * rings come from the project's {@link TestFrontend}; the data path here is allocation-free, with one fixed
 * buffer per descriptor id.
 *
 * <p>Kicks: {@link TestFrontend#publish} writes avail.idx and then kicks the device's kick eventfd exactly when
 * the device asks for it ({@code VRING_USED_F_NO_NOTIFY} clear, or with EVENT_IDX when avail_event says so).
 * That kick is what wakes an interrupt or hybrid worker. Calls (device to guest) are not wanted: the guest
 * spins on its used rings, so it sets {@code VRING_AVAIL_F_NO_INTERRUPT} (or, with EVENT_IDX, keeps
 * used_event half a ring-index space ahead).
 */
final class PingPongGuest implements AutoCloseable {
    static final int QUEUE_SIZE = 256;
    static final int BUFFER = 2048;
    static final int HEADER = TestFrontend.HEADER;

    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED;
    private static final int RX = TestFrontend.RX;
    private static final int TX = TestFrontend.TX;

    private final TestFrontend frontend;
    private final MemorySegment ram;
    private final boolean eventIdx;
    private final long txBuffers;
    private final long rxBuffers;
    private final long rxUsed;
    /** Frames published on TX, and used entries consumed on RX (both mod 2^16, like the ring indices). */
    private int txPublished;
    private int rxSeen;

    private PingPongGuest(TestFrontend frontend, boolean eventIdx) throws IOException {
        this.frontend = frontend;
        this.eventIdx = eventIdx;
        frontend.setUp();
        this.ram = frontend.ram();
        this.txBuffers = frontend.allocate((long) QUEUE_SIZE * BUFFER);
        this.rxBuffers = frontend.allocate((long) QUEUE_SIZE * BUFFER);
        this.rxUsed = frontend.usedUserAddr(RX) - TestFrontend.USER_BASE;
        // a polling guest: no interrupts (calls) on either queue
        frontend.setAvailFlags(RX, SplitRing.AVAIL_F_NO_INTERRUPT);
        frontend.setAvailFlags(TX, SplitRing.AVAIL_F_NO_INTERRUPT);
        pushUsedEvents();
        for (int id = 0; id < QUEUE_SIZE; id++) {
            frontend.writeDescriptor(RX, id, rxBuffers + (long) id * BUFFER, BUFFER, SplitRing.DESC_F_WRITE, 0);
            frontend.publish(RX, id);
        }
    }

    /** Connects to a server-role port at {@code socket} (retrying while the switch starts) and sets both queues up. */
    static PingPongGuest attach(Path socket, boolean eventIdx, long timeoutMillis) throws IOException, InterruptedException {
        TestFrontend.Options options = new TestFrontend.Options()
                .queueSize(QUEUE_SIZE).memorySize(4L << 20).eventIdx(eventIdx);
        long deadline = System.currentTimeMillis() + timeoutMillis;
        while (true) {
            try {
                TestFrontend frontend = TestFrontend.connect(socket, options);
                try {
                    return new PingPongGuest(frontend, eventIdx);
                } catch (IOException | RuntimeException | Error e) {
                    frontend.close();
                    throw e;
                }
            } catch (RuntimeException e) {
                if (System.currentTimeMillis() > deadline) {
                    throw new IOException("cannot attach to " + socket + ": " + e.getMessage(), e);
                }
                Thread.sleep(100);
            }
        }
    }

    private void pushUsedEvents() {
        if (eventIdx) {
            frontend.setUsedEvent(RX, (rxSeen + 0x8000) & 0xFFFF);
            frontend.setUsedEvent(TX, (txPublished + 0x8000) & 0xFFFF);
        }
    }

    /**
     * Transmits {@code length} bytes of {@code frame} (virtio-net header included) in one descriptor; kicks if
     * the device asks for kicks.
     */
    void send(byte[] frame, int length) {
        while (((txPublished - frontend.usedIdx(TX)) & 0xFFFF) >= QUEUE_SIZE) {
            Thread.onSpinWait();   // every TX descriptor still with the device (never happens at ping-pong rates)
        }
        int id = txPublished & (QUEUE_SIZE - 1);
        long gpa = txBuffers + (long) id * BUFFER;
        MemorySegment.copy(frame, 0, ram, ValueLayout.JAVA_BYTE, gpa - TestFrontend.GUEST_PHYS_BASE, length);
        frontend.writeDescriptor(TX, id, gpa, length, 0, 0);
        frontend.publish(TX, id);
        txPublished = (txPublished + 1) & 0xFFFF;
        if ((txPublished & 0x0FFF) == 0) {
            pushUsedEvents();
        }
    }

    /**
     * Takes the next received frame, if any: copies it (virtio-net header included) into {@code into} and
     * returns its length, or -1 when the RX used ring has nothing new. The buffer goes straight back to the device.
     */
    int poll(byte[] into) {
        if (frontend.usedIdx(RX) == rxSeen) {
            return -1;
        }
        long at = rxUsed + SplitRing.USED_RING + (long) SplitRing.USED_ELEM_SIZE * (rxSeen & (QUEUE_SIZE - 1));
        int id = ram.get(U32, at + SplitRing.USED_ELEM_ID);
        int length = ram.get(U32, at + SplitRing.USED_ELEM_LEN);
        rxSeen = (rxSeen + 1) & 0xFFFF;
        if (id < 0 || id >= QUEUE_SIZE) {
            throw new IllegalStateException("device used RX descriptor " + id);
        }
        int n = Math.min(length, Math.min(into.length, BUFFER));
        MemorySegment.copy(ram, ValueLayout.JAVA_BYTE, rxBuffers + (long) id * BUFFER - TestFrontend.GUEST_PHYS_BASE,
                into, 0, n);
        frontend.publish(RX, id);
        if ((rxSeen & 0x0FFF) == 0) {
            pushUsedEvents();
        }
        return n;
    }

    @Override
    public void close() {
        frontend.close();
    }
}
