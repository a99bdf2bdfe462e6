package io.vswitch.engine;

import io.vswitch.vhost.VhostUserPort;
import io.vswitch.vhost.net.VirtioNetDevice;

/** A port as the data plane sees it: its device, the worker that owns it, its limits and its counters. */
final class SwitchPort {
    final int index;
    final String name;
    final VhostUserPort vhost;
    final VirtioNetDevice device;
    final int worker;
    final int maxFrame;
    final PortCounters counters;
    /** Cross-connect peer, or null. */
    SwitchPort peer;
    /** Owned by the port's worker: was the device running at its last pass (to act on link changes once). */
    boolean seenRunning;
    /** Owned by the port's worker: the device generation it last brought up. */
    int seenGeneration;
    /** Owned by the port's worker: its own duplicate of the guest's TX kick eventfd while it sleeps on kicks. */
    io.vswitch.notify.EventFd kick;
    /** The port's position in its worker's list, the epoll data word of its kick. */
    int localIndex;

    SwitchPort(int index, String name, VhostUserPort vhost, int worker, int mtu, PortCounters counters) {
        this.index = index;
        this.name = name;
        this.vhost = vhost;
        this.device = vhost.device();
        this.worker = worker;
        this.maxFrame = mtu + 18;
        this.counters = counters;
    }

    @Override
    public String toString() {
        return name;
    }
}
