package io.vswitch.engine;

import io.vswitch.testing.SecondProcess;
import io.vswitch.testing.TestFrontend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;

import static io.vswitch.engine.QemuGuestsTest.awaitCounter;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code vswitch run} twice, as two users in two shells would: one switch per runtime directory and per server
 * socket; the running one is never disturbed, and what a killed one left behind is cleaned up by the next.
 */
class OneSwitchPerDirectoryTest {
    private static final Duration START = Duration.ofSeconds(30);

    @TempDir
    Path dir;

    @Test
    void aSecondRunIsRefusedNamingTheFirstWhichKeepsServing() throws Exception {
        Path runtime = dir.resolve("rt");
        Path vm1 = runtime.resolve("vm1.sock");
        Path counters = runtime.resolve(CountersFile.FILE_NAME);
        try (SecondProcess.Running first = SecondProcess.start("run", "--runtime-dir", runtime.toString())) {
            awaitUp(first, runtime);
            Object countersFile = fileKey(counters);
            Object socketFile = fileKey(vm1);

            // the same runtime directory
            SecondProcess.Result same = SecondProcess.vswitch("run", "--runtime-dir", runtime.toString());
            assertEquals(1, same.exitCode(), same.output());
            assertTrue(same.output().contains("vswitch: another switch (pid " + first.pid() + ") runs in " + runtime),
                    same.output());

            // another runtime directory, but a socket the first switch serves
            Path yaml = dir.resolve("steal.yaml");
            Files.writeString(yaml, """
                    switch:
                      runtime-dir: %s
                    ports:
                      - name: thief
                        socket: %s
                    """.formatted(dir.resolve("other"), vm1));
            SecondProcess.Result other = SecondProcess.vswitch("run", "--config", yaml.toString());
            assertEquals(1, other.exitCode(), other.output());
            assertTrue(other.output().contains("vswitch: another process (pid " + first.pid() + ") serves socket " + vm1),
                    other.output());
            assertFalse(Files.exists(dir.resolve("other").resolve(CountersFile.FILE_NAME)), "the refused one started nothing");

            // the first switch's files are still the ones it made (not unlinked and re-created), and it still serves:
            // a frontend attaches to its socket and its counters file shows the link come up
            assertEquals(countersFile, fileKey(counters), "counters file untouched");
            assertEquals(socketFile, fileKey(vm1), "socket untouched");
            assertEquals(first.pid(), CountersFile.read(counters).pid());
            try (TestFrontend guest = TestFrontend.connect(vm1).setUp()) {
                guest.postRxBuffers(8, 2048);
                awaitCounter(counters, "vm1", "link_up", 1);
            }
            awaitCounter(counters, "vm1", "link_up", 0);
            assertTrue(first.process.isAlive(), first.output());
            assertEquals(0, first.terminate(), first.output());
            assertFalse(Files.exists(vm1), "a clean stop removes its sockets");
        }
    }

    @Test
    void theNextRunCleansUpAfterAKilledSwitch() throws Exception {
        Path runtime = dir.resolve("rt");
        Path vm1 = runtime.resolve("vm1.sock");
        Path counters = runtime.resolve(CountersFile.FILE_NAME);
        long deadPid;
        Object staleCounters;
        try (SecondProcess.Running killed = SecondProcess.start("run", "--runtime-dir", runtime.toString())) {
            awaitUp(killed, runtime);
            deadPid = killed.pid();
            killed.kill();
            assertFalse(killed.process.isAlive());
        }
        assertTrue(Files.exists(vm1, LinkOption.NOFOLLOW_LINKS) && Files.exists(counters), "SIGKILL left its files behind");
        assertEquals(deadPid, CountersFile.read(counters).pid());
        staleCounters = fileKey(counters);

        try (SecondProcess.Running next = SecondProcess.start("run", "--runtime-dir", runtime.toString())) {
            awaitUp(next, runtime);
            assertTrue(next.output().contains("removed stale socket " + vm1), next.output());
            assertNotEquals(staleCounters, fileKey(counters), "a new counters file");
            assertEquals(next.pid(), CountersFile.read(counters).pid());
            try (TestFrontend guest = TestFrontend.connect(vm1).setUp()) {
                guest.postRxBuffers(8, 2048);
                awaitCounter(counters, "vm1", "link_up", 1);
            }
            assertEquals(0, next.terminate(), next.output());
        }
    }

    /** Waits until the switch printed its attach instructions and both default sockets exist. */
    private static void awaitUp(SecondProcess.Running sw, Path runtime) throws InterruptedException {
        sw.awaitOutput("port vm2", START);
        sw.await("its sockets", START, () -> Files.exists(runtime.resolve("vm1.sock"), LinkOption.NOFOLLOW_LINKS)
                && Files.exists(runtime.resolve("vm2.sock"), LinkOption.NOFOLLOW_LINKS));
    }

    /** Device and inode: the same key means the same file, not one removed and made again. */
    private static Object fileKey(Path path) throws Exception {
        return Files.readAttributes(path, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).fileKey();
    }
}
