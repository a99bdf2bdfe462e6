package io.vswitch.metrics;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.prometheus.metrics.exporter.httpserver.MetricsHandler;
import io.prometheus.metrics.model.registry.PrometheusRegistry;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.BooleanSupplier;

/**
 * The HTTP endpoint Prometheus scrapes: {@code /metrics} (Prometheus text or OpenMetrics, as the scraper's Accept
 * header asks; the client library's handler negotiates) and {@code /healthz} ({@code 200 ok} while the switch
 * runs). It is the JDK's built-in HTTP server on one daemon thread of its own: a scrape reads the counters file
 * through {@link CountersCollector} on that thread, and the workers never see it.
 */
public final class MetricsEndpoint implements AutoCloseable {
    private final HttpServer server;
    private final ExecutorService executor;

    private MetricsEndpoint(HttpServer server, ExecutorService executor) {
        this.server = server;
        this.executor = executor;
    }

    /**
     * Binds {@code address:port} and starts serving.
     *
     * @param countersFile the running switch's counters file
     * @param running      what {@code /healthz} reports: true while the switch runs
     * @throws IOException when the address cannot be bound (in use, not local)
     */
    public static MetricsEndpoint start(InetAddress address, int port, Path countersFile, BooleanSupplier running)
            throws IOException {
        PrometheusRegistry registry = new PrometheusRegistry();
        registry.register(new CountersCollector(countersFile));
        HttpServer server = HttpServer.create(new InetSocketAddress(address, port), 16);
        ExecutorService executor = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "vswitch-metrics");
            t.setDaemon(true);
            return t;
        });
        server.setExecutor(executor);
        server.createContext("/metrics", new MetricsHandler(registry));
        server.createContext("/healthz", exchange -> health(exchange, running.getAsBoolean()));
        server.start();
        return new MetricsEndpoint(server, executor);
    }

    private static void health(HttpExchange exchange, boolean running) throws IOException {
        try (exchange) {
            if (!exchange.getRequestURI().getPath().equals("/healthz")) {
                exchange.sendResponseHeaders(404, -1);
                return;
            }
            byte[] body = (running ? "ok\n" : "stopping\n").getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
            boolean head = exchange.getRequestMethod().equals("HEAD");
            exchange.sendResponseHeaders(running ? 200 : 503, head ? -1 : body.length);
            if (!head) {
                try (OutputStream out = exchange.getResponseBody()) {
                    out.write(body);
                }
            }
        }
    }

    /** The bound address, with the port the system chose when 0 was asked for. */
    public InetSocketAddress address() {
        return server.getAddress();
    }

    /** {@code http://HOST:PORT} of the endpoint, IPv6 hosts in brackets. */
    public String url() {
        InetSocketAddress a = address();
        String host = a.getAddress().getHostAddress();
        return "http://" + (host.contains(":") ? "[" + host + "]" : host) + ":" + a.getPort();
    }

    /** Stops listening, then waits up to a second for a scrape in progress to finish. */
    @Override
    public void close() {
        server.stop(1);
        executor.shutdownNow();
    }
}
