package io.vswitch.engine;

import io.vswitch.testing.SecondProcess;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The diagnostic {@code -Dvswitch.loopTiming=true} (Worker): {@code vswitch stats} shows the worker's busy and idle
 * time, which add up to the wall-clock time between two readings; a worker with no guest is idle all that time.
 * Without the property the counters do not exist. In a second process: the property is read when Worker loads.
 */
class LoopTimingTest {
    private static final Pattern TIMES = Pattern.compile("worker 0\\s+busy_ns (\\d+) idle_ns (\\d+)");

    @Test
    void busyAndIdleTimeAddUpToTheWallClock(@TempDir Path dir) throws Exception {
        Path config = Files.writeString(dir.resolve("t.yaml"), TestTopologies.crossConnect(dir));
        Path run = dir.resolve("run");
        try (SecondProcess.Running sw = SecondProcess.start(List.of("-Dvswitch.loopTiming=true"), "run", "-c", config.toString())) {
            sw.awaitOutput("vswitch: running", Duration.ofSeconds(60));
            long a0 = System.nanoTime();
            long[] first = times(run);
            long a1 = System.nanoTime();
            long[] second = first;
            long b0 = a1;
            long b1 = a1;
            while (second[0] + second[1] - first[0] - first[1] < 300_000_000L) {   // until 300 ms more were counted
                assertTrue(System.nanoTime() - a0 < 60_000_000_000L, "the worker's times do not move: " + second[0] + ", " + second[1]);
                b0 = System.nanoTime();
                second = times(run);
                b1 = System.nanoTime();
            }
            long busy = second[0] - first[0];
            long idle = second[1] - first[1];
            // each reading was taken somewhere inside its stats process: between a0..a1 and b0..b1
            assertTrue(busy + idle <= b1 - a0 + 10_000_000L, "counted " + (busy + idle) + " ns in at most " + (b1 - a0));
            assertTrue(busy + idle >= b0 - a1 - 250_000_000L, "counted " + (busy + idle) + " ns in at least " + (b0 - a1));
            assertTrue(idle >= 0.95 * (busy + idle), "no guest: idle all the time, busy " + busy + " ns, idle " + idle + " ns");
            assertEquals(0, sw.terminate(), sw.output());
        }
    }

    @Test
    void withoutThePropertyThereAreNoTimes(@TempDir Path dir) throws Exception {
        Path config = Files.writeString(dir.resolve("t.yaml"), TestTopologies.crossConnect(dir));
        Path run = dir.resolve("run");
        try (SecondProcess.Running sw = SecondProcess.start("run", "-c", config.toString())) {
            sw.awaitOutput("vswitch: running", Duration.ofSeconds(60));
            SecondProcess.Result r = SecondProcess.vswitch("stats", "--counters", run.resolve("counters").toString());
            assertEquals(0, r.exitCode(), r.output());
            assertTrue(r.output().contains("busy_loops"), r.output());
            assertFalse(r.output().contains("busy_ns"), r.output());
            assertEquals(0, sw.terminate(), sw.output());
        }
    }

    /** busy_ns and idle_ns of worker 0, as {@code vswitch stats} prints them. */
    private static long[] times(Path run) throws Exception {
        SecondProcess.Result r = SecondProcess.vswitch("stats", "--counters", run.resolve("counters").toString());
        assertEquals(0, r.exitCode(), r.output());
        Matcher m = TIMES.matcher(r.output());
        assertTrue(m.find(), "no busy_ns/idle_ns line: " + r.output());
        return new long[] {Long.parseLong(m.group(1)), Long.parseLong(m.group(2))};
    }
}
