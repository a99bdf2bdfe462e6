package io.vswitch.vhost.net;

/**
 * Waits until the worker that polls a device has passed a point where it no longer uses what the control
 * thread just unpublished (an RCU grace period). Provided by the switch when it assigns a port to a worker.
 */
@FunctionalInterface
public interface Quiescence {
    /** Returns once the worker is outside the data path or has started a new pass since the call. */
    void await();

    /** For a device no worker polls. */
    Quiescence NONE = () -> { };
}
