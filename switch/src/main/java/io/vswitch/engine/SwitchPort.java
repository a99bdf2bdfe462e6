package io.vswitch.engine;

import io.vswitch.vhost.VhostUserPort;
import io.vswitch.vhost.net.VirtioNetDevice;

/**
 * A port as the data plane sees it: its device (or, for a port off the host, its {@link Uplink}; then
 * {@code vhost} and {@code device} are null), the worker that owns it, its limits and its counters.
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
    /** Cross-connect peer, or null. */
    public SwitchPort peer;
    /** Owned by the port's worker: was the device running at its last pass (to act on link changes once). */
    public boolean seenRunning;
    /** Owned by the port's worker: the current queue fault was counted and reported. */
    boolean faultReported;
    /** Owned by the port's worker: the device generation it last brought up. */
    int seenGeneration;
    /** Owned by the port's worker: its own duplicate of the guest's TX kick eventfd while it sleeps on kicks. */
    io.vswitch.sys.EventFd kick;
    /** The port's position in its worker's list, the epoll data word of its kick. */
    int localIndex;

    // learning shortcuts, owned by the port's worker: a burst usually holds one guest's frames to one peer
    long lastSourceMac = -1;
    long lastSourceLearnedAt;
    long lastDestinationMac = -1;
    int lastDestinationPort;
    long lastDestinationAt = -1;

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

    /** Publishes what the worker counted since the last pass (one release store per counter that moved). */
    void publishCounts() {
        if (pendingTxPackets != 0) {
            counters.txPackets.getAndAddRelease(pendingTxPackets);
            counters.txBytes.getAndAddRelease(pendingTxBytes);
            pendingTxPackets = 0;
            pendingTxBytes = 0;
        }
        if (pendingRxRingFull != 0) {
            counters.dropRxRingFull.getAndAddRelease(pendingRxRingFull);
            pendingRxRingFull = 0;
        }
        if (pendingRxTooSmall != 0) {
            counters.dropRxBufferTooSmall.getAndAddRelease(pendingRxTooSmall);
            pendingRxTooSmall = 0;
        }
        if (pendingQueueFault != 0) {
            counters.dropQueueFault.getAndAddRelease(pendingQueueFault);
            pendingQueueFault = 0;
        }
        if (pendingPortDown != 0) {
            counters.dropPortDown.getAndAddRelease(pendingPortDown);
            pendingPortDown = 0;
        }
        if (pendingHairpin != 0) {
            counters.dropHairpin.getAndAddRelease(pendingHairpin);
            pendingHairpin = 0;
        }
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

    @Override
    public String toString() {
        return name;
    }
}
