package io.vswitch.engine;

/**
 * The announcement a migrated guest's new port sends on its behalf when the frontend asks (SEND_RARP): a
 * Reverse ARP request from the guest's MAC, broadcast, as QEMU's own self-announce sends it.
 *
 * <pre>
 *   0      6      12     14    16    18   19   20    22     28    32     38    42           60
 *   | dst  | src  | 8035 | 1   | 0800| 6  | 4  | 3   | sha  | spa | tha  | tpa | zero pad   |
 *   | ff.. | mac  | type | htype ptype hlen plen  op  | mac  | 0   | mac  | 0   |            |
 * </pre>
 */
final class Rarp {
    static final int ETH_P_RARP = 0x8035;
    static final int FRAME_SIZE = 60;   // the Ethernet minimum without the FCS
    static final int OP_REVERSE_REQUEST = 3;

    private Rarp() {
    }

    static byte[] frame(byte[] mac) {
        if (mac.length != 6) {
            throw new IllegalArgumentException("a MAC has 6 bytes, not " + mac.length);
        }
        byte[] f = new byte[FRAME_SIZE];
        for (int i = 0; i < 6; i++) {
            f[i] = (byte) 0xFF;
        }
        System.arraycopy(mac, 0, f, 6, 6);
        put16(f, 12, ETH_P_RARP);
        put16(f, 14, 1);          // Ethernet
        put16(f, 16, 0x0800);     // IPv4
        f[18] = 6;
        f[19] = 4;
        put16(f, 20, OP_REVERSE_REQUEST);
        System.arraycopy(mac, 0, f, 22, 6);   // sender hardware address; sender IP 0.0.0.0
        System.arraycopy(mac, 0, f, 32, 6);   // target hardware address; target IP 0.0.0.0
        return f;
    }

    private static void put16(byte[] f, int at, int value) {
        f[at] = (byte) (value >>> 8);
        f[at + 1] = (byte) value;
    }
}
