package io.vswitch.vhost.net;

import io.vswitch.vhost.fixtures.HeldWorker;
import io.vswitch.testing.LogCapture;
import io.vswitch.vhost.fixtures.PortFixture;
import io.vswitch.testing.TestFrontend;
import io.vswitch.vhost.virtio.PacketBatch;
import io.vswitch.vhost.virtio.QueueFault;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static io.vswitch.testing.TestFrontend.RX;
import static io.vswitch.testing.TestFrontend.TX;
import static io.vswitch.testing.TestFrontend.expectOk;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The worker's side of trouble is a flag: {@link VirtioNetDevice#raiseQueueFault()} and {@link
 * VirtioNetDevice#raiseBroken} change nothing a control thread owns, log nothing and signal nothing; {@link
 * VirtioNetDevice#handleRaised()}, on a control thread, does all of that.
 */
@Timeout(value = 20, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class RaisedFaultsTest {
    @TempDir
    Path dir;

    @Test
    void aQueueFaultRaisedOnTheWorkerIsLoggedAndSignalledOnTheControlThread() throws Exception {
        try (LogCapture log = new LogCapture(); PortFixture fx = new PortFixture(dir); HeldWorker worker = new HeldWorker()) {
            VirtioNetDevice device = fx.device();
            device.setQuiescence(worker.epoch());
            TestFrontend fe = fx.connectAndSetUp();
            fe.publish(TX, fe.queueSize(TX));   // head out of range
            worker.enter();
            worker.run(() -> {
                assertEquals(0, device.txQueue().dequeueBurst(new PacketBatch(4)));
                device.raiseQueueFault();
            });
            worker.leave();
            assertEquals(QueueFault.HEAD_OUT_OF_RANGE, device.txQueue().fault());
            assertTrue(device.hasRaised());
            assertEquals(0, fe.drainErrors(TX), "the worker signals nothing");
            assertTrue(log.matching(l -> l.message().contains("stopped")).isEmpty(), "and logs nothing");

            device.handleRaised();
            assertFalse(device.hasRaised());
            assertEquals(1, fe.drainErrors(TX), "the control thread tells the frontend");
            LogCapture.Line line = log.await("queue p0 tx stopped");
            assertEquals(Thread.currentThread().getName(), line.thread());
            assertNotEquals(worker.thread().getName(), line.thread());
            device.handleRaised();
            assertEquals(0, fe.drainErrors(TX), "once");
            fx.disconnectAndAssertReleased(fe);
        }
    }

    @Test
    void aDeviceTheWorkerCannotServeIsStoppedByTheControlThread() throws Exception {
        try (LogCapture log = new LogCapture(); PortFixture fx = new PortFixture(dir); HeldWorker worker = new HeldWorker()) {
            VirtioNetDevice device = fx.device();
            device.setQuiescence(worker.epoch());
            TestFrontend fe = fx.connectAndSetUp();
            worker.enter();
            worker.run(() -> device.raiseBroken("cannot watch the kick eventfd: test"));
            assertTrue(device.isRunning(), "raising does not stop the device from the worker thread");
            assertFalse(device.isBroken());
            worker.leave();

            device.handleRaised();
            assertFalse(device.isRunning());
            assertTrue(device.isBroken());
            LogCapture.Line line = log.await("device stopped: cannot watch the kick eventfd: test");
            assertEquals(Thread.currentThread().getName(), line.thread());
            fx.disconnectAndAssertReleased(fe);
        }
    }

    @Test
    void whatWasRaisedAboutAnEarlierStartIsNotHeldAgainstTheNextOne() throws Exception {
        try (PortFixture fx = new PortFixture(dir); HeldWorker worker = new HeldWorker()) {
            VirtioNetDevice device = fx.device();
            device.setQuiescence(worker.epoch());
            TestFrontend fe = fx.connectAndSetUp();
            worker.run(() -> device.raiseBroken("about the first start"));
            // the frontend restarts the rings before the control side got round to it
            expectOk(fe.setVringEnable(RX, false), "SET_VRING_ENABLE 0");
            expectOk(fe.setVringEnable(RX, true), "SET_VRING_ENABLE 1");
            assertTrue(device.isRunning());
            device.handleRaised();
            assertTrue(device.isRunning(), "the new start is not stopped for what was wrong with the old one");
            assertFalse(device.isBroken());
            fx.disconnectAndAssertReleased(fe);
        }
    }
}
