#!/bin/bash
# Import + export of N MB of layers per arch (docker), against the host-side lower bound of
# decompressing and untarring the same layers. All figures come from this one run, side by side.
#
#   tests/bench/import-export.sh [MB per image, default 64]
#
# Columns: boot = a command that imports nothing (info), so import+export = vimport-with-export
# minus boot. guest-gunzip = the same archive loaded from stdin with gzip'd layers (the guest
# decompresses and the bytes cross the agent channel) instead of vimport's host-decompressed layers
# on the input disk.
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

printf '%-8s %6s %8s %10s %12s %12s %8s %12s\n' arch MB boot vimport+exp import+export host-untar ratio guest-gunzip
for arch in aarch64 x86_64; do
    oci=arm64; [ "$arch" = x86_64 ] && oci=amd64
    archive="$work/$arch.tar"
    make_archive "$arch" "$oci" "$archive"
    state="$work/state-$arch"
    "$top/bin/vdkr" -a "$arch" --state-dir "$state" info >/dev/null 2>&1   # state disk + image cache

    t=$(now); "$top/bin/vdkr" -a "$arch" --state-dir "$state" info >/dev/null 2>&1; boot=$(since "$t")
    "$top/bin/vdkr" -a "$arch" --state-dir "$state" clean >/dev/null 2>&1
    "$top/bin/vdkr" -a "$arch" --state-dir "$state" info >/dev/null 2>&1
    t=$(now)
    "$top/bin/vdkr" -a "$arch" --state-dir "$state" --storage "$work/out-$arch.tar" vimport "$archive" >/dev/null 2>&1
    total=$(since "$t")

    rm -rf "$work/untar"; mkdir -p "$work/untar"
    t=$(now); gzip -dc "$work/img-$arch/layer.tar.gz" | tar -x -C "$work/untar"; host=$(since "$t")

    "$top/bin/vdkr" -a "$arch" --state-dir "$state" clean >/dev/null 2>&1
    "$top/bin/vdkr" -a "$arch" --state-dir "$state" info >/dev/null 2>&1
    t=$(now); "$top/bin/vdkr" -a "$arch" --state-dir "$state" load < "$archive" >/dev/null 2>&1; stdin=$(since "$t")

    ie=$(echo "$total - $boot" | bc)
    printf '%-8s %6s %8.1f %10.1f %12.1f %12.2f %8.1f %12.1f\n' "$arch" "$mb" "$boot" "$total" "$ie" "$host" \
        "$(echo "$ie / $host" | bc -l)" "$(echo "$stdin - $boot" | bc)"
    "$top/bin/vdkr" -a "$arch" --state-dir "$state" clean >/dev/null 2>&1
    rm -rf "$work/img-$arch" "$work/rootfs-$arch" "$work/untar" "$archive" "$work/out-$arch.tar"
done
echo "(seconds, docker; ratio = guest import+export / host gunzip+untar; guest-gunzip = 'load' from stdin minus boot)"
