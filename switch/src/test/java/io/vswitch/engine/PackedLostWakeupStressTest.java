package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.testing.PackedDriver;
import io.vswitch.testing.TestFrontend;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.locks.LockSupport;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link LostWakeupStressTest} on packed rings: bursts of 1-4 frames from frontend A to frontend B through a
 * worker that sleeps and wakes, with random pauses, so that descriptors are made available just before, during
 * and after the worker asks for kicks (with EVENT_IDX a descriptor event naming the slot it reads next, else
 * ENABLE). A lost wake-up shows as a burst that does not arrive within 5 s (the worker's sleep is capped at
 * 10 s). Prints the kicks per frame: with the descriptor event a driver kicks once per request, not once per
 * burst.
 */
class PackedLostWakeupStressTest {
    private static final int FRAMES = Integer.getInteger("vswitch.test.wakeupFrames", 20_000);

    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0}, event index {1}")
    @CsvSource({"interrupt, false", "interrupt, true", "hybrid, false", "hybrid, true"})
    void everyBurstArrivesWhileTheWorkerSleepsAndWakes(String mode, boolean eventIdx) throws Exception {
        String yaml = TestTopologies.crossConnect(dir, "notify: " + mode, "hybrid-quiet-polls: 3");
        // 10 s, not LostWakeupStressTest's 30: a lost wake-up still shows (the burst waits for the cap, over the
        // 5 s bound), and Switch.close, which does not wake a sleeping worker, waits for the cap once per case
        System.setProperty("vswitch.maxSleepMillis", "10000");
        TestFrontend.Options options = new TestFrontend.Options().packed(true).eventIdx(eventIdx);
        try (Switch sw = Switch.start(ConfigLoader.parse(yaml, "packed-wakeup.yaml"));
             TestFrontend a = TestFrontend.connect(dir.resolve("a.sock"), options).setUp();
             TestFrontend b = TestFrontend.connect(dir.resolve("b.sock"), options).setUp()) {
            System.clearProperty("vswitch.maxSleepMillis");
            PackedDriver txDriver = new PackedDriver(a);
            PackedDriver rxDriver = new PackedDriver(b);
            rxDriver.postRxBuffers(64, 2048);
            QemuGuestsTest.awaitCounter(sw.countersPath(), "a", "link_up", 1);
            QemuGuestsTest.awaitCounter(sw.countersPath(), "b", "link_up", 1);
            assertTrue(sw.port("a").device.txQueue().isPacked());
            ThreadLocalRandom random = ThreadLocalRandom.current();
            int sent = 0;
            while (sent < FRAMES) {
                int burst = Math.min(FRAMES - sent, 1 + random.nextInt(4));
                List<byte[]> frames = new ArrayList<>();
                for (int i = 0; i < burst; i++) {
                    byte[] frame = new byte[64];
                    Arrays.fill(frame, (byte) (sent + i));
                    frame[0] = (byte) 0xff;
                    frames.add(frame);
                    txDriver.transmit(frame);
                }
                long start = System.nanoTime();
                List<TestFrontend.RxFrame> got = new ArrayList<>();
                while (got.size() < burst) {
                    got.addAll(rxDriver.receive());
                    if (System.nanoTime() - start > 5_000_000_000L) {
                        throw new AssertionError("frames " + sent + ".." + (sent + burst - 1) + " of " + FRAMES + " (" + mode
                                + ", event index " + eventIdx + "): " + got.size() + " arrived within 5 s: a wake-up was lost");
                    }
                    Thread.onSpinWait();
                }
                for (int i = 0; i < burst; i++) {
                    assertArrayEquals(frames.get(i), got.get(i).data());
                }
                rxDriver.postRxBuffers(burst, 2048);
                txDriver.txCompleted();
                sent += burst;
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
            long kicks = TestPmdForwardingTest.value(snap, "a", "kicks");
            System.out.printf("packed, %s, event index %b: %d frames, %d sleeps, %d kicks received (%d sent), %.3f kicks per frame%n",
                    mode, eventIdx, FRAMES, sleeps, kicks, txDriver.kicksSent(TestFrontend.TX), (double) txDriver.kicksSent(TestFrontend.TX) / FRAMES);
            assertTrue(sleeps > FRAMES / 40, "the worker really went to sleep between bursts: " + sleeps);
            assertEquals(FRAMES, TestPmdForwardingTest.value(snap, "b", "tx_packets"));
            assertEquals(0, TestPmdForwardingTest.value(snap, "a", "queue_faults") + TestPmdForwardingTest.value(snap, "b", "queue_faults"));
        } finally {
            System.clearProperty("vswitch.maxSleepMillis");
        }
    }
}
