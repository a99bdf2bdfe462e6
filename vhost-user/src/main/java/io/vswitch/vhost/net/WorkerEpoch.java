package io.vswitch.vhost.net;

import java.lang.System.Logger.Level;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * One worker thread's epoch, the worker's half of an RCU-style grace period: odd while the worker is inside a
 * window in which it may touch devices' rings, guest memory and eventfds, even between windows (between
 * passes, asleep in epoll_wait). {@link #await()} is the control threads' half: it returns once the worker
 * cannot still be using anything a control thread unpublished before the call.
 *
 * <p>A grace period is never abandoned. What a control thread frees after it (guest memory, eventfds) may be
 * in the worker's hands until the worker leaves its window, so giving up after a timeout would only turn a
 * slow worker into a use-after-free: a write into a descriptor number the kernel has handed out again, or an
 * access to unmapped memory. {@code await()} therefore waits for as long as it takes, saying so loudly
 * (a WARNING after {@link #WARN_AFTER_NANOS}, then every {@link #WARN_EVERY_NANOS}), and ends early only when
 * the worker is really gone: it {@link #markStopped stopped} for good or its thread terminated.
 *
 * <p>Memory ordering. {@link #enter} is a volatile store: it must not be reordered with the worker's later
 * loads of what control threads publish (a device's {@code running} flag), so that of "control thread
 * unpublishes, then reads the epoch" and "worker enters, then reads the flag" at least one side sees the
 * other (Dekker). {@link #leave} only needs release semantics: every access of the window happens before a
 * control thread that reads the new, even epoch with acquire semantics. Only the worker writes the epoch,
 * so it reads its own copy plainly.
 */
public final class WorkerEpoch implements Quiescence {
    /** How long a grace period may take before {@link #await()} logs a WARNING (and keeps waiting). */
    public static final long WARN_AFTER_NANOS = TimeUnit.SECONDS.toNanos(1);
    /** How often it repeats the WARNING while it still waits. */
    public static final long WARN_EVERY_NANOS = TimeUnit.SECONDS.toNanos(5);

    private static final System.Logger LOG = System.getLogger("vswitch.vhost");
    private static final VarHandle EPOCH;
    /** Busy-waits first: a window is a pass over the worker's ports, microseconds. */
    private static final int SPINS = 2_000;
    private static final int YIELDS = 100;
    private static final long PARK_NANOS = TimeUnit.MICROSECONDS.toNanos(50);

    static {
        try {
            EPOCH = MethodHandles.lookup().findVarHandle(WorkerEpoch.class, "epoch", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final String name;
    /** Odd inside a window; written by the worker only. */
    @SuppressWarnings("unused")
    private long epoch;
    private volatile Thread owner;
    private volatile boolean stopped;
    /** Control threads inside {@link #await()} that found the worker in a window: for diagnostics and tests. */
    private final AtomicInteger waiting = new AtomicInteger();

    /** {@code name} names the worker in log lines, e.g. "worker 0". */
    public WorkerEpoch(String name) {
        this.name = name;
    }

    public String name() {
        return name;
    }

    // ---------------------------------------------------------------- the worker

    /**
     * Records the calling thread as the worker (once, on that thread, before its first window: Agrona's
     * {@code onStart}). {@link #await()} on the worker itself then returns at once instead of waiting for
     * itself forever, and {@code await()} stops waiting should that thread ever terminate inside a window.
     */
    public void bindToCurrentThread() {
        owner = Thread.currentThread();
    }

    /** True when called on the thread bound with {@link #bindToCurrentThread()}: an identity check, not a name. */
    public boolean isWorkerThread() {
        return Thread.currentThread() == owner;
    }

    /** Opens a window (epoch becomes odd). Volatile store: see the class comment. */
    public void enter() {
        EPOCH.setVolatile(this, lpEpoch() + 1);
    }

    /** Closes the window (epoch becomes even). Release store: see the class comment. */
    public void leave() {
        EPOCH.setRelease(this, lpEpoch() + 1);
    }

    /** The worker's last word (Agrona's {@code onClose}): no window opens again, waiters may go. */
    public void markStopped() {
        stopped = true;
    }

    /** Plain load: only the worker writes the epoch, so it always sees its own latest value. */
    private long lpEpoch() {
        return epoch;
    }

    // ---------------------------------------------------------------- control threads

    /** Acquire-or-stronger load, pairing with {@link #enter} and {@link #leave}. */
    private long lvEpoch() {
        return (long) EPOCH.getVolatile(this);
    }

    /** True while the worker is inside a window. */
    public boolean isInside() {
        return (lvEpoch() & 1) != 0;
    }

    /** True once the worker can open no window again: it stopped, or its thread terminated. */
    public boolean isStopped() {
        if (stopped) {
            return true;
        }
        Thread t = owner;
        return t != null && !t.isAlive();
    }

    /** How many control threads are waiting in {@link #await()} right now. */
    public int waiting() {
        return waiting.get();
    }

    /**
     * Returns once the worker cannot be using anything unpublished before the call: it was outside a window,
     * or it has left the window it was in, or it stopped for good. Never gives up (see the class comment);
     * an interrupt does not end the wait either, it is kept for the caller. On the worker thread itself it
     * returns at once: the worker's own later steps are ordered after the caller's anyway.
     */
    @Override
    public void await() {
        final long seen = lvEpoch();
        if ((seen & 1) == 0 || isWorkerThread()) {
            return;
        }
        waiting.incrementAndGet();
        try {
            waitWhileInside(seen);
        } finally {
            waiting.decrementAndGet();
        }
    }

    private void waitWhileInside(long seen) {
        final long start = System.nanoTime();
        long warnAt = start + WARN_AFTER_NANOS;
        boolean warned = false;
        boolean interrupted = false;
        int idles = 0;
        while (lvEpoch() == seen && !isStopped()) {
            if (idles < SPINS) {
                Thread.onSpinWait();
            } else if (idles < SPINS + YIELDS) {
                Thread.yield();
            } else {
                long now = System.nanoTime();
                if (now - warnAt >= 0) {
                    warned = true;
                    warnAt = now + WARN_EVERY_NANOS;
                    LOG.log(Level.WARNING, "{0} has not left its data-path window for {1} ms; {2} keeps waiting "
                            + "for it before releasing what it may still use", name, millisSince(start),
                            Thread.currentThread().getName());
                }
                LockSupport.parkNanos(PARK_NANOS);
                // a grace period cannot be cut short: remember the interrupt for the caller, and go on waiting
                interrupted |= Thread.interrupted();
            }
            idles++;
        }
        if (warned) {
            LOG.log(Level.WARNING, "{0} {1} after {2} ms; {3} goes on", name,
                    lvEpoch() == seen ? "stopped" : "left its data-path window", millisSince(start),
                    Thread.currentThread().getName());
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    private static long millisSince(long start) {
        return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
    }

    @Override
    public String toString() {
        return name + (isInside() ? " (inside a window)" : "");
    }
}
