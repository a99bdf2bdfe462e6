package io.vswitch.engine;

import java.nio.file.Path;

/** Another switch holds the runtime directory's lock: {@code another switch (pid N) runs in DIR}. */
public final class RuntimeDirInUseException extends IllegalStateException {
    private final Path dir;
    private final long pid;

    RuntimeDirInUseException(Path dir, long pid) {
        super("another switch (" + (pid > 0 ? "pid " + pid : "pid unknown") + ") runs in " + dir);
        this.dir = dir;
        this.pid = pid;
    }

    public Path dir() {
        return dir;
    }

    /** The holder's pid as it wrote it into the lock file, or 0 when the file did not say. */
    public long pid() {
        return pid;
    }
}
