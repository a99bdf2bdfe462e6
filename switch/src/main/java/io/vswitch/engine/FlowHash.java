package io.vswitch.engine;

import io.vswitch.vhost.virtio.PacketBatch;

/**
 * Which receive queue of a multiqueue port a frame goes to: a hash of its flow, so that every frame of one flow
 * lands on the same queue and keeps its order. Allocation-free, reads the frame where it lies (any piece layout).
 *
 * <p>The flow is the 5-tuple (addresses, protocol, ports) of IPv4 and IPv6 TCP and UDP, behind at most one
 * 802.1Q tag; the addresses and protocol of other IP traffic and of IPv4 fragments (which carry no ports after
 * the first); and the two MAC addresses and the EtherType of anything else (ARP, non-IP).
 */
final class FlowHash {
    static final int ETH_P_IPV4 = 0x0800;
    static final int ETH_P_IPV6 = 0x86DD;
    static final int ETH_P_8021Q = 0x8100;
    static final int IPPROTO_TCP = 6;
    static final int IPPROTO_UDP = 17;

    private FlowHash() {
    }

    /** The flow hash of frame {@code frame} of {@code b} ({@code length} bytes, at least 14). */
    static int of(PacketBatch b, int frame, int length) {
        int l3 = 14;
        int type = b.u16(frame, 12);
        if (type == ETH_P_8021Q && length >= 18) {
            type = b.u16(frame, 16);
            l3 = 18;
        }
        if (type == ETH_P_IPV4 && length >= l3 + 20) {
            int versionIhl = b.frameByte(frame, l3);
            int ihl = (versionIhl & 0xF) * 4;
            int proto = b.frameByte(frame, l3 + 9);
            int h = mix(0x9e3779b9, (b.u16(frame, l3 + 12) << 16) | b.u16(frame, l3 + 14));
            h = mix(h, (b.u16(frame, l3 + 16) << 16) | b.u16(frame, l3 + 18));
            h = mix(h, proto);
            boolean fragment = (b.u16(frame, l3 + 6) & 0x3FFF) != 0;   // MF or an offset: ports only in the first
            if (!fragment && ihl >= 20 && (proto == IPPROTO_TCP || proto == IPPROTO_UDP) && length >= l3 + ihl + 4) {
                h = mix(h, (b.u16(frame, l3 + ihl) << 16) | b.u16(frame, l3 + ihl + 2));
            }
            return finish(h);
        }
        if (type == ETH_P_IPV6 && length >= l3 + 40) {
            int h = 0x85ebca6b;
            for (int off = 8; off < 40; off += 4) {   // source and destination addresses
                h = mix(h, (b.u16(frame, l3 + off) << 16) | b.u16(frame, l3 + off + 2));
            }
            int next = b.frameByte(frame, l3 + 6);
            h = mix(h, next);
            if ((next == IPPROTO_TCP || next == IPPROTO_UDP) && length >= l3 + 44) {
                h = mix(h, (b.u16(frame, l3 + 40) << 16) | b.u16(frame, l3 + 42));
            }
            return finish(h);
        }
        long dst = b.mac(frame, 0);
        long src = b.mac(frame, 6);
        int h = mix(0x27d4eb2f, (int) dst);
        h = mix(h, (int) (dst >>> 32) | (type << 16));
        h = mix(h, (int) src);
        h = mix(h, (int) (src >>> 32));
        return finish(h);
    }

    /**
     * The pair among {@code mask}'s set bits that {@code hash} picks (the same pair for the same hash and mask),
     * or -1 when the mask is empty.
     */
    static int pick(int hash, int mask) {
        int count = Integer.bitCount(mask);
        if (count <= 1) {
            return count == 0 ? -1 : Integer.numberOfTrailingZeros(mask);
        }
        int k = (int) (((hash & 0xFFFF_FFFFL) * count) >>> 32);   // uniform in 0..count-1 without a division
        int m = mask;
        for (int i = 0; i < k; i++) {
            m &= m - 1;
        }
        return Integer.numberOfTrailingZeros(m);
    }

    private static int mix(int h, int v) {
        int k = v * 0xcc9e2d51;
        k = Integer.rotateLeft(k, 15) * 0x1b873593;
        h ^= k;
        return Integer.rotateLeft(h, 13) * 5 + 0xe6546b64;
    }

    private static int finish(int h) {
        h ^= h >>> 16;
        h *= 0x85ebca6b;
        h ^= h >>> 13;
        h *= 0xc2b2ae35;
        return h ^ (h >>> 16);
    }
}
