package io.vswitch.engine;

import io.vswitch.vhost.virtio.PacketBatch;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The receive-pair choice of multiqueue ports: one flow, one pair; flows spread over the pairs in use. */
class FlowHashTest {

    /** An Ethernet frame with an IPv4 (or IPv6) header and TCP/UDP ports, padded with {@code payloadSeed} bytes. */
    static byte[] ip(boolean v6, boolean vlan, int proto, int srcIp, int dstIp, int srcPort, int dstPort, int payloadSeed,
                     boolean fragment) {
        ByteBuffer b = ByteBuffer.allocate(128);
        b.put(new byte[] {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1});
        if (vlan) {
            b.putShort((short) 0x8100).putShort((short) 42);
        }
        if (!v6) {
            b.putShort((short) 0x0800);
            b.put((byte) 0x45).put((byte) 0).putShort((short) 100).putShort((short) payloadSeed)
                    .putShort((short) (fragment ? 0x2000 : 0)).put((byte) 64).put((byte) proto).putShort((short) payloadSeed);
            b.putInt(srcIp).putInt(dstIp);
        } else {
            b.putShort((short) 0x86DD);
            b.putInt(0x6000_0000 | (payloadSeed & 0xFFFFF)).putShort((short) 60).put((byte) proto).put((byte) 64);
            b.putLong(0xfd00_0000_0000_0000L).putLong(srcIp).putLong(0xfd00_0000_0000_0000L).putLong(dstIp);
        }
        b.putShort((short) srcPort).putShort((short) dstPort).putInt(payloadSeed * 7919);
        while (b.hasRemaining()) {
            b.put((byte) payloadSeed);
        }
        return b.array();
    }

    static int hash(byte[] frame) {
        PacketBatch batch = new PacketBatch(1);
        batch.addFrame(MemorySegment.ofArray(frame), 0, frame.length);
        return FlowHash.of(batch, 0, frame.length);
    }

    @Test
    void oneFlowOneHashWhateverThePayload() {
        for (boolean v6 : new boolean[] {false, true}) {
            for (int proto : new int[] {6, 17}) {
                int h = hash(ip(v6, false, proto, 0x0a000001, 0x0a000002, 40000, 5001, 1, false));
                assertEquals(h, hash(ip(v6, false, proto, 0x0a000001, 0x0a000002, 40000, 5001, 99, false)),
                        (v6 ? "IPv6" : "IPv4") + " proto " + proto);
                assertNotEquals(h, hash(ip(v6, false, proto, 0x0a000001, 0x0a000002, 40001, 5001, 1, false)),
                        "another source port is another flow");
                assertNotEquals(h, hash(ip(v6, false, proto, 0x0a000003, 0x0a000002, 40000, 5001, 1, false)),
                        "another address is another flow");
            }
        }
    }

    @Test
    void taggedFramesHashByTheirInnerHeaders() {
        int a = hash(ip(false, true, 6, 1, 2, 1000, 2000, 1, false));
        assertEquals(a, hash(ip(false, true, 6, 1, 2, 1000, 2000, 5, false)));
        assertNotEquals(a, hash(ip(false, true, 6, 1, 2, 1001, 2000, 1, false)));
    }

    @Test
    void fragmentsAndOtherProtocolsHashByAddressesOnly() {
        // fragments after the first carry no ports: every fragment of a datagram must take the same pair
        assertEquals(hash(ip(false, false, 17, 1, 2, 1000, 2000, 1, true)), hash(ip(false, false, 17, 1, 2, 3000, 4000, 1, true)));
        assertEquals(hash(ip(false, false, 1, 1, 2, 1000, 2000, 1, false)), hash(ip(false, false, 1, 1, 2, 3000, 4000, 1, false)),
                "ICMP: no ports");
        // non-IP (ARP): the MACs and EtherType
        byte[] arp = new byte[60];
        arp[0] = (byte) 0xff;
        arp[12] = 0x08;
        arp[13] = 0x06;
        int h = hash(arp);
        arp[30] = 9;   // another target address inside the ARP body: same flow for us
        assertEquals(h, hash(arp));
        arp[6] = 2;    // another sender MAC: another flow
        assertNotEquals(h, hash(arp));
    }

    @Test
    void pickStaysInTheMaskAndSpreadsFlows() {
        assertEquals(-1, FlowHash.pick(12345, 0));
        assertEquals(3, FlowHash.pick(12345, 1 << 3));
        int[] counts = new int[16];
        int mask = 0b1011_0000_0000_0101;   // pairs 0, 2, 12, 13, 15
        for (int port = 0; port < 5000; port++) {
            int pair = FlowHash.pick(hash(ip(false, false, 6, 0x0a000001, 0x0a000002, 10000 + port, 80, 1, false)), mask);
            assertTrue((mask & (1 << pair)) != 0, "pair " + pair + " is in the mask");
            counts[pair]++;
        }
        for (int pair = 0; pair < 16; pair++) {
            if ((mask & (1 << pair)) != 0) {
                assertTrue(counts[pair] > 700 && counts[pair] < 1300, "5000 flows over 5 pairs: pair " + pair + " got " + counts[pair]);
            }
        }
    }
}
