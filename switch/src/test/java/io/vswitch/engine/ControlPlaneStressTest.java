package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.sys.EventFd;
import io.vswitch.sys.Libc;
import io.vswitch.sys.OpenFds;
import io.vswitch.protocol.VhostUserRequest;
import io.vswitch.testing.LogCapture;
import io.vswitch.testing.TestFrontend;
import io.vswitch.testing.TestFrontend.Region;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import static io.vswitch.engine.TestPmdForwardingTest.value;
import static io.vswitch.testing.Await.await;
import static io.vswitch.testing.TestFrontend.GUEST_PHYS_BASE;
import static io.vswitch.testing.TestFrontend.RX;
import static io.vswitch.testing.TestFrontend.TX;
import static io.vswitch.testing.TestFrontend.USER_BASE;
import static io.vswitch.testing.TestFrontend.expectOk;
import static io.vswitch.testing.TestFrontend.u64;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The control plane under fire while the data plane runs flat out (issue 13, item 1). One poll worker serves
 * four cross-connected ports. Ports a and b carry traffic both ways as fast as the Java frontend can drive
 * them, and are never touched by a control message. Ports c and d each have a churning frontend on its own
 * thread that also sends and receives frames, and between bursts sends, at random: SET_MEM_TABLE (same
 * memory, remapped), ADD_MEM_REG + REM_MEM_REG of an extra region, GET_VRING_BASE (a queue stopped and set
 * up again), SET_VRING_CALL, SET_VRING_ERR, SET_VRING_KICK with fresh eventfds, a disconnect followed by a
 * full set-up, and a disconnect in the middle of the handshake. Every one of these makes the control thread
 * wait for the worker that is forwarding a and b (a stop or a grace period).
 *
 * <p>For {@code vswitch.test.stressSeconds} (default 60) it then holds that: a and b's traffic never stalls
 * for 5 s and arrives in order, uncorrupted; no queue fault, protocol error or worker error anywhere (every
 * message sent is valid); every frame taken from a guest was delivered or counted as a drop (the switch's
 * accounting closes exactly); and once the churning frontends are gone the process holds exactly the
 * descriptors and guest-memory mappings it held before they came.
 */
@Timeout(600)
class ControlPlaneStressTest {
    private static final long SECONDS = Long.getLong("vswitch.test.stressSeconds", 60);
    private static final long STALL_NANOS = 5_000_000_000L;
    private static final int FRAME = 64;
    private static final int RX_BUFFER = 2048;
    private static final int BURST = 32;
    private static final long MEMORY = 8L << 20;
    private static final byte[] MAC_A = VlanTest.mac("02:00:00:00:00:0a");
    private static final byte[] MAC_B = VlanTest.mac("02:00:00:00:00:0b");
    private static final String GUEST_MEMFD = "/memfd:vtest-guest-";

    /** What a churning frontend does between two bursts of frames. */
    enum Churn {
        SET_MEM_TABLE, ADD_REM_MEM_REG, GET_VRING_BASE, SET_VRING_CALL, SET_VRING_ERR, SET_VRING_KICK, RECONNECT,
        ABORTED_HANDSHAKE
    }

    @TempDir
    Path dir;

    @Test
    void trafficFlowsWhileOtherFrontendsChurnTheControlPlane() throws Exception {
        String yaml = """
                switch:
                  mode: cross-connect
                  notify: poll
                  runtime-dir: %s
                ports:
                  - {name: a, socket: %s}
                  - {name: b, socket: %s}
                  - {name: c, socket: %s}
                  - {name: d, socket: %s}
                links:
                  - [a, b]
                  - [c, d]
                """.formatted(dir.resolve("run"), sock("a"), sock("b"), sock("c"), sock("d"));
        TestFrontend.Options options = new TestFrontend.Options().memorySize(MEMORY);
        try (LogCapture log = new LogCapture();
             Switch sw = Switch.start(ConfigLoader.parse(yaml, "stress.yaml"));
             TestFrontend a = TestFrontend.connect(sock("a"), options).setUp();
             TestFrontend b = TestFrontend.connect(sock("b"), options).setUp()) {
            awaitLinkUp(sw, "a", "b");

            // one round of every kind before the baseline, so that classes and files the JVM opens lazily are open
            for (String port : List.of("c", "d")) {
                Churner warm = new Churner(sw, port, options, 1, new AtomicBoolean(true));
                for (Churn kind : Churn.values()) {
                    warm.step(kind);
                }
                warm.close();
            }
            awaitReleased(sw, "c", "d");
            int baselineFds = OpenFds.count();
            Map<String, Integer> baselineKinds = fdKinds();
            int baselineGuestMaps = maps(GUEST_MEMFD);
            int baselineMaps = maps("");

            AtomicBoolean stop = new AtomicBoolean();
            ConcurrentLinkedQueue<Throwable> failures = new ConcurrentLinkedQueue<>();
            Traffic traffic = new Traffic(a, b, stop);
            List<Churner> churners = List.of(new Churner(sw, "c", options, 13, stop), new Churner(sw, "d", options, 17, stop));
            List<Thread> threads = new ArrayList<>();
            threads.add(Thread.ofPlatform().name("stress-traffic").start(guard(traffic, failures)));
            for (Churner c : churners) {
                threads.add(Thread.ofPlatform().name("stress-churn-" + c.port).start(guard(c, failures)));
            }

            long end = System.nanoTime() + SECONDS * 1_000_000_000L;
            while (System.nanoTime() < end && failures.isEmpty()) {
                long stalled = System.nanoTime() - traffic.lastProgress.get();
                if (stalled > STALL_NANOS) {
                    failures.add(new AssertionError("a<->b traffic stalled for " + stalled / 1_000_000 + " ms"));
                }
                Thread.sleep(100);   // a watchdog's tick, not synchronisation: the threads run on their own
            }
            stop.set(true);
            for (Thread t : threads) {
                t.join(30_000);
                assertTrue(!t.isAlive(), t.getName() + " did not stop");
            }
            if (!failures.isEmpty()) {
                AssertionError e = new AssertionError("stress failed: " + failures.peek(), failures.peek());
                failures.stream().skip(1).forEach(e::addSuppressed);
                throw e;
            }
            traffic.drain();

            // what the churners did, and what the switch made of it
            Map<Churn, Long> done = new EnumMap<>(Churn.class);
            for (Churner c : churners) {
                c.done.forEach((k, v) -> done.merge(k, v, Long::sum));
            }
            awaitReleased(sw, "c", "d");
            CountersFile.Snapshot snap = awaitAccountingCloses(sw);
            System.out.printf("stress %d s: a->b %d frames, b->a %d frames, churn %s; fds %d -> %d, guest mappings %d -> %d,"
                            + " all mappings %d -> %d%n", SECONDS, traffic.receivedByB, traffic.receivedByA, done,
                    baselineFds, OpenFds.count(), baselineGuestMaps, maps(GUEST_MEMFD), baselineMaps, maps(""));

            for (Churn kind : Churn.values()) {
                assertTrue(done.getOrDefault(kind, 0L) > 0, "the churners did " + kind + " at least once");
            }
            for (String port : List.of("a", "b", "c", "d")) {
                assertEquals(0, value(snap, port, "queue_faults"), port + ": no queue fault");
                assertEquals(0, value(snap, port, "protocol_errors"), port + ": no refused message");
                assertEquals(0, value(snap, port, "drop_invalid"), port + ": no invalid descriptor");
            }
            assertEquals(1, value(snap, "a", "connections"), "a was never disconnected");
            assertEquals(1, value(snap, "b", "connections"), "b was never disconnected");
            // a and b: every frame one sent is the other's, or a drop counted at the destination
            assertEquals(traffic.sentByA, value(snap, "a", "rx_packets"));
            assertEquals(traffic.sentByB, value(snap, "b", "rx_packets"));
            assertEquals(traffic.receivedByB, value(snap, "b", "tx_packets"));
            assertEquals(traffic.receivedByA, value(snap, "a", "tx_packets"));
            assertEquals(traffic.sentByA, traffic.receivedByB + TestPmdForwardingTest.drops(snap, "b"));
            assertEquals(traffic.sentByB, traffic.receivedByA + TestPmdForwardingTest.drops(snap, "a"));
            assertTrue(traffic.receivedByB > 0 && traffic.receivedByA > 0);
            assertEquals(0, a.drainErrors(RX) + a.drainErrors(TX) + b.drainErrors(RX) + b.drainErrors(TX),
                    "a and b's frontends never heard of an error");

            // nothing of the churning frontends is held any more: no kind of descriptor is more numerous than at
            // the baseline (kinds rather than the total: in the full suite, what earlier tests left for the GC
            // may close meanwhile), and guest-memory mappings exactly as before
            await(() -> grown(baselineKinds).isEmpty() && maps(GUEST_MEMFD) == baselineGuestMaps,
                    "descriptors and guest mappings back to the baseline");
            assertEquals(Map.of(), grown(baselineKinds), "descriptors of a kind held beyond the baseline");
            assertEquals(baselineGuestMaps, maps(GUEST_MEMFD), "guest-memory mappings back to the baseline");

            List<LogCapture.Line> bad = log.matching(l -> l.thread().startsWith("vswitch-worker")
                    || l.message().contains("worker error") || l.message().contains("stopped:")
                    || l.message().contains("refused") || l.message().contains("session failed"));
            assertTrue(bad.isEmpty(), "no worker log, error, fault or refusal: " + bad.stream().limit(5).toList());
        }
    }

    // ------------------------------------------------------------------ traffic on a and b

    /** Drives a and b both ways: each bursts frames numbered in sequence; each checks what it receives. */
    private static final class Traffic implements Runnable {
        final TestFrontend a;
        final TestFrontend b;
        final AtomicBoolean stop;
        final AtomicLong lastProgress = new AtomicLong(System.nanoTime());
        long sentByA;
        long sentByB;
        long receivedByA;
        long receivedByB;
        long lastSeqAtA = -1;
        long lastSeqAtB = -1;

        Traffic(TestFrontend a, TestFrontend b, AtomicBoolean stop) {
            this.a = a;
            this.b = b;
            this.stop = stop;
        }

        @Override
        public void run() {
            while (!stop.get()) {
                sentByA += send(a, MAC_B, MAC_A, sentByA);
                sentByB += send(b, MAC_A, MAC_B, sentByB);
                int got = receive(b, MAC_A, true) + receive(a, MAC_B, false);
                if (got > 0) {
                    lastProgress.set(System.nanoTime());
                }
            }
        }

        /** After the churners stopped: everything sent is taken, everything delivered is read. */
        void drain() {
            await(() -> {
                a.txCompleted();
                b.txCompleted();
                receive(b, MAC_A, true);
                receive(a, MAC_B, false);
                return a.outstanding(TX) == 0 && b.outstanding(TX) == 0;
            }, "a and b's frames all taken by the switch");
        }

        private static int send(TestFrontend fe, byte[] dst, byte[] src, long seq) {
            fe.txCompleted();
            int room = Math.min(BURST, fe.queueSize(TX) - fe.outstanding(TX));
            for (int i = 0; i < room; i++) {
                fe.transmit(frame(dst, src, seq + i));
            }
            return room;
        }

        private int receive(TestFrontend fe, byte[] from, boolean isB) {
            int room = fe.queueSize(RX) - fe.outstanding(RX);
            if (room > 0) {
                fe.postRxBuffers(room, RX_BUFFER);
            }
            int n = 0;
            for (TestFrontend.RxFrame f : fe.receive()) {
                ByteBuffer bb = ByteBuffer.wrap(f.data()).order(ByteOrder.LITTLE_ENDIAN);
                if (f.data().length != FRAME || bb.getShort(12) != (short) 0x88b5
                        || !java.util.Arrays.equals(f.data(), 6, 12, from, 0, 6)) {
                    throw new AssertionError("corrupted frame at " + (isB ? "b" : "a") + ": " + java.util.HexFormat.of().formatHex(f.data()));
                }
                long seq = bb.getLong(16);
                long last = isB ? lastSeqAtB : lastSeqAtA;
                if (seq <= last) {
                    throw new AssertionError("frame " + seq + " after " + last + " at " + (isB ? "b" : "a") + ": reordered or duplicated");
                }
                for (int i = 24; i < FRAME; i++) {
                    if (f.data()[i] != (byte) (seq + i)) {
                        throw new AssertionError("frame " + seq + " corrupted at byte " + i);
                    }
                }
                if (isB) {
                    lastSeqAtB = seq;
                    receivedByB++;
                } else {
                    lastSeqAtA = seq;
                    receivedByA++;
                }
                n++;
            }
            return n;
        }
    }

    static byte[] frame(byte[] dst, byte[] src, long seq) {
        ByteBuffer bb = ByteBuffer.allocate(FRAME).order(ByteOrder.LITTLE_ENDIAN);
        bb.put(dst).put(src).putShort(12, (short) 0x88b5).putLong(16, seq);
        byte[] f = bb.array();
        for (int i = 24; i < FRAME; i++) {
            f[i] = (byte) (seq + i);
        }
        return f;
    }

    // ------------------------------------------------------------------ churn on c and d

    /** One churning frontend: frames both ways with its peer, and a random control change between bursts. */
    private final class Churner implements Runnable {
        final Switch sw;
        final String port;
        final TestFrontend.Options options;
        final SplittableRandom random;
        final AtomicBoolean stop;
        final Map<Churn, Long> done = new EnumMap<>(Churn.class);
        TestFrontend fe;
        long seq;

        Churner(Switch sw, String port, TestFrontend.Options options, long seed, AtomicBoolean stop) {
            this.sw = sw;
            this.port = port;
            this.options = options;
            this.random = new SplittableRandom(seed);
            this.stop = stop;
        }

        @Override
        public void run() {
            try {
                while (!stop.get()) {
                    step(Churn.values()[random.nextInt(Churn.values().length)]);
                }
            } finally {
                close();
            }
        }

        void step(Churn kind) {
            try {
                if (fe == null) {
                    fe = TestFrontend.connect(sock(port), options).setUp();
                }
                frames();
                churn(kind);
                done.merge(kind, 1L, Long::sum);
            } catch (IOException e) {
                throw new UncheckedIOException(port + ": " + kind, e);
            }
        }

        private void frames() {
            fe.txCompleted();
            int room = Math.min(8, fe.queueSize(TX) - fe.outstanding(TX));
            for (int i = 0; i < room; i++) {
                fe.transmit(frame(MAC_A, MAC_B, seq++));
            }
            int rxRoom = fe.queueSize(RX) - fe.outstanding(RX);
            if (rxRoom > 0) {
                fe.postRxBuffers(Math.min(rxRoom, 16), RX_BUFFER);
            }
            fe.receive();
        }

        private void churn(Churn kind) throws IOException {
            int q = random.nextInt(2);
            switch (kind) {
                case SET_MEM_TABLE -> expectOk(fe.setMemTable(), "SET_MEM_TABLE");
                case ADD_REM_MEM_REG -> {
                    // the same file once more, at guest and frontend addresses beyond its RAM: rings stay put
                    Region extra = new Region(GUEST_PHYS_BASE + 2 * MEMORY, MEMORY / 2, USER_BASE + 2 * MEMORY, 0);
                    int fd = TestFrontend.dup(fe.memfd());
                    try {
                        expectOk(fe.send(VhostUserRequest.ADD_MEM_REG, memReg(extra), fd), "ADD_MEM_REG");
                    } finally {
                        Libc.close(fd);
                    }
                    frames();
                    expectOk(fe.send(VhostUserRequest.REM_MEM_REG, memReg(extra)), "REM_MEM_REG");
                }
                case GET_VRING_BASE -> fe.resetRing(q);
                case SET_VRING_CALL, SET_VRING_ERR -> {
                    try (EventFd fresh = EventFd.create()) {
                        expectOk(fe.send(kind == Churn.SET_VRING_CALL ? VhostUserRequest.SET_VRING_CALL
                                : VhostUserRequest.SET_VRING_ERR, u64(q), fresh.fd()), kind.name());
                    }
                }
                case SET_VRING_KICK -> expectOk(fe.setVringKick(q), "SET_VRING_KICK");
                case RECONNECT -> {
                    fe.close();
                    fe = null;
                }
                case ABORTED_HANDSHAKE -> {
                    fe.close();
                    fe = null;
                    try (TestFrontend half = TestFrontend.connect(sock(port), options)) {
                        long features = half.getFeatures();
                        expectOk(half.setFeatures(features & half.options().features()), "SET_FEATURES");
                        half.setOwner();
                        half.setMemTable();
                        if (random.nextBoolean()) {
                            half.setVringNum(RX, half.queueSize(RX));
                        }
                    }
                }
            }
        }

        void close() {
            if (fe != null) {
                fe.close();
                fe = null;
            }
        }
    }

    private static byte[] memReg(Region r) {
        ByteBuffer b = ByteBuffer.allocate(8 + 32).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(0).putLong(r.guestPhysAddr()).putLong(r.size()).putLong(r.userAddr()).putLong(r.mmapOffset());
        return b.array();
    }

    // ------------------------------------------------------------------ checks

    private Path sock(String port) {
        return dir.resolve(port + ".sock");
    }

    private static Runnable guard(Runnable body, ConcurrentLinkedQueue<Throwable> failures) {
        return () -> {
            try {
                body.run();
            } catch (Throwable t) {
                failures.add(t);
            }
        };
    }

    private static void awaitLinkUp(Switch sw, String... ports) throws Exception {
        for (String p : ports) {
            QemuGuestsTest.awaitCounter(sw.countersPath(), p, "link_up", 1);
        }
    }

    private static void awaitReleased(Switch sw, String... ports) {
        for (String p : ports) {
            SwitchPort port = sw.port(p);
            await(() -> !port.vhost.isConnected() && port.device.memory().regionCount() == 0 && !port.device.isRunning(),
                    p + " released its frontend");
        }
    }

    /** Waits until the published counters say: every frame taken from a guest was delivered or dropped. */
    private static CountersFile.Snapshot awaitAccountingCloses(Switch sw) throws Exception {
        long deadline = System.nanoTime() + STALL_NANOS;
        while (true) {
            CountersFile.Snapshot snap = CountersFile.read(sw.countersPath());
            long rx = 0;
            long out = 0;
            for (String p : List.of("a", "b", "c", "d")) {
                rx += value(snap, p, "rx_packets");
                out += value(snap, p, "tx_packets") + TestPmdForwardingTest.drops(snap, p) + value(snap, p, "drop_over_mtu")
                        + value(snap, p, "drop_vlan");
            }
            if (rx == out) {
                return snap;
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("accounting does not close: rx " + rx + " != tx + drops " + out);
            }
            Thread.sleep(50);
        }
    }

    /** This process's open descriptors by what they are (socket, eventfd, memfd NAME, file path), counted. */
    static Map<String, Integer> fdKinds() {
        Map<String, Integer> kinds = new java.util.TreeMap<>();
        try (var entries = Files.list(Path.of("/proc/self/fd"))) {
            for (Path fd : entries.toList()) {
                try {
                    String target = Files.readSymbolicLink(fd).toString().replaceAll("\\[\\d+\\]$", "[N]");
                    kinds.merge(target, 1, Integer::sum);
                } catch (IOException gone) {
                    // closed while listing (the directory's own descriptor, among others)
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return kinds;
    }

    /** The kinds of descriptor now more numerous than in {@code baseline}, with the excess. */
    static Map<String, Integer> grown(Map<String, Integer> baseline) {
        Map<String, Integer> out = new java.util.TreeMap<>();
        fdKinds().forEach((kind, n) -> {
            int excess = n - baseline.getOrDefault(kind, 0);
            if (excess > 0) {
                out.put(kind, excess);
            }
        });
        return out;
    }

    /** Lines of /proc/self/maps that contain {@code needle} ("" for all). */
    static int maps(String needle) {
        try {
            return (int) Files.readAllLines(Path.of("/proc/self/maps")).stream().filter(l -> l.contains(needle)).count();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
