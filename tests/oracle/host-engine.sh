#!/bin/bash
# Independent oracle for a container store exported by vbake: unpacks the store tar and points the
# HOST's own engine at it (dockerd with its own containerd, or podman), then asks that engine to
# list, inspect, save, create and export the image. If the host engine can do all of that, the
# store is usable by a stock engine; the Java side (org.vbake.it.fixtures.Oracle) compares the
# outputs with what the test image must contain.
#
# Usage (as root): tests/oracle/host-engine.sh docker|podman STORAGE_TAR WORKDIR IMAGE_REF
#   STORAGE_TAR  the exported /var/lib/docker or /var/lib/containers/storage tree:
#                .tar, .tar.gz/.tgz or .tar.zst/.tzst; a tree nested as var/lib/... is found too
#   WORKDIR      created if missing; afterwards holds
#                  root/         the unpacked store (the engine's data-root / graph root)
#                  images.json   docker: `image ls --no-trunc --digests --format '{{json .}}'` (JSON lines)
#                                podman: `images --format json` (one JSON array)
#                  inspect.json  `image inspect IMAGE_REF` (JSON array)
#                  save.tar      `save IMAGE_REF` (docker-archive format)
#                  export.tar    `export` of a container created (never started) from IMAGE_REF
#                  dockerd.log, containerd.log (docker)
# Environment: ORACLE_DRIVER  storage driver (default overlay2 for docker, overlay for podman)
#              ORACLE_TIMEOUT seconds to wait for containerd/dockerd to start (default 60)
#              ORACLE_STEP_TIMEOUT seconds any one docker/podman command may take (default 600)
# Exit status: 0 when every step worked; otherwise 1 and a line naming the failed step.
#
# The host engine runs on private sockets, pid files and config under WORKDIR (see
# engine-lib.sh): no host daemon.json/storage.conf, no bridge, no iptables, no ip_forward sysctl,
# and a private mount namespace so nothing lands in /run, /etc/docker or /var/lib/containers.
# Everything started here is stopped by pid before the script exits, also on failure or signal,
# and the script fails if any process still refers to its run directory.
#
# What export.tar keeps (docker 20.10.24 and podman 4.3.1 on Debian bookworm, found by test):
#   - numeric owners, permission bits with setuid, symlinks, FIFOs, hardlinks (as tar hardlink
#     entries), whiteouts applied (deleted files absent, opaque directories hold only upper entries);
#   - xattrs: docker keeps security.capability only; podman keeps security.capability,
#     security.ima and user.*; neither keeps trusted.* (so no overlay markers leak out);
#   - docker adds .dockerenv, /dev/{console,pts,shm}, /etc/{hostname,hosts,mtab,resolv.conf},
#     /proc and /sys to every export; podman adds nothing for a container that never ran.
# Images for another arch (arm64 on an amd64 host) create and export fine: nothing runs;
# docker only warns that the platform does not match.
# podman's libpod/bolt_state.db records the paths it was created under and makes podman refuse a
# store moved elsewhere; vbake leaves it out of the export, and this script moves it aside
# (to WORKDIR/bolt_state.db.orig) when a store still has one.
set -euo pipefail

[ $# = 4 ] || { echo "usage: $0 docker|podman STORAGE_TAR WORKDIR IMAGE_REF" >&2; exit 2; }
ENGINE=$1
STORAGE_TAR=$2
WORK=$(mkdir -p "$3" && cd "$3" && pwd)
IMAGE_REF=$4
ROOT=$WORK/root
ORACLE_NAME=host-engine
# shellcheck source=tests/oracle/engine-lib.sh
. "$(dirname "$0")/engine-lib.sh"

engine_prepare
trap engine_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -f "$STORAGE_TAR" ] || die "no storage tar at $STORAGE_TAR"
case "$STORAGE_TAR" in
    *.tar) compress=() ;;
    *.tar.gz | *.tgz) compress=(--gzip) ;;
    *.tar.zst | *.tar.zstd | *.tzst) compress=(--zstd) ;;
    *) die "cannot tell the compression of $STORAGE_TAR (want .tar, .tar.gz or .tar.zst)" ;;
esac
[ ! -e "$ROOT" ] || die "$ROOT exists; give an empty WORKDIR"
mkdir -p "$ROOT"
rm -f "$WORK/images.json" "$WORK/inspect.json" "$WORK/save.tar" "$WORK/export.tar"
step "unpack $STORAGE_TAR" tar -x -f "$STORAGE_TAR" "${compress[@]}" -C "$ROOT" \
    --xattrs --xattrs-include='*' --numeric-owner -p --same-owner

if [ "$ENGINE" = docker ]; then
    nested=var/lib/docker
    marker=image
else
    nested=var/lib/containers/storage
    marker=$DRIVER-images
fi
if [ ! -d "$ROOT/$marker" ] && [ -d "$ROOT/$nested" ]; then
    note "store is nested as $nested in the tar"
    ROOT=$ROOT/$nested
fi
[ -d "$ROOT/$marker" ] || note "warning: no $marker/ in the store; the engine will probably see no images"

if [ "$ENGINE" = docker ]; then
    docker_start
    step "docker image ls" to_file "$WORK/images.json" docker_cli image ls --no-trunc --digests --format '{{json .}}'
    step "docker image inspect $IMAGE_REF" to_file "$WORK/inspect.json" docker_cli image inspect "$IMAGE_REF"
    step "docker save $IMAGE_REF" docker_cli save -o "$WORK/save.tar" "$IMAGE_REF"
    step "docker create $IMAGE_REF" docker_cli create --pull never --network none --name oracle "$IMAGE_REF"
    step "docker export" docker_cli export -o "$WORK/export.tar" oracle
    step "docker rm" docker_cli rm oracle
    note "stopping dockerd and containerd"
    docker_stop
else
    if [ -e "$ROOT/libpod/bolt_state.db" ]; then
        note "moving libpod/bolt_state.db aside: it records the paths of the machine that wrote it"
        mv "$ROOT/libpod/bolt_state.db" "$WORK/bolt_state.db.orig"
    fi
    podman_prepare
    step "podman images" to_file "$WORK/images.json" podman_cli images --format json
    step "podman image inspect $IMAGE_REF" to_file "$WORK/inspect.json" podman_cli image inspect "$IMAGE_REF"
    step "podman save $IMAGE_REF" podman_cli save --format docker-archive -o "$WORK/save.tar" "$IMAGE_REF"
    step "podman create $IMAGE_REF" podman_cli create --pull never --network none --name oracle "$IMAGE_REF"
    step "podman export" podman_cli export -o "$WORK/export.tar" oracle
    step "podman rm" podman_cli rm oracle
fi
note "ok: $ENGINE read $IMAGE_REF from the store"
