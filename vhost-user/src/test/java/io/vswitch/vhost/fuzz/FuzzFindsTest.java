package io.vswitch.vhost.fuzz;

import io.vswitch.testing.LogCapture;
import io.vswitch.vhost.fixtures.PortFixture;
import io.vswitch.testing.TestFrontend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static io.vswitch.vhost.fixtures.PortFixture.await;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** What the fuzzers found in the switch, each kept as a test. */
@Timeout(30)
class FuzzFindsTest {
    @TempDir
    Path dir;

    /**
     * MessageFuzzTest, seed 0x5eed0003 connection 2368: a region whose mmap_offset is odd puts rings that are
     * aligned in the frontend's address space at odd addresses in ours; the aligned atomic access to used.idx in
     * VirtQueue.configure threw IllegalArgumentException out of the handler and the session was dropped. Now the
     * ring is refused with a reason, the device is stopped, and the connection stays.
     */
    @Test
    void ringsMisalignedByAnOddMmapOffsetAreRefusedWithAReason() throws Exception {
        try (LogCapture log = new LogCapture(); PortFixture fx = new PortFixture(dir)) {
            TestFrontend.Options options = new TestFrontend.Options();
            options.mmapOffset = 4097;
            TestFrontend fe = fx.connectAndSetUp(options);
            await(() -> fx.device().isBroken(), "the device stopped");
            assertFalse(fx.device().isRunning());
            log.await("misaligned");
            assertTrue(fx.port().isConnected(), "the session goes on");
            assertTrue(log.matching(l -> l.message().contains("session failed")).isEmpty());
            fe.sync();
            fx.disconnectAndAssertReleased(fe);
        }
    }
}
