package io.vswitch.config;

import java.util.List;

/** A port's VLAN membership. */
public sealed interface VlanMode permits VlanMode.Untagged, VlanMode.Access, VlanMode.Trunk {

    VlanMode UNTAGGED = new Untagged();

    /** No VLAN configured: frames pass as they are. */
    record Untagged() implements VlanMode {
    }

    /** The guest sees untagged frames; inside the switch they belong to {@code vlan}. */
    record Access(int vlan) implements VlanMode {
    }

    /** The guest sends and receives frames tagged with one of {@code vlans}; others are dropped. */
    record Trunk(List<Integer> vlans) implements VlanMode {
        public Trunk {
            vlans = List.copyOf(vlans);
        }
    }
}
