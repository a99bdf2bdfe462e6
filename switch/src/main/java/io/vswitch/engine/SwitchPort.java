package io.vswitch.engine;

import io.vswitch.vhost.VhostUserPort;
import io.vswitch.vhost.net.VirtioNetDevice;

/**
 * A port as the data plane sees it: its device (or, for a port off the host, its {@link Uplink}; then
 * {@code vhost} and {@code device} are null), the worker that owns it, its limits and its counters.
 *
 * <p>Multiqueue: a port whose queue pairs live on more than one worker ({@code workers:}) has one
 * {@code SwitchPort} per such worker, its <em>shards</em>, which share index, device and counters and differ in
 * the worker, the pairs it owns ({@link #ownedPairs}) and the worker-owned fields below. The switch's table
 * holds the first shard ({@link #primary}); {@link #shardOfPair} maps a pair to the shard (and so the worker)
 * that owns it. Such a port is {@link #spread}: the sender of a frame picks its receive pair and hands the frame
 * to that pair's worker. A port whose pairs all live on one worker has one shard and picks on that worker.
 */
public final class SwitchPort {
    final int index;
    final String name;
    final VhostUserPort vhost;
    public final VirtioNetDevice device;
    final Uplink uplink;
    final int worker;
    /** Longest frame accepted from the guest; changed live by a command on the port's worker. */
    int maxFrame;
    public final PortCounters counters;
    /**
     * A port served by several workers (an afpacket port with {@code workers:}, one socket each in a
     * PACKET_FANOUT group): the member polled by worker w at {@code [w]}, null where w does not serve it; the
     * members share this port's index, name, settings and counters. Null for a port of one worker.
     */
    SwitchPort[] fanout;
    /** Cross-connect peer, or null. */
    public SwitchPort peer;
    /** Owned by the port's worker: was the device running at its last pass (to act on link changes once). */
    public boolean seenRunning;
    /** Owned by the port's worker: the current queue fault was counted and reported. */
    boolean faultReported;
    /** Owned by the port's worker: the device generation it last brought up. */
    int seenGeneration;
    /** The port's position in its worker's list, the epoll data word of its kick. */
    int localIndex;

    // ---- multiqueue (see the class comment)
    /** Queue pairs the port's device serves (1 for an uplink). */
    final int pairs;
    /** The pairs this shard's worker owns: polls their transmit queue, fills their receive queue (bit p: pair p). */
    final int ownedPairs;
    /** The shard that is in the switch's table (this one for a port with one shard). */
    final SwitchPort primary;
    /** Pair to the shard owning it, when the pairs live on more than one worker; null otherwise. */
    SwitchPort[] shardOfPair;
    /** True when the pairs live on more than one worker ({@link #shardOfPair} is set). */
    boolean spread;
    /** Per-pair counters (null with a single pair); entry p is written only by pair p's worker. */
    final QueueCounters[] queueCounters;
    /** Owned by the shard's worker: kick duplicates of the transmit queues it watches, by pair. */
    final io.vswitch.sys.EventFd[] kicks;
    /** Owned by the shard's worker: its pairs with a receive (transmit) queue in use at its last link up. */
    int seenRxMask;
    int seenTxMask;
    /** Owned by the shard's worker: per-pair frames and bytes put into receive queues since the last publish. */
    final long[] pendingQueueTxPackets;
    final long[] pendingQueueTxBytes;

    // per-frame counts, owned by the port's worker and published to the counters once per pass
    long pendingTxPackets;
    long pendingTxBytes;
    long pendingRxRingFull;
    long pendingRxTooSmall;
    long pendingQueueFault;
    long pendingPortDown;
    long pendingHairpin;

    /** The last reason the worker refused a frame's virtio-net header, for housekeeping to log (an enum constant: no allocation). */
    private volatile io.vswitch.vhost.net.offload.OffloadRule badOffload;

    /** Worker: a frame's header was refused for {@code rule}. */
    void reportBadOffload(io.vswitch.vhost.net.offload.OffloadRule rule) {
        badOffload = rule;
    }

    /** Housekeeping: the reason reported since the last call, or null. */
    io.vswitch.vhost.net.offload.OffloadRule takeBadOffload() {
        io.vswitch.vhost.net.offload.OffloadRule rule = badOffload;
        if (rule != null) {
            badOffload = null;
        }
        return rule;
    }

    /**
     * Publishes what the worker counted since the last pass (one release store per counter that moved; an atomic
     * add on a spread port, whose shards' workers share the port's counters).
     */
    void publishCounts() {
        if (pendingTxPackets != 0) {
            add(counters.txPackets, pendingTxPackets);
            add(counters.txBytes, pendingTxBytes);
            pendingTxPackets = 0;
            pendingTxBytes = 0;
            if (queueCounters != null) {
                for (int m = ownedPairs; m != 0; m &= m - 1) {
                    int p = Integer.numberOfTrailingZeros(m);
                    if (pendingQueueTxPackets[p] != 0) {
                        queueCounters[p].txPackets.getAndAddRelease(pendingQueueTxPackets[p]);
                        queueCounters[p].txBytes.getAndAddRelease(pendingQueueTxBytes[p]);
                        pendingQueueTxPackets[p] = 0;
                        pendingQueueTxBytes[p] = 0;
                    }
                }
            }
        }
        if (pendingRxRingFull != 0) {
            add(counters.dropRxRingFull, pendingRxRingFull);
            pendingRxRingFull = 0;
        }
        if (pendingRxTooSmall != 0) {
            add(counters.dropRxBufferTooSmall, pendingRxTooSmall);
            pendingRxTooSmall = 0;
        }
        if (pendingQueueFault != 0) {
            add(counters.dropQueueFault, pendingQueueFault);
            pendingQueueFault = 0;
        }
        if (pendingPortDown != 0) {
            add(counters.dropPortDown, pendingPortDown);
            pendingPortDown = 0;
        }
        if (pendingHairpin != 0) {
            add(counters.dropHairpin, pendingHairpin);
            pendingHairpin = 0;
        }
    }

    /** Adds to a port counter: a release store when this shard is the counter's only writer, else atomically. */
    void add(org.agrona.concurrent.status.AtomicCounter counter, long delta) {
        if (spread) {
            counter.getAndAdd(delta);
        } else {
            counter.getAndAddRelease(delta);
        }
    }

    /** Counts what the worker took from pair {@code pair}'s transmit queue (the pair's owner only). */
    void countQueueRx(int pair, long frames, long bytes) {
        if (queueCounters != null && frames != 0) {
            queueCounters[pair].rxPackets.getAndAddRelease(frames);
            queueCounters[pair].rxBytes.getAndAddRelease(bytes);
        }
    }

    /** True when a queue this shard uses has faulted (allocation-free). */
    boolean queueBroken() {
        for (int m = seenTxMask; m != 0; m &= m - 1) {
            if (device.txQueue(Integer.numberOfTrailingZeros(m)).isBroken()) {
                return true;
            }
        }
        for (int m = seenRxMask; m != 0; m &= m - 1) {
            if (device.rxQueue(Integer.numberOfTrailingZeros(m)).isBroken()) {
                return true;
            }
        }
        return false;
    }

    /** Every shard of the port (just this one unless its pairs are spread over workers). */
    java.util.List<SwitchPort> shards() {
        if (shardOfPair == null) {
            return java.util.List.of(this);
        }
        java.util.List<SwitchPort> all = new java.util.ArrayList<>();
        for (SwitchPort s : shardOfPair) {
            if (!all.contains(s)) {
                all.add(s);
            }
        }
        return all;
    }

    /**
     * Access VLAN (frames untagged on the port, in this VLAN inside), or -1. Changed live only by a command on
     * the port's worker, which is the one that decides every delivery into the port (other workers' reads are
     * a shortcut that the owner checks again).
     */
    int accessVlan;
    /** Trunk: the VLANs allowed, tagged on the port (one bit per VLAN id); null when not a trunk. As accessVlan. */
    long[] trunk;

    public SwitchPort(int index, String name, VhostUserPort vhost, int worker, int mtu, PortCounters counters) {
        this(index, name, vhost, worker, mtu, counters, -1, null);
    }

    SwitchPort(int index, String name, VhostUserPort vhost, int worker, int mtu, PortCounters counters,
               int accessVlan, java.util.List<Integer> trunkVlans) {
        this(index, name, vhost, null, worker, mtu, counters, accessVlan, trunkVlans);
    }

    SwitchPort(int index, String name, VhostUserPort vhost, Uplink uplink, int worker, int mtu, PortCounters counters,
               int accessVlan, java.util.List<Integer> trunkVlans) {
        this(index, name, vhost, uplink, worker, mtu, counters, accessVlan, trunkVlans, null, -1, null);
    }

    /**
     * A port (or the first shard of a spread one, {@code primary} null) with per-pair counters
     * {@code queueCounters} (null for one pair), owning the pairs of {@code ownedPairs} (-1: all).
     */
    SwitchPort(int index, String name, VhostUserPort vhost, Uplink uplink, int worker, int mtu, PortCounters counters,
               int accessVlan, java.util.List<Integer> trunkVlans, QueueCounters[] queueCounters, int ownedPairs,
               SwitchPort primary) {
        this.pairs = vhost == null ? 1 : vhost.device().queuePairs();
        this.ownedPairs = ownedPairs == -1 ? (int) ((1L << pairs) - 1) : ownedPairs;
        this.primary = primary == null ? this : primary;
        this.queueCounters = queueCounters;
        this.kicks = new io.vswitch.sys.EventFd[pairs];
        this.pendingQueueTxPackets = new long[pairs];
        this.pendingQueueTxBytes = new long[pairs];
        this.index = index;
        this.accessVlan = accessVlan;
        this.trunk = trunkBits(trunkVlans);
        this.name = name;
        this.vhost = vhost;
        this.device = vhost == null ? null : vhost.device();
        this.uplink = uplink;
        this.worker = worker;
        this.maxFrame = mtu + 18;
        if (device != null) {
            device.setMaxMtu(mtu);   // what NET_SET_MTU may ask for: the guest's MTU never exceeds the port's
        }
        this.counters = counters;
    }

    /** One bit per VLAN id of {@code trunkVlans}, or null for no trunk. */
    static long[] trunkBits(java.util.List<Integer> trunkVlans) {
        if (trunkVlans == null) {
            return null;
        }
        long[] bits = new long[64];
        for (int vid : trunkVlans) {
            bits[vid >>> 6] |= 1L << (vid & 63);
        }
        return bits;
    }

    /**
     * Whether frames of {@code vlan} leave through this port. VLAN 0 is the untagged domain of ports without
     * VLAN settings, which pass frames (tagged or not) unchanged.
     */
    boolean carries(int vlan) {
        if (trunk != null) {
            return vlan > 0 && (trunk[vlan >>> 6] & (1L << (vlan & 63))) != 0;
        }
        return accessVlan > 0 ? vlan == accessVlan : vlan == 0;
    }

    /** Another shard of {@code primary}'s port: on {@code worker}, owning {@code ownedPairs}. */
    static SwitchPort shard(SwitchPort primary, int worker, int ownedPairs) {
        SwitchPort s = new SwitchPort(primary.index, primary.name, primary.vhost, null, worker, primary.maxFrame - 18,
                primary.counters, primary.accessVlan, null, primary.queueCounters, ownedPairs, primary);
        s.trunk = primary.trunk;
        return s;
    }

    @Override
    public String toString() {
        return name;
    }
}
