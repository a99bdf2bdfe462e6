package io.vswitch.engine;

import io.vswitch.notify.NotifyStrategy;
import io.vswitch.rings.PacketBufferPool;
import io.vswitch.rings.SpscLongRing;
import io.vswitch.vhost.virtio.PacketBatch;
import org.agrona.concurrent.status.AtomicCounter;

import java.lang.foreign.MemorySegment;

/**
 * One worker's side of the cross-worker hand-off. A frame for a port of another worker is copied once into a
 * buffer of this worker's pool, behind a {@link HandoffHeader}, staged, and sent on an SPSC ring once per
 * pass (or sooner, when a burst's worth is staged for one worker); the other worker copies it into its guest
 * and returns the buffer on a second ring, and this worker reclaims it. No locks: each ring has one producer and
 * one consumer.
 *
 * <pre>
 *   worker A                                          worker B
 *   stage() -> staged[B] --(outbound[B], once a pass)--> inbound[A] -> receive(): deliver, then
 *   pool.reclaim() <-------(returnsFromPeers[B])--------- returnsToOwner[A] <- buffer handles back
 * </pre>
 */
final class Handoff {
    private final PacketBufferPool pool;
    private final SpscLongRing[] outbound;
    private final SpscLongRing[] inbound;
    private final SpscLongRing[] returnsToOwner;
    private final SpscLongRing[] returnsFromPeers;
    private final long[][] staged;
    private final int[] stagedCount;
    private final long[] handles;
    private final AtomicCounter crossWorkerFrames;
    private PacketBufferPool[] peerPools;
    private NotifyStrategy[] peerNotify;

    Handoff(PacketBufferPool pool, int workers, int burst, AtomicCounter crossWorkerFrames) {
        this.pool = pool;
        this.outbound = new SpscLongRing[workers];
        this.inbound = new SpscLongRing[workers];
        this.returnsToOwner = new SpscLongRing[workers];
        this.returnsFromPeers = new SpscLongRing[workers];
        this.staged = new long[workers][burst];
        this.stagedCount = new int[workers];
        this.handles = new long[burst];
        this.crossWorkerFrames = crossWorkerFrames;
    }

    /** Wires the rings to {@code other}: frames go out on {@code out}, their buffers come back on {@code back}. */
    void connect(int self, int otherId, Handoff other, SpscLongRing out, SpscLongRing back) {
        outbound[otherId] = out;
        returnsFromPeers[otherId] = back;
        other.inbound[self] = out;
        other.returnsToOwner[self] = back;
    }

    void setPeers(PacketBufferPool[] pools, NotifyStrategy[] notify) {
        this.peerPools = pools;
        this.peerNotify = notify;
    }

    PacketBufferPool pool() {
        return pool;
    }

    /** Whether another worker has sent frames not taken yet (a sleeping worker must not sleep then). */
    boolean hasInbound() {
        for (SpscLongRing ring : inbound) {
            if (ring != null && !ring.isEmpty()) {
                return true;
            }
        }
        return false;
    }

    /**
     * Copies frame {@code frame} of {@code b}, or when {@code b} is null the first {@code length} bytes of
     * {@code flat} (a frame finished in software), for {@code worker}, with the receive pair the sender picked
     * ({@link HandoffHeader#NO_PAIR}: none) and its flow hash; a frame that finds no buffer is counted on its port.
     */
    void stageFlat(int worker, SwitchPort[] allPorts, SwitchPort src, int dstIndex, int pair, int hash, PacketBatch b,
                   int frame, MemorySegment flat, int length, int vlan, boolean tagged) {
        SwitchPort dropOn = dstIndex >= 0 ? allPorts[dstIndex] : src;
        if (length + HandoffHeader.SIZE > pool.bufferSize()) {
            dropOn.counters.dropNoBuffers.increment();   // several workers may count on one port: atomic
            return;
        }
        if (stagedCount[worker] == staged[worker].length) {
            // a pass can stage more than a burst for one worker (several queues, a flood): what is staged goes now
            send(worker, allPorts);
        }
        long handle = pool.acquire();
        if (handle == PacketBufferPool.NO_BUFFER) {
            dropOn.counters.dropNoBuffers.increment();
            return;
        }
        MemorySegment memory = pool.memory();
        long at = pool.offset(handle);
        HandoffHeader.write(memory, at, length, dstIndex, src.index, vlan, tagged, hash, pair);
        try {
            if (b != null) {
                b.copyFrame(frame, memory, at + HandoffHeader.SIZE);   // reads the source guest's memory: may fail
            } else {
                MemorySegment.copy(flat, 0, memory, at + HandoffHeader.SIZE, length);
            }
        } catch (RuntimeException e) {
            pool.release(handle);   // not staged: give it back, then let the pass attribute the failure
            throw e;
        }
        staged[worker][stagedCount[worker]++] = handle;
    }

    /** Sends what this pass staged, once per destination worker, and wakes it; what does not fit is counted. */
    void sendStaged(SwitchPort[] allPorts) {
        for (int w = 0; w < outbound.length; w++) {
            if (stagedCount[w] > 0) {
                send(w, allPorts);
            }
        }
    }

    /** Sends the frames staged for worker {@code w} and wakes it; what its ring has no room for is counted. */
    private void send(int w, SwitchPort[] allPorts) {
        int count = stagedCount[w];
        int sent = outbound[w].offer(staged[w], 0, count);
        for (int i = sent; i < count; i++) {
            long handle = staged[w][i];
            long at = pool.offset(handle);
            int dst = HandoffHeader.destination(pool.memory(), at);
            allPorts[dst >= 0 ? dst : HandoffHeader.source(pool.memory(), at)].counters.dropNoBuffers.increment();
            pool.release(handle);
        }
        crossWorkerFrames.getAndAddRelease(sent);
        stagedCount[w] = 0;
        if (sent > 0 && peerNotify != null) {
            peerNotify[w].wake();
        }
    }

    /** Delivers the frames other workers sent, through {@code forwarding}, and returns their buffers. */
    int receive(Forwarding forwarding) {
        int work = 0;
        final long[] h = handles;
        for (int w = 0; w < inbound.length; w++) {
            SpscLongRing ring = inbound[w];
            if (ring == null) {
                continue;
            }
            int n = ring.poll(h, 0, h.length);
            if (n == 0) {
                continue;
            }
            PacketBufferPool owner = peerPools[w];
            MemorySegment memory = owner.memory();
            for (int i = 0; i < n; i++) {
                long at = owner.offset(h[i]);
                forwarding.deliverHandedOver(w, memory, at + HandoffHeader.SIZE, HandoffHeader.length(memory, at),
                        HandoffHeader.destination(memory, at), HandoffHeader.vlan(memory, at), HandoffHeader.tagged(memory, at),
                        HandoffHeader.pair(memory, at), HandoffHeader.hash(memory, at));
            }
            // the ring back is as large as the owner's pool, so it always has room
            returnsToOwner[w].offer(h, 0, n);
            work += n;
        }
        return work;
    }

    /** Takes back this worker's buffers that other workers are done with. */
    void reclaim() {
        for (SpscLongRing back : returnsFromPeers) {
            if (back != null) {
                pool.reclaim(back);
            }
        }
    }

    /** Workers this one can hand frames to (their ids; null entries are this worker). */
    boolean connectedTo(int worker) {
        return outbound[worker] != null;
    }

    int workers() {
        return outbound.length;
    }
}
