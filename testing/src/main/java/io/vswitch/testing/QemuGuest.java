package io.vswitch.testing;

import java.io.File;
import java.io.IOException;
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
 * A real Linux VM (QEMU, TCG) with one virtio-net NIC on a vhost-user socket: the peer that proves a
 * vhost-user backend works against the real virtio-net driver rather than against our own idea of it.
 *
 * <p>The guest is Debian 12's kernel with a busybox initramfs built by {@code tools/guest/build-guest.sh}.
 * It configures eth0 with the {@code ipCidr} given here, prints {@code VSGUEST READY ip=.. mac=..} and then
 * runs a shell on the serial console, which is this process's stdin/stdout. Tests type commands with
 * {@link #run}. Guest memory is a shared file in /dev/shm, as vhost-user requires.
 *
 * <pre>{@code
 * QemuGuest.require();
 * try (QemuGuest g = QemuGuest.start("vm1", sock, false, "52:54:00:00:00:01", "10.99.0.1/24", workDir)) {
 *     g.awaitReady(Duration.ofSeconds(60));
 *     g.runOk("ping -c 3 10.99.0.2", Duration.ofSeconds(20));
 * }
 * }</pre>
 */
public final class QemuGuest implements AutoCloseable {

    public static final String QEMU = "qemu-system-x86_64";
    private static final Pattern READY = Pattern.compile("^VSGUEST (READY|FAILED)(.*)$");
    /** busybox ash's line editor holds 1024 characters; longer lines are cut. */
    private static final int MAX_LINE = 1000;

    /** What {@link #run} returns: the command's output (stdout and stderr, lines joined by \n) and exit status. */
    public record Result(String output, int status) {
        public boolean ok() {
            return status == 0;
        }
    }

    private static Path image;
    private static String unavailable;

    private final String name;
    private final String mac;
    private final String ipCidr;
    private final ProcessConsole console;
    private final long startNanos = System.nanoTime();
    private final AtomicInteger commands = new AtomicInteger();
    private volatile long readyMillis = -1;

    private QemuGuest(String name, String mac, String ipCidr, ProcessConsole console) {
        this.name = name;
        this.mac = mac;
        this.ipCidr = ipCidr;
        this.console = console;
    }

    // ------------------------------------------------------------------ availability

    /**
     * Builds the guest image if needed (once per JVM; cached across runs by the script) and checks that
     * QEMU is installed. False, with {@link #unavailableReason()} telling why, if either fails.
     */
    public static synchronized boolean available() {
        if (image == null && unavailable == null) {
            unavailable = probe();
        }
        return unavailable == null;
    }

    /** Why {@link #available()} is false, or null. */
    public static synchronized String unavailableReason() {
        available();
        return unavailable;
    }

    /** Fails in CI, skips locally, unless a guest can be started (see {@link Peers#require}). */
    public static void require() {
        Peers.require(available(), "QEMU test guest: " + unavailableReason()
                + " (needs apt packages qemu-system-x86 busybox-static cpio, and apt access for the kernel)");
    }

    /** The directory holding {@code vmlinuz} and {@code initramfs.gz}; builds them if needed. */
    public static synchronized Path imageDir() {
        if (!available()) {
            throw new IllegalStateException("QEMU test guest unavailable: " + unavailable);
        }
        return image;
    }

    private static String probe() {
        if (onPath(QEMU) == null) {
            return QEMU + " not on PATH";
        }
        Path script = repoRoot().resolve("tools/guest/build-guest.sh");
        if (!Files.isRegularFile(script)) {
            return "no " + script;
        }
        String env = System.getenv("VSWITCH_GUEST_DIR");
        Path dir = env != null && !env.isBlank() ? Path.of(env)
                : Path.of(System.getProperty("user.home"), ".cache", "vswitch", "guest");
        try {
            Path out = Files.createTempFile("build-guest", ".log");
            try {
                ProcessBuilder pb = new ProcessBuilder("bash", script.toString()).redirectErrorStream(true)
                        .redirectOutput(out.toFile());
                pb.environment().put("VSWITCH_GUEST_DIR", dir.toString());
                Process p = pb.start();
                if (!p.waitFor(10, TimeUnit.MINUTES)) {
                    p.destroyForcibly();
                    return script + " took over 10 minutes";
                }
                String log = Files.readString(out);
                System.err.print(log);
                if (p.exitValue() != 0) {
                    return script + " failed (exit " + p.exitValue() + "):\n" + log;
                }
            } finally {
                Files.deleteIfExists(out);
            }
        } catch (IOException e) {
            return "cannot run " + script + ": " + e;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return "interrupted while building the guest";
        }
        if (!Files.isRegularFile(dir.resolve("vmlinuz")) || !Files.isRegularFile(dir.resolve("initramfs.gz"))) {
            return script + " left no vmlinuz/initramfs.gz in " + dir;
        }
        image = dir;
        return null;
    }

    /** System property {@code vswitch.repo.root} (set by surefire), else the first directory up from here with tools/guest. */
    static Path repoRoot() {
        String prop = System.getProperty("vswitch.repo.root");
        if (prop != null && Files.isDirectory(Path.of(prop, "tools", "guest"))) {
            return Path.of(prop);
        }
        for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
            if (Files.isDirectory(p.resolve("tools/guest"))) {
                return p;
            }
        }
        return Path.of(prop != null ? prop : "").toAbsolutePath();
    }

    static Path onPath(String program) {
        for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(File.pathSeparator)) {
            Path p = Path.of(dir, program);
            if (Files.isExecutable(p)) {
                return p;
            }
        }
        return null;
    }

    // ------------------------------------------------------------------ lifecycle

    /**
     * Launches the VM and returns at once (use {@link #awaitReady}).
     *
     * @param name            for logs and thread names; the console log is {@code workDir/<name>.console.log}
     * @param vhostUserSocket the vhost-user socket
     * @param socketServer    true: QEMU creates the socket and listens (server=on,wait=off), the backend connects;
     *                        false: the backend listens and QEMU connects, retrying every second
     *                        (reconnect=1), so it also reconnects after the backend restarts
     * @param mac             the NIC's MAC, e.g. 52:54:00:00:00:01
     * @param ipCidr          eth0's address, e.g. 10.99.0.1/24; null for none
     * @param workDir         where the console log goes (created if missing)
     */
    public static QemuGuest start(String name, Path vhostUserSocket, boolean socketServer, String mac, String ipCidr,
                                  Path workDir) throws IOException {
        return start(name, vhostUserSocket, socketServer, mac, ipCidr, workDir, List.of());
    }

    /** As {@link #start(String, Path, boolean, String, String, Path)}, with extra QEMU arguments appended. */
    public static QemuGuest start(String name, Path vhostUserSocket, boolean socketServer, String mac, String ipCidr,
                                  Path workDir, List<String> extraQemuArgs) throws IOException {
        return start(name, vhostUserSocket, socketServer, mac, ipCidr, workDir, extraQemuArgs, 1);
    }

    /**
     * As {@link #start(String, Path, boolean, String, String, Path, List)} with a multiqueue NIC of {@code queues}
     * queue pairs ({@code -netdev vhost-user,queues=N}, {@code virtio-net-pci,mq=on}) and as many vCPUs, since
     * Linux uses min(vCPUs, pairs) pairs by default (the guest has no ethtool to change it). Still vectors=0:
     * QEMU 7.2 under TCG serves a multiqueue NIC with INTx fine.
     */
    public static QemuGuest start(String name, Path vhostUserSocket, boolean socketServer, String mac, String ipCidr,
                                  Path workDir, List<String> extraQemuArgs, int queues) throws IOException {
        Path dir = imageDir();
        Files.createDirectories(workDir);
        String append = "console=ttyS0 quiet panic=-1" + (ipCidr != null ? " vs.ip=" + ipCidr : "");
        String chardev = "socket,id=chr0,path=" + vhostUserSocket
                + (socketServer ? ",server=on,wait=off" : ",reconnect=1");
        List<String> cmd = new ArrayList<>(List.of(
                QEMU, "-name", name,
                // /dev/kvm cannot run guests on our machines; TCG is slower but everywhere.
                "-accel", "tcg", "-m", "256", "-smp", Integer.toString(queues),
                // Serial console on stdio; -no-reboot with panic=-1 turns a guest panic into QEMU exiting.
                "-nographic", "-no-reboot",
                "-kernel", dir.resolve("vmlinuz").toString(),
                "-initrd", dir.resolve("initramfs.gz").toString(),
                "-append", append,
                // vhost-user needs guest RAM the backend can mmap: a shared file, passed to it as an fd.
                "-object", "memory-backend-file,id=mem,size=256M,mem-path=/dev/shm,share=on",
                "-numa", "node,memdev=mem",
                "-chardev", chardev,
                "-netdev", "vhost-user,id=net0,chardev=chr0" + (queues > 1 ? ",queues=" + queues : ""),
                // vectors=0: QEMU 7.2 under TCG segfaults setting up MSI-X for a vhost-user NIC, so the guest
                // uses INTx. romfile=: no iPXE option ROM, nothing here boots from the network.
                "-device", "virtio-net-pci,netdev=net0,mac=" + mac + ",vectors=0,romfile=" + (queues > 1 ? ",mq=on" : "")));
        cmd.addAll(extraQemuArgs);
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        ProcessConsole console = new ProcessConsole("qemu-" + name, p, workDir.resolve(name + ".console.log"));
        return new QemuGuest(name, mac, ipCidr, console);
    }

    /**
     * Waits for {@code VSGUEST READY} (eth0 up with its address); throws with the console's tail if the guest
     * reports {@code VSGUEST FAILED}, QEMU exits or the time runs out. Returns the READY line.
     */
    public String awaitReady(Duration timeout) {
        ProcessConsole.Match m = console.awaitLine(READY, timeout);
        if (m.matcher().group(1).equals("FAILED")) {
            throw console.failure("guest could not bring up its network: " + m.line());
        }
        readyMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - startNanos);
        return m.line();
    }

    /** Milliseconds from launch to READY, or -1 before {@link #awaitReady} saw it. */
    public long bootMillis() {
        return readyMillis;
    }

    /**
     * Waits for the next console line that {@code pattern} finds something in, after the lines an earlier
     * await or {@link #run} consumed; lines up to it are consumed (expect-style). Throws with the console's
     * tail on timeout or QEMU exit.
     */
    public Matcher awaitLine(Pattern pattern, Duration timeout) {
        return console.awaitLine(pattern, timeout).matcher();
    }

    /**
     * Types {@code shellCommand} into the guest shell and waits for it to finish. The command runs via
     * {@code eval} between two unique marker lines with stdin from /dev/null (so it cannot swallow what is
     * typed next), and may end in {@code &} to start a background job. The output is what the command printed
     * (stdout and stderr; a background job's output may show up in later results). On timeout, sends ^C to
     * the guest, so it stays usable, and throws. Keep commands under ~950 characters (ash's line limit).
     */
    public Result run(String shellCommand, Duration timeout) {
        int n = commands.incrementAndGet();
        // The marker words are split by quotes in what is typed, so the shell's echo of the typed line never
        // matches; only the output of echo does.
        String begin = "__VSB" + n + "_";
        Pattern end = Pattern.compile("^__VSE" + n + "_ rc=(\\d+)$");
        String line = "echo \"__VS\"\"B" + n + "_\"; eval '" + shellCommand.replace("'", "'\\''")
                + "' </dev/null; echo \"__VS\"\"E" + n + "_ rc=$?\"";
        if (line.length() > MAX_LINE) {
            throw new IllegalArgumentException("command too long for the guest's line editor (" + line.length()
                    + " > " + MAX_LINE + " characters); write a script in steps instead: " + shellCommand);
        }
        console.send(line + "\n");
        long deadline = System.nanoTime() + timeout.toNanos();
        try {
            int from = console.awaitLine(Pattern.compile("^" + begin + "$"), timeout).index() + 1;
            ProcessConsole.Match done = console.awaitLine(end,
                    Duration.ofNanos(Math.max(0, deadline - System.nanoTime())));
            String output = String.join("\n", console.lines(from, done.index()));
            return new Result(output, Integer.parseInt(done.matcher().group(1)));
        } catch (AssertionError e) {
            if (isAlive()) {
                console.send("\u0003"); // ^C: interrupt the command, or the next run types into a busy shell
            }
            throw new AssertionError(name + ": command did not finish within " + timeout + ": " + shellCommand
                    + "\n" + e.getMessage(), e);
        }
    }

    /** {@link #run}, throwing (with output and console tail) unless the exit status is 0; returns the output. */
    public String runOk(String shellCommand, Duration timeout) {
        Result r = run(shellCommand, timeout);
        if (!r.ok()) {
            throw console.failure("'" + shellCommand + "' exited " + r.status() + ", output:\n" + r.output());
        }
        return r.output();
    }

    /** Types {@code text} into the serial console as is (add "\n" to end a line). */
    public void type(String text) {
        console.send(text);
    }

    /** SIGKILL, like a crash (or a host OOM kill) of the VM; returns at once. */
    public void kill() {
        console.kill();
    }

    /** Kills QEMU and waits for it and for its log to be complete. */
    @Override
    public void close() {
        console.close();
    }

    public boolean isAlive() {
        return console.process().isAlive();
    }

    public long pid() {
        return console.process().pid();
    }

    /** The console log: everything QEMU and the guest printed, as printed. */
    public Path log() {
        return console.logFile();
    }

    /** The last {@code lines} console lines, cleaned of escape sequences. */
    public String tail(int lines) {
        return console.tail(lines);
    }

    public String name() {
        return name;
    }

    public String mac() {
        return mac;
    }

    /** As given to {@link #start}, e.g. 10.99.0.1/24. */
    public String ipCidr() {
        return ipCidr;
    }

    /** The address without prefix, e.g. 10.99.0.1. */
    public String ip() {
        return ipCidr == null ? null : ipCidr.replaceFirst("/.*", "");
    }

    @Override
    public String toString() {
        return "QemuGuest[" + name + ", " + mac + ", " + ipCidr + ", pid " + console.process().pid() + "]";
    }
}
