package io.vswitch.testing;

import java.time.Duration;
import java.util.function.BooleanSupplier;
import java.util.function.LongSupplier;

/**
 * Waiting on conditions instead of sleeping: tests poll the published counters (or any other state) until a
 * condition holds, and fail with what they waited for when it does not within a generous timeout. The poll
 * interval is small against the timeout, so a test is as fast as the system under test.
 */
public final class Await {
    public static final Duration DEFAULT = Duration.ofSeconds(30);

    private Await() {
    }

    @FunctionalInterface
    public interface Condition {
        boolean holds() throws Exception;
    }

    public static void until(Condition condition, String what) throws Exception {
        until(condition, DEFAULT, what);
    }

    public static void until(Condition condition, Duration timeout, String what) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.holds()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("not within " + timeout.toSeconds() + " s: " + what);
            }
            Thread.sleep(10);   // polling
        }
    }

    /**
     * Waits up to 5 s for {@code condition}, for state that changes within milliseconds (a handler's reply
     * already sent, a flag raised by a worker). Unchecked, so it fits lambdas and fixtures.
     */
    public static void await(BooleanSupplier condition, String what) {
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out waiting: " + what);
            }
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted waiting: " + what);
            }
        }
    }

    /** Waits until {@code value} reaches at least {@code min}; returns the last value read. */
    public static long atLeast(Reading value, long min, String what) throws Exception {
        long[] last = new long[1];
        until(() -> (last[0] = value.read()) >= min, () -> what + " reached " + min + " (last read " + last[0] + ")");
        return last[0];
    }

    @FunctionalInterface
    public interface Reading {
        long read() throws Exception;
    }

    /** Waits until {@code value} stops changing for {@code quiet} (two reads that far apart agree); returns it. */
    public static long settled(LongSupplier value, Duration quiet, String what) throws Exception {
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

    /** Like {@link #until(Condition, String)}, describing the failure only when it happens (with the state it saw). */
    public static void until(Condition condition, java.util.function.Supplier<String> what) throws Exception {
        until(condition, DEFAULT, what);
    }

    /** Like {@link #until(Condition, Duration, String)}, describing the failure only when it happens. */
    public static void until(Condition condition, Duration timeout, java.util.function.Supplier<String> what)
            throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.holds()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("not within " + timeout.toSeconds() + " s: " + what.get());
            }
            Thread.sleep(10);
        }
    }
}
