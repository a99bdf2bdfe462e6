package io.vswitch.config;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code type: vxlan} and {@code type: afpacket} ports: what they read as, and the messages for mistakes. */
class UplinkConfigTest {

    private static String errorOf(String yaml) {
        return assertThrows(ConfigException.class, () -> ConfigLoader.parse(yaml, "topo.yaml")).getMessage();
    }

    @Test
    void vxlanWithAFloodListAndAnAfpacketPort() {
        SwitchConfig c = ConfigLoader.parse("""
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                  - name: tun
                    type: vxlan
                    local: 192.0.2.1
                    remote: [192.0.2.2, "192.0.2.3:8472"]
                    vni: 5001
                    mtu: 1450
                  - name: eth
                    type: afpacket
                    interface: veth0
                """, "topo.yaml");
        PortConfig tun = c.ports().get(1);
        assertNull(tun.socket());
        UplinkConfig.Vxlan v = (UplinkConfig.Vxlan) tun.uplink();
        assertEquals("192.0.2.1:4789", v.local().toString());
        assertEquals(List.of("192.0.2.2:4789", "192.0.2.3:8472"), v.remotes().stream().map(Object::toString).toList());
        assertEquals(5001, v.vni());
        assertEquals(1450, tun.mtu());
        assertEquals(new UplinkConfig.AfPacket("veth0"), c.ports().get(2).uplink());
        assertTrue(c.ports().getFirst().isVhostUser());
    }

    @Test
    void vxlanNeedsItsKeys() {
        assertEquals("""
                topo.yaml:2: ports[0].local: missing
                topo.yaml:2: ports[0].remote: missing
                topo.yaml:2: ports[0].vni: missing""", errorOf("""
                ports:
                  - name: tun
                    type: vxlan
                """));
    }

    @Test
    void badVxlanValues() {
        assertEquals("""
                topo.yaml:4: ports[0].local: 'tunnel.example:4789' is not IP or IP:PORT (an IPv4 address, no host names)
                topo.yaml:5: ports[0].remote: '2001:db8::1': only IPv4 VXLAN endpoints are implemented
                topo.yaml:6: ports[0].vni: 16777216 is out of range 0..16777215""", errorOf("""
                ports:
                  - name: tun
                    type: vxlan
                    local: tunnel.example:4789
                    remote: 2001:db8::1
                    vni: 16777216
                """));
    }

    @Test
    void keysOfOtherPortTypes() {
        assertEquals("""
                topo.yaml:4: ports[0].socket: only for vhost-user ports, not type afpacket
                topo.yaml:5: ports[0].vni: not a key of type afpacket""", errorOf("""
                ports:
                  - name: eth
                    type: afpacket
                    socket: /tmp/x.sock
                    vni: 3
                    interface: eth0
                """));
        assertEquals("topo.yaml:4: ports[0].interface: only for uplink ports (type: vxlan or afpacket), not vhost-user ones",
                errorOf("""
                ports:
                  - name: vm1
                    socket: /tmp/x.sock
                    interface: eth0
                """));
    }

    @Test
    void interfaceNames() {
        assertEquals("topo.yaml:4: ports[0].interface: 'a/b' is not a Linux interface name (1 to 15 characters, no '/', ':' or space)",
                errorOf("""
                ports:
                  - name: eth
                    type: afpacket
                    interface: a/b
                """));
    }

    @Test
    void afpacketServedBySeveralWorkers() {
        SwitchConfig c = ConfigLoader.parse("""
                switch:
                  workers: 3
                ports:
                  - name: lan
                    type: afpacket
                    interface: eth1
                    workers: [2, 0]
                  - name: wan
                    type: afpacket
                    interface: eth2
                    workers: 2
                  - name: one
                    type: afpacket
                    interface: eth3
                    workers: 1
                """, "topo.yaml");
        assertEquals(new UplinkConfig.AfPacket("eth1", List.of(2, 0)), c.ports().get(0).uplink());
        assertEquals(2, c.ports().get(0).worker(), "the first of its workers is the port's worker");
        assertEquals(new UplinkConfig.AfPacket("eth2", List.of(0, 1)), c.ports().get(1).uplink());
        assertEquals(new UplinkConfig.AfPacket("eth3"), c.ports().get(2).uplink(), "one worker: no fanout group");
        // what save writes reads back the same
        assertEquals(c, ConfigLoader.parse(TopologyWriter.write(c), "saved.yaml"));
    }

    @Test
    void fanoutWorkerMistakes() {
        assertEquals("""
                topo.yaml:6: ports[0].workers: worker 2 does not exist: switch.workers is 2, so workers are numbered 0..1
                topo.yaml:10: ports[1].workers: must list distinct workers, at least one
                topo.yaml:14: ports[2].workers: not a key of type vxlan
                topo.yaml:21: ports[3].workers: give 'worker' or 'workers', not both (the first of 'workers' is the port's worker)
                topo.yaml:24: ports[4].workers: must be a list of worker indices, e.g. [0, 1], or auto""", errorOf("""
                switch: {workers: 2}
                ports:
                  - name: a
                    type: afpacket
                    interface: eth1
                    workers: [0, 2]
                  - name: b
                    type: afpacket
                    interface: eth2
                    workers: [1, 1]
                  - name: c
                    type: vxlan
                    local: 192.0.2.1
                    workers: 2
                    remote: 192.0.2.2
                    vni: 1
                  - name: d
                    type: afpacket
                    interface: eth3
                    worker: 1
                    workers: [0, 1]
                  - name: e
                    socket: /tmp/e.sock
                    workers: 2
                """));
    }
}
