package io.vswitch.jcstress;

import io.vswitch.rings.SpscLongRing;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.JJJ_Result;
import org.openjdk.jcstress.infra.results.JJ_Result;

/**
 * jcstress tests of {@link SpscLongRing}: one producer, one consumer, racing. Nothing is lost, duplicated or
 * reordered, and the consumer never reads a slot the producer has not published (which would show as a stale
 * or zero value). Run with {@code java -jar jcstress/target/jcstress.jar -t SpscLongRingStress}.
 */
public final class SpscLongRingStress {
    private SpscLongRingStress() {
    }

    /** Two single offers against two single polls; the arbiter counts what is left. */
    @JCStressTest
    @Outcome(id = {"-1, -1, 2", "-1, 11, 1", "11, -1, 1", "11, 22, 0"}, expect = Expect.ACCEPTABLE,
            desc = "the consumer saw a prefix of what was offered, in order; the rest is still there")
    @Outcome(expect = Expect.FORBIDDEN, desc = "lost, duplicated, reordered or unpublished value")
    @State
    public static class OfferPoll {
        final SpscLongRing ring = new SpscLongRing(2);

        @Actor
        public void producer() {
            ring.offer(11);
            ring.offer(22);
        }

        @Actor
        public void consumer(JJJ_Result r) {
            r.r1 = ring.poll();
            r.r2 = ring.poll();
        }

        @Arbiter
        public void left(JJJ_Result r) {
            r.r3 = ring.size();
            // what is left is the rest of the sequence, in order
            long expect = r.r1 == 11 ? (r.r2 == 22 ? -1 : 22) : (r.r2 == 11 ? 22 : 11);
            for (long v = ring.poll(); v != SpscLongRing.EMPTY; v = ring.poll()) {
                if (v != expect) {
                    r.r3 = 100 + v;   // forbidden
                }
                expect = expect == 11 ? 22 : -1;
            }
        }
    }

    /** A batch offer against a batch poll across the ring's wrap-around point. */
    @JCStressTest
    @Outcome(id = {"0, 0", "3, 6"}, expect = Expect.ACCEPTABLE,
            desc = "nothing yet, or the whole batch in order (count, sum): a batch is published with one index store")
    @Outcome(expect = Expect.FORBIDDEN, desc = "a partial, torn or out-of-order batch")
    @State
    public static class BatchAcrossWrap {
        final SpscLongRing ring = new SpscLongRing(4);

        public BatchAcrossWrap() {
            // move the indices so that the batch wraps
            for (int i = 0; i < 3; i++) {
                ring.offer(99);
                ring.poll();
            }
        }

        @Actor
        public void producer() {
            ring.offer(new long[] {1, 2, 3}, 0, 3);
        }

        @Actor
        public void consumer(JJ_Result r) {
            long[] got = new long[4];
            int n = ring.poll(got, 0, 4);
            long sum = 0;
            for (int i = 0; i < n; i++) {
                if (got[i] != i + 1) {
                    sum = -1000;
                    break;
                }
                sum += got[i];
            }
            r.r1 = n;
            r.r2 = sum;
        }
    }
}
