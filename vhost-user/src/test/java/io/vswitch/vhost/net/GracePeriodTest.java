package io.vswitch.vhost.net;

import io.vswitch.sys.EventFd;
import io.vswitch.vhost.memory.MemoryRegion;
import io.vswitch.protocol.VhostUserRequest;
import io.vswitch.vhost.fixtures.HeldWorker;
import io.vswitch.vhost.fixtures.PortFixture;
import io.vswitch.testing.TestFrontend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static io.vswitch.testing.TestFrontend.RX;
import static io.vswitch.testing.TestFrontend.TX;
import static io.vswitch.testing.TestFrontend.u64;
import static io.vswitch.testing.TestFrontend.vringState;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What a control thread releases while a worker is inside its data-path window: nothing. A {@link HeldWorker}
 * stays inside its window while the frontend disconnects, replaces eventfds or changes the rings; the port
 * must stop the data path, wait, and release (and reply) only once the worker has left.
 */
@Timeout(value = 30, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class GracePeriodTest {
    @TempDir
    Path dir;

    @Test
    void disconnectReleasesNothingWhileTheWorkerIsInsideItsWindow() throws Exception {
        try (PortFixture fx = new PortFixture(dir); HeldWorker worker = new HeldWorker()) {
            VirtioNetDevice device = fx.device();
            device.setQuiescence(worker.epoch());
            TestFrontend fe = fx.connectAndSetUp();
            List<EventFd> fds = new ArrayList<>();
            for (int q = 0; q < VirtioNetDevice.QUEUES; q++) {
                fds.add(device.call(q));
                fds.add(device.err(q));
                fds.add(device.kick(q));
            }
            MemoryRegion region = device.memory().region(0);

            worker.enter();
            String memName = fe.memoryName();
            fe.close();
            worker.awaitWaiters(1);   // the port's control thread is in the grace period of its reset
            assertFalse(device.isRunning(), "the data path is unpublished first");
            for (EventFd fd : fds) {
                assertFalse(fd.isClosed(), fd + " closed while the worker may still use it");
            }
            assertTrue(region.isMapped(), "guest memory unmapped while the worker may still use it");
            // what a worker inside its window may still do with them: signal the call and error eventfds
            worker.run(() -> {
                assertTrue(fds.get(0).signal(), "the old call eventfd still works");
                assertTrue(fds.get(1).signal());
            });

            worker.leave();
            fx.assertReleased(memName);
            for (EventFd fd : fds) {
                assertTrue(fd.isClosed(), fd + " released once the worker left");
            }
            assertFalse(region.isMapped());
        }
    }

    @Test
    void aReplacedErrorEventfdIsClosedOnlyAfterTheGracePeriodAndTheAckWaitsForIt() throws Exception {
        assertReplacementWaitsForTheWorker(VhostUserRequest.SET_VRING_ERR);
    }

    @Test
    void aReplacedCallEventfdIsClosedOnlyAfterTheGracePeriodAndTheAckWaitsForIt() throws Exception {
        assertReplacementWaitsForTheWorker(VhostUserRequest.SET_VRING_CALL);
    }

    private void assertReplacementWaitsForTheWorker(VhostUserRequest request) throws Exception {
        boolean call = request == VhostUserRequest.SET_VRING_CALL;
        try (EventFd replacement = EventFd.create(); PortFixture fx = new PortFixture(dir);
             HeldWorker worker = new HeldWorker()) {
            VirtioNetDevice device = fx.device();
            device.setQuiescence(worker.epoch());
            TestFrontend fe = fx.connectAndSetUp();
            EventFd old = call ? device.call(TX) : device.err(TX);

            worker.enter();
            CompletableFuture<Long> ack = CompletableFuture.supplyAsync(() -> send(fe, request, u64(TX), replacement.fd()));
            worker.awaitWaiters(1);
            EventFd installed = call ? device.call(TX) : device.err(TX);
            assertNotSame(old, installed, "the new eventfd is installed at once");
            assertFalse(old.isClosed(), "the old one stays open while the worker may still signal it");
            assertFalse(ack.isDone(), "no ack before the grace period: the frontend must not think the old one is unused");
            assertTrue(device.isRunning(), "replacing call or err does not stop the data path");
            // the worker signals what it saw before the swap; it lands in the frontend's old eventfd
            worker.run(() -> assertTrue(old.signal()));
            assertEquals(1, call ? fe.drainCalls(TX) : fe.drainErrors(TX));

            worker.leave();
            assertEquals(0, ack.get(5, TimeUnit.SECONDS), request + " acked");
            assertTrue(old.isClosed(), "closed after the grace period");
            assertFalse(installed.isClosed());
            assertTrue(installed.signal());
            assertEquals(1, replacement.drain(), "the frontend's new eventfd is the one in use");
            fx.disconnectAndAssertReleased(fe);
        }
    }

    /**
     * Messages whose handlers change the rings: each runs with the data path stopped and the worker out.
     * (ADD_MEM_REG and REM_MEM_REG leave the rings alone and keep the data path running: MemoryHotplugTest.)
     */
    enum RingChange {
        SET_MEM_TABLE, SET_VRING_ADDR, SET_VRING_KICK, SET_VRING_ENABLE_0, GET_VRING_BASE, RESET_DEVICE
    }

    @ParameterizedTest
    @EnumSource(RingChange.class)
    void aMessageThatChangesTheRingsRunsOnlyOnceTheWorkerIsOut(RingChange change) throws Exception {
        try (PortFixture fx = new PortFixture(dir); HeldWorker worker = new HeldWorker()) {
            VirtioNetDevice device = fx.device();
            device.setQuiescence(worker.epoch());
            TestFrontend fe = fx.connectAndSetUp();
            assertTrue(device.isRunning());
            MemoryRegion regionBefore = device.memory().region(device.memory().regionCount() - 1);
            int generation = device.generation();

            worker.enter();
            CompletableFuture<Long> reply = CompletableFuture.supplyAsync(() -> switch (change) {
                case SET_MEM_TABLE -> {
                    try {
                        yield fe.setMemTable();
                    } catch (IOException e) {
                        throw new java.io.UncheckedIOException(e);
                    }
                }
                case SET_VRING_ADDR -> send(fe, VhostUserRequest.SET_VRING_ADDR, vringAddr(fe, TX));
                case SET_VRING_KICK -> {
                    try {
                        yield fe.setVringKick(TX);
                    } catch (IOException e) {
                        throw new java.io.UncheckedIOException(e);
                    }
                }
                case SET_VRING_ENABLE_0 -> send(fe, VhostUserRequest.SET_VRING_ENABLE, vringState(RX, 0));
                case GET_VRING_BASE -> {
                    try {
                        yield (long) fe.getVringBase(RX);
                    } catch (IOException e) {
                        throw new java.io.UncheckedIOException(e);
                    }
                }
                case RESET_DEVICE -> {
                    try {
                        // no NEED_REPLY: the reset forgets REPLY_ACK; a round trip tells when it was handled
                        fe.sendRaw(VhostUserRequest.RESET_DEVICE.code(), io.vswitch.protocol.VhostUserMessage.VERSION, 0, new byte[0]);
                        fe.getFeatures();
                        yield 0L;
                    } catch (IOException e) {
                        throw new java.io.UncheckedIOException(e);
                    }
                }
            });
            worker.awaitWaiters(1);
            assertFalse(device.isRunning(), change + ": the data path is stopped before the handler runs");
            assertFalse(reply.isDone(), change + ": no reply while the worker may be inside the data path");
            assertSame(regionBefore, device.memory().region(device.memory().regionCount() - 1),
                    change + ": the handler has not run yet");
            assertTrue(regionBefore.isMapped());

            worker.leave();
            long answer = reply.get(5, TimeUnit.SECONDS);
            if (change != RingChange.GET_VRING_BASE) {
                assertEquals(0, answer, change + " acked");
            }
            boolean runsAgain = change == RingChange.SET_MEM_TABLE || change == RingChange.SET_VRING_ADDR
                    || change == RingChange.SET_VRING_KICK;
            assertEquals(runsAgain, device.isRunning(), change + ": running again afterwards when the rings are ready");
            if (runsAgain) {
                assertTrue(device.generation() != generation, "a new start, which the worker cannot miss");
            }
            fx.disconnectAndAssertReleased(fe);
        }
    }

    @Test
    void aMessageThatLeavesTheDataPathAloneIsAnsweredWhileTheWorkerIsInside() throws Exception {
        try (PortFixture fx = new PortFixture(dir); HeldWorker worker = new HeldWorker()) {
            VirtioNetDevice device = fx.device();
            device.setQuiescence(worker.epoch());
            TestFrontend fe = fx.connectAndSetUp();
            worker.enter();
            fe.getFeatures();
            TestFrontend.expectOk(fe.setVringNum(RX, fe.queueSize(RX)), "SET_VRING_NUM");
            TestFrontend.expectOk(fe.send(VhostUserRequest.SET_STATUS, u64(0xF)), "SET_STATUS");
            assertTrue(device.isRunning());
            assertEquals(0, worker.epoch().waiting());
            worker.leave();
            fx.disconnectAndAssertReleased(fe);
        }
    }

    private static long send(TestFrontend fe, VhostUserRequest request, byte[] payload, int... fds) {
        try {
            return fe.send(request, payload, fds);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private static byte[] vringAddr(TestFrontend fe, int q) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(40).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        b.putInt(q).putInt(0).putLong(fe.descUserAddr(q)).putLong(fe.usedUserAddr(q)).putLong(fe.availUserAddr(q)).putLong(0);
        return b.array();
    }
}
