#!/bin/bash
# The main job on the bundled example: bake an arm64 docker data-root (plus units, listing and
# SBOM) into build/hello-aarch64. Usage: examples/hello/bake.sh [OUTDIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:-$top/build/hello-aarch64}
"$here/prepare-rootfs.sh" aarch64 "$here/build/rootfs-aarch64"
mkdir -p "$(dirname "$out")"
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1735689600} "$top/bin/vbake" bake "$here/bake.yaml" -o "$out" --progress=plain
