package io.vswitch.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ConfigLoaderTest {

    @Test
    void everyFieldIsRead() {
        SwitchConfig config = ConfigLoader.parse("""
                switch:
                  mode: cross-connect
                  notify: hybrid
                  workers: 2
                  cpus: [2, 3, 5]
                  housekeeping-cpus: [0, 1]
                  burst: 64
                  mac-aging-seconds: 120
                  hybrid-quiet-polls: 500
                  runtime-dir: /run/vswitch
                  metrics: 127.0.0.1:9469
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                    mode: server
                    notify: interrupt
                    worker: 1
                    mac-limit: 64
                    vlan: 10
                    mtu: 9000
                    queues: 4
                    socket-mode: "0660"
                    socket-group: kvm
                  - name: vm2
                    socket: /tmp/vswitch/vm2.sock
                    mode: client
                    notify: monitor
                    worker: 0
                    trunk: [10, 20]
                    mtu: 68
                    queues: 8
                links:
                  - [vm1, vm2]
                """, "full.yaml");

        SwitchSettings settings = new SwitchSettings(BridgeMode.CROSS_CONNECT, NotifyMode.HYBRID, 2, List.of(2, 3, 5),
                64, 120, 500, Path.of("/run/vswitch"), Optional.of(new MetricsAddress("127.0.0.1", 9469)), List.of(0, 1));
        PortConfig vm1 = new PortConfig("vm1", Path.of("/tmp/vswitch/vm1.sock"), SocketRole.SERVER, NotifyMode.INTERRUPT,
                1, 64, new VlanMode.Access(10), 9000, 4, OptionalInt.of(0660), Optional.of("kvm"));
        PortConfig vm2 = new PortConfig("vm2", Path.of("/tmp/vswitch/vm2.sock"), SocketRole.CLIENT, NotifyMode.MONITOR,
                0, PortConfig.DEFAULT_MAC_LIMIT, new VlanMode.Trunk(List.of(10, 20)), 68, 8, OptionalInt.empty(),
                Optional.empty());
        assertEquals(new SwitchConfig(settings, List.of(vm1, vm2), List.of(new Link("vm1", "vm2"))), config);
        assertEquals(9018, vm1.maxFrameLength());
        assertEquals(OptionalInt.of(2), settings.cpuFor(0));
        assertEquals(OptionalInt.of(2), settings.cpuFor(3));
    }

    @Test
    void defaultsAreApplied() {
        SwitchConfig config = ConfigLoader.parse("""
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                """, "min.yaml");

        assertEquals(SwitchSettings.defaults(), config.settings());
        assertEquals(BridgeMode.LEARNING, config.settings().mode());
        assertEquals(NotifyMode.POLL, config.settings().notifyMode());
        assertEquals(1, config.settings().workers());
        assertEquals(64, config.settings().burst());
        assertEquals(300, config.settings().macAgingSeconds());
        assertEquals(1000, config.settings().hybridQuietPolls());
        assertEquals(OptionalInt.empty(), config.settings().cpuFor(0));
        assertEquals(List.of(PortConfig.withDefaults("vm1", Path.of("/tmp/vswitch/vm1.sock"), NotifyMode.POLL)),
                config.ports());
        PortConfig port = config.ports().getFirst();
        assertEquals(SocketRole.SERVER, port.role());
        assertEquals(1024, port.macLimit());
        assertEquals(1500, port.mtu());
        assertEquals(1, port.queues());
        assertEquals(VlanMode.UNTAGGED, port.vlan());
        assertEquals(List.of(), config.links());
    }

    @Test
    void metricsAddresses() {
        assertEquals(new MetricsAddress("localhost", 9469), MetricsAddress.parse("localhost:9469"));
        assertEquals(new MetricsAddress("0.0.0.0", 0), MetricsAddress.parse("0.0.0.0:0"));
        assertEquals(new MetricsAddress("::1", 9100), MetricsAddress.parse("[::1]:9100"));
        assertEquals("[::1]:9100", MetricsAddress.parse("[::1]:9100").toString());
        assertEquals("metrics.example.org:65535", MetricsAddress.parse("metrics.example.org:65535").toString());
        assertEquals(Optional.empty(), SwitchSettings.defaults().metrics(), "off unless configured");
        for (String bad : List.of("9469", ":9469", "localhost:", "localhost:65536", "localhost:-1", "localhost:http",
                "300.1.1.1:9469", "1.2.3:9469", "::1:9469", "[zz]:9469", "under_score:9469", "-lead:9469")) {
            assertThrows(IllegalArgumentException.class, () -> MetricsAddress.parse(bad), bad);
        }
    }

    @Test
    void portsInheritTheSwitchNotifyMode() {
        SwitchConfig config = ConfigLoader.parse("""
                switch: {notify: interrupt}
                ports:
                  - {name: vm1, socket: /tmp/vswitch/vm1.sock}
                  - {name: vm2, socket: /tmp/vswitch/vm2.sock, notify: poll}
                """, "t.yaml");
        assertEquals(NotifyMode.INTERRUPT, config.port("vm1").orElseThrow().notifyMode());
        assertEquals(NotifyMode.POLL, config.port("vm2").orElseThrow().notifyMode());
    }

    @Test
    void unpinnedPortsGoToTheLeastLoadedWorker() {
        SwitchConfig config = ConfigLoader.parse("""
                switch: {workers: 3}
                ports:
                  - {name: a, socket: /tmp/vs/a.sock, worker: 0}
                  - {name: b, socket: /tmp/vs/b.sock, worker: 0}
                  - {name: c, socket: /tmp/vs/c.sock}
                  - {name: d, socket: /tmp/vs/d.sock}
                  - {name: e, socket: /tmp/vs/e.sock}
                """, "t.yaml");
        assertEquals(List.of(0, 0, 1, 2, 1), config.ports().stream().map(PortConfig::worker).toList());
        assertEquals(List.of("c", "e"), config.portsOf(1).stream().map(PortConfig::name).toList());
    }

    @Test
    void socketModeMayBeWrittenUnquoted() {
        SwitchConfig config = ConfigLoader.parse("""
                ports:
                  - {name: vm1, socket: /tmp/vswitch/vm1.sock, socket-mode: 0600}
                  - {name: vm2, socket: /tmp/vswitch/vm2.sock, socket-mode: 660}
                """, "t.yaml");
        assertEquals(OptionalInt.of(0600), config.ports().get(0).socketMode());
        assertEquals(OptionalInt.of(0660), config.ports().get(1).socketMode());
    }

    @Test
    void relativeSocketPathsAreMadeAbsolute() {
        SwitchConfig config = ConfigLoader.parse("""
                ports:
                  - {name: vm1, socket: ./run/../vm1.sock}
                """, "t.yaml");
        assertEquals(Path.of("vm1.sock").toAbsolutePath(), config.ports().getFirst().socket());
    }

    @Test
    void defaultTopology() {
        SwitchConfig config = SwitchConfig.defaultTopology(Path.of("/run/user/1000/vswitch"));

        assertEquals(SwitchSettings.defaults(Path.of("/run/user/1000/vswitch")), config.settings());
        assertEquals(BridgeMode.LEARNING, config.settings().mode());
        assertEquals(NotifyMode.POLL, config.settings().notifyMode());
        assertEquals(1, config.settings().workers());
        assertEquals(List.of(
                PortConfig.withDefaults("vm1", Path.of("/run/user/1000/vswitch/vm1.sock"), NotifyMode.POLL),
                PortConfig.withDefaults("vm2", Path.of("/run/user/1000/vswitch/vm2.sock"), NotifyMode.POLL)),
                config.ports());
        assertEquals(SocketRole.SERVER, config.ports().getFirst().role());
        assertEquals(List.of(), config.links());
    }

    @Test
    void defaultRuntimeDir() {
        assertEquals(Path.of("/run/user/1000/vswitch"), SwitchSettings.defaultRuntimeDir("/run/user/1000", 1000));
        assertEquals(Path.of("/tmp/vswitch-1000"), SwitchSettings.defaultRuntimeDir(null, 1000));
        assertEquals(Path.of("/tmp/vswitch-1000"), SwitchSettings.defaultRuntimeDir("", 1000));
    }

    @Test
    void loadNamesErrorsAfterTheFile(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("topo.yaml");
        Files.writeString(file, "ports:\n  - name: vm1\n");
        ConfigException e = assertThrows(ConfigException.class, () -> ConfigLoader.load(file));
        assertEquals(file + ":2: ports[0].socket: missing", e.getMessage());
    }

    @Test
    void didYouMean() {
        assertEquals(Optional.of("workers"), Suggestions.closest("wrokers", ConfigParser.SWITCH_KEYS));
        assertEquals(Optional.of("mode"), Suggestions.closest("Mode", ConfigParser.SWITCH_KEYS));
        assertEquals(Optional.empty(), Suggestions.closest("colour", ConfigParser.PORT_KEYS));
    }
}
