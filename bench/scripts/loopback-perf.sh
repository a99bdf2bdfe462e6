#!/usr/bin/env bash
# Where the worker's time goes in the real loopback, instruction by instruction: one rep of bench/loopback.sh part 1
# with the switch's JIT code printed (hsdis, tools/hsdis/build.sh) and a perf map, and `perf record` of core 1 (the
# worker's) for 3 s in the middle of the vswitch window; then the hottest JIT methods and instructions, each with
# the disassembly around it (the stalled instruction is usually the one after the load or store that waits).
#   bench/scripts/loopback-perf.sh OUTDIR [vswitch.jar] [-- loopback.sh options, e.g. --client-devargs packed_vq=1]
# Needs perf (cpu-clock: this VM has no hardware counters). Core 1 is the worker's only while the vswitch run lasts.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: loopback-perf.sh OUTDIR [jar] [-- loopback options]}; shift
jar=${1:-$here/switch/target/vswitch.jar}; [[ $# -gt 0 && $1 != -- ]] && shift
[[ ${1:-} == -- ]] && shift
export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
mkdir -p "$out"; rm -f "$out"/perf.data "$out"/vm.log "$out"/perf-*.map
LOOPBACK_VSWITCH_JVM_OPTS="-XX:+UnlockDiagnosticVMOptions -XX:+PrintAssembly -XX:+LogVMOutput -XX:LogFile=$out/vm.log -XX:-DisplayVMOutput -XX:+DumpPerfMapAtExit" \
KEEP_WORK=1 LOOPBACK_VSWITCH_JAR="$jar" "$here/bench/loopback.sh" --no-build --parts 1 --reps 1 --duration 8 --warmup 4 "$@" >"$out/loopback.txt" 2>&1 &
lb=$!
work=""
while [[ -z $work ]]; do sleep 0.5; kill -0 $lb 2>/dev/null || { cat "$out/loopback.txt"; exit 1; }
  work=$(sed -n 's/.*logs in \([^ ;]*\).*/\1/p' "$out/loopback.txt" | head -1); done
until grep -q "tx_first" "$work/client.log" 2>/dev/null; do sleep 0.2; kill -0 $lb 2>/dev/null || exit 1; done
sleep 6   # the warm-up and the first seconds of the window
perf record -q -e cpu-clock -C 1 -o "$out/perf.data" -- sleep 3 >/dev/null 2>&1
wait $lb
pid=$(sed -n 's/.*vswitch pid \([0-9]*\).*/\1/p' "$work"/run1-vswitch-stats.txt 2>/dev/null | head -1)
cp /tmp/perf-"$pid".map "$out"/ 2>/dev/null || true
rm -f /tmp/perf-"$pid".map
rm -rf "$work"   # kept by loopback.sh (KEEP_WORK) only for the switch's stats above
grep "rep 1" "$out/loopback.txt"
perf report -q -i "$out/perf.data" --sort sym >"$out/methods.txt" 2>/dev/null || true
head -12 "$out/methods.txt"
perf script -i "$out/perf.data" -F ip 2>/dev/null | sort | uniq -c | sort -rn >"$out/instructions.txt" || true
head -6 "$out/instructions.txt" | while read -r n ip; do
  echo "=== $n samples at 0x$ip"
  line=$(grep -n "0x0000$ip:" "$out/vm.log" | tail -1 | cut -d: -f1 || true)
  if [[ -n $line ]]; then sed -n "$((line - 8)),$((line + 1))p" "$out/vm.log" | cut -c1-150; fi
done
