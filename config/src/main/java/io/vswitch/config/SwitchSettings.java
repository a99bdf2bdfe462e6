package io.vswitch.config;

import java.nio.file.Path;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * The {@code switch:} section of a topology.
 *
 * @param cpus             cores to pin workers to; worker {@code i} gets {@code cpus[i % size]}, empty = unpinned
 * @param macAgingSeconds  how long a learned MAC stays without traffic from it (learning mode)
 * @param hybridQuietPolls empty polls before a {@link NotifyMode#HYBRID} worker goes back to sleeping on interrupts
 * @param runtimeDir       where the counters file and the instance lock live
 * @param metrics          where the Prometheus endpoint listens; empty = no endpoint
 * @param housekeepingCpus cores for every thread of the process but the workers (control threads, the JVM's JIT
 *                         compiler and GC threads...), so that they never take a worker's or a guest's core;
 *                         empty = unconfined
 */
public record SwitchSettings(
        BridgeMode mode,
        NotifyMode notifyMode,
        int workers,
        List<Integer> cpus,
        int burst,
        int macAgingSeconds,
        int hybridQuietPolls,
        Path runtimeDir,
        Optional<MetricsAddress> metrics,
        List<Integer> housekeepingCpus) {

    public static final BridgeMode DEFAULT_MODE = BridgeMode.LEARNING;
    public static final NotifyMode DEFAULT_NOTIFY = NotifyMode.POLL;
    public static final int DEFAULT_WORKERS = 1;
    /**
     * Frames a worker takes from one queue per pass. 64 rather than DPDK's usual 32: the packed-ring loopback,
     * where the worker is busy nearly all the time, ran about 4 % faster with 64 in both core placements, the
     * split-ring one the same (bench/RESULTS.md, session 11); a frame arriving alone is forwarded just as soon.
     */
    public static final int DEFAULT_BURST = 64;
    public static final int MAX_BURST = 256;
    public static final int DEFAULT_MAC_AGING_SECONDS = 300;
    public static final int DEFAULT_HYBRID_QUIET_POLLS = 1000;

    public SwitchSettings {
        Objects.requireNonNull(mode, "mode");
        Objects.requireNonNull(notifyMode, "notifyMode");
        Objects.requireNonNull(runtimeDir, "runtimeDir");
        Objects.requireNonNull(metrics, "metrics");
        cpus = List.copyOf(cpus);
        housekeepingCpus = List.copyOf(housekeepingCpus);
        if (workers < 1) {
            throw new IllegalArgumentException("workers must be >= 1, got " + workers);
        }
    }

    /** Without a metrics endpoint. */
    public SwitchSettings(BridgeMode mode, NotifyMode notifyMode, int workers, List<Integer> cpus, int burst,
                          int macAgingSeconds, int hybridQuietPolls, Path runtimeDir) {
        this(mode, notifyMode, workers, cpus, burst, macAgingSeconds, hybridQuietPolls, runtimeDir, Optional.empty(), List.of());
    }

    /** The same settings with another metrics endpoint (as {@code run --metrics} gives). */
    public SwitchSettings withMetrics(Optional<MetricsAddress> endpoint) {
        return new SwitchSettings(mode, notifyMode, workers, cpus, burst, macAgingSeconds, hybridQuietPolls, runtimeDir,
                endpoint, housekeepingCpus);
    }

    /** Every setting at its default, with the runtime directory of the current user. */
    public static SwitchSettings defaults() {
        return defaults(defaultRuntimeDir());
    }

    /** Every setting at its default, with the given runtime directory. */
    public static SwitchSettings defaults(Path runtimeDir) {
        return new SwitchSettings(DEFAULT_MODE, DEFAULT_NOTIFY, DEFAULT_WORKERS, List.of(), DEFAULT_BURST,
                DEFAULT_MAC_AGING_SECONDS, DEFAULT_HYBRID_QUIET_POLLS, runtimeDir);
    }

    /** {@code $XDG_RUNTIME_DIR/vswitch}, or {@code /tmp/vswitch-$UID} when that variable is unset. */
    public static Path defaultRuntimeDir() {
        return defaultRuntimeDir(System.getenv("XDG_RUNTIME_DIR"), new com.sun.security.auth.module.UnixSystem().getUid());
    }

    static Path defaultRuntimeDir(String xdgRuntimeDir, long uid) {
        // The uid suffix keeps users of a shared /tmp from colliding on (or hijacking) each other's directory.
        if (xdgRuntimeDir == null || xdgRuntimeDir.isBlank()) {
            return Path.of("/tmp", "vswitch-" + uid);
        }
        return Path.of(xdgRuntimeDir, "vswitch");
    }

    /** The core worker {@code worker} is pinned to, if any. */
    public OptionalInt cpuFor(int worker) {
        return cpus.isEmpty() ? OptionalInt.empty() : OptionalInt.of(cpus.get(worker % cpus.size()));
    }
}
