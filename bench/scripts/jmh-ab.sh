#!/usr/bin/env bash
# Alternates JMH runs of two (or more) benchmark jars, round after round, and prints per round the median of
# each run's measured iterations, then per jar the median of the round medians and their min-max.
#   bench/scripts/jmh-ab.sh --rounds 4 --jars A.jar,B.jar,B.jar@-Dsome.flag=true -- 'VirtQueueBenchmark\.tx$' -p burst=32 -f 1 -wi 3 -i 5
# Takes /tmp/vswitch-build.lock for each run unless VSWITCH_LOCK_HELD=1. JVM flags from jvm.options.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
rounds=4 jars=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --jars) jars=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "jmh-ab: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ -n $jars ]] || { echo "jmh-ab: --jars A.jar,B.jar required" >&2; exit 2; }
IFS=, read -r -a jar <<<"$jars"
java=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}/bin/java
out=$(mktemp -d)
lock() { if [[ ${VSWITCH_LOCK_HELD:-0} == 1 ]]; then "$@"; else flock /tmp/vswitch-build.lock "$@"; fi; }
for ((r = 1; r <= rounds; r++)); do
  for j in "${!jar[@]}"; do
    # a variant is JAR or JAR@JVMARG (e.g. x.jar@-Dvswitch.checkedGuestMemory=true): same jar, one more JVM flag
    spec=${jar[$j]} extra=()
    if [[ $spec == *@* ]]; then extra=(-jvmArgsAppend "${spec#*@}"); spec=${spec%%@*}; fi
    lock "$java" @"$here/jvm.options" -jar "$spec" "$@" "${extra[@]}" -rf json -rff "$out/r$r-j$j.json" >"$out/r$r-j$j.log" 2>&1 \
      || { echo "jmh-ab: run failed, see $out/r$r-j$j.log" >&2; exit 1; }
  done
done
python3 - "$out" "$rounds" "${jar[@]}" <<'PY'
import json, sys, statistics, os
out, rounds, jars = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
res = {}
for r in range(1, rounds + 1):
    for j, _ in enumerate(jars):
        for b in json.load(open(os.path.join(out, f"r{r}-j{j}.json"))):
            key = b["benchmark"].split(".")[-2] + "." + b["benchmark"].split(".")[-1] + " " + \
                  " ".join(f"{k}={v}" for k, v in sorted(b.get("params", {}).items()))
            it = [x for fork in b["primaryMetric"]["rawData"] for x in fork]
            res.setdefault(key, {}).setdefault(j, []).append((statistics.median(it), b["primaryMetric"]["scoreUnit"]))
for key, per in res.items():
    print(key)
    for j, name in enumerate(jars):
        meds = [m for m, _ in per.get(j, [])]
        if not meds:
            print(f"  {os.path.basename(name):28s} no result (see the run's log)")
            continue
        unit = per[j][0][1]
        print(f"  {os.path.basename(name):28s} rounds: {', '.join(f'{m:.2f}' for m in meds)}"
              f"  -> median {statistics.median(meds):.2f} ({min(meds):.2f}-{max(meds):.2f}) {unit}")
PY
