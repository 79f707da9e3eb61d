#!/bin/bash
# Host-speed bakes, side by side in one run on the same workload: three arm64 images sharing a
# base layer, made from the Debian arm64 packages of the guest's own tools disk (base: /usr/lib,
# /etc and the rest; one image adds /usr/bin, one /usr/sbin, one 64 MiB of random bytes). Prints:
#   lower bound   gunzip + untar every layer, then tar + zstd the result (what any writer must do)
#   host writer   vbake bake --writer host, cold (empty blob cache, no earlier bake)
#   guest writer  vbake bake --writer guest, cold (fresh store)
#   re-bake       the same manifest again, unchanged (the output is up to date)
#   peak RSS      of a host bake of one image with a 1 GiB layer
# and the ratios. This machine is shared and noisy: compare the ratios, not the seconds.
#
#   tests/bench/hostwriter.sh [docker|podman, default docker]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
runtime=${1:-docker}
work=$(mktemp -d /tmp/vbake-bench-hostwriter.XXXXXX)
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
export SOURCE_DATE_EPOCH=1735689600

tools=$(ls ~/.cache/vbake/guest/trixie-aarch64-docker/tools.squashfs 2>/dev/null || true)
if [ -z "$tools" ]; then
    "$top/bin/vdkr" -a aarch64 --state-dir "$work/warmup" info >/dev/null   # builds the guest image
    tools=~/.cache/vbake/guest/trixie-aarch64-docker/tools.squashfs
fi
unsquashfs -q -d "$work/rootfs" "$tools" >/dev/null

# layer NAME DIR [PATHS...]: a gzipped layer tar of PATHS below DIR; prints its file
layer() {
    local name=$1 dir=$2; shift 2
    tar --sort=name --numeric-owner --xattrs --xattrs-include='*' --mtime=@"$SOURCE_DATE_EPOCH" -C "$dir" -cf "$work/$name.tar" "$@"
    gzip -6 -n -c "$work/$name.tar" > "$work/$name.tar.gz"
    echo "$work/$name.tar.gz"
}
blob() { # blob LAYOUT FILE -> digest, copied into the layout
    local d; d=$(sha256sum "$2" | cut -d' ' -f1)
    mkdir -p "$1/blobs/sha256"; cp "$2" "$1/blobs/sha256/$d"; echo "sha256:$d"
}
# image LAYOUT GZ-LAYERS...: an OCI layout of one arm64 image
image() {
    local out=$1; shift
    local layers="" diffs="" sep=""
    for gz in "$@"; do
        local d; d=$(blob "$out" "$gz")
        layers="$layers$sep{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"$d\",\"size\":$(stat -c %s "$gz")}"
        diffs="$diffs$sep\"sha256:$(sha256sum "${gz%.gz}" | cut -d' ' -f1)\""
        sep=","
    done
    printf '{"architecture":"arm64","variant":"v8","os":"linux","created":"2025-01-01T00:00:00Z","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' "$diffs" > "$work/config.json"
    local c; c=$(blob "$out" "$work/config.json")
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s]}' \
        "$c" "$(stat -c %s "$work/config.json")" "$layers" > "$work/manifest.json"
    local m; m=$(blob "$out" "$work/manifest.json")
    printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s}]}' \
        "$m" "$(stat -c %s "$work/manifest.json")" > "$out/index.json"
    echo '{"imageLayoutVersion":"1.0.0"}' > "$out/oci-layout"
}

base=$(layer base "$work/rootfs" --exclude=./usr/bin --exclude=./usr/sbin .)
bins=$(layer bins "$work/rootfs" ./usr/bin)
sbins=$(layer sbins "$work/rootfs" ./usr/sbin)
mkdir -p "$work/random/data"
head -c $((64 << 20)) /dev/urandom > "$work/random/data/random.bin"
random=$(layer random "$work/random" ./data)
image "$work/img-bin" "$base" "$bins"
image "$work/img-sbin" "$base" "$sbins"
image "$work/img-random" "$base" "$random"
cat > "$work/bake.yaml" <<EOF
arch: aarch64
runtime: $runtime
images:
  - oci: img-bin
    name: bench/bin:1
  - oci: img-sbin
    name: bench/sbin:1
  - oci: img-random
    name: bench/random:1
EOF
uncompressed=$(cat "$work"/{base,bins,sbins,random}.tar | wc -c)
compressed=$(cat "$work"/{base,bins,sbins,random}.tar.gz | wc -c)

# Lower bound: every layer gunzipped and untarred once, the result tarred and zstd'ed.
t0=$(now)
mkdir -p "$work/lb"
for gz in "$base" "$bins" "$sbins" "$random"; do
    mkdir -p "$work/lb/$(basename "$gz")"
    gzip -dc "$gz" | tar --xattrs --xattrs-include='*' -C "$work/lb/$(basename "$gz")" -xf -
done
tar --xattrs --xattrs-include='*' -C "$work/lb" -cf - . | zstd -q -3 -T0 > "$work/lb.tar.zst"
lower=$(since "$t0")
rm -rf "$work/lb" "$work/lb.tar.zst"

export VBAKE_CACHE_DIR="$work/cache"
t0=$(now)
"$top/bin/vbake" bake "$work/bake.yaml" -o "$work/out-host" --writer host --progress=plain >/dev/null 2>"$work/host.log"
host=$(since "$t0")

t0=$(now)
"$top/bin/vbake" bake "$work/bake.yaml" -o "$work/out-host" --writer host --progress=plain >"$work/rebake.out" 2>&1
rebake=$(since "$t0")
grep -q "up to date" "$work/rebake.out" || { echo "re-bake was not up to date:"; cat "$work/rebake.out"; exit 1; }

t0=$(now)
"$top/bin/vbake" bake "$work/bake.yaml" -o "$work/out-guest" --writer guest --fresh --state-dir "$work/state" \
    --progress=plain >/dev/null 2>"$work/guest.log"
guest=$(since "$t0")
same=no
cmp -s "$work/out-host/storage.tar.zst" "$work/out-guest/storage.tar.zst" && same=yes

# Peak memory with one 1 GiB layer (incompressible: the worst case for every stage).
mkdir -p "$work/big/data"
head -c $((1 << 30)) /dev/urandom > "$work/big/data/big.bin"
rm -rf "$work/random" "$work/rootfs"
big=$(layer big "$work/big" ./data)
rm -rf "$work/big" "$work/big.tar"
gzip -dc "$big" > "$work/big.tar"
image "$work/img-big" "$big"
rm -f "$work/big.tar"
printf 'arch: aarch64\nruntime: %s\nimages:\n  - oci: img-big\n    name: bench/big:1\n' "$runtime" > "$work/big.yaml"
/usr/bin/time -f '%M' -o "$work/rss" "$top/bin/vbake" bake "$work/big.yaml" -o "$work/out-big" --writer host \
    --progress=plain >/dev/null 2>&1
rss=$(cat "$work/rss")

printf 'workload: 3 images (%s), 4 layers, %.0f MB uncompressed, %.0f MB gzipped\n' "$runtime" \
    "$(echo "$uncompressed / 1000000" | bc -l)" "$(echo "$compressed / 1000000" | bc -l)"
printf '%-34s %8.2f s\n' "lower bound (gunzip+untar, tar+zstd)" "$lower"
printf '%-34s %8.2f s  %5.2fx the lower bound\n' "host writer, cold" "$host" "$(echo "$host / $lower" | bc -l)"
printf '%-34s %8.2f s  %5.1fx the host writer\n' "guest writer, cold" "$guest" "$(echo "$guest / $host" | bc -l)"
printf '%-34s %8.2f s\n' "unchanged re-bake" "$rebake"
printf '%-34s %8s\n' "host and guest trees byte-identical" "$same"
printf '%-34s %8.0f MiB (1 GiB layer)\n' "host writer peak RSS" "$(echo "$rss / 1024" | bc -l)"
