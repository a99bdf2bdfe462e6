package io.vswitch.config;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import io.vswitch.config.ConfigParser.LinkEnd;
import io.vswitch.config.ConfigParser.LinkEntry;
import io.vswitch.config.ConfigParser.Parsed;
import io.vswitch.config.ConfigParser.PortEntry;

/** Checks that relate ports to each other and to links: uniqueness and cross-connect wiring. */
final class Validator {

    private Validator() {
    }

    static void check(Parsed parsed, Problems problems) {
        uniqueNames(parsed.ports());
        uniqueSockets(parsed.ports());
        // With the mode itself wrong, whether links belong here is anyone's guess.
        if (!problems.reported("switch") && !problems.reported("switch.mode")) {
            links(parsed);
        }
    }

    private static void uniqueNames(List<PortEntry> ports) {
        Map<String, PortEntry> seen = new HashMap<>();
        for (PortEntry p : ports) {
            PortEntry first = seen.putIfAbsent(p.port().name(), p);
            if (first != null) {
                p.nameAt().error("'" + p.port().name() + "' is already used by " + first.at().path());
            }
        }
    }

    /** Two ports on one socket would fight over it; paths are compared normalized, so ./a and a collide too. */
    private static void uniqueSockets(List<PortEntry> ports) {
        Map<Path, PortEntry> seen = new HashMap<>();
        for (PortEntry p : ports) {
            if (p.port().socket() == null) {
                continue;   // an uplink
            }
            PortEntry first = seen.putIfAbsent(p.port().socket(), p);
            if (first != null) {
                String written = p.socketAt().asString().orElseThrow();
                p.socketAt().error("'" + written + "' is already used by " + first.at().path());
            }
        }
    }

    private static void links(Parsed parsed) {
        if (parsed.settings().mode() != BridgeMode.CROSS_CONNECT) {
            if (!parsed.links().isEmpty()) {
                parsed.linksAt().orElseThrow().error("only allowed in cross-connect mode (switch.mode is "
                        + parsed.settings().mode().yamlName() + ")");
            }
            return;
        }
        Map<String, PortEntry> ports = new HashMap<>();
        parsed.ports().forEach(p -> ports.putIfAbsent(p.port().name(), p));
        // port name -> path of the link that claimed it
        Map<String, String> linkedBy = new HashMap<>();
        for (LinkEntry link : parsed.links()) {
            boolean known = true;
            for (LinkEnd end : List.of(link.first(), link.second())) {
                if (!ports.containsKey(end.name()) && !parsed.incompleteNames().contains(end.name())) {
                    end.at().error("no port named '" + end.name() + "'");
                    known = false;
                }
            }
            if (link.first().name().equals(link.second().name())) {
                if (known) {
                    link.at().error("links port '" + link.first().name() + "' to itself");
                }
                linkedBy.putIfAbsent(link.first().name(), link.at().path());
                continue;
            }
            for (LinkEnd end : List.of(link.first(), link.second())) {
                String previous = linkedBy.putIfAbsent(end.name(), link.at().path());
                if (previous != null && ports.containsKey(end.name())) {
                    end.at().error("port '" + end.name() + "' is already linked in " + previous);
                }
            }
        }
        for (PortEntry p : parsed.ports()) {
            if (!linkedBy.containsKey(p.port().name())) {
                p.at().error("port '" + p.port().name()
                        + "' is not in any link (cross-connect mode needs every port in exactly one)");
            }
        }
    }
}
