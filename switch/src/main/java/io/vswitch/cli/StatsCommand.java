package io.vswitch.cli;

import io.vswitch.config.SwitchSettings;
import io.vswitch.engine.CountersFile;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "stats", mixinStandardHelpOptions = true,
        description = "Prints the counters of a running switch, read from its counters file without stopping it.")
final class StatsCommand implements Callable<Integer> {
    @Option(names = "--counters", paramLabel = "FILE",
            description = "counters file (default: the default runtime directory's: ${DEFAULT-VALUE})")
    Path file = SwitchSettings.defaultRuntimeDir().resolve(CountersFile.FILE_NAME);

    @Option(names = {"-w", "--watch"}, description = "print again every interval, with rates")
    boolean watch;

    @Option(names = {"-i", "--interval"}, paramLabel = "SECONDS", description = "watch interval (default: ${DEFAULT-VALUE})")
    double interval = 1.0;

    @Option(names = {"-n", "--count"}, paramLabel = "N", description = "with --watch: stop after N tables (default: forever)")
    int count = -1;

    @Option(names = "--json", description = "print the counters once as JSON: {pid, start_time_ms, ports: {NAME: {COUNTER: N}}, workers: {ID: {...}}}")
    boolean json;

    @Override
    public Integer call() throws Exception {
        if (json) {
            try {
                CountersFile.Snapshot snap = CountersFile.read(file);
                Map<String, Object> out = new LinkedHashMap<>();
                out.put("pid", snap.pid());
                out.put("start_time_ms", snap.startMillis());
                out.put("ports", sorted(group(snap, "port")));
                out.put("workers", sorted(group(snap, "worker")));
                Map<String, Map<String, Long>> queues = group(snap, "queue");
                if (!queues.isEmpty()) {
                    out.put("queues", sorted(queues));   // multiqueue ports: "PORT:PAIR" -> rx/tx packets/bytes
                }
                System.out.print(io.vswitch.engine.Json.write(out));
                System.out.flush();
                return Main.EXIT_OK;
            } catch (IOException e) {
                System.err.println("vswitch stats: " + e.getMessage() + " (is the switch running? see --counters)");
                return Main.EXIT_FAILURE;
            }
        }
        CountersFile.Snapshot previous = null;
        long previousNanos = 0;
        for (int printed = 0; count < 0 || printed < Math.max(1, count); printed++) {
            CountersFile.Snapshot now;
            try {
                now = CountersFile.read(file);
            } catch (IOException e) {
                System.err.println("vswitch stats: " + e.getMessage() + " (is the switch running? see --counters)");
                return Main.EXIT_FAILURE;
            }
            long nanos = System.nanoTime();
            print(now, watch ? previous : null, (nanos - previousNanos) / 1e9);
            if (!watch) {
                break;
            }
            previous = now;
            previousNanos = nanos;
            if (count >= 0 && printed + 1 >= count) {
                break;
            }
            Thread.sleep((long) (interval * 1000));
        }
        return Main.EXIT_OK;
    }

    private static final String[][] TABLES = {
        {"rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "link_up", "connections", "notifications", "kicks"},
        {"drop_rx_ring_full", "drop_rx_buffer_too_small", "drop_queue_fault", "drop_no_buffers", "drop_port_down", "drop_invalid",
            "invalid_too_short", "invalid_too_large", "invalid_too_many_pieces", "drop_over_mtu", "drop_vlan", "drop_hairpin", "drop_bad_offload_header", "queue_faults",
            "protocol_errors", "macs_learned", "mac_moves", "macs"},
        {"drop_malformed", "drop_vni", "drop_foreign_vtep", "drop_tx_error"},
    };

    static void print(CountersFile.Snapshot snap, CountersFile.Snapshot previous, double seconds) {
        Map<String, Map<String, Long>> ports = group(snap, "port");
        Map<String, Map<String, Long>> before = previous == null ? Map.of() : group(previous, "port");
        System.out.printf("vswitch pid %d, up %.0f s%n", snap.pid(), (System.currentTimeMillis() - snap.startMillis()) / 1000.0);
        for (int t = 0; t < TABLES.length; t++) {
            if (t == 2 && ports.values().stream().noneMatch(m -> m.containsKey(TABLES[2][0]))) {
                continue;   // no uplinks
            }
            List<String> columns = List.of(TABLES[t]);
            StringBuilder head = new StringBuilder(String.format("%-12s", "port"));
            for (String c : columns) {
                head.append(String.format(" %" + width(c) + "s", c));
            }
            boolean rates = previous != null && t == 0;
            if (rates) {
                head.append(String.format(" %12s %12s", "rx_pps", "tx_pps"));
            }
            System.out.println(head);
            for (var entry : ports.entrySet()) {
                if (t == 2 && !entry.getValue().containsKey(columns.get(0))) {
                    continue;   // the uplinks' table: vhost-user ports have none of these
                }
                StringBuilder row = new StringBuilder(String.format("%-12s", entry.getKey()));
                for (String c : columns) {
                    row.append(String.format(" %" + width(c) + "d", entry.getValue().getOrDefault(c, 0L)));
                }
                if (rates) {
                    Map<String, Long> old = before.getOrDefault(entry.getKey(), Map.of());
                    row.append(String.format(" %12.0f %12.0f",
                            rate(entry.getValue(), old, "rx_packets", seconds), rate(entry.getValue(), old, "tx_packets", seconds)));
                }
                System.out.println(row);
            }
            System.out.println();
        }
        Map<String, Map<String, Long>> queues = group(snap, "queue");
        if (!queues.isEmpty()) {
            System.out.printf("%-12s %12s %12s %12s %12s%n", "port:queue", "rx_packets", "rx_bytes", "tx_packets", "tx_bytes");
            for (var entry : new java.util.TreeMap<>(queues).entrySet()) {
                Map<String, Long> q = entry.getValue();
                System.out.printf("%-12s %12d %12d %12d %12d%n", entry.getKey(), q.getOrDefault("rx_packets", 0L),
                        q.getOrDefault("rx_bytes", 0L), q.getOrDefault("tx_packets", 0L), q.getOrDefault("tx_bytes", 0L));
            }
            System.out.println();
        }
        for (var entry : group(snap, "worker").entrySet()) {
            Map<String, Long> w = entry.getValue();
            System.out.printf("worker %-3s busy_loops %d idle_loops %d sleeps %d wakeups %d cross_worker_frames %d%n",
                    entry.getKey(), w.getOrDefault("busy_loops", 0L), w.getOrDefault("idle_loops", 0L),
                    w.getOrDefault("sleeps", 0L), w.getOrDefault("wakeups", 0L), w.getOrDefault("cross_worker_frames", 0L));
            if (w.containsKey("busy_ns")) {   // the diagnostic -Dvswitch.loopTiming=true (Worker)
                System.out.printf("worker %-3s busy_ns %d idle_ns %d%n", entry.getKey(), w.get("busy_ns"), w.getOrDefault("idle_ns", 0L));
            }
        }
        System.out.flush();
    }

    private static Map<String, Object> sorted(Map<String, Map<String, Long>> groups) {
        Map<String, Object> out = new LinkedHashMap<>();
        groups.forEach((name, counters) -> out.put(name, new java.util.TreeMap<>(counters)));
        return out;
    }

    private static int width(String column) {
        return Math.max(12, column.length());
    }

    private static double rate(Map<String, Long> now, Map<String, Long> old, String key, double seconds) {
        return seconds <= 0 ? 0 : (now.getOrDefault(key, 0L) - old.getOrDefault(key, 0L)) / seconds;
    }

    static Map<String, Map<String, Long>> group(CountersFile.Snapshot snap, String scope) {
        Map<String, Map<String, Long>> out = new LinkedHashMap<>();
        for (CountersFile.Sample s : snap.samples()) {
            if (s.scope().equals(scope)) {
                out.computeIfAbsent(s.name(), k -> new HashMap<>()).put(s.counter(), s.value());
            }
        }
        return out;
    }
}
