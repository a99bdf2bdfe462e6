#!/usr/bin/env bash
# Loopback throughput against real peers: a dpdk-testpmd virtio-user client (two ports, io forwarding,
# 64-byte frames started with tx_first) forwards everything it receives back out of its other port; the
# backend under test connects the two ports. Alternates, rep after rep:
#
#   part 1  vswitch cross-connect        vs  DPDK's own vhost backend (dpdk-testpmd net_vhost, io forwarding)
#   part 2  vswitch learning bridge      vs  vswitch cross-connect, both with the client in mac forwarding
#   part 3  vswitch through a VXLAN tunnel vs vswitch cross-connect (io): p0 <-> vxlan port A, UDP over
#           loopback (127.0.0.1), vxlan port B <-> p1, so every frame is encapsulated (sendmmsg) and
#           decapsulated (recvmmsg) once on the worker's core, the kernel's UDP path included
#   part 4  vswitch through afpacket ports vs vswitch cross-connect (io): p0 <-> afpacket on vsuLB<pid>a, the
#           veth pair's other end vsuLB<pid>b <-> afpacket <-> p1 (as root; the pair is removed on exit)
#   part 5  vswitch cross-connect with 2 queue pairs per port vs 1 pair (io), both with the client sending
#           many flows (--txonly-multi-flow); the 2-pair client is virtio-user queues=2 with --rxq=2 --txq=2.
#           One worker owns both pairs (the machine has 2 cores): this measures what serving two pairs costs
#           on one core, not scaling
#   part 6  the same with DPDK's vhost backend (net_vhost queues=2, --rxq=2 --txq=2) vs 1 pair: whether the
#           2-pair client itself is the limit
#
# and prints per run and in summary the aggregate Mpps (median, min-max) and the ratios. Mpps come from the
# client's own port counters: (sum of RX-packets deltas + sum of TX-packets deltas) / 2 over both ports,
# divided by the wall-clock window between two "show port stats all", taken after the warm-up.
#
# Cores (2): the client's forwarding lcore on core 0 (-l 0,1 --main-lcore 1 --nb-cores=1; its main lcore
# sleeps in the prompt's read()); the backend's busy loop on core 1: vswitch's worker (cpus: [1], the whole
# JVM confined to core 1 by taskset) or the DPDK backend's forwarding lcore (-l 0,1 --main-lcore 0
# --nb-cores=1; its main lcore blocks on stdin).
#
#   bench/loopback.sh [--duration S] [--warmup S] [--reps N] [--parts 1,2] [--tx-first-bursts N]
#                     [--client-devargs K=V,...] [--client-fwd io|mac] [--no-dpdk] [--no-huge] [--no-build]
#                     [--out FILE]
#
# Defaults: 20 s measured after 5 s warm-up, 3 reps, both parts, "start tx_first 8" (8 bursts of 32 frames
# per port in flight: with 1 burst the loop is latency-bound, not throughput-bound), 512 MB of hugepages
# per testpmd. --client-devargs is appended to both net_virtio_user vdevs (e.g. packed_vq=1 for packed
# rings, in_order=0; both backends offer VIRTIO_F_IN_ORDER and VIRTIO_F_RING_PACKED).
# --client-fwd mac runs part 1 with the client in mac forwarding (it writes each frame's addresses, as a guest
# that builds or rewrites its frames does, so the frames' lines are the client's when the backend reads them);
# --no-dpdk leaves part 1's DPDK runs out (A/B of two vswitch builds or flags, placement from the probes).
#
# Core-to-core latency: on a 2-vCPU VM the host moves the two vCPUs between placements in which one cache
# line's round trip between them costs about 50-130 ns or about 500-560 ns, and the loopback moves with it
# (both backends: vswitch about 10.5 -> 3.1 Mpps, DPDK about 15 -> 8 Mpps). So every run records that round
# trip (bench/tools/c2c.c, built with cc) before the backend starts and right after the measured window,
# with both busy loops paused, and the summary gives medians over all runs and over the runs whose both
# probes were "near" (< C2C_FAR_NS, default 300 ns). Compare backends only within one placement.
#
# LOOPBACK_VSWITCH_JAR (environment) runs another build of the switch (with --no-build), to compare two builds.
# LOOPBACK_VSWITCH_BURST (environment) sets the switch's burst (frames taken from a queue per pass; default 64).
# LOOPBACK_VSWITCH_JVM_OPTS (environment) is added to the switch's JVM options; -Dvswitch.loopTiming=true adds the
# worker's busy share of the time to each vswitch line (its idle loops are many but short: their count misleads).
# E.g. to record JFR:
#   LOOPBACK_VSWITCH_JVM_OPTS='-XX:StartFlightRecording=filename=/tmp/lb.jfr,delay=10s,duration=10s'
#
# LOOPBACK_PERF=1 records the client with `perf record` (software clock) over each window into the work
# directory (keep it with KEEP_WORK=1); LOOPBACK_CLIENT_ARGS adds testpmd application options to the client
# (e.g. --total-num-mbufs=4096).
#
# Holds /tmp/vswitch-build.lock for the build and the whole run (never overlap a build or another benchmark);
# set VSWITCH_LOCK_HELD=1 if the caller already holds it. Every process it starts is killed on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION=20
WARMUP=5
REPS=3
PARTS=1,2
QUEUES=1
MULTI_FLOW=0
TX_FIRST=8
CLIENT_DEVARGS=
PART1_FWD=io
PART1_DPDK=1
HUGE=1
BUILD=1
OUT=
ORIG_ARGS=("$@")

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --duration) DURATION="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --reps) REPS="$2"; shift 2 ;;
        --parts) PARTS="$2"; shift 2 ;;
        --tx-first-bursts) TX_FIRST="$2"; shift 2 ;;
        --client-devargs) CLIENT_DEVARGS="$2"; shift 2 ;;
        --client-fwd) PART1_FWD="$2"; shift 2 ;;
        --no-dpdk) PART1_DPDK=0; shift ;;
        --no-huge) HUGE=0; shift ;;
        --no-build) BUILD=0; shift ;;
        --out) OUT="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "loopback: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

[[ "$PART1_FWD" == io || "$PART1_FWD" == mac ]] || { echo "loopback: --client-fwd takes io or mac, not $PART1_FWD" >&2; exit 2; }
command -v dpdk-testpmd >/dev/null || { echo "loopback: dpdk-testpmd not on PATH (apt-get install dpdk)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "loopback: python3 is needed to parse testpmd's counters" >&2; exit 2; }

# shellcheck source=scripts/lock.sh
source "$ROOT/bench/scripts/lock.sh"
bench_lock loopback

if [[ -z "${JAVA_HOME:-}" || ! -x "$JAVA_HOME/bin/java" ]]; then
    JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64
fi
export JAVA_HOME
export MAVEN_OPTS="${MAVEN_OPTS:---sun-misc-unsafe-memory-access=allow}"
# the switch under test: the repository's build, or LOOPBACK_VSWITCH_JAR (to compare two builds; --no-build)
JAR="${LOOPBACK_VSWITCH_JAR:-$ROOT/switch/target/vswitch.jar}"
# what ./vswitch run passes to the JVM
JVM_FLAGS=(@"$ROOT/jvm.options" -XX:+UseParallelGC -Xms256m)

stale() {
    [[ -f "$JAR" ]] || return 0
    [[ -n "$(find "$ROOT"/{rings,notify,vhost-user,config,switch}/src "$ROOT/pom.xml" -newer "$JAR" -type f -print -quit 2>/dev/null)" ]]
}
if [[ $BUILD == 1 ]] && stale; then
    echo "loopback: building vswitch (mvn -pl switch -am package -DskipTests)..." >&2
    (cd "$ROOT" && mvn -B -q -pl switch -am package -DskipTests)
fi
[[ -f "$JAR" ]] || { echo "loopback: $JAR missing (build it or drop --no-build)" >&2; exit 2; }

WORK="$(mktemp -d /tmp/vswitch-loopback.XXXXXX)"
C2C_FAR_NS="${C2C_FAR_NS:-300}"
C2C=
if command -v cc >/dev/null && cc -O2 -pthread -o "$WORK/c2c" "$ROOT/bench/tools/c2c.c" 2>/dev/null; then
    C2C="$WORK/c2c"
else
    echo "loopback: no C compiler: runs are not tagged with the core-to-core latency" >&2
fi
c2c() {   # the cache-line round trip between cpu 0 and cpu 1 now, in ns ("?" without the probe)
    if [[ -n "$C2C" ]]; then "$C2C" 0 1 50000 2>/dev/null || echo "?"; else echo "?"; fi
}
PREFIX="vsloop$$"
BACKEND_PID=
CLIENT_PID=
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no -- rings notify vhost-user config switch 2>/dev/null)" ]]; then
    COMMIT="$COMMIT + uncommitted changes in the switch's modules"
fi

stop_pid() {   # TERM, then KILL after 5 s
    local pid="$1"
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

stop_all() {
    stop_pid "$CLIENT_PID"; CLIENT_PID=
    stop_pid "$BACKEND_PID"; BACKEND_PID=
    exec 7>&- 8>&-
    rm -f /dev/hugepages/"$PREFIX"* 2>/dev/null || true
    rm -rf /var/run/dpdk/"$PREFIX"* 2>/dev/null || true
}

cleanup() {
    stop_all
    ip link del "${VETH}a" 2>/dev/null || true
    if [[ -n "${KEEP_WORK:-}" ]]; then
        echo "loopback: logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

EAL_MEM=(-m 512 --single-file-segments)
[[ $HUGE == 1 ]] || EAL_MEM=(--no-huge -m 512)

wait_for() {   # wait_for CONDITION SECONDS WHAT: evaluates CONDITION every 0.1 s
    local cond="$1" secs="$2" what="$3"
    for _ in $(seq $((secs * 10))); do
        if eval "$cond"; then return 0; fi
        sleep 0.1
    done
    echo "loopback: timed out waiting for $what; last lines of the logs:" >&2
    tail -n 20 "$WORK"/backend.log "$WORK"/client.log >&2 2>/dev/null || true
    return 1
}

VETH="vsuLB$$"
# start_vswitch MODE: cross-connect, learning, vxlan or afpacket; ports p0/p1 as server sockets in $WORK/run
start_vswitch() {
    local mode="$1" dir="$WORK/run" uplinks=""
    case "$mode" in
        vxlan)
            uplinks=$'  - {name: ua, type: vxlan, local: "127.0.0.1:47891", remote: "127.0.0.1:47892", vni: 42}\n'
            uplinks+=$'  - {name: ub, type: vxlan, local: "127.0.0.1:47892", remote: "127.0.0.1:47891", vni: 42}\n'
            mode=cross-connect ;;
        cross-mq)
            mode=cross-connect ;;
        afpacket)
            ip link show "${VETH}a" >/dev/null 2>&1 || {
                ip link add "${VETH}a" type veth peer name "${VETH}b"
                ip link set "${VETH}a" up; ip link set "${VETH}b" up
            }
            uplinks="  - {name: ua, type: afpacket, interface: ${VETH}a}"$'\n'
            uplinks+="  - {name: ub, type: afpacket, interface: ${VETH}b}"$'\n'
            mode=cross-connect ;;
    esac
    rm -rf "$dir"; mkdir -p "$dir"
    cat >"$WORK/vswitch.yaml" <<EOF
switch:
  mode: $mode
  notify: poll
  workers: 1
  cpus: [1]
  runtime-dir: $dir${LOOPBACK_VSWITCH_BURST:+
  burst: $LOOPBACK_VSWITCH_BURST}
ports:
  - name: p0
    socket: $dir/p0.sock
    queues: $QUEUES
  - name: p1
    socket: $dir/p1.sock
    queues: $QUEUES
EOF
    if [[ -n "$uplinks" ]]; then
        printf '%s' "$uplinks" >>"$WORK/vswitch.yaml"
        printf 'links:\n  - [p0, ua]\n  - [ub, p1]\n' >>"$WORK/vswitch.yaml"
    elif [[ "$mode" == cross-connect ]]; then
        printf 'links:\n  - [p0, p1]\n' >>"$WORK/vswitch.yaml"
    fi
    # = ./vswitch run -c FILE (same JVM flags), without the launcher's rebuild check; JVM confined to core 1
    # shellcheck disable=SC2086  # LOOPBACK_VSWITCH_JVM_OPTS: extra JVM options, e.g. a JFR recording
    taskset -c 1 "$JAVA_HOME/bin/java" "${JVM_FLAGS[@]}" ${LOOPBACK_VSWITCH_JVM_OPTS:-} -jar "$JAR" run -c "$WORK/vswitch.yaml" \
        >"$WORK/backend.log" 2>&1 &
    BACKEND_PID=$!
    wait_for "[[ -S $dir/p0.sock && -S $dir/p1.sock ]]" 30 "vswitch sockets"
    SOCK0="$dir/p0.sock"; SOCK1="$dir/p1.sock"
}

# start_dpdk_vhost: DPDK's vhost backend, io forwarding, forwarding lcore on core 1
start_dpdk_vhost() {
    local dir="$WORK/run"
    rm -rf "$dir"; mkdir -p "$dir"
    rm -f "$WORK/backend.in"; mkfifo "$WORK/backend.in"
    exec 8<>"$WORK/backend.in"   # stdin that never ends: non-interactive testpmd exits on EOF
    stdbuf -o0 -e0 dpdk-testpmd -l 0,1 --main-lcore 0 --no-pci --file-prefix="${PREFIX}b" "${EAL_MEM[@]}" \
        --vdev "net_vhost0,iface=$dir/v0.sock,queues=$QUEUES" --vdev "net_vhost1,iface=$dir/v1.sock,queues=$QUEUES" \
        -- --nb-cores=1 --forward-mode=io --rxq="$QUEUES" --txq="$QUEUES" <&8 >"$WORK/backend.log" 2>&1 &
    BACKEND_PID=$!
    wait_for "[[ -S $dir/v0.sock && -S $dir/v1.sock ]]" 60 "DPDK vhost sockets"
    SOCK0="$dir/v0.sock"; SOCK1="$dir/v1.sock"
}

client_cmd() {   # client_cmd TEXT: one command at the client's prompt; waits for the next prompt
    local before
    before=$(grep -c 'testpmd> ' "$WORK/client.log" || true)
    echo "$1" >&7
    wait_for "[[ \$(grep -c 'testpmd> ' '$WORK/client.log' || true) -gt $before ]]" 30 "client: $1" || return 1
}

switch_stats() {   # switch_stats FILE: vswitch stats of the running switch (a short JVM run, outside the window)
    "$JAVA_HOME/bin/java" "${JVM_FLAGS[@]}" -Xms16m -XX:TieredStopAtLevel=1 -jar "$JAR" stats \
        --counters "$WORK/run/counters" >"$1" 2>&1 || true
}

# worker_loops A B: "idle% frames-per-busy-loop busy%-of-time" of worker 0 between two stats snapshots (the last
# is "-" unless the switch runs with -Dvswitch.loopTiming=true, e.g. through LOOPBACK_VSWITCH_JVM_OPTS)
worker_loops() {
    python3 - "$1" "$2" <<'PY' 2>/dev/null || echo "? ? -"
import re, sys
def read(path):
    t = open(path).read()
    busy = int(re.search(r"busy_loops\s+(\d+)", t).group(1))
    idle = int(re.search(r"idle_loops\s+(\d+)", t).group(1))
    frames = sum(int(m.group(1)) for m in re.finditer(r"^p\d+\s+(\d+)", t, re.M))   # rx_packets
    timing = re.search(r"busy_ns\s+(\d+)\s+idle_ns\s+(\d+)", t)
    return busy, idle, frames, (int(timing.group(1)), int(timing.group(2))) if timing else None
b0, i0, f0, t0 = read(sys.argv[1]); b1, i1, f1, t1 = read(sys.argv[2])
db, di, df = b1 - b0, i1 - i0, f1 - f0
busy_time = "-"
if t0 and t1:
    bn, idn = t1[0] - t0[0], t1[1] - t0[1]
    busy_time = f"{100.0 * bn / max(1, bn + idn):.1f}"
print(f"{100.0 * di / max(1, db + di):.1f} {df / max(1, db):.1f} {busy_time}")
PY
}

# run_client FWD: the virtio-user client; writes "rx_mpps tx_mpps aggregate_mpps seconds" to $WORK/client.result
run_client() {
    local fwd="$1" app=(-i --nb-cores=1 --txpkts=64 ${LOOPBACK_CLIENT_ARGS:-})
    local v0="net_virtio_user0,path=$SOCK0" v1="net_virtio_user1,path=$SOCK1"
    if [[ -n "$CLIENT_DEVARGS" ]]; then
        v0+=",$CLIENT_DEVARGS"; v1+=",$CLIENT_DEVARGS"
    fi
    if [[ "$MULTI_FLOW" == 1 ]]; then
        app+=(--txonly-multi-flow)
    fi
    if [[ "$QUEUES" -gt 1 ]]; then
        v0+=",queues=$QUEUES"; v1+=",queues=$QUEUES"
        app+=(--rxq="$QUEUES" --txq="$QUEUES")
    fi
    if [[ "$fwd" == mac ]]; then
        v0+=",mac=02:00:00:00:00:01"; v1+=",mac=02:00:00:00:00:02"
        app+=(--forward-mode=mac --eth-peer=0,02:00:00:00:00:02 --eth-peer=1,02:00:00:00:00:01)
    else
        app+=(--forward-mode=io)
    fi
    rm -f "$WORK/client.in"; mkfifo "$WORK/client.in"
    exec 7<>"$WORK/client.in"
    : >"$WORK/client.log"
    stdbuf -o0 -e0 dpdk-testpmd -l 0,1 --main-lcore 1 --no-pci --file-prefix="${PREFIX}c" "${EAL_MEM[@]}" \
        --vdev "$v0" --vdev "$v1" -- "${app[@]}" <&7 >"$WORK/client.log" 2>&1 &
    CLIENT_PID=$!
    wait_for "grep -q 'testpmd> ' '$WORK/client.log'" 60 "client prompt" || return 1
    client_cmd "start tx_first $TX_FIRST" || return 1
    if [[ "$BACKEND" == vswitch-* ]]; then   # the worker's busy/idle loops, from mid-warm-up to the end
        sleep "$(echo "$WARMUP / 2" | bc -l)"
        switch_stats "$WORK/stats-a.txt"
        sleep "$(echo "$WARMUP / 2" | bc -l)"
    else
        sleep "$WARMUP"
    fi
    local o0 o1 t0 t1
    o0=$(stat -c %s "$WORK/client.log"); t0=$(date +%s.%N)
    client_cmd "show port stats all" || return 1
    if [[ -n "${LOOPBACK_PERF:-}" ]]; then   # sample the client's own code during the window (perf, software clock)
        perf record -q -F 999 -p "$CLIENT_PID" -o "$WORK/run$((RUN + 1))-client.perf" -- sleep "$DURATION" >/dev/null 2>&1 || sleep "$DURATION"
    else
        sleep "$DURATION"
    fi
    o1=$(stat -c %s "$WORK/client.log"); t1=$(date +%s.%N)
    client_cmd "show port stats all" || return 1
    if [[ "$BACKEND" == vswitch-* ]]; then
        switch_stats "$WORK/stats-b.txt"
    fi
    client_cmd "stop" || return 1
    kill -STOP "$BACKEND_PID" 2>/dev/null || true
    C2C_AFTER=$(c2c)
    kill -CONT "$BACKEND_PID" 2>/dev/null || true
    echo "quit" >&7
    stop_pid "$CLIENT_PID"; CLIENT_PID=
    exec 7>&-
    python3 - "$WORK/client.log" "$o0" "$o1" "$t0" "$t1" >"$WORK/client.result" <<'PY'
import re, sys
log, o0, o1, t0, t1 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
text = open(log, errors="replace").read()
def totals(chunk):
    rx = tx = ports = 0
    for block in re.split(r"NIC statistics for port", chunk)[1:3]:
        rx += int(re.search(r"RX-packets:\s*(\d+)", block).group(1))
        tx += int(re.search(r"TX-packets:\s*(\d+)", block).group(1))
        ports += 1
    if ports != 2:
        sys.exit("could not find the stats of both ports in the client log")
    return rx, tx
rx0, tx0 = totals(text[o0:o1])
rx1, tx1 = totals(text[o1:])
dt = t1 - t0
rx, tx = (rx1 - rx0) / dt / 1e6, (tx1 - tx0) / dt / 1e6
print(f"{rx:.3f} {tx:.3f} {(rx + tx) / 2:.3f} {dt:.2f}")
PY
}

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
RUN=0

measure() {   # measure LABEL BACKEND(vswitch-cross|vswitch-learning|dpdk) FWD(io|mac) REP
    local label="$1" backend="$2" fwd="$3" rep="$4" rx tx agg secs
    BACKEND="$backend"
    QUEUES="${5:-1}"
    MULTI_FLOW="${6:-0}"
    C2C_BEFORE=$(c2c)
    C2C_AFTER="?"
    case "$backend" in
        vswitch-cross) start_vswitch cross-connect ;;
        vswitch-cross-mq) start_vswitch cross-mq ;;
        vswitch-learning) start_vswitch learning ;;
        vswitch-vxlan) start_vswitch vxlan ;;
        vswitch-afpacket) start_vswitch afpacket ;;
        dpdk) start_dpdk_vhost ;;
    esac
    if ! run_client "$fwd"; then
        echo "loopback: $label rep $rep failed; client log:" >&2
        tail -30 "$WORK/client.log" >&2
        echo "backend log:" >&2
        tail -30 "$WORK/backend.log" >&2
        exit 1
    fi
    RUN=$((RUN + 1))
    local loops="" idle perloop busytime
    if [[ "$backend" == vswitch-* ]]; then   # the switch's own counters (whole run, warm-up included)
        switch_stats "$WORK/run$RUN-vswitch-stats.txt"
        read -r idle perloop busytime < <(worker_loops "$WORK/stats-a.txt" "$WORK/stats-b.txt")
        loops="; worker: ${idle}% of loops idle, ${perloop} frames per busy loop"
        if [[ "$busytime" != - ]]; then loops+=", busy ${busytime}% of the time"; fi
    fi
    stop_all
    cp "$WORK/client.log" "$WORK/run$RUN-client.log"
    cp "$WORK/backend.log" "$WORK/run$RUN-backend.log"
    # frames the client could not put on the backend's rings (whole run): > 0 when the backend is the slower side
    local dropped
    dropped=$(grep -A3 'Accumulated forward statistics' "$WORK/client.log" | sed -n 's/.*TX-dropped: *\([0-9]*\).*/\1/p' | tail -1)
    read -r rx tx agg secs <"$WORK/client.result"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$rep" "$agg" "$rx" "$tx" "${dropped:-?}" "$C2C_BEFORE" "$C2C_AFTER" >>"$RESULTS"
    printf 'loopback: %-28s rep %d: %7.3f Mpps aggregate (client rx %.3f, tx %.3f Mpps, %s s window; client tx-dropped %s%s; core-to-core round trip %s ns before, %s ns after)\n' \
        "$label" "$rep" "$agg" "$rx" "$tx" "$secs" "${dropped:-?}" "$loops" "$C2C_BEFORE" "$C2C_AFTER" >&2
}

echo "loopback: commit $COMMIT, $(nproc) cores, ${DURATION} s measured after ${WARMUP} s warm-up, $REPS reps," \
     "tx_first $TX_FIRST burst(s), $([[ $HUGE == 1 ]] && echo hugepages || echo no hugepages)${CLIENT_DEVARGS:+, client devargs $CLIENT_DEVARGS}; logs in $WORK" >&2
for rep in $(seq "$REPS"); do
    if [[ ",$PARTS," == *",1,"* ]]; then
        measure "vswitch cross-connect ($PART1_FWD)" vswitch-cross "$PART1_FWD" "$rep"
        [[ $PART1_DPDK == 0 ]] || measure "dpdk vhost ($PART1_FWD)" dpdk "$PART1_FWD" "$rep"
    fi
    if [[ ",$PARTS," == *",2,"* ]]; then
        measure "vswitch learning (mac)" vswitch-learning mac "$rep"
        measure "vswitch cross-connect (mac)" vswitch-cross mac "$rep"
    fi
    if [[ ",$PARTS," == *",3,"* ]]; then
        measure "vswitch via vxlan (io)" vswitch-vxlan io "$rep"
        measure "vswitch cross-connect (io)" vswitch-cross io "$rep"
    fi
    if [[ ",$PARTS," == *",4,"* ]]; then
        measure "vswitch via afpacket (io)" vswitch-afpacket io "$rep"
        [[ ",$PARTS," == *",3,"* ]] || measure "vswitch cross-connect (io)" vswitch-cross io "$rep"
    fi
    if [[ ",$PARTS," == *",5,"* ]]; then
        measure "vswitch 2 pairs (io, flows)" vswitch-cross-mq io "$rep" 2 1
        measure "vswitch 1 pair (io, flows)" vswitch-cross-mq io "$rep" 1 1
    fi
    if [[ ",$PARTS," == *",6,"* ]]; then
        measure "dpdk vhost 2 pairs (io, flows)" dpdk io "$rep" 2 1
        measure "dpdk vhost 1 pair (io, flows)" dpdk io "$rep" 1 1
    fi
done

SUMMARY="$(python3 - "$RESULTS" "$C2C_FAR_NS" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
far_ns = float(sys.argv[2])
def near(before, after):
    try:
        return float(before) < far_ns and float(after) < far_ns
    except ValueError:
        return False
for title, keep in (("all runs", lambda r: True),
                    (f"runs with both core-to-core probes < {far_ns:.0f} ns (near placement)", lambda r: near(r[6], r[7]))):
    by = {}
    for r in rows:
        if keep(r):
            by.setdefault(r[0], []).append(float(r[2]))
    print(f"-- {title}")
    if not by:
        print("   none")
        continue
    med = {k: statistics.median(v) for k, v in by.items()}
    print(f"{'backend (client forwarding)':30s} {'runs':>4s}  {'Mpps median':>11s}  {'min-max':>15s}")
    for k, v in by.items():
        print(f"{k:30s} {len(v):4d}  {med[k]:11.3f}  {min(v):7.3f}-{max(v):7.3f}")
    def ratio(a, b, target):
        if a in med and b in med and med[b] > 0:
            r = med[a] / med[b]
            print(f"ratio {a} / {b} = {r:.3f}  (target >= {target}: {'met' if r >= target else 'NOT met'})")
    ratio("vswitch cross-connect (io)", "dpdk vhost (io)", 1.0)
    ratio("vswitch cross-connect (mac)", "dpdk vhost (mac)", 1.0)
    ratio("vswitch learning (mac)", "vswitch cross-connect (mac)", 0.95)
    ratio("vswitch via vxlan (io)", "vswitch cross-connect (io)", 0.0)
    ratio("vswitch via afpacket (io)", "vswitch cross-connect (io)", 0.0)
    ratio("vswitch 2 pairs (io, flows)", "vswitch 1 pair (io, flows)", 0.0)
    ratio("dpdk vhost 2 pairs (io, flows)", "dpdk vhost 1 pair (io, flows)", 0.0)
PY
)"
echo
echo "loopback: command: bench/loopback.sh${ORIG_ARGS[*]:+ ${ORIG_ARGS[*]}} (commit $COMMIT, $(date -u +%Y-%m-%dT%H:%MZ))"
echo "$SUMMARY"
if [[ -n "$OUT" ]]; then
    cp "$RESULTS" "$OUT"
fi
