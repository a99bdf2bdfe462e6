package io.vswitch.engine;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LearnCacheTest {
    private static final long MAC_A = 0x5254_0000_0001L;
    private static final long MAC_B = 0x5254_0000_0002L;
    private static final long VLAN_7 = 7L << 48;

    @Test
    void aSourceIsFreshOnItsPortWithinTheWindowOnly() {
        LearnCache cache = new LearnCache();
        cache.sync(0);
        assertFalse(cache.sourceFresh(MAC_A, 1, 0), "never learned");
        cache.sourceLearned(MAC_A, 1, 100);
        assertTrue(cache.sourceFresh(MAC_A, 1, 100 + LearnCache.SOURCE_WINDOW_MILLIS - 1));
        assertFalse(cache.sourceFresh(MAC_A, 1, 100 + LearnCache.SOURCE_WINDOW_MILLIS), "window over: learn again (refresh)");
        assertFalse(cache.sourceFresh(MAC_A, 2, 100), "seen on another port: learn (a move)");
        assertFalse(cache.sourceFresh(MAC_A | VLAN_7, 1, 100), "another VLAN is another key");
    }

    @Test
    void aDestinationLivesAsLongAsTheTableEntryItCopied() {
        MacTable table = new MacTable(1024, 1_000, new int[] {10, 10});
        LearnCache cache = new LearnCache();
        cache.sync(table.generation());
        table.learn(MAC_B, 1, 0);
        long entry = table.lookupEntry(MAC_B, 10);
        cache.destinationFound(MAC_B, entry);
        assertEquals(entry, cache.destination(MAC_B, 999, 1_000));
        assertEquals(0, cache.destination(MAC_B, 1_000, 1_000), "aged in the table: aged in the cache");
        assertEquals(0, cache.destination(MAC_A, 10, 1_000), "not cached");
    }

    @Test
    void aMoveOrAFlushInTheTableEmptiesTheCacheAtTheNextSync() {
        MacTable table = new MacTable(1024, 300_000, new int[] {10, 10, 10});
        LearnCache cache = new LearnCache();
        table.learn(MAC_A, 0, 0);
        table.learn(MAC_B, 1, 0);
        cache.sync(table.generation());
        cache.sourceLearned(MAC_A, 0, 0);
        cache.destinationFound(MAC_B, table.lookupEntry(MAC_B, 0));

        table.learn(MAC_B, 2, 1);   // another worker moves B
        cache.sync(table.generation());
        assertEquals(0, cache.destination(MAC_B, 1, 300_000), "B moved: looked up again");
        assertFalse(cache.sourceFresh(MAC_A, 0, 1), "everything forgotten");

        cache.sourceLearned(MAC_A, 0, 2);
        cache.sync(table.generation());
        assertTrue(cache.sourceFresh(MAC_A, 0, 2), "same generation: kept");
        table.flush(0);
        cache.sync(table.generation());
        assertFalse(cache.sourceFresh(MAC_A, 0, 2), "its port was flushed: learned again");
    }
}
