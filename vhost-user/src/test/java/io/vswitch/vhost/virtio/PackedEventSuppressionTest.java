package io.vswitch.vhost.virtio;

import io.vswitch.protocol.EventSuppression;
import io.vswitch.testing.PackedDriver;
import io.vswitch.testing.TestFrontend;
import io.vswitch.vhost.fixtures.PortFixture;
import io.vswitch.vhost.net.VirtioNetDevice;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Random;

import static io.vswitch.testing.Frames.frame;
import static io.vswitch.testing.TestFrontend.TX;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Event suppression of packed rings with VIRTIO_RING_F_EVENT_IDX (virtio 1.2, 2.8.10 and 2.8.21), both ways:
 * the device asks for a kick with a descriptor event (flags DESC, off_wrap = the slot it reads next and its
 * lap), so a driver that keeps adding before the device looks again kicks once, not once per batch; and the
 * device calls the driver only when the used descriptor its off_wrap names was written, checked against a model
 * over random bursts, events behind, inside and ahead of each burst, and many laps. {@link PackedDriver}
 * decides its kicks as Linux's virtqueue_kick_prepare_packed does.
 */
@Timeout(30)
class PackedEventSuppressionTest {
    @TempDir
    Path dir;

    private PortFixture fx;
    private TestFrontend fe;
    private PackedDriver drv;

    private VirtioNetDevice start(TestFrontend.Options options) throws java.io.IOException {
        return start(dir, options);
    }

    private VirtioNetDevice start(Path in, TestFrontend.Options options) throws java.io.IOException {
        fx = new PortFixture(java.nio.file.Files.createDirectories(in));
        fe = fx.connectAndSetUp(options.packed(true));
        drv = new PackedDriver(fe);
        assertTrue(fx.device().isRunning());
        return fx.device();
    }

    @AfterEach
    void releaseEverything() {
        if (fe != null) {
            assertFalse(fx.device().isBroken(), fx.device().txQueue().faultDetail());
            fx.disconnectAndAssertReleased(fe);
        }
        if (fx != null) {
            fx.close();
        }
    }

    @Test
    void aWantedKickNamesTheNextDescriptorSoTheDriverKicksOncePerSleep() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options().eventIdx(true).queueSize(16));
        VirtQueue tx = device.txQueue();
        PacketBatch batch = new PacketBatch(32);
        fe.kickFd(TX).drain();
        assertEquals(0, drv.kicksSent(TX));
        int frames = 0;
        // a sleeping worker arms, the driver adds bursts of 1..5 (chains of 1..3 descriptors), the worker wakes
        // up on the first kick and takes everything: 40 rounds go round the 16-slot ring many times
        for (int round = 0; round < 40; round++) {
            tx.setKicksWanted(true);
            assertEquals(EventSuppression.DESC, drv.deviceEventFlags(TX));
            assertEquals(drv.nextSlot(TX) | drv.availWrap(TX) << 15, drv.deviceEventOffWrap(TX),
                    "the device wants a kick for the descriptor it reads next, in the driver's current lap");
            assertFalse(tx.hasAvailable(), "nothing pending when the worker would sleep");
            long before = drv.kicksSent(TX);
            int n = 1 + round % 5;
            for (int i = 0; i < n; i++) {
                drv.transmit(frame(60, frames++), 1 + (round + i) % 3, false);
                assertEquals(before + 1, drv.kicksSent(TX), "round " + round + ", frame " + i + ": one kick, for the first one");
            }
            assertEquals(1, fe.kickFd(TX).drain(), "the worker's eventfd saw one kick");
            tx.setKicksWanted(false);   // awake: busy polling
            assertEquals(EventSuppression.DISABLE, drv.deviceEventFlags(TX));
            assertEquals(n, tx.dequeueBurst(batch));
            tx.completeTx(batch);
            assertEquals(n, drv.txCompleted().size());
        }
        assertEquals(40, drv.kicksSent(TX), "one kick per sleep, for " + frames + " frames");

        // while polling: none at all, however many frames
        for (int i = 0; i < 12; i++) {
            drv.transmit(frame(60, frames++));
        }
        assertEquals(40, drv.kicksSent(TX));
        assertEquals(0, fe.kickFd(TX).drain());
        assertEquals(12, tx.dequeueBurst(batch));
        tx.completeTx(batch);
        assertEquals(12, drv.txCompleted().size());
    }

    @Test
    void aDescriptorMadeAvailableBeforeTheRequestIsSeenByTheCheckAfterIt() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options().eventIdx(true).queueSize(16));
        VirtQueue tx = device.txQueue();
        tx.setKicksWanted(false);
        drv.transmit(frame(60, 1));   // no kick: the device polls
        assertEquals(0, drv.kicksSent(TX));
        tx.setKicksWanted(true);      // the worker is about to sleep: it asks, then looks once more
        assertTrue(tx.hasAvailable(), "the frame made available before the request is not left waiting");
        assertEquals(drv.nextSlot(TX) - 1 | drv.availWrap(TX) << 15, drv.deviceEventOffWrap(TX),
                "the request names the slot already filled: the driver will not kick for it, the check found it");
        PacketBatch batch = new PacketBatch(8);
        assertEquals(1, tx.dequeueBurst(batch));
        tx.completeTx(batch);
        assertEquals(1, drv.txCompleted().size());
    }

    @Test
    void withoutEventIdxAWantedKickIsEnableAndTheDriverKicksEveryTime() throws Exception {
        VirtioNetDevice device = start(new TestFrontend.Options().queueSize(16));
        VirtQueue tx = device.txQueue();
        tx.setKicksWanted(true);
        assertEquals(EventSuppression.ENABLE, drv.deviceEventFlags(TX));
        for (int i = 0; i < 5; i++) {
            drv.transmit(frame(60, i));
        }
        assertEquals(5, drv.kicksSent(TX));
        PacketBatch batch = new PacketBatch(8);
        assertEquals(5, tx.dequeueBurst(batch));
        tx.completeTx(batch);
        assertEquals(5, drv.txCompleted().size());
    }

    @Test
    void callsFollowTheDriversDescriptorEventOverRandomBurstsAndLaps() throws Exception {
        for (int size : new int[] {8, 13, 64}) {
            for (boolean inOrder : new boolean[] {false, true}) {
                callsMatchTheModel(size, inOrder, 1000 + size + (inOrder ? 1 : 0));
            }
        }
    }

    /**
     * The model: the device's used position as a count of slots since the start (u); the driver names a slot by
     * its count e, encoded as offset e mod size and the lap's wrap counter; a burst that moves u from old to new
     * calls exactly when old <= e < new. Events are drawn from a lap behind to a lap ahead.
     */
    private void callsMatchTheModel(int size, boolean inOrder, long seed) throws Exception {
        VirtioNetDevice device = start(dir.resolve("s" + seed), new TestFrontend.Options().eventIdx(true).queueSize(size).inOrder(inOrder));
        VirtQueue tx = device.txQueue();
        PacketBatch batch = new PacketBatch(64);
        Random random = new Random(seed);
        fe.drainCalls(TX);
        long u = 0;
        int calls = 0;
        for (int round = 0; round < 300; round++) {
            int flags = random.nextInt(10) == 0 ? EventSuppression.ENABLE : random.nextInt(10) == 0 ? EventSuppression.DISABLE : EventSuppression.DESC;
            // a driver names a slot within a ring of the device's used position (its own last used one, or up to
            // its outstanding buffers ahead): the wrap counter tells laps apart only that far
            long e = Math.max(0, u - size + random.nextInt(2 * size));
            drv.setDriverEvent(TX, flags, (int) (e % size), (int) ((e / size) % 2 == 0 ? 1 : 0));
            // chains of 1..2 descriptors, at most the ring's worth
            int slots = 0;
            int n = 0;
            int want = 1 + random.nextInt(Math.min(8, size));
            while (n < want) {
                int descs = 1 + random.nextInt(2);
                if (slots + descs > size) {
                    break;
                }
                drv.transmit(frame(60, round), descs, false);
                slots += descs;
                n++;
            }
            assertEquals(n, tx.dequeueBurst(batch));
            tx.completeTx(batch);
            long old = u;
            u += slots;
            boolean expected = flags == EventSuppression.ENABLE || flags == EventSuppression.DESC && old <= e && e < u;
            long got = fe.drainCalls(TX);
            assertEquals(expected ? 1 : 0, got, "size " + size + (inOrder ? " in order" : "") + ", seed " + seed + ", round "
                    + round + ": used " + old + ".." + u + ", flags " + flags + ", event " + e);
            calls += (int) got;
            assertEquals(n, drv.txCompleted().size());
        }
        assertTrue(calls > 0 && calls < 300, calls + " calls");
        fx.disconnectAndAssertReleased(fe);
        fx.close();
        fe = null;
        fx = null;
    }
}
