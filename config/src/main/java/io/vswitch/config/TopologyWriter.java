package io.vswitch.config;

import java.util.List;
import java.util.stream.Collectors;

/**
 * Writes a {@link SwitchConfig} back as a topology file that {@link ConfigLoader} reads into an equal config
 * ({@code vswitch save}). Every setting is written explicitly, workers included, so that the file pins what
 * runs now rather than what defaults would pick.
 */
public final class TopologyWriter {

    private TopologyWriter() {
    }

    public static String write(SwitchConfig config) {
        StringBuilder y = new StringBuilder();
        SwitchSettings s = config.settings();
        y.append("switch:\n");
        y.append("  mode: ").append(s.mode().yamlName()).append('\n');
        y.append("  notify: ").append(s.notifyMode().yamlName()).append('\n');
        y.append("  workers: ").append(s.workers()).append('\n');
        if (!s.cpus().isEmpty()) {
            y.append("  cpus: ").append(ints(s.cpus())).append('\n');
        }
        y.append("  burst: ").append(s.burst()).append('\n');
        y.append("  mac-aging-seconds: ").append(s.macAgingSeconds()).append('\n');
        y.append("  hybrid-quiet-polls: ").append(s.hybridQuietPolls()).append('\n');
        y.append("  runtime-dir: ").append(quote(s.runtimeDir().toString())).append('\n');
        s.metrics().ifPresent(m -> y.append("  metrics: ").append(quote(m.toString())).append('\n'));
        y.append("ports:\n");
        for (PortConfig p : config.ports()) {
            y.append(port(p, "  "));
        }
        if (!config.links().isEmpty()) {
            y.append("links:\n");
            for (Link l : config.links()) {
                y.append("  - [").append(l.first()).append(", ").append(l.second()).append("]\n");
            }
        }
        return y.toString();
    }

    /** One port as an item of the {@code ports:} list, indented by {@code indent}. */
    public static String port(PortConfig p, String indent) {
        StringBuilder y = new StringBuilder();
        String in = indent + "  ";
        y.append(indent).append("- name: ").append(p.name()).append('\n');
        switch (p.uplink()) {
            case null -> {
                y.append(in).append("socket: ").append(quote(p.socket().toString())).append('\n');
                y.append(in).append("mode: ").append(p.role().yamlName()).append('\n');
            }
            case UplinkConfig.Vxlan v -> {
                y.append(in).append("type: vxlan\n");
                y.append(in).append("local: ").append(quote(v.local().toString())).append('\n');
                y.append(in).append("remote: ").append(v.remotes().stream().map(r -> quote(r.toString()))
                        .collect(Collectors.joining(", ", "[", "]"))).append('\n');
                y.append(in).append("vni: ").append(v.vni()).append('\n');
            }
            case UplinkConfig.AfPacket a -> {
                y.append(in).append("type: afpacket\n");
                y.append(in).append("interface: ").append(quote(a.interfaceName())).append('\n');
                if (a.fanout()) {
                    y.append(in).append("workers: ").append(a.workers()).append('\n');
                }
            }
        }
        y.append(in).append("notify: ").append(p.notifyMode().yamlName()).append('\n');
        boolean fanout = p.uplink() instanceof UplinkConfig.AfPacket a && a.fanout();   // its workers are written above
        if (!fanout && p.queueWorkers().isEmpty()) {
            y.append(in).append("worker: ").append(p.worker()).append('\n');
        } else if (!fanout) {
            y.append(in).append("workers: ").append(ints(p.queueWorkers())).append('\n');
        }
        y.append(in).append("mac-limit: ").append(p.macLimit()).append('\n');
        switch (p.vlan()) {
            case VlanMode.Access a -> y.append(in).append("vlan: ").append(a.vlan()).append('\n');
            case VlanMode.Trunk t -> y.append(in).append("trunk: ").append(ints(t.vlans())).append('\n');
            case VlanMode.Untagged u -> { }
        }
        y.append(in).append("mtu: ").append(p.mtu()).append('\n');
        if (p.uplink() != null) {
            return y.toString();   // no queues or socket ownership: those are vhost-user keys
        }
        y.append(in).append("queues: ").append(p.queues()).append('\n');
        y.append(in).append("offloads: ").append(p.offloads()).append('\n');
        p.socketMode().ifPresent(m -> y.append(in).append("socket-mode: \"0").append(Integer.toOctalString(m)).append("\"\n"));
        p.socketGroup().ifPresent(g -> y.append(in).append("socket-group: ").append(quote(g)).append('\n'));
        return y.toString();
    }

    private static String ints(List<Integer> values) {
        return values.stream().map(String::valueOf).collect(Collectors.joining(", ", "[", "]"));
    }

    /** A YAML double-quoted scalar: backslash, quote and control characters escaped. */
    public static String quote(String text) {
        StringBuilder q = new StringBuilder("\"");
        for (char c : text.toCharArray()) {
            switch (c) {
                case '"' -> q.append("\\\"");
                case '\\' -> q.append("\\\\");
                case '\n' -> q.append("\\n");
                case '\t' -> q.append("\\t");
                default -> {
                    if (c < 0x20) {
                        q.append(String.format("\\x%02x", (int) c));
                    } else {
                        q.append(c);
                    }
                }
            }
        }
        return q.append('"').toString();
    }
}
