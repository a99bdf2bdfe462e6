#!/usr/bin/env bash
# TCP between two QEMU guests through the switch with checksum/TSO offloads on (offloads: true) versus off
# (offloads: false, the per-port switch): four TCG guests on one switch, A/B alternated in one run; prints
# MiB/s and the mean frame size on the sending port per transfer, then medians, min-max and the ratio.
#
#   bench/offloads.sh [--no-build] [--rounds N] [--mib MIB] [--notify MODE] [--tool nc|httpd]   (defaults: 5 rounds of 64 MiB, interrupt, nc)
#
# Holds /tmp/vswitch-build.lock for the build and the whole run (set VSWITCH_LOCK_HELD=1 if you hold it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lock.sh
source "$ROOT/bench/scripts/lock.sh"
bench_lock offloads

BUILD=1
ARGS=()
for a in "$@"; do
    case "$a" in
        --no-build) BUILD=0 ;;
        *) ARGS+=("$a") ;;
    esac
done
if [[ -z "${JAVA_HOME:-}" || ! -x "$JAVA_HOME/bin/java" ]]; then
    JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64
fi
export JAVA_HOME
BENCH_JAR="$ROOT/bench/target/benchmarks.jar"
if [[ $BUILD == 1 ]]; then
    echo "offloads: building (mvn -pl bench -am package -DskipTests)..." >&2
    (cd "$ROOT" && mvn -B -q -o -pl bench -am package -DskipTests)
fi
echo "commit $(git -C "$ROOT" rev-parse --short HEAD), $(date -u +%FT%TZ), $(nproc) CPUs"

JAVA_PID=
cleanup() {
    if [[ -n "$JAVA_PID" ]] && kill -0 "$JAVA_PID" 2>/dev/null; then
        kill -TERM "$JAVA_PID" 2>/dev/null || true   # closes the switch and the QEMU guests
        wait "$JAVA_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$ROOT"
"$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow \
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED -XX:+UseParallelGC \
    -Dvswitch.repo.root="$ROOT" -cp "$BENCH_JAR" io.vswitch.bench.OffloadsBench ${ARGS[@]+"${ARGS[@]}"} &
JAVA_PID=$!
set +e
wait "$JAVA_PID"
rc=$?
set -e
JAVA_PID=
exit $rc
