#!/bin/bash
# Cold and warm bake of the three-image manifest of BakeIT (aarch64; a registry image by digest,
# a multi-layer OCI layout, a Debian rootfs with an autostart unit), for docker and podman.
# Cold: a fresh engine store, every image imported. Warm: the same manifest again; nothing to
# import. Both in one run, so the ratio compares like with like. The blob cache is warm in both.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
rm -f target/bench-bake.txt
mvn -B -q -o verify -Dit.test='BakeIT#bakeIsReproducibleAndVerifies' -Dtest=none -Dsurefire.failIfNoSpecifiedTests=false \
    >/tmp/vbake-bench-bake.log 2>&1 || { tail -n 30 /tmp/vbake-bench-bake.log; exit 1; }
echo "bake of 3 images for aarch64 (seconds, wall, including guest boot and export):"
cat target/bench-bake.txt
