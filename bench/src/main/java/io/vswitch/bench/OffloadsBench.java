package io.vswitch.bench;

import io.vswitch.config.ConfigLoader;
import io.vswitch.engine.CountersFile;
import io.vswitch.engine.Switch;
import io.vswitch.testing.QemuGuest;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * TCP between two QEMU guests through the switch, checksum/TSO offloads on versus off (bench/offloads.sh).
 * One switch, four guests: {@code on1 -> on2} on two ports with {@code offloads: true}, {@code off1 -> off2} on
 * two ports with {@code offloads: false} (the guests then negotiate no CSUM/TSO and send MSS-sized frames with
 * full checksums). Rounds alternate A/B (on, off, then off, on, ...) so that both see the same machine noise.
 * Each sample: {@code --mib} MiB (a file of zeros in the sender's RAM) through busybox nc or httpd/wget, timed on the host around the sender's
 * command; mean frame = rx_bytes / rx_packets on the sending port.
 */
public final class OffloadsBench {
    private static final Duration BOOT = Duration.ofSeconds(180);
    private static final Duration CMD = Duration.ofSeconds(60);

    public static void main(String[] args) throws Exception {
        int rounds = 5;
        int mib = 64;
        String notify = "interrupt";
        String tool = "nc";
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--rounds" -> rounds = Integer.parseInt(args[++i]);
                case "--mib" -> mib = Integer.parseInt(args[++i]);
                case "--notify" -> notify = args[++i];
                case "--tool" -> tool = args[++i];
                default -> {
                    System.err.println("usage: OffloadsBench [--rounds N] [--mib MIB] [--notify poll|interrupt|hybrid|monitor] [--tool nc|httpd]");
                    System.exit(2);
                }
            }
        }
        Path sockets = Files.createTempDirectory("vsob");
        Path work = Path.of("bench", "target", "offloads").toAbsolutePath();
        String yaml = """
                switch:
                  mode: learning
                  notify: %2$s
                  runtime-dir: %1$s/run
                ports:
                  - name: on1
                    socket: %1$s/on1.sock
                  - name: on2
                    socket: %1$s/on2.sock
                  - name: off1
                    socket: %1$s/off1.sock
                    offloads: false
                  - name: off2
                    socket: %1$s/off2.sock
                    offloads: false
                """.formatted(sockets, notify);
        try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "offloads-bench.yaml"));
             QemuGuest on1 = QemuGuest.start("on1", sockets.resolve("on1.sock"), false, "52:54:00:97:00:01", "10.97.0.1/24", work);
             QemuGuest on2 = QemuGuest.start("on2", sockets.resolve("on2.sock"), false, "52:54:00:97:00:02", "10.97.0.2/24", work);
             QemuGuest off1 = QemuGuest.start("off1", sockets.resolve("off1.sock"), false, "52:54:00:97:00:03", "10.97.0.3/24", work);
             QemuGuest off2 = QemuGuest.start("off2", sockets.resolve("off2.sock"), false, "52:54:00:97:00:04", "10.97.0.4/24", work)) {
            for (QemuGuest g : List.of(on1, on2, off1, off2)) {
                g.awaitReady(BOOT);
            }
            on1.runOk("ping -c 1 -W 5 " + on2.ip(), CMD);
            off1.runOk("ping -c 1 -W 5 " + off2.ip(), CMD);
            // one warm-up transfer each, not counted
            transfer(sw, on1, on2, "on1", Math.max(1, mib / 4), tool);
            transfer(sw, off1, off2, "off1", Math.max(1, mib / 4), tool);
            List<double[]> on = new ArrayList<>();
            List<double[]> off = new ArrayList<>();
            System.out.printf("%-6s %-4s %10s %12s %12s %14s%n", "round", "mode", "MiB/s", "mean frame", "frames", "rx ring full");
            for (int r = 0; r < rounds; r++) {
                boolean onFirst = r % 2 == 0;
                for (int k = 0; k < 2; k++) {
                    boolean offloads = onFirst == (k == 0);
                    double[] s = offloads ? transfer(sw, on1, on2, "on1", mib, tool) : transfer(sw, off1, off2, "off1", mib, tool);
                    (offloads ? on : off).add(s);
                    System.out.printf("%-6d %-4s %10.1f %12.0f %12.0f %14.0f%n", r + 1, offloads ? "on" : "off", s[0], s[1], s[2], s[3]);
                }
            }
            double onMedian = median(on, 0);
            double offMedian = median(off, 0);
            System.out.printf("offloads on:  %.1f MiB/s median (min %.1f, max %.1f), mean frame %.0f B (median)%n",
                    onMedian, min(on, 0), max(on, 0), median(on, 1));
            System.out.printf("offloads off: %.1f MiB/s median (min %.1f, max %.1f), mean frame %.0f B (median)%n",
                    offMedian, min(off, 0), max(off, 0), median(off, 1));
            System.out.printf("ratio of medians: %.2fx (%d rounds of %d MiB, notify %s, %s)%n", onMedian / offMedian, rounds, mib, notify, tool);
        } finally {
            try (var files = Files.walk(sockets)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    /**
     * {MiB/s, mean frame bytes on the sending port, frames} for one transfer of {@code mib} MiB from {@code from}
     * to {@code to}: {@code nc} (busybox nc reads a file of zeros in the sender's RAM and writes it to the
     * socket; the receiver's nc hands the socket to cat > /dev/null) or {@code httpd} (busybox httpd sends the
     * file, with sendfile, and the receiver's wget writes it to /dev/null).
     */
    private static double[] transfer(Switch sw, QemuGuest from, QemuGuest to, String port, int mib, String tool) throws Exception {
        from.runOk("mkdir -p /tmp/www; [ \"$(stat -c %s /tmp/www/tx 2>/dev/null)\" = " + (mib << 20) + " ] || dd if=/dev/zero"
                + " of=/tmp/www/tx bs=65536 count=" + (mib * 16) + " 2>/dev/null", CMD);
        String command;
        QemuGuest runner;
        if (tool.equals("httpd")) {
            from.runOk("netstat -ltn | grep -q ':8080 ' || httpd -p 8080 -h /tmp/www", CMD);
            command = "wget -q -O /dev/null http://" + from.ip() + ":8080/tx";
            runner = to;
        } else {
            to.runOk("nc -l -p 5001 -e sh -c 'cat > /dev/null' &", CMD);
            to.runOk("for i in $(seq 50); do netstat -ltn | grep -q ':5001 ' && break; usleep 100000; done;"
                    + " netstat -ltn | grep -q ':5001 '", CMD);
            command = "nc " + to.ip() + " 5001 < /tmp/www/tx";
            runner = from;
        }
        CountersFile.Snapshot before = CountersFile.read(sw.countersPath());
        long t0 = System.nanoTime();
        runner.runOk(command, Duration.ofSeconds(600));
        long nanos = System.nanoTime() - t0;
        if (!tool.equals("httpd")) {
            to.runOk("wait", CMD);
        }
        CountersFile.Snapshot after = CountersFile.read(sw.countersPath());
        double frames = value(after, port, "rx_packets") - value(before, port, "rx_packets");
        double bytes = value(after, port, "rx_bytes") - value(before, port, "rx_bytes");
        String receiver = port.replace('1', '2');
        double drops = value(after, receiver, "drop_rx_ring_full") - value(before, receiver, "drop_rx_ring_full");
        return new double[] {mib / (nanos / 1e9), bytes / Math.max(1, frames), frames, drops};
    }

    private static long value(CountersFile.Snapshot s, String port, String counter) {
        return s.samples().stream().filter(x -> x.scope().equals("port") && x.name().equals(port) && x.counter().equals(counter))
                .mapToLong(CountersFile.Sample::value).findFirst().orElseThrow();
    }

    private static double median(List<double[]> xs, int i) {
        double[] v = xs.stream().mapToDouble(x -> x[i]).sorted().toArray();
        return v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
    }

    private static double min(List<double[]> xs, int i) {
        return xs.stream().mapToDouble(x -> x[i]).min().orElse(0);
    }

    private static double max(List<double[]> xs, int i) {
        return xs.stream().mapToDouble(x -> x[i]).max().orElse(0);
    }

    private OffloadsBench() {
        Arrays.asList();
    }
}
