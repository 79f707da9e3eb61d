#!/bin/bash
# Installs what vbake needs on a fresh Debian (bookworm or newer) host: QEMU for both target
# arches, the guest image builders, Java and Maven. Idempotent; needs root.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "setup-host: run this as root, or install sudo" >&2; exit 2; }
    exec sudo "$0" "$@"
fi
export DEBIAN_FRONTEND=noninteractive
packages=(qemu-system-arm qemu-system-x86 qemu-utils mmdebstrap squashfs-tools e2fsprogs kmod cpio xz-utils
          zstd golang-go util-linux bc openjdk-17-jdk-headless maven)
# Only the tests need these: a local registry to pull from, the host's own engines as
# independent oracles that read an exported store, and rpm (rpmbuild) and Berkeley DB's db_load
# to make the real rpm databases the package listing is tested on.
if [ "${VBAKE_SETUP_TESTS:-1}" = 1 ]; then
    packages+=(docker-registry docker.io podman tar attr rpm db5.3-util)
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup-host: installing ${missing[*]}"
    # A third-party source that cannot be reached must not stop the Debian ones.
    apt-get update -qq || echo "setup-host: apt-get update reported errors; continuing with what it fetched" >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup-host: ready ($(qemu-system-aarch64 --version | head -n 1))"
