package io.vswitch.cli;

import io.vswitch.config.SwitchSettings;
import io.vswitch.control.ControlClient;
import io.vswitch.control.ControlServer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/** The subcommands that change or inspect a running switch through its control socket. */
final class ControlCommands {
    private ControlCommands() {
    }

    /** Which switch: the one holding a runtime directory (its control socket is {@code DIR/control.sock}). */
    static final class Target {
        @Option(names = "--runtime-dir", paramLabel = "DIR",
                description = "the running switch's runtime directory (default: ${DEFAULT-VALUE})")
        Path runtimeDir = SwitchSettings.defaultRuntimeDir();

        int send(List<String> request) {
            return print(call(request));
        }

        ControlClient.Answer call(List<String> request) {
            Path socket = runtimeDir.resolve(ControlServer.FILE_NAME);
            try {
                return ControlClient.call(socket, request);
            } catch (IOException e) {
                return new ControlClient.Answer(Main.EXIT_FAILURE, "vswitch: no switch answers on " + socket + " ("
                        + e.getMessage() + "); is it running? (see --runtime-dir)\n");
            }
        }

        static int print(ControlClient.Answer answer) {
            if (answer.code() == 0) {
                System.out.print(answer.text());
                System.out.flush();
            } else {
                System.err.print(answer.text());
                System.err.flush();
            }
            return answer.code();
        }
    }

    /** A command that only groups subcommands: run alone, it prints its usage and exits 2. */
    abstract static class Group implements Callable<Integer> {
        @picocli.CommandLine.Spec
        picocli.CommandLine.Model.CommandSpec spec;

        @Override
        public Integer call() {
            spec.commandLine().usage(System.err);
            return Main.EXIT_USAGE;
        }
    }

    @Command(name = "port", mixinStandardHelpOptions = true, description = "Adds, deletes or changes a port of the running switch.",
            subcommands = {PortAdd.class, PortDel.class, PortSet.class})
    static final class Port extends Group {
    }

    @Command(name = "add", mixinStandardHelpOptions = true, description = {"Adds a port to the running switch.",
            "Not written to the topology file: use 'vswitch save FILE' to keep it across restarts."})
    static final class PortAdd implements Callable<Integer> {
        @Mixin
        Target target;
        @Parameters(index = "0", paramLabel = "NAME")
        String name;
        @Option(names = "--socket", required = true, paramLabel = "PATH", description = "vhost-user socket path")
        Path socket;
        @Option(names = "--role", paramLabel = "server|client", description = "server: the switch listens (default); client: it connects")
        String role;
        @Option(names = "--vlan", paramLabel = "N", description = "access port in VLAN N")
        Integer vlan;
        @Option(names = "--trunk", paramLabel = "N,M", split = ",", description = "802.1Q trunk of these VLANs")
        List<Integer> trunk;
        @Option(names = "--mtu", paramLabel = "N")
        Integer mtu;
        @Option(names = "--mac-limit", paramLabel = "N")
        Integer macLimit;
        @Option(names = "--worker", paramLabel = "N", description = "worker thread (default: the least loaded one)")
        Integer worker;
        @Option(names = "--notify", paramLabel = "MODE", description = "must be the worker's mode (default: it is)")
        String notify;

        @Override
        public Integer call() {
            List<String> r = new ArrayList<>(List.of("port", "add", name, "socket=" + socket.toAbsolutePath().normalize()));
            add(r, "mode", role);
            add(r, "vlan", vlan);
            if (trunk != null) {
                r.add("trunk=" + String.join(",", trunk.stream().map(String::valueOf).toList()));
            }
            add(r, "mtu", mtu);
            add(r, "mac-limit", macLimit);
            add(r, "worker", worker);
            add(r, "notify", notify);
            return target.send(r);
        }
    }

    private static void add(List<String> request, String key, Object value) {
        if (value != null) {
            request.add(key + "=" + value);
        }
    }

    @Command(name = "del", mixinStandardHelpOptions = true, description = {"Deletes a port: its guest sees the link go down,",
            "its memory and descriptors are released, its socket file is removed. Other ports are not touched."})
    static final class PortDel implements Callable<Integer> {
        @Mixin
        Target target;
        @Parameters(index = "0", paramLabel = "NAME")
        String name;

        @Override
        public Integer call() {
            return target.send(List.of("port", "del", name));
        }
    }

    @Command(name = "set", mixinStandardHelpOptions = true, description = {"Changes live settings of a port:",
            "vlan=N|none, trunk=N,M|none, mtu=N, mac-limit=N. The guest stays connected."})
    static final class PortSet implements Callable<Integer> {
        @Mixin
        Target target;
        @Parameters(index = "0", paramLabel = "NAME")
        String name;
        @Parameters(index = "1..*", arity = "1..*", paramLabel = "KEY=VALUE")
        List<String> settings;

        @Override
        public Integer call() {
            List<String> r = new ArrayList<>(List.of("port", "set", name));
            r.addAll(settings);
            return target.send(r);
        }
    }

    @Command(name = "link", mixinStandardHelpOptions = true, description = "Cross-connect mode: wires two ports back to back, or unwires them.",
            subcommands = {LinkAdd.class, LinkDel.class})
    static final class Link extends Group {
    }

    @Command(name = "add", mixinStandardHelpOptions = true, description = "Links ports A and B (neither may be linked).")
    static final class LinkAdd implements Callable<Integer> {
        @Mixin
        Target target;
        @Parameters(index = "0", paramLabel = "A")
        String a;
        @Parameters(index = "1", paramLabel = "B")
        String b;

        @Override
        public Integer call() {
            return target.send(List.of("link", "add", a, b));
        }
    }

    @Command(name = "del", mixinStandardHelpOptions = true, description = "Unlinks ports A and B; their frames are then dropped as port_down.")
    static final class LinkDel implements Callable<Integer> {
        @Mixin
        Target target;
        @Parameters(index = "0", paramLabel = "A")
        String a;
        @Parameters(index = "1", paramLabel = "B")
        String b;

        @Override
        public Integer call() {
            return target.send(List.of("link", "del", a, b));
        }
    }

    @Command(name = "mac", mixinStandardHelpOptions = true, description = "The learning bridge's MAC table.",
            subcommands = {MacList.class, MacFlush.class})
    static final class Mac extends Group {
    }

    @Command(name = "list", mixinStandardHelpOptions = true, description = "Lists learned MACs: mac, vlan, port, ms since last seen.")
    static final class MacList implements Callable<Integer> {
        @Mixin
        Target target;
        @Option(names = "--port", paramLabel = "P")
        String port;
        @Option(names = "--json")
        boolean json;

        @Override
        public Integer call() {
            List<String> r = new ArrayList<>(List.of("mac", "list"));
            if (port != null) {
                r.add(port);
            }
            if (json) {
                r.add("--json");
            }
            return target.send(r);
        }
    }

    @Command(name = "flush", mixinStandardHelpOptions = true, description = "Forgets learned MACs (of one port with --port); they are learned again from traffic.")
    static final class MacFlush implements Callable<Integer> {
        @Mixin
        Target target;
        @Option(names = "--port", paramLabel = "P")
        String port;

        @Override
        public Integer call() {
            List<String> r = new ArrayList<>(List.of("mac", "flush"));
            if (port != null) {
                r.add(port);
            }
            return target.send(r);
        }
    }

    @Command(name = "show", mixinStandardHelpOptions = true, description = {"Shows the running switch: per port its role, socket,",
            "connection, negotiated features by name, queue sizes, memory regions, worker, notify mode, link and MACs;",
            "per worker its ports and CPU."})
    static final class Show implements Callable<Integer> {
        @Mixin
        Target target;
        @Option(names = "--json", description = "as JSON")
        boolean json;

        @Override
        public Integer call() {
            return target.send(json ? List.of("show", "--json") : List.of("show"));
        }
    }

    @Command(name = "reload", mixinStandardHelpOptions = true, description = {"Re-reads the topology (the file the switch runs, or FILE)",
            "and applies only the difference; nothing is applied if the file has any error. SIGHUP does the same."})
    static final class Reload implements Callable<Integer> {
        @Mixin
        Target target;
        @Option(names = {"-c", "--config"}, paramLabel = "FILE")
        Path config;

        @Override
        public Integer call() {
            return target.send(config == null ? List.of("reload")
                    : List.of("reload", config.toAbsolutePath().normalize().toString()));
        }
    }

    @Command(name = "save", mixinStandardHelpOptions = true, description = {"Writes the running topology (ports added at runtime",
            "included) as a topology file that 'vswitch validate' accepts and 'vswitch run --config' reproduces."})
    static final class Save implements Callable<Integer> {
        @Mixin
        Target target;
        @Parameters(index = "0", paramLabel = "FILE")
        Path file;

        @Override
        public Integer call() {
            ControlClient.Answer answer = target.call(List.of("save"));
            if (answer.code() != 0) {
                return Target.print(answer);
            }
            try {
                Path tmp = file.toAbsolutePath().resolveSibling(file.getFileName() + ".tmp");
                Files.writeString(tmp, answer.text());
                Files.move(tmp, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                        java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            } catch (IOException e) {
                System.err.println("vswitch: cannot write " + file + ": " + e.getMessage());
                return Main.EXIT_FAILURE;
            }
            System.out.println("saved the running topology to " + file);
            return Main.EXIT_OK;
        }
    }
}
