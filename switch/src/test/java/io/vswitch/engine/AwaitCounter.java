package io.vswitch.engine;

import io.vswitch.testing.Await;

import java.nio.file.Path;

/** {@link Await} on the switch's counters file. */
final class AwaitCounter {
    private AwaitCounter() {
    }

    /** Waits until {@code port}'s {@code counter} in the counters file reaches at least {@code min}; returns it. */
    static long atLeast(Path counters, String port, String counter, long min) throws Exception {
        return Await.atLeast(() -> TestPmdForwardingTest.value(CountersFile.read(counters), port, counter), min,
                port + " " + counter);
    }
}
