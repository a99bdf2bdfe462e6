package io.vswitch.vhost.virtio;

import io.vswitch.testing.JvmFlags;
import io.vswitch.vhost.memory.GuestMemory;
import jdk.incubator.vector.ByteVector;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The deferred copies land byte for byte, and nothing else: every length from 1 to 200 bytes and a few large
 * ones (the vector copy's whole blocks, its overlapping last block, and the short frames it leaves to
 * {@link GuestMemory#copyToGuest}), from a guest's memory ({@link GuestMemory#EVERYTHING}) and from a segment of
 * its own (an uplink's buffer), with the bytes around every destination untouched; past the capacity the
 * copies held first are done first; a source that is gone fails the drain after the others were done. The vector
 * copy is on in a JVM with jvm.options on a CPU with 32-byte vectors, and a JVM without the vector module still
 * copies (through {@link GuestMemory#copyToGuest}) instead of failing to load the class.
 */
class GuestCopiesTest {
    private static final int GUARD = 64;
    private final Arena arena = Arena.ofShared();

    @AfterEach
    void close() {
        arena.close();
    }

    private static void fill(MemorySegment s, SplittableRandom random) {
        for (long i = 0; i < s.byteSize(); i++) {
            s.set(ValueLayout.JAVA_BYTE, i, (byte) random.nextInt());
        }
    }

    /** Copies {@code lengths[i]} bytes each (sources and destinations at odd offsets too) and checks every byte of the destination area. */
    private void copyAndCheck(int[] lengths, boolean sourceIsGuest, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        long total = 0;
        for (int n : lengths) {
            total += n + 2L * GUARD;
        }
        MemorySegment src = arena.allocate(total, 64);
        MemorySegment dst = arena.allocate(total, 64);
        fill(src, random);
        fill(dst, random);
        MemorySegment before = arena.allocate(total);
        before.copyFrom(dst);
        GuestCopies copies = new GuestCopies();
        long at = 0;
        long[] where = new long[lengths.length];
        for (int i = 0; i < lengths.length; i++) {
            long offset = at + GUARD + random.nextInt(7);   // misaligned as often as not
            where[i] = offset;
            if (sourceIsGuest) {
                copies.add(GuestMemory.EVERYTHING, src.address() + offset, dst.address() + offset, lengths[i]);
            } else {
                copies.add(src, offset, dst.address() + offset, lengths[i]);
            }
            at += lengths[i] + 2L * GUARD;
        }
        copies.drain();
        assertEquals(0, copies.pending());
        int next = 0;
        for (long i = 0; i < total; i++) {
            while (next < lengths.length && i >= where[next] + lengths[next]) {
                next++;
            }
            boolean inside = next < lengths.length && i >= where[next];
            byte expected = inside ? src.get(ValueLayout.JAVA_BYTE, i) : before.get(ValueLayout.JAVA_BYTE, i);
            if (dst.get(ValueLayout.JAVA_BYTE, i) != expected) {
                fail("byte " + i + (inside ? " of copy " + next + " (" + lengths[next] + " bytes)" : " outside every copy")
                        + " is " + dst.get(ValueLayout.JAVA_BYTE, i) + ", expected " + expected);
            }
        }
    }

    private static int[] lengths() {
        int[] lengths = new int[200 + 5];
        for (int i = 0; i < 200; i++) {
            lengths[i] = i + 1;
        }
        lengths[200] = 1514;
        lengths[201] = 1518;
        lengths[202] = 9018;
        lengths[203] = 65_550;
        lengths[204] = 31;
        return lengths;
    }

    @Test
    void everyLengthLandsExactlyFromAGuest() {
        copyAndCheck(lengths(), true, 1);
    }

    @Test
    void everyLengthLandsExactlyFromASegment() {
        copyAndCheck(lengths(), false, 2);
    }

    @Test
    void pastTheCapacityTheFirstCopiesAreDoneFirst() {
        int n = GuestCopies.CAPACITY + 10;
        MemorySegment src = arena.allocate(64L * n, 64);
        MemorySegment dst = arena.allocate(64, 64);
        for (int i = 0; i < n; i++) {
            src.set(ValueLayout.JAVA_LONG, 64L * i, i);
        }
        GuestCopies copies = new GuestCopies();
        for (int i = 0; i < n; i++) {
            copies.add(src, 64L * i, dst.address(), 64);   // all into one buffer: the last one recorded wins
        }
        assertEquals(10, copies.pending(), "the first CAPACITY copies were done when the next one came");
        assertEquals(GuestCopies.CAPACITY - 1, dst.get(ValueLayout.JAVA_LONG, 0));
        copies.drain();
        assertEquals(n - 1, dst.get(ValueLayout.JAVA_LONG, 0));
    }

    @Test
    void aSourceThatIsGoneFailsTheDrainAfterTheOthers() {
        MemorySegment dst = arena.allocate(256, 64);
        MemorySegment good = arena.allocate(64, 64);
        good.fill((byte) 7);
        Arena gone = Arena.ofConfined();
        MemorySegment closed = gone.allocate(64, 64);
        gone.close();
        GuestCopies copies = new GuestCopies();
        copies.add(closed, 0, dst.address(), 64);
        copies.add(good, 0, dst.address() + 128, 64);
        assertThrows(IllegalStateException.class, copies::drain);
        assertEquals(0, copies.pending());
        for (int i = 0; i < 64; i++) {
            assertEquals(0, dst.get(ValueLayout.JAVA_BYTE, i), "nothing copied from the closed source");
            assertEquals(7, dst.get(ValueLayout.JAVA_BYTE, 128 + i), "the copy after the failed one was done");
        }
    }

    @Test
    void theVectorCopyIsOnWhereTheCpuHasIt() {
        // the test JVM has jvm.options, so the module: whether the copies above went through VectorCopy is the CPU's say
        assertEquals(ByteVector.SPECIES_PREFERRED.vectorByteSize() >= VectorCopy.BYTES, GuestCopies.VECTOR);
    }

    @Test
    void aJvmWithoutTheVectorModuleStillCopies() throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        cmd.addAll(JvmFlags.withoutVectorModule());
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), WithoutTheModule.class.getName()));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        try {
            assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the second JVM did not finish");
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertEquals(0, p.exitValue(), out);
            assertTrue(out.contains("copied 1514 bytes, vector false"), out);
        } finally {
            p.destroyForcibly();
        }
    }

    /** Run in a JVM without {@code --add-modules jdk.incubator.vector}: one frame through {@link GuestCopies}. */
    public static final class WithoutTheModule {
        public static void main(String[] args) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment src = arena.allocate(1514);
                MemorySegment dst = arena.allocate(1514);
                for (int i = 0; i < 1514; i++) {
                    src.set(ValueLayout.JAVA_BYTE, i, (byte) (i * 7));
                }
                GuestCopies copies = new GuestCopies();
                copies.add(src, 0, dst.address(), 1514);
                copies.drain();
                if (src.mismatch(dst) != -1) {
                    throw new AssertionError("byte " + src.mismatch(dst) + " differs");
                }
                System.out.println("copied 1514 bytes, vector " + GuestCopies.VECTOR);
            }
        }
    }
}
