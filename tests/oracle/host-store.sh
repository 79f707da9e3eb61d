#!/bin/bash
# Builds a container store with the HOST's own engine, for testing the oracle itself
# (OracleSelfIT): loads image archives into an empty data-root / graph root, stops the engine and
# tars the tree the way vbake exports one (GNU tar, all xattrs, numeric owners).
#
# Usage (as root): tests/oracle/host-store.sh docker|podman WORKDIR OUT_TAR ARCHIVE...
#   ARCHIVE  docker: docker-archives (docker 20.10 cannot load oci-archives);
#            podman: docker-archives or oci-archives;
#            or pull:REF to pull REF from a registry (plain http is fine for 127.0.0.1:PORT:
#            docker treats 127.0.0.0/8 as insecure by itself, podman gets --tls-verify=false)
#   WORKDIR  must not hold a root/ yet; keeps the store in WORKDIR/root and the engine logs
# Environment: ORACLE_DRIVER, ORACLE_TIMEOUT, ORACLE_STEP_TIMEOUT as for host-engine.sh.
set -euo pipefail

[ $# -ge 4 ] || { echo "usage: $0 docker|podman WORKDIR OUT_TAR ARCHIVE..." >&2; exit 2; }
ENGINE=$1
WORK=$(mkdir -p "$2" && cd "$2" && pwd)
OUT_TAR=$3
shift 3
ROOT=$WORK/root
ORACLE_NAME=host-store
# shellcheck source=tests/oracle/engine-lib.sh
. "$(dirname "$0")/engine-lib.sh"

engine_prepare
trap engine_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ ! -e "$ROOT" ] || die "$ROOT exists; give an empty WORKDIR"
mkdir -p "$ROOT"
if [ "$ENGINE" = docker ]; then
    docker_start
    for archive in "$@"; do
        case "$archive" in
            pull:*) step "docker pull ${archive#pull:}" docker_cli pull "${archive#pull:}" ;;
            *) step "docker load $archive" docker_cli load -i "$archive" ;;
        esac
    done
    docker_stop
else
    podman_prepare
    for archive in "$@"; do
        case "$archive" in
            pull:*) step "podman pull ${archive#pull:}" podman_cli pull --tls-verify=false "${archive#pull:}" ;;
            *) step "podman load $archive" podman_cli load -i "$archive" ;;
        esac
    done
fi
step "tar the store into $OUT_TAR" tar -c -f "$OUT_TAR" -C "$ROOT" \
    --xattrs --xattrs-include='*' --numeric-owner .
note "ok: $ENGINE store with $# image source(s) in $OUT_TAR"
