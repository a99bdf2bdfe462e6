package io.vswitch.sys;

import org.junit.jupiter.api.Test;

import java.util.BitSet;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class AffinityTest {
    /** Runs {@code body} on a thread of its own, so the test JVM's other threads keep their cpus. */
    private static void onOwnThread(ThrowingRunnable body) throws Exception {
        AtomicReference<Throwable> failed = new AtomicReference<>();
        Thread t = Thread.ofPlatform().start(() -> {
            try {
                body.run();
            } catch (Throwable e) {
                failed.set(e);
            }
        });
        t.join();
        if (failed.get() != null) {
            throw new AssertionError(failed.get());
        }
    }

    interface ThrowingRunnable {
        void run() throws Exception;
    }

    @Test
    void aThreadsMaskIsSetAndReadBack() throws Exception {
        onOwnThread(() -> {
            BitSet before = Affinity.allowed(0);
            assertFalse(before.isEmpty());
            int cpu = before.nextSetBit(0);
            BitSet one = new BitSet();
            one.set(cpu);
            assertTrue(Affinity.setAllowed(0, one));
            assertEquals(one, Affinity.allowed(0));
            assertEquals(cpu, Affinity.currentCpu(), "runs where it is allowed to");
            assertTrue(Affinity.setAllowed(0, before));
            assertEquals(before, Affinity.allowed(0));
        });
    }

    @Test
    void aGoneThreadIsNotAnErrorAnUnusableCpuIs() throws Exception {
        BitSet any = Affinity.allowed(0);
        assertFalse(Affinity.setAllowed(1 << 30, any), "no such thread (ESRCH): false");
        BitSet offline = new BitSet();
        offline.set(1000);
        onOwnThread(() -> {
            BitSet before = Affinity.allowed(0);
            SysCallException e = assertThrows(SysCallException.class, () -> Affinity.setAllowed(0, offline));
            assertTrue(e.getMessage().contains("sched_setaffinity"), e.getMessage());
            assertEquals(before, Affinity.allowed(0), "unchanged");
        });
        assertThrows(IllegalArgumentException.class, () -> Affinity.setAllowed(0, new BitSet()));
    }
}
