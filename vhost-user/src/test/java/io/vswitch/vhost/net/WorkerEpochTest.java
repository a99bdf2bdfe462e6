package io.vswitch.vhost.net;

import io.vswitch.vhost.fixtures.HeldWorker;
import io.vswitch.testing.LogCapture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.logging.Level;

import static io.vswitch.vhost.fixtures.PortFixture.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The grace period a control thread waits for before it frees what a worker may use: it never gives up on a
 * worker that is still inside its data-path window, and ends only when the worker leaves it or is gone.
 */
@Timeout(value = 20, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class WorkerEpochTest {

    @Test
    void awaitReturnsAtOnceWhenTheWorkerIsOutsideItsWindow() throws Exception {
        try (HeldWorker worker = new HeldWorker()) {
            worker.epoch().await();
            worker.enter().leave();
            worker.epoch().await();
            assertEquals(0, worker.epoch().waiting());
        }
    }

    @Test
    void aWorkerInsideItsWindowForMoreThanASecondIsWaitedForWithAWarningNotAbandoned() throws Exception {
        try (LogCapture log = new LogCapture(); HeldWorker worker = new HeldWorker()) {
            worker.enter();
            long start = System.nanoTime();
            CompletableFuture<Long> waited = CompletableFuture.supplyAsync(() -> {
                worker.epoch().await();
                return System.nanoTime();
            }, r -> Thread.ofPlatform().name("control").start(r));
            worker.awaitWaiters(1);

            LogCapture.Line warning = log.await("has not left its data-path window");
            assertTrue(System.nanoTime() - start >= WorkerEpoch.WARN_AFTER_NANOS, "warned after a second, not before");
            assertEquals(Level.WARNING, warning.level());
            assertEquals("control", warning.thread(), "the waiting control thread warns, not the worker");
            assertTrue(warning.message().contains("held worker"), warning.message());
            assertFalse(waited.isDone(), "still waiting after the warning: no timeout, no exception");
            assertEquals(1, worker.epoch().waiting());

            long left = System.nanoTime();
            worker.leave();
            long returned = waited.get(5, TimeUnit.SECONDS);
            assertTrue(returned >= left, "returned only once the worker left its window");
            log.await("left its data-path window after");
            assertEquals(0, worker.epoch().waiting());
        }
    }

    @Test
    void theWorkerIsRecognisedByIdentityNotByName() throws Exception {
        // a control thread that happens to carry the worker's name must still wait; the worker itself must not
        try (HeldWorker worker = new HeldWorker("vswitch-worker-0")) {
            worker.enter();
            AtomicBoolean returned = new AtomicBoolean();
            Thread namesake = Thread.ofPlatform().name("vswitch-worker-0").start(() -> {
                worker.epoch().await();
                returned.set(true);
            });
            worker.awaitWaiters(1);
            assertFalse(returned.get());
            worker.run(() -> worker.epoch().await());   // on the worker thread, inside its own window: no deadlock
            assertTrue(worker.epoch().isInside());
            worker.leave();
            namesake.join(5000);
            assertTrue(returned.get());
        }
    }

    @Test
    void aWorkerThreadThatEndsInsideItsWindowReleasesTheWaiters() throws Exception {
        HeldWorker worker = new HeldWorker();
        worker.enter();
        CompletableFuture<Void> waited = CompletableFuture.runAsync(() -> worker.epoch().await(),
                r -> Thread.ofPlatform().start(r));
        worker.awaitWaiters(1);
        assertFalse(waited.isDone());
        worker.dieInside();
        waited.get(5, TimeUnit.SECONDS);
        assertTrue(worker.epoch().isInside(), "the epoch is still odd: the waiter went because the thread is gone");
        assertTrue(worker.epoch().isStopped());
        worker.epoch().await();   // and later grace periods do not wait either
        worker.close();
    }

    @Test
    void markStoppedReleasesTheWaiters() throws Exception {
        try (HeldWorker worker = new HeldWorker()) {
            worker.enter();
            CompletableFuture<Void> waited = CompletableFuture.runAsync(() -> worker.epoch().await(),
                    r -> Thread.ofPlatform().start(r));
            worker.awaitWaiters(1);
            worker.epoch().markStopped();
            waited.get(5, TimeUnit.SECONDS);
        }
    }

    @Test
    void anInterruptDoesNotCutTheGracePeriodShortButIsKeptForTheCaller() throws Exception {
        try (HeldWorker worker = new HeldWorker()) {
            worker.enter();
            AtomicBoolean returned = new AtomicBoolean();
            AtomicBoolean interruptedAfter = new AtomicBoolean();
            Thread control = Thread.ofPlatform().start(() -> {
                worker.epoch().await();
                returned.set(true);
                interruptedAfter.set(Thread.currentThread().isInterrupted());
            });
            worker.awaitWaiters(1);
            control.interrupt();
            // the wait loop takes the interrupt (clearing the flag) and goes on waiting
            await(() -> !control.isInterrupted(), "the waiter saw the interrupt");
            assertFalse(returned.get(), "an interrupt does not end the grace period");
            assertEquals(1, worker.epoch().waiting());
            worker.leave();
            control.join(5000);
            assertTrue(returned.get());
            assertTrue(interruptedAfter.get(), "the interrupt is handed back to the caller");
        }
    }
}
