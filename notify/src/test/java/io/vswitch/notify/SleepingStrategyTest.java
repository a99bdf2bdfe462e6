package io.vswitch.notify;

import org.agrona.concurrent.UnsafeBuffer;
import org.agrona.concurrent.status.AtomicCounter;
import org.junit.jupiter.api.Test;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SleepingStrategyTest {
    private final UnsafeBuffer values = new UnsafeBuffer(new byte[1024]);
    private final AtomicCounter sleeps = new AtomicCounter(values, 0);
    private final AtomicCounter wakeups = new AtomicCounter(values, 2);

    /** A worker with nothing but counters: what armKicks answers, and how often each call came. */
    static final class FakeSources implements KickSources {
        volatile int answer = SLEEP;
        final AtomicInteger armed = new AtomicInteger();
        final AtomicInteger suppressed = new AtomicInteger();

        @Override
        public int armKicks() {
            armed.incrementAndGet();
            return answer;
        }

        @Override
        public void kicked(long data) {
        }

        @Override
        public void suppressKicks() {
            suppressed.incrementAndGet();
        }
    }

    @Test
    void pendingWorkIsNeverSleptOn() {
        FakeSources sources = new FakeSources();
        sources.answer = KickSources.PENDING;
        try (SleepingStrategy s = SleepingStrategy.interrupt(60_000, sleeps, wakeups)) {
            s.bind(sources);
            s.idle(0);   // would hang for a minute if it slept
            assertEquals(1, sources.armed.get());
            assertEquals(0, sleeps.get(), "the lost-wake-up re-check found work: no sleep");
            assertEquals(0, sources.suppressed.get(), "interrupt mode keeps kicks on");
            assertTrue(s.kicksWhilePolling());
        }
    }

    @Test
    void wakeFromAnotherThreadEndsASleep() throws Exception {
        FakeSources sources = new FakeSources();
        try (SleepingStrategy s = SleepingStrategy.interrupt(60_000, sleeps, wakeups)) {
            s.bind(sources);
            CompletableFuture<Void> sleeper = CompletableFuture.runAsync(() -> s.idle(0));
            while (sleeps.get() == 0) {
                Thread.onSpinWait();   // the sleeper counts its sleep just before epoll_wait
            }
            // wake() may come before epoll_wait itself: the eventfd stays readable, so the sleep ends at once
            s.wake();
            sleeper.get(10, TimeUnit.SECONDS);
            assertEquals(1, wakeups.get());
        }
    }

    @Test
    void stopSleepingEndsASleepAndNoneFollows() throws Exception {
        FakeSources sources = new FakeSources();
        try (SleepingStrategy s = SleepingStrategy.interrupt(60_000, sleeps, wakeups)) {
            s.bind(sources);
            CompletableFuture<Void> sleeper = CompletableFuture.runAsync(() -> s.idle(0));
            while (sleeps.get() == 0) {
                Thread.onSpinWait();
            }
            s.stopSleeping();   // what Switch.close does before it stops the runner
            sleeper.get(10, TimeUnit.SECONDS);
            int armed = sources.armed.get();
            for (int i = 0; i < 3; i++) {
                s.idle(0);   // would hang for a minute if it slept
            }
            assertEquals(1, sleeps.get(), "no sleep after stopSleeping");
            assertEquals(armed, sources.armed.get(), "kicks are not armed again once stopping");
        }
    }

    @Test
    void hybridPollsQuietlyThenSleepsAndSuppressesKicksAgain() {
        FakeSources sources = new FakeSources();
        sources.answer = KickSources.NAP;   // a 1 ms nap, so the test needs no waker
        try (SleepingStrategy s = SleepingStrategy.hybrid(5, 60_000, sleeps, wakeups)) {
            s.bind(sources);
            assertFalse(s.kicksWhilePolling());
            for (int i = 0; i < 4; i++) {
                s.idle(0);
            }
            assertEquals(0, sources.armed.get(), "4 quiet polls of 5: still polling");
            s.idle(0);
            assertEquals(1, sources.armed.get(), "the 5th quiet poll sleeps");
            assertEquals(1, sleeps.get());
            assertEquals(1, sources.suppressed.get(), "back to polling without kicks");
            s.idle(3);   // work resets the quiet count
            for (int i = 0; i < 4; i++) {
                s.idle(0);
            }
            assertEquals(1, sources.armed.get());
        }
    }
}
