package io.vswitch.engine;

import java.nio.file.Path;
import java.time.Duration;
import java.util.function.LongSupplier;

/**
 * Waiting on conditions instead of sleeping: tests poll the published counters (or any other state) until a
 * condition holds, and fail with what they waited for when it does not within a generous timeout. The poll
 * interval is small against the timeout, so a test is as fast as the system under test.
 */
final class Await {
    static final Duration DEFAULT = Duration.ofSeconds(30);

    private Await() {
    }

    @FunctionalInterface
    interface Condition {
        boolean holds() throws Exception;
    }

    static void until(Condition condition, String what) throws Exception {
        until(condition, DEFAULT, what);
    }

    static void until(Condition condition, Duration timeout, String what) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.holds()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("not within " + timeout.toSeconds() + " s: " + what);
            }
            Thread.sleep(10);   // polling
        }
    }

    /** Waits until {@code port}'s {@code counter} in the counters file reaches at least {@code min}; returns it. */
    static long atLeast(Path counters, String port, String counter, long min) throws Exception {
        long[] last = new long[1];
        until(() -> (last[0] = TestPmdForwardingTest.value(CountersFile.read(counters), port, counter)) >= min,
                () -> port + " " + counter + " reached " + min + " (last read " + last[0] + ")");
        return last[0];
    }

    /** Waits until {@code value} stops changing for {@code quiet} (two reads that far apart agree); returns it. */
    static long settled(LongSupplier value, Duration quiet, String what) throws Exception {
        long deadline = System.nanoTime() + DEFAULT.toNanos();
        long previous = value.getAsLong();
        while (true) {
            Thread.sleep(quiet.toMillis());
            long now = value.getAsLong();
            if (now == previous) {
                return now;
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("still changing after " + DEFAULT.toSeconds() + " s: " + what);
            }
            previous = now;
        }
    }

    private static void until(Condition condition, java.util.function.Supplier<String> what) throws Exception {
        long deadline = System.nanoTime() + DEFAULT.toNanos();
        while (!condition.holds()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("not within " + DEFAULT.toSeconds() + " s: " + what.get());
            }
            Thread.sleep(10);
        }
    }
}
