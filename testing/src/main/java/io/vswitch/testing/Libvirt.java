package io.vswitch.testing;


import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * libvirt for tests: starts virtlogd and libvirtd (Debian's packages libvirt-daemon-system, libvirt-clients)
 * unless a libvirtd already answers on qemu:///system, defines and starts domains with {@code virsh}, and talks
 * to a domain's serial console over the Unix socket the domain binds. {@link #close} destroys and undefines
 * every domain it made and stops the daemons it started.
 */
public final class Libvirt implements AutoCloseable {
    public static final String URI = "qemu:///system";
    private static final AtomicInteger DOMAINS = new AtomicInteger();

    private final List<Process> daemons = new ArrayList<>();
    private final List<String> domains = new ArrayList<>();
    private final Path logDir;

    private Libvirt(Path logDir) {
        this.logDir = logDir;
    }

    public static Path libvirtd() {
        for (String dir : List.of("/usr/sbin", "/usr/bin", "/sbin")) {
            if (Files.isExecutable(Path.of(dir, "libvirtd"))) {
                return Path.of(dir, "libvirtd");
            }
        }
        return null;
    }

    public static void require() {
        Peers.require(libvirtd() != null && Files.isExecutable(Path.of("/usr/bin/virsh")),
                "libvirtd and virsh (apt packages libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu)");
        Peers.require("root".equals(System.getProperty("user.name")), "root, to run libvirt's system daemon");
    }

    /** Connects to a running libvirtd, or starts virtlogd and libvirtd and waits until virsh gets an answer. */
    public static Libvirt start(Path logDir) throws Exception {
        Files.createDirectories(logDir);
        Libvirt lv = new Libvirt(logDir);
        if (lv.virsh(Duration.ofSeconds(20), "version").exitCode() == 0) {
            return lv;
        }
        try {
            Path sbin = libvirtd().getParent();
            lv.daemons.add(new ProcessBuilder(sbin.resolve("virtlogd").toString()).redirectErrorStream(true)
                    .redirectOutput(logDir.resolve("virtlogd.log").toFile()).start());
            lv.daemons.add(new ProcessBuilder(libvirtd().toString()).redirectErrorStream(true)
                    .redirectOutput(logDir.resolve("libvirtd.log").toFile()).start());
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            SecondProcess.Result r;
            while ((r = lv.virsh(Duration.ofSeconds(20), "version")).exitCode() != 0) {
                if (System.nanoTime() > deadline || !lv.daemons.getLast().isAlive()) {
                    throw new AssertionError("libvirtd did not answer: " + r.output() + "\n"
                            + Files.readString(logDir.resolve("libvirtd.log")));
                }
                Thread.sleep(200);
            }
            return lv;
        } catch (Throwable t) {
            lv.close();
            throw t;
        }
    }

    SecondProcess.Result virsh(Duration timeout, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("/usr/bin/virsh", "-c", URI));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(timeout.toSeconds(), TimeUnit.SECONDS)) {
            p.destroyForcibly();
            return new SecondProcess.Result(-1, "virsh " + args[0] + " timed out");
        }
        return new SecondProcess.Result(p.exitValue(), new String(out, StandardCharsets.UTF_8));
    }

    SecondProcess.Result virshOk(String... args) throws IOException, InterruptedException {
        SecondProcess.Result r = virsh(Duration.ofSeconds(60), args);
        if (r.exitCode() != 0) {
            throw new AssertionError("virsh " + String.join(" ", args) + " failed (" + r.exitCode() + "): " + r.output());
        }
        return r;
    }

    /** A fresh domain name (unique per process), registered for cleanup once defined. */
    public String newDomainName(String base) {
        return base + "-" + ProcessHandle.current().pid() + "-" + DOMAINS.incrementAndGet();
    }

    /** virsh define FILE, then virsh start NAME. */
    public void defineAndStart(String name, String xml) throws Exception {
        Path file = logDir.resolve(name + ".xml");
        Files.writeString(file, xml);
        virshOk("define", file.toString());
        domains.add(name);
        virshOk("start", name);
    }

    /** The tail of QEMU's log for a domain, for failure messages. */
    public static String qemuLog(String name) {
        try {
            List<String> lines = Files.readAllLines(Path.of("/var/log/libvirt/qemu", name + ".log"));
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 20), lines.size()));
        } catch (IOException e) {
            return "(no QEMU log: " + e.getMessage() + ")";
        }
    }

    @Override
    public void close() {
        for (String name : domains) {
            try {
                virsh(Duration.ofSeconds(60), "destroy", name);
                virsh(Duration.ofSeconds(60), "undefine", name);
            } catch (IOException | InterruptedException e) {
                System.err.println("libvirt cleanup of " + name + ": " + e);
            }
        }
        for (Process p : daemons.reversed()) {
            p.destroy();
            try {
                if (!p.waitFor(20, TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /** A shell on a domain's serial console, reached through the console's Unix socket (mode='bind'). */
    public static final class Console implements AutoCloseable {
        private final SocketChannel channel;
        private final StringBuilder text = new StringBuilder();
        private final Thread reader;
        private final AtomicInteger commands = new AtomicInteger();

        public Console(Path socket, Duration timeout) throws Exception {
            long deadline = System.nanoTime() + timeout.toNanos();
            SocketChannel c = null;
            while (c == null) {
                try {
                    c = SocketChannel.open(StandardProtocolFamily.UNIX);
                    c.connect(UnixDomainSocketAddress.of(socket));
                } catch (IOException e) {
                    c.close();
                    c = null;
                    if (System.nanoTime() > deadline) {
                        throw new AssertionError("console socket " + socket + " never accepted: " + e);
                    }
                    Thread.sleep(100);
                }
            }
            channel = c;
            reader = Thread.ofPlatform().daemon().start(() -> {
                ByteBuffer buffer = ByteBuffer.allocate(4096);
                try {
                    while (channel.read(buffer.clear()) >= 0) {
                        synchronized (text) {
                            text.append(new String(buffer.array(), 0, buffer.position(), StandardCharsets.ISO_8859_1));
                            text.notifyAll();
                        }
                    }
                } catch (IOException e) {
                    // closed
                }
            });
        }

        /** Types {@code command} and returns its output and exit status, once the shell has run it. */
        public QemuResult run(String command, Duration timeout) throws Exception {
            int n = commands.incrementAndGet();
            int from;
            synchronized (text) {
                from = text.length();
            }
            channel.write(StandardCharsets.UTF_8.encode(command + "; echo VSDONE-" + n + "-$?\n"));
            Pattern done = Pattern.compile("VSDONE-" + n + "-(\\d+)");
            long deadline = System.nanoTime() + timeout.toNanos();
            synchronized (text) {
                while (true) {
                    Matcher m = done.matcher(text).region(from, text.length());
                    if (m.find()) {
                        return new QemuResult(text.substring(from, m.start()), Integer.parseInt(m.group(1)));
                    }
                    long left = deadline - System.nanoTime();
                    if (left <= 0) {
                        throw new AssertionError("'" + command + "' did not finish on the console; it shows:\n"
                                + text.substring(Math.max(0, text.length() - 2000)));
                    }
                    text.wait(Math.max(1, TimeUnit.NANOSECONDS.toMillis(left)));
                }
            }
        }

        @Override
        public void close() throws IOException {
            channel.close();
        }
    }

    public record QemuResult(String output, int status) {
    }
}
