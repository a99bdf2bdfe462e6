package io.vswitch.config;

import java.nio.file.Path;
import java.util.List;
import java.util.Objects;
import java.util.Optional;

/** A whole, validated topology: switch settings, ports and (in cross-connect mode) links. */
public record SwitchConfig(SwitchSettings settings, List<PortConfig> ports, List<Link> links) {

    public SwitchConfig {
        Objects.requireNonNull(settings, "settings");
        ports = List.copyOf(ports);
        links = List.copyOf(links);
    }

    /**
     * What runs when no topology file is given: a learning switch with two server-mode ports,
     * {@code vm1} and {@code vm2}, listening on {@code <runtimeDir>/vm1.sock} and {@code <runtimeDir>/vm2.sock}.
     */
    public static SwitchConfig defaultTopology(Path runtimeDir) {
        Path dir = runtimeDir.toAbsolutePath().normalize();
        SwitchSettings settings = SwitchSettings.defaults(dir);
        return new SwitchConfig(settings, List.of(
                PortConfig.withDefaults("vm1", dir.resolve("vm1.sock"), settings.notifyMode()),
                PortConfig.withDefaults("vm2", dir.resolve("vm2.sock"), settings.notifyMode())), List.of());
    }

    /** The same topology with other switch settings. */
    public SwitchConfig withSettings(SwitchSettings other) {
        return new SwitchConfig(other, ports, links);
    }

    public Optional<PortConfig> port(String name) {
        return ports.stream().filter(p -> p.name().equals(name)).findFirst();
    }

    /** The ports polled by worker {@code worker}, in file order. */
    public List<PortConfig> portsOf(int worker) {
        return ports.stream().filter(p -> p.worker() == worker).toList();
    }
}
