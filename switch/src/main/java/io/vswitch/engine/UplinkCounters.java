package io.vswitch.engine;

import org.agrona.concurrent.status.AtomicCounter;

/**
 * The drop reasons only uplinks have, next to the port's {@link PortCounters} in the counters file (so
 * {@code stats} and the metrics endpoint show them as {@code drop_REASON} like any other).
 */
public final class UplinkCounters implements AutoCloseable {
    /** Packets that are not VXLAN (too short, I flag clear) or carry a frame shorter than an Ethernet header. */
    final AtomicCounter dropMalformed;
    /** VXLAN packets for another VNI. */
    final AtomicCounter dropVni;
    /** VXLAN packets from an address that is not one of the port's remotes. */
    final AtomicCounter dropForeignVtep;
    /** Frames the kernel refused to send (EAGAIN, ENOBUFS, an error on the socket), counted per message. */
    final AtomicCounter dropTxError;

    public UplinkCounters(CountersFile file, String port) {
        dropMalformed = file.newCounter("port", port, "drop_malformed");
        dropVni = file.newCounter("port", port, "drop_vni");
        dropForeignVtep = file.newCounter("port", port, "drop_foreign_vtep");
        dropTxError = file.newCounter("port", port, "drop_tx_error");
    }

    @Override
    public void close() {
        dropMalformed.close();
        dropVni.close();
        dropForeignVtep.close();
        dropTxError.close();
    }
}
