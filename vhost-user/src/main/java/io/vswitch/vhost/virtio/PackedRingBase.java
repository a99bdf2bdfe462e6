package io.vswitch.vhost.virtio;

/**
 * The ring state of a packed virtqueue as GET_VRING_BASE and SET_VRING_BASE carry it (QEMU's
 * docs/interop/vhost-user.rst, "Vring descriptor indices for packed virtqueues"): one 32-bit {@code num}.
 *
 * <pre>
 *  31  30 ........... 16  15  14 ............ 0
 * +---+-----------------+---+------------------+
 * | U |   used offset   | A |  avail offset    |
 * +---+-----------------+---+------------------+
 *  A: the driver ring (avail) wrap counter, U: the device ring (used) wrap counter
 *  avail offset: the next descriptor the device reads; used offset: where it writes the next used descriptor
 * </pre>
 *
 * Both offsets are ring slots {@code 0..size-1} (the wrap counter says which lap), not free-running indices.
 * The two differ when a device stopped holding descriptors it had read but not yet returned (in flight): the
 * used position is then behind the avail one by those descriptors' slots, at most a whole ring.
 *
 * <p>Frontends that do not carry the used position send zeros in bits 16-31: DPDK's virtio-user starts every
 * ring with {@code 0x8000} (slot 0, wrap 1), and QEMU sends back what a backend that answers GET_VRING_BASE
 * with bits 0-15 only (DPDK's lib/vhost) reported. Read literally, zeros with the avail wrap counter 1 say
 * used slot 0 of the lap before the avail one, a whole ring or more in flight, which no device that stopped
 * leaves: such a value is read as "used = avail". With the avail wrap counter 0 the zeros are a possible state
 * (used at slot 0 of lap 1, the slots up to avail in flight) and are read literally, so that every state our
 * GET_VRING_BASE reports comes back exactly. The one value this misreads is a backend that reported 16 bits
 * with its avail position in an odd lap (wrap 0): a device started from it writes used descriptors at slot 0
 * while the driver expects them at the avail position (DPDK's lib/vhost ignores bits 16-31 altogether).
 */
public final class PackedRingBase {
    public static final int OFFSET_MASK = 0x7FFF;
    public static final int AVAIL_WRAP_SHIFT = 15;
    public static final int USED_SHIFT = 16;
    public static final int USED_WRAP_SHIFT = 31;

    private PackedRingBase() {
    }

    public static int availOffset(int base) {
        return base & OFFSET_MASK;
    }

    public static int availWrap(int base) {
        return (base >>> AVAIL_WRAP_SHIFT) & 1;
    }

    /** False when bits 16-31 are zero and the avail wrap counter is 1: the used position is the avail one (see the class comment). */
    public static boolean carriesUsed(int base) {
        return (base >>> USED_SHIFT) != 0 || availWrap(base) == 0;
    }

    public static int usedOffset(int base) {
        return carriesUsed(base) ? (base >>> USED_SHIFT) & OFFSET_MASK : availOffset(base);
    }

    public static int usedWrap(int base) {
        return carriesUsed(base) ? base >>> USED_WRAP_SHIFT : availWrap(base);
    }

    /** The 32-bit state for these positions (both always carried). */
    public static int encode(int availOffset, int availWrap, int usedOffset, int usedWrap) {
        return (availOffset & OFFSET_MASK) | (availWrap & 1) << AVAIL_WRAP_SHIFT
                | (usedOffset & OFFSET_MASK) << USED_SHIFT | (usedWrap & 1) << USED_WRAP_SHIFT;
    }

    /**
     * Descriptor slots from the used position to the avail one, in {@code 0..2*size-1}: the slots in flight when
     * it is at most {@code size}; more means the used position is ahead of the avail one.
     */
    public static int inFlight(int base, int size) {
        int avail = availOffset(base) + (1 - availWrap(base)) * size;   // position within a two-lap cycle
        int used = usedOffset(base) + (1 - usedWrap(base)) * size;
        return Math.floorMod(avail - used, 2 * size);
    }

    /** Null when {@code base} is a usable state for a ring of {@code size} descriptors, else why not. */
    public static String problem(int base, int size) {
        if (availOffset(base) >= size) {
            return "packed ring base 0x" + Integer.toHexString(base) + ": avail offset " + availOffset(base)
                    + " (wrap " + availWrap(base) + ") is not below the queue size " + size;
        }
        if (usedOffset(base) >= size) {
            return "packed ring base 0x" + Integer.toHexString(base) + ": used offset " + usedOffset(base)
                    + " (wrap " + usedWrap(base) + ") is not below the queue size " + size;
        }
        if (inFlight(base, size) > size) {
            return "packed ring base 0x" + Integer.toHexString(base) + ": used position " + usedOffset(base)
                    + " (wrap " + usedWrap(base) + ") is ahead of the avail position " + availOffset(base)
                    + " (wrap " + availWrap(base) + ")";
        }
        return null;
    }

    public static String describe(int base) {
        return "avail " + availOffset(base) + " (wrap " + availWrap(base) + "), used " + usedOffset(base)
                + " (wrap " + usedWrap(base) + ")";
    }
}
