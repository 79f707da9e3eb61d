#!/bin/bash
# Bakes container storage with vbake and installs it into a root filesystem directory: the
# engine's data-root, podman's storage.conf, the systemd units (enabled) or quadlet files, and the
# listing and SBOM under /usr/share/vbake. For Buildroot hooks and any hand-made rootfs.
#
#   bake-into-rootfs.sh [--bake-only | --install-only] MANIFEST ROOTFS_DIR [OUTDIR] [-- COMMAND...]
#
# Run with --help for the options, the environment and the exit codes.
set -euo pipefail

prog=bake-into-rootfs

usage() {
    cat <<'EOF'
Usage: bake-into-rootfs.sh [--bake-only | --install-only] MANIFEST ROOTFS_DIR [OUTDIR] [-- COMMAND...]

Runs `vbake bake MANIFEST -o OUTDIR`, then unpacks OUTDIR's storage tree into ROOTFS_DIR
(var/lib/docker or var/lib/containers/storage, told apart by the tree itself), installs
storage.conf (podman), systemd units (enabled through .wants symlinks) or quadlet files, and
copies listing.json and sbom.cdx.json to ROOTFS_DIR/usr/share/vbake/.

  --bake-only     only run vbake into OUTDIR (no root needed; ROOTFS_DIR is not touched)
  --install-only  only install what an earlier --bake-only left in OUTDIR
  -- COMMAND...   run COMMAND after the install, in the same (fake)root session, e.g. the
                  command that makes the filesystem image from ROOTFS_DIR
  -h, --help      this text

OUTDIR is required with --bake-only and --install-only; otherwise a temporary directory is used
and removed at the end.

The install must run as root: owners, overlay whiteouts (character devices 0/0) and xattrs
(trusted.overlay.opaque, security.capability) have to be written. Either run it as root, or
inside the fakeroot/pseudo session that also creates the filesystem image (Buildroot:
BR2_ROOTFS_POST_FAKEROOT_SCRIPT), or set FAKEROOT=1 and give the image command after `--`.
vbake itself always runs as the calling user, outside fakeroot/pseudo.

Environment:
  VBAKE              the vbake executable (default: vbake on PATH, else this checkout's bin/vbake)
  VBAKE_BAKE_ARGS    extra options for `vbake bake`, split on spaces (e.g. "--offline")
  SOURCE_DATE_EPOCH  passed to vbake; also the mtime of the files this script installs
  FAKEROOT=1         when not root: re-run the install under fakeroot, then COMMAND in it
  VBAKE_REPLACE=1    empty an existing, non-empty data-root in ROOTFS_DIR before unpacking

Exit codes: 0 ok, 2 bad usage or input, 1 other failure; a failing vbake's own exit code
(2 bad manifest, 3 guest failure), a failing COMMAND's exit code.
EOF
}

say() { printf '%s: %s\n' "$prog" "$*"; }
warn() { printf '%s: warning: %s\n' "$prog" "$*" >&2; }
die() {
    local code=$1
    shift
    printf '%s: %s\n' "$prog" "$*" >&2
    exit "$code"
}

# Prints "fakeroot" or "pseudo" when running under one of them, nothing otherwise.
faker() {
    case ${LD_PRELOAD:-} in
        *libpseudo*) echo pseudo ;;
        *libfakeroot*) echo fakeroot ;;
        *) if [ -n "${FAKEROOTKEY:-}" ]; then echo fakeroot; fi ;;
    esac
}

mode=all
positional=()
command=()
while [ $# -gt 0 ]; do
    case $1 in
        --bake-only | --install-only)
            [ "$mode" = all ] || die 2 "--bake-only and --install-only exclude each other"
            mode=${1#--}
            mode=${mode%-only}
            ;;
        -h | --help) usage; exit 0 ;;
        --) shift; command=("$@"); break ;;
        -?*) die 2 "unknown option '$1' (see --help)" ;;
        *) positional+=("$1") ;;
    esac
    shift
done
if [ ${#positional[@]} -lt 2 ] || [ ${#positional[@]} -gt 3 ]; then
    usage >&2
    exit 2
fi
manifest=${positional[0]}
rootfs=${positional[1]}
outdir=${positional[2]:-}
if [ -z "$outdir" ] && [ "$mode" != all ]; then
    die 2 "--$mode-only needs OUTDIR (the directory the bake writes and the install reads)"
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/$prog.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
if [ -z "$outdir" ]; then
    outdir=$scratch/out
fi

find_vbake() {
    if [ -n "${VBAKE:-}" ]; then
        command -v "$VBAKE" || return 1
    elif command -v vbake; then
        :
    else
        local top
        top=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
        [ -x "$top/bin/vbake" ] && echo "$top/bin/vbake"
    fi
}

bake() {
    [ -f "$manifest" ] || die 2 "manifest '$manifest' is not a file"
    local vbake
    vbake=$(find_vbake) || die 2 "vbake not found: put it on PATH or set VBAKE=/path/to/vbake"
    mkdir -p "$outdir"
    local argv
    # VBAKE_BAKE_ARGS is a list of options: split on purpose.
    # shellcheck disable=SC2206
    argv=("$vbake" bake "$manifest" -o "$outdir" --progress=plain ${VBAKE_BAKE_ARGS:-})
    say "running: ${argv[*]}"
    if [ -n "$(faker)" ]; then
        # Under fakeroot/pseudo vbake would believe it is root (its caches move to /root) and
        # QEMU would run under the preload library: run it as the real user instead.
        argv=(env -u LD_PRELOAD -u FAKEROOTKEY PSEUDO_UNLOAD=1 "${argv[@]}")
    elif [ "$(id -u)" = 0 ] && [ -n "${SUDO_USER:-}" ]; then
        say "note: baking as root uses root's vbake cache; run --bake-only as $SUDO_USER and --install-only with sudo to share $SUDO_USER's"
    fi
    local rc=0
    "${argv[@]}" || rc=$?
    if [ $rc -ne 0 ]; then
        die "$rc" "vbake bake failed (exit $rc: 2 = bad manifest or input, 3 = guest failure); the lines above name the manifest line or the log to read"
    fi
}

# The path as it will resolve once created; refuses paths that leave the rootfs through a
# symlink (an absolute link like var -> /data would otherwise write into the build host).
inside_rootfs() {
    local real
    real=$(realpath -m -- "$1")
    case $real/ in
        "$rootfs_real"/*) echo "$real" ;;
        *) die 2 "$1 resolves to $real, outside $rootfs_real (a symlink in the rootfs?); refusing to write there" ;;
    esac
}

storage_file() {
    local found=() f
    for f in storage.tar.zst storage.tar.gz storage.tar; do
        [ -f "$outdir/$f" ] && found+=("$outdir/$f")
    done
    if [ ${#found[@]} -eq 0 ] && [ -f "$outdir/storage.ext4" ]; then
        die 2 "$outdir holds storage.ext4 (output: ext4), a partition image to flash as the data-root's own partition, not a tree to install into $rootfs; bake with output: tar.zst to install into the rootfs"
    fi
    [ ${#found[@]} -gt 0 ] || die 2 "no storage.tar, storage.tar.gz or storage.tar.zst in $outdir (did the bake run?)"
    [ ${#found[@]} -eq 1 ] || die 2 "$outdir holds ${found[*]}: remove the stale one"
    echo "${found[0]}"
}

# docker or podman, from the first top-level directory that only one of them has.
tree_kind() {
    (
        set +o pipefail
        tar "${unzip[@]}" -tf "$storage" 2>/dev/null | awk -F/ '
            { n = ($1 == ".") ? $2 : $1 }
            n == "image" || n == "overlay2" { print "docker"; exit }
            n == "libpod" || n == "overlay" || n ~ /^overlay-/ || n ~ /^vfs-/ { print "podman"; exit }'
    )
}

need_root() {
    [ "$(id -u)" = 0 ] && return 0
    cat >&2 <<EOF
$prog: installing into $rootfs needs root: owners, device nodes (overlay whiteouts) and xattrs
  must be written, or the engine on the target sees a broken store. Either
  - run this as root (sudo), or
  - run it inside the fakeroot/pseudo session that then makes the filesystem image
    (Buildroot: BR2_ROOTFS_POST_FAKEROOT_SCRIPT), or
  - set FAKEROOT=1 and put the image command after --, for example
      FAKEROOT=1 $0 ${positional[*]} -- mkfs.ext4 -d $rootfs rootfs.ext4 1G
  fakeroot keeps owners, devices and xattrs only until it exits (its -s/-i state file drops xattrs).
EOF
    exit 2
}

# GNU tar creates a regular file that carries xattrs with mknodat(path, perms, 0): no file-type
# bits. Linux makes a regular file of it, but fakeroot records the typeless mode, so inside the
# session the file is a "weird file" that mke2fs -d and mksquashfs refuse. Give each such file a
# new inode made by ordinary means, with the same data, owner, mode, xattrs, mtime and links.
repair_typeless_files() {
    local dir=$1 line path l tmp parent stamp count=0
    local links=()
    while IFS= read -r -d '' line; do
        [ "${line:0:1}" = "?" ] || continue
        path=${line#*$'\t'}
        # A hardlink of a file repaired earlier in this loop is already fine.
        [ "$(find "$path" -maxdepth 0 -printf '%M')" != "${line%%$'\t'*}" ] && continue
        links=()
        while IFS= read -r -d '' l; do
            [ "$l" = "$path" ] || links+=("$l")
        done < <(find "$dir" -samefile "$path" -print0)
        parent=$(dirname -- "$path")
        stamp=$scratch/parent-mtime
        touch -r "$parent" "$stamp"
        tmp=$path.vbake-fix
        cat -- "$path" >"$tmp"
        cp --attributes-only --preserve=xattr -- "$path" "$tmp"
        chown --reference="$path" -- "$tmp"
        chmod --reference="$path" -- "$tmp"
        touch -r "$path" -- "$tmp"
        mv -f -- "$tmp" "$path"
        for l in ${links[@]+"${links[@]}"}; do
            touch -r "$(dirname -- "$l")" "$stamp.l"
            ln -f -- "$path" "$l"
            touch -r "$stamp.l" -- "$(dirname -- "$l")"
        done
        touch -r "$stamp" -- "$parent"
        count=$((count + 1))
    done < <(find "$dir" -printf '%M\t%p\0')
    if [ $count -gt 0 ]; then
        say "fakeroot: re-created $count file(s) with xattrs that fakeroot had recorded without a file type"
    fi
}

installed=()
install_file() { # SRC DEST
    mkdir -p -- "$(dirname -- "$2")"
    cp -- "$1" "$2"
    chmod 0644 -- "$2"
    installed+=("$2")
}

check_rootfs() {
    [ -d "$rootfs" ] || die 2 "ROOTFS_DIR '$rootfs' is not a directory"
    rootfs_real=$(realpath -- "$rootfs")
    [ "$rootfs_real" != / ] || die 2 "ROOTFS_DIR is /: this installs into a root filesystem tree, not into the running system"
}

install_tree() {
    check_rootfs
    need_root
    storage=$(storage_file)
    case $storage in
        *.zst)
            unzip=(--zstd)
            case $(tar --help 2>/dev/null) in
                *--zstd*) ;;
                *) die 2 "$(command -v tar) has no --zstd (GNU tar 1.31 or newer needed), or set output: tar.gz in the manifest" ;;
            esac
            command -v zstd >/dev/null || die 2 "zstd is not installed (tar --zstd runs it)"
            ;;
        *.gz) unzip=(--gzip) ;;
        *) unzip=() ;;
    esac
    local kind dest
    kind=$(tree_kind)
    case $kind in
        docker) dest=$(inside_rootfs "$rootfs/var/lib/docker") ;;
        podman) dest=$(inside_rootfs "$rootfs/var/lib/containers/storage") ;;
        *) die 2 "$storage is not a docker or podman storage tree (no image/ or overlay2/, nor overlay*/ or libpod/)" ;;
    esac
    if [ "$kind" = docker ] && [ -f "$outdir/storage.conf" ]; then
        warn "$outdir has a storage.conf (podman) but the tree is docker's: stale files from another bake?"
    fi
    if [ -d "$dest" ] && [ -n "$(ls -A -- "$dest")" ]; then
        [ "${VBAKE_REPLACE:-0}" = 1 ] || die 2 "$dest is not empty: a data-root must come from one bake alone (VBAKE_REPLACE=1 empties it first)"
        find "$dest" -mindepth 1 -delete
    fi
    mkdir -p -- "$dest"
    say "unpacking $storage ($kind) into $dest${faking:+ (under $faking)}"
    local errors=$scratch/tar-errors
    # --same-owner: a tar that is not root would silently keep the caller as owner.
    tar "${unzip[@]}" -xpf "$storage" --xattrs --xattrs-include='*' --numeric-owner --same-owner \
        -C "$dest" 2>"$errors" || {
        cat "$errors" >&2
        die 1 "tar failed to unpack $storage into $dest"
    }
    if grep -qiE 'xattr|extended attribute' "$errors"; then
        cat "$errors" >&2
        die 1 "tar could not set extended attributes (tar still exits 0 then); the store would be broken on the target"
    fi
    if [ -s "$errors" ]; then
        warn "tar: $(cat "$errors")"
    fi
    if [ "$faking" = fakeroot ]; then
        repair_typeless_files "$dest"
    fi

    if [ -f "$outdir/storage.conf" ] && [ "$kind" = podman ]; then
        install_file "$outdir/storage.conf" "$(inside_rootfs "$rootfs/etc/containers/storage.conf")"
    fi

    local unit name target targets units=0 quadlets=0
    local unitdir
    unitdir=$(inside_rootfs "$rootfs/etc/systemd/system")
    for unit in "$outdir"/systemd/*.service; do
        [ -f "$unit" ] || continue
        name=$(basename -- "$unit")
        install_file "$unit" "$unitdir/$name"
        targets=$(sed -n 's/^[[:space:]]*WantedBy[[:space:]]*=//p' "$unit" | tr -s ' \t' '  ')
        for target in ${targets:-multi-user.target}; do
            mkdir -p -- "$unitdir/$target.wants"
            ln -sfn -- "/etc/systemd/system/$name" "$unitdir/$target.wants/$name"
            installed+=("$unitdir/$target.wants/$name" "$unitdir/$target.wants")
        done
        units=$((units + 1))
    done
    for unit in "$outdir"/quadlet/*.container "$outdir"/quadlet/*.network "$outdir"/quadlet/*.volume; do
        [ -f "$unit" ] || continue
        install_file "$unit" "$(inside_rootfs "$rootfs/etc/containers/systemd")/$(basename -- "$unit")"
        quadlets=$((quadlets + 1))
    done
    # compose stacks (docker): the file its unit brings up, where the unit looks for it
    local stack project
    for stack in "$outdir"/compose/*/compose.yaml; do
        [ -f "$stack" ] || continue
        project=$(basename -- "$(dirname -- "$stack")")
        install_file "$stack" "$(inside_rootfs "$rootfs/usr/share/vbake/compose/$project")/compose.yaml"
    done
    if [ $((units + quadlets)) -gt 0 ] && [ ! -e "$rootfs/lib/systemd/systemd" ] && [ ! -e "$rootfs/usr/lib/systemd/systemd" ]; then
        warn "$rootfs has no systemd: the units are installed but nothing will start them"
    fi

    local share
    share=$(inside_rootfs "$rootfs/usr/share/vbake")
    for f in listing.json sbom.cdx.json; do
        if [ -f "$outdir/$f" ]; then
            install_file "$outdir/$f" "$share/$f"
        else
            warn "$outdir/$f is missing; not installed"
        fi
    done
    if [ -d "$share" ]; then
        installed+=("$share")
    fi
    if [ -n "${SOURCE_DATE_EPOCH:-}" ] && [ ${#installed[@]} -gt 0 ]; then
        touch -h -d "@$SOURCE_DATE_EPOCH" -- "${installed[@]}"
    fi
    say "installed $kind storage into $dest, $units unit(s) enabled, $quadlets quadlet file(s), listing and SBOM in /usr/share/vbake"
}

faking=$(faker)
refake=0
if [ "$mode" != bake ]; then
    # Refuse before a bake of several minutes, not after it.
    check_rootfs
    if [ "$(id -u)" != 0 ] && [ "${FAKEROOT:-0}" = 1 ]; then
        [ ${#command[@]} -gt 0 ] || die 2 "FAKEROOT=1 needs the image command after --: what fakeroot records is gone when it exits"
        command -v fakeroot >/dev/null || die 2 "FAKEROOT=1 but fakeroot is not installed"
        refake=1
    else
        need_root
    fi
fi
if [ "$mode" != install ]; then
    bake
fi
if [ "$mode" = bake ]; then
    say "baked into $outdir"
    exit 0
fi

if [ $refake = 1 ]; then
    say "re-running the install and '${command[*]}' under fakeroot"
    rc=0
    FAKEROOT=0 fakeroot -- "$0" --install-only "$manifest" "$rootfs" "$outdir" -- "${command[@]}" || rc=$?
    exit $rc
fi
install_tree
if [ ${#command[@]} -gt 0 ]; then
    say "running: ${command[*]}"
    rc=0
    "${command[@]}" || rc=$?
    [ $rc -eq 0 ] || die "$rc" "'${command[*]}' failed (exit $rc)"
fi
