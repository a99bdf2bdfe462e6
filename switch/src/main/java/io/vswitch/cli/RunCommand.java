package io.vswitch.cli;

import io.vswitch.config.MetricsAddress;
import io.vswitch.config.PortConfig;
import io.vswitch.config.SocketRole;
import io.vswitch.config.SwitchConfig;
import io.vswitch.config.SwitchSettings;
import io.vswitch.control.ControlServer;
import io.vswitch.engine.LiveTopology;
import io.vswitch.engine.RuntimeDirInUseException;
import io.vswitch.engine.Switch;
import io.vswitch.metrics.MetricsEndpoint;
import io.vswitch.vhost.SocketInUseException;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;

@Command(name = "run", mixinStandardHelpOptions = true,
        description = {"Runs the switch until SIGINT or SIGTERM.",
                "Without --config: two server-mode ports vm1 and vm2 in a runtime directory, learning mode.",
                "One switch per runtime directory: a second one exits 1 naming the running one's pid."})
final class RunCommand implements Callable<Integer> {
    @Option(names = {"-c", "--config"}, paramLabel = "FILE", description = "YAML topology file")
    Path config;

    @Option(names = "--runtime-dir", paramLabel = "DIR",
            description = "For the default topology: where sockets and the counters file go (default: ${DEFAULT-VALUE})")
    Path runtimeDir = SwitchSettings.defaultRuntimeDir();

    @Option(names = "--control-group", paramLabel = "GROUP",
            description = {"Make the control socket (<runtime dir>/control.sock) mode 0660 in GROUP,",
                    "so that its members may change the switch. Default: its owner (and root) only, mode 0600."})
    String controlGroup;

    @Option(names = "--metrics", paramLabel = "HOST:PORT", converter = MetricsAddressConverter.class,
            description = {"Serve Prometheus metrics on http://HOST:PORT/metrics (and /healthz);",
                    "overrides switch.metrics of the topology. Port 0 picks a free port. Default: off."})
    MetricsAddress metrics;

    static final class MetricsAddressConverter implements CommandLine.ITypeConverter<MetricsAddress> {
        @Override
        public MetricsAddress convert(String value) {
            try {
                return MetricsAddress.parse(value);
            } catch (IllegalArgumentException e) {
                throw new CommandLine.TypeConversionException(e.getMessage());
            }
        }
    }

    @Override
    public Integer call() throws Exception {
        SwitchConfig topology;
        if (config == null) {
            topology = SwitchConfig.defaultTopology(runtimeDir);
            System.out.println("vswitch: no --config given, running the built-in default topology");
        } else {
            topology = ValidateCommand.load(config);
            if (topology == null) {
                return Main.EXIT_USAGE;
            }
        }
        if (metrics != null) {
            topology = topology.withSettings(topology.settings().withMetrics(Optional.of(metrics)));
        }
        var unsupported = Switch.unsupported(topology);
        if (!unsupported.isEmpty()) {
            unsupported.forEach(System.err::println);
            return Main.EXIT_USAGE;
        }
        InetAddress metricsHost = null;
        if (topology.settings().metrics().isPresent()) {
            MetricsAddress where = topology.settings().metrics().get();
            try {
                metricsHost = InetAddress.getByName(where.host());
            } catch (UnknownHostException e) {
                System.err.println("vswitch: metrics: unknown host '" + where.host() + "'");
                return Main.EXIT_USAGE;
            }
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Switch sw;
        try {
            sw = Switch.start(topology);
        } catch (RuntimeDirInUseException | SocketInUseException e) {
            System.err.println("vswitch: " + e.getMessage());
            return Main.EXIT_FAILURE;
        } catch (RuntimeException e) {
            System.err.println("vswitch: cannot start: " + e.getMessage());
            return Main.EXIT_FAILURE;
        }
        LiveTopology live = new LiveTopology(sw, Optional.ofNullable(config).map(c -> c.toAbsolutePath().normalize()));
        ControlServer control;
        try {
            control = ControlServer.start(topology.settings().runtimeDir(), live, Optional.ofNullable(controlGroup));
        } catch (IOException e) {
            System.err.println("vswitch: cannot open the control socket in " + topology.settings().runtimeDir() + ": "
                    + e.getMessage());
            sw.close();
            return Main.EXIT_FAILURE;
        }
        AtomicBoolean running = new AtomicBoolean(true);
        MetricsEndpoint endpoint = null;
        if (metricsHost != null) {
            MetricsAddress where = topology.settings().metrics().get();
            try {
                endpoint = MetricsEndpoint.start(metricsHost, where.port(), sw.countersPath(), running::get);
            } catch (IOException e) {
                System.err.println("vswitch: cannot serve metrics on " + where + ": " + e.getMessage());
                control.close();
                sw.close();
                return Main.EXIT_FAILURE;
            }
        }
        // SIGTERM and SIGINT are a request to stop: close ports (guests see link down), remove sockets, exit 0
        for (String signal : new String[] {"TERM", "INT"}) {
            sun.misc.Signal.handle(new sun.misc.Signal(signal), s -> stopped.countDown());
        }
        // SIGHUP: reload the topology file, applying only the difference (as 'vswitch reload')
        sun.misc.Signal.handle(new sun.misc.Signal("HUP"), s -> Thread.ofPlatform().name("vswitch-sighup").start(() -> {
            try {
                System.out.println("vswitch: SIGHUP: " + live.reload(Optional.empty()));
            } catch (LiveTopology.Refused e) {
                System.err.println("vswitch: SIGHUP: " + e.getMessage());
            }
        }));
        System.out.println("vswitch: control socket " + control.path() + " (vswitch show|port|link|mac|reload|save)");
        if (endpoint != null) {
            System.out.println("vswitch: metrics on " + endpoint.url() + "/metrics, health on " + endpoint.url() + "/healthz");
        }
        printAttachInstructions(topology, sw);
        stopped.await();
        System.out.println("vswitch: shutting down");
        running.set(false);
        if (endpoint != null) {
            endpoint.close();
        }
        control.close();
        sw.close();
        System.out.println("vswitch: stopped");
        return Main.EXIT_OK;
    }

    static void printAttachInstructions(SwitchConfig topology, Switch sw) {
        System.out.println("vswitch: running; counters: ./vswitch stats --counters " + sw.countersPath());
        int mac = 1;
        for (PortConfig port : topology.ports()) {
            String server = port.role() == SocketRole.CLIENT ? ",server=on,wait=off" : "";
            System.out.printf("%nport %s (%s, socket %s): attach a QEMU guest with%n", port.name(),
                    port.role().name().toLowerCase(), port.socket());
            System.out.printf("  -object memory-backend-file,id=mem,size=1G,mem-path=/dev/hugepages,share=on -numa node,memdev=mem \\%n");
            System.out.printf("  -chardev socket,id=chr-%s,path=%s%s \\%n", port.name(), port.socket(), server);
            System.out.printf("  -netdev vhost-user,id=net-%s,chardev=chr-%s \\%n", port.name(), port.name());
            System.out.printf("  -device virtio-net-pci,netdev=net-%s,mac=52:54:00:00:00:%02x%n", port.name(), mac++);
            System.out.printf("  or DPDK: dpdk-testpmd --no-pci --vdev net_virtio_user0,path=%s%s ...%n", port.socket(),
                    port.role() == SocketRole.CLIENT ? ",server=1" : "");
        }
        System.out.println();
        System.out.flush();
    }
}
