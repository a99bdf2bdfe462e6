package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.vhost.net.VirtioNetDevice;
import io.vswitch.testing.LogCapture;
import io.vswitch.testing.TestFrontend;
import io.vswitch.testing.TestFrontend.Region;
import io.vswitch.vhost.virtio.QueueFault;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

import static io.vswitch.engine.QemuGuestsTest.awaitCounter;
import static io.vswitch.engine.VlanTest.mac;
import static io.vswitch.testing.Await.await;
import static io.vswitch.testing.TestFrontend.GUEST_PHYS_BASE;
import static io.vswitch.testing.TestFrontend.RX;
import static io.vswitch.testing.TestFrontend.TX;
import static io.vswitch.testing.TestFrontend.USER_BASE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Faults found by a running worker: the worker only raises them; the switch's housekeeping thread logs them,
 * tells the frontend on the error eventfd and stops what must stop. And a fault is the guest's whose memory
 * failed: a source guest whose memory disappears under a frame it sent is the one stopped, while the
 * destination keeps forwarding.
 */
@Timeout(60)
class WorkerFaultsTest {
    /**
     * Unmapping guest memory under running queues is what the grace period prevents; forced here, it is survivable
     * only with checked guest-memory access (the build's checked-guest-memory execution runs this class that way).
     */
    @org.junit.jupiter.api.BeforeAll
    static void onlyWithCheckedGuestMemory() {
        org.junit.jupiter.api.Assumptions.assumeTrue(io.vswitch.vhost.memory.GuestMemory.CHECKED,
                "needs -Dvswitch.checkedGuestMemory=true: unchecked access to unmapped memory is a SIGSEGV");
    }

    private static final byte[] MAC_A = mac("02:00:00:00:00:0a");
    private static final byte[] MAC_B = mac("02:00:00:00:00:0b");
    private static final byte[] MAC_C = mac("02:00:00:00:00:0c");

    @TempDir
    Path dir;

    @Test
    void aQueueFaultIsLoggedAndSignalledByHousekeepingNotByTheWorker() throws Exception {
        try (LogCapture log = new LogCapture();
             Switch sw = Switch.start(ConfigLoader.parse(crossConnect(), "faults.yaml"));
             TestFrontend a = TestFrontend.connect(dir.resolve("a.sock")).setUp();
             TestFrontend b = TestFrontend.connect(dir.resolve("b.sock")).setUp()) {
            awaitLinks(sw, "a", "b");
            a.publish(TX, a.queueSize(TX));   // a head index out of range: the worker faults a's TX queue

            awaitErrorSignalled(a, TX);
            LogCapture.Line line = log.await("port a: queue a tx stopped");
            assertEquals("vswitch-housekeeping", line.thread(), "reported on a control thread, not the worker");
            assertTrue(line.message().contains(QueueFault.HEAD_OUT_OF_RANGE.description()), line.message());
            awaitCounter(sw.countersPath(), "a", "queue_faults", 1);
            assertTrue(sw.port("a").device.isBroken());
            assertNothingLoggedByAWorker(log);

            // the other direction still forwards: b's TX and a's RX are healthy
            a.postRxBuffers(4, 2048);
            byte[] f = VlanTest.frame(MAC_A, MAC_B, -1, "b to a after a's TX fault");
            b.transmit(f);
            assertArrayEquals(f, receiveOne(a));
            assertEquals(0, b.drainErrors(RX) + b.drainErrors(TX));
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"cross-connect", "learning"})
    void aSourceWhoseMemoryDisappearsUnderItsFrameIsStoppedAndTheDestinationKeepsForwarding(String mode) throws Exception {
        boolean learning = mode.equals("learning");
        try (LogCapture log = new LogCapture();
             Switch sw = Switch.start(ConfigLoader.parse(learning ? learning() : crossConnect(), "faults.yaml"));
             TestFrontend a = TestFrontend.connect(dir.resolve("a.sock")).setUp();
             TestFrontend b = TestFrontend.connect(dir.resolve("b.sock")).setUp();
             TestFrontend c = learning ? TestFrontend.connect(dir.resolve("c.sock")).setUp() : null) {
            VirtioNetDevice deviceA = sw.port("a").device;
            VirtioNetDevice deviceB = sw.port("b").device;
            // a's RAM as two regions: rings and RX buffers in the low one, the frames it sends in the high one
            long size = a.options().memorySize;
            long offset = a.options().mmapOffset;
            int fd2 = TestFrontend.dup(a.memfd());
            try {
                TestFrontend.expectOk(a.setMemTable(List.of(new Region(GUEST_PHYS_BASE, size / 2, USER_BASE, offset),
                        new Region(GUEST_PHYS_BASE + size / 2, size / 2, USER_BASE + size / 2, offset + size / 2)),
                        a.memfd(), fd2), "SET_MEM_TABLE");
            } finally {
                io.vswitch.sys.Libc.close(fd2);
            }
            a.postRxBuffers(8, 2048);
            b.postRxBuffers(8, 2048);
            if (c != null) {
                c.postRxBuffers(8, 2048);
            }
            a.allocate(size / 2);   // what a allocates from now on lies in the high region
            await(deviceA::isRunning, "a running on its new memory table");
            awaitLinks(sw, learning ? new String[] {"a", "b", "c"} : new String[] {"a", "b"});

            // the bug a grace period prevents, forced: a's high region is unmapped under its running queues
            deviceA.memory().region(1).close();
            byte[] lost = VlanTest.frame(MAC_B, MAC_A, -1, "from memory that is gone");
            a.transmit(lost);

            awaitErrorSignalled(a, TX);
            LogCapture.Line line = log.await("port a: queue a tx stopped");
            assertTrue(line.message().contains(QueueFault.MEMORY_GONE.description()), line.message());
            assertEquals("vswitch-housekeeping", line.thread());
            assertEquals(QueueFault.MEMORY_GONE, deviceA.txQueue().fault());
            assertFalse(deviceB.rxQueue().isBroken(), "the destination is not to blame: " + deviceB.rxQueue().faultDetail());
            assertFalse(deviceB.isBroken());
            assertEquals(0, b.drainErrors(RX) + b.drainErrors(TX), "b's frontend hears of no fault");
            assertTrue(b.receive().isEmpty(), "nothing of the lost frame reached b");

            // b keeps forwarding: it receives from c (learning) and sends to a, whose RX is in the healthy region
            if (c != null) {
                byte[] fromC = VlanTest.frame(MAC_B, MAC_C, -1, "c to b");
                c.transmit(fromC);
                assertArrayEquals(fromC, receiveOne(b));
                assertArrayEquals(fromC, receiveOne(a), "b's MAC is not learned yet: flooded to a too");
            }
            byte[] toA = VlanTest.frame(MAC_A, MAC_B, -1, "b to a");
            b.transmit(toA);
            assertArrayEquals(toA, receiveOne(a));
            if (c != null) {
                b.transmit(VlanTest.frame(MAC_C, MAC_B, -1, "b to c"));
                receiveOne(c);
            }
            awaitCounter(sw.countersPath(), "a", "queue_faults", 1);
            awaitCounter(sw.countersPath(), "b", "queue_faults", 0);
            assertNothingLoggedByAWorker(log);
        }
    }

    private String crossConnect() {
        return TestTopologies.crossConnect(dir);
    }

    private String learning() {
        return TestTopologies.learning(dir, "a", "b", "c");
    }

    private static void awaitLinks(Switch sw, String... ports) throws Exception {
        for (String port : ports) {
            awaitCounter(sw.countersPath(), port, "link_up", 1);
        }
    }

    private static void awaitErrorSignalled(TestFrontend fe, int queue) {
        AtomicLong errors = new AtomicLong();
        await(() -> errors.addAndGet(fe.drainErrors(queue)) > 0, "the frontend's error eventfd for queue " + queue);
        assertEquals(1, errors.get() + fe.drainErrors(queue), "signalled once");
    }

    private static void assertNothingLoggedByAWorker(LogCapture log) {
        List<LogCapture.Line> byWorkers = log.matching(l -> l.thread().startsWith("vswitch-worker"));
        assertTrue(byWorkers.isEmpty(), "a worker thread logged: " + byWorkers);
    }

    private static byte[] receiveOne(TestFrontend f) {
        List<TestFrontend.RxFrame> got = new ArrayList<>();
        await(() -> got.addAll(f.receive()) || !got.isEmpty(), "a frame arrives");
        assertEquals(1, got.size(), "exactly one frame arrived");
        return got.getFirst().data();
    }
}
