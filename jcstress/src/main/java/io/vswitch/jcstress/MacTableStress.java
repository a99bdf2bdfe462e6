package io.vswitch.jcstress;

import io.vswitch.engine.MacTable;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.III_Result;
import org.openjdk.jcstress.infra.results.II_Result;

/**
 * jcstress tests of {@link MacTable}, which several workers update without locks. Run with
 * {@code java -jar jcstress/target/jcstress.jar -t MacTableStress}.
 */
public final class MacTableStress {
    static final long MAC = 0x0200_0000_000aL;

    private MacTableStress() {
    }

    /** Two workers learn the same MAC on two ports at once: one wins, and the entry counts for that port only. */
    @JCStressTest
    @Outcome(id = {"0, 1, 0", "1, 0, 1"}, expect = Expect.ACCEPTABLE, desc = "one port holds the MAC and is charged for it")
    @Outcome(expect = Expect.FORBIDDEN, desc = "no owner, two owners, or a port charged for an entry it does not hold")
    @State
    public static class SameMacTwoPorts {
        final MacTable table = new MacTable(64, 300_000, new int[] {16, 16});

        @Actor
        public void worker0() {
            table.learn(MAC, 0, table.now());
        }

        @Actor
        public void worker1() {
            table.learn(MAC, 1, table.now());
        }

        @Arbiter
        public void check(III_Result r) {
            r.r1 = table.lookup(MAC, table.now());
            r.r2 = table.learnedOn(0);
            r.r3 = table.learnedOn(1);
        }
    }

    /** A lookup racing the first learn of a MAC sees a miss or the port, never another port or garbage. */
    @JCStressTest
    @Outcome(id = {"-1, 1", "3, 1"}, expect = Expect.ACCEPTABLE, desc = "miss before the learn, the port after it")
    @Outcome(expect = Expect.FORBIDDEN, desc = "a port the MAC was never learned on")
    @State
    public static class LookupDuringLearn {
        final MacTable table = new MacTable(64, 300_000, new int[] {16, 16, 16, 16});

        @Actor
        public void learner() {
            table.learn(MAC, 3, table.now());
        }

        @Actor
        public void reader(II_Result r) {
            r.r1 = table.lookup(MAC, table.now());
        }

        @Arbiter
        public void check(II_Result r) {
            r.r2 = table.learnedOn(3);
        }
    }

    /** Two workers learn two MACs on a port whose limit is one: exactly one is admitted. */
    @JCStressTest
    @Outcome(id = {"1, 1"}, expect = Expect.ACCEPTABLE, desc = "one admitted, the port charged once")
    @Outcome(expect = Expect.FORBIDDEN, desc = "the limit was overrun or an entry leaked its charge")
    @State
    public static class LimitUnderRace {
        final MacTable table = new MacTable(64, 300_000, new int[] {1});

        @Actor
        public void worker0() {
            table.learn(MAC, 0, table.now());
        }

        @Actor
        public void worker1() {
            table.learn(MAC + 1, 0, table.now());
        }

        @Arbiter
        public void check(II_Result r) {
            long now = table.now();
            r.r1 = (table.lookup(MAC, now) == 0 ? 1 : 0) + (table.lookup(MAC + 1, now) == 0 ? 1 : 0);
            r.r2 = table.learnedOn(0);
        }
    }

    /**
     * Port 0's link goes down (its worker flushes it) while another worker moves the MAC to port 1: the MAC
     * ends on port 1 and is counted there, or it is gone and nobody is charged for it.
     */
    @JCStressTest
    @Outcome(id = {"1, 0, 1"}, expect = Expect.ACCEPTABLE, desc = "the move won or came after the flush: on port 1, counted there")
    @Outcome(expect = Expect.FORBIDDEN, desc = "the flush erased port 1's entry (count one high), or a port charged for nothing")
    @State
    public static class FlushDuringMove {
        final MacTable table = new MacTable(64, 300_000, new int[] {16, 16});

        {
            table.learn(MAC, 0, table.now());
        }

        @Actor
        public void portDown() {
            table.flush(0);
        }

        @Actor
        public void move() {
            table.learn(MAC, 1, table.now());
        }

        @Arbiter
        public void check(III_Result r) {
            r.r1 = table.lookup(MAC, table.now());
            r.r2 = table.learnedOn(0);
            r.r3 = table.learnedOn(1);
        }
    }
}
