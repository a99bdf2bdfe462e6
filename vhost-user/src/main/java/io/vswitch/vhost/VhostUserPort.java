package io.vswitch.vhost;

import io.vswitch.sys.SysCallException;
import io.vswitch.vhost.net.VirtioNetDevice;
import io.vswitch.sys.UnixSocket;
import io.vswitch.vhost.protocol.SessionCounters;
import io.vswitch.vhost.protocol.VhostUserSession;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.concurrent.TimeUnit;

/**
 * A vhost-user port: one socket, one frontend at a time, one {@link VirtioNetDevice}. Its own control thread
 * accepts (server role) or connects with backoff (client role), serves the session, and on disconnect
 * releases everything the frontend gave (rings, memory, descriptors) before waiting for the next one.
 * A frontend that misbehaves only ever affects its own port.
 */
public final class VhostUserPort implements AutoCloseable {
    public enum Role { SERVER, CLIENT }

    private static final System.Logger LOG = System.getLogger("vswitch.vhost");
    private static final long MIN_BACKOFF_MS = 100;
    private static final long MAX_BACKOFF_MS = 2000;

    private final String name;
    private final Path socketPath;
    private final Role role;
    private final VirtioNetDevice device;
    private final SessionCounters counters = new SessionCounters();
    private final Thread thread;
    private volatile boolean closing;
    private volatile UnixSocket listener;
    private volatile UnixSocket connection;
    private volatile boolean connected;

    public VhostUserPort(String name, Path socketPath, Role role) {
        this(name, socketPath, role, 1);
    }

    /** A port whose device serves {@code queuePairs} queue pairs. */
    public VhostUserPort(String name, Path socketPath, Role role, int queuePairs) {
        this.name = name;
        this.socketPath = socketPath;
        this.role = role;
        this.device = new VirtioNetDevice(name, queuePairs);
        this.thread = Thread.ofPlatform().name("vhost-" + name).daemon(true).unstarted(this::run);
    }

    /** Server role: binds the socket now, so that a bad path fails here rather than in the background. */
    public VhostUserPort start() {
        if (role == Role.SERVER) {
            removeStaleSocket();
            listener = UnixSocket.listen(socketPath, 1);
        }
        thread.start();
        return this;
    }

    public String name() {
        return name;
    }

    public Path socketPath() {
        return socketPath;
    }

    public Role role() {
        return role;
    }

    public VirtioNetDevice device() {
        return device;
    }

    public SessionCounters counters() {
        return counters;
    }

    public boolean isConnected() {
        return connected;
    }

    /**
     * Throws {@link SocketInUseException} when a live process listens on {@code path}; removes a socket file that
     * nobody listens on any more (its process is gone). Never removes anything that is not a socket.
     */
    public static void removeStaleSocket(Path path) {
        try {
            if (Files.exists(path, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                BasicFileAttributes attrs = Files.readAttributes(path, BasicFileAttributes.class,
                        java.nio.file.LinkOption.NOFOLLOW_LINKS);
                if (!attrs.isOther()) {
                    throw new IllegalStateException(path + " exists and is not a socket; refusing to remove it");
                }
                var listener = UnixSocket.probeListener(path);
                if (listener.isPresent()) {
                    throw new SocketInUseException(path, listener.get());
                }
                Files.deleteIfExists(path);
                LOG.log(Level.INFO, "removed stale socket {0} (nobody listened on it)", path);
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot remove stale socket " + path + ": " + e.getMessage(), e);
        }
    }

    private void removeStaleSocket() {
        removeStaleSocket(socketPath);
        try {
            Path parent = socketPath.toAbsolutePath().getParent();
            if (parent != null) {
                Files.createDirectories(parent);
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot prepare socket path " + socketPath + ": " + e.getMessage(), e);
        }
    }

    private void run() {
        long backoff = MIN_BACKOFF_MS;
        while (!closing) {
            UnixSocket socket;
            try {
                socket = role == Role.SERVER ? listener.accept() : UnixSocket.connect(socketPath);
                backoff = MIN_BACKOFF_MS;
            } catch (SysCallException e) {
                if (closing) {
                    break;
                }
                if (role == Role.SERVER) {
                    LOG.log(Level.ERROR, "port {0}: {1}", name, e.getMessage());
                    sleep(backoff);
                } else {
                    LOG.log(Level.DEBUG, "port {0}: frontend not there yet: {1}", name, e.getMessage());
                    sleep(backoff);
                    backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
                }
                continue;
            }
            serve(socket);
        }
    }

    private void serve(UnixSocket socket) {
        connection = socket;
        connected = true;
        counters.connections++;
        if (device.queuePairs() > 1) {
            LOG.log(Level.INFO, "port {0}: frontend connected on {1} (up to {2} queue pairs)", name, socketPath,
                    device.queuePairs());
        } else {
            LOG.log(Level.INFO, "port {0}: frontend connected on {1}", name, socketPath);
        }
        try (VhostUserSession session = new VhostUserSession(name, socket, device, counters)) {
            session.serve();
            LOG.log(Level.INFO, "port {0}: frontend disconnected", name);
        } catch (IOException e) {
            if (!closing) {
                LOG.log(Level.WARNING, "port {0}: connection ended: {1}", name, e.getMessage());
            }
        } catch (RuntimeException e) {
            LOG.log(Level.ERROR, "port " + name + ": session failed; dropping the connection", e);
        } finally {
            connected = false;
            counters.disconnects++;
            connection = null;
            socket.close();
            device.reset();
        }
    }

    private void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            closing = true;
        }
    }

    /** Stops the port: the frontend sees the connection close, the socket file is removed. */
    @Override
    public void close() {
        closing = true;
        UnixSocket l = listener;
        if (l != null) {
            l.shutdown();
        }
        UnixSocket c = connection;
        if (c != null) {
            c.shutdown();
        }
        thread.interrupt();
        try {
            thread.join(TimeUnit.SECONDS.toMillis(5));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (l != null) {
            l.close();
            try {
                Files.deleteIfExists(socketPath);
            } catch (IOException e) {
                LOG.log(Level.WARNING, "port {0}: could not remove {1}: {2}", name, socketPath, e.getMessage());
            }
        }
        if (!thread.isAlive()) {
            device.reset();
        }
    }
}
