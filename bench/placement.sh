#!/usr/bin/env bash
# Does the loopback follow the host's placement of the two vCPUs? One backend and one dpdk-testpmd
# virtio-user client (io forwarding, 64 B, tx_first 8), then N cycles of: 2.5 s of traffic (the client's
# Rx-pps over the last second, both ports), stop forwarding, pause the backend (SIGSTOP), measure the
# core-to-core cache-line round trip with bench/tools/c2c.c, resume. One line per cycle.
#
#   bench/placement.sh [--backend vswitch|dpdk] [--cycles N]
#
# This is how the loopback's "slow mode" was traced to the vCPU placement (bench/RESULTS.md).
# Holds /tmp/vswitch-build.lock for the whole run. Every process it starts is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BACKEND=vswitch
CYCLES=10
while [[ $# -gt 0 ]]; do
    case "$1" in
        --backend) BACKEND="$2"; shift 2 ;;
        --cycles) CYCLES="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "placement: unknown option $1" >&2; exit 2 ;;
    esac
done
[[ "$BACKEND" == vswitch || "$BACKEND" == dpdk ]] || { echo "placement: --backend vswitch|dpdk" >&2; exit 2; }
command -v dpdk-testpmd >/dev/null || { echo "placement: dpdk-testpmd not on PATH (./vswitch setup)" >&2; exit 2; }
command -v cc >/dev/null || { echo "placement: a C compiler is needed for the probe" >&2; exit 2; }

# shellcheck source=scripts/lock.sh
source "$ROOT/bench/scripts/lock.sh"
bench_lock placement
JAVA_HOME="${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
[[ -x "$JAVA_HOME/bin/java" ]] || JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64
JAR="$ROOT/switch/target/vswitch.jar"
[[ "$BACKEND" == dpdk || -f "$JAR" ]] || { echo "placement: build first (./vswitch build)" >&2; exit 2; }
WORK="$(mktemp -d /tmp/vswitch-placement.XXXXXX)"
PREFIX="vsplace$$"
BACKEND_PID=
CLIENT_PID=
cleanup() {
    for pid in "$CLIENT_PID" "$BACKEND_PID"; do
        [[ -n "$pid" ]] && { kill -CONT "$pid" 2>/dev/null; kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; } || true
    done
    rm -f /dev/hugepages/"$PREFIX"* 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
cc -O2 -pthread -o "$WORK/c2c" "$ROOT/bench/tools/c2c.c"
mkdir -p "$WORK/run"

if [[ "$BACKEND" == vswitch ]]; then
    cat >"$WORK/vswitch.yaml" <<EOY
switch:
  mode: cross-connect
  notify: poll
  workers: 1
  cpus: [1]
  runtime-dir: $WORK/run
ports:
  - name: p0
    socket: $WORK/run/p0.sock
  - name: p1
    socket: $WORK/run/p1.sock
links:
  - [p0, p1]
EOY
    taskset -c 1 "$JAVA_HOME/bin/java" @"$ROOT/jvm.options" -XX:+UseParallelGC -Xms256m \
        -jar "$JAR" run -c "$WORK/vswitch.yaml" >"$WORK/backend.log" 2>&1 &
    BACKEND_PID=$!
    SOCK0="$WORK/run/p0.sock"; SOCK1="$WORK/run/p1.sock"
else
    mkfifo "$WORK/backend.in"; exec 8<>"$WORK/backend.in"
    dpdk-testpmd -l 0,1 --main-lcore 0 --no-pci --file-prefix="${PREFIX}b" -m 512 --single-file-segments \
        --vdev "net_vhost0,iface=$WORK/run/v0.sock" --vdev "net_vhost1,iface=$WORK/run/v1.sock" \
        -- --nb-cores=1 --forward-mode=io <&8 >"$WORK/backend.log" 2>&1 &
    BACKEND_PID=$!
    SOCK0="$WORK/run/v0.sock"; SOCK1="$WORK/run/v1.sock"
fi
for _ in $(seq 600); do [[ -S "$SOCK0" && -S "$SOCK1" ]] && break; sleep 0.1; done
[[ -S "$SOCK1" ]] || { echo "placement: the backend did not open its sockets" >&2; tail "$WORK/backend.log" >&2; exit 1; }

mkfifo "$WORK/client.in"; exec 7<>"$WORK/client.in"
stdbuf -o0 dpdk-testpmd -l 0,1 --main-lcore 1 --no-pci --file-prefix="${PREFIX}c" -m 512 --single-file-segments \
    --vdev "net_virtio_user0,path=$SOCK0" --vdev "net_virtio_user1,path=$SOCK1" \
    -- -i --nb-cores=1 --txpkts=64 --forward-mode=io <&7 >"$WORK/client.log" 2>&1 &
CLIENT_PID=$!
for _ in $(seq 600); do grep -q 'testpmd> ' "$WORK/client.log" && break; sleep 0.1; done
echo "placement: backend $BACKEND; cycles of 2.5 s traffic, then the core-to-core round trip with the busy loops paused"
for k in $(seq "$CYCLES"); do
    echo "start tx_first 8" >&7
    sleep 1.5; echo "show port stats all" >&7; sleep 1; echo "show port stats all" >&7; sleep 0.3
    mpps=$(grep Rx-pps "$WORK/client.log" | tail -2 | awk '{s += $2} END {printf "%.2f", s / 1e6}')
    echo stop >&7; sleep 0.3
    kill -STOP "$BACKEND_PID"; ns=$("$WORK/c2c" 0 1 50000); kill -CONT "$BACKEND_PID"
    printf 'cycle %2d: %6s Mpps   core-to-core round trip %4s ns\n' "$k" "$mpps" "$ns"
done
echo quit >&7
