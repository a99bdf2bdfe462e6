package io.vswitch.config;

import java.nio.file.Path;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * One port: a guest NIC attached through a vhost-user Unix socket, or an uplink ({@link UplinkConfig}: VXLAN
 * tunnel, AF_PACKET interface), which has no socket.
 *
 * @param socket      absolute, normalized socket path; null for an uplink
 * @param notifyMode  the port's notify mode, already resolved against the switch-wide one
 * @param worker      index of the worker thread that polls this port
 * @param macLimit    most MACs the switch learns on this port, so one guest cannot flood the table
 * @param mtu         largest payload accepted; see {@link #maxFrameLength()}
 * @param queues      queue pairs offered to the guest
 * @param socketMode  permission bits for a server socket file, e.g. {@code 0660}
 * @param socketGroup group owning a server socket file, so QEMU running as that group may connect
 * @param uplink      what the port is when it is not a vhost-user socket, or null
 * @param offloads    offer checksum and TSO offloads to the guest (default true); false: the guest sends and
 *                    receives plain, fully checksummed MTU-sized frames
 */
public record PortConfig(
        String name,
        Path socket,
        SocketRole role,
        NotifyMode notifyMode,
        int worker,
        int macLimit,
        VlanMode vlan,
        int mtu,
        int queues,
        OptionalInt socketMode,
        Optional<String> socketGroup,
        UplinkConfig uplink,
        boolean offloads) {

    public static final SocketRole DEFAULT_ROLE = SocketRole.SERVER;
    public static final int DEFAULT_MAC_LIMIT = 1024;
    public static final int DEFAULT_MTU = 1500;
    public static final int MIN_MTU = 68;
    public static final int MAX_MTU = 9000;
    public static final int DEFAULT_QUEUES = 1;
    public static final int MAX_QUEUES = 8;
    /** sun_path is 108 bytes including the terminating NUL. */
    public static final int MAX_SOCKET_PATH_BYTES = 107;
    /** Ethernet header (14) plus one 802.1Q tag (4). */
    public static final int L2_OVERHEAD = 18;

    public PortConfig {
        Objects.requireNonNull(name, "name");
        if (uplink == null) {
            Objects.requireNonNull(socket, "socket");
        }
        Objects.requireNonNull(role, "role");
        Objects.requireNonNull(notifyMode, "notifyMode");
        Objects.requireNonNull(vlan, "vlan");
        Objects.requireNonNull(socketMode, "socketMode");
        Objects.requireNonNull(socketGroup, "socketGroup");
    }

    /** A vhost-user port. */
    public PortConfig(String name, Path socket, SocketRole role, NotifyMode notifyMode, int worker, int macLimit,
                      VlanMode vlan, int mtu, int queues, OptionalInt socketMode, Optional<String> socketGroup) {
        this(name, socket, role, notifyMode, worker, macLimit, vlan, mtu, queues, socketMode, socketGroup, null, true);
    }

    /** A port with offloads on (the default). */
    public PortConfig(String name, Path socket, SocketRole role, NotifyMode notifyMode, int worker, int macLimit,
                      VlanMode vlan, int mtu, int queues, OptionalInt socketMode, Optional<String> socketGroup,
                      UplinkConfig uplink) {
        this(name, socket, role, notifyMode, worker, macLimit, vlan, mtu, queues, socketMode, socketGroup, uplink, true);
    }

    /** True for a vhost-user port (one with a socket), false for an uplink. */
    public boolean isVhostUser() {
        return uplink == null;
    }

    /** A server-mode port with every optional setting at its default, owned by worker 0. */
    public static PortConfig withDefaults(String name, Path socket, NotifyMode notify) {
        return new PortConfig(name, socket, DEFAULT_ROLE, notify, 0, DEFAULT_MAC_LIMIT, VlanMode.UNTAGGED,
                DEFAULT_MTU, DEFAULT_QUEUES, OptionalInt.empty(), Optional.empty());
    }

    /** Longest frame accepted from the guest; longer ones are dropped and counted. */
    public int maxFrameLength() {
        return mtu + L2_OVERHEAD;
    }

    public PortConfig withWorker(int newWorker) {
        return new PortConfig(name, socket, role, notifyMode, newWorker, macLimit, vlan, mtu, queues, socketMode, socketGroup,
                uplink, offloads);
    }

    public PortConfig withOffloads(boolean on) {
        return new PortConfig(name, socket, role, notifyMode, worker, macLimit, vlan, mtu, queues, socketMode, socketGroup,
                uplink, on);
    }
}
