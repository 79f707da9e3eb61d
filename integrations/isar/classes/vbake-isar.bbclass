# vbake-isar.bbclass: bakes ready-to-run container storage into an Isar (Debian) image with vbake.
#
# do_vbake runs `vbake bake VBAKE_MANIFEST` as the build user (a target-arch QEMU guest; it may
# pull from registries). vbake_install_storage, a ROOTFS_POSTPROCESS_COMMAND, then unpacks the
# storage tree into the rootfs as root, the way Isar's own postprocess functions change the
# rootfs (rootfs.bbclass: `sudo ...`, `sudo -s <<'EOSUDO'`, or run_privileged_heredoc in Isar
# versions that have it), installs storage.conf and the units, and deploys listing and SBOM.
# Use it in an image recipe:
#
#   inherit image vbake-isar
#   IMAGE_PREINSTALL += "docker.io"
#   VBAKE_MANIFEST = "${THISDIR}/files/containers.yaml"
#
# vbake must be on the PATH bitbake runs with (inside kas-container: in the container), with its
# jar built, java and qemu-system-aarch64 / qemu-system-x86_64 installed, and the guest images
# (built once as root: `vbake images build`, see vbake's README) in the cache the build user's
# vbake reads (~/.cache/vbake, or VBAKE_CACHE_DIR below).

# The bake manifest (YAML), an absolute path such as "${THISDIR}/files/containers.yaml".
VBAKE_MANIFEST ?= ""
# The vbake executable: a name on PATH or an absolute path.
VBAKE ?= "vbake"
VBAKE_OUT = "${WORKDIR}/vbake"
# The guest's state disk and logs (console.log is here when a guest fails); fresh for every bake.
VBAKE_STATE_DIR ?= "${WORKDIR}/vbake-state"
# Guest images and blob cache; empty means vbake's default (~/.cache/vbake of the build user).
VBAKE_CACHE_DIR ?= ""
# The target architecture as vbake names it, from DISTRO_ARCH; the manifest's arch: must match.
VBAKE_ARCH ?= "${@vbake_isar_arch(d)}"
# docker or podman, read from the manifest (informational: the install step reads the tree).
VBAKE_RUNTIME ?= "${@vbake_manifest_value(d, 'runtime')}"
# The timestamp vbake clamps mtimes to (Isar exports SOURCE_DATE_EPOCH).
VBAKE_SOURCE_DATE_EPOCH ?= "${SOURCE_DATE_EPOCH}"
# Local inputs the manifest reads (rootfs:, oci:, ... paths): their changes rerun do_vbake.
VBAKE_EXTRA_INPUTS ?= ""
# More options for `vbake bake`, e.g. "--authfile /path/auth.json".
VBAKE_EXTRA_ARGS ?= ""
VBAKE_OFFLINE_ARG = "${@'--offline' if bb.utils.to_boolean(d.getVar('BB_NO_NETWORK')) else ''}"
# A shell reading a script from stdin, as root: Isar's run_privileged_heredoc where this Isar has
# it (it also covers rootless builds), plain sudo as in older Isar's rootfs.bbclass otherwise.
VBAKE_PRIVILEGED_SHELL ?= "${@'run_privileged_heredoc' if d.getVar('run_privileged_heredoc', False) is not None else 'sudo /bin/sh -s'}"

def vbake_isar_arch(d):
    return {'arm64': 'aarch64', 'amd64': 'x86_64'}.get(d.getVar('DISTRO_ARCH'), '')

def vbake_manifest_value(d, key):
    """The top-level KEY (arch, runtime, ...) of the bake manifest, or '' if it cannot be read."""
    import re
    path = d.getVar('VBAKE_MANIFEST') or ''
    if not os.path.isfile(path):
        return ''
    pattern = re.compile(r'^%s:\s*["\']?([A-Za-z0-9_.-]+)' % re.escape(key))
    with open(path, encoding='utf-8') as f:
        for line in f:
            m = pattern.match(line)
            if m:
                return m.group(1)
    return ''

def vbake_file_checksums(d):
    entries = []
    for path in [d.getVar('VBAKE_MANIFEST') or ''] + (d.getVar('VBAKE_EXTRA_INPUTS') or '').split():
        if path:
            entries.append('%s:%s' % (path, os.path.exists(path)))
    return ' '.join(entries)

python () {
    manifest = d.getVar('VBAKE_MANIFEST')
    if manifest and os.path.isfile(manifest):
        # VBAKE_RUNTIME is read from the manifest while parsing: reparse when it changes.
        bb.parse.mark_dependency(d, manifest)
}

python vbake_check() {
    manifest = d.getVar('VBAKE_MANIFEST')
    if not manifest:
        bb.fatal('VBAKE_MANIFEST is not set: point it at the bake manifest, e.g. '
                 'VBAKE_MANIFEST = "${THISDIR}/files/containers.yaml"')
    if not os.path.isabs(manifest) or not os.path.isfile(manifest):
        bb.fatal('VBAKE_MANIFEST must name an existing file by absolute path: %s' % manifest)
    arch = d.getVar('VBAKE_ARCH')
    if not arch:
        bb.fatal('vbake bakes for arm64 and amd64 targets; DISTRO_ARCH is %s' % d.getVar('DISTRO_ARCH'))
    manifest_arch = vbake_manifest_value(d, 'arch')
    if manifest_arch and manifest_arch != arch:
        bb.fatal('%s says arch: %s, but this image is for %s (DISTRO_ARCH %s)'
                 % (manifest, manifest_arch, arch, d.getVar('DISTRO_ARCH')))
    if d.getVar('ISAR_CHROOT_MODE') == 'unshare':
        bb.fatal('rootless Isar (ISAR_CHROOT_MODE = "unshare") changes the rootfs in a user namespace, '
                 'where trusted.* xattrs (trusted.overlay.opaque) cannot be set and security.capability '
                 'would become namespaced: build images that use vbake with ISAR_ROOTLESS = "0"')
    codename = d.getVar('BASE_DISTRO_CODENAME') or ''
    if codename in ('buster', 'bullseye', 'bookworm'):
        runtime = vbake_manifest_value(d, 'runtime') or 'docker'
        bb.warn('vbake fills the storage with the engine of Debian trixie (docker 26, podman 5), but this '
                '%s image gets %s\'s older %s, which may not read it. The manifest has no suite key yet '
                '(vdkr and vpdmn take --suite bookworm).' % (codename, codename, runtime))
        if runtime == 'podman':
            bb.warn('podman before 4.4 (%s has 4.3 or older) has no quadlet: the .container files vbake '
                    'writes will not start anything' % codename)
}

do_vbake[doc] = "Bakes the container storage of VBAKE_MANIFEST with vbake into VBAKE_OUT"
do_vbake[prefuncs] += "vbake_check"
do_vbake[dirs] = "${WORKDIR}"
do_vbake[cleandirs] = "${VBAKE_OUT} ${VBAKE_STATE_DIR}"
# Pulling from registries is part of the bake (Isar marks such tasks with TASK_USE_NETWORK).
do_vbake[network] = "${@d.getVar('TASK_USE_NETWORK') or '1'}"
do_vbake[file-checksums] += "${@vbake_file_checksums(d)}"
do_vbake[vardepsexclude] += "VBAKE_CACHE_DIR VBAKE_OFFLINE_ARG BB_NO_NETWORK"
do_vbake() {
    set -- ${VBAKE}
    if ! command -v "$1" >/dev/null 2>&1; then
        bbfatal "vbake: '$1' is not on PATH; install vbake where bitbake runs, or set VBAKE to its absolute path"
    fi
    if [ -n "${VBAKE_CACHE_DIR}" ]; then
        export VBAKE_CACHE_DIR="${VBAKE_CACHE_DIR}"
    fi
    export SOURCE_DATE_EPOCH="${VBAKE_SOURCE_DATE_EPOCH}"
    bbnote "vbake: baking ${VBAKE_MANIFEST} (${VBAKE_ARCH}, ${VBAKE_RUNTIME}) into ${VBAKE_OUT}"
    rc=0
    ${VBAKE} bake "${VBAKE_MANIFEST}" -o "${VBAKE_OUT}" --progress=plain \
        --state-dir "${VBAKE_STATE_DIR}" ${VBAKE_OFFLINE_ARG} ${VBAKE_EXTRA_ARGS} || rc=$?
    case $rc in
    0) ;;
    2) bbfatal "vbake bake failed (exit 2, bad input): the message above names the manifest line and the entry" ;;
    3) bbfatal "vbake bake failed (exit 3, guest failure): the message above names the log to read" ;;
    *) bbfatal "vbake bake failed (exit $rc): see the messages above" ;;
    esac
}
addtask vbake after do_unpack before do_rootfs_postprocess

# Isar runs these one after another with plain whitespace between them (no semicolons).
ROOTFS_POSTPROCESS_COMMAND += "vbake_install_storage"

vbake_install_storage() {
    out="${VBAKE_OUT}"
    storage=""
    for f in storage.tar.zst storage.tar.gz storage.tar; do
        if [ -z "$storage" ] && [ -f "$out/$f" ]; then
            storage="$out/$f"
        fi
    done
    if [ -z "$storage" ] && [ -f "$out/storage.ext4" ]; then
        bbfatal "vbake: $out holds storage.ext4 (output: ext4), a partition image for its own partition, not a tree for the rootfs; bake with output: tar.zst, or give the image to the partition layout instead of inheriting this class"
    fi
    if [ -z "$storage" ]; then
        bbfatal "vbake: no storage.tar.zst, storage.tar.gz or storage.tar in $out: do_vbake has not run"
    fi
    zflag=""
    case "$storage" in
    *.zst)
        zflag=--zstd
        case "$(tar --help 2>/dev/null)" in
        *--zstd*) ;;
        *) bbfatal "vbake: $(command -v tar) has no --zstd (GNU tar 1.31 or newer, Debian bullseye or later)" ;;
        esac
        ;;
    *.gz)
        zflag=--gzip
        ;;
    esac
    # docker or podman, from the first top-level directory only one of them has.
    kind=$(tar $zflag -tf "$storage" 2>/dev/null | awk -F/ '
        { n = ($1 == ".") ? $2 : $1 }
        n == "image" || n == "overlay2" { print "docker"; exit }
        n == "libpod" || n == "overlay" || n ~ /^overlay-/ || n ~ /^vfs-/ { print "podman"; exit }')
    case "$kind" in
    docker) dest="${ROOTFSDIR}/var/lib/docker" ;;
    podman) dest="${ROOTFSDIR}/var/lib/containers/storage" ;;
    *) bbfatal "vbake: $storage is neither a docker nor a podman storage tree" ;;
    esac
    bbnote "vbake: unpacking $storage ($kind) into $dest"

    # As root: the owners, the overlay whiteouts (character devices 0/0) and the xattrs
    # (trusted.overlay.opaque, security.capability) of the tree must be written as they are.
    # A failure prints its reason and stops the task (shell tasks run with set -e).
    ${VBAKE_PRIVILEGED_SHELL} "$storage" "$zflag" "$dest" "$kind" <<'EOSUDO'
        set -e
        storage=$1 zflag=$2 dest=$3 kind=$4
        out='${VBAKE_OUT}'
        rootfs='${ROOTFSDIR}'
        sde='${VBAKE_SOURCE_DATE_EPOCH}'
        if [ -d "$dest" ] && [ -n "$(ls -A "$dest")" ]; then
            echo "vbake: $dest already holds files (from a package?): a data-root must come from the bake alone" >&2
            exit 1
        fi
        mkdir -p "$dest"
        # GNU tar exits 0 when it cannot set an xattr: its messages are checked as well.
        errors=$(tar $zflag -xpf "$storage" --xattrs --xattrs-include='*' --numeric-owner --same-owner \
            -C "$dest" 2>&1 >/dev/null) || { echo "$errors" >&2; echo "vbake: tar failed" >&2; exit 1; }
        if printf '%s\n' "$errors" | grep -qiE 'xattr|extended attribute'; then
            echo "$errors" >&2
            echo "vbake: tar could not set extended attributes: the store would be broken on the target" >&2
            exit 1
        fi
        [ -z "$errors" ] || echo "vbake: tar: $errors" >&2

        made=""
        if [ "$kind" = podman ] && [ -f "$out/storage.conf" ]; then
            install -D -m 0644 "$out/storage.conf" "$rootfs/etc/containers/storage.conf"
            made="$made $rootfs/etc/containers/storage.conf"
        fi
        unitdir="$rootfs/etc/systemd/system"
        for unit in "$out"/systemd/*.service; do
            [ -f "$unit" ] || continue
            name=$(basename "$unit")
            install -D -m 0644 "$unit" "$unitdir/$name"
            targets=$(sed -n 's/^[[:space:]]*WantedBy[[:space:]]*=//p' "$unit")
            [ -n "$targets" ] || targets=multi-user.target
            for target in $targets; do
                install -d "$unitdir/$target.wants"
                ln -sf "/etc/systemd/system/$name" "$unitdir/$target.wants/$name"
                made="$made $unitdir/$target.wants/$name $unitdir/$target.wants"
            done
            made="$made $unitdir/$name"
        done
        for unit in "$out"/quadlet/*.container "$out"/quadlet/*.network "$out"/quadlet/*.volume; do
            [ -f "$unit" ] || continue
            install -D -m 0644 "$unit" "$rootfs/etc/containers/systemd/$(basename "$unit")"
            made="$made $rootfs/etc/containers/systemd/$(basename "$unit")"
        done
        # compose stacks (docker): the file its unit brings up, where the unit looks for it
        for stack in "$out"/compose/*/compose.yaml; do
            [ -f "$stack" ] || continue
            project=$(basename "$(dirname "$stack")")
            install -D -m 0644 "$stack" "$rootfs/usr/share/vbake/compose/$project/compose.yaml"
            made="$made $rootfs/usr/share/vbake/compose/$project/compose.yaml $rootfs/usr/share/vbake/compose/$project"
        done
        install -d "$rootfs/usr/share/vbake"
        for f in listing.json sbom.cdx.json; do
            if [ -f "$out/$f" ]; then
                install -m 0644 "$out/$f" "$rootfs/usr/share/vbake/$f"
                made="$made $rootfs/usr/share/vbake/$f"
            fi
        done
        made="$made $rootfs/usr/share/vbake"
        if [ -n "$sde" ]; then
            touch -h -d "@$sde" $made
        fi
EOSUDO

    mkdir -p "${DEPLOY_DIR_IMAGE}"
    for f in listing.json sbom.cdx.json; do
        if [ -f "$out/$f" ]; then
            cp "$out/$f" "${DEPLOY_DIR_IMAGE}/${IMAGE_FULLNAME}.vbake-$f"
        else
            bbwarn "vbake: $out/$f is missing; not installed"
        fi
    done
    bbnote "vbake: $kind storage in $dest; listing and SBOM in /usr/share/vbake and ${DEPLOY_DIR_IMAGE}"
}
