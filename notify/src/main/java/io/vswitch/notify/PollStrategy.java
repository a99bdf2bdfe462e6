package io.vswitch.notify;

/** Busy polling: spin with PAUSE between passes; guests never kick. Lowest latency, one core per worker. */
public final class PollStrategy extends NotifyStrategy {
    /** PAUSEs after a pass that found nothing (experiment: fewer polls of lines the guest is writing). */
    private static final int IDLE_SPINS = Integer.getInteger("vswitch.pollIdleSpins", 1);

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
            for (int i = 0; i < IDLE_SPINS; i++) {
                Thread.onSpinWait();
            }
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
