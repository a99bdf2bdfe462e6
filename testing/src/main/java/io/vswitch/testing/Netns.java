package io.vswitch.testing;

import io.vswitch.sys.Libc;
import io.vswitch.sys.SysCallException;

import java.io.IOException;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.FutureTask;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

import static io.vswitch.sys.Libc.C_INT;

/**
 * A network namespace a test creates and removes ({@code ip netns}), with the veth pairs it made: names start
 * with {@code vsu} and carry a random tag, so concurrent runs never collide. Needs root and iproute2: {@link
 * #require()} skips (locally) or fails (CI) without them. {@link #close()} deletes the namespace, which takes
 * every interface inside it (and the far ends of their veth pairs) with it.
 */
public final class Netns implements AutoCloseable {
    private static final MethodHandle SETNS = Libc.call("setns", FunctionDescriptor.of(C_INT, C_INT, C_INT));
    private static final int CLONE_NEWNET = 0x40000000;

    private final String name;
    private final List<String> rootLinks = new ArrayList<>();

    private Netns(String name) {
        this.name = name;
    }

    /** A random tag of 4 hex digits, for unique names and addresses. */
    public static String tag() {
        return String.format("%04x", ThreadLocalRandom.current().nextInt(0x10000));
    }

    public static boolean available() {
        try {
            return "0".equals(new String(new ProcessBuilder("id", "-u").start().getInputStream().readAllBytes()).trim())
                    && !run(List.of("ip", "-V")).isEmpty();
        } catch (IOException e) {
            return false;
        }
    }

    public static void require() {
        Peers.require(available(), "root and iproute2 (ip netns) for network namespaces");
    }

    public static Netns create(String name) throws IOException {
        sh("ip netns add " + name);
        Netns ns = new Netns(name);
        ns.exec("ip link set lo up");
        return ns;
    }

    public String name() {
        return name;
    }

    /** A veth pair: {@code rootEnd} stays in the root namespace, {@code nsEnd} moves into this one. */
    public void veth(String rootEnd, String nsEnd, int mtu) throws IOException {
        sh("ip link add " + rootEnd + " mtu " + mtu + " type veth peer name " + nsEnd + " mtu " + mtu);
        rootLinks.add(rootEnd);
        sh("ip link set " + nsEnd + " netns " + name);
    }

    /** Runs {@code command} (split on spaces) inside the namespace; its output, or an exception with it. */
    public String exec(String command) throws IOException {
        return sh("ip netns exec " + name + " " + command);
    }

    /** Starts {@code command} (a shell command line) inside the namespace, output to {@code log}. */
    public Process start(String shellCommand, Path log) throws IOException {
        return new ProcessBuilder("ip", "netns", "exec", name, "sh", "-c", shellCommand)
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
    }

    /** Runs {@code body} on a thread that lives in this namespace: sockets it opens stay in it. */
    public <T> T inside(Callable<T> body) throws Exception {
        FutureTask<T> task = new FutureTask<>(() -> {
            int fd = Libc.open(Path.of("/var/run/netns", name), Libc.O_CLOEXEC, 0);
            try {
                MemorySegment state = Libc.callState();
                int rc = (int) SETNS.invokeExact(state, fd, CLONE_NEWNET);
                if (rc < 0) {
                    throw SysCallException.of("setns", Libc.errno(state), name);
                }
            } catch (Throwable t) {
                if (t instanceof Exception e) {
                    throw e;
                }
                throw new AssertionError(t);
            } finally {
                Libc.closeQuietly(fd);
            }
            return body.call();
        });
        Thread t = new Thread(task, "netns-" + name);
        t.start();
        try {
            return task.get(60, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            throw e.getCause() instanceof Exception ex ? ex : new RuntimeException(e.getCause());
        }
    }

    @Override
    public void close() {
        try {
            sh("ip netns del " + name);
        } catch (IOException e) {
            System.err.println("netns " + name + ": " + e.getMessage());
        }
        for (String link : rootLinks) {
            try {
                if (Files.exists(Path.of("/sys/class/net", link))) {
                    sh("ip link del " + link);
                }
            } catch (IOException e) {
                System.err.println("link " + link + ": " + e.getMessage());
            }
        }
    }

    /** Runs a command line (split on spaces, no shell); its output, or an IOException holding it. */
    public static String sh(String command) throws IOException {
        String out = run(List.of(command.split(" ")));
        return out;
    }

    private static String run(List<String> argv) throws IOException {
        Process p = new ProcessBuilder(argv).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        try {
            if (!p.waitFor(60, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException(argv + ": timed out");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(argv + ": interrupted");
        }
        if (p.exitValue() != 0) {
            throw new IOException(String.join(" ", argv) + ": exit " + p.exitValue() + ": " + out.trim());
        }
        return out;
    }
}
