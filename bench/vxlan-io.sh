#!/usr/bin/env bash
# The VXLAN UDP I/O compared in one run, alternated round after round (issue 14): vswitch's FFM path
# (VxlanBenchmark, plain sendmmsg/recvmmsg and with UDP GSO/GRO) against Netty's epoll transport
# (NettyVxlanBenchmark, plain and with GSO/GRO). Each round runs the four in a rotated order, one JMH fork each
# (-wi 2 -i 3, 1 s iterations); the summary gives, per variant, the median and min-max over rounds of
# Mpps (frames encapsulated + decapsulated per second) and of cores busy (process CPU / wall time), and CPU
# per Mpps.
#
#   bench/vxlan-io.sh [--rounds N] [--no-build]
#
# Holds /tmp/vswitch-build.lock for the build and the whole run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS=3
BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        *) echo "vxlan-io: unknown option $1" >&2; exit 2 ;;
    esac
done
JAVA="${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}/bin/java"
WORK="$(mktemp -d /tmp/vswitch-vxlan-io.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
run() {
    if [[ $BUILD == 1 ]]; then
        (cd "$ROOT" && mvn -B -q -o -pl bench -am package -DskipTests)
    fi
    variants=("bench.VxlanBenchmark -p segmentation=false" "NettyVxlanBenchmark -p mode=plain"
              "bench.VxlanBenchmark -p segmentation=true" "NettyVxlanBenchmark -p mode=gso")
    for ((r = 0; r < ROUNDS; r++)); do
        for ((k = 0; k < 4; k++)); do
            v="${variants[$(((k + r) % 4))]}"
            echo "round $r: $v" >&2
            # shellcheck disable=SC2086
            "$JAVA" @"$ROOT/jvm.options" \
                -jar "$ROOT/bench/target/benchmarks.jar" $v -f 1 -wi 2 -i 3 -r 1 -w 1 \
                -rf json -rff "$WORK/r$r-$k.json" >/dev/null
        done
    done
}
if [[ "${VSWITCH_LOCK_HELD:-0}" == 1 ]]; then run; else
    exec 9>/tmp/vswitch-build.lock; flock 9; run; flock -u 9; fi
python3 - "$WORK" <<'PY'
import json, glob, statistics, sys
rows = {}
for f in sorted(glob.glob(sys.argv[1] + "/*.json")):
    for b in json.load(open(f)):
        name = b["benchmark"].split(".")[-2] + " " + ",".join(f"{k}={v}" for k, v in b.get("params", {}).items())
        s = b["secondaryMetrics"]
        mpps = s["frames"]["score"] / 1e6
        cores = s["cpuNs"]["score"] / 1e9
        rows.setdefault(name, []).append((mpps, cores, cores / mpps, s["lost"]["score"]))
print(f"{'variant':45} {'rounds':>6} {'Mpps median (min-max)':>24} {'cores median (min-max)':>24} {'cores per Mpps':>15} lost/s")
for name, v in rows.items():
    def fmt(i):
        xs = [x[i] for x in v]
        return f"{statistics.median(xs):.3f} ({min(xs):.3f}-{max(xs):.3f})"
    print(f"{name:45} {len(v):>6} {fmt(0):>24} {fmt(1):>24} {statistics.median(x[2] for x in v):>15.2f} {max(x[3] for x in v):.0f}")
PY
