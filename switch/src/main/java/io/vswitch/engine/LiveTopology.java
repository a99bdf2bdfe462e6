package io.vswitch.engine;

import io.vswitch.config.BridgeMode;
import io.vswitch.config.ConfigError;
import io.vswitch.config.ConfigException;
import io.vswitch.config.ConfigLoader;
import io.vswitch.config.Link;
import io.vswitch.config.NotifyMode;
import io.vswitch.config.PortConfig;
import io.vswitch.config.SocketRole;
import io.vswitch.config.SwitchConfig;
import io.vswitch.config.SwitchSettings;
import io.vswitch.config.TopologyWriter;
import io.vswitch.config.VlanMode;
import io.vswitch.vhost.SocketInUseException;
import io.vswitch.vhost.VhostUserPort;
import io.vswitch.vhost.memory.GuestMemory;
import io.vswitch.vhost.memory.MemoryRegion;
import io.vswitch.protocol.Features;
import io.vswitch.vhost.virtio.VirtQueue;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Pattern;

/**
 * Changes to a running switch's topology: ports added, deleted and changed, links, the MAC table, {@code show},
 * {@code save} and {@code reload}. Everything here runs on control threads, one change at a time; workers see a
 * change only as a queued command (or, for a MAC table flush and a MAC limit, as the lock-free table's own
 * writes). A change is checked whole before any of it is applied, and refused with a message otherwise:
 * {@link Refused} carries the exit code (2: the request is wrong, 1: the system refused, e.g. a socket in use).
 *
 * <p>Ports added at runtime are not written anywhere: a restart runs the topology file again. {@code save}
 * writes the running topology as a file that reproduces it.
 */
public final class LiveTopology {
    private static final System.Logger LOG = System.getLogger("vswitch");
    /** How long a control thread waits for a worker to run a command before reporting it stuck. */
    private static final long WORKER_ANSWER_SECONDS = 10;
    private static final Pattern INT = Pattern.compile("[0-9]{1,9}");
    private static final Pattern INT_LIST = Pattern.compile("[0-9]{1,9}(,[0-9]{1,9})*");
    private static final Pattern WORD = Pattern.compile("[a-z-]{1,20}");
    /** Keys {@code port set} changes live; anything else needs the port deleted and added again. */
    public static final List<String> LIVE_KEYS = List.of("vlan", "trunk", "mtu", "mac-limit");
    static final List<String> ADD_KEYS = List.of("socket", "mode", "vlan", "trunk", "mtu", "mac-limit", "worker", "notify");

    private final Switch sw;
    /** The file {@code reload} (and SIGHUP) reads when given none; empty for the built-in default topology. */
    private volatile Optional<Path> configFile;

    /** A change refused, with the exit code the CLI reports. */
    public static final class Refused extends RuntimeException {
        private final int exitCode;

        public Refused(int exitCode, String message) {
            super(message, null, false, false);
            this.exitCode = exitCode;
        }

        public int exitCode() {
            return exitCode;
        }
    }

    public LiveTopology(Switch sw, Optional<Path> configFile) {
        this.sw = sw;
        this.configFile = configFile;
    }

    public SwitchConfig running() {
        return sw.config();
    }

    // ------------------------------------------------------------------ ports

    /** {@code port add NAME key=value...}: keys of {@link #ADD_KEYS}. */
    public synchronized String addPort(String name, Map<String, String> settings) {
        for (String key : settings.keySet()) {
            if (!ADD_KEYS.contains(key)) {
                throw usage("unknown setting '" + key + "'; port add takes " + String.join(", ", ADD_KEYS));
            }
        }
        if (!settings.containsKey("socket")) {
            throw usage("port add needs socket=PATH");
        }
        PortConfig pc = parsePort(name, settings, "port add");
        pc = placeOnWorker(pc, settings.containsKey("worker"), settings.containsKey("notify"));
        checkNewPort(pc, Set.of());
        add(pc);
        return "port " + name + " added (worker " + pc.worker() + ", socket " + pc.socket() + ")";
    }

    /** Uplink ports (vxlan, afpacket) are opened and closed with the switch only, for now. */
    private static Optional<String> uplinkProblem(PortConfig pc, String what) {
        return pc.isVhostUser() ? Optional.empty() : Optional.of("port " + pc.name() + " is an uplink (vxlan or afpacket):"
                + " uplinks cannot be " + what + " at runtime yet; change the file and restart the switch");
    }

    private static void refuseUplink(PortConfig pc, String what) {
        uplinkProblem(pc, what).ifPresent(problem -> {
            throw new Refused(1, problem);
        });
    }

    /** {@code port del NAME}: link down for its guest, memory and fds released, socket file removed. */
    public synchronized String deletePort(String name) {
        PortConfig pc = existing(name);
        refuseUplink(pc, "deleted");
        delete(pc);
        return "port " + name + " deleted";
    }

    /** {@code port set NAME key=value...}: keys of {@link #LIVE_KEYS}; {@code vlan=none} / {@code trunk=none} clear them. */
    public synchronized String setPort(String name, Map<String, String> changes) {
        PortConfig old = existing(name);
        if (changes.isEmpty()) {
            throw usage("port set needs KEY=VALUE, with KEY one of " + String.join(", ", LIVE_KEYS));
        }
        for (String key : changes.keySet()) {
            if (!LIVE_KEYS.contains(key)) {
                throw usage("'" + key + "' cannot change live (only " + String.join(", ", LIVE_KEYS)
                        + "); delete the port and add it again, or change the file and reload");
            }
        }
        if (changes.containsKey("vlan") && changes.containsKey("trunk")
                && !"none".equals(changes.get("vlan")) && !"none".equals(changes.get("trunk"))) {
            throw usage("a port is either an access port (vlan) or a trunk, not both");
        }
        Map<String, String> merged = asSettings(old);
        for (var change : changes.entrySet()) {
            if ("none".equals(change.getValue()) && (change.getKey().equals("vlan") || change.getKey().equals("trunk"))) {
                merged.remove(change.getKey());
            } else {
                if (change.getKey().equals("vlan")) {
                    merged.remove("trunk");
                } else if (change.getKey().equals("trunk")) {
                    merged.remove("vlan");
                }
                merged.put(change.getKey(), change.getValue());
            }
        }
        PortConfig next = parsePort(name, merged, "port set");
        checkMtu(next);
        apply(old, next);
        return "port " + name + ": " + describeChange(old, next);
    }

    // ------------------------------------------------------------------ links

    public synchronized String link(String a, String b) {
        requireCrossConnect("link add");
        PortConfig pa = existing(a);
        PortConfig pb = existing(b);
        if (a.equals(b)) {
            throw usage("cannot link port " + a + " to itself");
        }
        for (String p : List.of(a, b)) {
            Optional<Link> l = linkOf(p);
            if (l.isPresent()) {
                throw usage("port " + p + " is already linked to " + l.get().other(p) + "; link del first");
            }
        }
        SwitchPort sa = live(pa.name());
        SwitchPort sb = live(pb.name());
        setPeer(sa, sb);
        setPeer(sb, sa);
        List<Link> links = new ArrayList<>(running().links());
        links.add(new Link(a, b));
        sw.setConfig(new SwitchConfig(running().settings(), running().ports(), links));
        return "linked " + a + " <-> " + b;
    }

    public synchronized String unlink(String a, String b) {
        requireCrossConnect("link del");
        existing(a);
        existing(b);
        Link link = linkOf(a).filter(l -> l.contains(b) && !a.equals(b))
                .orElseThrow(() -> usage("ports " + a + " and " + b + " are not linked"));
        unlink(link);
        return "unlinked " + a + " <-> " + b;
    }

    private void unlink(Link link) {
        SwitchPort a = live(link.first());
        SwitchPort b = live(link.second());
        setPeer(a, null);
        setPeer(b, null);
        List<Link> links = new ArrayList<>(running().links());
        links.remove(link);
        sw.setConfig(new SwitchConfig(running().settings(), running().ports(), links));
    }

    private void setPeer(SwitchPort port, SwitchPort peer) {
        for (SwitchPort shard : port.shards()) {   // every worker that polls one of the port's queue pairs
            runOn(sw.workers().get(shard.worker), () -> shard.peer = peer);
        }
    }

    private Optional<Link> linkOf(String port) {
        return running().links().stream().filter(l -> l.contains(port)).findFirst();
    }

    private void requireCrossConnect(String what) {
        if (running().settings().mode() != BridgeMode.CROSS_CONNECT) {
            throw usage(what + ": links exist in cross-connect mode only (this switch runs "
                    + running().settings().mode().yamlName() + ")");
        }
    }

    // ------------------------------------------------------------------ MAC table

    /** The learned MACs, optionally of one port: {@code mac vlan port age_ms} per line, or JSON. */
    public synchronized String macList(Optional<String> port, boolean json) {
        MacTable table = requireMacTable("mac list");
        int only = port.map(p -> live(existing(p).name()).index).orElse(-1);
        SwitchPort[] byIndex = sw.table();
        List<Map<String, Object>> entries = new ArrayList<>();
        table.forEachLive((mac, vlan, index, age) -> {
            if ((only < 0 || index == only) && index >= 0 && index < byIndex.length && byIndex[index] != null
                    && sw.livePorts().contains(byIndex[index])) {
                Map<String, Object> e = new LinkedHashMap<>();
                e.put("mac", formatMac(mac));
                e.put("vlan", vlan);
                e.put("port", byIndex[index].name);
                e.put("age_ms", age);
                entries.add(e);
            }
        });
        entries.sort((x, y) -> ((String) x.get("mac")).compareTo((String) y.get("mac")));
        if (json) {
            return Json.write(entries);
        }
        StringBuilder out = new StringBuilder(String.format("%-17s %4s %-12s %8s%n", "mac", "vlan", "port", "age_ms"));
        for (Map<String, Object> e : entries) {
            out.append(String.format("%-17s %4d %-12s %8d%n", e.get("mac"), e.get("vlan"), e.get("port"), e.get("age_ms")));
        }
        out.append(entries.size()).append(" entr").append(entries.size() == 1 ? "y" : "ies").append('\n');
        return out.toString();
    }

    public synchronized String macFlush(Optional<String> port) {
        MacTable table = requireMacTable("mac flush");
        List<SwitchPort> which = port.isPresent() ? List.of(live(existing(port.get()).name())) : List.copyOf(sw.livePorts());
        for (SwitchPort p : which) {
            table.flush(p.index);
        }
        return "flushed the MACs of " + (port.isPresent() ? "port " + port.get() : "every port");
    }

    private MacTable requireMacTable(String what) {
        MacTable table = sw.macTable();
        if (table == null) {
            throw usage(what + ": no MAC table in cross-connect mode");
        }
        return table;
    }

    static String formatMac(long mac) {
        StringBuilder s = new StringBuilder();
        for (int shift = 40; shift >= 0; shift -= 8) {
            s.append(String.format("%02x", (mac >>> shift) & 0xFF));
            if (shift > 0) {
                s.append(':');
            }
        }
        return s.toString();
    }

    // ------------------------------------------------------------------ show, save

    /** What {@code show --json} prints: the switch, every port's state and every worker. */
    public synchronized Map<String, Object> describe() {
        SwitchConfig config = running();
        Map<String, Object> out = new LinkedHashMap<>();
        Map<String, Object> settings = new LinkedHashMap<>();
        settings.put("pid", ProcessHandle.current().pid());
        settings.put("mode", config.settings().mode().yamlName());
        settings.put("notify", config.settings().notifyMode().yamlName());
        settings.put("workers", config.settings().workers());
        settings.put("runtime_dir", config.settings().runtimeDir().toString());
        settings.put("counters", sw.countersPath().toString());
        settings.put("config_file", configFile.map(Path::toString).orElse(null));
        out.put("switch", settings);
        List<Object> ports = new ArrayList<>();
        for (PortConfig pc : config.ports()) {
            SwitchPort p = live(pc.name());
            Map<String, Object> port = new LinkedHashMap<>();
            port.put("name", pc.name());
            if (!pc.isVhostUser()) {
                port.put("type", "uplink");
                port.put("uplink", p.uplink.describe());
                port.put("worker", pc.worker());
                port.put("mtu", pc.mtu());
                port.put("macs", sw.macTable() == null ? 0 : sw.macTable().learnedOn(p.index));
                ports.add(port);
                continue;
            }
            port.put("type", "vhost-user");
            port.put("role", pc.role().yamlName());
            port.put("socket", pc.socket().toString());
            port.put("connected", p.vhost.isConnected());
            port.put("link", p.counters.linkUp.get() == 1 ? "up" : "down");
            port.put("worker", pc.worker());
            port.put("notify", sw.workers().get(pc.worker()).mode().yamlName());
            switch (pc.vlan()) {
                case VlanMode.Access a -> port.put("vlan", a.vlan());
                case VlanMode.Trunk t -> port.put("trunk", t.vlans());
                case VlanMode.Untagged u -> { }
            }
            port.put("mtu", pc.mtu());
            port.put("guest_mtu", p.device.mtu());   // what the frontend gave the guest (NET_SET_MTU), 0 if none
            port.put("mac_limit", pc.macLimit());
            port.put("macs", sw.macTable() == null ? 0 : sw.macTable().learnedOn(p.index));
            linkOf(pc.name()).ifPresent(l -> port.put("linked_to", l.other(pc.name())));
            long features = p.device.features();
            port.put("features", featureNames(features, false));
            port.put("protocol_features", featureNames(p.device.protocolFeatures(), true));
            Map<String, Object> queues = new LinkedHashMap<>();
            queues.put("rx", queueState(p.device.rxQueue()));
            queues.put("tx", queueState(p.device.txQueue()));
            // multiqueue: pairs offered, pairs the frontend enabled, pairs in use now, and who owns each pair
            queues.put("pairs", p.device.queuePairs());
            queues.put("enabled", p.device.enabledPairs());
            queues.put("rx_in_use", io.vswitch.vhost.net.VirtioNetDevice.pairList(p.device.rxMask()));
            queues.put("tx_in_use", io.vswitch.vhost.net.VirtioNetDevice.pairList(p.device.txMask()));
            List<Integer> pairWorkers = new ArrayList<>();
            for (int pair = 0; pair < pc.queues(); pair++) {
                pairWorkers.add(pc.queueWorker(pair));
            }
            queues.put("workers", pairWorkers);
            port.put("queues", queues);
            List<Object> regions = new ArrayList<>();
            GuestMemory memory = p.device.memory();
            for (int i = 0; memory != null && i < memory.regionCount(); i++) {
                MemoryRegion r = memory.region(i);
                Map<String, Object> region = new LinkedHashMap<>();
                region.put("guest_phys_addr", "0x" + Long.toHexString(r.guestPhysAddr()));
                region.put("size", r.size());
                region.put("user_addr", "0x" + Long.toHexString(r.userAddr()));
                regions.add(region);
            }
            port.put("memory_regions", regions);
            ports.add(port);
        }
        out.put("ports", ports);
        List<Object> workers = new ArrayList<>();
        for (Worker w : sw.workers()) {
            Map<String, Object> worker = new LinkedHashMap<>();
            worker.put("id", w.id());
            var cpu = config.settings().cpuFor(w.id());
            worker.put("cpu", cpu.isPresent() ? (Object) cpu.getAsInt() : null);
            worker.put("notify", w.mode().yamlName());
            worker.put("ports", config.portsOf(w.id()).stream().map(PortConfig::name).toList());
            workers.add(worker);
        }
        out.put("workers", workers);
        return out;
    }

    private static Map<String, Object> queueState(VirtQueue q) {
        Map<String, Object> state = new LinkedHashMap<>();
        state.put("size", q.isConfigured() ? q.size() : 0);
        state.put("broken", q.isBroken());
        return state;
    }

    /** The names of the bits set in {@code features} (virtio/vhost device bits, or vhost-user protocol bits). */
    static List<String> featureNames(long features, boolean protocol) {
        Map<Integer, String> names = new TreeMap<>();
        for (Field f : Features.class.getFields()) {
            if (Modifier.isStatic(f.getModifiers()) && f.getType() == int.class
                    && f.getName().startsWith("PROTOCOL_F_") == protocol) {
                try {
                    names.putIfAbsent(f.getInt(null), f.getName());
                } catch (IllegalAccessException e) {
                    throw new IllegalStateException(e);
                }
            }
        }
        List<String> out = new ArrayList<>();
        for (int bit = 0; bit < 64; bit++) {
            if ((features & (1L << bit)) != 0) {
                out.add(names.getOrDefault(bit, "bit" + bit));
            }
        }
        return out;
    }

    public synchronized String show() {
        Map<String, Object> d = describe();
        StringBuilder out = new StringBuilder();
        @SuppressWarnings("unchecked") Map<String, Object> s = (Map<String, Object>) d.get("switch");
        out.append(String.format("vswitch pid %s: %s mode, notify %s, %s worker(s), runtime dir %s%n", s.get("pid"),
                s.get("mode"), s.get("notify"), s.get("workers"), s.get("runtime_dir")));
        for (Object o : (List<?>) d.get("ports")) {
            Map<?, ?> p = (Map<?, ?>) o;
            Map<?, ?> q = (Map<?, ?>) p.get("queues");
            out.append(String.format("%nport %s (%s, %s)%n", p.get("name"), p.get("role"), p.get("socket")));
            out.append(String.format("  connected %s, link %s, worker %s, notify %s, mtu %s, mac-limit %s, macs %s%s%s%n",
                    (Boolean) p.get("connected") ? "yes" : "no", p.get("link"), p.get("worker"), p.get("notify"),
                    p.get("mtu"), p.get("mac_limit"), p.get("macs"),
                    p.containsKey("vlan") ? ", vlan " + p.get("vlan") : p.containsKey("trunk") ? ", trunk " + p.get("trunk") : "",
                    p.containsKey("linked_to") ? ", linked to " + p.get("linked_to") : ""));
            if (((Number) q.get("pairs")).intValue() > 1) {
                out.append(String.format("  queues: %s pairs, %s enabled (in use: rx %s, tx %s), workers by pair %s;"
                        + " rx %s, tx %s entries%n", q.get("pairs"), q.get("enabled"), q.get("rx_in_use"),
                        q.get("tx_in_use"), q.get("workers"), ((Map<?, ?>) q.get("rx")).get("size"),
                        ((Map<?, ?>) q.get("tx")).get("size")));
            } else {
                out.append(String.format("  queues: rx %s, tx %s%n", ((Map<?, ?>) q.get("rx")).get("size"),
                        ((Map<?, ?>) q.get("tx")).get("size")));
            }
            out.append("  features: ").append(String.join(" ", (List<String>) cast(p.get("features")))).append('\n');
            out.append("  protocol features: ").append(String.join(" ", (List<String>) cast(p.get("protocol_features"))))
                    .append('\n');
            for (Object r : (List<?>) p.get("memory_regions")) {
                Map<?, ?> region = (Map<?, ?>) r;
                out.append(String.format("  memory: guest %s, %d MiB, at %s%n", region.get("guest_phys_addr"),
                        ((Long) region.get("size")) >> 20, region.get("user_addr")));
            }
        }
        out.append('\n');
        for (Object o : (List<?>) d.get("workers")) {
            Map<?, ?> w = (Map<?, ?>) o;
            out.append(String.format("worker %s: cpu %s, notify %s, ports %s%n", w.get("id"),
                    w.get("cpu") == null ? "any" : w.get("cpu"), w.get("notify"), w.get("ports")));
        }
        return out.toString();
    }

    @SuppressWarnings("unchecked")
    private static List<String> cast(Object o) {
        return (List<String>) o;
    }

    /** The running topology as a topology file; refused while a cross-connect port has no link (no valid file says that). */
    public synchronized String save() {
        SwitchConfig config = running();
        if (config.settings().mode() == BridgeMode.CROSS_CONNECT) {
            List<String> unlinked = config.ports().stream().map(PortConfig::name)
                    .filter(n -> linkOf(n).isEmpty()).toList();
            if (!unlinked.isEmpty()) {
                throw failure("cannot save: port(s) " + String.join(", ", unlinked)
                        + " have no link, which a cross-connect topology file cannot express; link or delete them first");
            }
        }
        String yaml = TopologyWriter.write(config);
        SwitchConfig back = ConfigLoader.parse(yaml, "saved topology");
        if (!back.equals(config)) {
            throw failure("internal error: the saved topology does not read back as the running one");
        }
        return "# vswitch topology saved from the running switch (pid " + ProcessHandle.current().pid() + ")\n" + yaml;
    }

    // ------------------------------------------------------------------ reload

    public Optional<Path> configFile() {
        return configFile;
    }

    /**
     * Reads {@code file} (or the file the switch runs), checks all of it, and applies only the difference: new
     * ports added, missing ports deleted, live settings changed in place, ports whose other settings changed
     * deleted and added again (their guest reconnects), links changed; unchanged ports are not touched.
     */
    public synchronized String reload(Optional<Path> file) {
        Path path = file.or(() -> configFile).orElseThrow(() -> usage(
                "reload: the switch runs the built-in default topology; give --config FILE"));
        SwitchConfig next;
        Set<String> workerGiven;
        try {
            String text = Files.readString(path);
            next = ConfigLoader.parse(text, path.toString());
            workerGiven = portsWithWorkerKey(text);
        } catch (IOException e) {
            throw usage("reload: cannot read " + path + ": " + e.getMessage());
        } catch (ConfigException e) {
            throw usage("reload: " + path + " is not valid, nothing changed:\n" + e.getMessage());
        }
        SwitchConfig now = running();
        List<String> problems = new ArrayList<>(Switch.unsupported(next));
        problems.addAll(settingsChanges(now.settings(), next.settings()));
        // a port that does not pin its worker keeps the one it runs on, or gets the least loaded one
        List<PortConfig> placed = new ArrayList<>();
        int[] load = new int[now.settings().workers()];
        next.ports().forEach(p -> {
            if (workerGiven.contains(p.name())) {
                load[p.worker()]++;
            }
        });
        for (PortConfig p : next.ports()) {
            Optional<PortConfig> old = now.port(p.name());
            PortConfig q = p;
            if (!workerGiven.contains(p.name())) {
                q = old.isPresent() && old.get().worker() < load.length ? p.withWorker(old.get().worker()) : p;
                if (old.isEmpty()) {
                    q = leastLoaded(p, load);
                }
                load[q.worker()]++;
            }
            placed.add(q);
        }
        next = new SwitchConfig(next.settings().withMetrics(now.settings().metrics()), placed, next.links());
        for (PortConfig p : next.ports()) {
            for (int w : p.allQueueWorkers()) {   // every worker that would own one of its queue pairs
                NotifyMode mode = sw.workers().get(w).mode();
                if (p.notifyMode() != mode) {
                    problems.add("port " + p.name() + ": notify " + p.notifyMode().yamlName() + " but worker " + w
                            + " runs " + mode.yamlName() + " (a worker's mode is fixed until restart)");
                    break;
                }
            }
            try {
                checkMtu(p);
            } catch (Refused e) {
                problems.add(e.getMessage());
            }
        }
        // the plan
        List<PortConfig> removed = new ArrayList<>();
        List<PortConfig> added = new ArrayList<>();
        List<PortConfig[]> changed = new ArrayList<>();
        List<PortConfig[]> replaced = new ArrayList<>();
        List<String> unchanged = new ArrayList<>();
        for (PortConfig old : now.ports()) {
            Optional<PortConfig> p = next.port(old.name());
            if (p.isEmpty()) {
                removed.add(old);
            } else if (p.get().equals(old)) {
                unchanged.add(old.name());
            } else if (onlyLiveKeysDiffer(old, p.get())) {
                changed.add(new PortConfig[] {old, p.get()});
            } else {
                replaced.add(new PortConfig[] {old, p.get()});
            }
        }
        for (PortConfig p : next.ports()) {
            if (now.port(p.name()).isEmpty()) {
                added.add(p);
            }
        }
        for (PortConfig p : removed) {
            uplinkProblem(p, "removed").ifPresent(problems::add);
        }
        for (PortConfig p : added) {
            uplinkProblem(p, "added").ifPresent(problems::add);
        }
        for (PortConfig[] r : replaced) {
            uplinkProblem(r[0], "changed").or(() -> uplinkProblem(r[1], "changed")).ifPresent(problems::add);
        }
        Set<Set<String>> nowLinks = linkSet(now.links());
        Set<Set<String>> nextLinks = linkSet(next.links());
        Set<String> replacedNames = new HashSet<>();
        replaced.forEach(r -> replacedNames.add(r[0].name()));
        List<Link> linksGone = now.links().stream().filter(l -> !nextLinks.contains(Set.of(l.first(), l.second()))
                || replacedNames.contains(l.first()) || replacedNames.contains(l.second())).toList();
        List<Link> linksNew = next.links().stream().filter(l -> !nowLinks.contains(Set.of(l.first(), l.second()))
                || replacedNames.contains(l.first()) || replacedNames.contains(l.second())).toList();
        // sockets: freed ones may be taken by new ports; others must not be served by anyone else
        Set<Path> freed = new HashSet<>();
        removed.forEach(p -> freed.add(p.socket()));
        replaced.forEach(r -> freed.add(r[0].socket()));
        List<PortConfig> toAdd = new ArrayList<>(added);
        replaced.forEach(r -> toAdd.add(r[1]));
        if (sw.table().length + toAdd.size() > Switch.MAX_PORT_INDICES) {
            problems.add("the switch has used " + sw.table().length + " of its " + Switch.MAX_PORT_INDICES
                    + " port indices; restart it to add " + toAdd.size() + " more");
        }
        for (PortConfig p : toAdd) {
            try {
                checkSocketFree(p, freed);
            } catch (Refused e) {
                problems.add(e.getMessage());
            }
        }
        if (!problems.isEmpty()) {
            throw usage("reload: " + path + " cannot be applied, nothing changed:\n  " + String.join("\n  ", problems));
        }
        // apply: links first undone, ports deleted, added, changed, links made
        List<String> done = new ArrayList<>();
        try {
            for (Link l : linksGone) {
                unlink(l);
                done.add("unlinked " + l.first() + " <-> " + l.second());
            }
            for (PortConfig p : removed) {
                delete(running().port(p.name()).orElseThrow());
                done.add("deleted " + p.name());
            }
            for (PortConfig[] r : replaced) {
                delete(running().port(r[0].name()).orElseThrow());
                add(r[1]);
                done.add("replaced " + r[0].name() + " (" + describeChange(r[0], r[1]) + ")");
            }
            for (PortConfig p : added) {
                add(p);
                done.add("added " + p.name());
            }
            for (PortConfig[] c : changed) {
                apply(running().port(c[0].name()).orElseThrow(), c[1]);
                done.add("changed " + c[0].name() + " (" + describeChange(c[0], c[1]) + ")");
            }
            for (Link l : linksNew) {
                link(l.first(), l.second());
                done.add("linked " + l.first() + " <-> " + l.second());
            }
        } catch (RuntimeException e) {
            LOG.log(Level.ERROR, "reload from {0} stopped part way: {1}; done: {2}", path, e.getMessage(), done);
            throw failure("reload stopped part way: " + e.getMessage() + "\n  done before that: "
                    + (done.isEmpty() ? "nothing" : String.join("; ", done)));
        }
        // the running topology in the file's order
        List<PortConfig> ordered = next.ports().stream().map(p -> running().port(p.name()).orElseThrow()).toList();
        sw.setConfig(new SwitchConfig(running().settings(), ordered, running().links()));
        configFile = Optional.of(path);
        String summary = "reload from " + path + ": " + (done.isEmpty() ? "no change" : String.join("; ", done))
                + (unchanged.isEmpty() ? "" : "; unchanged: " + String.join(", ", unchanged));
        LOG.log(Level.INFO, summary);
        return summary;
    }

    private static Set<Set<String>> linkSet(List<Link> links) {
        Set<Set<String>> set = new HashSet<>();
        links.forEach(l -> set.add(Set.of(l.first(), l.second())));
        return set;
    }

    /** Names of the ports that set {@code worker:} themselves (the parser assigns the others by file order). */
    private static Set<String> portsWithWorkerKey(String text) {
        Set<String> names = new HashSet<>();
        Object root = new Yaml(new LoaderOptions()).load(text);
        if (root instanceof Map<?, ?> top && top.get("ports") instanceof List<?> ports) {
            for (Object p : ports) {
                if (p instanceof Map<?, ?> m && m.containsKey("worker") && m.get("name") != null) {
                    names.add(String.valueOf(m.get("name")));
                }
            }
        }
        return names;
    }

    private static List<String> settingsChanges(SwitchSettings now, SwitchSettings next) {
        List<String> out = new ArrayList<>();
        change(out, "mode", now.mode(), next.mode());
        change(out, "notify", now.notifyMode(), next.notifyMode());
        change(out, "workers", now.workers(), next.workers());
        change(out, "cpus", now.cpus(), next.cpus());
        change(out, "burst", now.burst(), next.burst());
        change(out, "mac-aging-seconds", now.macAgingSeconds(), next.macAgingSeconds());
        change(out, "hybrid-quiet-polls", now.hybridQuietPolls(), next.hybridQuietPolls());
        change(out, "runtime-dir", now.runtimeDir().toAbsolutePath().normalize(), next.runtimeDir().toAbsolutePath().normalize());
        return out;
    }

    private static void change(List<String> out, String key, Object now, Object next) {
        if (!Objects.equals(now, next)) {
            out.add("switch." + key + " changes (" + now + " -> " + next + "): that needs a restart");
        }
    }

    private static boolean onlyLiveKeysDiffer(PortConfig a, PortConfig b) {
        return a.name().equals(b.name()) && a.socket().equals(b.socket()) && a.role() == b.role()
                && a.notifyMode() == b.notifyMode() && a.worker() == b.worker() && a.queues() == b.queues()
                && a.queueWorkers().equals(b.queueWorkers())
                && a.socketMode().equals(b.socketMode()) && a.socketGroup().equals(b.socketGroup())
                && a.offloads() == b.offloads();   // the guest negotiates them at connect: re-added
    }

    private static String describeChange(PortConfig a, PortConfig b) {
        List<String> d = new ArrayList<>();
        if (!a.socket().equals(b.socket())) {
            d.add("socket " + a.socket() + " -> " + b.socket());
        }
        if (a.role() != b.role()) {
            d.add("mode " + a.role().yamlName() + " -> " + b.role().yamlName());
        }
        if (a.notifyMode() != b.notifyMode()) {
            d.add("notify " + a.notifyMode().yamlName() + " -> " + b.notifyMode().yamlName());
        }
        if (a.worker() != b.worker()) {
            d.add("worker " + a.worker() + " -> " + b.worker());
        }
        if (!a.vlan().equals(b.vlan())) {
            d.add("vlan " + vlanText(a.vlan()) + " -> " + vlanText(b.vlan()));
        }
        if (a.mtu() != b.mtu()) {
            d.add("mtu " + a.mtu() + " -> " + b.mtu());
        }
        if (a.macLimit() != b.macLimit()) {
            d.add("mac-limit " + a.macLimit() + " -> " + b.macLimit());
        }
        if (a.queues() != b.queues()) {
            d.add("queues " + a.queues() + " -> " + b.queues());
        }
        if (!a.queueWorkers().equals(b.queueWorkers())) {
            d.add("workers " + a.queueWorkers() + " -> " + b.queueWorkers());
        }
        if (!a.socketMode().equals(b.socketMode()) || !a.socketGroup().equals(b.socketGroup())) {
            d.add("socket ownership");
        }
        return d.isEmpty() ? "no change" : String.join(", ", d);
    }

    private static String vlanText(VlanMode v) {
        return switch (v) {
            case VlanMode.Access a -> Integer.toString(a.vlan());
            case VlanMode.Trunk t -> "trunk " + t.vlans();
            case VlanMode.Untagged u -> "none";
        };
    }

    // ------------------------------------------------------------------ the mechanics

    /** Checks {@code pc} as a new port: unique name and socket, a free socket, room for its index and counters. */
    private void checkNewPort(PortConfig pc, Set<Path> freed) {
        if (running().port(pc.name()).isPresent()) {
            throw usage("a port named " + pc.name() + " exists already");
        }
        checkMtu(pc);
        if (sw.table().length >= Switch.MAX_PORT_INDICES) {
            throw failure("the switch has used all its " + Switch.MAX_PORT_INDICES + " port indices; restart it");
        }
        checkSocketFree(pc, freed);
    }

    private void checkSocketFree(PortConfig pc, Set<Path> freed) {
        for (PortConfig other : running().ports()) {
            if (other.socket().equals(pc.socket()) && !freed.contains(pc.socket())) {
                throw usage("socket " + pc.socket() + " is already used by port " + other.name());
            }
        }
        if (pc.role() == SocketRole.SERVER && !freed.contains(pc.socket())
                && Files.exists(pc.socket(), LinkOption.NOFOLLOW_LINKS)) {
            try {
                VhostUserPort.removeStaleSocket(pc.socket());
            } catch (SocketInUseException e) {
                throw failure(e.getMessage());
            } catch (IllegalStateException e) {
                throw failure(e.getMessage());
            }
        }
    }

    private void checkMtu(PortConfig pc) {
        int frame = pc.mtu() + PortConfig.L2_OVERHEAD;
        if (frame > sw.maxCrossWorkerFrame()) {
            throw usage("port " + pc.name() + ": mtu " + pc.mtu() + " is more than the buffers between this switch's "
                    + "workers hold (mtu " + (sw.maxCrossWorkerFrame() - PortConfig.L2_OVERHEAD)
                    + ", sized at start from the largest mtu); restart to raise it");
        }
    }

    private void add(PortConfig pc) {
        SwitchPort[] table = sw.table();
        int index = table.length;
        SwitchPort port;
        try {
            port = sw.newPort(index, pc);
        } catch (IllegalStateException e) {   // Agrona: no room for more counters
            throw failure("no room for port " + pc.name() + "'s counters (" + e.getMessage()
                    + "); delete ports or restart");
        }
        try {
            port.vhost.start();
            if (pc.role() == SocketRole.SERVER) {
                sw.applyOwnership(pc);
            }
        } catch (SocketInUseException e) {
            abandon(port);
            throw failure(e.getMessage());
        } catch (RuntimeException | IOException e) {
            abandon(port);
            throw failure("port " + pc.name() + ": " + e.getMessage());
        }
        if (sw.macTable() != null) {
            sw.macTable().setLimit(index, pc.macLimit());
        }
        SwitchPort[] grown = Arrays.copyOf(table, index + 1);
        grown[index] = port;
        for (Worker w : sw.workers()) {
            submit(w, () -> w.setAllPorts(grown));
            barrier(w);   // commands run in order: once the barrier ran, so did the new table
        }
        sw.addToTable(port, grown);
        sw.attach(port);
        for (SwitchPort shard : port.shards()) {
            barrier(sw.workers().get(shard.worker));   // when add returns, the workers poll the port
        }
        List<PortConfig> ports = new ArrayList<>(running().ports());
        ports.add(pc);
        sw.setConfig(new SwitchConfig(running().settings(), ports, running().links()));
        LOG.log(Level.INFO, "port {0} added at runtime: socket {1}, {2}, worker {3}", pc.name(), pc.socket(),
                pc.role().yamlName(), pc.worker());
    }

    /** A port that never reached the workers: closed, its counters freed. */
    private void abandon(SwitchPort port) {
        try {
            port.vhost.close();
        } finally {
            synchronized (sw.countersLock) {
                port.counters.close();
                if (port.queueCounters != null) {
                    for (QueueCounters q : port.queueCounters) {
                        q.close();
                    }
                }
            }
        }
    }

    private void delete(PortConfig pc) {
        linkOf(pc.name()).ifPresent(this::unlink);
        SwitchPort port = live(pc.name());
        for (SwitchPort shard : port.shards()) {   // each worker that polls one of its queue pairs lets it go
            Worker w = sw.workers().get(shard.worker);
            CompletableFuture<Void> removed = new CompletableFuture<>();
            submit(w, () -> w.removePort(shard, () -> removed.complete(null)));
            await(removed, w);
        }
        sw.removeLive(port);
        // the frontend sees its connection close (link down); the device's memory and fds are released once the
        // worker's grace period is over; the socket file is removed
        port.vhost.close();
        if (sw.macTable() != null) {
            sw.macTable().flush(port.index);
            sw.macTable().setLimit(port.index, 0);
        }
        // no worker may still count on the port: one that looked its MAC up in the same millisecond (its
        // shortcut) is past that after two rounds of commands with a millisecond between them
        sw.workers().forEach(LiveTopology::barrier);
        try {
            Thread.sleep(2);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        sw.workers().forEach(LiveTopology::barrier);
        // frames that were on their way to the port when it left its worker were counted there as port-down
        // drops: publish them (on the worker that counted them) before the counters go, and log the totals
        for (SwitchPort shard : port.shards()) {
            runOn(sw.workers().get(shard.worker), shard::publishCounts);
        }
        PortCounters c = port.counters;
        String totals = "rx " + c.rxPackets.get() + ", tx " + c.txPackets.get() + ", dropped " + (c.dropRxRingFull.get()
                + c.dropRxBufferTooSmall.get() + c.dropQueueFault.get() + c.dropNoBuffers.get() + c.dropPortDown.get() + c.dropInvalid.get() + c.dropOverMtu.get() + c.dropVlan.get());
        synchronized (sw.countersLock) {
            port.counters.close();
                if (port.queueCounters != null) {
                    for (QueueCounters q : port.queueCounters) {
                        q.close();
                    }
                }
        }
        List<PortConfig> ports = new ArrayList<>(running().ports());
        ports.removeIf(p -> p.name().equals(pc.name()));
        sw.setConfig(new SwitchConfig(running().settings(), ports, running().links()));
        LOG.log(Level.INFO, "port {0} deleted at runtime; its final counts: {1}", pc.name(), totals);
    }

    /** Changes the live settings of a port (vlan, trunk, mtu, mac-limit) in one command on its worker. */
    private void apply(PortConfig old, PortConfig next) {
        SwitchPort port = live(old.name());
        int access = next.vlan() instanceof VlanMode.Access a ? a.vlan() : -1;
        long[] trunk = SwitchPort.trunkBits(next.vlan() instanceof VlanMode.Trunk t ? t.vlans() : null);
        int maxFrame = next.maxFrameLength();
        // every worker that polls the port applies it to its own part: a multiqueue port's shards, or a fanout
        // port's members (a worker that does not serve the fanout port has none)
        for (SwitchPort shard : port.fanout != null ? java.util.Arrays.asList(port.fanout) : port.shards()) {
            if (shard == null) {
                continue;
            }
            runOn(sw.workers().get(shard.worker), () -> {
                shard.accessVlan = access;
                shard.trunk = trunk;
                shard.maxFrame = maxFrame;
            });
        }
        // the MTU a frontend may give its guest from now on (NET_SET_MTU); a guest already given a larger one keeps
        // it until it reconnects, and its longer frames are dropped as over_mtu
        if (port.device != null) {
            port.device.setMaxMtu(next.mtu());
        }
        if (sw.macTable() != null) {
            sw.macTable().setLimit(port.index, next.macLimit());
            if (!old.vlan().equals(next.vlan()) || next.macLimit() < old.macLimit()) {
                sw.macTable().flush(port.index);   // learned in a VLAN the port left, or more than it may hold now
            }
        }
        List<PortConfig> ports = new ArrayList<>(running().ports());
        ports.replaceAll(p -> p.name().equals(old.name()) ? next : p);
        sw.setConfig(new SwitchConfig(running().settings(), ports, running().links()));
    }

    /** Runs {@code action} on {@code worker}'s thread between bursts and waits until it has. */
    private static void runOn(Worker worker, Runnable action) {
        CompletableFuture<Void> done = new CompletableFuture<>();
        submit(worker, () -> worker.submit(() -> {
            action.run();
            done.complete(null);
        }));
        await(done, worker);
    }

    private static void barrier(Worker worker) {
        runOn(worker, () -> { });
    }

    /** Retries while the worker's command queue is full. */
    private static void submit(Worker worker, java.util.function.BooleanSupplier offer) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(WORKER_ANSWER_SECONDS);
        while (!offer.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new Refused(1, "worker " + worker.id() + "'s command queue stayed full");
            }
            Thread.onSpinWait();
        }
    }

    private static void await(CompletableFuture<Void> done, Worker worker) {
        try {
            done.get(WORKER_ANSWER_SECONDS, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            throw new Refused(1, "worker " + worker.id() + " did not run the change within " + WORKER_ANSWER_SECONDS + " s");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new Refused(1, "interrupted");
        } catch (ExecutionException e) {
            throw new Refused(1, e.getCause().toString());
        }
    }

    private PortConfig existing(String name) {
        return running().port(name).orElseThrow(() -> usage("no port named '" + name + "' (ports: "
                + String.join(", ", running().ports().stream().map(PortConfig::name).toList()) + ")"));
    }

    private SwitchPort live(String name) {
        return sw.livePorts().stream().filter(p -> p.name.equals(name)).findFirst()
                .orElseThrow(() -> usage("no port named '" + name + "'"));
    }

    /** Picks a worker when none was given: the least loaded one running the port's notify mode (or any, without one). */
    private PortConfig placeOnWorker(PortConfig pc, boolean workerGiven, boolean notifyGiven) {
        List<Worker> workers = sw.workers();
        if (workerGiven) {
            NotifyMode mode = workers.get(pc.worker()).mode();
            if (notifyGiven && pc.notifyMode() != mode) {
                throw usage("worker " + pc.worker() + " runs notify " + mode.yamlName() + ", not "
                        + pc.notifyMode().yamlName() + " (a worker's mode is fixed until restart)");
            }
            return withNotify(pc, mode);
        }
        int[] load = new int[workers.size()];
        running().ports().forEach(p -> load[p.worker()]++);
        int best = -1;
        for (Worker w : workers) {
            if ((!notifyGiven || w.mode() == pc.notifyMode()) && (best < 0 || load[w.id()] < load[best])) {
                best = w.id();
            }
        }
        if (best < 0) {
            throw usage("no worker runs notify " + pc.notifyMode().yamlName() + " (workers run "
                    + workers.stream().map(w -> w.mode().yamlName()).toList() + ")");
        }
        return withNotify(pc.withWorker(best), workers.get(best).mode());
    }

    private PortConfig leastLoaded(PortConfig p, int[] load) {
        int best = -1;
        for (Worker w : sw.workers()) {
            if (w.mode() == p.notifyMode() && (best < 0 || load[w.id()] < load[best])) {
                best = w.id();
            }
        }
        return p.withWorker(best < 0 ? 0 : best);
    }

    private static PortConfig withNotify(PortConfig p, NotifyMode mode) {
        return new PortConfig(p.name(), p.socket(), p.role(), mode, p.worker(), p.macLimit(), p.vlan(), p.mtu(),
                p.queues(), p.socketMode(), p.socketGroup(), null, p.queueWorkers(), p.offloads());
    }

    /** A port's settings as {@code key=value} (what {@link #parsePort} reads back). */
    private static Map<String, String> asSettings(PortConfig p) {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("socket", p.socket().toString());
        m.put("mode", p.role().yamlName());
        m.put("notify", p.notifyMode().yamlName());
        m.put("worker", Integer.toString(p.worker()));
        m.put("mac-limit", Integer.toString(p.macLimit()));
        m.put("mtu", Integer.toString(p.mtu()));
        switch (p.vlan()) {
            case VlanMode.Access a -> m.put("vlan", Integer.toString(a.vlan()));
            case VlanMode.Trunk t -> m.put("trunk", String.join(",", t.vlans().stream().map(String::valueOf).toList()));
            case VlanMode.Untagged u -> { }
        }
        p.socketMode().ifPresent(v -> m.put("socket-mode", "0" + Integer.toOctalString(v)));
        p.socketGroup().ifPresent(v -> m.put("socket-group", v));
        return m;
    }

    /**
     * A port from {@code key=value} settings, checked by the topology parser itself (so the same rules and
     * messages as in a file apply): the settings become a one-port topology.
     */
    private PortConfig parsePort(String name, Map<String, String> s, String what) {
        SwitchSettings settings = running().settings();
        StringBuilder y = new StringBuilder();
        y.append("switch:\n  mode: learning\n  workers: ").append(settings.workers())
                .append("\n  notify: ").append(settings.notifyMode().yamlName())
                .append("\n  runtime-dir: ").append(TopologyWriter.quote(settings.runtimeDir().toString()))
                .append("\nports:\n  - name: ").append(TopologyWriter.quote(name)).append('\n');
        for (var e : s.entrySet()) {
            String key = e.getKey();
            String value = e.getValue();
            String yamlValue = switch (key) {
                case "socket", "socket-group", "socket-mode" -> TopologyWriter.quote(value);
                case "mode", "notify" -> checked(key, value, WORD);
                case "trunk" -> "[" + checked(key, value, INT_LIST) + "]";
                default -> checked(key, value, INT);
            };
            y.append("    ").append(key).append(": ").append(yamlValue).append('\n');
        }
        try {
            PortConfig pc = ConfigLoader.parse(y.toString(), what).ports().getFirst();
            return new PortConfig(pc.name(), pc.socket(), pc.role(), pc.notifyMode(), pc.worker(), pc.macLimit(),
                    pc.vlan(), pc.mtu(), pc.queues(), pc.socketMode(), pc.socketGroup(), null, pc.queueWorkers(), pc.offloads());
        } catch (ConfigException e) {
            List<String> lines = new ArrayList<>();
            for (ConfigError err : e.errors()) {
                String key = err.path().replaceFirst("^ports\\[0\\]\\.?", "");
                lines.add(what + " " + name + ": " + (key.isEmpty() ? "" : key + ": ") + err.message());
            }
            throw usage(String.join("\n", lines));
        }
    }

    private static String checked(String key, String value, Pattern pattern) {
        if (!pattern.matcher(value).matches()) {
            throw usage(key + "=" + value + ": expected " + switch (key) {
                case "trunk" -> "VLAN ids separated by commas, e.g. 10,20";
                case "mode" -> "server or client";
                case "notify" -> "poll, interrupt, hybrid or monitor";
                default -> "a number";
            });
        }
        return value;
    }

    private static Refused usage(String message) {
        return new Refused(2, message);
    }

    private static Refused failure(String message) {
        return new Refused(1, message);
    }
}
