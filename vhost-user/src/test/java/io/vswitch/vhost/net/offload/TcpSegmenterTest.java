package io.vswitch.vhost.net.offload;

import io.vswitch.testing.TcpFrames;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

import static io.vswitch.testing.TcpFrames.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Segments of hand-built TSO frames, checked field by field and against the independent checksum reference. */
class TcpSegmenterTest {
    @Test
    void ipv4SixtyFourKiB() {
        check(false, 0, 65_000, 1448, FIN | PSH | ACK | CWR);
    }

    @Test
    void ipv6SixtyFourKiB() {
        check(true, 0, 65_000, 1428, PSH | ACK);
    }

    @Test
    void vlanTaggedIpv4() {
        check(false, 10, 9_000, 1460, PSH | ACK);
    }

    @Test
    void payloadExactlyAMultipleOfTheMss() {
        check(false, 0, 4 * 1000, 1000, FIN | ACK);
    }

    @Test
    void payloadShorterThanTheMssMakesOneSegment() {
        check(true, 0, 100, 1448, PSH | ACK);
    }

    private static void check(boolean v6, int vlan, int payload, int mss, int flags) {
        long seq = 0xFFFF_F000L;   // wraps within the frame
        int id = 0xFFFE;           // so does the IPv4 id
        byte[] frame = TcpFrames.tcp(v6, vlan, payload, 3, seq, flags, id);
        int l3 = ETH + (vlan > 0 ? 4 : 0);
        int l4 = l3 + (v6 ? IPV6 : IPV4);
        int p = l4 + TCP;
        int n = TcpSegmenter.count(payload, mss);
        assertEquals((payload + mss - 1) / mss, n);
        byte[] out = new byte[70_000];
        MemorySegment dst = MemorySegment.ofArray(out);
        ByteArrayOutputStream joined = new ByteArrayOutputStream();
        for (int k = 0; k < n; k++) {
            int len = TcpSegmenter.segment(MemorySegment.ofArray(frame), frame.length, l3, v6, l4, p, mss, k, dst);
            byte[] s = Arrays.copyOf(out, len);
            int chunk = Math.min(mss, payload - k * mss);
            assertEquals(p + chunk, len, "segment " + k + " length");
            assertArrayEquals(Arrays.copyOf(frame, l3), Arrays.copyOf(s, l3), "Ethernet header and tag unchanged");
            if (!v6) {
                assertEquals(len - l3, u16(s, l3 + 2), "IPv4 total length");
                assertEquals((id + k) & 0xFFFF, u16(s, l3 + 4), "IPv4 id increments");
                assertTrue(ipv4ChecksumOk(s, l3), "IPv4 header checksum of segment " + k);
            } else {
                assertEquals(len - l4, u16(s, l3 + 4), "IPv6 payload length");
            }
            assertEquals((seq + (long) k * mss) & 0xFFFF_FFFFL, u32(s, l4 + 4), "sequence number");
            int f = s[l4 + 13] & 0xFF;
            boolean last = k == n - 1;
            assertEquals(last ? flags & (FIN | PSH) : 0, f & (FIN | PSH), "FIN/PSH on the last segment only (" + k + ")");
            assertEquals(k == 0 ? flags & CWR : 0, f & CWR, "CWR on the first segment only (" + k + ")");
            assertEquals(flags & ACK, f & ACK, "other flags kept");
            assertTrue(tcpChecksumOk(s, l3, v6), "TCP checksum of segment " + k);
            joined.write(s, p, chunk);
        }
        assertArrayEquals(Arrays.copyOfRange(frame, p, frame.length), joined.toByteArray(), "payload reassembles");
    }
}
