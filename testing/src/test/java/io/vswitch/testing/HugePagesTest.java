package io.vswitch.testing;

import io.vswitch.sys.Libc;
import io.vswitch.sys.MappedMemory;
import io.vswitch.sys.SharedMemory;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The hugepages this machine must provide: a hugetlb memfd maps and is backed by 2 MiB pages (peer: reserved hugepages). */
class HugePagesTest {
    private static final long HUGE_PAGE = 2L * 1024 * 1024;

    @Test
    void hugetlbMemfdMapsWhenHugepagesAreConfigured() throws Exception {
        Peers.require(freeHugePages() >= 2, "free 2 MiB hugepages (echo 64 > /proc/sys/vm/nr_hugepages)");
        int fd = SharedMemory.memfd("huge", 2 * HUGE_PAGE, true);
        try (MappedMemory mapping = SharedMemory.map(fd, 2 * HUGE_PAGE, 0)) {
            assertEquals(HUGE_PAGE, SharedMemory.blockSize(fd), "backed by 2 MiB pages");
            mapping.segment().set(ValueLayout.JAVA_LONG, HUGE_PAGE + 8, 5L);
            assertEquals(5L, mapping.segment().get(ValueLayout.JAVA_LONG, HUGE_PAGE + 8));
        } finally {
            Libc.close(fd);
        }
    }

    static long freeHugePages() throws Exception {
        for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
            if (line.startsWith("HugePages_Free:")) {
                return Long.parseLong(line.substring("HugePages_Free:".length()).trim());
            }
        }
        return 0;
    }
}
