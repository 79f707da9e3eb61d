#!/bin/bash
# Import + export of N MB of layers per arch (docker), against the host-side lower bound of
# decompressing and untarring the same layers. All figures come from this one run, side by side.
#
#   tests/bench/import-export.sh [MB per image, default 64]
#
# Figures come from vdkr's own phase timings (--debug), so boot time and its noise stay out:
# stage = reading, checking and decompressing on the host; load = docker load in the guest from the
# input disk; export = writing the storage tree to the host; host-untar = gunzip+untar of the same
# layer on the host (the lower bound); stdin-load = docker load in the guest of the gzip'd archive
# sent through the agent channel (the guest decompresses), to compare with stage+load.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
mb=${1:-64}
work=$(mktemp -d /tmp/vbake-bench-ie.XXXXXX)
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

# A docker-archive with one gzip'd layer of incompressible data (as real binaries mostly are) plus
# a small one, built here with coreutils so the benchmark needs nothing but the host.
make_archive() {  # arch out
    local d="$work/img-$1" rootfs="$work/rootfs-$1"
    mkdir -p "$d" "$rootfs/data"
    head -c "$((mb * 1024 * 1024))" /dev/urandom > "$rootfs/data/blob"
    echo hello > "$rootfs/data/hello"
    tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$rootfs" -cf "$d/layer.tar" .
    local diff; diff=$(sha256sum "$d/layer.tar" | cut -d' ' -f1)
    gzip -1 -n -c "$d/layer.tar" > "$d/layer.tar.gz"
    printf '{"architecture":"%s","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
        "$2" "$diff" > "$d/config.json"
    local cfg; cfg=$(sha256sum "$d/config.json" | cut -d' ' -f1)
    mkdir -p "$d/out/$diff"
    cp "$d/config.json" "$d/out/$cfg.json"
    cp "$d/layer.tar.gz" "$d/out/$diff/layer.tar"
    printf '[{"Config":"%s.json","RepoTags":["bench/io:%s"],"Layers":["%s/layer.tar"]}]' "$cfg" "$1" "$diff" \
        > "$d/out/manifest.json"
    tar -C "$d/out" -cf "$3" .
}

phase() { sed -n "s/.*\\[phase\\] $1: \\([0-9.]*\\) s$/\\1/p" "$2" | awk '{ t += $1 } END { printf "%.2f", t }'; }
printf '%-8s %5s %7s %7s %7s %13s %10s %7s %11s\n' arch MB stage load export stage+load+exp host-untar ratio stdin-load
for arch in aarch64 x86_64; do
    oci=arm64; [ "$arch" = x86_64 ] && oci=amd64
    archive="$work/$arch.tar"
    make_archive "$arch" "$oci" "$archive"
    state="$work/state-$arch"
    v() { "$top/bin/vdkr" --debug -a "$arch" --state-dir "$state" "$@"; }
    v info >/dev/null 2>&1                                  # guest image cache, state disk

    v --storage "$work/out-$arch.tar" vimport "$archive" >/dev/null 2>"$work/vimport.log"
    v clean >/dev/null 2>&1
    v load < "$archive" >/dev/null 2>"$work/stdin.log"
    v clean >/dev/null 2>&1

    rm -rf "$work/untar"; mkdir -p "$work/untar"
    t=$(now); gzip -dc "$work/img-$arch/layer.tar.gz" | tar -x -C "$work/untar"; host=$(since "$t")

    stage=$(phase 'staged [^:]*' "$work/vimport.log")
    load=$(phase 'command docker' "$work/vimport.log")
    exp=$(phase 'export' "$work/vimport.log")
    sum=$(echo "$stage + $load + $exp" | bc)
    printf '%-8s %5s %7.2f %7.2f %7.2f %13.2f %10.2f %7.1f %11.2f\n' "$arch" "$mb" "$stage" "$load" "$exp" "$sum" \
        "$host" "$(echo "$sum / $host" | bc -l)" "$(phase 'command docker' "$work/stdin.log")"
    rm -rf "$work/img-$arch" "$work/rootfs-$arch" "$work/untar" "$archive" "$work/out-$arch.tar"
done
echo "(seconds, docker; ratio = (stage+load+export) / host gunzip+untar; the input disk's mke2fs is in neither)"
