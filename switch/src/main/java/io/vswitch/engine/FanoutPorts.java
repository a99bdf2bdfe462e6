package io.vswitch.engine;

import io.vswitch.config.PortConfig;
import io.vswitch.config.UplinkConfig;

import java.util.ArrayList;
import java.util.List;

/**
 * An afpacket port served by several workers ({@code workers: N} or a list): one TPACKET_V3 socket per worker,
 * all joined in one PACKET_FANOUT group of type hash (flow-consistent: the kernel sends every frame of one flow
 * to the same socket, so frames of a flow are never reordered between workers). Each worker polls its own
 * member (a {@link SwitchPort} with the port's index, name, settings and counters, and its own socket), and a
 * worker that forwards a frame to the port sends it through its own member's socket, never handing it to
 * another worker. A flood reaches the interface once: a worker that receives a flood from another worker
 * skips the ports that worker serves too (it has sent the frame out of its own member already).
 *
 * <p>The fanout group id is derived from the process id and the port's index, so that two switches (or two
 * ports) never join each other's groups. Each socket counts its own frames as {@code socket <port>/<worker>
 * rx_packets} and {@code tx_packets} in the counters file, beside the port's totals.
 */
final class FanoutPorts {
    private FanoutPorts() {
    }

    /** Opens one socket per worker of {@code a}; returns the port as its first worker's member. */
    static SwitchPort open(int index, PortConfig pc, UplinkConfig.AfPacket a, int workerCount, PortCounters portCounters,
                           UplinkCounters uplinkCounters, CountersFile counters, List<Uplink> opened, int access,
                           List<Integer> trunk) {
        int group = (int) ((ProcessHandle.current().pid() * 31 + index) & 0xFFFF);
        SwitchPort[] members = new SwitchPort[workerCount];
        List<Uplink> mine = new ArrayList<>();
        SwitchPort primary = null;
        try {
            for (int w : a.workers()) {
                AfPacketUplink uplink = new AfPacketUplink(pc.name(), a, pc.mtu(), portCounters, uplinkCounters, group, w,
                        counters);
                mine.add(uplink);
                SwitchPort member = new SwitchPort(index, pc.name(), null, uplink, w, pc.mtu(), portCounters, access, trunk);
                member.fanout = members;
                members[w] = member;
                if (primary == null) {
                    primary = member;
                }
                System.getLogger("vswitch").log(System.Logger.Level.INFO, "port {0}: {1}", pc.name(), uplink.describe());
            }
        } catch (RuntimeException e) {
            mine.forEach(Uplink::close);
            throw e;
        }
        opened.addAll(mine);
        return primary;
    }

    /** What keeps the fanout port {@code p} from running: a worker of another notify mode, cross-connect mode. */
    static List<String> problems(PortConfig p, UplinkConfig.AfPacket a, io.vswitch.config.NotifyMode[] workerModes,
                                 io.vswitch.config.BridgeMode mode) {
        List<String> problems = new ArrayList<>();
        if (mode == io.vswitch.config.BridgeMode.CROSS_CONNECT) {
            problems.add("port " + p.name() + ": several workers on one interface ('workers:') need the learning bridge,"
                    + " not cross-connect mode");
        }
        for (int w : a.workers()) {
            if (w < workerModes.length && workerModes[w] != p.notifyMode()) {
                problems.add("port " + p.name() + ": notify " + p.notifyMode().yamlName() + " but worker " + w
                        + " of its workers runs " + workerModes[w].yamlName() + " (a worker waits one way for all its ports)");
            }
        }
        return problems;
    }

    /** Hands the members other than {@code port} (already with its worker) to their workers. */
    static void attachMembers(SwitchPort port, List<Worker> workers) {
        if (port.fanout == null) {
            return;
        }
        for (SwitchPort member : port.fanout) {
            if (member != null && member != port) {
                workers.get(member.worker).addPort(member);
            }
        }
    }
}
