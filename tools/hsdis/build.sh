#!/usr/bin/env bash
# Builds the HotSpot disassembler plugin from hsdis-capstone.c against Debian's libcapstone-dev and installs it
# into the JDK (lib/hsdis-amd64.so), so that JMH's perfasm profiler and -XX:+PrintAssembly print C2's code:
#   tools/hsdis/build.sh [JAVA_HOME]
# Profiling aid only (bench/README.md, "Profile"); nothing in the build or the tests needs it.
set -euo pipefail
jdk=${1:-${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}}
here=$(cd "$(dirname "$0")" && pwd)
if ! [[ -e /usr/include/capstone/capstone.h ]]; then
  apt-get install -y libcapstone-dev
fi
out=$(mktemp -d)
gcc -O2 -shared -fPIC -o "$out/hsdis-amd64.so" "$here/hsdis-capstone.c" -lcapstone
install -m 0755 "$out/hsdis-amd64.so" "$jdk/lib/hsdis-amd64.so"
rm -rf "$out"
echo "hsdis: installed $jdk/lib/hsdis-amd64.so"
