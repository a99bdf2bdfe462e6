package io.vswitch.engine;

import io.vswitch.testing.SecondProcess;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code housekeeping-cpus}: in a {@code vswitch run} process, every thread but the workers (the JVM's JIT
 * compiler and GC threads included, and those started after the switch came up) runs on the housekeeping cpu,
 * the worker on its own; in a second process because it confines the whole process.
 */
class HousekeepingCpusTest {
    @Test
    void everyThreadButTheWorkersStaysOnTheHousekeepingCpus(@TempDir Path dir) throws Exception {
        Assumptions.assumeTrue(Runtime.getRuntime().availableProcessors() >= 2, "needs 2 cpus");
        Path config = dir.resolve("hk.yaml");
        Files.writeString(config, TestTopologies.crossConnect(dir, "notify: interrupt", "cpus: [1]", "housekeeping-cpus: [0]"));
        try (SecondProcess.Running sw = SecondProcess.start("run", "-c", config.toString())) {
            // printed once 'run' handles SIGTERM (before that, a SIGTERM is the JVM's default exit, 143)
            sw.awaitOutput("vswitch: running", Duration.ofSeconds(60));
            sw.awaitOutput("housekeeping-cpus [0]", Duration.ofSeconds(5));
            Map<String, String> threads = threads(sw.pid());
            List<String> workers = threads.keySet().stream().filter(n -> n.startsWith("vswitch-worker")).toList();
            assertEquals(1, workers.size(), threads.toString());
            assertEquals("1", threads.get(workers.getFirst()), "the worker on its cpus: core: " + threads);
            assertTrue(threads.keySet().stream().anyMatch(n -> n.startsWith("C2 CompilerThre")), threads.toString());
            assertTrue(threads.keySet().stream().anyMatch(n -> n.startsWith("vswitch-houseke")), threads.toString());   // comm: 15 characters
            threads.forEach((name, cpus) -> {
                if (!name.startsWith("vswitch-worker")) {
                    assertEquals("0", cpus, name + " on the housekeeping cpu: " + threads);
                }
            });
            assertEquals(0, sw.terminate(), sw.output());
        }
    }

    /** Each live thread of process {@code pid}, "name/tid", and its Cpus_allowed_list. */
    private static Map<String, String> threads(long pid) throws IOException {
        Map<String, String> threads = new TreeMap<>();
        try (Stream<Path> tasks = Files.list(Path.of("/proc", Long.toString(pid), "task"))) {
            for (Path task : tasks.toList()) {
                try {
                    String name = Files.readString(task.resolve("comm")).trim();
                    String cpus = Files.readAllLines(task.resolve("status")).stream()
                            .filter(l -> l.startsWith("Cpus_allowed_list:")).findFirst().orElseThrow()
                            .substring("Cpus_allowed_list:".length()).trim();
                    threads.put(name + "/" + task.getFileName(), cpus);
                } catch (NoSuchFileException ended) {
                    // the thread ended meanwhile
                }
            }
        }
        return threads;
    }
}
