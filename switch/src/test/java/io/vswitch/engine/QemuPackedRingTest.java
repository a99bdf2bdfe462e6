package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.testing.QemuGuest;
import io.vswitch.testing.QemuMonitor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.stream.Stream;

import static io.vswitch.engine.QemuGuestsTest.assertPing;
import static io.vswitch.engine.QemuGuestsTest.transfer;
import static io.vswitch.engine.TestPmdForwardingTest.value;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Linux guests whose virtio-net devices use packed virtqueues ({@code packed=on}) on the switch, next to a
 * guest on split rings: Linux's packed-ring driver (indirect descriptors, EVENT_IDX event suppression, its
 * kicks and interrupts) against ours, both directions, ARP, ping and a TCP transfer compared by md5; then QEMU
 * stops and restarts one guest's rings (monitor stop/cont: GET_VRING_BASE and SET_VRING_BASE with both ring
 * positions) and traffic carries on.
 */
class QemuPackedRingTest {
    private static final Duration BOOT = Duration.ofSeconds(120);

    @Test
    @Timeout(600)
    void packedRingGuestsPingEachOtherAndASplitRingGuest() throws Exception {
        QemuGuest.require();
        Path work = Path.of("target", "qemu-packed").toAbsolutePath();
        Path sockets = Files.createTempDirectory("vsp");
        String yaml = """
                switch:
                  mode: learning
                  notify: hybrid
                  runtime-dir: %s
                ports:
                  - name: p1
                    socket: %s
                  - name: p2
                    socket: %s
                  - name: s3
                    socket: %s
                """.formatted(sockets.resolve("run"), sockets.resolve("p1.sock"), sockets.resolve("p2.sock"),
                sockets.resolve("s3.sock"));
        List<String> packed = List.of("-global", "virtio-net-pci.packed=on");
        List<String> packedWithMonitor = new java.util.ArrayList<>(packed);
        packedWithMonitor.addAll(QemuMonitor.args(sockets.resolve("p1.mon")));
        try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "qemu-packed.yaml"));
             QemuGuest p1 = QemuGuest.start("p1", sockets.resolve("p1.sock"), false, "52:54:00:98:00:01", "10.98.0.1/24", work,
                     packedWithMonitor);
             QemuGuest p2 = QemuGuest.start("p2", sockets.resolve("p2.sock"), false, "52:54:00:98:00:02", "10.98.0.2/24", work, packed);
             QemuGuest s3 = QemuGuest.start("s3", sockets.resolve("s3.sock"), false, "52:54:00:98:00:03", "10.98.0.3/24", work)) {
            p1.awaitReady(BOOT);
            p2.awaitReady(BOOT);
            s3.awaitReady(BOOT);
            assertTrue(sw.port("p1").device.txQueue().isPacked() && sw.port("p1").device.rxQueue().isPacked(), "p1 negotiated packed rings");
            assertTrue(sw.port("p2").device.txQueue().isPacked(), "p2 negotiated packed rings");
            assertFalse(sw.port("s3").device.txQueue().isPacked(), "s3 stayed on split rings");

            assertPing(p1, p2);
            assertPing(p2, p1);
            assertPing(p1, s3);
            assertPing(s3, p2);
            transfer(p1, p2, 4 * 1024);
            transfer(p2, s3, 2 * 1024);
            CountersFile.Snapshot snap = CountersFile.read(sw.countersPath());
            for (String port : new String[] {"p1", "p2", "s3"}) {
                assertEquals(0, value(snap, port, "queue_faults"), port + ": no queue fault");
                assertEquals(1, value(snap, port, "link_up"), port + " is up");
            }
            // hybrid mode: the worker asks for kicks only before it sleeps; with EVENT_IDX (Linux negotiates it) a
            // descriptor event, so a guest kicks at most once per sleep, whatever it sends meanwhile
            System.out.printf("packed rings, hybrid: p1 %d frames sent with %d kicks, p2 %d frames with %d kicks,"
                            + " s3 (split) %d frames with %d kicks%n", value(snap, "p1", "rx_packets"), value(snap, "p1", "kicks"),
                    value(snap, "p2", "rx_packets"), value(snap, "p2", "kicks"), value(snap, "s3", "rx_packets"),
                    value(snap, "s3", "kicks"));
            assertTrue(value(snap, "p1", "kicks") > 0 && value(snap, "p2", "kicks") > 0, "the packed-ring guests kicked");

            // QEMU stops and restarts p1's rings (monitor stop/cont: GET_VRING_BASE for each ring, then
            // SET_VRING_BASE with what we reported, both positions in 32 bits), and the guest carries on
            int generation = sw.port("p1").device.generation();
            try (QemuMonitor monitor = QemuMonitor.connect(sockets.resolve("p1.mon"), Duration.ofSeconds(30))) {
                monitor.command("stop", Duration.ofSeconds(30));
                monitor.command("cont", Duration.ofSeconds(30));
            }
            assertTrue(sw.port("p1").device.generation() > generation, "the rings were stopped and started again");
            assertPing(p1, p2);
            assertPing(s3, p1);
            transfer(p2, p1, 2 * 1024);
            snap = CountersFile.read(sw.countersPath());
            assertEquals(0, value(snap, "p1", "queue_faults"), "p1: no queue fault after stop/cont");
            assertEquals(0, value(snap, "p1", "protocol_errors"), "p1: QEMU's SET_VRING_BASE accepted");
            assertEquals(1, value(snap, "p1", "connections"), "the same connection");
        } finally {
            try (Stream<Path> files = Files.walk(sockets)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }
}
