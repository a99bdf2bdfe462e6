package io.vswitch.engine;

import io.vswitch.vhost.virtio.PacketBatch;

import java.lang.foreign.MemorySegment;

/**
 * A port that leads off this host (a VXLAN tunnel, an AF_PACKET interface) as its worker sees it: receive a
 * burst, transmit frames one by one into a burst that {@link #flush()} sends once per pass. Every method runs on
 * the owning worker's thread only, never blocks, never logs and allocates nothing; what goes wrong is counted
 * on the port's counters with its own reason. Opened by the control plane before the worker starts, closed
 * after it stopped.
 */
interface Uplink extends AutoCloseable {

    /** A descriptor that is readable when frames wait (for interrupt and hybrid workers), or -1. */
    int fd();

    /**
     * Fills {@code batch} (after {@link PacketBatch#reset()}) with up to its capacity of received frames, which
     * stay readable until the next call of {@code receive}; returns how many. Drops are counted here.
     */
    int receive(PacketBatch batch);

    /**
     * Queues the frame made of pieces {@code 0..count-1} of the three arrays ({@code length} bytes in all) for
     * the next {@link #flush()}, copying it; false when it was dropped (and counted) instead.
     */
    boolean transmit(MemorySegment[] segments, long[] offsets, int[] lengths, int count, int length);

    /** Hands what {@link #transmit} queued to the kernel: once per pass. */
    void flush();

    /** Counts accumulated since the last call, published to the counters file (once per pass). */
    void publishCounts();

    /** For log lines: what the port is bound to. */
    String describe();

    @Override
    void close();
}
