package io.vswitch.vhost.virtio;

import io.vswitch.vhost.memory.GuestMemory;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * Copies into guest memory with 32-byte vector loads and stores, one {@code vmovdqu} pair per 32 bytes (why:
 * {@link GuestCopies}, "How"). Apart from {@link GuestCopies} so that a JVM started without
 * {@code --add-modules jdk.incubator.vector} never loads a vector class: {@link GuestCopies#VECTOR} asks for the
 * module before it touches this class, and nothing here runs unless it said yes.
 */
final class VectorCopy {
    /** The block: 32 bytes, one AVX2 register. */
    static final int BYTES = 32;
    private static final VectorSpecies<Byte> SPECIES = ByteVector.SPECIES_256;

    private VectorCopy() {
    }

    /** True when the CPU has 32-byte vectors (else the JVM would emulate them, slowly and allocating); the module must be there. */
    static boolean usable() {
        return ByteVector.SPECIES_PREFERRED.vectorByteSize() >= BYTES;
    }

    /**
     * Copies {@code len} bytes, at least {@link #BYTES}, from {@code srcOffset} of {@code src} to {@code dst} of
     * {@link GuestMemory#EVERYTHING}: whole blocks, and when {@code len} is not a multiple of 32 one more block
     * that ends at the last byte (it overlaps the one before, with the same bytes).
     */
    static void copy(MemorySegment src, long srcOffset, long dst, int len) {
        final ByteOrder order = ByteOrder.nativeOrder();
        int k = 0;
        for (; k <= len - BYTES; k += BYTES) {
            ByteVector.fromMemorySegment(SPECIES, src, srcOffset + k, order).intoMemorySegment(GuestMemory.EVERYTHING, dst + k, order);
        }
        if (k < len) {
            k = len - BYTES;
            ByteVector.fromMemorySegment(SPECIES, src, srcOffset + k, order).intoMemorySegment(GuestMemory.EVERYTHING, dst + k, order);
        }
    }
}
