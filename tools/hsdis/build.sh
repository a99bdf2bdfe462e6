#!/usr/bin/env bash
# Builds hsdis-amd64.so (HotSpot's disassembler plug-in) on capstone into DIR (default /tmp/hsdis), for
# -XX:+PrintAssembly and JMH's -prof perfasm: run the JVM with LD_LIBRARY_PATH=DIR. Needs gcc and libcapstone-dev
# (apt-get install libcapstone-dev). A profiling aid only: nothing in the build or the switch uses it.
set -euo pipefail
out=${1:-/tmp/hsdis}
mkdir -p "$out"
gcc -O2 -shared -fPIC -o "$out/hsdis-amd64.so" "$(dirname "$0")/hsdis-capstone.c" -lcapstone
echo "$out/hsdis-amd64.so"
