package io.vswitch.engine;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** The runtime directory's lock within one JVM; {@link OneSwitchPerDirectoryTest} has it between processes. */
class InstanceLockTest {
    @TempDir
    Path dir;

    @Test
    void heldOncePerDirectoryEvenWithinOneProcessAndFreeAgainAfterClose() throws Exception {
        long me = ProcessHandle.current().pid();
        try (InstanceLock lock = InstanceLock.acquire(dir.resolve("rt"))) {
            assertEquals(me + "\n", Files.readString(lock.path()), "the holder's pid is in the file");
            RuntimeDirInUseException e = assertThrows(RuntimeDirInUseException.class,
                    () -> InstanceLock.acquire(dir.resolve("rt")));
            assertEquals("another switch (pid " + me + ") runs in " + dir.resolve("rt"), e.getMessage());
            assertEquals(me, e.pid());
            // reading (opening and closing) the file does not drop a flock, as it would an fcntl lock
            assertThrows(RuntimeDirInUseException.class, () -> InstanceLock.acquire(dir.resolve("rt")));
            try (InstanceLock other = InstanceLock.acquire(dir.resolve("elsewhere"))) {
                assertEquals(me + "\n", Files.readString(other.path()));
            }
        }
        assertEquals("", Files.readString(dir.resolve("rt").resolve(InstanceLock.FILE_NAME)), "closed: no pid");
        try (InstanceLock again = InstanceLock.acquire(dir.resolve("rt"))) {
            assertEquals(me + "\n", Files.readString(again.path()));
        }
    }
}
