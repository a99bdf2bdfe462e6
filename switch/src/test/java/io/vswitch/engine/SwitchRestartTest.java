package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.config.SwitchConfig;
import io.vswitch.testing.QemuGuest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.stream.Stream;

import static io.vswitch.engine.QemuGuestsTest.assertPing;
import static io.vswitch.engine.QemuGuestsTest.awaitCounter;
import static io.vswitch.engine.QemuGuestsTest.transfer;
import static io.vswitch.engine.TestPmdForwardingTest.value;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The switch restarts under running guests: QEMU reconnects to a server-role port (it runs with
 * {@code reconnect=1}), the switch reconnects to a client-role port (QEMU {@code server=on}), both guests'
 * drivers resume their rings where they were, and traffic flows again, in interrupt mode so that guest
 * kicks and calls (Linux negotiates EVENT_IDX) carry every frame.
 */
class SwitchRestartTest {
    private static final Duration BOOT = Duration.ofSeconds(120);

    @Test
    @Timeout(600)
    void guestsSurviveASwitchRestart() throws Exception {
        QemuGuest.require();
        Path work = Path.of("target", "qemu-restart").toAbsolutePath();
        Path sockets = Files.createTempDirectory("vsr");
        SwitchConfig config = ConfigLoader.parse("""
                switch:
                  mode: cross-connect
                  notify: interrupt
                  runtime-dir: %s
                ports:
                  - name: r1
                    socket: %s
                  - name: r2
                    socket: %s
                    mode: client
                links:
                  - [r1, r2]
                """.formatted(sockets.resolve("run"), sockets.resolve("r1.sock"), sockets.resolve("r2.sock")), "restart.yaml");
        try (QemuGuest g1 = QemuGuest.start("r1", sockets.resolve("r1.sock"), false, "52:54:00:98:00:01", "10.98.0.1/24", work);
             QemuGuest g2 = QemuGuest.start("r2", sockets.resolve("r2.sock"), true, "52:54:00:98:00:02", "10.98.0.2/24", work)) {
            try (Switch first = Switch.start(config)) {
                g1.awaitReady(BOOT);
                g2.awaitReady(BOOT);
                assertPing(g1, g2);
                transfer(g1, g2, 4096);
                CountersFile.Snapshot snap = CountersFile.read(first.countersPath());
                assertTrue(value(snap, "r2", "notifications") > 0, "guests were notified through their call eventfds");
                assertTrue(value(snap, "r1", "kicks") > 0, "and woke the sleeping worker with kicks");
            }
            // the switch is gone: sockets removed, guests see their backend disappear, as link down
            // (VIRTIO_NET_F_STATUS: QEMU clears LINK_UP in the config space when the vhost-user connection closes)
            awaitCarrier(g1, 0);
            awaitCarrier(g2, 0);
            try (Switch second = Switch.start(config)) {
                awaitCounter(second.countersPath(), "r1", "link_up", 1);
                awaitCounter(second.countersPath(), "r2", "link_up", 1);
                awaitCarrier(g1, 1);
                awaitCarrier(g2, 1);
                assertPing(g2, g1);
                transfer(g2, g1, 4096);

                // the guest driver resets the device (QEMU: GET_VRING_BASE, then the rings are set up again)
                long connections = value(CountersFile.read(second.countersPath()), "r1", "connections");
                g1.runOk("rmmod virtio_net && insmod /lib/modules/virtio_net.ko"
                        + " && for i in $(seq 50); do [ -e /sys/class/net/eth0 ] && break; usleep 100000; done"
                        + " && ip addr add " + g1.ipCidr() + " dev eth0 && ip link set eth0 up", Duration.ofSeconds(60));
                assertPing(g1, g2);
                assertTrue(value(CountersFile.read(second.countersPath()), "r1", "connections") == connections,
                        "same connection: the device was reset, not reconnected");
            }
        } finally {
            try (Stream<Path> files = Files.walk(sockets)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    /** Waits until the guest's driver reports carrier {@code carrier} (1 up, 0 down) on eth0, and operstate with it. */
    static void awaitCarrier(QemuGuest g, int carrier) {
        String operstate = carrier == 1 ? "up" : "down";
        String check = "[ $(cat /sys/class/net/eth0/carrier) = " + carrier + " ] && [ $(cat /sys/class/net/eth0/operstate) = "
                + operstate + " ]";
        g.runOk("for i in $(seq 150); do " + check + " && break; usleep 200000; done; " + check, Duration.ofSeconds(60));
    }
}
