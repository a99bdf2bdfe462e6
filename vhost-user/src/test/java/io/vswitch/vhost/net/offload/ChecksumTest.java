package io.vswitch.vhost.net.offload;

import io.vswitch.testing.TcpFrames;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ChecksumTest {
    /** RFC 1071, 3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2. */
    @Test
    void rfc1071Example() {
        byte[] data = {0x00, 0x01, (byte) 0xf2, 0x03, (byte) 0xf4, (byte) 0xf5, (byte) 0xf6, (byte) 0xf7};
        assertEquals(0xddf2, Checksum.fold(Checksum.add(0, MemorySegment.ofArray(data), 0, data.length)));
    }

    @Test
    void agreesWithTheReferenceOnEveryLengthAndOffset() {
        Random r = new Random(0x5eed);
        byte[] data = new byte[3000];
        r.nextBytes(data);
        MemorySegment s = MemorySegment.ofArray(data);
        for (int from = 0; from < 7; from++) {
            for (int length = 0; length < 300; length++) {
                assertEquals(TcpFrames.sum(data, from, from + length, 0), Checksum.fold(Checksum.add(0, s, from, length)),
                        "from " + from + ", " + length + " bytes");
            }
        }
        assertEquals(TcpFrames.sum(data, 1, 3000, 0), Checksum.fold(Checksum.add(0, s, 1, 2999)));
    }

    @Test
    void completesAPartialTcpChecksum() {
        for (boolean v6 : new boolean[] {false, true}) {
            for (int payload : new int[] {0, 1, 7, 1448, 60_000}) {
                byte[] f = TcpFrames.tcp(v6, 0, payload, payload, 1, TcpFrames.ACK, 1);
                int l4 = TcpFrames.ETH + (v6 ? 40 : 20);
                Checksum.complete(MemorySegment.ofArray(f), 0, l4, 16, f.length);
                assertTrue(TcpFrames.tcpChecksumOk(f, TcpFrames.ETH, v6), (v6 ? "IPv6" : "IPv4") + " payload " + payload);
            }
        }
    }

    @Test
    void ipv4HeaderChecksum() {
        byte[] f = TcpFrames.tcp(false, 0, 10, 1, 1, TcpFrames.ACK, 7);
        f[TcpFrames.ETH + 10] = 0x12;   // spoil it
        Checksum.ipv4Header(MemorySegment.ofArray(f), TcpFrames.ETH, 20);
        assertTrue(TcpFrames.ipv4ChecksumOk(f, TcpFrames.ETH));
    }

    @Test
    void zeroIsSentAsAllOnes() {
        assertEquals(0xFFFF, Checksum.finish(0xFFFF));
        assertEquals(0xFFFE, Checksum.finish(1));
    }
}
