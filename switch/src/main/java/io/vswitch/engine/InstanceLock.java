package io.vswitch.engine;

import io.vswitch.sys.Libc;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * One switch per runtime directory: an exclusive {@code flock(2)} on {@code <runtime dir>/vswitch.lock}, held for
 * as long as the switch runs, with the holder's pid written into the file for the next one to name.
 *
 * <p>flock rather than {@link java.nio.channels.FileChannel#tryLock} (an fcntl lock): an fcntl lock belongs to the
 * process and is silently dropped when the process closes <em>any</em> descriptor of the file, so reading the pid
 * back from the same JVM (a test, a second {@code Switch}) would release it; a flock belongs to the open file
 * description, so a second {@code Switch} in the same JVM is refused exactly like a second process, and
 * {@code flock -n vswitch.lock true} in a shell tells whether a switch holds it. The kernel drops the lock when
 * the holder dies, however it dies: a free lock means the previous switch is gone, and its sockets and counters
 * file are leftovers that the new one may remove.
 */
final class InstanceLock implements AutoCloseable {
    static final String FILE_NAME = "vswitch.lock";

    private final Path path;
    private int fd;

    private InstanceLock(Path path, int fd) {
        this.path = path;
        this.fd = fd;
    }

    /**
     * Takes the lock of {@code dir} (created if missing) and writes this process's pid into it.
     *
     * @throws RuntimeDirInUseException when another switch holds it (its message names that switch's pid)
     */
    static InstanceLock acquire(Path dir) throws IOException {
        Files.createDirectories(dir);
        Path path = dir.resolve(FILE_NAME);
        int fd = Libc.open(path, Libc.O_RDWR | Libc.O_CREAT | Libc.O_CLOEXEC | Libc.O_NOFOLLOW, 0644);
        try {
            if (!Libc.tryLockExclusive(fd)) {
                throw new RuntimeDirInUseException(dir, holder(path));
            }
            byte[] pid = (ProcessHandle.current().pid() + "\n").getBytes(StandardCharsets.US_ASCII);
            Libc.pwriteFully(fd, pid, 0);
            Libc.ftruncate(fd, pid.length);
            return new InstanceLock(path, fd);
        } catch (RuntimeException e) {
            Libc.closeQuietly(fd);
            throw e;
        }
    }

    /**
     * The pid in a held lock file. The holder writes it right after locking, so a reader that comes in between
     * sees an empty file (or a previous holder's pid) for a moment: it reads again for up to a second, until the
     * pid names a live process.
     */
    static long holder(Path path) {
        long deadline = System.nanoTime() + 1_000_000_000L;
        long pid = 0;
        do {
            try {
                String text = Files.readString(path, StandardCharsets.US_ASCII).strip();
                pid = text.isEmpty() ? 0 : Long.parseLong(text);
            } catch (IOException | NumberFormatException e) {
                pid = 0;
            }
            if (pid > 0 && ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)) {
                return pid;
            }
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        } while (System.nanoTime() < deadline);
        return pid;
    }

    Path path() {
        return path;
    }

    /** Empties the file (no pid: nobody runs) and releases the lock. */
    @Override
    public void close() {
        if (fd < 0) {
            return;
        }
        try {
            Libc.ftruncate(fd, 0);
        } catch (RuntimeException ignored) {
            // the lock goes with the descriptor anyway
        }
        Libc.closeQuietly(fd);
        fd = -1;
    }
}
