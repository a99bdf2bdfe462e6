package io.vswitch.config;

import java.nio.file.Path;
import java.util.List;
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
 * @param queueWorkers the workers that own the port's queue pairs, pair p on {@code queueWorkers[p % size]}
 *                    (topology key {@code workers}); empty: every pair on {@code worker}
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
        List<Integer> queueWorkers,
        boolean offloads) {

    public static final SocketRole DEFAULT_ROLE = SocketRole.SERVER;
    public static final int DEFAULT_MAC_LIMIT = 1024;
    public static final int DEFAULT_MTU = 1500;
    public static final int MIN_MTU = 68;
    public static final int MAX_MTU = 9000;
    public static final int DEFAULT_QUEUES = 1;
    public static final int MAX_QUEUES = 16;
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
        queueWorkers = queueWorkers == null ? List.of() : List.copyOf(queueWorkers);
    }

    /** A port whose queue pairs all live on {@code worker}. */
    public PortConfig(String name, Path socket, SocketRole role, NotifyMode notifyMode, int worker, int macLimit,
                      VlanMode vlan, int mtu, int queues, OptionalInt socketMode, Optional<String> socketGroup,
                      UplinkConfig uplink) {
        this(name, socket, role, notifyMode, worker, macLimit, vlan, mtu, queues, socketMode, socketGroup, uplink, List.of(), true);
    }

    /** A vhost-user port. */
    public PortConfig(String name, Path socket, SocketRole role, NotifyMode notifyMode, int worker, int macLimit,
                      VlanMode vlan, int mtu, int queues, OptionalInt socketMode, Optional<String> socketGroup) {
        this(name, socket, role, notifyMode, worker, macLimit, vlan, mtu, queues, socketMode, socketGroup, null, List.of(), true);
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

    /** The port on {@code newWorker}; a port with a {@code workers} list keeps it (and its first entry as worker). */
    public PortConfig withWorker(int newWorker) {
        if (!queueWorkers.isEmpty()) {
            return this;
        }
        return new PortConfig(name, socket, role, notifyMode, newWorker, macLimit, vlan, mtu, queues, socketMode, socketGroup,
                uplink, queueWorkers, offloads);
    }

    /** The same port with its queue pairs on {@code workers} (empty: all on {@link #worker()}). */
    public PortConfig withQueueWorkers(List<Integer> workers) {
        return new PortConfig(name, socket, role, notifyMode, workers.isEmpty() ? worker : workers.get(0), macLimit, vlan,
                mtu, queues, socketMode, socketGroup, uplink, workers, offloads);
    }

    public PortConfig withOffloads(boolean on) {
        return new PortConfig(name, socket, role, notifyMode, worker, macLimit, vlan, mtu, queues, socketMode, socketGroup,
                uplink, queueWorkers, on);
    }

    /** The worker that owns queue pair {@code pair}: polls its transmit queue and fills its receive queue. */
    public int queueWorker(int pair) {
        return queueWorkers.isEmpty() ? worker : queueWorkers.get(pair % queueWorkers.size());
    }

    /** Every worker that owns at least one of the port's queue pairs, in pair order, without repeats. */
    public List<Integer> allQueueWorkers() {
        java.util.LinkedHashSet<Integer> all = new java.util.LinkedHashSet<>();
        for (int p = 0; p < queues; p++) {
            all.add(queueWorker(p));
        }
        return List.copyOf(all);
    }
}
