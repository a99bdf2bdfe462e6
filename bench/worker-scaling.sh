#!/usr/bin/env bash
# Worker scaling in-process (issue 9 item 5): WorkerScalingBenchmark's oneWorker (4 ports, 2 cross-connected
# pairs, one worker on one thread) against twoWorkers (one pair per worker, one thread each), alternated:
# every round runs each side in a fresh JMH fork (-f 1), A then B, B then A in the next round. Prints frames/s
# of every fork (median of its iterations), the per-round ratio, and the medians and min-max over all rounds.
#
#   bench/worker-scaling.sh [--no-build] [--rounds N] [--wi N] [--i N] [--reference] [--out DIR]
#
#   --rounds N     alternated rounds (default 5)
#   --wi N, --i N  JMH warm-up / measured 1-second iterations per fork (default 3 / 5)
#   --reference    also run SwitchBenchmark -p ports=2 -p mode=cross-connect -p hosts=1 (one worker, one pair,
#                  alone on the machine) in every round: what one worker of twoWorkers would do without the other
#   --out DIR      keep the JMH JSON files there (default: a temp dir, removed)
#   --params "..." JMH parameters of WorkerScalingBenchmark (and of the reference, so give both mode and hosts),
#                  e.g. "-p mode=learning -p hosts=64"
#
# Holds /tmp/vswitch-build.lock for the build and the whole run (set VSWITCH_LOCK_HELD=1 if you hold it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lock.sh
source "$ROOT/bench/scripts/lock.sh"
bench_lock worker-scaling

BUILD=1 ROUNDS=5 WI=3 IT=5 REFERENCE=0 OUT= PARAMS=
while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-build) BUILD=0 ;;
        --rounds) ROUNDS="$2"; shift ;;
        --wi) WI="$2"; shift ;;
        --i) IT="$2"; shift ;;
        --reference) REFERENCE=1 ;;
        --out) OUT="$2"; shift ;;
        --params) PARAMS="$2"; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "worker-scaling: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

if [[ -z "${JAVA_HOME:-}" || ! -x "$JAVA_HOME/bin/java" ]]; then
    JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64
fi
export JAVA_HOME
JAR="$ROOT/bench/target/benchmarks.jar"
if [[ $BUILD == 1 ]]; then
    (cd "$ROOT" && mvn -B -q -o -pl bench -am package -DskipTests)
fi
if [[ -z "$OUT" ]]; then
    OUT="$(mktemp -d /tmp/vswitch-scaling.XXXXXX)"
    trap 'rm -rf "$OUT"' EXIT
else
    mkdir -p "$OUT"
fi

run() {   # run NAME JSON [jmh args...]
    local json="$2"; shift 2
    "$JAVA_HOME/bin/java" -jar "$JAR" "$@" -f 1 -wi "$WI" -i "$IT" -prof gc -rf json -rff "$json" >"$json.log" 2>&1 \
        || { echo "worker-scaling: JMH failed, see $json.log" >&2; tail -30 "$json.log" >&2; exit 1; }
}

echo "worker-scaling: commit $(git -C "$ROOT" rev-parse --short HEAD)$([[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ]] && echo ' (uncommitted changes)'), $ROUNDS rounds, -f 1 -wi $WI -i $IT${PARAMS:+ $PARAMS}, $(nproc) cpus ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
for ((r = 1; r <= ROUNDS; r++)); do
    order=(one two)
    (( r % 2 == 0 )) && order=(two one)
    for side in "${order[@]}"; do
        case "$side" in
            one) run one "$OUT/r$r-one.json" 'WorkerScalingBenchmark.oneWorker$' $PARAMS ;;
            two) run two "$OUT/r$r-two.json" 'WorkerScalingBenchmark.twoWorkers$' $PARAMS ;;
        esac
    done
    if [[ $REFERENCE == 1 ]]; then
        run ref "$OUT/r$r-ref.json" 'SwitchBenchmark.pass$' -p ports=2 ${PARAMS:--p mode=cross-connect -p hosts=1}
    fi
    echo "worker-scaling: round $r done ($(date -u +%H:%M:%S))" >&2
done

python3 - "$OUT" "$ROUNDS" "$REFERENCE" <<'EOF'
import json, statistics, sys, os
out, rounds, reference = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"

def fork(path):
    run = json.load(open(path))[0]
    frames = [v for f in run["secondaryMetrics"]["frames"]["rawData"] for v in f]
    norm = [v for f in run["secondaryMetrics"].get("gc.alloc.rate.norm", {}).get("rawData", []) for v in f]
    ops = [v for f in run["primaryMetric"]["rawData"] for v in f]
    return statistics.median(frames) / 1e6, frames, statistics.median(norm) if norm else float("nan"), statistics.median(ops)

def mm(xs):
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})"

one, two, ref, ratios, allone, alltwo, bop1, bop2 = [], [], [], [], [], [], [], []
print("\n| round | order | oneWorker Mpps | twoWorkers Mpps | ratio |" + (" SwitchBenchmark 2 guests Mpps |" if reference else ""))
print("|---:|---|---:|---:|---:|" + ("---:|" if reference else ""))
for r in range(1, rounds + 1):
    a, fa, na, oa = fork(os.path.join(out, f"r{r}-one.json"))
    b, fb, nb, ob = fork(os.path.join(out, f"r{r}-two.json"))
    one.append(a); two.append(b); ratios.append(b / a); allone += fa; alltwo += fb
    bop1.append(na)
    bop2.append(nb)
    row = f"| {r} | {'one, two' if r % 2 else 'two, one'} | {a:.2f} | {b:.2f} | {b / a:.3f} |"
    if reference:
        c, _, _, _ = fork(os.path.join(out, f"r{r}-ref.json"))
        ref.append(c)
        row += f" {c:.2f} |"
    print(row)
print()
print(f"oneWorker  Mpps, median of fork medians (min-max): {mm(one)}; all iterations: {mm([x / 1e6 for x in allone])}")
print(f"twoWorkers Mpps, median of fork medians (min-max): {mm(two)}; all iterations: {mm([x / 1e6 for x in alltwo])}")
print(f"ratio twoWorkers / oneWorker per round, median (min-max): {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})")
if reference:
    print(f"SwitchBenchmark 2 guests, one worker alone, Mpps: {mm(ref)}; each of twoWorkers' workers made {statistics.median(two) / 2:.2f}"
          f" = {statistics.median(two) / 2 / statistics.median(ref):.3f} x of that")
print(f"gc.alloc.rate.norm, B per operation (median per fork): oneWorker {', '.join(f'{x:.3f}' for x in bop1)};"
      f" twoWorkers {', '.join(f'{x:.3f}' for x in bop2)}")
print(f"target (issue 9 item 5) 2 workers >= 1.8 x 1 worker: {'MET' if statistics.median(ratios) >= 1.8 else 'MISSED'}")
EOF
