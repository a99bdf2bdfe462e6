package io.vswitch.engine;

import io.vswitch.cli.Main;
import io.vswitch.config.ConfigLoader;
import io.vswitch.config.SwitchConfig;
import io.vswitch.control.ControlClient;
import io.vswitch.control.ControlServer;
import io.vswitch.testing.TestFrontend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.yaml.snakeyaml.Yaml;

import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.BooleanSupplier;

import static io.vswitch.engine.QemuGuestsTest.awaitCounter;
import static io.vswitch.engine.TestPmdForwardingTest.value;
import static io.vswitch.engine.VlanTest.frame;
import static io.vswitch.engine.VlanTest.mac;
import static io.vswitch.engine.VlanTest.receiveOne;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Topology changes on a running switch through its control socket, with the test frontend as guests: ports
 * added, deleted (link down, fds and mappings released, socket removed, other ports untouched), changed live,
 * links, the MAC table, show, save, and reload (only the difference applied; an invalid file changes nothing).
 */
class LiveTopologyTest {
    private static final byte[] BROADCAST = mac("ff:ff:ff:ff:ff:ff");
    private static final byte[] MAC_A = mac("02:00:00:00:00:0a");
    private static final byte[] MAC_B = mac("02:00:00:00:00:0b");
    private static final byte[] MAC_C = mac("02:00:00:00:00:0c");

    @TempDir
    Path dir;

    private Path rt() {
        return dir.resolve("rt");
    }

    private String yaml(String mode, String ports, String links) {
        return """
                switch:
                  mode: %s
                  runtime-dir: %s
                ports:
                %s
                %s
                """.formatted(mode, rt(), ports, links);
    }

    private String port(String name, String extra) {
        return "  - name: " + name + "\n    socket: " + dir.resolve(name + ".sock") + "\n" + extra;
    }

    private record Running(Switch sw, LiveTopology live, ControlServer control) implements AutoCloseable {
        @Override
        public void close() {
            control.close();
            sw.close();
        }
    }

    private Running start(String yaml, Optional<Path> file) throws Exception {
        Switch sw = Switch.start(ConfigLoader.parse(yaml, "live.yaml"));
        LiveTopology live = new LiveTopology(sw, file);
        return new Running(sw, live, ControlServer.start(rt(), live));
    }

    private ControlClient.Answer ctl(String... args) throws Exception {
        return ControlClient.call(rt().resolve(ControlServer.FILE_NAME), List.of(args));
    }

    private int cli(String... args) {
        String[] all = new String[args.length + 2];
        System.arraycopy(args, 0, all, 0, args.length);
        all[args.length] = "--runtime-dir";
        all[args.length + 1] = rt().toString();
        return Main.execute(all);
    }

    private static Map<String, Object> port(Map<String, Object> show, String name) {
        for (Object p : (List<?>) show.get("ports")) {
            @SuppressWarnings("unchecked") Map<String, Object> m = (Map<String, Object>) p;
            if (m.get("name").equals(name)) {
                return m;
            }
        }
        throw new AssertionError("no port " + name + " in show: " + show);
    }

    @SuppressWarnings("unchecked")
    private Map<String, Object> showJson() throws Exception {
        ControlClient.Answer a = ctl("show", "--json");
        assertEquals(0, a.code(), a.text());
        return (Map<String, Object>) new Yaml().load(a.text());   // JSON is YAML
    }

    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out waiting for " + what);
            }
            Thread.sleep(20);
        }
    }

    private static long mappingsOf(String memfdName) throws Exception {
        return Files.readAllLines(Path.of("/proc/self/maps")).stream().filter(l -> l.contains(memfdName)).count();
    }

    @Test
    void aPortAddedAtRuntimeForwardsAndItsDeletionReleasesEverythingAndTouchesNoOtherPort() throws Exception {
        try (Running r = start(yaml("learning", port("a", "") + port("b", ""), ""), Optional.empty());
             TestFrontend a = TestFrontend.connect(dir.resolve("a.sock")).setUp();
             TestFrontend b = TestFrontend.connect(dir.resolve("b.sock")).setUp()) {
            Path counters = r.sw().countersPath();
            a.postRxBuffers(32, 2048);
            b.postRxBuffers(32, 2048);
            awaitCounter(counters, "a", "link_up", 1);
            awaitCounter(counters, "b", "link_up", 1);
            assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(rt().resolve("control.sock"))),
                    "the control socket is its owner's only");
            // by kind, not in total: descriptors left by earlier tests in this JVM may close meanwhile
            Map<String, Integer> fdsBefore = ControlPlaneStressTest.fdKinds();

            assertEquals(0, cli("port", "add", "c", "--socket", dir.resolve("c.sock").toString(), "--mac-limit", "8"));
            assertEquals(2, cli("port", "add", "c", "--socket", dir.resolve("c2.sock").toString()), "a second c is refused");
            assertEquals(2, cli("port", "add", "d", "--socket", dir.resolve("a.sock").toString()), "a's socket is taken");
            assertEquals(2, cli("port", "add", "d", "--socket", dir.resolve("d.sock").toString(), "--mtu", "20"), "bad mtu");
            assertFalse(Files.exists(dir.resolve("d.sock")), "a refused port binds nothing");
            String memfd;
            try (TestFrontend c = TestFrontend.connect(dir.resolve("c.sock")).setUp()) {
                memfd = c.memoryName();
                c.postRxBuffers(32, 2048);
                awaitCounter(counters, "c", "link_up", 1);

                // a broadcast from a reaches b and the new port; b answers c by unicast once learned
                byte[] hello = frame(BROADCAST, MAC_A, -1, "hello");
                a.transmit(hello);
                assertArrayEquals(hello, receiveOne(b));
                assertArrayEquals(hello, receiveOne(c));
                c.transmit(frame(BROADCAST, MAC_C, -1, "c here"));
                receiveOne(a);
                receiveOne(b);
                byte[] toC = frame(MAC_C, MAC_B, -1, "to c");
                b.transmit(toC);
                assertArrayEquals(toC, receiveOne(c));

                Map<String, Object> show = showJson();
                Map<String, Object> pc = port(show, "c");
                assertEquals(true, pc.get("connected"));
                assertEquals("up", pc.get("link"));
                assertEquals(8, pc.get("mac_limit"));
                assertTrue(((List<?>) pc.get("features")).contains("VIRTIO_F_VERSION_1"), pc.toString());
                assertEquals(256, ((Map<?, ?>) ((Map<?, ?>) pc.get("queues")).get("rx")).get("size"));
                assertEquals(1, ((List<?>) pc.get("memory_regions")).size());
                assertEquals(List.of("a", "b", "c"), ((Map<?, ?>) ((List<?>) show.get("workers")).getFirst()).get("ports"));
                // stats --json: the counters file as JSON
                java.io.ByteArrayOutputStream captured = new java.io.ByteArrayOutputStream();
                java.io.PrintStream stdout = System.out;
                int statsExit;
                System.setOut(new java.io.PrintStream(captured, true, java.nio.charset.StandardCharsets.UTF_8));
                try {
                    statsExit = Main.execute("stats", "--json", "--counters", counters.toString());
                } finally {
                    System.setOut(stdout);
                }
                assertEquals(0, statsExit);
                Map<?, ?> stats = new Yaml().load(captured.toString(java.nio.charset.StandardCharsets.UTF_8));
                Map<?, ?> statsC = (Map<?, ?>) ((Map<?, ?>) stats.get("ports")).get("c");
                assertEquals(value(CountersFile.read(counters), "c", "rx_packets"), ((Number) statsC.get("rx_packets")).longValue());
                assertTrue(((Map<?, ?>) stats.get("workers")).containsKey("0"), stats.toString());

                ControlClient.Answer macs = ctl("mac", "list", "c");
                assertTrue(macs.text().contains("02:00:00:00:00:0c") && macs.text().contains("1 entry"), macs.text());

                // deleted while its guest is attached: the guest sees the connection close (link down)
                long aRx = value(CountersFile.read(counters), "a", "rx_packets");
                assertEquals(0, cli("port", "del", "c"));
                assertTrue(c.closedByPeer(5000), "the frontend saw its connection close");
                assertFalse(Files.exists(dir.resolve("c.sock"), LinkOption.NOFOLLOW_LINKS), "socket file removed");
                assertTrue(CountersFile.read(counters).samples().stream().noneMatch(s -> s.name().equals("c")),
                        "c's counters are gone from the counters file");
                assertEquals(2, cli("port", "del", "c"), "deleting it again is refused");

                // a and b did not notice: still one connection each, still forwarding
                byte[] again = frame(MAC_B, MAC_A, -1, "still here");
                a.transmit(again);
                assertArrayEquals(again, receiveOne(b));
                // connection counts are mirrored into the file every 250 ms: wait for the first mirror
                AwaitCounter.atLeast(counters, "a", "connections", 1);
                AwaitCounter.atLeast(counters, "b", "connections", 1);
                CountersFile.Snapshot snap = CountersFile.read(counters);
                assertEquals(1, value(snap, "a", "connections"));
                assertEquals(1, value(snap, "b", "connections"));
                assertEquals(1, value(snap, "a", "link_up"));
                assertEquals(aRx + 1, value(snap, "a", "rx_packets"));
            }
            // the switch's mappings of c's memory and every descriptor it took are released
            await(() -> {
                try {
                    return mappingsOf(memfd) == 0;
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            }, "c's guest memory unmapped");
            await(() -> ControlPlaneStressTest.grown(fdsBefore).isEmpty(),
                    "descriptors back to the baseline (more now: " + ControlPlaneStressTest.grown(fdsBefore) + ")");

            // the name and the socket can be used again
            assertEquals(0, cli("port", "add", "c", "--socket", dir.resolve("c.sock").toString()));
            assertTrue(Files.exists(dir.resolve("c.sock")));
        }
    }

    @Test
    void liveSettingsChangeWithoutTheGuestNoticing() throws Exception {
        try (Running r = start(yaml("learning", port("a", "") + port("b", ""), ""), Optional.empty());
             TestFrontend a = TestFrontend.connect(dir.resolve("a.sock")).setUp();
             TestFrontend b = TestFrontend.connect(dir.resolve("b.sock")).setUp()) {
            Path counters = r.sw().countersPath();
            a.postRxBuffers(32, 2048);
            b.postRxBuffers(32, 2048);
            awaitCounter(counters, "b", "link_up", 1);

            assertEquals(0, ctl("port", "set", "b", "vlan=10").code());
            a.transmit(frame(BROADCAST, MAC_A, -1, "untagged domain"));
            awaitCounter(counters, "a", "rx_packets", 1);
            assertEquals(0, ctl("port", "set", "a", "vlan=10").code());
            byte[] v10 = frame(BROADCAST, MAC_A, -1, "vlan 10");
            a.transmit(v10);
            assertArrayEquals(v10, receiveOne(b), "b got only the frame sent once both were in VLAN 10");

            assertEquals(0, ctl("port", "set", "a", "mtu=100").code());
            a.transmit(frame(BROADCAST, MAC_A, -1, "x".repeat(200)));
            awaitCounter(counters, "a", "drop_over_mtu", 1);
            ControlClient.Answer refused = ctl("port", "set", "a", "worker=0");
            assertEquals(2, refused.code());
            assertTrue(refused.text().contains("'worker' cannot change live"), refused.text());
            assertEquals(2, ctl("port", "set", "a", "vlan=5000").code());
            assertEquals(2, ctl("port", "set", "nope", "mtu=1500").code());

            assertEquals(0, ctl("port", "set", "a", "vlan=none", "mtu=1500").code());
            assertEquals(0, ctl("port", "set", "b", "trunk=10,20").code());
            byte[] tagged = frame(BROADCAST, MAC_A, 10, "x");
            a.transmit(frame(BROADCAST, MAC_A, -1, "x"));   // the untagged domain does not reach a trunk...
            assertEquals(0, ctl("port", "set", "a", "vlan=10").code());
            a.transmit(frame(BROADCAST, MAC_A, -1, "x"));
            // ...so b gets exactly one frame, the second, tagged (receiveOne fails on two)
            assertArrayEquals(tagged, receiveOne(b), "tagged toward the trunk");
            // connection counts are mirrored into the file every 250 ms: wait for the first mirror
            AwaitCounter.atLeast(counters, "a", "connections", 1);
            AwaitCounter.atLeast(counters, "b", "connections", 1);
            CountersFile.Snapshot snap = CountersFile.read(counters);
            assertEquals(1, value(snap, "a", "connections"));
            assertEquals(1, value(snap, "b", "connections"));
            assertEquals(List.of(10, 20), port(showJson(), "b").get("trunk"));
        }
    }

    @Test
    void reloadAppliesOnlyTheDifferenceAndAnInvalidFileChangesNothing() throws Exception {
        Path file = dir.resolve("topology.yaml");
        String first = yaml("learning", port("a", "") + port("b", "") + port("c", ""), "");
        Files.writeString(file, first);
        try (Running r = start(first, Optional.of(file));
             TestFrontend a = TestFrontend.connect(dir.resolve("a.sock")).setUp();
             TestFrontend b = TestFrontend.connect(dir.resolve("b.sock")).setUp()) {
            Path counters = r.sw().countersPath();
            a.postRxBuffers(32, 2048);
            b.postRxBuffers(32, 2048);
            awaitCounter(counters, "b", "link_up", 1);
            SwitchConfig before = r.live().running();

            // invalid: a bad value, a switch setting that needs a restart, a YAML error: nothing changes
            for (String bad : List.of(
                    yaml("learning", port("a", "") + port("b", "    mtu: 5\n") + port("d", ""), ""),
                    yaml("learning", port("a", "") + port("b", ""), "").replace("mode: learning", "mode: learning\n  workers: 2"),
                    "ports: [")) {
                Files.writeString(file, bad);
                ControlClient.Answer answer = ctl("reload");
                assertEquals(2, answer.code(), answer.text());
                assertTrue(answer.text().contains("nothing changed"), answer.text());
                assertEquals(before, r.live().running());
                assertFalse(Files.exists(dir.resolve("d.sock")));
                assertTrue(Files.exists(dir.resolve("c.sock")));
            }

            // valid: a unchanged, b changed live, c removed, d added
            Files.writeString(file, yaml("learning", port("a", "") + port("b", "    vlan: 20\n") + port("d", ""), ""));
            ControlClient.Answer answer = ctl("reload");
            assertEquals(0, answer.code(), answer.text());
            assertTrue(answer.text().contains("deleted c") && answer.text().contains("added d")
                    && answer.text().contains("changed b (vlan none -> 20)") && answer.text().contains("unchanged: a"),
                    answer.text());
            assertFalse(Files.exists(dir.resolve("c.sock")));
            assertTrue(Files.exists(dir.resolve("d.sock")));
            // connection counts are mirrored into the file every 250 ms: wait for the first mirror
            AwaitCounter.atLeast(counters, "a", "connections", 1);
            AwaitCounter.atLeast(counters, "b", "connections", 1);
            CountersFile.Snapshot snap = CountersFile.read(counters);
            assertEquals(1, value(snap, "a", "connections"), "a untouched");
            assertEquals(1, value(snap, "b", "connections"), "b changed live, never reconnected");
            assertEquals(1, value(snap, "b", "link_up"));
            assertEquals(List.of("a", "b", "d"), r.live().running().ports().stream().map(p -> p.name()).toList());

            // save reproduces the running topology, and validate accepts it
            Path saved = dir.resolve("saved.yaml");
            assertEquals(0, cli("save", saved.toString()));
            assertEquals(r.live().running(), ConfigLoader.load(saved));
            assertEquals(0, Main.execute("validate", saved.toString()));
            // reloading the saved file changes nothing
            ControlClient.Answer same = ctl("reload");
            assertEquals(0, same.code());
            answer = ctl("reload", saved.toString());
            assertEquals(0, answer.code(), answer.text());
            assertTrue(answer.text().contains("no change"), answer.text());
        }
    }

    @Test
    void aControlGroupOpensTheSocketToItsMembers() throws Exception {
        Switch sw = Switch.start(ConfigLoader.parse(yaml("learning", port("a", ""), ""), "live.yaml"));
        try (sw; ControlServer control = ControlServer.start(rt(), new LiveTopology(sw, Optional.empty()), Optional.of("root"))) {
            Path socket = rt().resolve(ControlServer.FILE_NAME);
            assertEquals("rw-rw----", PosixFilePermissions.toString(Files.getPosixFilePermissions(socket)));
            assertEquals("root", Files.readAttributes(socket, java.nio.file.attribute.PosixFileAttributes.class).group().getName());
            assertEquals(0, ctl("show").code());
        }
        assertFalse(Files.exists(rt().resolve(ControlServer.FILE_NAME)), "closing removes the socket");
    }

    @Test
    void crossConnectLinksChangeAtRuntime() throws Exception {
        try (Running r = start(yaml("cross-connect", port("a", "") + port("b", ""), "links:\n  - [a, b]"), Optional.empty());
             TestFrontend a = TestFrontend.connect(dir.resolve("a.sock")).setUp()) {
            Path counters = r.sw().countersPath();
            a.postRxBuffers(32, 2048);
            assertEquals(0, ctl("port", "add", "c", "socket=" + dir.resolve("c.sock")).code());
            assertEquals(2, ctl("link", "add", "a", "c").code(), "a is linked to b already");
            assertEquals(1, ctl("save").code(), "c has no link: no valid file can say that");
            try (TestFrontend c = TestFrontend.connect(dir.resolve("c.sock")).setUp()) {
                c.postRxBuffers(32, 2048);
                awaitCounter(counters, "c", "link_up", 1);
                c.transmit(frame(MAC_A, MAC_C, -1, "nowhere"));
                awaitCounter(counters, "c", "drop_port_down", 1);   // unlinked: counted, not lost

                assertEquals(0, ctl("link", "del", "a", "b").code());
                assertEquals(0, ctl("link", "add", "c", "a").code());
                byte[] toA = frame(MAC_A, MAC_C, -1, "to a");
                c.transmit(toA);
                assertArrayEquals(toA, receiveOne(a));
                byte[] toC = frame(MAC_C, MAC_A, -1, "to c");
                a.transmit(toC);
                assertArrayEquals(toC, receiveOne(c));
                assertEquals(2, ctl("mac", "list").code(), "no MAC table in cross-connect mode");
                assertEquals(0, ctl("port", "del", "c").code());
                assertTrue(r.live().running().links().isEmpty(), "the link went with the port");
            }
        }
    }
}
