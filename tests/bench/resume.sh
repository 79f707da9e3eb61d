#!/bin/bash
# Cold commands resumed from the guest the previous command saved vs booted (--no-resume), per
# arch and runtime, side by side in one run: median of N calls each of `images`, `info` and
# `run --rm <tiny> true`, wall clock of the whole vdkr/vpdmn process as a user sees it; the
# save's cost (from --debug); `vmemres start` resumed vs booted; and a warm re-bake of an
# unchanged manifest. This machine is shared and noisy: compare the ratios, not the seconds.
#
#   tests/bench/resume.sh [N, default 5] [ARCHES, default "aarch64 x86_64"] [RUNTIMES, default "docker podman"]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
n=${1:-5}
arches=${2:-aarch64 x86_64}
runtimes=${3:-docker podman}
work=$(mktemp -d /tmp/vbake-bench-resume.XXXXXX)
cleanup() {
    for s in "$work"/*resident; do
        [ -d "$s" ] && "$top/bin/vdkr" -a aarch64 --state-dir "$s" vmemres stop >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
median() { sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f", m }'; }

# time_calls COUNT TOOL ARCH STATE ARGS... -> one wall-clock time per line
time_calls() {
    local count=$1 tool=$2 arch=$3 state=$4; shift 4
    for _ in $(seq "$count"); do
        local t0; t0=$(now)
        "$top/bin/$tool" -a "$arch" --state-dir "$state" "$@" >/dev/null 2>&1
        echo "$(now) - $t0" | bc
    done
}

printf '%-8s %-7s %-26s %9s %9s %8s\n' arch runtime command resumed booted ratio
for arch in $arches; do
    "$top/examples/hello/prepare-rootfs.sh" "$arch" "$work/rootfs-$arch" >/dev/null
    for runtime in $runtimes; do
        tool=vdkr; [ "$runtime" = podman ] && tool=vpdmn
        state="$work/$arch-$runtime"
        "$top/bin/$tool" -a "$arch" --state-dir "$state" import "$work/rootfs-$arch" bench/tiny:1 >/dev/null
        for cmd in images info run; do
            args=("$cmd"); [ "$cmd" = run ] && args=(run --rm --network none bench/tiny:1 true)
            "$top/bin/$tool" -a "$arch" --state-dir "$state" images >/dev/null 2>&1   # leaves a saved guest
            resumed=$(time_calls "$n" "$tool" "$arch" "$state" "${args[@]}" | median)
            booted=$(time_calls "$n" "$tool" "$arch" "$state" --no-resume "${args[@]}" | median)
            label=$cmd; [ "$cmd" = run ] && label="run --rm tiny true"
            printf '%-8s %-7s %-26s %9s %9s %7.1fx\n' "$arch" "$runtime" "$label" "$resumed" "$booted" \
                "$(echo "$booted / $resumed" | bc -l)"
        done
        save=$("$top/bin/$tool" --debug -a "$arch" --state-dir "$state" images 2>&1 >/dev/null \
            | sed -n 's/.*\[phase\] guest saved: \([0-9.]*\) s$/\1/p')
        size=$(du -k --apparent-size "$state/trixie/snapshot/devices" | cut -f1)
        used=$(du -k "$state/trixie/snapshot/ram" | cut -f1)
        printf '%-8s %-7s save: %s s, device state %s KiB, RAM file %s MiB on disk\n' "$arch" "$runtime" \
            "${save:-?}" "$size" "$((used / 1024))"
    done
done

# vmemres start: from the resident guest the last stop saved vs a boot (a second store that
# never keeps a saved guest).
state="$work/aarch64-resident" booting="$work/aarch64-booting-resident"
"$top/bin/vdkr" -a aarch64 --state-dir "$state" vmemres start >/dev/null 2>&1
"$top/bin/vdkr" -a aarch64 --state-dir "$state" vmemres stop >/dev/null 2>&1
starts=() boots=()
for _ in $(seq 3); do
    t0=$(now); "$top/bin/vdkr" -a aarch64 --state-dir "$state" vmemres start >/dev/null 2>&1; starts+=("$(echo "$(now) - $t0" | bc)")
    "$top/bin/vdkr" -a aarch64 --state-dir "$state" vmemres stop >/dev/null 2>&1
    t0=$(now); "$top/bin/vdkr" -a aarch64 --state-dir "$booting" --no-resume vmemres start >/dev/null 2>&1; boots+=("$(echo "$(now) - $t0" | bc)")
    "$top/bin/vdkr" -a aarch64 --state-dir "$booting" vmemres stop >/dev/null 2>&1
done
s=$(printf '%s\n' "${starts[@]}" | median); b=$(printf '%s\n' "${boots[@]}" | median)
printf 'aarch64  docker  %-26s %9s %9s %7.1fx\n' "vmemres start" "$s" "$b" "$(echo "$b / $s" | bc -l)"

# A warm re-bake of the unchanged bundled example (resumed) vs the same with --no-resume.
bake() { SOURCE_DATE_EPOCH=1735689600 "$top/bin/vbake" bake "$top/examples/hello/bake.yaml" -o "$work/out" \
    --state-dir "$work/bake-state" "$@" >/dev/null 2>&1; }
"$top/examples/hello/prepare-rootfs.sh" aarch64 "$top/examples/hello/build/rootfs-aarch64" >/dev/null
bake; bake
t0=$(now); bake; warm=$(echo "$(now) - $t0" | bc)
t0=$(now); bake --no-resume; cold=$(echo "$(now) - $t0" | bc)
printf 'aarch64  docker  %-26s %9.2f %9.2f %7.1fx\n' "re-bake, unchanged" "$warm" "$cold" "$(echo "$cold / $warm" | bc -l)"
echo "(seconds, medians of $n calls; targets: resumed aarch64 images under 2 s, vmemres start under 3 s, re-bake under 5 s)"
