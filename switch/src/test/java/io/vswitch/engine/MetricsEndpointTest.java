package io.vswitch.engine;

import io.vswitch.testing.SecondProcess;
import io.vswitch.testing.Promtool;
import io.vswitch.testing.TestFrontend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static io.vswitch.engine.QemuGuestsTest.awaitCounter;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code vswitch run --metrics}: a switch in its own process carries traffic between two Java frontends, and its
 * {@code /metrics} then has every counter that {@code vswitch stats} prints, with the same names, labels and
 * values; {@code promtool check metrics} accepts it; {@code /healthz} answers ok.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class MetricsEndpointTest {
    private static final Pattern SAMPLE = Pattern.compile("^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{(.*)})? (\\S+)$");
    private static final Pattern LABEL = Pattern.compile("([a-zA-Z_][a-zA-Z0-9_]*)=\"([^\"]*)\"");
    private static final byte[] MAC_A = {2, 0, 0, 0, 0, 0x0a};
    private static final byte[] MAC_B = {2, 0, 0, 0, 0, 0x0b};
    private static final byte[] BROADCAST = {-1, -1, -1, -1, -1, -1};

    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
    private Path runtime;
    private SecondProcess.Running sw;
    private String url;
    private TestFrontend a;
    private TestFrontend b;

    @BeforeAll
    void startSwitchAndPassTraffic() throws Exception {
        runtime = Files.createTempDirectory("vsmetrics");
        // port 0: the system picks a free port on loopback, and the switch prints the one it got
        sw = SecondProcess.start("run", "--runtime-dir", runtime.toString(), "--metrics", "127.0.0.1:0");
        sw.awaitOutput("port vm2", Duration.ofSeconds(30));
        Matcher m = Pattern.compile("vswitch: metrics on (http://127\\.0\\.0\\.1:\\d+)/metrics").matcher(sw.output());
        assertTrue(m.find(), sw.output());
        url = m.group(1);

        Path counters = runtime.resolve(CountersFile.FILE_NAME);
        // the guests stay attached until the end, so that the link and MAC gauges have something to show
        a = TestFrontend.connect(runtime.resolve("vm1.sock")).setUp();
        b = TestFrontend.connect(runtime.resolve("vm2.sock")).setUp();
        a.postRxBuffers(32, 2048);
        b.postRxBuffers(32, 2048);
        awaitCounter(counters, "vm1", "link_up", 1);
        awaitCounter(counters, "vm2", "link_up", 1);
        for (int i = 0; i < 5; i++) {
            a.transmit(frame(BROADCAST, MAC_A, 60));
        }
        awaitCounter(counters, "vm2", "tx_packets", 5);
        for (int i = 0; i < 3; i++) {
            b.transmit(frame(MAC_A, MAC_B, 100));
        }
        awaitCounter(counters, "vm1", "tx_packets", 3);
        a.transmit(frame(MAC_B, MAC_A, 1600));   // longer than the MTU allows: dropped, reason over_mtu
        awaitCounter(counters, "vm1", "drop_over_mtu", 1);
        awaitCounter(counters, "vm1", "macs", 1);
        awaitCounter(counters, "vm2", "macs", 1);
    }

    @AfterAll
    void stop() throws Exception {
        for (TestFrontend f : new TestFrontend[] {a, b}) {
            if (f != null) {
                f.close();
            }
        }
        if (sw != null) {
            try {
                assertEquals(0, sw.terminate(), sw.output());
            } finally {
                sw.close();
                try (var files = Files.walk(runtime)) {
                    files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
                }
            }
        }
    }

    @Test
    void metricsCarryEveryCounterOfStatsWithTheSameValues() throws Exception {
        // Port counters stand still once traffic stopped; the workers' loop counters never do, so each metric
        // must lie between a stats reading taken before the scrape and one taken after it.
        Map<String, Map<String, Long>> before = stats();
        HttpResponse<String> scrape = get("/metrics", null);
        Map<String, Map<String, Long>> after = stats();
        assertEquals(200, scrape.statusCode());
        assertTrue(scrape.headers().firstValue("Content-Type").orElse("").startsWith("text/plain"), scrape.headers().toString());
        Map<String, Double> metrics = samples(scrape.body());

        int compared = 0;
        for (var row : after.entrySet()) {
            String[] key = row.getKey().split(" ", 2);   // "port vm1" or "worker 0"
            for (var counter : row.getValue().entrySet()) {
                String sample = metricFor(key[0], key[1], counter.getKey());
                assertTrue(metrics.containsKey(sample), sample + " missing from /metrics:\n" + scrape.body());
                long low = before.get(row.getKey()).get(counter.getKey());
                long high = counter.getValue();
                double value = metrics.get(sample);
                if (key[0].equals("port")) {
                    assertEquals(low, high, "port counters stand still without traffic: " + sample);
                }
                assertTrue(value >= low && value <= high, sample + " = " + value + ", stats said " + low + ".." + high);
                compared++;
            }
        }
        assertEquals(2 * 26 + 5, compared, "26 counters per port, 5 per worker");

        // the traffic is there, under the names and labels the README documents
        // the over-long frame was received (and counted) before it was dropped
        assertEquals(6.0, metrics.get("vswitch_port_rx_packets_total{port=\"vm1\"}"));
        assertEquals(5 * 60.0 + 1600, metrics.get("vswitch_port_rx_bytes_total{port=\"vm1\"}"));
        assertEquals(5.0, metrics.get("vswitch_port_tx_packets_total{port=\"vm2\"}"));
        assertEquals(3.0, metrics.get("vswitch_port_tx_packets_total{port=\"vm1\"}"));
        assertEquals(1.0, metrics.get("vswitch_port_drops_total{port=\"vm1\",reason=\"over_mtu\"}"));
        assertEquals(0.0, metrics.get("vswitch_port_drops_total{port=\"vm2\",reason=\"vlan\"}"));
        assertEquals(1.0, metrics.get("vswitch_port_macs_learned_total{port=\"vm1\"}"));
        assertEquals(1.0, metrics.get("vswitch_port_macs{port=\"vm2\"}"));
        assertEquals(1.0, metrics.get("vswitch_port_link_up{port=\"vm1\"}"));
        assertEquals(1.0, metrics.get("vswitch_port_connections_total{port=\"vm1\"}"));
        assertTrue(metrics.get("vswitch_worker_busy_loops_total{worker=\"0\"}") > 0);
        assertTrue(metrics.get("vswitch_start_time_seconds") > 1.6e9);
        for (String reason : List.of("rx_ring_full", "no_buffers", "port_down", "invalid", "over_mtu", "vlan")) {
            assertTrue(metrics.containsKey("vswitch_port_drops_total{port=\"vm2\",reason=\"" + reason + "\"}"), reason);
        }
        assertTrue(scrape.body().contains("# TYPE vswitch_port_drops_total counter"), scrape.body());
        assertTrue(scrape.body().contains("# TYPE vswitch_port_link_up gauge"), scrape.body());
        assertTrue(scrape.body().contains("# HELP vswitch_port_rx_packets_total "), scrape.body());
    }

    @Test
    void openMetricsWhenTheScraperAsksForIt() throws Exception {
        HttpResponse<String> scrape = get("/metrics", "application/openmetrics-text; version=1.0.0; charset=utf-8");
        assertEquals(200, scrape.statusCode());
        assertTrue(scrape.headers().firstValue("Content-Type").orElse("").startsWith("application/openmetrics-text"),
                scrape.headers().toString());
        assertTrue(scrape.body().endsWith("# EOF\n"), scrape.body());
        assertTrue(scrape.body().contains("# TYPE vswitch_port_rx_bytes counter"), scrape.body());
        assertTrue(scrape.body().contains("# UNIT vswitch_port_rx_bytes bytes"), scrape.body());
        assertEquals(1900.0, samples(scrape.body()).get("vswitch_port_rx_bytes_total{port=\"vm1\"}"), scrape.body());
    }

    @Test
    void promtoolAcceptsTheScrape() throws Exception {
        Promtool.require();
        HttpResponse<String> scrape = get("/metrics", null);
        Promtool.Result lint = Promtool.checkMetrics(scrape.body());
        assertEquals(0, lint.exitCode(), "promtool check metrics:\n" + lint.output() + "\non:\n" + scrape.body());
        assertEquals("", lint.output().strip(), "no lint findings");
    }

    @Test
    void healthzAnswersOkWhileTheSwitchRuns() throws Exception {
        HttpResponse<String> health = get("/healthz", null);
        assertEquals(200, health.statusCode());
        assertEquals("ok\n", health.body());
        assertEquals(404, get("/nothing-here", null).statusCode());
    }

    @Test
    void aBadMetricsAddressIsAUsageErrorAndStartsNothing() throws Exception {
        Path other = Files.createTempDirectory("vsmetrics-bad");
        try {
            SecondProcess.Result r = SecondProcess.vswitch("run", "--runtime-dir", other.toString(), "--metrics", "127.0.0.1:99999");
            assertEquals(2, r.exitCode(), r.output());
            assertTrue(r.output().contains("--metrics") && r.output().contains("'99999' is not a port"), r.output());
            assertFalse(Files.exists(other.resolve("vm1.sock")), "nothing was started");
        } finally {
            Files.deleteIfExists(other);
        }
    }

    // ------------------------------------------------------------------ helpers

    private HttpResponse<String> get(String path, String accept) throws Exception {
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(url + path)).timeout(Duration.ofSeconds(10));
        if (accept != null) {
            request.header("Accept", accept);
        }
        return http.send(request.build(), HttpResponse.BodyHandlers.ofString());
    }

    /** The sample name a counter of {@code vswitch stats} has in /metrics, labels in the exposition's order. */
    private static String metricFor(String scope, String name, String counter) {
        if (scope.equals("worker")) {
            return "vswitch_worker_" + counter + "_total{worker=\"" + name + "\"}";
        }
        if (counter.startsWith("drop_")) {
            return "vswitch_port_drops_total{port=\"" + name + "\",reason=\"" + counter.substring(5) + "\"}";
        }
        if (counter.equals("link_up") || counter.equals("macs")) {
            return "vswitch_port_" + counter + "{port=\"" + name + "\"}";
        }
        return "vswitch_port_" + counter + "_total{port=\"" + name + "\"}";
    }

    /** Every sample of a Prometheus text exposition: {@code name{label="value",...}} to value. */
    private static Map<String, Double> samples(String exposition) {
        Map<String, Double> out = new HashMap<>();
        for (String line : exposition.lines().toList()) {
            if (line.isBlank() || line.startsWith("#")) {
                continue;
            }
            Matcher m = SAMPLE.matcher(line);
            assertTrue(m.matches(), "not a sample line: " + line);
            Map<String, String> labels = new TreeMap<>();
            if (m.group(3) != null) {
                Matcher l = LABEL.matcher(m.group(3));
                while (l.find()) {
                    labels.put(l.group(1), l.group(2));
                }
            }
            List<String> parts = new ArrayList<>();
            labels.forEach((k, v) -> parts.add(k + "=\"" + v + "\""));
            String key = m.group(1) + (parts.isEmpty() ? "" : "{" + String.join(",", parts) + "}");
            assertFalse(out.containsKey(key), "duplicate sample " + key);
            out.put(key, Double.parseDouble(m.group(4)));
        }
        return out;
    }

    /** {@code vswitch stats} as printed, read back: "port vm1" or "worker 0" to counter to value. */
    private Map<String, Map<String, Long>> stats() throws Exception {
        SecondProcess.Result r = SecondProcess.vswitch("stats", "--counters", runtime.resolve(CountersFile.FILE_NAME).toString());
        assertEquals(0, r.exitCode(), r.output());
        Map<String, Map<String, Long>> out = new LinkedHashMap<>();
        List<String> columns = null;
        for (String line : r.output().lines().toList()) {
            String[] cells = line.trim().split("\\s+");
            if (line.isBlank()) {
                columns = null;
            } else if (line.startsWith("port ")) {
                columns = List.of(cells);
            } else if (line.startsWith("worker ")) {
                Map<String, Long> w = out.computeIfAbsent("worker " + cells[1], k -> new LinkedHashMap<>());
                for (int i = 2; i + 1 < cells.length; i += 2) {
                    w.put(cells[i], Long.parseLong(cells[i + 1]));
                }
            } else if (columns != null) {
                Map<String, Long> p = out.computeIfAbsent("port " + cells[0], k -> new LinkedHashMap<>());
                for (int i = 1; i < columns.size(); i++) {
                    p.put(columns.get(i), Long.parseLong(cells[i]));
                }
            }
        }
        assertEquals(List.of("port vm1", "port vm2", "worker 0"), List.copyOf(out.keySet()), r.output());
        return out;
    }

    /** An Ethernet frame of {@code length} bytes with a local experimental EtherType. */
    private static byte[] frame(byte[] dst, byte[] src, int length) {
        ByteBuffer f = ByteBuffer.allocate(length);
        f.put(dst).put(src).putShort((short) 0x88b5);
        return f.array();
    }
}
