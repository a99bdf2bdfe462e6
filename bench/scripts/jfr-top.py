#!/usr/bin/env python3
"""Where the CPU time goes in a JFR recording: execution samples of the benchmark thread, by method.

Prints the top methods by self time (the sampled frame itself) and by inclusive time (the method is
anywhere on the sampled stack), in percent of the thread's samples. Uses the JDK's `jfr` tool
(from $JAVA_HOME/bin or the PATH) to turn the recording into JSON.
Usage: jfr-top.py recording.jfr [--thread SUBSTRING] [--top N]
"""
import argparse
import collections
import json
import os
import shutil
import subprocess
import sys

ap = argparse.ArgumentParser()
ap.add_argument("recording")
ap.add_argument("--thread", default="jmh-worker", help="keep samples of threads whose name contains this")
ap.add_argument("--top", type=int, default=25)
ap.add_argument("--lines", action="store_true", help="self time by method and source line, and by the "
                "first frame of our own code (io.vswitch) with its line")
args = ap.parse_args()

jfr = os.path.join(os.environ.get("JAVA_HOME", ""), "bin", "jfr")
if not os.access(jfr, os.X_OK):
    jfr = shutil.which("jfr") or "/usr/lib/jvm/temurin-25-jdk-amd64/bin/jfr"
out = subprocess.run([jfr, "print", "--json", "--stack-depth", "64", "--events", "jdk.ExecutionSample",
                      args.recording], check=True, capture_output=True, text=True).stdout
events = json.loads(out)["recording"]["events"]


def name(frame):
    m = frame["method"]
    cls = m["type"]["name"].rsplit(".", 1)[-1]
    return f"{cls}.{m['name']}"


def line(frame):
    return f"{name(frame)}:{frame.get('lineNumber', '?')}"


self_lines = collections.Counter()
own_lines = collections.Counter()
self_count = collections.Counter()
incl_count = collections.Counter()
total = 0
for e in events:
    v = e["values"]
    thread = (v.get("sampledThread") or {}).get("javaName") or ""
    if args.thread not in thread:
        continue
    frames = (v.get("stackTrace") or {}).get("frames") or []
    if not frames:
        continue
    total += 1
    self_count[name(frames[0])] += 1
    self_lines[line(frames[0])] += 1
    own = next((f for f in frames if f["method"]["type"]["name"].startswith("io/vswitch")
                or f["method"]["type"]["name"].startswith("io.vswitch")), frames[0])
    own_lines[line(own)] += 1
    for n in set(name(f) for f in frames):
        incl_count[n] += 1

if total == 0:
    sys.exit(f"no execution samples of a thread matching '{args.thread}'")
print(f"{total} samples of threads matching '{args.thread}'")
print(f"\n{'self %':>7s}  method")
for n, c in self_count.most_common(args.top):
    print(f"{100.0 * c / total:7.1f}  {n}")
if args.lines:
    print(f"\n{'self %':>7s}  method:line")
    for n, c in self_lines.most_common(args.top):
        print(f"{100.0 * c / total:7.1f}  {n}")
    print(f"\n{'self %':>7s}  innermost io.vswitch frame:line (JDK frames charged to the line that called them)")
    for n, c in own_lines.most_common(args.top):
        print(f"{100.0 * c / total:7.1f}  {n}")
print(f"\n{'incl %':>7s}  method")
for n, c in incl_count.most_common(args.top):
    print(f"{100.0 * c / total:7.1f}  {n}")
