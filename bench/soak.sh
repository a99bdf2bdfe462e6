#!/usr/bin/env bash
# Soak: the switch runs for N minutes under traffic, churn and hostile frontends, and must end where it
# started. One switch (cross-connect, poll, worker on cpu 1), six ports:
#
#   lb0 <-> lb1     loopback: one dpdk-testpmd (two virtio-user ports, io forwarding, tx_first) for the whole soak
#   ch0 <-> ch1     churn: a dpdk-testpmd that connects, forwards for 2-8 s and is then SIGKILLed (2 times in 3)
#                   or quits cleanly, again and again (its hugepage files are removed after each kill)
#   hostile, idle   bench/tools/hostile_frontend.py every ~10 s on "hostile": framing errors, refused messages
#                   carrying descriptors, a malicious guest (runt frames, an avail.idx jump); "idle" never connects
#
# It prints the switch's RSS, open descriptors and mappings (/proc/PID/{status,fd,maps}) and its live heap
# after a full GC (jcmd GC.class_histogram) at three idle points: before any frontend, after a warm-up round
# (one churn client and one hostile round came and went: the baseline), and at the end once every frontend
# is gone; with SOAK_NMT=1 also the JVM's native memory summary. Then it checks, and exits 1 unless:
#   - descriptors and mappings are back to the baseline (the differences are listed otherwise);
#   - the accounting closes exactly: sum rx_packets = sum tx_packets + forwarding drops (rx_ring_full,
#     no_buffers, port_down, over_mtu, vlan), and drop_invalid equals the invalid frames the hostile
#     frontend sent (never counted as rx); drop_bad_offload_header (refused virtio-net headers) is, like
#     drop_invalid, counted apart from rx, so it is no forwarding drop: printed, not in the sum;
#   - no queue fault on the loopback ports, and the switch is still running.
#
#   bench/soak.sh [--minutes N] [--no-build] [--out FILE]        (default 3 minutes; the target run is 30)
#
# Holds /tmp/vswitch-build.lock for the whole run (VSWITCH_LOCK_HELD=1 if the caller holds it). Needs
# dpdk-testpmd, python3, jcmd (the JDK's), and hugepages (512 MiB per testpmd). Kills what it started on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MINUTES=3
BUILD=1
OUT=

while [[ $# -gt 0 ]]; do
    case "$1" in
        --minutes) MINUTES="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --out) OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "soak: unknown option $1" >&2; exit 2 ;;
    esac
done
command -v dpdk-testpmd >/dev/null || { echo "soak: dpdk-testpmd not on PATH" >&2; exit 2; }
command -v python3 >/dev/null || { echo "soak: python3 needed" >&2; exit 2; }

# shellcheck source=scripts/lock.sh
source "$ROOT/bench/scripts/lock.sh"
bench_lock soak
if [[ -z "${JAVA_HOME:-}" || ! -x "$JAVA_HOME/bin/jcmd" ]]; then
    JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64
fi
export JAVA_HOME
JAR="$ROOT/switch/target/vswitch.jar"
JVM_FLAGS=(@"$ROOT/jvm.options" -XX:+UseParallelGC -Xms256m)
[[ "${SOAK_NMT:-}" == 1 ]] && JVM_FLAGS+=(-XX:NativeMemoryTracking=summary)
if [[ $BUILD == 1 ]]; then
    (cd "$ROOT" && mvn -B -q -o -pl switch -am package -DskipTests)
fi
[[ -f "$JAR" ]] || { echo "soak: $JAR missing" >&2; exit 2; }

WORK="$(mktemp -d /tmp/vswitch-soak.XXXXXX)"
RUN="$WORK/run"
mkdir -p "$RUN"
PREFIX="vsoak$$"
SWITCH_PID=
LOOP_PID=
CHURN_LOOP_PID=
HOSTILE_LOOP_PID=
exec 3>&1
if [[ -n "$OUT" ]]; then exec > >(tee "$OUT") 2>&1; fi

kill_tree() { [[ -n "${1:-}" ]] && kill -KILL "$1" 2>/dev/null; wait "$1" 2>/dev/null || true; }
cleanup() {
    kill_tree "$HOSTILE_LOOP_PID"; kill_tree "$CHURN_LOOP_PID"
    [[ -f "$WORK/churn.pid" ]] && kill -KILL "$(cat "$WORK/churn.pid")" 2>/dev/null || true
    kill_tree "$LOOP_PID"; kill_tree "$SWITCH_PID"
    exec 7>&- 2>/dev/null || true
    rm -f /dev/hugepages/"$PREFIX"* 2>/dev/null || true
    rm -rf /var/run/dpdk/"$PREFIX"* 2>/dev/null || true
    [[ -n "${KEEP_WORK:-}" ]] && echo "soak: work directory kept: $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

wait_for() {   # wait_for CONDITION SECONDS WHAT
    local deadline=$((SECONDS + $2))
    until eval "$1"; do
        (( SECONDS < deadline )) || { echo "soak: timed out waiting for $3" >&2; return 1; }
        sleep 0.1
    done
}

cat >"$WORK/soak.yaml" <<EOF
switch:
  mode: cross-connect
  notify: poll
  cpus: [1]
  runtime-dir: $RUN
ports:
  - {name: lb0, socket: $RUN/lb0.sock}
  - {name: lb1, socket: $RUN/lb1.sock}
  - {name: ch0, socket: $RUN/ch0.sock}
  - {name: ch1, socket: $RUN/ch1.sock}
  - {name: hostile, socket: $RUN/hostile.sock}
  - {name: idle, socket: $RUN/idle.sock}
links:
  - [lb0, lb1]
  - [ch0, ch1]
  - [hostile, idle]
EOF

"$JAVA_HOME/bin/java" "${JVM_FLAGS[@]}" -jar "$JAR" run -c "$WORK/soak.yaml" >"$WORK/switch.log" 2>&1 9>&- &
SWITCH_PID=$!
wait_for "[[ -S $RUN/lb0.sock && -S $RUN/hostile.sock ]]" 60 "the switch's sockets"

stats() { "$JAVA_HOME/bin/java" @"$ROOT/jvm.options" -Xms16m -XX:TieredStopAtLevel=1 -jar "$JAR" stats --counters "$RUN/counters"; }
# links_down REGEX: every port whose name matches has link_up 0 (found by its header in stats' first table,
# so that columns added to the tables never shift what is read)
links_down() {
    stats | awk -v re="$1" '
        !col && /^port / {for (i = 1; i <= NF; i++) if ($i == "link_up") col = i; next}
        col && NF == 0 {exit}
        col && $1 ~ re && $col != 0 {bad = 1}
        END {exit bad || !col}'
}

# heap_rss HEAP_INFO: the heap's committed sizes and how much of the heap's address range is resident (smaps)
heap_rss() {
    python3 - "$SWITCH_PID" "$1" <<'PY' 2>/dev/null || echo "heap residency unknown"
import re, sys
pid, info = sys.argv[1], open(sys.argv[2]).read()
committed = {m.group(1): int(m.group(2)) for m in re.finditer(r"(PSYoungGen|ParOldGen)\s+total (\d+)K", info)}
addrs = [int(a, 16) for a in re.findall(r"0x([0-9a-f]{16})", info)]
lo, hi = min(addrs), max(addrs)
rss, start = 0, None
for line in open(f"/proc/{pid}/smaps"):
    m = re.match(r"([0-9a-f]+)-([0-9a-f]+) ", line)
    if m:
        start, end = int(m.group(1), 16), int(m.group(2), 16)
        inside = start >= lo and end <= hi
    elif line.startswith("Rss:") and inside:
        rss += int(line.split()[1])
print(f"heap resident {rss / 1024:.1f} of {sum(committed.values()) / 1024:.0f} MiB committed: young {committed.get('PSYoungGen', 0) / 1024:.0f}, old {committed.get('ParOldGen', 0) / 1024:.0f}")
PY
}

# sample NAME: RSS, fds, mappings, live heap after a full GC; keeps the fd targets and maps for a diff
sample() {
    local name="$1" live
    # the full GC first (GC.class_histogram runs one), so that RSS is read after it
    live=$("$JAVA_HOME/bin/jcmd" "$SWITCH_PID" GC.class_histogram 2>/dev/null | awk '/^Total/ {printf "%.1f", $3 / 1048576}')
    ls -l /proc/"$SWITCH_PID"/fd | awk 'NR > 1 {print $NF}' | sed 's/[0-9]\+\]$/N]/' | sort >"$WORK/fd-$name"
    awk '{print $2, $6}' /proc/"$SWITCH_PID"/maps | sort >"$WORK/maps-$name"
    cat /proc/"$SWITCH_PID"/task/*/comm 2>/dev/null | sort >"$WORK/threads-$name"
    "$JAVA_HOME/bin/jcmd" "$SWITCH_PID" GC.heap_info >"$WORK/heap-$name" 2>/dev/null || true
    printf 'soak: %-9s RSS %6.1f MiB  fds %3d  mappings %4d  live heap after full GC %s MiB  (%s)\n' "$name" \
        "$(awk '/VmRSS/ {print $2 / 1024}' /proc/"$SWITCH_PID"/status)" "$(wc -l <"$WORK/fd-$name")" \
        "$(wc -l <"$WORK/maps-$name")" "$live" "$(heap_rss "$WORK/heap-$name")"
    if [[ "${SOAK_NMT:-}" == 1 ]]; then
        "$JAVA_HOME/bin/jcmd" "$SWITCH_PID" VM.native_memory summary >"$WORK/nmt-$name" 2>&1 || true
        grep -E '^Total|^-  +(Java Heap|Class|Thread|Code|GC|Internal|Other|Arena|Metaspace|Native Memory)' "$WORK/nmt-$name" \
            | sed 's/^/soak:     /' || true
    fi
}

EAL=(-l 0,1 --main-lcore 1 --no-pci -m 512 --single-file-segments)

churn_client() {   # one churn client: runs for $1 s, then SIGKILL ($2 = kill) or quit
    local prefix="${PREFIX}c$3" fifo="$WORK/churn.in"
    rm -f "$fifo"; mkfifo "$fifo"
    exec 6<>"$fifo"
    dpdk-testpmd "${EAL[@]}" --file-prefix="$prefix" --vdev "net_virtio_user0,path=$RUN/ch0.sock" \
        --vdev "net_virtio_user1,path=$RUN/ch1.sock" -- -i --nb-cores=1 --forward-mode=io --txpkts=64 \
        <&6 >"$WORK/churn.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$WORK/churn.pid"
    for _ in $(seq 300); do grep -q 'testpmd> ' "$WORK/churn.log" 2>/dev/null && break; sleep 0.1; done
    echo "start tx_first 4" >&6
    sleep "$1"
    if [[ "$2" == kill ]]; then
        kill -KILL "$pid" 2>/dev/null || true
    else
        echo "quit" >&6
    fi
    wait "$pid" 2>/dev/null || true
    exec 6>&-
    rm -f /dev/hugepages/"$prefix"* 2>/dev/null || true
    rm -rf /var/run/dpdk/"$prefix" 2>/dev/null || true
}

hostile_round() { python3 "$ROOT/bench/tools/hostile_frontend.py" "$RUN/hostile.sock" 1 >>"$WORK/hostile.log" 2>&1; }

# before anything attaches to the JVM: jcmd's first attach starts an "Attach Listener" thread that keeps a
# socket open for good (one descriptor, a thread stack and its malloc arena): held, but not a leak
ls -l /proc/"$SWITCH_PID"/fd | awk 'NR > 1 {print $NF}' | sed 's/[0-9]\+\]$/N]/' | sort >"$WORK/fd-preattach"
awk '{print $2, $6}' /proc/"$SWITCH_PID"/maps | sort >"$WORK/maps-preattach"
printf 'soak: pre-attach fds %3d  mappings %4d\n' "$(wc -l <"$WORK/fd-preattach")" "$(wc -l <"$WORK/maps-preattach")"
sample start
echo "soak: what the first jcmd attach added (held for the JVM's life; not a leak):"
diff "$WORK/fd-preattach" "$WORK/fd-start" | grep '^>' | sed 's/^/soak:   fd /' || true
printf 'soak:   threads now: %s\n' "$(ls /proc/"$SWITCH_PID"/task | wc -l)"
grep -l 'Attach Listener' /proc/"$SWITCH_PID"/task/*/comm 2>/dev/null | sed 's/^/soak:   attach thread: /' || true
# warm-up: one churn client and one hostile round, so that what the JVM opens or maps once (classes, jcmd's
# attach listener, threads of the common pool) is in the baseline
churn_client 2 kill w
hostile_round || { echo "soak: hostile round failed: $(tail -3 "$WORK/hostile.log")" >&2; exit 1; }
wait_for "links_down '^(ch0|hostile)\$'" 20 "warm-up frontends gone"
sleep 1
sample baseline

# loopback traffic for the whole soak
rm -f "$WORK/loop.in"; mkfifo "$WORK/loop.in"
exec 7<>"$WORK/loop.in"
dpdk-testpmd "${EAL[@]}" --file-prefix="${PREFIX}l" --vdev "net_virtio_user0,path=$RUN/lb0.sock" \
    --vdev "net_virtio_user1,path=$RUN/lb1.sock" -- -i --nb-cores=1 --forward-mode=io --txpkts=64 \
    <&7 >"$WORK/loop.log" 2>&1 &
LOOP_PID=$!
wait_for "grep -q 'testpmd> ' '$WORK/loop.log'" 60 "the loopback client's prompt"
echo "start tx_first 8" >&7

END=$((SECONDS + MINUTES * 60))
(
    n=0
    while (( SECONDS < END )); do
        n=$((n + 1))
        how=kill; (( n % 3 == 0 )) && how=quit
        churn_client $((2 + RANDOM % 7)) "$how" "$n"
        echo "$n $how" >>"$WORK/churn.rounds"
    done
) &
CHURN_LOOP_PID=$!
(
    while (( SECONDS < END )); do
        hostile_round || echo "FAILED" >>"$WORK/hostile.log"
        sleep $((5 + RANDOM % 10))
    done
) &
HOSTILE_LOOP_PID=$!

while (( SECONDS < END )); do
    sleep 10
    kill -0 "$SWITCH_PID" 2>/dev/null || { echo "soak: the switch died" >&2; tail -20 "$WORK/switch.log" >&2; exit 1; }
done
wait "$CHURN_LOOP_PID" || true; CHURN_LOOP_PID=
wait "$HOSTILE_LOOP_PID" || true; HOSTILE_LOOP_PID=
echo "stop" >&7
sleep 1
echo "quit" >&7
wait "$LOOP_PID" || true; LOOP_PID=
exec 7>&-
rm -f /dev/hugepages/"${PREFIX}l"* 2>/dev/null || true
wait_for "links_down '^(lb|ch|hostile|idle)'" 30 "every frontend gone"
sleep 1
sample end
stats >"$WORK/stats-end"

churns=$(wc -l <"$WORK/churn.rounds" 2>/dev/null || echo 0)
kills=$(grep -c kill "$WORK/churn.rounds" 2>/dev/null || echo 0)
hostile=$(grep -c '^hostile round' "$WORK/hostile.log" || true)
hostile_failed=$(grep -c FAILED "$WORK/hostile.log" || true)
invalid_sent=$(awk -F'invalid_sent=' '/^hostile round/ {s += $2} END {print s + 0}' "$WORK/hostile.log")
echo "soak: $MINUTES min: $churns churn clients ($kills SIGKILLed), $hostile hostile rounds ($hostile_failed failed), $invalid_sent invalid frames sent"
cat "$WORK/stats-end"

fail=0
python3 - "$WORK/stats-end" "$invalid_sent" <<'PY' || fail=1
import sys
lines = open(sys.argv[1]).read().splitlines()
tables, cur = [], None
for l in lines:
    f = l.split()
    if f and f[0] == "port":
        cur = {"cols": f[1:], "rows": {}}
        tables.append(cur)
    elif cur is not None and f and f[0] != "worker" and len(f) == len(cur["cols"]) + 1:
        cur["rows"][f[0]] = dict(zip(cur["cols"], map(int, f[1:])))
ports = {}
for t in tables:
    for p, row in t["rows"].items():
        ports.setdefault(p, {}).update(row)
s = lambda c: sum(r.get(c, 0) for r in ports.values())
fwd = sum(s(c) for c in ("drop_rx_ring_full", "drop_rx_buffer_too_small", "drop_queue_fault", "drop_no_buffers", "drop_port_down", "drop_over_mtu", "drop_vlan", "drop_hairpin"))
ok = True
print(f"soak: accounting: sum rx_packets {s('rx_packets')} = sum tx_packets {s('tx_packets')} + forwarding drops {fwd}"
      f" ({s('tx_packets') + fwd}): {'exact' if s('rx_packets') == s('tx_packets') + fwd else 'DOES NOT CLOSE'}")
ok &= s("rx_packets") == s("tx_packets") + fwd
print(f"soak: drop_invalid {s('drop_invalid')} (hostile frames sent invalid: {sys.argv[2]}); rx_packets on hostile:"
      f" {ports['hostile']['rx_packets']}")
ok &= s("drop_invalid") == int(sys.argv[2]) and ports["hostile"]["rx_packets"] == 0
print(f"soak: drop_bad_offload_header {s('drop_bad_offload_header')} (refused like drop_invalid, never rx: not a forwarding drop)")
for p in ("lb0", "lb1"):
    if ports[p]["queue_faults"] != 0:
        print(f"soak: {p} counted a queue fault"); ok = False
if ports["lb0"]["rx_packets"] == 0:
    print("soak: no loopback traffic"); ok = False
sys.exit(0 if ok else 1)
PY

if ! diff -q "$WORK/threads-baseline" "$WORK/threads-end" >/dev/null; then
    echo "soak: threads differ between baseline and end (a thread's stack is two mappings):"
    diff "$WORK/threads-baseline" "$WORK/threads-end" | grep '^[<>]' | sed 's/^/soak:   /'
fi
# descriptors: the sorted list of targets must match exactly. Mappings: every file-backed mapping (guest
# memory is always one: a memfd or a hugetlbfs file) must match exactly; anonymous ones belong to the JVM
# (thread stacks and their malloc arenas, heap and code-cache growth), so their count may move by what the
# thread list explains (two per thread: stack and guard) and is reported, not failed.
if ! diff -q "$WORK/fd-baseline" "$WORK/fd-end" >/dev/null; then
    echo "soak: descriptors differ between baseline and end:"
    diff "$WORK/fd-baseline" "$WORK/fd-end" | grep '^[<>]' | sed 's/^/soak:   /' | head -40
    fail=1
fi
named() { awk 'NF > 1' "$1"; }
if ! diff -q <(named "$WORK/maps-baseline") <(named "$WORK/maps-end") >/dev/null; then
    echo "soak: file-backed mappings differ between baseline and end:"
    diff <(named "$WORK/maps-baseline") <(named "$WORK/maps-end") | grep '^[<>]' | sed 's/^/soak:   /' | head -40
    fail=1
fi
anon_delta=$(( $(awk 'NF == 1' "$WORK/maps-end" | wc -l) - $(awk 'NF == 1' "$WORK/maps-baseline" | wc -l) ))
thread_delta=$(( $(wc -l <"$WORK/threads-end") - $(wc -l <"$WORK/threads-baseline") ))
echo "soak: file-backed mappings $(named "$WORK/maps-baseline" | wc -l) -> $(named "$WORK/maps-end" | wc -l);" \
     "anonymous (the JVM's) $anon_delta, threads $thread_delta"
if (( anon_delta > 2 * (thread_delta > 0 ? thread_delta : 0) + 2 )); then
    echo "soak: anonymous mappings grew by more than the JVM's new threads explain"
    fail=1
fi
grep -E 'worker error|session failed|Exception' "$WORK/switch.log" | head -5 | sed 's/^/soak: switch log: /' || true
kill -0 "$SWITCH_PID" || fail=1
[[ $fail == 0 ]] && echo "soak: PASS" || echo "soak: FAIL"
exit $fail
