#!/bin/bash
# Latency of vdkr commands against a resident aarch64 guest (vmemres) and against a cold one,
# side by side in one run: median and p95 over N calls of `images` and of `run --rm <tiny> true`,
# wall clock of the whole vdkr process as a user sees it (JVM start included). Cold calls each
# boot a guest, so fewer of them are taken (C, default 3).
#
#   tests/bench/vmemres.sh [N, default 20] [C, default 3]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
n=${1:-20}
c=${2:-3}
work=$(mktemp -d /tmp/vbake-bench-vmemres.XXXXXX)
vdkr="$top/bin/vdkr"
resident="$work/resident"
cold="$work/cold"
cleanup() {
    "$vdkr" -a aarch64 --state-dir "$resident" vmemres stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }

# A tiny image: Debian's busybox-static for arm64 (the bundled example's rootfs).
"$top/examples/hello/prepare-rootfs.sh" aarch64 "$work/rootfs" >/dev/null
for s in "$resident" "$cold"; do
    "$vdkr" -a aarch64 --state-dir "$s" import "$work/rootfs" bench/tiny:1 >/dev/null
done
"$vdkr" -a aarch64 --state-dir "$resident" vmemres start >/dev/null
"$vdkr" -a aarch64 --state-dir "$resident" images >/dev/null   # first call also trains the launcher's class cache

# time_calls COUNT STATE_DIR ARGS... -> one wall-clock time per line, in seconds
time_calls() {
    local count=$1 state=$2; shift 2
    for _ in $(seq "$count"); do
        local t0; t0=$(now)
        "$vdkr" -a aarch64 --state-dir "$state" "$@" >/dev/null
        echo "$(now) - $t0" | bc
    done
}
# stats: "median p95" of the numbers on stdin (nearest-rank)
stats() {
    sort -g | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        p = int(0.95 * NR + 0.999); if (p < 1) p = 1
        printf "%.3f %.3f", m, v[p] }'
}

declare -A res
for cmd in images run; do
    args=(images); [ "$cmd" = run ] && args=(run --rm bench/tiny:1 true)
    res[$cmd-resident]=$(time_calls "$n" "$resident" "${args[@]}" | stats)
    res[$cmd-cold]=$(time_calls "$c" "$cold" "${args[@]}" | stats)
done
rss=$("$vdkr" -a aarch64 --state-dir "$resident" vmemres status | sed -n 's/.*QEMU resident \([0-9]*\) MiB.*/\1/p')

printf 'aarch64 docker, %s resident / %s cold calls, seconds (wall clock of the vdkr process)\n' "$n" "$c"
printf '%-26s %9s %9s %9s %9s %12s\n' command "res med" "res p95" "cold med" "cold p95" "cold/res med"
for cmd in images run; do
    read -r rm rp <<<"${res[$cmd-resident]}"
    read -r cm cp <<<"${res[$cmd-cold]}"
    label=images; [ "$cmd" = run ] && label="run --rm bench/tiny:1 true"
    printf '%-26s %9s %9s %9s %9s %11.1fx\n' "$label" "$rm" "$rp" "$cm" "$cp" "$(echo "$cm / $rm" | bc -l)"
done
echo "resident guest: QEMU resident set ${rss:-?} MiB; target: images median under 0.3 s"
