package io.vswitch.config;

import java.net.Inet4Address;
import java.util.List;
import java.util.Objects;

/**
 * A port that is not a vhost-user socket but a way off this host: a VXLAN tunnel ({@code type: vxlan}) or a
 * Linux interface opened with AF_PACKET ({@code type: afpacket}).
 */
public sealed interface UplinkConfig permits UplinkConfig.Vxlan, UplinkConfig.AfPacket {

    /** The {@code type:} spelling. */
    String type();

    /** A UDP endpoint: an IPv4 address and a port. */
    record Endpoint(Inet4Address address, int port) {
        public Endpoint {
            Objects.requireNonNull(address, "address");
        }

        @Override
        public String toString() {
            return address.getHostAddress() + ":" + port;
        }
    }

    /**
     * RFC 7348 VXLAN: frames leave encapsulated in UDP from {@code local} to one of {@code remotes} (the VTEP a
     * destination MAC was learned behind, else all of them: the flood list), and arrive the same way.
     */
    record Vxlan(Endpoint local, List<Endpoint> remotes, int vni) implements UplinkConfig {
        public static final int DEFAULT_PORT = 4789;
        public static final int MAX_VNI = (1 << 24) - 1;
        /** Flood list bound: one copy per remote for each broadcast frame. */
        public static final int MAX_REMOTES = 64;

        public Vxlan {
            Objects.requireNonNull(local, "local");
            remotes = List.copyOf(remotes);
        }

        @Override
        public String type() {
            return "vxlan";
        }
    }

    /**
     * An existing Linux interface (NIC, veth, bond), opened with PACKET_MMAP TPACKET_V3 rings. {@code workers}:
     * empty for one socket polled by the port's worker; else the workers that serve the interface, one socket
     * each, joined in one PACKET_FANOUT group (the port's {@code worker} is the first of them).
     */
    record AfPacket(String interfaceName, List<Integer> workers) implements UplinkConfig {
        public AfPacket {
            Objects.requireNonNull(interfaceName, "interfaceName");
            workers = List.copyOf(workers);
        }

        public AfPacket(String interfaceName) {
            this(interfaceName, List.of());
        }

        /** Served by several workers through a fanout group. */
        public boolean fanout() {
            return workers.size() > 1;
        }

        @Override
        public String type() {
            return "afpacket";
        }
    }
}
