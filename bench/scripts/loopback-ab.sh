#!/usr/bin/env bash
# Alternates loopback runs of two (or more) vswitch jars, round after round: each run is one rep of
# bench/loopback.sh part 1 (vswitch cross-connect, then DPDK's vhost backend, both with their core-to-core probes),
# and prints one line per run, so that runs can be compared within one placement (see loopback.sh on placements).
#   bench/scripts/loopback-ab.sh --rounds 3 --jars A.jar,B.jar,B.jar@-Dsome.flag=true [-- loopback.sh options]
# e.g. -- --client-devargs packed_vq=1, --client-fwd mac, --no-dpdk. loopback.sh takes /tmp/vswitch-build.lock itself: do not wrap this in flock.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
rounds=3 jars=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --jars) jars=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "loopback-ab: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ -n $jars ]] || { echo "loopback-ab: --jars A.jar,B.jar required" >&2; exit 2; }
IFS=, read -r -a jar <<<"$jars"
export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
echo "round variant: vswitch Mpps (probe before/after ns, worker idle loops) | DPDK Mpps (probes)"
for ((r = 1; r <= rounds; r++)); do
  for spec in "${jar[@]}"; do
    # a variant is JAR or JAR@JVMARGS (the same jar with more JVM flags)
    j=$spec opts=""
    if [[ $spec == *@* ]]; then j=${spec%%@*}; opts=${spec#*@}; fi
    out=$(LOOPBACK_VSWITCH_JVM_OPTS="$opts" LOOPBACK_VSWITCH_JAR="$j" \
          "$here/bench/loopback.sh" --no-build --parts 1 --reps 1 --duration 5 --warmup 3 "$@" 2>&1) \
      || { echo "loopback-ab: run failed:"; echo "$out" | tail -20; exit 1; }
    LOOPBACK_OUT="$out" python3 - "$r" "$(basename "$spec")" <<'PY'
import os, re, sys
text = os.environ["LOOPBACK_OUT"]
def run(label):
    m = re.search(label + r".*rep 1: +([\d.]+) Mpps.*?(?:worker: ([\d.]+)% of loops idle.*?)?round trip (\d+) ns before, (\d+) ns after", text)
    return m.groups() if m else ("?", None, "?", "?")
v, idle, vb, va = run(r"vswitch cross-connect \((?:io|mac)\)")
d, _, db, da = run(r"dpdk vhost \((?:io|mac)\)")
print(f"{sys.argv[1]} {sys.argv[2]}: vswitch {v} ({vb}/{va}, idle {idle}%) | dpdk {d} ({db}/{da})")
PY
  done
done
