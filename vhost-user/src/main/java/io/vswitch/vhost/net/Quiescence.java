package io.vswitch.vhost.net;

/**
 * Waits until the worker that polls a device has passed a point where it no longer uses what the control
 * thread just unpublished (an RCU grace period). Provided by the switch when it assigns a port to a worker
 * (a {@link WorkerEpoch}).
 *
 * <p>An implementation must not give up: the caller frees what it unpublished as soon as this returns.
 */
@FunctionalInterface
public interface Quiescence {
    /** Returns once the worker is outside the data path, has left the window it was in, or is gone for good. */
    void await();

    /** For a device no worker polls. */
    Quiescence NONE = () -> { };
}
