package io.vswitch.notify;

import org.agrona.concurrent.BackoffIdleStrategy;

/**
 * The software MWAIT: watch the rings' indices with PAUSE, then yield, then park for at most 100 µs; guests
 * never kick. Java cannot issue MONITOR/MWAIT (or UMWAIT) itself, so the backoff bounds the cost of a miss.
 */
public final class MonitorStrategy extends NotifyStrategy {
    static final long MAX_SPINS = 200;
    static final long MAX_YIELDS = 50;
    static final long MIN_PARK_NANOS = 1_000;
    static final long MAX_PARK_NANOS = 100_000;

    private final BackoffIdleStrategy backoff = new BackoffIdleStrategy(MAX_SPINS, MAX_YIELDS, MIN_PARK_NANOS, MAX_PARK_NANOS);

    @Override
    public String name() {
        return "monitor";
    }

    @Override
    public boolean kicksWhilePolling() {
        return false;
    }

    @Override
    public void idle(int workCount) {
        backoff.idle(workCount);
    }

    @Override
    public void idle() {
        backoff.idle();
    }

    @Override
    public void reset() {
        backoff.reset();
    }
}
