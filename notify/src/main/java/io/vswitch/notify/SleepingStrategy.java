package io.vswitch.notify;

import io.vswitch.sys.Epoll;
import io.vswitch.sys.EventFd;
import org.agrona.concurrent.status.AtomicCounter;

import java.lang.invoke.VarHandle;

/**
 * Interrupt and hybrid modes: the worker sleeps in {@code epoll_wait} on its guests' kick eventfds, its
 * uplinks' sockets and its own wake-up eventfd. Interrupt mode sleeps after every idle pass with kicks always
 * on; hybrid mode polls {@code quietPolls} idle passes first with kicks suppressed, and asks for kicks only
 * just before it sleeps (NAPI-style), so under load the guests never pay for a kick.
 *
 * <p>Before sleeping, {@link KickSources#armKicks()} asks for kicks and re-checks every ring, so a frame made
 * available just before the request cannot be missed; a sleep is also bounded by {@code maxSleepMillis}, so a
 * missed wake-up would cost latency, never a hang.
 */
public final class SleepingStrategy extends NotifyStrategy {
    /** The epoll data of the worker's own wake-up eventfd; kick sources use small non-negative values. */
    public static final long WAKEUP_DATA = Long.MAX_VALUE;
    public static final int DEFAULT_MAX_SLEEP_MILLIS = 200;
    /** A nap, when some input cannot wake us (a frontend that gave no kick eventfd). */
    static final int NAP_MILLIS = 1;

    private final boolean hybrid;
    private final int quietPolls;
    private final int maxSleepMillis;
    private final Epoll epoll;
    private final EventFd wakeup;
    /** Set once by {@link #stopSleeping}: from then on an idle pass re-polls instead of sleeping. */
    private volatile boolean stopping;
    private final AtomicCounter sleeps;
    private final AtomicCounter wakeups;
    private KickSources sources;
    private volatile boolean sleeping;
    private int quiet;

    private SleepingStrategy(boolean hybrid, int quietPolls, int maxSleepMillis, AtomicCounter sleeps, AtomicCounter wakeups) {
        this.hybrid = hybrid;
        this.quietPolls = Math.max(1, quietPolls);
        this.maxSleepMillis = maxSleepMillis;
        this.sleeps = sleeps;
        this.wakeups = wakeups;
        this.epoll = Epoll.create(64);
        EventFd fd = null;
        try {
            fd = EventFd.create();
            epoll.add(fd.fd(), Epoll.EPOLLIN | Epoll.EPOLLET, WAKEUP_DATA);
        } catch (RuntimeException e) {
            if (fd != null) {
                fd.close();
            }
            epoll.close();
            throw e;
        }
        this.wakeup = fd;
    }

    /** Interrupt mode: kicks always on, sleep after every idle pass. */
    public static SleepingStrategy interrupt(int maxSleepMillis, AtomicCounter sleeps, AtomicCounter wakeups) {
        return new SleepingStrategy(false, 1, maxSleepMillis, sleeps, wakeups);
    }

    /** Hybrid mode: {@code quietPolls} idle passes with kicks suppressed, then as interrupt. */
    public static SleepingStrategy hybrid(int quietPolls, int maxSleepMillis, AtomicCounter sleeps, AtomicCounter wakeups) {
        return new SleepingStrategy(true, quietPolls, maxSleepMillis, sleeps, wakeups);
    }

    /** The worker whose inputs this strategy arms and drains; set once, before the worker runs. */
    public void bind(KickSources sources) {
        this.sources = sources;
    }

    @Override
    public String name() {
        return hybrid ? "hybrid" : "interrupt";
    }

    @Override
    public boolean kicksWhilePolling() {
        return !hybrid;
    }

    @Override
    public Epoll epoll() {
        return epoll;
    }

    @Override
    public void wake() {
        VarHandle.fullFence();   // our caller's work (a queued command, a frame on a ring) before the read of sleeping
        if (sleeping) {
            wakeup.signal();
        }
    }

    @Override
    public void stopSleeping() {
        stopping = true;
        wake();
    }

    @Override
    public void idle(int workCount) {
        if (workCount > 0) {
            quiet = 0;
            return;
        }
        if (hybrid && ++quiet < quietPolls) {
            Thread.onSpinWait();
            return;
        }
        quiet = 0;
        sleepUntilKicked();
    }

    @Override
    public void idle() {
        idle(0);
    }

    @Override
    public void reset() {
        quiet = 0;
    }

    private void sleepUntilKicked() {
        sleeping = true;
        VarHandle.fullFence();   // sleeping before the re-check, as wake() fences its work before reading it
        int state = stopping ? KickSources.PENDING : sources.armKicks();
        if (state != KickSources.PENDING) {
            sleeps.incrementRelease();
            int ready = epoll.await(state == KickSources.NAP ? NAP_MILLIS : maxSleepMillis);
            for (int i = 0; i < ready; i++) {
                long data = epoll.data(i);
                if (data == WAKEUP_DATA) {
                    wakeup.drain();
                } else {
                    sources.kicked(data);
                }
            }
            wakeups.incrementRelease();
        }
        sleeping = false;
        if (hybrid) {
            sources.suppressKicks();
        }
    }

    @Override
    public void close() {
        epoll.close();
        wakeup.close();
    }
}
