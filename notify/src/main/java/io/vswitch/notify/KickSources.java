package io.vswitch.notify;

/**
 * What a sleeping strategy needs from the worker it idles: the guests' transmit rings (and other inputs)
 * whose notifications it waits for. The worker implements it; every method runs on the worker thread, and
 * the worker brackets each one with its epoch, since they touch guests' rings.
 */
public interface KickSources {
    /** {@link #armKicks()}: something arrived meanwhile, do not sleep. */
    int PENDING = 0;
    /** {@link #armKicks()}: every input can wake a sleeper; sleep up to the strategy's maximum. */
    int SLEEP = 1;
    /** {@link #armKicks()}: some input cannot wake a sleeper (a frontend without a kick eventfd): nap briefly. */
    int NAP = 2;

    /**
     * Asks every guest to kick on its next frame, then re-checks every input: a frame made available before
     * the request would otherwise never be kicked (the lost wake-up). Returns {@link #PENDING}, {@link #SLEEP}
     * or {@link #NAP}.
     */
    int armKicks();

    /** Epoll reported the source registered with {@code data} ready: drain and count its kicks. */
    void kicked(long data);

    /** Back to polling: suppress the guests' kicks again (hybrid mode). */
    void suppressKicks();
}
