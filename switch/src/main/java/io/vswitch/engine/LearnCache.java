package io.vswitch.engine;

import java.util.Arrays;

/**
 * One worker's private memory of what it last learned into and looked up in the shared {@link MacTable}, so that a
 * frame whose addresses were seen lately costs neither a table write nor a probe of the table's (shared, large)
 * arrays. Two direct-mapped caches of {@link #ENTRIES} entries, each entry a key ({@code mac | vlan << 48}, as the
 * table's) and a value in the adjacent array element, so one cache line holds both:
 *
 * <pre>
 * source:      | key | port + 1 (16 bits) | learn() last called for it on that port, table ms (48 bits) |
 * destination: | key | the table's entry value when looked up: port + 1 (16 bits) | last seen (48 bits)   |
 *              empty: key {@link #EMPTY}
 * </pre>
 *
 * <p>Why a hit is as good as asking the table:
 * <ul>
 *   <li>Source: the table refreshes an entry at most once a second, so {@code learn} of the same MAC on the same
 *       port within {@link #SOURCE_WINDOW_MILLIS} of the last one would change nothing (the window is what the
 *       per-port last-source shortcut used before). A MAC that moved meanwhile (another port learned it) changed
 *       the table's generation, which empties the cache: the next frame learns it back.</li>
 *   <li>Destination: the cached value is the entry as it was at the lookup; the entry lives at least until that
 *       last-seen time plus the ageing time (refreshes only extend it), so the hit checks the same liveness the
 *       table would. Only a move or a flush can make a live entry name another port, and both change the
 *       generation. Misses (unknown destinations) are not cached: a MAC learned a moment later is used at once.</li>
 * </ul>
 * The generation is read once per burst ({@link #sync}); a move made by another worker during a burst is seen at
 * the next one, as if the table had been read just before the move.
 */
final class LearnCache {
    /** Entries per cache (a power of two): 2 x 8 KiB, beside the table's 128 KiB of a 4096-entry table. */
    static final int ENTRIES = 512;
    static final long SOURCE_WINDOW_MILLIS = 500;
    private static final long EMPTY = -1L;   // never a key: keys use 48 + 12 bits
    private static final long TIME_MASK = (1L << 48) - 1;

    private final long[] source = new long[2 * ENTRIES];
    private final long[] destination = new long[2 * ENTRIES];
    private long generation = -1;

    LearnCache() {
        clear();
    }

    private static int slot(long key) {
        return (int) ((key * 0x9E3779B97F4A7C15L) >>> (64 - Integer.numberOfTrailingZeros(ENTRIES))) << 1;
    }

    /** Once per burst: forgets everything when the table's generation moved on (a move or a flush happened). */
    void sync(long tableGeneration) {
        if (tableGeneration != generation) {
            clear();
            generation = tableGeneration;
        }
    }

    /** Forgets everything (this worker itself moved a MAC). */
    void clear() {
        Arrays.fill(source, EMPTY);
        Arrays.fill(destination, EMPTY);
    }

    /** Whether {@code key} was learned on {@code port} less than {@link #SOURCE_WINDOW_MILLIS} ago (then: skip learn). */
    boolean sourceFresh(long key, int port, long now) {
        int s = slot(key);
        long value = source[s + 1];
        return source[s] == key && (int) (value >>> 48) == port + 1 && now - (value & TIME_MASK) < SOURCE_WINDOW_MILLIS;
    }

    /** {@code key} was just learned on (or confirmed for) {@code port} at {@code now}. */
    void sourceLearned(long key, int port, long now) {
        int s = slot(key);
        source[s] = key;
        source[s + 1] = ((long) (port + 1) << 48) | (now & TIME_MASK);
    }

    /** The cached live entry value for {@code key} (see {@link MacTable#lookupEntry}), or 0. */
    long destination(long key, long now, long agingMillis) {
        int s = slot(key);
        long value = destination[s + 1];
        return destination[s] == key && now - (value & TIME_MASK) < agingMillis ? value : 0;
    }

    /** Remembers the table's live entry {@code value} for {@code key}. */
    void destinationFound(long key, long value) {
        int s = slot(key);
        destination[s] = key;
        destination[s + 1] = value;
    }
}
