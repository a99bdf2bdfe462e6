package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.testing.TestFrontend;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.locks.LockSupport;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Races guest kicks against the worker's switches between polling and sleeping. One frame at a time goes
 * from frontend A through the switch to frontend B, with random pauses so that frames arrive just before,
 * during and after the worker arms kicks and goes to sleep. The worker's sleep is capped at 30 s here, so
 * a single lost wake-up shows as a frame that does not arrive within 5 s.
 */
class LostWakeupStressTest {
    private static final int FRAMES = Integer.getInteger("vswitch.test.wakeupFrames", 20_000);

    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0}, event index {1}")
    @CsvSource({"interrupt, false", "interrupt, true", "hybrid, false", "hybrid, true"})
    void everyFrameArrivesPromptlyWhileTheWorkerSleepsAndWakes(String mode, boolean eventIdx) throws Exception {
        String yaml = TestTopologies.crossConnect(dir, "notify: " + mode, "hybrid-quiet-polls: 3");
        System.setProperty("vswitch.maxSleepMillis", "30000");
        try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "wakeup.yaml"));
             TestFrontend a = TestFrontend.connect(dir.resolve("a.sock"), new TestFrontend.Options().eventIdx(eventIdx)).setUp();
             TestFrontend b = TestFrontend.connect(dir.resolve("b.sock"), new TestFrontend.Options().eventIdx(eventIdx)).setUp()) {
            System.clearProperty("vswitch.maxSleepMillis");
            b.postRxBuffers(64, 2048);
            QemuGuestsTest.awaitCounter(sw.countersPath(), "a", "link_up", 1);
            QemuGuestsTest.awaitCounter(sw.countersPath(), "b", "link_up", 1);
            ThreadLocalRandom random = ThreadLocalRandom.current();
            long worst = 0;
            byte[] frame = new byte[64];
            for (int i = 0; i < FRAMES; i++) {
                Arrays.fill(frame, (byte) i);
                frame[0] = (byte) 0xff;    // broadcast-looking, irrelevant in cross-connect
                long start = System.nanoTime();
                a.transmit(frame);
                List<TestFrontend.RxFrame> got;
                while ((got = b.receive()).isEmpty()) {
                    if (System.nanoTime() - start > 5_000_000_000L) {
                        throw new AssertionError("frame " + i + " of " + FRAMES + " (" + mode + ", event index " + eventIdx
                                + ") did not arrive within 5 s: a wake-up was lost");
                    }
                    Thread.onSpinWait();
                }
                worst = Math.max(worst, System.nanoTime() - start);
                assertEquals(1, got.size());
                assertArrayEquals(frame, got.getFirst().data());
                b.postRxBuffers(1, 2048);
                a.txCompleted();
                // pause for 0..200 µs: sometimes the worker is still polling, sometimes arming, sometimes asleep
                int pause = random.nextInt(4);
                if (pause == 1) {
                    Thread.onSpinWait();
                } else if (pause == 2) {
                    LockSupport.parkNanos(random.nextInt(200_000));
                } else if (pause == 3) {
                    Thread.yield();
                }
            }
            CountersFile.Snapshot snap = CountersFile.read(sw.countersPath());
            long sleeps = NotifyModesTest.worker(snap, "sleeps");
            System.out.printf("%s, event index %b: %d frames, worst %.1f ms, %d sleeps, %d kicks%n", mode, eventIdx, FRAMES,
                    worst / 1e6, sleeps, TestPmdForwardingTest.value(snap, "a", "kicks"));
            assertTrue(sleeps > FRAMES / 20, "the worker really went to sleep between frames: " + sleeps);
            assertEquals(FRAMES, TestPmdForwardingTest.value(snap, "b", "tx_packets"));
        } finally {
            System.clearProperty("vswitch.maxSleepMillis");
        }
    }
}
