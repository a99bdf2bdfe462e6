package io.vswitch.engine;

import io.vswitch.config.PortConfig;
import io.vswitch.config.SwitchSettings;
import io.vswitch.config.UplinkConfig;

/** Opens the {@link Uplink} a port's configuration describes. */
final class Uplinks {
    private Uplinks() {
    }

    static Uplink open(PortConfig pc, SwitchSettings settings, PortCounters portCounters, UplinkCounters counters) {
        return switch (pc.uplink()) {
            case UplinkConfig.Vxlan v -> new VxlanUplink(pc.name(), v, pc.mtu(), settings.burst(), portCounters, counters);
            case UplinkConfig.AfPacket a -> new AfPacketUplink(pc.name(), a, pc.mtu(), portCounters, counters);
        };
    }
}
