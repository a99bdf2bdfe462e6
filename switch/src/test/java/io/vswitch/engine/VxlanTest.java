package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.sys.OpenFds;
import io.vswitch.testing.Await;
import io.vswitch.testing.TestFrontend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;

import static io.vswitch.engine.TestPmdForwardingTest.value;
import static io.vswitch.engine.VlanTest.frame;
import static io.vswitch.engine.VlanTest.mac;
import static io.vswitch.engine.VlanTest.receiveOne;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The VXLAN port against plain UDP sockets on loopback that play two remote VTEPs: the encapsulation bytes
 * (RFC 7348 header, VNI), the flood list, MACs learned behind one remote going to that remote only, and every
 * kind of bad packet counted under its own reason without disturbing the traffic. The interop with Linux's
 * own vxlan device is {@link VxlanNetnsTest}'s.
 */
class VxlanTest {
    private static final int VNI = 0x12345;
    private static final byte[] BROADCAST = mac("ff:ff:ff:ff:ff:ff");
    private static final byte[] MAC_VM = mac("02:00:00:00:01:01");
    private static final byte[] MAC_R1 = mac("02:00:00:00:02:01");
    private static final byte[] MAC_R2 = mac("02:00:00:00:02:02");

    @TempDir
    Path dir;

    @Test
    void encapsulatesDecapsulatesLearnsVtepsAndCountsBadPackets() throws Exception {
        int localPort;
        try (DatagramChannel probe = DatagramChannel.open().bind(new InetSocketAddress("127.0.0.1", 0))) {
            localPort = ((InetSocketAddress) probe.getLocalAddress()).getPort();
        }
        try (DatagramChannel r1 = DatagramChannel.open().bind(new InetSocketAddress("127.0.0.2", 0));
             DatagramChannel r2 = DatagramChannel.open().bind(new InetSocketAddress("127.0.0.3", 0));
             DatagramChannel stranger = DatagramChannel.open().bind(new InetSocketAddress("127.0.0.4", 0))) {
            String yaml = """
                    switch:
                      mode: learning
                      runtime-dir: %s
                    ports:
                      - name: vm
                        socket: %s
                      - name: vx
                        type: vxlan
                        local: 127.0.0.1:%d
                        remote: [127.0.0.2:%d, 127.0.0.3:%d]
                        vni: %d
                    """.formatted(dir.resolve("run"), dir.resolve("vm.sock"), localPort, port(r1), port(r2), VNI);
            SocketAddress sw = new InetSocketAddress("127.0.0.1", localPort);
            try (Switch s = Switch.start(ConfigLoader.parse(yaml, "vxlan.yaml"));
                 TestFrontend vm = TestFrontend.connect(dir.resolve("vm.sock")).setUp()) {
                vm.postRxBuffers(32, 2048);
                QemuGuestsTest.awaitCounter(s.countersPath(), "vm", "link_up", 1);
                QemuGuestsTest.awaitCounter(s.countersPath(), "vx", "link_up", 1);

                // a broadcast from the VM goes to every remote of the flood list, encapsulated
                byte[] hello = frame(BROADCAST, MAC_VM, -1, "hello");
                vm.transmit(hello);
                assertArrayEquals(vxlan(0x08, VNI, hello), receive(r1), "VXLAN header (I flag, VNI) + the frame, to r1");
                assertArrayEquals(vxlan(0x08, VNI, hello), receive(r2), "and to r2");

                // r1 answers: decapsulated to the VM; the VM's reply goes to r1 only (MAC_R1 learned behind it)
                byte[] reply = frame(MAC_VM, MAC_R1, -1, "from behind r1");
                r1.send(ByteBuffer.wrap(vxlan(0x08, VNI, reply)), sw);
                assertArrayEquals(reply, receiveOne(vm));
                byte[] unicast = frame(MAC_R1, MAC_VM, -1, "to r1 only");
                vm.transmit(unicast);
                assertArrayEquals(vxlan(0x08, VNI, unicast), receive(r1));
                // r2 got nothing of it: its next packet is the next broadcast
                byte[] again = frame(BROADCAST, MAC_VM, -1, "again");
                vm.transmit(again);
                assertArrayEquals(vxlan(0x08, VNI, again), receive(r2), "r2 never saw the unicast to r1");
                assertArrayEquals(vxlan(0x08, VNI, again), receive(r1));

                // MAC_R2 behind r2: learned there; reserved bits set by the sender are ignored (RFC 7348)
                byte[] fromR2 = frame(MAC_VM, MAC_R2, -1, "from behind r2");
                byte[] reserved = vxlan(0xF8, VNI, fromR2);
                reserved[1] = 0x7f;
                reserved[7] = 0x33;
                r2.send(ByteBuffer.wrap(reserved), sw);
                assertArrayEquals(fromR2, receiveOne(vm));
                vm.transmit(frame(MAC_R2, MAC_VM, -1, "to r2"));
                assertArrayEquals(vxlan(0x08, VNI, frame(MAC_R2, MAC_VM, -1, "to r2")), receive(r2));

                // hostile or broken packets: each counted under its reason, none reaches the VM
                r1.send(ByteBuffer.wrap(new byte[5]), sw);                                   // shorter than the header
                r1.send(ByteBuffer.wrap(vxlan(0x08, VNI, new byte[10])), sw);                // inner frame too short
                r1.send(ByteBuffer.wrap(vxlan(0x00, VNI, reply)), sw);                       // I flag clear
                r1.send(ByteBuffer.wrap(new byte[0]), sw);                                   // empty datagram
                r1.send(ByteBuffer.wrap(vxlan(0x08, VNI + 1, reply)), sw);                   // foreign VNI
                stranger.send(ByteBuffer.wrap(vxlan(0x08, VNI, reply)), sw);                 // not a configured remote
                r1.send(ByteBuffer.wrap(vxlan(0x08, VNI, frame(MAC_VM, MAC_R1, -1, "x".repeat(1600)))), sw);   // > MTU
                byte[] after = frame(MAC_VM, MAC_R1, -1, "still works");
                r1.send(ByteBuffer.wrap(vxlan(0x08, VNI, after)), sw);
                assertArrayEquals(after, receiveOne(vm), "the good packet after the bad ones is delivered, and only it");

                awaitValue(s, "vx", "drop_malformed", 4);
                CountersFile.Snapshot snap = CountersFile.read(s.countersPath());
                assertEquals(1, value(snap, "vx", "drop_vni"));
                assertEquals(1, value(snap, "vx", "drop_foreign_vtep"));
                assertEquals(1, value(snap, "vx", "drop_over_mtu"));
                assertEquals(3, value(snap, "vx", "rx_packets"), "frames decapsulated and forwarded");
                assertEquals(4, value(snap, "vx", "tx_packets"), "frames encapsulated (a flood counts once)");
                assertTrue(value(snap, "vx", "macs_learned") >= 2);
            }
            // the socket and its buffers go with the switch (the first run may have opened lazy JDK descriptors)
            Map<Integer, String> fds = OpenFds.snapshot();
            Switch.start(ConfigLoader.parse(yaml, "vxlan.yaml")).close();
            Await.until(() -> OpenFds.openedSince(fds).isEmpty(),
                    () -> "no descriptor left behind, but open: " + OpenFds.openedSince(fds));
        }
    }

    private static int port(DatagramChannel c) throws Exception {
        return ((InetSocketAddress) c.getLocalAddress()).getPort();
    }

    static byte[] vxlan(int flags, int vni, byte[] inner) {
        ByteBuffer b = ByteBuffer.allocate(8 + inner.length);
        b.put((byte) flags).put((byte) 0).putShort((short) 0).putInt(vni << 8).put(inner);
        return b.array();
    }

    /** The next datagram on {@code c}, waiting at most 5 s. */
    static byte[] receive(DatagramChannel c) throws Exception {
        c.configureBlocking(false);
        ByteBuffer buf = ByteBuffer.allocate(65536);
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (c.receive(buf) == null) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("no datagram on " + c.getLocalAddress());
            }
            Thread.sleep(1);
        }
        buf.flip();
        return Arrays.copyOf(buf.array(), buf.limit());
    }

    static void awaitValue(Switch s, String port, String counter, long expected) throws Exception {
        QemuGuestsTest.awaitCounter(s.countersPath(), port, counter, expected);
    }
}
