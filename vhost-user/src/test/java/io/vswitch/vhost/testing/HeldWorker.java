package io.vswitch.vhost.testing;

import io.vswitch.vhost.net.WorkerEpoch;

import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;

/**
 * A stand-in for a switch worker that the test drives: its own thread, bound to a {@link WorkerEpoch}, that
 * enters its data-path window and stays inside until told to leave, the way a worker stuck in a long pass
 * would. Give {@link #epoch()} to a device as its quiescence to see what control threads do meanwhile.
 */
public final class HeldWorker implements AutoCloseable {
    private final WorkerEpoch epoch = new WorkerEpoch("held worker");
    private final BlockingQueue<Runnable> steps = new LinkedBlockingQueue<>();
    private final Thread thread;
    private volatile boolean done;
    private volatile Throwable failure;

    public HeldWorker(String threadName) {
        thread = Thread.ofPlatform().name(threadName).daemon(true).start(this::run);
    }

    public HeldWorker() {
        this("held-worker");
    }

    private void run() {
        epoch.bindToCurrentThread();
        try {
            while (!done) {
                steps.take().run();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (Throwable t) {
            failure = t;
        }
    }

    public WorkerEpoch epoch() {
        return epoch;
    }

    public Thread thread() {
        return thread;
    }

    /** Enters the window on the worker thread; returns once it is inside. */
    public HeldWorker enter() {
        steps.add(epoch::enter);
        PortFixture.await(epoch::isInside, "the worker entered its window");
        return this;
    }

    /** Leaves the window; returns once it is outside. */
    public HeldWorker leave() {
        steps.add(epoch::leave);
        PortFixture.await(() -> !epoch.isInside(), "the worker left its window");
        return this;
    }

    /** Runs {@code step} on the worker thread (inside the window if it is in one) and waits for it. */
    public void run(Runnable step) {
        java.util.concurrent.CompletableFuture<Void> ran = new java.util.concurrent.CompletableFuture<>();
        steps.add(() -> {
            try {
                step.run();
                ran.complete(null);
            } catch (Throwable t) {
                ran.completeExceptionally(t);
            }
        });
        ran.join();
    }

    /** Ends the thread without leaving the window (a worker thread that died inside it). */
    public void dieInside() throws InterruptedException {
        steps.add(() -> done = true);
        thread.join(5000);
    }

    /** Waits until {@code n} control threads are blocked in the epoch's grace period. */
    public void awaitWaiters(int n) {
        PortFixture.await(() -> epoch.waiting() == n, n + " control thread(s) waiting for the worker");
    }

    @Override
    public void close() throws InterruptedException {
        if (thread.isAlive()) {
            if (epoch.isInside()) {
                leave();
            }
            steps.add(() -> done = true);
            thread.join(5000);
        }
        if (failure != null) {
            throw new AssertionError("the held worker failed", failure);
        }
    }
}
