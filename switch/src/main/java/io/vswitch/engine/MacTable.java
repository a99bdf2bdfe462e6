package io.vswitch.engine;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.atomic.AtomicIntegerArray;

/**
 * The learning bridge's MAC table, shared by all workers without locks.
 *
 * <p>Open addressing with linear probing over two parallel arrays. A slot's key ({@code mac + 1}, 0 when
 * free) is claimed once by CAS and then only replaced, by CAS, when its entry has aged out; its value packs
 * the port ({@code port + 1}, 0 when flushed) and the time last seen, written with release semantics, so a
 * reader sees a whole entry. A MAC that appears on another port simply moves (last writer wins).
 *
 * <pre>
 * value: | port + 1 (16 bits) | last seen, ms since table creation (48 bits) |
 *        0: key just claimed, value being written    1: flushed (port down), free
 * </pre>
 */
public final class MacTable {
    static final int MISS = -1;
    /** The value of a slot whose key was just claimed: not yet an entry, and not free either. */
    private static final long CLAIMED = 0L;
    /** The value of a flushed entry: no port, so never live, and free for reuse. */
    private static final long FLUSHED = 1L;
    private static final int MAX_PROBES = 32;
    private static final long TIME_MASK = (1L << 48) - 1;
    private static final VarHandle SLOTS = MethodHandles.arrayElementVarHandle(long[].class);

    private final long[] keys;
    private final long[] values;
    private final int mask;
    private final long agingMillis;
    private final int[] portLimit;
    private final AtomicIntegerArray portCount;
    private final long epochNanos = System.nanoTime();
    /**
     * Bumped after every change that makes a live entry name another port or none (a move, a flush): what the
     * workers' {@link LearnCache}s check once per burst. A new entry or a refresh leaves it alone.
     */
    private volatile long generation;
    private static final VarHandle GENERATION;

    static {
        try {
            GENERATION = MethodHandles.lookup().findVarHandle(MacTable.class, "generation", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** Outcome of {@link #learn}, for counters. */
    static final int LEARNED_NONE = 0;
    static final int LEARNED_NEW = 1;
    static final int LEARNED_MOVE = 2;
    static final int LEARNED_LIMITED = 3;

    public MacTable(int capacity, long agingMillis, int[] portLimit) {
        int size = Integer.highestOneBit(Math.max(16, capacity - 1)) << 1;
        keys = new long[size];
        values = new long[size];
        mask = size - 1;
        this.agingMillis = agingMillis;
        this.portLimit = portLimit.clone();
        this.portCount = new AtomicIntegerArray(portLimit.length);
    }

    /** Milliseconds on the table's clock; workers read it once per burst. */
    public long now() {
        return ((System.nanoTime() - epochNanos) / 1_000_000L) & TIME_MASK;
    }

    private static int hash(long mac) {
        long h = mac * 0x9E3779B97F4A7C15L;
        return (int) (h ^ (h >>> 29));
    }

    boolean live(long value, long now) {
        return (value >>> 48) != 0 && now - (value & TIME_MASK) < agingMillis;
    }

    /** The port of an entry's value (as {@link #lookupEntry} returns it), or -1 for none. */
    static int portOf(long value) {
        return (int) (value >>> 48) - 1;
    }

    /** How long an entry lives after it was last seen, in ms. */
    long agingMillis() {
        return agingMillis;
    }

    /** See {@link #generation}: read once per burst by each worker. */
    long generation() {
        return generation;
    }

    private void changed() {
        GENERATION.getAndAdd(this, 1L);
    }

    /**
     * The live entry for {@code mac}: its value ({@code port + 1} in the top 16 bits, last seen in the low 48), or
     * 0 when there is none. For a cache: the entry stays live at least until {@code now} passes its last seen plus
     * the ageing time, unless the {@link #generation} changes.
     */
    long lookupEntry(long mac, long now) {
        final long key = mac + 1;
        final long[] k = keys;
        int i = hash(mac) & mask;
        for (int probe = 0; probe < MAX_PROBES; probe++, i = (i + 1) & mask) {
            long slot = (long) SLOTS.getAcquire(k, i);
            if (slot == key) {
                long value = (long) SLOTS.getAcquire(values, i);
                return live(value, now) ? value : 0;
            }
            if (slot == 0) {
                return 0;
            }
        }
        return 0;
    }

    /** The port that {@code mac} was last seen on, or {@link #MISS}. */
    public int lookup(long mac, long now) {
        long value = lookupEntry(mac, now);   // never 0 when live: the port + 1 is in its top bits
        return value == 0 ? MISS : (int) (value >>> 48) - 1;
    }

    /** Records that {@code mac} was seen on {@code port}. */
    public int learn(long mac, int port, long now) {
        final long key = mac + 1;
        final long fresh = ((long) (port + 1) << 48) | now;
        int i = hash(mac) & mask;
        int reusable = -1;
        for (int probe = 0; probe < MAX_PROBES; probe++, i = (i + 1) & mask) {
            long slot = (long) SLOTS.getAcquire(keys, i);
            if (slot == key) {
                long old = (long) SLOTS.getAcquire(values, i);
                if (old == CLAIMED) {
                    // another worker is between claiming this slot and writing its value: read it again
                    Thread.onSpinWait();
                    i = (i - 1) & mask;
                    probe--;
                    continue;
                }
                int oldPort = (int) (old >>> 48) - 1;
                if (oldPort == port && live(old, now)) {
                    if (now - (old & TIME_MASK) > 1000) {
                        SLOTS.compareAndSet(values, i, old, fresh);   // refresh at most once a second per MAC
                    }
                    return LEARNED_NONE;
                }
                if (!admit(port)) {
                    return LEARNED_LIMITED;
                }
                // a CAS, not a store: of two workers moving the same MAC at once, one wins and the other's charge
                // is undone, so every entry is charged to exactly the port it names (jcstress MacTableStress)
                if (!SLOTS.compareAndSet(values, i, old, fresh)) {
                    portCount.decrementAndGet(port);
                    i = (i - 1) & mask;
                    probe--;
                    continue;
                }
                if (oldPort >= 0 && live(old, now)) {
                    portCount.decrementAndGet(oldPort);
                    changed();
                    return LEARNED_MOVE;
                }
                if (oldPort >= 0) {
                    portCount.decrementAndGet(oldPort);
                }
                return LEARNED_NEW;
            }
            if (slot == 0) {
                if (!admit(port)) {
                    return LEARNED_LIMITED;
                }
                if (SLOTS.compareAndSet(keys, i, 0L, key)) {
                    SLOTS.setRelease(values, i, fresh);
                    return LEARNED_NEW;
                }
                portCount.decrementAndGet(port);
                return learn(mac, port, now);   // lost a race for this slot: start over
            }
            long value = (long) SLOTS.getAcquire(values, i);
            // value 0: another thread claimed the key a moment ago and has not written the value yet
            if (reusable < 0 && value != CLAIMED && !live(value, now)) {
                reusable = i;
            }
        }
        if (reusable >= 0 && admit(port)) {
            long oldValue = (long) SLOTS.getAcquire(values, reusable);
            // claim the dead entry's value first: while it is CLAIMED nobody else moves, refreshes or reuses it
            if (oldValue != CLAIMED && !live(oldValue, now) && SLOTS.compareAndSet(values, reusable, oldValue, CLAIMED)) {
                SLOTS.setRelease(keys, reusable, key);
                int oldPort = (int) (oldValue >>> 48) - 1;
                if (oldPort >= 0) {
                    portCount.decrementAndGet(oldPort);
                }
                SLOTS.setRelease(values, reusable, fresh);
                return LEARNED_NEW;
            }
            portCount.decrementAndGet(port);
        }
        return LEARNED_LIMITED;
    }

    private boolean admit(int port) {
        if (portCount.incrementAndGet(port) > portLimit[port]) {
            portCount.decrementAndGet(port);
            return false;
        }
        return true;
    }

    /** Forgets every MAC learned on {@code port} (its link went down). */
    public void flush(int port) {
        boolean flushed = false;
        for (int i = 0; i < keys.length; i++) {
            long value = (long) SLOTS.getAcquire(values, i);
            // a CAS, not a store: another worker may move the entry to its port meanwhile (and count it
            // there); a plain store would then erase that port's entry and leave its count one high. And a
            // decrement per entry flushed, not a reset to 0: a move uncharges this port after its CAS, so a
            // reset could run between the two and the port would end at -1 (jcstress FlushDuringMove)
            while ((int) (value >>> 48) - 1 == port) {
                if (SLOTS.compareAndSet(values, i, value, FLUSHED)) {
                    portCount.decrementAndGet(port);
                    flushed = true;
                    break;
                }
                value = (long) SLOTS.getAcquire(values, i);
            }
        }
        if (flushed) {
            changed();
        }
    }

    /** Sets how many MACs {@code port} may hold (a port added, or its mac-limit changed live). */
    void setLimit(int port, int limit) {
        portLimit[port] = limit;
    }

    /** How many port indices the table can serve. */
    int portCapacity() {
        return portLimit.length;
    }

    /** Receives one live entry: MAC (48 bits), VLAN (0: untagged domain), port index, ms since last seen. */
    interface EntryVisitor {
        void entry(long mac, int vlan, int port, long ageMillis);
    }

    /** Visits the live entries (control plane: {@code vswitch mac list}); a racing worker may add or move some. */
    void forEachLive(EntryVisitor visitor) {
        long now = now();
        for (int i = 0; i < keys.length; i++) {
            long key = (long) SLOTS.getAcquire(keys, i);
            long value = (long) SLOTS.getAcquire(values, i);
            if (key != 0 && value != CLAIMED && live(value, now)) {
                long k = key - 1;
                visitor.entry(k & 0xFFFF_FFFF_FFFFL, (int) (k >>> 48), (int) (value >>> 48) - 1, now - (value & TIME_MASK));
            }
        }
    }

    public int learnedOn(int port) {
        return portCount.get(port);
    }
}
