package io.vswitch.jcstress;

import io.vswitch.vhost.net.WorkerEpoch;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

/**
 * The grace-period handshake of {@link WorkerEpoch}, as the switch uses it: a control thread unpublishes a
 * resource (a device's running flag), waits for the worker's epoch, then frees it; the worker enters its
 * window, reads the flag and, if the resource is still published, uses it. The worker must never see the
 * resource freed while it believes it published (the Dekker pair of {@code enter}'s volatile store and the
 * flag's load). Run with {@code java -jar jcstress/target/jcstress.jar -t WorkerEpochStress}.
 */
@JCStressTest
@Outcome(id = {"1, 1", "-1, 1"}, expect = Expect.ACCEPTABLE, desc = "used before it was freed, or saw it unpublished")
@Outcome(id = {"0, 1"}, expect = Expect.FORBIDDEN, desc = "used after it was freed: the grace period did not hold")
@Outcome(expect = Expect.FORBIDDEN, desc = "anything else")
@State
public class WorkerEpochStress {
    final WorkerEpoch epoch = new WorkerEpoch("jcstress worker");
    volatile boolean published = true;
    int resource = 1;   // plain: what the grace period protects (1 alive, 0 freed)

    @Actor
    public void worker(II_Result r) {
        epoch.enter();
        r.r1 = published ? resource : -1;
        epoch.leave();
    }

    @Actor
    public void control(II_Result r) {
        published = false;
        epoch.await();
        resource = 0;
        r.r2 = 1;
    }
}
