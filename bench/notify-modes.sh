#!/usr/bin/env bash
# Measures the four notification modes (poll, interrupt, hybrid, monitor) and prints one table row per mode:
# idle CPU % of the switch with two silent guests attached, 64-byte round-trip latency p50/p99 through the
# switch at a low rate, and dpdk-testpmd loopback throughput in Mpps. See bench/README.md.
#
#   bench/notify-modes.sh [--no-build] [options of io.vswitch.bench.notify.NotifyModesBench, --help lists them]
#
# Holds /tmp/vswitch-build.lock for the build and the whole run (2 cores: never overlap a build or another
# benchmark). If you already hold that lock yourself (e.g. flock /tmp/vswitch-build.lock bench/notify-modes.sh),
# set VSWITCH_LOCK_HELD=1, or this script waits for itself forever.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ORIG_ARGS=("$@")

# shellcheck source=scripts/lock.sh
source "$ROOT/bench/scripts/lock.sh"
bench_lock notify-modes

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
export MAVEN_OPTS="${MAVEN_OPTS:---sun-misc-unsafe-memory-access=allow}"
JAVA="$JAVA_HOME/bin/java"
BENCH_JAR="$ROOT/bench/target/benchmarks.jar"
SWITCH_JAR="$ROOT/switch/target/vswitch.jar"

stale() {   # true when a jar is missing or a source or pom of the modules the benchmark runs is newer
    [[ -f "$BENCH_JAR" && -f "$SWITCH_JAR" ]] || return 0
    local newer
    newer="$(find "$ROOT/pom.xml" "$ROOT"/{rings,notify,vhost-user,config,switch,bench} \
        \( -name target -prune \) -o \( -name '*.java' -o -name 'pom.xml' -o -path '*/src/main/resources/*' \) \
        -newer "$BENCH_JAR" -print -quit 2>/dev/null)"
    [[ -n "$newer" ]] && return 0
    [[ -n "$(find "$ROOT"/{rings,notify,vhost-user,config,switch}/src -newer "$SWITCH_JAR" -type f -print -quit 2>/dev/null)" ]]
}

if [[ $BUILD == 1 ]] && stale; then
    echo "notify-modes: building (mvn -pl bench -am package -DskipTests)..." >&2
    (cd "$ROOT" && mvn -B -q -pl bench -am package -DskipTests)
fi

COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    COMMIT="$COMMIT (work tree has uncommitted changes)"
fi

# the core-to-core probe that tells which vCPU placement a throughput run had (bench/RESULTS.md, "slow mode")
C2C_BIN="$ROOT/bench/target/c2c"
C2C_PROP=()
if command -v cc >/dev/null && { [[ -x "$C2C_BIN" && "$C2C_BIN" -nt "$ROOT/bench/tools/c2c.c" ]] \
        || cc -O2 -pthread -o "$C2C_BIN" "$ROOT/bench/tools/c2c.c" 2>/dev/null; }; then
    C2C_PROP=(-Dnotify.bench.c2c="$C2C_BIN")
else
    echo "notify-modes: no C compiler: throughput runs are not tagged with the core-to-core probe" >&2
fi

JAVA_PID=
cleanup() {
    if [[ -n "$JAVA_PID" ]] && kill -0 "$JAVA_PID" 2>/dev/null; then
        kill -TERM "$JAVA_PID" 2>/dev/null || true   # its shutdown hook kills the switch and testpmd
        wait "$JAVA_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$ROOT"
"$JAVA" @"$ROOT/jvm.options" -XX:+UseParallelGC \
    -Dnotify.bench.repo="$ROOT" -Dnotify.bench.commit="$COMMIT" ${C2C_PROP[@]+"${C2C_PROP[@]}"} \
    -Dnotify.bench.command="bench/notify-modes.sh${ORIG_ARGS[*]:+ ${ORIG_ARGS[*]}}" \
    -cp "$BENCH_JAR" io.vswitch.bench.notify.NotifyModesBench ${ARGS[@]+"${ARGS[@]}"} &
JAVA_PID=$!
set +e
wait "$JAVA_PID"
rc=$?
set -e
JAVA_PID=
exit $rc
