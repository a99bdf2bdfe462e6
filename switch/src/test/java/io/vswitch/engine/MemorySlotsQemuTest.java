package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.testing.QemuGuest;
import io.vswitch.testing.QemuMonitor;
import io.vswitch.testing.LogCapture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static io.vswitch.engine.QemuGuestsTest.assertPing;
import static io.vswitch.engine.QemuGuestsTest.transfer;
import static io.vswitch.engine.TestPmdForwardingTest.value;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A QEMU guest with 41 memory regions and more (PROTOCOL_F_CONFIGURE_MEM_SLOTS, GET_MAX_MEM_SLOTS = 509): main
 * RAM on a shared memory-backend-file plus 40 cold-plugged pc-dimms, each on its own shared file in /dev/shm,
 * so that QEMU sends one ADD_MEM_REG per DIMM. The guest kernel onlines the DIMMs as ordinary memory
 * ({@code memhp_default_state=online}), so its socket buffers, and therefore the frames the switch copies,
 * live in them. It pings and transfers intact; then, while a TCP transfer and a ping run, a 41st DIMM is
 * hot-added and hot-removed through the QEMU monitor (ADD_MEM_REG, REM_MEM_REG on the running device): the link
 * does not bounce and everything arrives.
 *
 * <p>DIMMs are 128 MiB, the guest's memory block size, the smallest it onlines; 41 of them take
 * {@code maxmem=8G} of guest-physical space (files in /dev/shm are sparse: only what the guest touches is used).
 */
class MemorySlotsQemuTest {
    private static final Duration BOOT = Duration.ofSeconds(180);
    private static final Duration CMD = Duration.ofSeconds(60);
    private static final int DIMMS = 40;
    private static final Pattern LINK_UP_REGIONS = Pattern.compile("port slots1: link up .*, (\\d+) memory region\\(s\\)\\)");
    private static final Pattern PING_SUMMARY = Pattern.compile("(\\d+) packets transmitted, (\\d+) (?:packets )?received");

    @Test
    @Timeout(900)
    void aGuestWithFortyDimmsTransfersIntactAndADimmComesAndGoesUnderTraffic() throws Exception {
        QemuGuest.require();
        Path work = Path.of("target", "qemu-memory-slots").toAbsolutePath();
        Path sockets = Files.createTempDirectory("vss");   // short: socket paths must fit in 108 bytes
        String shmPrefix = "/dev/shm/vswitch-slots-" + ProcessHandle.current().pid() + "-";
        String yaml = """
                switch:
                  mode: learning
                  notify: hybrid
                  runtime-dir: %s
                ports:
                  - name: slots1
                    socket: %s
                  - name: slots2
                    socket: %s
                """.formatted(sockets.resolve("run"), sockets.resolve("s1.sock"), sockets.resolve("s2.sock"));
        List<String> extra = new ArrayList<>(List.of(
                // merged with QemuGuest's "-m 256": the same RAM, plus slots and room for the DIMMs
                "-m", "256M,slots=64,maxmem=8G",
                // QEMU takes the last -append: QemuGuest's line plus how to online hot-plugged memory
                "-append", "console=ttyS0 quiet panic=-1 vs.ip=10.96.0.1/24 memhp_default_state=online"));
        for (int i = 0; i < DIMMS; i++) {
            extra.addAll(List.of("-object", "memory-backend-file,id=dm" + i + ",size=128M,mem-path=" + shmPrefix + i + ",share=on",
                    "-device", "pc-dimm,id=dimm" + i + ",memdev=dm" + i));
        }
        Path monitorSocket = sockets.resolve("g1.mon");
        extra.addAll(QemuMonitor.args(monitorSocket));
        try (LogCapture log = new LogCapture();
             Switch sw = Switch.start(ConfigLoader.parse(yaml, "memory-slots-test.yaml"));
             QemuGuest g1 = QemuGuest.start("slots1", sockets.resolve("s1.sock"), false, "52:54:00:96:00:01", "10.96.0.1/24",
                     work, extra);
             QemuGuest g2 = QemuGuest.start("slots2", sockets.resolve("s2.sock"), false, "52:54:00:96:00:02", "10.96.0.2/24", work)) {
            g1.awaitReady(BOOT);
            g2.awaitReady(BOOT);
            Path counters = sw.countersPath();

            // 1. at least 41 regions: main RAM (QEMU may split it around the PCI hole and ROMs) and the 40 DIMMs
            int regions = linkUpRegions(log);
            System.out.printf("guest with %d DIMMs: %d memory regions on its port%n", DIMMS, regions);
            assertTrue(regions >= DIMMS + 1, "regions: " + regions);
            long memTotalKib = Long.parseLong(g1.runOk("awk '/MemTotal/ {print $2}' /proc/meminfo", CMD).trim());
            assertTrue(memTotalKib > DIMMS * 128L * 1024, "the guest onlined the DIMMs: MemTotal " + memTotalKib + " KiB");

            assertPing(g1, g2);
            assertPing(g2, g1);
            transfer(g1, g2, 8 * 1024);
            transfer(g2, g1, 8 * 1024);

            // 2. hot-add and hot-remove a DIMM while g2 pings g1 and g1 sends to g2
            // a hot-added block goes to ZONE_MOVABLE, so that the guest can empty and release it again
            g1.runOk("echo online_movable > /sys/devices/system/memory/auto_online_blocks", CMD);
            int linkUps = linkUps(log);
            long connections = value(CountersFile.read(counters), "slots1", "connections");
            g2.runOk("rm -f /tmp/rx; nc -l -p 5001 -e sh -c 'cat > /tmp/rx' &", CMD);
            g2.runOk("for i in $(seq 50); do netstat -ltn | grep -q ':5001 ' && break; usleep 100000; done;"
                    + " netstat -ltn | grep -q ':5001 '", CMD);
            String sent = g1.runOk("dd if=/dev/urandom of=/tmp/tx bs=1024 count=24576 2>/dev/null && md5sum /tmp/tx", CMD)
                    .trim().split("\\s+")[0];
            g2.runOk("ping -i 0.2 -c 100 -W 1 10.96.0.1 > /tmp/ping.log 2>&1 &", CMD);
            g1.runOk("nc 10.96.0.2 5001 < /tmp/tx &", CMD);
            try (QemuMonitor monitor = QemuMonitor.connect(monitorSocket, Duration.ofSeconds(30))) {
                String out = monitor.command("object_add memory-backend-file,id=hp0,size=128M,mem-path=" + shmPrefix
                        + "hp0,share=on", CMD);
                assertFalse(out.toLowerCase().contains("error"), out);
                out = monitor.command("device_add pc-dimm,id=hpdimm0,memdev=hp0", CMD);
                assertFalse(out.toLowerCase().contains("error"), out);
                LogCapture.Line added = awaitLine(log, "port slots1: memory region added");
                System.out.println("hot-add: " + added.message());
                // the guest onlined it (as movable memory): its MemTotal grew by the DIMM
                awaitGuest(g1, "[ $(awk '/MemTotal/ {print $2}' /proc/meminfo) -gt " + (memTotalKib + 100 * 1024) + " ]");

                transfer(g2, g1, 4 * 1024);   // and another transfer while the DIMM is in

                out = monitor.command("device_del hpdimm0", CMD);
                assertFalse(out.toLowerCase().contains("error"), out);
                LogCapture.Line removed = awaitLine(log, "port slots1: memory region removed");
                System.out.println("hot-remove: " + removed.message());
                long deadline = System.nanoTime() + CMD.toNanos();
                while (monitor.command("info memory-devices", CMD).contains("hpdimm0")) {
                    assertTrue(System.nanoTime() < deadline, "QEMU still lists hpdimm0");
                    Thread.sleep(200);   // polling QEMU, which finishes the unplug on its own time
                }
                out = monitor.command("object_del hp0", CMD);
                assertFalse(out.toLowerCase().contains("error"), out);
            }
            String received = g2.runOk("wait; md5sum /tmp/rx", Duration.ofSeconds(300)).trim().split("\\s+")[0];
            assertEquals(sent, received, "24 MiB sent across the hot-add and hot-remove arrived intact");
            String summary = g2.runOk("wait; tail -3 /tmp/ping.log", Duration.ofSeconds(120));
            Matcher m = PING_SUMMARY.matcher(summary);
            assertTrue(m.find(), summary);
            System.out.printf("pings across the hotplug: %s sent, %s received%n", m.group(1), m.group(2));
            // the pings share the guests' rings with the 24 MiB transfer, and a TCG guest's RX ring can fill under
            // TCP (counted as drop_rx_ring_full): a lost ping or two is that, not the hotplug (seen once in CI: 99/100)
            CountersFile.Snapshot snap = CountersFile.read(counters);
            assertTrue(Integer.parseInt(m.group(1)) - Integer.parseInt(m.group(2)) <= 2, "at most 2 pings lost: " + summary
                    + "; ring-full drops slots1 " + value(snap, "slots1", "drop_rx_ring_full") + ", slots2 "
                    + value(snap, "slots2", "drop_rx_ring_full"));
            assertEquals(linkUps, linkUps(log), "the link did not bounce");
            assertEquals(connections, value(CountersFile.read(counters), "slots1", "connections"));
            assertEquals(1, value(CountersFile.read(counters), "slots1", "link_up"));
            assertEquals(0, value(CountersFile.read(counters), "slots1", "queue_faults"));
            assertPing(g1, g2);
        } finally {
            try (Stream<Path> files = Files.walk(sockets)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
            for (int i = 0; i < DIMMS; i++) {
                Files.deleteIfExists(Path.of(shmPrefix + i));
            }
            Files.deleteIfExists(Path.of(shmPrefix + "hp0"));
        }
    }

    private static int linkUpRegions(LogCapture log) {
        List<LogCapture.Line> ups = log.matching(l -> LINK_UP_REGIONS.matcher(l.message()).find());
        assertFalse(ups.isEmpty(), "no link-up line for slots1");
        Matcher m = LINK_UP_REGIONS.matcher(ups.getLast().message());
        assertTrue(m.find());
        return Integer.parseInt(m.group(1));
    }

    private static int linkUps(LogCapture log) {
        return log.matching(l -> l.message().startsWith("port slots1: link up")).size();
    }

    private static LogCapture.Line awaitLine(LogCapture log, String text) throws InterruptedException {
        long deadline = System.nanoTime() + CMD.toNanos();
        while (true) {
            List<LogCapture.Line> lines = log.matching(l -> l.message().contains(text));
            if (!lines.isEmpty()) {
                return lines.getFirst();
            }
            assertTrue(System.nanoTime() < deadline, "no log line containing '" + text + "'");
            Thread.sleep(100);   // polling a condition
        }
    }

    private static void awaitGuest(QemuGuest g, String condition) {
        g.runOk("for i in $(seq 150); do " + condition + " && break; usleep 200000; done; " + condition, CMD);
    }
}
