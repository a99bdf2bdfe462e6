#!/usr/bin/env bash
# Linux's own vxlan device against vswitch's VXLAN port on the same path, alternated (issue 14 item 4).
# No pktgen (CONFIG_NET_PKTGEN is off here), iperf3 or netperf on these machines, so the traffic comes from
# bench/tools/udpblast.c (sendmmsg bursts of 32 UDP datagrams with a 22-byte payload: 64-byte inner frames,
# 114 bytes on the underlay) and is counted by its sink (recvmmsg). Every namespace and veth is named vsu2-*,
# made here and deleted on exit.
#
#   vsu2-a: udpblast send -> 10.99.0.2 via vx0 (kernel vxlan, VNI 42, local 192.0.2.1 remote 192.0.2.2, port
#           4789, "ethtool -K vx0 tx off") -> veth vsu2-a0 == vsu2-b0 (192.0.2.2) in vsu2-b, then either
#   kernel: vsu2-b's own vx0 (VNI 42, MAC 02:99:00:00:00:02, 10.99.0.2) decapsulates -> udpblast recv in vsu2-b
#   vswitch: vswitch in vsu2-b (worker on core 1, notify poll): vxlan port on 192.0.2.2:4789 decapsulates, the
#           learning bridge floods the frame to an afpacket port on vsu2-c0 -> veth -> vsu2-c1 (MAC
#           02:99:00:00:00:02, 10.99.0.2) in vsu2-c -> udpblast recv in vsu2-c
#
# The sender and the sink run on core 0 in both cases; the kernel's decapsulation runs in softirq where the
# veth delivers (the sender's core), vswitch's on its worker's core 1. Reported: datagrams per second at the
# sink (median, min-max over the rounds) and the loss (sent - received).
#
#   bench/kernel-vxlan.sh [--rounds N] [--duration S] [--no-build]
#
# Root only. Holds /tmp/vswitch-build.lock for the build and the whole run; kills what it started on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS=3
DURATION=5
BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        *) echo "kernel-vxlan: unknown option $1" >&2; exit 2 ;;
    esac
done
[[ $EUID == 0 ]] || { echo "kernel-vxlan: needs root (namespaces, veth, vxlan)" >&2; exit 2; }
export JAVA_HOME="${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
WORK="$(mktemp -d /tmp/vswitch-kvx.XXXXXX)"
SWITCH_PID=
cleanup() {
    if [[ -n "$SWITCH_PID" ]]; then kill "$SWITCH_PID" 2>/dev/null || true; wait "$SWITCH_PID" 2>/dev/null || true; fi
    for ns in vsu2-a vsu2-b vsu2-c; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
exec 9>/tmp/vswitch-build.lock
[[ "${VSWITCH_LOCK_HELD:-0}" == 1 ]] || flock 9
if [[ $BUILD == 1 ]]; then (cd "$ROOT" && mvn -B -q -o -pl switch -am package -DskipTests); fi
cc -O2 -o "$WORK/udpblast" "$ROOT/bench/tools/udpblast.c"
BLAST="$WORK/udpblast"
JVM_FLAGS=(@"$ROOT/jvm.options" -XX:+UseParallelGC -Xms256m)
A="ip netns exec vsu2-a"; B="ip netns exec vsu2-b"; C="ip netns exec vsu2-c"

underlay() {
    ip netns add vsu2-a; ip netns add vsu2-b
    ip link add vsu2-a0 type veth peer name vsu2-b0
    ip link set vsu2-a0 netns vsu2-a; ip link set vsu2-b0 netns vsu2-b
    $A ip link set lo up; $B ip link set lo up
    $A ip addr add 192.0.2.1/24 dev vsu2-a0; $A ip link set vsu2-a0 up
    $B ip addr add 192.0.2.2/24 dev vsu2-b0; $B ip link set vsu2-b0 up
    $A ip link add vx0 type vxlan id 42 local 192.0.2.1 remote 192.0.2.2 dstport 4789 dev vsu2-a0
    $A ip addr add 10.99.0.1/24 dev vx0; $A ip link set vx0 up
    $A ethtool -K vx0 tx off >/dev/null
    $A ip neigh add 10.99.0.2 lladdr 02:99:00:00:00:02 dev vx0 nud permanent
}

teardown() {
    if [[ -n "$SWITCH_PID" ]]; then kill "$SWITCH_PID"; wait "$SWITCH_PID" || true; SWITCH_PID=; fi
    for ns in vsu2-a vsu2-b vsu2-c; do ip netns del "$ns" 2>/dev/null || true; done
}

# measure NAME SINK_NS: the sink in SINK_NS, the sender in vsu2-a, both on core 0
measure() {
    local name="$1" sink="$2" r="$3"
    ip netns exec "$sink" taskset -c 0 "$BLAST" recv 10.99.0.2 9000 $((DURATION + 2)) >"$WORK/recv.txt" &
    local rp=$!
    $A taskset -c 0 "$BLAST" send 10.99.0.2 9000 22 "$DURATION" >"$WORK/send.txt"
    wait $rp
    local sent received pps
    sent=$(awk '{print $2}' "$WORK/send.txt")
    received=$(awk '{print $2}' "$WORK/recv.txt")
    pps=$(awk '{print $6}' "$WORK/recv.txt")
    echo "$name round $r: sent $sent received $received: $pps pps" | tee -a "$WORK/results.txt" >&2
    echo "$name $pps $sent $received" >>"$WORK/rows.txt"
}

kernel_round() {
    underlay
    $B ip link add vx0 type vxlan id 42 local 192.0.2.2 remote 192.0.2.1 dstport 4789 dev vsu2-b0
    $B ip link set vx0 address 02:99:00:00:00:02
    $B ip addr add 10.99.0.2/24 dev vx0; $B ip link set vx0 up
    measure kernel vsu2-b "$1"
    teardown
}

vswitch_round() {
    underlay
    ip netns add vsu2-c
    ip link add vsu2-c0 type veth peer name vsu2-c1
    ip link set vsu2-c0 netns vsu2-b; ip link set vsu2-c1 netns vsu2-c
    $B ip link set vsu2-c0 up
    $C ip link set lo up
    $C ip link set vsu2-c1 address 02:99:00:00:00:02
    $C ip addr add 10.99.0.2/24 dev vsu2-c1; $C ip link set vsu2-c1 up
    mkdir -p "$WORK/run"
    cat >"$WORK/vswitch.yaml" <<YAML
switch:
  mode: learning
  notify: poll
  workers: 1
  cpus: [1]
  runtime-dir: $WORK/run
ports:
  - {name: vx, type: vxlan, local: "192.0.2.2:4789", remote: 192.0.2.1, vni: 42}
  - {name: lan, type: afpacket, interface: vsu2-c0}
YAML
    # shellcheck disable=SC2086  # KERNEL_VXLAN_JVM_OPTS: extra JVM options, e.g. -Dvswitch.vxlan.segmentation=false
    $B taskset -c 1 "$JAVA_HOME/bin/java" "${JVM_FLAGS[@]}" ${KERNEL_VXLAN_JVM_OPTS:-} -jar "$ROOT/switch/target/vswitch.jar" run -c "$WORK/vswitch.yaml" >"$WORK/switch.log" 2>&1 &
    SWITCH_PID=$!
    for _ in $(seq 1 300); do grep -q "vswitch up" "$WORK/switch.log" && break; sleep 0.1; done
    grep -q "vswitch up" "$WORK/switch.log" || { cat "$WORK/switch.log" >&2; exit 1; }
    measure vswitch vsu2-c "$1"
    "$JAVA_HOME/bin/java" "${JVM_FLAGS[@]}" -jar "$ROOT/switch/target/vswitch.jar" stats \
        --counters "$WORK/run/counters" >"$WORK/stats-$1.txt" 2>&1 || true
    teardown
}

for ((r = 0; r < ROUNDS; r++)); do
    if ((r % 2 == 0)); then kernel_round "$r"; vswitch_round "$r"; else vswitch_round "$r"; kernel_round "$r"; fi
done
echo "vswitch counters of the last round:" >&2; cat "$WORK/stats-$((ROUNDS - 1)).txt" >&2
python3 - "$WORK/rows.txt" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, pps, sent, received = line.split()
    rows.setdefault(name, []).append((float(pps) / 1e6, int(sent), int(received)))
print(f"{'path':10} {'rounds':>6} {'Mpps at the sink: median (min-max)':>36} {'lost (sent - received), per round':>36}")
for name, v in rows.items():
    xs = [x[0] for x in v]
    print(f"{name:10} {len(v):>6} {statistics.median(xs):>18.3f} ({min(xs):.3f}-{max(xs):.3f})       {', '.join(str(x[1] - x[2]) for x in v)}")
PY
