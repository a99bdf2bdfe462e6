# Sourced by the bench scripts: the machine-wide lock every build, benchmark and peer run holds, so that no two of
# them share the two cores. bench_lock NAME takes it for the rest of the calling script (fd 9), saying why it waits,
# unless the caller already holds it (VSWITCH_LOCK_HELD=1, exported for the script's children).
VSWITCH_LOCK=/tmp/vswitch-build.lock

bench_lock() {
    if [[ "${VSWITCH_LOCK_HELD:-}" != 1 ]]; then
        exec 9>>"$VSWITCH_LOCK"
        if ! flock -n 9; then
            echo "$1: waiting for $VSWITCH_LOCK (a build or another benchmark is running)..." >&2
            flock 9
        fi
        export VSWITCH_LOCK_HELD=1
    fi
}
