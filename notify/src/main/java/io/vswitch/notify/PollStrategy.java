package io.vswitch.notify;

/** Busy polling: spin with PAUSE between passes; guests never kick. Lowest latency, one core per worker. */
public final class PollStrategy extends NotifyStrategy {
    @Override
    public String name() {
        return "poll";
    }

    @Override
    public boolean kicksWhilePolling() {
        return false;
    }

    @Override
    public void idle(int workCount) {
        if (workCount <= 0) {
            Thread.onSpinWait();
        }
    }

    @Override
    public void idle() {
        Thread.onSpinWait();
    }

    @Override
    public void reset() {
    }
}
