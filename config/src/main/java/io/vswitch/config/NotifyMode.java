package io.vswitch.config;

/** How a worker learns that a ring has work. */
public enum NotifyMode {
    /** Busy-poll the rings: lowest latency, one core per worker at 100%. */
    POLL,
    /** Sleep on the guest's kick eventfds. */
    INTERRUPT,
    /** Poll while traffic flows, fall back to interrupts after a run of empty polls. */
    HYBRID,
    /** Wait on the ring's memory with monitor/mwait-style instructions. */
    MONITOR;

    /** The spelling used in topology files, e.g. {@code hybrid}. */
    public String yamlName() {
        return name().toLowerCase(java.util.Locale.ROOT).replace('_', '-');
    }
}
