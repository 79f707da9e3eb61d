#!/bin/bash
# Cold `info` per arch and runtime, split into phases (from --debug), median of N runs, plus the
# whole command's wall time. Usage: tests/bench/cold-info.sh [runs, default 3]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
runs=${1:-3}
state=$(mktemp -d /tmp/vbake-bench.XXXXXX)
trap 'rm -rf "$state"' EXIT
median() { sort -n | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.2f", m }'; }

printf '%-8s %-7s %8s %8s %8s %8s %8s\n' arch runtime boot engine command shutdown wall
for arch in aarch64 x86_64; do
    for runtime in docker podman; do
        tool=vdkr; [ "$runtime" = podman ] && tool=vpdmn
        "$top/bin/$tool" -a "$arch" --state-dir "$state/$runtime-$arch" info >/dev/null 2>&1   # warm the cache, make the state disk
        : > "$state/phases"
        for _ in $(seq "$runs"); do
            start=$(date +%s.%N)
            "$top/bin/$tool" --debug -a "$arch" --state-dir "$state/$runtime-$arch" info 2>&1 >/dev/null \
                | sed -n 's/.*\[phase\] \(.*\): \([0-9.]*\) s$/\1\t\2/p' >> "$state/phases"
            end=$(date +%s.%N)
            printf 'wall\t%s\n' "$(echo "$end - $start" | bc)" >> "$state/phases"
        done
        get() { grep -F "$1" "$state/phases" | cut -f2 | median; }
        printf '%-8s %-7s %8s %8s %8s %8s %8s\n' "$arch" "$runtime" "$(get 'boot (')" "$(get 'engine ready')" \
            "$(get "command $runtime")" "$(get shutdown)" "$(get wall)"
    done
done
echo "(seconds, median of $runs cold runs; boot = QEMU start to agent handshake)"
