package io.vswitch.engine;

import io.vswitch.cli.Main;
import io.vswitch.config.ConfigLoader;
import io.vswitch.control.ControlServer;
import io.vswitch.testing.TestPmd;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import static io.vswitch.engine.TestPmdForwardingTest.drops;
import static io.vswitch.engine.TestPmdForwardingTest.value;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The day-2 scenario with the real DPDK frontend: a testpmd forwards through p0/p1 while p2/p3 are added at
 * runtime through the control socket (the CLI, in this JVM), linked, used by a second testpmd, changed live and
 * deleted. Throughout, p0/p1 keep their one connection and their counters keep growing; at the end nothing the
 * first testpmd sent is unaccounted for.
 */
class RuntimePortsTestPmdTest {
    private static final Duration WAIT = Duration.ofSeconds(60);

    @TempDir
    Path dir;

    private Path rt() {
        return dir.resolve("rt");
    }

    private int cli(String... args) {
        List<String> all = new ArrayList<>(List.of(args));
        all.addAll(List.of("--runtime-dir", rt().toString()));
        return Main.execute(all.toArray(new String[0]));
    }

    private static List<String> eal(Path a, Path b) {
        return List.of("-l", "0,1", "--no-pci", "--no-huge", "-m", "1024",
                "--vdev", "net_virtio_user0,path=" + a, "--vdev", "net_virtio_user1,path=" + b);
    }

    private static final List<String> APP = List.of("-i", "--total-num-mbufs=16384", "--nb-cores=1");

    /** p0/p1 still have their first connection, and both directions moved since {@code before}. */
    private static long[] assertP0P1Serving(Path counters, long[] before, String when) throws Exception {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (true) {
            CountersFile.Snapshot snap = CountersFile.read(counters);
            assertEquals(1, value(snap, "p0", "connections"), when + ": p0 reconnected");
            assertEquals(1, value(snap, "p1", "connections"), when + ": p1 reconnected");
            long[] now = {value(snap, "p0", "rx_packets"), value(snap, "p1", "rx_packets")};
            if (now[0] > before[0] && now[1] > before[1]) {
                return now;
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError(when + ": p0/p1 counters stopped growing at " + now[0] + "/" + now[1]);
            }
            Thread.sleep(50);
        }
    }

    private static void awaitAbove(Path counters, String port, String counter, long floor) throws Exception {
        long deadline = System.nanoTime() + WAIT.toNanos();
        long v;
        while ((v = value(CountersFile.read(counters), port, counter)) <= floor) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError(port + " " + counter + " stayed at " + v + " (wanted > " + floor + ")");
            }
            Thread.sleep(50);
        }
    }

    @Test
    @Timeout(600)
    void p0p1KeepForwardingWhileP2P3AreAddedLinkedUsedChangedAndDeleted() throws Exception {
        TestPmd.require();
        String yaml = """
                switch:
                  mode: cross-connect
                  # three forwarding loops (the switch and two testpmds) share two cores: an idle worker backs off
                  notify: monitor
                  runtime-dir: %s
                ports:
                  - name: p0
                    socket: %s
                  - name: p1
                    socket: %s
                links:
                  - [p0, p1]
                """.formatted(rt(), dir.resolve("p0.sock"), dir.resolve("p1.sock"));
        try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "runtime-ports.yaml"));
             ControlServer control = ControlServer.start(rt(), new LiveTopology(sw, Optional.empty()));
             TestPmd first = TestPmd.start("rt-first", dir, eal(dir.resolve("p0.sock"), dir.resolve("p1.sock")), APP)) {
            Path counters = sw.countersPath();
            first.command("set fwd io", Duration.ofSeconds(10));
            first.command("start tx_first", Duration.ofSeconds(30));
            long[] mark = assertP0P1Serving(counters, new long[] {0, 0}, "first traffic");

            assertEquals(0, cli("port", "add", "p2", "--socket", dir.resolve("p2.sock").toString()));
            assertEquals(0, cli("port", "add", "p3", "--socket", dir.resolve("p3.sock").toString()));
            mark = assertP0P1Serving(counters, mark, "after port add");
            assertEquals(0, cli("link", "add", "p2", "p3"));
            mark = assertP0P1Serving(counters, mark, "after link add");

            try (TestPmd second = TestPmd.start("rt-second", dir, eal(dir.resolve("p2.sock"), dir.resolve("p3.sock")), APP)) {
                second.command("set fwd io", Duration.ofSeconds(10));
                second.command("start tx_first", Duration.ofSeconds(30));
                awaitAbove(counters, "p2", "rx_packets", 10_000);
                awaitAbove(counters, "p3", "tx_packets", 10_000);
                mark = assertP0P1Serving(counters, mark, "while the second testpmd forwards on p2/p3");

                // a live change on a port in use: its guest stays connected, its traffic goes on
                assertEquals(0, cli("port", "set", "p2", "mtu=9000", "mac-limit=16"));
                long p2 = value(CountersFile.read(counters), "p2", "rx_packets");
                awaitAbove(counters, "p2", "rx_packets", p2 + 10_000);
                assertEquals(1, value(CountersFile.read(counters), "p2", "connections"), "p2 changed live, not reconnected");
                mark = assertP0P1Serving(counters, mark, "after port set");

                // deleted under load: the second testpmd sees its links go down; sockets are removed
                assertEquals(0, cli("port", "del", "p2"));
                assertEquals(0, cli("port", "del", "p3"));
                assertFalse(Files.exists(dir.resolve("p2.sock")));
                assertFalse(Files.exists(dir.resolve("p3.sock")));
                long deadline = System.nanoTime() + WAIT.toNanos();
                String info;
                while (!(info = second.command("show port info all", Duration.ofSeconds(10))).matches("(?s).*Link status: down.*Link status: down.*")) {
                    assertTrue(System.nanoTime() < deadline, "testpmd never saw the links go down:\n" + info);
                    Thread.sleep(200);
                }
                mark = assertP0P1Serving(counters, mark, "after port del");
                second.command("stop", Duration.ofSeconds(30));
            }
            mark = assertP0P1Serving(counters, mark, "after the second testpmd left");
            assertTrue(CountersFile.read(counters).samples().stream().noneMatch(s -> s.name().startsWith("p2") || s.name().startsWith("p3")),
                    "p2/p3 counters freed");

            // nothing the first testpmd sent is unaccounted for
            first.command("stop", Duration.ofSeconds(30));
            Map<Integer, TestPmd.PortStats> stats = first.portStats();
            long deadline = System.nanoTime() + WAIT.toNanos();
            CountersFile.Snapshot snap;
            while ((snap = CountersFile.read(counters)) != null && value(snap, "p0", "rx_packets") != stats.get(0).txPackets()) {
                assertTrue(System.nanoTime() < deadline, "switch p0 rx " + value(snap, "p0", "rx_packets")
                        + " never reached testpmd's TX " + stats.get(0).txPackets());
                Thread.sleep(50);
            }
            awaitEqual(counters, "p1", stats.get(1).txPackets());
            snap = CountersFile.read(counters);
            System.out.printf("runtime ports: p0 rx %d tx %d, p1 rx %d tx %d; testpmd %s%n", value(snap, "p0", "rx_packets"),
                    value(snap, "p0", "tx_packets"), value(snap, "p1", "rx_packets"), value(snap, "p1", "tx_packets"), stats);
            assertEquals(value(snap, "p0", "rx_packets"), value(snap, "p1", "tx_packets") + drops(snap, "p1"),
                    "p0's frames all reached p1 or were counted as dropped there");
            assertEquals(value(snap, "p1", "rx_packets"), value(snap, "p0", "tx_packets") + drops(snap, "p0"),
                    "p1's frames all reached p0 or were counted as dropped there");
        }
    }

    private static void awaitEqual(Path counters, String port, long expected) throws Exception {
        long deadline = System.nanoTime() + WAIT.toNanos();
        long v;
        while ((v = value(CountersFile.read(counters), port, "rx_packets")) != expected) {
            assertTrue(System.nanoTime() < deadline, port + " rx " + v + " never reached " + expected);
            Thread.sleep(50);
        }
    }
}
