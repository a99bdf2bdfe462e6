package io.vswitch.engine;

import org.junit.jupiter.api.Test;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MacTableTest {
    private static final long MAC_A = 0x5254_0000_0001L;
    private static final long MAC_B = 0x5254_0000_0002L;

    @Test
    void learnsLooksUpAndMoves() {
        MacTable table = new MacTable(1024, 300_000, new int[] {100, 100, 100});
        assertEquals(MacTable.MISS, table.lookup(MAC_A, 0));
        assertEquals(MacTable.LEARNED_NEW, table.learn(MAC_A, 1, 0));
        assertEquals(1, table.lookup(MAC_A, 0));
        assertEquals(MacTable.LEARNED_NONE, table.learn(MAC_A, 1, 10), "seen again on the same port");
        assertEquals(MacTable.LEARNED_MOVE, table.learn(MAC_A, 2, 20), "appears on another port: moves");
        assertEquals(2, table.lookup(MAC_A, 20));
        assertEquals(0, table.learnedOn(1));
        assertEquals(1, table.learnedOn(2));
    }

    @Test
    void generationMovesOnMovesAndFlushesOnly() {
        MacTable table = new MacTable(1024, 300_000, new int[] {100, 100, 100});
        long g0 = table.generation();
        table.learn(MAC_A, 1, 0);
        table.learn(MAC_A, 1, 2_000);   // a refresh
        table.learn(MAC_B, 1, 2_000);
        assertEquals(g0, table.generation(), "new entries and refreshes leave cached answers valid");
        table.learn(MAC_A, 2, 2_000);
        long g1 = table.generation();
        assertTrue(g1 != g0, "a move invalidates what workers cached");
        table.flush(0);
        assertEquals(g1, table.generation(), "flushing a port without entries changes nothing");
        table.flush(1);
        assertTrue(table.generation() != g1, "a flush invalidates what workers cached");
        assertEquals(0, table.lookupEntry(MAC_B, 2_000));
        long entry = table.lookupEntry(MAC_A, 2_000);
        assertEquals(2, MacTable.portOf(entry));
        assertEquals(0, table.lookupEntry(MAC_A, 302_000), "aged");
    }

    @Test
    void entriesAgeOut() {
        MacTable table = new MacTable(1024, 1_000, new int[] {10, 10});
        table.learn(MAC_A, 0, 0);
        assertEquals(0, table.lookup(MAC_A, 999));
        assertEquals(MacTable.MISS, table.lookup(MAC_A, 1_000), "aged: unknown again, so frames flood");
        assertEquals(MacTable.LEARNED_NEW, table.learn(MAC_A, 1, 1_500), "relearned after aging");
        assertEquals(1, table.lookup(MAC_A, 1_500));
    }

    @Test
    void perPortLimitStopsLearningButNotOtherPorts() {
        MacTable table = new MacTable(1024, 300_000, new int[] {2, 100});
        assertEquals(MacTable.LEARNED_NEW, table.learn(1, 0, 0));
        assertEquals(MacTable.LEARNED_NEW, table.learn(2, 0, 0));
        assertEquals(MacTable.LEARNED_LIMITED, table.learn(3, 0, 0), "port 0 may learn 2 MACs");
        assertEquals(MacTable.MISS, table.lookup(3, 0));
        assertEquals(MacTable.LEARNED_NEW, table.learn(4, 1, 0), "port 1 is not affected");
        assertEquals(2, table.learnedOn(0));
    }

    @Test
    void flushForgetsOnePortOnly() {
        MacTable table = new MacTable(1024, 300_000, new int[] {10, 10});
        table.learn(MAC_A, 0, 0);
        table.learn(MAC_B, 1, 0);
        table.flush(0);
        assertEquals(MacTable.MISS, table.lookup(MAC_A, 0));
        assertEquals(1, table.lookup(MAC_B, 0));
        assertEquals(0, table.learnedOn(0));
        assertEquals(MacTable.LEARNED_NEW, table.learn(MAC_A, 0, 1));
    }

    @Test
    void aFullTableReusesAgedSlotsAndNeverLoops() {
        MacTable table = new MacTable(16, 100, new int[] {1 << 20});
        for (long mac = 1; mac <= 200; mac++) {
            table.learn(mac, 0, 0);
        }
        int learnedLater = 0;
        for (long mac = 1000; mac < 1016; mac++) {
            if (table.learn(mac, 0, 500) == MacTable.LEARNED_NEW) {
                learnedLater++;
            }
        }
        assertTrue(learnedLater > 0, "aged slots were reused");
    }

    @Test
    void concurrentLearnersNeverCorruptEntries() throws Exception {
        MacTable table = new MacTable(4 * 40_000, 300_000, new int[] {1 << 20, 1 << 20});   // sized as the switch sizes it
        CountDownLatch start = new CountDownLatch(1);
        AtomicInteger wrong = new AtomicInteger();
        Thread[] threads = new Thread[2];
        for (int t = 0; t < 2; t++) {
            int port = t;
            threads[t] = new Thread(() -> {
                try {
                    start.await();
                } catch (InterruptedException e) {
                    return;
                }
                for (long mac = 0; mac < 20_000; mac++) {
                    long own = (mac << 1) | port;   // each thread learns its own MACs
                    table.learn(own, port, 0);
                    if (table.lookup(own, 0) != port) {
                        wrong.incrementAndGet();
                    }
                }
            });
            threads[t].start();
        }
        start.countDown();
        for (Thread t : threads) {
            t.join();
        }
        assertEquals(0, wrong.get(), "every MAC was found on the port that learned it");
        assertEquals(20_000, table.learnedOn(0));
        assertEquals(20_000, table.learnedOn(1));
    }
}
