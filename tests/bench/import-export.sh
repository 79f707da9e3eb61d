#!/bin/bash
# Import + export of N MB of layers per arch (docker), against the host-side lower bound of
# decompressing and untarring the same layers. All figures come from this one run, side by side.
#
#   tests/bench/import-export.sh [MB per image, default 64]
#
# Columns: boot = a command that imports nothing (info); import = vimport minus boot; export =
# vimport --storage minus vimport; import+export against host = gunzip+untar of the same layer on
# the host (the lower bound). stdin-load = the same archive loaded from stdin minus boot: gzip'd
# layers cross the agent channel and the guest decompresses them, against vimport's layers
# decompressed on the host and read from the input disk (compare it with the import column).
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

printf '%-8s %5s %6s %7s %7s %13s %10s %7s %11s\n' arch MB boot import export import+export host-untar ratio stdin-load
for arch in aarch64 x86_64; do
    oci=arm64; [ "$arch" = x86_64 ] && oci=amd64
    archive="$work/$arch.tar"
    make_archive "$arch" "$oci" "$archive"
    state="$work/state-$arch"
    v() { "$top/bin/vdkr" -a "$arch" --state-dir "$state" "$@" >/dev/null 2>&1; }
    fresh() { v clean; v info; }   # an empty store with its state disk made, so each run starts alike
    v info                                                  # guest image cache, state disk

    t=$(now); v info; boot=$(since "$t")
    fresh; t=$(now); v vimport "$archive"; imp=$(since "$t")
    fresh; t=$(now); v --storage "$work/out-$arch.tar" vimport "$archive"; total=$(since "$t")
    fresh; t=$(now); v load < "$archive"; stdin=$(since "$t")

    rm -rf "$work/untar"; mkdir -p "$work/untar"
    t=$(now); gzip -dc "$work/img-$arch/layer.tar.gz" | tar -x -C "$work/untar"; host=$(since "$t")

    ie=$(echo "$total - $boot" | bc)
    printf '%-8s %5s %6.1f %7.1f %7.1f %13.1f %10.2f %7.1f %11.1f\n' "$arch" "$mb" "$boot" \
        "$(echo "$imp - $boot" | bc)" "$(echo "$total - $imp" | bc)" "$ie" "$host" \
        "$(echo "$ie / $host" | bc -l)" "$(echo "$stdin - $boot" | bc)"
    v clean
    rm -rf "$work/img-$arch" "$work/rootfs-$arch" "$work/untar" "$archive" "$work/out-$arch.tar"
done
echo "(seconds, docker, one run each; ratio = guest import+export / host gunzip+untar)"
