package io.vswitch.engine;

import io.vswitch.testing.Libvirt;
import io.vswitch.cli.Main;
import io.vswitch.config.ConfigLoader;
import io.vswitch.control.ControlServer;
import io.vswitch.testing.QemuGuest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream;

import static io.vswitch.engine.QemuGuestsTest.assertPing;
import static io.vswitch.engine.TestPmdForwardingTest.value;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Real guests on ports added at runtime: a QEMU guest on a port that {@code vswitch port add} created pings a
 * guest of the topology file; and a libvirt domain, defined and started with {@code virsh} from the README's
 * {@code <interface type='vhostuser'>} snippet, pings that guest too.
 */
class RuntimeGuestsTest {
    private static final Duration BOOT = Duration.ofSeconds(180);
    private static final Duration CMD = Duration.ofSeconds(60);

    /**
     * The libvirt domain of the README: TCG, the test guest's kernel and initramfs, guest RAM in shared memory,
     * and one vhost-user interface on a vswitch server port (libvirt's mode='client'). The qemu:override sets
     * vectors=0, which QEMU 7.2 needs under TCG only (see README); the static DAC label runs QEMU as root, so
     * that it can read the test guest's files under /root.
     */
    static String domainXml(String name, Path kernel, Path initrd, String ipCidr, String mac, Path vhostSocket, Path console) {
        return """
                <domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
                  <name>%s</name>
                  <memory unit='MiB'>256</memory>
                  <vcpu>1</vcpu>
                  <memoryBacking>
                    <source type='memfd'/>
                    <access mode='shared'/>
                  </memoryBacking>
                  <os>
                    <type arch='x86_64' machine='pc'>hvm</type>
                    <kernel>%s</kernel>
                    <initrd>%s</initrd>
                    <cmdline>console=ttyS0 quiet panic=-1 vs.ip=%s</cmdline>
                  </os>
                  <seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>
                  <on_reboot>destroy</on_reboot>
                  <devices>
                    <emulator>/usr/bin/qemu-system-x86_64</emulator>
                    <interface type='vhostuser'>
                      <mac address='%s'/>
                      <source type='unix' path='%s' mode='client'>
                        <reconnect enabled='yes' timeout='1'/>
                      </source>
                      <model type='virtio'/>
                      <rom enabled='no'/>
                      <alias name='ua-vsnet0'/>
                    </interface>
                    <serial type='unix'>
                      <source mode='bind' path='%s'/>
                      <target port='0'/>
                    </serial>
                    <memballoon model='none'/>
                  </devices>
                  <qemu:override>
                    <qemu:device alias='ua-vsnet0'>
                      <qemu:frontend>
                        <qemu:property name='vectors' type='unsigned' value='0'/>
                      </qemu:frontend>
                    </qemu:device>
                  </qemu:override>
                </domain>
                """.formatted(name, kernel, initrd, ipCidr, mac, vhostSocket, console);
    }

    private interface Body {
        void run(Switch sw, Path sockets, Path rt, QemuGuest g1, Path work) throws Exception;
    }

    /** A learning switch whose file has one port, g1, with a QEMU guest on it, and a control socket. */
    private static void withSwitchAndG1(String tag, Body body) throws Exception {
        Path work = Path.of("target", "runtime-guests").toAbsolutePath();
        Path sockets = Files.createTempDirectory("vsr");   // short: socket paths must fit in 108 bytes
        Path rt = sockets.resolve("run");
        String yaml = """
                switch:
                  mode: learning
                  notify: hybrid
                  runtime-dir: %s
                ports:
                  - name: g1
                    socket: %s
                """.formatted(rt, sockets.resolve("g1.sock"));
        try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "runtime-guests.yaml"));
             ControlServer control = ControlServer.start(rt, new LiveTopology(sw, Optional.empty()));
             QemuGuest g1 = QemuGuest.start(tag + "-g1", sockets.resolve("g1.sock"), false, "52:54:00:99:20:01",
                     "10.99.20.1/24", work)) {
            body.run(sw, sockets, rt, g1, work);
        } finally {
            try (Stream<Path> files = Files.walk(sockets)) {
                files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    @Test
    @Timeout(900)
    void aQemuGuestOnAPortAddedAtRuntimePingsAGuestOfTheFile() throws Exception {
        QemuGuest.require();
        withSwitchAndG1("rq", (sw, sockets, rt, g1, work) -> {
            assertEquals(0, Main.execute("port", "add", "g2", "--socket", sockets.resolve("g2.sock").toString(),
                    "--runtime-dir", rt.toString()));
            try (QemuGuest g2 = QemuGuest.start("rq-g2", sockets.resolve("g2.sock"), false, "52:54:00:99:20:02",
                    "10.99.20.2/24", work)) {
                g1.awaitReady(BOOT);
                g2.awaitReady(BOOT);
                assertPing(g2, g1);
                assertPing(g1, g2);
                assertTrue(value(CountersFile.read(sw.countersPath()), "g2", "macs_learned") >= 1);
                // deleted: its guest sees the link go down, g1 does not notice
                assertEquals(0, Main.execute("port", "del", "g2", "--runtime-dir", rt.toString()));
                g2.runOk("for i in $(seq 100); do [ $(cat /sys/class/net/eth0/carrier) = 0 ] && break; usleep 100000; done;"
                        + " [ $(cat /sys/class/net/eth0/carrier) = 0 ]", CMD);
                assertEquals(1, value(CountersFile.read(sw.countersPath()), "g1", "connections"));
                assertEquals(1, value(CountersFile.read(sw.countersPath()), "g1", "link_up"));
            }
        });
    }

    @Test
    @Timeout(900)
    void aLibvirtDomainOnAPortAddedAtRuntimePingsAGuestOfTheFile() throws Exception {
        QemuGuest.require();
        Libvirt.require();
        withSwitchAndG1("rl", (sw, sockets, rt, g1, work) -> {
            assertEquals(0, Main.execute("port", "add", "lv", "--socket", sockets.resolve("lv.sock").toString(),
                    "--runtime-dir", rt.toString()));
            try (Libvirt libvirt = Libvirt.start(work.resolve("libvirt"))) {
                String name = libvirt.newDomainName("vswitch-test");
                Path image = QemuGuest.imageDir();
                Path console = sockets.resolve("lv.console");
                libvirt.defineAndStart(name, domainXml(name, image.resolve("vmlinuz"), image.resolve("initramfs.gz"),
                        "10.99.20.3/24", "52:54:00:99:20:03", sockets.resolve("lv.sock"), console));
                try (Libvirt.Console shell = new Libvirt.Console(console, Duration.ofSeconds(30))) {
                    awaitShellWithAddress(shell, "10.99.20.3", name);
                    g1.awaitReady(BOOT);
                    Libvirt.QemuResult ping = shell.run("ping -c 3 -W 5 " + g1.ip(), CMD);
                    assertTrue(ping.status() == 0 && ping.output().contains("3 packets received"),
                            "libvirt domain -> g1: " + ping.output());
                    pingPeer(g1, new Peer("lv", "10.99.20.3"));
                    var snap = CountersFile.read(sw.countersPath());
                    assertEquals(1, value(snap, "lv", "link_up"));
                    assertEquals(1, value(snap, "lv", "connections"));
                    assertTrue(value(snap, "lv", "macs_learned") >= 1);
                } catch (AssertionError e) {
                    throw new AssertionError(e.getMessage() + "\nQEMU log of " + name + ":\n" + Libvirt.qemuLog(name), e);
                }
            }
        });
    }

    /** Types until the guest's shell answers and eth0 has its address (the guest's init sets it before the shell). */
    private static void awaitShellWithAddress(Libvirt.Console shell, String ip, String domain) throws Exception {
        long deadline = System.nanoTime() + BOOT.toNanos();
        List<String> seen = new ArrayList<>();
        while (true) {
            try {
                Libvirt.QemuResult r = shell.run("ip addr show eth0 | grep -c 'inet " + ip + "/'", Duration.ofSeconds(5));
                if (r.status() == 0) {
                    return;
                }
                seen.add(r.output());
            } catch (AssertionError notYet) {
                seen.add("(no answer yet)");
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("domain " + domain + " never came up with " + ip + ": " + seen);
            }
        }
    }

    /** Something to ping from a QemuGuest: just a name and an address. */
    private record Peer(String name, String ip) {
    }

    private static void pingPeer(QemuGuest from, Peer to) {
        String out = from.runOk("ping -c 3 -W 5 " + to.ip(), CMD);
        assertTrue(out.contains("3 packets received"), from.name() + " -> " + to.name() + ": " + out);
    }
}
