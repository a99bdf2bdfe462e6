package io.vswitch.engine;

import io.vswitch.testing.JvmFlags;
import io.vswitch.testing.SecondProcess;
import io.vswitch.testing.TestPmd;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The {@code vswitch} command line as users run it: in its own process. */
class CliTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "missing key      | ports:\\n  - name: a\\n                                        | bad.yaml:2: ports[0].socket: missing",
        "unknown key      | switch:\\n  wokers: 1\\nports:\\n  - name: a\\n    socket: SOCK | bad.yaml:2: switch.wokers: unknown key",
        "bad enum         | switch:\\n  mode: bridge\\nports:\\n  - name: a\\n    socket: SOCK | bad.yaml:2: switch.mode: 'bridge' is not one of",
        "unknown link     | switch:\\n  mode: cross-connect\\nports:\\n  - name: a\\n    socket: SOCK\\nlinks:\\n  - [a, zz] | bad.yaml:7: links[0][1]: no port named 'zz'",
        "duplicate socket | ports:\\n  - name: a\\n    socket: SOCK\\n  - name: b\\n    socket: SOCK | bad.yaml:5: ports[1].socket:",
    })
    void configMistakesGiveOneLineWithFileAndLineAndStartNothing(String mistake, String yaml, String expected) throws Exception {
        Path sock = dir.resolve("a.sock");
        Path file = dir.resolve("bad.yaml");
        Files.writeString(file, yaml.replace("\\n", "\n").replace("SOCK", sock.toString()));
        for (String command : new String[] {"validate", "run"}) {
            SecondProcess.Result r = command.equals("run")
                    ? SecondProcess.vswitch("run", "--config", file.toString())
                    : SecondProcess.vswitch("validate", file.toString());
            assertEquals(2, r.exitCode(), command + ": " + r.output());
            String line = r.output().lines().filter(l -> l.contains("bad.yaml:")).findFirst().orElse("");
            assertTrue(line.endsWith(expected) || line.contains(expected.replace("bad.yaml", file.toString())),
                    command + " " + mistake + ": expected '" + expected + "' in:\n" + r.output());
            assertFalse(Files.exists(sock), "nothing was started");
        }
    }

    @Test
    void validFileValidates() throws Exception {
        Path file = dir.resolve("ok.yaml");
        Files.writeString(file, "ports:\n  - name: a\n    socket: " + dir.resolve("a.sock") + "\n");
        SecondProcess.Result r = SecondProcess.vswitch("validate", file.toString());
        assertEquals(0, r.exitCode(), r.output());
        assertTrue(r.output().contains("valid"), r.output());
    }

    @Test
    void everyShippedExampleValidatesIncludingWhatTheDataPlaneSupports() throws Exception {
        Path examples = Path.of(System.getProperty("vswitch.repo.root", "..")).resolve("config/examples");
        try (var files = Files.list(examples)) {
            List<Path> yamls = files.filter(f -> f.toString().endsWith(".yaml")).sorted().toList();
            assertTrue(yamls.size() >= 4, "examples found in " + examples);
            for (Path yaml : yamls) {
                SecondProcess.Result r = SecondProcess.vswitch("validate", yaml.toString());
                assertEquals(0, r.exitCode(), yaml + ": " + r.output());
            }
        }
    }

    @Test
    void versionAndHelp() throws Exception {
        SecondProcess.Result version = SecondProcess.vswitch("--version");
        assertEquals(0, version.exitCode());
        assertTrue(version.output().startsWith("vswitch "), version.output());
        SecondProcess.Result help = SecondProcess.vswitch("run", "--help");
        assertEquals(0, help.exitCode());
        assertTrue(help.output().contains("--config"), help.output());
        assertEquals(2, SecondProcess.vswitch("no-such-command").exitCode());
    }

    @Test
    void statsWithoutARunningSwitchFails() throws Exception {
        SecondProcess.Result r = SecondProcess.vswitch("stats", "--counters", dir.resolve("nothing").toString());
        assertEquals(1, r.exitCode(), r.output());
        assertTrue(r.output().contains("is the switch running?"), r.output());
    }

    /**
     * {@code vswitch run} with no config: the default topology comes up, says how to attach guests, a DPDK
     * guest attached to the printed sockets passes traffic through the learning bridge, and SIGTERM stops it
     * cleanly (exit 0, sockets gone).
     */
    @Test
    void defaultTopologyRunsPassesTrafficAndStopsOnSigterm() throws Exception {
        TestPmd.require();
        Path runtime = Files.createTempDirectory("vsdef");
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        cmd.addAll(JvmFlags.list());
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), "io.vswitch.cli.Main", "run", "--runtime-dir", runtime.toString()));
        Process sw = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        StringBuilder out = new StringBuilder();
        Thread reader = Thread.ofPlatform().daemon().start(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(sw.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    synchronized (out) {
                        out.append(line).append('\n');
                    }
                }
            } catch (Exception ignored) {
                // process ended
            }
        });
        try {
            Path vm1 = runtime.resolve("vm1.sock");
            Path vm2 = runtime.resolve("vm2.sock");
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (!(text(out).contains("port vm2") && Files.exists(vm2)) && System.nanoTime() < deadline) {
                Thread.sleep(100);
            }
            String printed = text(out);
            assertTrue(printed.contains("running the built-in default topology"), printed);
            assertTrue(printed.contains("-chardev socket,id=chr-vm1,path=" + vm1), printed);
            assertTrue(printed.contains("-netdev vhost-user,id=net-vm2,chardev=chr-vm2"), printed);

            try (TestPmd pmd = TestPmd.start("default-topology", dir, List.of("-l", "0,1", "--no-pci", "--no-huge", "-m", "1024",
                            "--vdev", "net_virtio_user0,path=" + vm1 + ",mac=02:00:00:00:00:01",
                            "--vdev", "net_virtio_user1,path=" + vm2 + ",mac=02:00:00:00:00:02"),
                    List.of("-i", "--total-num-mbufs=16384", "--forward-mode=mac",
                            "--eth-peer=0,02:00:00:00:00:02", "--eth-peer=1,02:00:00:00:00:01"))) {
                pmd.command("start tx_first", Duration.ofSeconds(30));
                AwaitCounter.atLeast(runtime.resolve("counters"), "vm1", "rx_packets", 100_000);
                AwaitCounter.atLeast(runtime.resolve("counters"), "vm2", "rx_packets", 100_000);
                pmd.command("stop", Duration.ofSeconds(30));
                Map<Integer, TestPmd.PortStats> stats = pmd.portStats();
                assertTrue(stats.get(0).rxPackets() > 1000 && stats.get(1).rxPackets() > 1000, "traffic both ways: " + stats);
                SecondProcess.Result st = SecondProcess.vswitch("stats", "--counters", runtime.resolve("counters").toString());
                assertEquals(0, st.exitCode(), st.output());
                assertTrue(st.output().contains("vm1") && st.output().contains("vm2"), st.output());
                pmd.command("start tx_first", Duration.ofSeconds(30));
                SecondProcess.Result watch = SecondProcess.vswitch("stats", "--counters", runtime.resolve("counters").toString(),
                        "--watch", "--interval", "0.5", "--count", "3");
                pmd.command("stop", Duration.ofSeconds(30));
                assertEquals(0, watch.exitCode(), watch.output());
                assertEquals(3, watch.output().lines().filter(l -> l.startsWith("vswitch pid")).count(), watch.output());
                // the vm1 row of the last table whose header has the rate columns
                String lastRates = null;
                boolean inRates = false;
                for (String line : watch.output().lines().toList()) {
                    if (line.startsWith("port ")) {
                        inRates = line.contains("rx_pps");
                    } else if (inRates && line.startsWith("vm1 ")) {
                        lastRates = line;
                    }
                }
                assertTrue(lastRates != null, watch.output());
                String[] cells = lastRates.trim().split("\\s+");
                assertTrue(Double.parseDouble(cells[cells.length - 1]) > 0, "a packet rate while traffic flows: " + lastRates);
            }

            ProcessHandle.of(sw.pid()).orElseThrow();
            new ProcessBuilder("kill", "-TERM", Long.toString(sw.pid())).start().waitFor();
            assertTrue(sw.waitFor(20, TimeUnit.SECONDS), "stopped on SIGTERM:\n" + text(out));
            reader.join(2000);
            assertEquals(0, sw.exitValue(), text(out));
            assertTrue(text(out).contains("vswitch: stopped"), text(out));
            assertFalse(Files.exists(vm1) || Files.exists(vm2), "socket files removed");
        } finally {
            sw.destroyForcibly();
            try (var files = Files.walk(runtime)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    private static String text(StringBuilder out) {
        synchronized (out) {
            return out.toString();
        }
    }
}
