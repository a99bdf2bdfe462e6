package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.protocol.Features;
import io.vswitch.testing.Await;
import io.vswitch.testing.QemuGuest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Two Linux guests with a two-pair NIC each ({@code -netdev vhost-user,queues=2}, {@code virtio-net-pci,mq=on},
 * two vCPUs, so the driver turns both pairs on through the control queue QEMU serves) on a learning bridge with
 * two workers: g1's pairs on workers 0 and 1, g2's spread automatically. They ping and transfer intact, and the
 * switch's per-queue counters show both pairs of both ports carrying frames each way.
 */
class MultiQueueQemuTest {
    private static final Duration BOOT = Duration.ofSeconds(180);
    private static final Duration CMD = Duration.ofSeconds(60);

    @Test
    @Timeout(900)
    void twoGuestsWithTwoPairsEach() throws Exception {
        QemuGuest.require();
        Path work = Path.of("target", "qemu-mq").toAbsolutePath();
        Path sockets = Files.createTempDirectory("vsmq");
        String yaml = """
                switch:
                  mode: learning
                  notify: hybrid
                  workers: 2
                  runtime-dir: %s
                ports:
                  - name: g1
                    socket: %s
                    queues: 2
                    workers: [0, 1]
                  - name: g2
                    socket: %s
                    queues: 2
                    workers: auto
                """.formatted(sockets.resolve("run"), sockets.resolve("g1.sock"), sockets.resolve("g2.sock"));
        try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "mq-qemu.yaml"));
             QemuGuest g1 = QemuGuest.start("mq1", sockets.resolve("g1.sock"), false, "52:54:00:98:00:01", "10.98.0.1/24",
                     work, List.of(), 2);
             QemuGuest g2 = QemuGuest.start("mq2", sockets.resolve("g2.sock"), false, "52:54:00:98:00:02", "10.98.0.2/24",
                     work, List.of(), 2)) {
            g1.awaitReady(BOOT);
            g2.awaitReady(BOOT);
            Path counters = sw.countersPath();
            // the guests use both pairs: the kernel's queues, and the switch's view after the control-queue command
            for (QemuGuest g : List.of(g1, g2)) {
                String queues = g.runOk("ls /sys/class/net/eth0/queues", CMD);
                assertTrue(queues.contains("rx-1") && queues.contains("tx-1"), g.name() + " queues: " + queues);
            }
            Await.until(() -> sw.port("g1").device.rxMask() == 3 && sw.port("g1").device.txMask() == 3
                    && sw.port("g2").device.rxMask() == 3 && sw.port("g2").device.txMask() == 3, "both pairs in use");
            assertTrue(Features.has(sw.port("g1").device.features(), Features.VIRTIO_NET_F_MQ), "MQ negotiated");
            String shown = new LiveTopology(sw, Optional.empty()).show();
            System.out.println(shown);
            assertTrue(shown.contains("2 pairs, 2 enabled"), shown);

            QemuGuestsTest.assertPing(g1, g2);
            QemuGuestsTest.assertPing(g2, g1);
            // TCP flows until every pair of both ports carried frames both ways: the guest picks its transmit
            // queue by the sending CPU, the switch the receive queue by the flow's hash (new ports each time)
            int transfers = 0;
            while (!allPairsCarried(counters) && transfers < 12) {
                QemuGuestsTest.transfer(transfers % 2 == 0 ? g1 : g2, transfers % 2 == 0 ? g2 : g1, 2 * 1024);
                transfers++;
            }
            CountersFile.Snapshot snap = CountersFile.read(counters);
            for (String port : List.of("g1", "g2")) {
                long rx = 0;
                long tx = 0;
                for (int pair = 0; pair < 2; pair++) {
                    long qrx = MultiQueueTestPmdTest.queue(snap, port, pair, "rx_packets");
                    long qtx = MultiQueueTestPmdTest.queue(snap, port, pair, "tx_packets");
                    System.out.printf("port %s pair %d: rx %d tx %d%n", port, pair, qrx, qtx);
                    rx += qrx;
                    tx += qtx;
                }
                assertEquals(TestPmdForwardingTest.value(snap, port, "rx_packets"), rx, port + ": rx of the pairs");
            }
            assertTrue(allPairsCarried(counters), transfers + " transfers did not use every pair");
            // a last large transfer, intact
            QemuGuestsTest.transfer(g1, g2, 16 * 1024);
            QemuGuestsTest.assertPing(g2, g1);
            assertEquals(0, TestPmdForwardingTest.value(CountersFile.read(counters), "g1", "queue_faults"));
        } finally {
            try (Stream<Path> files = Files.walk(sockets)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    private static boolean allPairsCarried(Path counters) throws Exception {
        CountersFile.Snapshot snap = CountersFile.read(counters);
        for (String port : List.of("g1", "g2")) {
            for (int pair = 0; pair < 2; pair++) {
                if (MultiQueueTestPmdTest.queue(snap, port, pair, "rx_packets") == 0
                        || MultiQueueTestPmdTest.queue(snap, port, pair, "tx_packets") == 0) {
                    return false;
                }
            }
        }
        return true;
    }
}
