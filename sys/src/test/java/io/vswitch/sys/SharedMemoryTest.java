package io.vswitch.sys;

import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SharedMemoryTest {
    @Test
    void writesThroughOneMappingAreSeenThroughAnother() {
        int before = OpenFds.count();
        int fd = SharedMemory.memfd("two-views", 1 << 20, false);
        try (MappedMemory a = SharedMemory.map(fd, 1 << 20, 0); MappedMemory b = SharedMemory.map(fd, 1 << 20, 0)) {
            assertTrue(a.address() != b.address(), "two distinct mappings");
            a.segment().set(ValueLayout.JAVA_LONG, 4096, 0xDEAD_BEEF_CAFEL);
            assertEquals(0xDEAD_BEEF_CAFEL, b.segment().get(ValueLayout.JAVA_LONG, 4096));
            assertEquals(1 << 20, SharedMemory.size(fd));
            assertTrue(SharedMemory.isRegularFile(fd));
        } finally {
            Libc.close(fd);
        }
        assertEquals(before, OpenFds.count());
    }

    @Test
    void mappingAtAnOffsetSeesTheFileFromThere() {
        int fd = SharedMemory.memfd("offset", 3 * 4096, false);
        try (MappedMemory whole = SharedMemory.map(fd, 3 * 4096, 0);
             MappedMemory tail = SharedMemory.map(fd, 4096, 2 * 4096)) {
            whole.segment().set(ValueLayout.JAVA_INT, 2 * 4096 + 12, 77);
            assertEquals(77, tail.segment().get(ValueLayout.JAVA_INT, 12));
        } finally {
            Libc.close(fd);
        }
    }

    @Test
    void accessAfterUnmapFailsCleanlyInsteadOfCrashing() {
        int fd = SharedMemory.memfd("closed", 4096, false);
        MappedMemory mapping = SharedMemory.map(fd, 4096, 0);
        Libc.close(fd);
        mapping.close();
        assertFalse(mapping.isMapped());
        assertThrows(IllegalStateException.class, () -> mapping.segment().get(ValueLayout.JAVA_INT, 0));
        mapping.close();
    }

    @Test
    void mmapErrorsNameTheCallAndErrno() {
        int fd = SharedMemory.memfd("bad", 4096, false);
        try {
            SysCallException e = assertThrows(SysCallException.class, () -> SharedMemory.map(fd, 4096, 123));
            assertTrue(e.getMessage().startsWith("mmap 4096 bytes of fd " + fd + " at offset 123 failed: EINVAL (Invalid argument)"),
                    e.getMessage());
        } finally {
            Libc.close(fd);
        }
    }
}
