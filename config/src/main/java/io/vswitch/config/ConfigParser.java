package io.vswitch.config;

import java.nio.charset.StandardCharsets;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Reads the composed YAML tree into settings, ports and links, checking each field on its own:
 * presence, type, range, spelling. Checks that relate ports to each other are the {@link Validator}'s.
 */
final class ConfigParser {

    static final List<String> TOP_KEYS = List.of("switch", "ports", "links");
    static final List<String> SWITCH_KEYS = List.of("mode", "notify", "workers", "cpus", "burst",
            "mac-aging-seconds", "hybrid-quiet-polls", "runtime-dir", "metrics", "housekeeping-cpus");
    static final List<String> PORT_KEYS = List.of("name", "socket", "mode", "notify", "worker", "mac-limit",
            "vlan", "trunk", "mtu", "queues", "workers", "socket-mode", "socket-group", "offloads", "type", "local", "remote", "vni", "interface");
    static final String[] PORT_TYPES = {"vhost-user", "vxlan", "afpacket"};
    /** Linux interface names: IFNAMSIZ (16) including the NUL, no slash, no white space. */
    private static final Pattern INTERFACE = Pattern.compile("[^/\\s:]{1,15}");

    /** Generous sanity bounds: far beyond any sensible setting, low enough to catch a stray extra digit. */
    static final int MAX_WORKERS = 256;
    static final int MAX_CPU = 8191;
    static final int MAX_MAC_AGING_SECONDS = 86_400;
    static final int MAX_MAC_LIMIT = 1 << 20;
    static final int MIN_VLAN = 1;
    static final int MAX_VLAN = 4094;

    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9_.-]{1,32}");
    private static final Pattern OCTAL_MODE = Pattern.compile("0?[0-7]{3}");

    /** A port as read, with the places the cross-port checks point at. */
    record PortEntry(PortConfig port, YamlValue at, YamlValue nameAt, YamlValue socketAt, boolean workerGiven) {
    }

    record LinkEnd(String name, YamlValue at) {
    }

    record LinkEntry(YamlValue at, LinkEnd first, LinkEnd second) {
    }

    /**
     * @param incompleteNames names of ports left out of {@code ports} for lack of a usable name or socket,
     *                        so links to them are not also reported as naming no port
     * @param linksAt         the {@code links:} value, for errors about the section as a whole
     */
    record Parsed(SwitchSettings settings, List<PortEntry> ports, Set<String> incompleteNames,
                  Optional<YamlValue> linksAt, List<LinkEntry> links) {
    }

    private ConfigParser() {
    }

    static Parsed parse(YamlValue root) {
        Optional<YamlMapping> top = root.asMapping(TOP_KEYS);
        SwitchSettings settings = top.flatMap(t -> t.get("switch"))
                .flatMap(v -> v.asMapping(SWITCH_KEYS))
                .map(ConfigParser::settings)
                .orElseGet(SwitchSettings::defaults);
        // A wrong workers value falls back to 1; do not then also flag every port's worker index against it.
        int workerLimit = root.problems().reported("switch.workers") ? MAX_WORKERS : settings.workers();
        Set<String> incompleteNames = new HashSet<>();
        List<PortEntry> ports = top.flatMap(t -> t.require("ports"))
                .map(v -> ports(v, settings.notifyMode(), workerLimit, incompleteNames))
                .orElse(List.of());
        Optional<YamlValue> linksAt = top.flatMap(t -> t.get("links"));
        List<LinkEntry> links = linksAt.flatMap(YamlValue::asList).orElse(List.of()).stream()
                .map(ConfigParser::link)
                .flatMap(Optional::stream)
                .toList();
        return new Parsed(settings, assignWorkers(ports, settings.workers()), incompleteNames, linksAt, links);
    }

    private static SwitchSettings settings(YamlMapping m) {
        BridgeMode mode = m.get("mode").flatMap(v -> v.asOneOf(BridgeMode.values(), BridgeMode::yamlName))
                .orElse(SwitchSettings.DEFAULT_MODE);
        NotifyMode notify = m.get("notify").flatMap(v -> v.asOneOf(NotifyMode.values(), NotifyMode::yamlName))
                .orElse(SwitchSettings.DEFAULT_NOTIFY);
        int workers = intOr(m, "workers", 1, MAX_WORKERS, SwitchSettings.DEFAULT_WORKERS);
        List<Integer> cpus = m.get("cpus").flatMap(ConfigParser::cpus).orElse(List.of());
        int burst = intOr(m, "burst", 1, SwitchSettings.MAX_BURST, SwitchSettings.DEFAULT_BURST);
        int macAging = intOr(m, "mac-aging-seconds", 1, MAX_MAC_AGING_SECONDS, SwitchSettings.DEFAULT_MAC_AGING_SECONDS);
        int quietPolls = intOr(m, "hybrid-quiet-polls", 1, Integer.MAX_VALUE, SwitchSettings.DEFAULT_HYBRID_QUIET_POLLS);
        Path runtimeDir = m.get("runtime-dir").flatMap(ConfigParser::path).orElseGet(SwitchSettings::defaultRuntimeDir);
        Optional<MetricsAddress> metrics = m.get("metrics").flatMap(ConfigParser::metrics);
        List<Integer> housekeepingCpus = m.get("housekeeping-cpus").flatMap(ConfigParser::cpus).orElse(List.of());
        return new SwitchSettings(mode, notify, workers, cpus, burst, macAging, quietPolls, runtimeDir, metrics, housekeepingCpus);
    }

    private static Optional<MetricsAddress> metrics(YamlValue v) {
        Optional<String> text = nonEmptyString(v);
        if (text.isEmpty()) {
            return Optional.empty();
        }
        try {
            return Optional.of(MetricsAddress.parse(text.get()));
        } catch (IllegalArgumentException e) {
            v.error(e.getMessage());
            return Optional.empty();
        }
    }

    private static Optional<List<Integer>> cpus(YamlValue v) {
        Optional<List<Integer>> cpus = v.asIntList(0, MAX_CPU);
        if (cpus.isPresent() && cpus.get().isEmpty()) {
            v.error("must name at least one CPU (leave it out to run unpinned)");
            return Optional.empty();
        }
        return cpus;
    }

    private static List<PortEntry> ports(YamlValue v, NotifyMode defaultNotify, int workerLimit,
                                         Set<String> incompleteNames) {
        Optional<List<YamlValue>> items = v.asList();
        if (items.isPresent() && items.get().isEmpty()) {
            v.error("at least one port is required");
        }
        List<PortEntry> ports = new ArrayList<>();
        for (YamlValue item : items.orElse(List.of())) {
            item.asMapping(PORT_KEYS).flatMap(m -> port(m, defaultNotify, workerLimit, incompleteNames))
                    .ifPresent(ports::add);
        }
        return ports;
    }

    /** Empty when the port lacks a usable name or socket; its other fields are still checked. */
    private static Optional<PortEntry> port(YamlMapping m, NotifyMode defaultNotify, int workerLimit,
                                            Set<String> incompleteNames) {
        Optional<YamlValue> nameAt = m.require("name");
        Optional<String> name = nameAt.flatMap(ConfigParser::name);
        String type = m.get("type").flatMap(v -> v.asOneOf(PORT_TYPES, t -> t)).orElse("vhost-user");
        if (!type.equals("vhost-user")) {
            return uplinkPort(m, type, name, nameAt, defaultNotify, workerLimit, incompleteNames);
        }
        for (String key : List.of("local", "remote", "vni", "interface")) {
            m.get(key).ifPresent(v -> v.error("only for uplink ports (type: vxlan or afpacket), not vhost-user ones"));
        }
        Optional<YamlValue> socketAt = m.require("socket");
        Optional<Path> socket = socketAt.flatMap(ConfigParser::socket);
        SocketRole role = m.get("mode").flatMap(v -> v.asOneOf(SocketRole.values(), SocketRole::yamlName))
                .orElse(PortConfig.DEFAULT_ROLE);
        NotifyMode notify = m.get("notify").flatMap(v -> v.asOneOf(NotifyMode.values(), NotifyMode::yamlName))
                .orElse(defaultNotify);
        Optional<Integer> worker = m.get("worker").flatMap(v -> worker(v, workerLimit));
        int macLimit = intOr(m, "mac-limit", 1, MAX_MAC_LIMIT, PortConfig.DEFAULT_MAC_LIMIT);
        VlanMode vlan = vlan(m);
        int mtu = intOr(m, "mtu", PortConfig.MIN_MTU, PortConfig.MAX_MTU, PortConfig.DEFAULT_MTU);
        int queues = intOr(m, "queues", 1, PortConfig.MAX_QUEUES, PortConfig.DEFAULT_QUEUES);
        Optional<List<Integer>> queueWorkers = m.get("workers").flatMap(v -> queueWorkers(v, m, queues, worker, workerLimit));
        OptionalInt socketMode = m.get("socket-mode").flatMap(ConfigParser::octalMode)
                .map(OptionalInt::of).orElse(OptionalInt.empty());
        Optional<String> socketGroup = m.get("socket-group").flatMap(ConfigParser::nonEmptyString);
        boolean offloads = m.get("offloads").flatMap(YamlValue::asBoolean).orElse(true);
        if (name.isEmpty() || socket.isEmpty()) {
            name.ifPresent(incompleteNames::add);
            return Optional.empty();
        }
        PortConfig port = new PortConfig(name.get(), socket.get(), role, notify, worker.orElse(0), macLimit, vlan,
                mtu, queues, socketMode, socketGroup, null, List.of(), offloads);
        if (queueWorkers.isPresent()) {
            port = port.withQueueWorkers(queueWorkers.get());
        }
        return Optional.of(new PortEntry(port, m.self(), nameAt.get(), socketAt.get(),
                worker.isPresent() || queueWorkers.isPresent()));
    }

    /**
     * {@code workers}: the workers that own the port's queue pairs, {@code [0, 1]} (pair p on entry p modulo the
     * list's length) or {@code auto} (round-robin over every worker of the switch, from the port's {@code worker}).
     */
    private static Optional<List<Integer>> queueWorkers(YamlValue v, YamlMapping m, int queues, Optional<Integer> worker,
                                                        int workerLimit) {
        Optional<String> text = v.isList() ? Optional.empty() : v.asString();
        List<Integer> list;
        if (text.isPresent()) {
            if (!text.get().equals("auto")) {
                v.error("must be a list of worker indices, e.g. [0, 1], or auto");
                return Optional.empty();
            }
            int start = worker.orElse(0);
            list = new ArrayList<>();
            for (int p = 0; p < Math.min(queues, workerLimit); p++) {
                list.add((start + p) % workerLimit);
            }
            return Optional.of(list);
        }
        if (m.get("worker").isPresent()) {
            v.error("give either worker (every queue pair on one worker) or workers (a list), not both");
            return Optional.empty();
        }
        Optional<List<YamlValue>> items = v.asList();
        if (items.isEmpty()) {
            return Optional.empty();
        }
        List<Integer> workers = new ArrayList<>();
        for (YamlValue item : items.get()) {
            worker(item, workerLimit).ifPresent(workers::add);   // the same check and message as 'worker'
        }
        if (workers.size() != items.get().size()) {
            return Optional.empty();
        }
        Optional<List<Integer>> given = Optional.of(workers);
        if (given.get().isEmpty()) {
            v.error("must name at least one worker");
            return Optional.empty();
        }
        if (given.get().size() > queues) {
            v.error(given.get().size() + " workers for " + queues + " queue pair(s): at most one worker per queue pair"
                    + " (raise queues)");
            return Optional.empty();
        }
        return given;
    }

    /** A {@code type: vxlan} or {@code type: afpacket} port: no socket, and the keys of its type. */
    private static Optional<PortEntry> uplinkPort(YamlMapping m, String type, Optional<String> name,
                                                  Optional<YamlValue> nameAt, NotifyMode defaultNotify,
                                                  int workerLimit, Set<String> incompleteNames) {
        for (String key : List.of("socket", "mode", "socket-mode", "socket-group", "queues", "offloads")) {
            m.get(key).ifPresent(v -> v.error("only for vhost-user ports, not type " + type));
        }
        List<String> foreign = type.equals("vxlan") ? List.of("interface", "workers") : List.of("local", "remote", "vni");
        for (String key : foreign) {
            m.get(key).ifPresent(v -> v.error("not a key of type " + type));
        }
        NotifyMode notify = m.get("notify").flatMap(v -> v.asOneOf(NotifyMode.values(), NotifyMode::yamlName))
                .orElse(defaultNotify);
        Optional<Integer> worker = m.get("worker").flatMap(v -> worker(v, workerLimit));
        List<Integer> fanout = type.equals("afpacket")
                ? m.get("workers").flatMap(v -> fanoutWorkers(v, workerLimit)).orElse(List.of()) : List.of();
        if (!fanout.isEmpty() && m.get("worker").isPresent()) {
            m.get("workers").get().error("give 'worker' or 'workers', not both (the first of 'workers' is the port's worker)");
        }
        if (!fanout.isEmpty()) {
            worker = Optional.of(fanout.get(0));
        }
        int macLimit = intOr(m, "mac-limit", 1, MAX_MAC_LIMIT, PortConfig.DEFAULT_MAC_LIMIT);
        VlanMode vlan = vlan(m);
        int mtu = intOr(m, "mtu", PortConfig.MIN_MTU, PortConfig.MAX_MTU, PortConfig.DEFAULT_MTU);
        Optional<UplinkConfig> uplink;
        if (type.equals("vxlan")) {
            Optional<UplinkConfig.Endpoint> local = m.require("local").flatMap(ConfigParser::endpoint);
            Optional<List<UplinkConfig.Endpoint>> remotes = m.require("remote").flatMap(ConfigParser::remotes);
            Optional<Integer> vni = m.require("vni").flatMap(v -> v.asInt(0, UplinkConfig.Vxlan.MAX_VNI));
            uplink = local.isPresent() && remotes.isPresent() && vni.isPresent()
                    ? Optional.of(new UplinkConfig.Vxlan(local.get(), remotes.get(), vni.get())) : Optional.empty();
        } else {
            uplink = m.require("interface").flatMap(v -> v.asString().filter(text -> {
                if (!INTERFACE.matcher(text).matches()) {
                    v.error("'" + text + "' is not a Linux interface name (1 to 15 characters, no '/', ':' or space)");
                    return false;
                }
                return true;
            })).map(text -> new UplinkConfig.AfPacket(text, fanout.size() > 1 ? fanout : List.of()));
        }
        if (name.isEmpty() || uplink.isEmpty()) {
            name.ifPresent(incompleteNames::add);
            return Optional.empty();
        }
        PortConfig port = new PortConfig(name.get(), null, PortConfig.DEFAULT_ROLE, notify, worker.orElse(0), macLimit,
                vlan, mtu, 1, OptionalInt.empty(), Optional.empty(), uplink.get());
        return Optional.of(new PortEntry(port, m.self(), nameAt.get(), m.self(), worker.isPresent()));
    }

    /** {@code IP} or {@code IP:PORT}, IPv4 (the port defaults to VXLAN's 4789). */
    private static Optional<UplinkConfig.Endpoint> endpoint(YamlValue v) {
        Optional<String> text = nonEmptyString(v);
        if (text.isEmpty()) {
            return Optional.empty();
        }
        String t = text.get().trim();
        int port = UplinkConfig.Vxlan.DEFAULT_PORT;
        int colon = t.indexOf(':');
        if (colon >= 0 && t.indexOf(':', colon + 1) < 0) {
            String p = t.substring(colon + 1);
            if (!p.matches("[0-9]{1,5}") || Integer.parseInt(p) < 1 || Integer.parseInt(p) > 65535) {
                v.error("'" + p + "' is not a UDP port (1..65535)");
                return Optional.empty();
            }
            port = Integer.parseInt(p);
            t = t.substring(0, colon);
        }
        java.net.InetAddress address;
        try {
            address = java.net.InetAddress.ofLiteral(t);
        } catch (IllegalArgumentException e) {
            v.error("'" + text.get() + "' is not IP or IP:PORT (an IPv4 address, no host names)");
            return Optional.empty();
        }
        if (!(address instanceof java.net.Inet4Address v4)) {
            v.error("'" + text.get() + "': only IPv4 VXLAN endpoints are implemented");
            return Optional.empty();
        }
        return Optional.of(new UplinkConfig.Endpoint(v4, port));
    }

    /** One endpoint, or a list of them (the flood list). */
    private static Optional<List<UplinkConfig.Endpoint>> remotes(YamlValue v) {
        if (!v.isList()) {
            return endpoint(v).map(List::of);
        }
        List<YamlValue> items = v.asList().orElseThrow();
        if (items.isEmpty() || items.size() > UplinkConfig.Vxlan.MAX_REMOTES) {
            v.error("must list 1.." + UplinkConfig.Vxlan.MAX_REMOTES + " remote VTEPs");
            return Optional.empty();
        }
        List<UplinkConfig.Endpoint> out = new ArrayList<>();
        boolean allValid = true;
        for (YamlValue item : items) {
            Optional<UplinkConfig.Endpoint> e = endpoint(item);
            if (e.isPresent() && out.contains(e.get())) {
                item.error("remote " + e.get() + " is listed twice");
            }
            e.filter(x -> !out.contains(x)).ifPresent(out::add);
            allValid &= e.isPresent();
        }
        return allValid ? Optional.of(out) : Optional.empty();
    }

    private static Optional<String> name(YamlValue v) {
        Optional<String> name = v.asString();
        if (name.isPresent() && !NAME.matcher(name.get()).matches()) {
            v.error("'" + name.get() + "' is not a valid name (1 to 32 of A-Z a-z 0-9 _ . -)");
            return Optional.empty();
        }
        return name;
    }

    private static Optional<Path> socket(YamlValue v) {
        Optional<Path> socket = path(v);
        if (socket.isPresent()) {
            int bytes = socket.get().toString().getBytes(StandardCharsets.UTF_8).length;
            if (bytes > PortConfig.MAX_SOCKET_PATH_BYTES) {
                v.error("'" + socket.get() + "' is " + bytes + " bytes long; Unix socket paths are limited to "
                        + PortConfig.MAX_SOCKET_PATH_BYTES);
                return Optional.empty();
            }
        }
        return socket;
    }

    /** Absolute and normalized, so that two spellings of one file compare equal. */
    private static Optional<Path> path(YamlValue v) {
        Optional<String> text = nonEmptyString(v);
        if (text.isEmpty()) {
            return Optional.empty();
        }
        try {
            return Optional.of(Path.of(text.get()).toAbsolutePath().normalize());
        } catch (InvalidPathException e) {
            v.error("'" + text.get() + "' is not a valid path: " + e.getReason());
            return Optional.empty();
        }
    }

    private static Optional<String> nonEmptyString(YamlValue v) {
        Optional<String> text = v.asString();
        if (text.isPresent() && text.get().isBlank()) {
            v.error("must not be empty");
            return Optional.empty();
        }
        return text;
    }

    /**
     * An afpacket port's {@code workers}: a count N (workers 0..N-1) or a list of distinct worker indices, each
     * of which gets its own socket in the port's PACKET_FANOUT group.
     */
    private static Optional<List<Integer>> fanoutWorkers(YamlValue v, int workers) {
        Optional<List<Integer>> list;
        if (v.isList()) {
            list = v.asIntList(0, MAX_WORKERS - 1);
            if (list.isPresent() && (list.get().isEmpty() || list.get().stream().distinct().count() != list.get().size())) {
                v.error("must list distinct workers, at least one");
                return Optional.empty();
            }
        } else {
            list = v.asInt(1, MAX_WORKERS).map(n -> java.util.stream.IntStream.range(0, n).boxed().toList());
        }
        if (list.isPresent()) {
            for (int w : list.get()) {
                if (w >= workers) {
                    v.error("worker " + w + " does not exist: switch.workers is " + workers
                            + ", so workers are numbered 0.." + (workers - 1));
                    return Optional.empty();
                }
            }
        }
        return list;
    }

    private static Optional<Integer> worker(YamlValue v, int workers) {
        Optional<Integer> worker = v.asInt(0, MAX_WORKERS - 1);
        if (worker.isPresent() && worker.get() >= workers) {
            v.error("worker " + worker.get() + " does not exist: switch.workers is " + workers
                    + ", so workers are numbered 0.." + (workers - 1));
            return Optional.empty();
        }
        return worker;
    }

    private static VlanMode vlan(YamlMapping m) {
        Optional<Integer> access = m.get("vlan").flatMap(v -> v.asInt(MIN_VLAN, MAX_VLAN));
        Optional<List<Integer>> trunk = m.get("trunk").flatMap(ConfigParser::trunk);
        if (m.has("vlan") && m.has("trunk")) {
            m.get("trunk").orElseThrow().error("cannot be combined with vlan: a port is either an access port or a trunk");
            return VlanMode.UNTAGGED;
        }
        if (access.isPresent()) {
            return new VlanMode.Access(access.get());
        }
        return trunk.<VlanMode>map(VlanMode.Trunk::new).orElse(VlanMode.UNTAGGED);
    }

    private static Optional<List<Integer>> trunk(YamlValue v) {
        Optional<List<YamlValue>> items = v.asList();
        if (items.isEmpty()) {
            return Optional.empty();
        }
        if (items.get().isEmpty()) {
            v.error("must list at least one VLAN");
            return Optional.empty();
        }
        List<Integer> vlans = new ArrayList<>();
        boolean allValid = true;
        for (YamlValue item : items.get()) {
            Optional<Integer> vlan = item.asInt(MIN_VLAN, MAX_VLAN);
            if (vlan.isPresent() && vlans.contains(vlan.get())) {
                item.error("VLAN " + vlan.get() + " is listed twice");
            }
            vlan.filter(id -> !vlans.contains(id)).ifPresent(vlans::add);
            allValid &= vlan.isPresent();
        }
        return allValid ? Optional.of(vlans) : Optional.empty();
    }

    /** Accepts "0660" and "660", quoted or not: unquoted 0660 is still text "0660" in the node tree. */
    private static Optional<Integer> octalMode(YamlValue v) {
        Optional<String> text = v.asString();
        if (text.isPresent() && !OCTAL_MODE.matcher(text.get()).matches()) {
            v.error("'" + text.get() + "' is not an octal permission mode like \"0660\"");
            return Optional.empty();
        }
        return text.map(t -> Integer.parseInt(t, 8));
    }

    private static Optional<LinkEntry> link(YamlValue v) {
        Optional<List<YamlValue>> ends = v.asList();
        if (ends.isEmpty()) {
            return Optional.empty();
        }
        if (ends.get().size() != 2) {
            v.error("expected a pair of port names like [vm1, vm2], got " + ends.get().size() + " items");
            return Optional.empty();
        }
        YamlValue first = ends.get().get(0);
        YamlValue second = ends.get().get(1);
        Optional<String> a = first.asString();
        Optional<String> b = second.asString();
        if (a.isEmpty() || b.isEmpty()) {
            return Optional.empty();
        }
        return Optional.of(new LinkEntry(v, new LinkEnd(a.get(), first), new LinkEnd(b.get(), second)));
    }

    /**
     * Ports without an explicit worker go to the least loaded one, lowest index first:
     * plain round robin when nothing is pinned, and no pile-up on a worker that pinned ports already keep busy.
     */
    private static List<PortEntry> assignWorkers(List<PortEntry> ports, int workers) {
        // Sized for any index the parser lets through, even when workers itself was invalid.
        int[] load = new int[MAX_WORKERS];
        for (PortEntry p : ports) {
            if (p.workerGiven()) {
                load[p.port().worker()]++;
            }
        }
        List<PortEntry> assigned = new ArrayList<>();
        for (PortEntry p : ports) {
            if (p.workerGiven()) {
                assigned.add(p);
                continue;
            }
            int best = 0;
            for (int w = 1; w < workers; w++) {
                if (load[w] < load[best]) {
                    best = w;
                }
            }
            load[best]++;
            assigned.add(new PortEntry(p.port().withWorker(best), p.at(), p.nameAt(), p.socketAt(), false));
        }
        return assigned;
    }

    private static int intOr(YamlMapping m, String key, int min, int max, int fallback) {
        return m.get(key).flatMap(v -> v.asInt(min, max)).orElse(fallback);
    }
}
