package io.vswitch.cli;

import io.vswitch.config.PortConfig;
import io.vswitch.config.SocketRole;
import io.vswitch.config.SwitchConfig;
import io.vswitch.config.SwitchSettings;
import io.vswitch.engine.RuntimeDirInUseException;
import io.vswitch.engine.Switch;
import io.vswitch.vhost.SocketInUseException;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

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
        var unsupported = Switch.unsupported(topology);
        if (!unsupported.isEmpty()) {
            unsupported.forEach(System.err::println);
            return Main.EXIT_USAGE;
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
        // SIGTERM and SIGINT are a request to stop: close ports (guests see link down), remove sockets, exit 0
        for (String signal : new String[] {"TERM", "INT"}) {
            sun.misc.Signal.handle(new sun.misc.Signal(signal), s -> stopped.countDown());
        }
        printAttachInstructions(topology, sw);
        stopped.await();
        System.out.println("vswitch: shutting down");
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
