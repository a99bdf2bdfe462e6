package io.vswitch.metrics;

import io.prometheus.metrics.model.registry.MultiCollector;
import io.prometheus.metrics.model.snapshots.CounterSnapshot;
import io.prometheus.metrics.model.snapshots.CounterSnapshot.CounterDataPointSnapshot;
import io.prometheus.metrics.model.snapshots.GaugeSnapshot;
import io.prometheus.metrics.model.snapshots.GaugeSnapshot.GaugeDataPointSnapshot;
import io.prometheus.metrics.model.snapshots.Labels;
import io.prometheus.metrics.model.snapshots.MetricSnapshots;
import io.prometheus.metrics.model.snapshots.Unit;
import io.vswitch.engine.CountersFile;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The switch's counters file as Prometheus metric families, read at scrape time on the scraping thread, exactly
 * as {@code vswitch stats} reads it: the values the workers and housekeeping published, never a worker's own
 * fields, and nothing on a worker's thread. Each counter of the file becomes one sample:
 *
 * <pre>
 * file label                 metric
 * port P rx_packets          vswitch_port_rx_packets_total{port="P"}     (and every other port counter alike)
 * port P drop_REASON         vswitch_port_drops_total{port="P",reason="REASON"}
 * port P link_up, macs       vswitch_port_link_up{port="P"}, vswitch_port_macs{port="P"}   (gauges)
 * worker W busy_loops        vswitch_worker_busy_loops_total{worker="W"} (and every other worker counter alike)
 * queue P:Q rx_packets       vswitch_queue_rx_packets_total{port="P",queue="Q"} (and rx_bytes, tx_packets, tx_bytes)
 * header: start time         vswitch_start_time_seconds
 * </pre>
 * A counter this table does not know yet is still exported, as a gauge {@code vswitch_<scope>_<name>}.
 */
public final class CountersCollector implements MultiCollector {
    public static final String PREFIX = "vswitch_";
    public static final String DROPS = "port_drops";
    public static final String DROP_PREFIX = "drop_";

    /** Counter name in the file to help text; counters that are gauges are in {@link #GAUGES}. */
    private static final Map<String, String> PORT_COUNTERS = ordered(
            "rx_packets", "Frames received from the port's guest (the guest's transmit queue).",
            "rx_bytes", "Bytes of frames received from the port's guest.",
            "tx_packets", "Frames transmitted to the port's guest (the guest's receive queue).",
            "tx_bytes", "Bytes of frames transmitted to the port's guest.",
            "notifications", "Notifications sent to the guest (call eventfd writes).",
            "kicks", "Kicks received from the guest (its kick eventfd) while its worker slept on them.",
            "connections", "Frontend connections on the port's socket.",
            "protocol_errors", "vhost-user messages refused or malformed.",
            "queue_faults", "Times a queue was stopped because the guest broke the virtio rules.",
            "macs_learned", "MAC addresses learned on the port.",
            "mac_moves", "MAC addresses that moved to the port from another one.",
            "invalid_too_short", "Invalid frames from the guest shorter than an Ethernet header (part of drop_invalid).",
            "invalid_too_large", "Invalid frames from the guest longer than the largest frame accepted (part of drop_invalid).",
            "invalid_too_many_pieces", "Invalid frames from the guest in more descriptors than a frame may take (part of drop_invalid).");
    private static final Map<String, String> WORKER_COUNTERS = ordered(
            "busy_loops", "Worker passes that moved frames.",
            "idle_loops", "Worker passes that found nothing to do.",
            "sleeps", "Times the worker went to sleep waiting for kicks.",
            "wakeups", "Times the worker woke from sleep.",
            "cross_worker_frames", "Frames handed to another worker.");
    private static final Map<String, String> QUEUE_COUNTERS = ordered(
            "rx_packets", "Frames received from one transmit queue of a multiqueue port's guest.",
            "rx_bytes", "Bytes of frames received from one transmit queue of a multiqueue port's guest.",
            "tx_packets", "Frames transmitted into one receive queue of a multiqueue port's guest.",
            "tx_bytes", "Bytes of frames transmitted into one receive queue of a multiqueue port's guest.");
    private static final Map<String, String> GAUGES = ordered(
            "link_up", "1 while a guest's device is running on the port, else 0.",
            "macs", "MAC table entries held by the port, which mac-limit bounds (an aged-out entry counts until reused).");

    private final Path countersFile;

    public CountersCollector(Path countersFile) {
        this.countersFile = countersFile;
    }

    private static Map<String, String> ordered(String... pairs) {
        Map<String, String> map = new LinkedHashMap<>();
        for (int i = 0; i < pairs.length; i += 2) {
            map.put(pairs[i], pairs[i + 1]);
        }
        return map;
    }

    @Override
    public MetricSnapshots collect() {
        CountersFile.Snapshot snap;
        try {
            snap = CountersFile.read(countersFile);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the counters file: " + e.getMessage(), e);
        }
        return snapshots(snap);
    }

    /** The metric families of one reading of the counters file. */
    public static MetricSnapshots snapshots(CountersFile.Snapshot snap) {
        Map<String, Family> families = new LinkedHashMap<>();
        for (String counter : PORT_COUNTERS.keySet()) {
            family(families, "port_" + counter, true, PORT_COUNTERS.get(counter));
        }
        family(families, DROPS, true, "Frames dropped, by the port whose queue or state caused it, and why.");
        for (String gauge : GAUGES.keySet()) {
            family(families, "port_" + gauge, false, GAUGES.get(gauge));
        }
        for (String counter : WORKER_COUNTERS.keySet()) {
            family(families, "worker_" + counter, true, WORKER_COUNTERS.get(counter));
        }
        for (String counter : QUEUE_COUNTERS.keySet()) {
            family(families, "queue_" + counter, true, QUEUE_COUNTERS.get(counter));
        }
        for (CountersFile.Sample s : snap.samples()) {
            String counter = s.counter();
            if (s.scope().equals("port") && counter.startsWith(DROP_PREFIX)) {
                families.get(DROPS).add(Labels.of("port", s.name(), "reason", counter.substring(DROP_PREFIX.length())),
                        s.value());
                continue;
            }
            String name = s.scope() + "_" + counter;
            Family f = families.get(name);
            if (f == null) {
                f = family(families, name, false, "Counter '" + counter + "' of the counters file.");
            }
            int colon = s.name().lastIndexOf(':');
            if (s.scope().equals("queue") && colon > 0) {   // PORT:PAIR (':' is not allowed in port names)
                f.add(Labels.of("port", s.name().substring(0, colon), "queue", s.name().substring(colon + 1)), s.value());
                continue;
            }
            f.add(Labels.of(s.scope(), s.name()), s.value());
        }
        MetricSnapshots.Builder out = MetricSnapshots.builder();
        for (Family f : families.values()) {
            if (!f.labels.isEmpty()) {
                out.metricSnapshot(f.build());
            }
        }
        out.metricSnapshot(GaugeSnapshot.builder().name(PREFIX + "start_time_seconds").unit(Unit.SECONDS)
                .help("When the switch started, in seconds since the Unix epoch.")
                .dataPoint(GaugeDataPointSnapshot.builder().value(snap.startMillis() / 1000.0).build())
                .build());
        return out.build();
    }

    private static Family family(Map<String, Family> families, String name, boolean counter, String help) {
        return families.computeIfAbsent(name, n -> new Family(PREFIX + n, counter, help));
    }

    /** One metric family being filled: name, type, help and its samples. */
    private static final class Family {
        final String name;
        final boolean counter;
        final String help;
        final List<Labels> labels = new ArrayList<>();
        final List<Long> values = new ArrayList<>();

        Family(String name, boolean counter, String help) {
            this.name = name;
            this.counter = counter;
            this.help = help;
        }

        void add(Labels l, long value) {
            labels.add(l);
            values.add(value);
        }

        io.prometheus.metrics.model.snapshots.MetricSnapshot build() {
            Unit unit = name.endsWith("_bytes") ? Unit.BYTES : null;
            if (counter) {
                CounterSnapshot.Builder b = CounterSnapshot.builder().name(name).help(help);
                if (unit != null) {
                    b.unit(unit);
                }
                for (int i = 0; i < labels.size(); i++) {
                    b.dataPoint(CounterDataPointSnapshot.builder().labels(labels.get(i)).value(values.get(i)).build());
                }
                return b.build();
            }
            GaugeSnapshot.Builder b = GaugeSnapshot.builder().name(name).help(help);
            if (unit != null) {
                b.unit(unit);
            }
            for (int i = 0; i < labels.size(); i++) {
                b.dataPoint(GaugeDataPointSnapshot.builder().labels(labels.get(i)).value(values.get(i)).build());
            }
            return b.build();
        }
    }
}
