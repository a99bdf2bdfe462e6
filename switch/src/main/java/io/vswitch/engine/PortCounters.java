package io.vswitch.engine;

import org.agrona.concurrent.status.AtomicCounter;

/**
 * The counters of one switch port, in the counters file. Directions are the switch's: {@code rx} is what
 * the port received from its guest (the guest's transmit queue), {@code tx} what the switch transmitted to
 * the guest. Drops are counted on the port whose queue or state caused them.
 */
public final class PortCounters implements AutoCloseable {
    public final AtomicCounter rxPackets;
    final AtomicCounter rxBytes;
    public final AtomicCounter txPackets;
    final AtomicCounter txBytes;
    public final AtomicCounter dropRxRingFull;
    /** Frames the guest's receive buffers were too small for (a guest without MRG_RXBUF posting short buffers). */
    public final AtomicCounter dropRxBufferTooSmall;
    /** Frames for a port whose receive queue is faulted (until its frontend sets the queue up again). */
    public final AtomicCounter dropQueueFault;
    public final AtomicCounter dropNoBuffers;
    public final AtomicCounter dropPortDown;
    public final AtomicCounter dropInvalid;
    public final AtomicCounter dropOverMtu;
    final AtomicCounter dropVlan;
    /** Frames addressed to a MAC learned on the port they came from (a learning bridge never sends a frame back). */
    final AtomicCounter dropHairpin;
    // the reasons behind drop_invalid for the guest's transmit queue, mirrored from it by housekeeping
    final AtomicCounter invalidTooShort;
    final AtomicCounter invalidTooLarge;
    final AtomicCounter invalidTooManyPieces;
    /** Frames whose virtio-net header asked for an offload that is nonsense for the frame or not negotiated. */
    final AtomicCounter dropBadOffloadHeader;
    final AtomicCounter notifications;
    final AtomicCounter kicks;
    final AtomicCounter queueFaults;
    final AtomicCounter connections;
    final AtomicCounter protocolErrors;
    final AtomicCounter macsLearned;
    final AtomicCounter macMoves;
    final AtomicCounter linkUp;
    /** MAC table entries held by the port (what mac-limit bounds), mirrored by housekeeping, never by a worker. */
    final AtomicCounter macs;

    public PortCounters(CountersFile file, String port) {
        rxPackets = file.newCounter("port", port, "rx_packets");
        rxBytes = file.newCounter("port", port, "rx_bytes");
        txPackets = file.newCounter("port", port, "tx_packets");
        txBytes = file.newCounter("port", port, "tx_bytes");
        dropRxRingFull = file.newCounter("port", port, "drop_rx_ring_full");
        dropRxBufferTooSmall = file.newCounter("port", port, "drop_rx_buffer_too_small");
        dropQueueFault = file.newCounter("port", port, "drop_queue_fault");
        dropNoBuffers = file.newCounter("port", port, "drop_no_buffers");
        dropPortDown = file.newCounter("port", port, "drop_port_down");
        dropInvalid = file.newCounter("port", port, "drop_invalid");
        dropOverMtu = file.newCounter("port", port, "drop_over_mtu");
        dropVlan = file.newCounter("port", port, "drop_vlan");
        dropHairpin = file.newCounter("port", port, "drop_hairpin");
        invalidTooShort = file.newCounter("port", port, "invalid_too_short");
        invalidTooLarge = file.newCounter("port", port, "invalid_too_large");
        invalidTooManyPieces = file.newCounter("port", port, "invalid_too_many_pieces");
        dropBadOffloadHeader = file.newCounter("port", port, "drop_bad_offload_header");
        notifications = file.newCounter("port", port, "notifications");
        kicks = file.newCounter("port", port, "kicks");
        queueFaults = file.newCounter("port", port, "queue_faults");
        connections = file.newCounter("port", port, "connections");
        protocolErrors = file.newCounter("port", port, "protocol_errors");
        macsLearned = file.newCounter("port", port, "macs_learned");
        macMoves = file.newCounter("port", port, "mac_moves");
        linkUp = file.newCounter("port", port, "link_up");
        macs = file.newCounter("port", port, "macs");
    }

    @Override
    public void close() {
        for (AtomicCounter c : new AtomicCounter[] {rxPackets, rxBytes, txPackets, txBytes, dropRxRingFull,
                dropRxBufferTooSmall, dropQueueFault, invalidTooShort, invalidTooLarge, invalidTooManyPieces, dropNoBuffers, dropPortDown, dropInvalid, dropOverMtu, dropVlan, dropHairpin, dropBadOffloadHeader, notifications, kicks, queueFaults,
                connections, protocolErrors, macsLearned, macMoves, linkUp, macs}) {
            c.close();
        }
    }
}
