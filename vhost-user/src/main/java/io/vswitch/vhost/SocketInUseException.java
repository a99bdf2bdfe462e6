package io.vswitch.vhost;

import io.vswitch.sys.UnixSocket;

import java.nio.file.Path;

/** A server socket path on which a live process listens: it is not stale, so it must not be removed. */
public final class SocketInUseException extends IllegalStateException {
    private final Path path;
    private final long pid;

    public SocketInUseException(Path path, UnixSocket.Listener listener) {
        super("another process (" + listener.describe() + ") serves socket " + path);
        this.path = path;
        this.pid = listener.pid();
    }

    public Path path() {
        return path;
    }

    /** The listener's pid, or 0 when it could not be asked. */
    public long pid() {
        return pid;
    }
}
