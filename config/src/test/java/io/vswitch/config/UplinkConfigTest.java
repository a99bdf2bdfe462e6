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
}
