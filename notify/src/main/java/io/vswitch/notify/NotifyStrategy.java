package io.vswitch.notify;

import io.vswitch.sys.Epoll;
import org.agrona.concurrent.IdleStrategy;

/**
 * How a worker waits when a pass found nothing to do, and whether guests kick it: the notification mode in
 * action. A worker is given one strategy, idles with it as an Agrona {@link IdleStrategy}, registers the
 * eventfds that can wake it in {@link #epoll()}, and is woken by other threads through {@link #wake()}.
 *
 * <pre>
 *   mode       guests kick?          idle step                          CPU idle   latency
 *   poll       never                 spin (PAUSE)                       100 %      lowest
 *   monitor    never                 PAUSE, yield, park up to 100 µs    low        + park
 *   interrupt  always                sleep in epoll_wait on the kicks   ~0         + wake-up
 *   hybrid     only before a sleep   N quiet polls, then as interrupt   ~0         poll under load
 * </pre>
 */
public abstract sealed class NotifyStrategy implements IdleStrategy, AutoCloseable
        permits PollStrategy, MonitorStrategy, SleepingStrategy {

    /** The mode's name, as the topology and the counters spell it. */
    public abstract String name();

    /** Whether guests should kick while the worker polls (only interrupt mode sleeps after every idle pass). */
    public abstract boolean kicksWhilePolling();

    /** The epoll set the worker registers kick and socket fds in, or null when this strategy never sleeps. */
    public Epoll epoll() {
        return null;
    }

    /** Wakes the worker if it sleeps; any thread. A no-op for strategies that never sleep. */
    public void wake() {
    }

    /**
     * The worker is about to be stopped: wake it if it sleeps and never let it sleep again, so that its runner
     * sees the stop within a pass instead of after the longest sleep. Any thread; called before the runner is
     * closed, while the strategy is still open. A no-op for strategies that never sleep for long.
     */
    public void stopSleeping() {
    }

    /** Releases the epoll set and eventfd, on the worker thread when it stops. */
    @Override
    public void close() {
    }
}
