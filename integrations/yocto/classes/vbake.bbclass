# vbake.bbclass: bakes ready-to-run container storage into an image with vbake.
#
# do_vbake runs `vbake bake` as the build user: vbake writes the engine's storage tree on the
# host (a target-arch QEMU guest only for an input its host writer cannot mirror, which it says),
# pulling from registries where the manifest says so. vbake_install_storage, a
# ROOTFS_POSTPROCESS_COMMAND (so it runs under pseudo inside do_rootfs), unpacks the resulting
# storage tree into the rootfs with its owners, device nodes and xattrs, installs storage.conf and
# the units, and deploys the listing and SBOM. Use it in an image recipe:
#
#   inherit core-image vbake
#   IMAGE_INSTALL += "docker-moby"
#   VBAKE_MANIFEST = "${THISDIR}/files/containers.yaml"
#
# Coming from meta-virtualization's container-cross-install class: keep BUNDLED_CONTAINERS
# ("name:runtime[:autostart][:external]", OCI images built by image-oci in DEPLOY_DIR_IMAGE) and
# the CONTAINER_SERVICE_FILE[name] varflags, and change `inherit container-cross-install` to
# `inherit vbake`: without VBAKE_MANIFEST the class makes the manifest from them (`vbake manifest
# from-bundled`), depends on each container recipe's do_image_complete (not for :external ones)
# and checksums the OCI directories and unit files, so bitbake reruns the bake only when one of
# them changed, and reuses it from sstate otherwise.
#
# vbake has to be runnable from a task. Tasks only see the tools named in HOSTTOOLS (plus the
# native sysroot), so in local.conf, with vbake and its jar built on the host:
#
#   HOSTTOOLS += "vbake java"
#   HOSTTOOLS_NONFATAL += "qemu-system-aarch64 qemu-system-x86_64"   # only when a bake needs the guest
#
# (vbake on the host's PATH, e.g. /usr/local/bin/vbake -> <checkout>/bin/vbake; every tool named
# in HOSTTOOLS must exist when bitbake starts). A vbake-native recipe that installs the launcher
# and jar into the native sysroot works too. The launcher rebuilds its jar with mvn when the
# sources are newer: build it once beforehand (mvn package), since mvn is not a host tool here.
# Bakes that need the guest (see above) need its images, built once as root (`vbake images
# build`) into the cache the build user's vbake reads (~/.cache/vbake, or VBAKE_CACHE_DIR below).
#
# Needs bitbake 2.0 / Yocto 4.0 (kirkstone) or newer: do_vbake relies on the [network] task flag.

# The bake manifest (YAML). Use an absolute path, e.g. "${THISDIR}/files/containers.yaml".
# Empty with BUNDLED_CONTAINERS set: the manifest is made from those (see above).
VBAKE_MANIFEST ?= ""
BUNDLED_CONTAINERS ?= ""
# For BUNDLED_CONTAINERS entries without a runtime, as their CONTAINER_PROFILE default.
VBAKE_BUNDLED_RUNTIME ?= "${@'podman' if (d.getVar('CONTAINER_PROFILE') or '') == 'podman' else 'docker'}"
# The vbake executable, looked up on the task's PATH (see HOSTTOOLS above), or an absolute path.
VBAKE ?= "vbake"
# Where the bake writes storage.tar*, storage.conf, systemd/ or quadlet/, listing.json and
# sbom.cdx.json.
VBAKE_OUT = "${WORKDIR}/vbake"
# The guest's state disk and logs (console.log is here when a guest fails); fresh for every bake.
VBAKE_STATE_DIR ?= "${WORKDIR}/vbake-state"
# Guest images and the blob cache; empty means vbake's default (~/.cache/vbake of the build user).
VBAKE_CACHE_DIR ?= ""
# The target architecture as vbake names it, from TARGET_ARCH; the manifest's arch: must match.
VBAKE_ARCH ?= "${@vbake_target_arch(d)}"
# docker or podman, read from the manifest (informational: the install step reads the tree).
VBAKE_RUNTIME ?= "${@vbake_manifest_value(d, 'runtime') or vbake_bundled_runtime(d)}"
# The timestamp vbake clamps mtimes to; same manifest + same value = byte-identical output.
VBAKE_SOURCE_DATE_EPOCH ?= "${SOURCE_DATE_EPOCH}"
# More local inputs whose change must rerun do_vbake (absolute paths, space-separated). The paths
# the manifest names itself (oci:, oci-archive:, docker-archive:, rootfs:, unit:, compose:) are
# found and checksummed without this.
VBAKE_EXTRA_INPUTS ?= ""
# More options for `vbake bake`, e.g. "--authfile ${TOPDIR}/auth.json --insecure-registry reg:5000".
VBAKE_EXTRA_ARGS ?= ""
# With BB_NO_NETWORK = "1" the bake runs --offline: only digest-pinned refs already in the cache.
VBAKE_OFFLINE_ARG = "${@'--offline' if bb.utils.to_boolean(d.getVar('BB_NO_NETWORK')) else ''}"

def vbake_target_arch(d):
    return {'aarch64': 'aarch64', 'x86_64': 'x86_64'}.get(d.getVar('TARGET_ARCH'), '')

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

def vbake_bundled(d):
    """(name, runtime, external) of each BUNDLED_CONTAINERS entry, as container-cross-install reads it."""
    out = []
    for entry in (d.getVar('BUNDLED_CONTAINERS') or '').split():
        parts = entry.split(':')
        external = 'external' in parts
        parts = [p for p in parts if p != 'external']
        runtime = parts[1] if len(parts) > 1 else d.getVar('VBAKE_BUNDLED_RUNTIME')
        out.append((parts[0], runtime, external))
    return out

def vbake_bundled_runtime(d):
    runtimes = sorted(set(r for _, r, _ in vbake_bundled(d)))
    return runtimes[0] if len(runtimes) == 1 else ''

def vbake_bundled_dirs(d):
    """The OCI directories container-cross-install would use (name-latest-oci, name-oci, or name)."""
    deploy = d.getVar('DEPLOY_DIR_IMAGE')
    dirs = []
    for name, _, _ in vbake_bundled(d):
        candidates = [name] if name.endswith('-oci') else [name + '-latest-oci', name + '-oci']
        found = [c for c in candidates if os.path.isdir(os.path.join(deploy, c))]
        dirs.append(os.path.join(deploy, (found or candidates)[0]))
    return dirs

def vbake_service_files(d):
    flags = d.getVarFlags('CONTAINER_SERVICE_FILE') or {}
    return sorted((k, v) for k, v in flags.items() if v and not k.startswith('_'))

def vbake_service_file_args(d):
    return ' '.join('--service-file %s=%s' % (k, v) for k, v in vbake_service_files(d))

def vbake_manifest_inputs(d):
    """The local files the manifest names (oci:, oci-archive:, docker-archive:, rootfs:, unit:,
    compose:), relative to its directory; directories as DIR/* so a change inside them counts."""
    import re
    path = d.getVar('VBAKE_MANIFEST') or ''
    if not os.path.isfile(path):
        return []
    base = os.path.dirname(os.path.abspath(path))
    pattern = re.compile(r'^[\s-]*(oci|oci-archive|docker-archive|rootfs|unit|compose):\s*["\']?([^"\'#]+?)["\']?\s*(#.*)?$')
    found = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            m = pattern.match(line)
            if m:
                p = os.path.normpath(os.path.join(base, m.group(2).strip()))
                found.append(p + '/*' if os.path.isdir(p) else p)
    return found

def vbake_file_checksums(d):
    entries = []
    paths = [d.getVar('VBAKE_MANIFEST') or ''] + (d.getVar('VBAKE_EXTRA_INPUTS') or '').split()
    paths += vbake_manifest_inputs(d)
    if not d.getVar('VBAKE_MANIFEST'):
        # A container built by a recipe is covered by that recipe's signature (the dependency
        # below); a third-party one (:external) only by its files.
        bundled = vbake_bundled(d)
        for (name, _, external), path in zip(bundled, vbake_bundled_dirs(d)):
            if external:
                paths.append(path + '/*')
        paths += [v for _, v in vbake_service_files(d)]
    for path in paths:
        if path:
            entries.append('%s:%s' % (path, os.path.exists(path.rstrip('*').rstrip('/'))))
    return ' '.join(entries)

python () {
    if not bb.data.inherits_class('image', d):
        bb.fatal('vbake.bbclass bakes container storage into an image: inherit it in an image '
                 'recipe, after core-image or image')
    manifest = d.getVar('VBAKE_MANIFEST')
    if manifest and os.path.isfile(manifest):
        # VBAKE_RUNTIME is read from the manifest while parsing: reparse when it changes.
        bb.parse.mark_dependency(d, manifest)
    if not manifest:
        # As container-cross-install: each container recipe's image first, unless :external.
        for name, _, external in vbake_bundled(d):
            if external:
                continue
            recipe = name[:-len('-latest-oci')] if name.endswith('-latest-oci') else (
                name[:-len('-oci')] if name.endswith('-oci') else name)
            d.appendVarFlag('do_vbake', 'depends', ' %s:do_image_complete' % recipe)
}

python vbake_check() {
    manifest = d.getVar('VBAKE_MANIFEST')
    if not manifest and d.getVar('BUNDLED_CONTAINERS'):
        if not vbake_bundled_runtime(d):
            bb.fatal('BUNDLED_CONTAINERS mixes docker and podman: vbake bakes one engine\'s tree per image recipe')
        if not d.getVar('VBAKE_ARCH'):
            bb.fatal('vbake bakes for aarch64 and x86_64 targets; TARGET_ARCH is %s' % d.getVar('TARGET_ARCH'))
        return
    if not manifest:
        bb.fatal('VBAKE_MANIFEST is not set: point it at the bake manifest, e.g. '
                 'VBAKE_MANIFEST = "${THISDIR}/files/containers.yaml", or set BUNDLED_CONTAINERS')
    if not os.path.isabs(manifest):
        bb.fatal('VBAKE_MANIFEST must be an absolute path (use ${THISDIR}): %s' % manifest)
    if not os.path.isfile(manifest):
        bb.fatal('VBAKE_MANIFEST %s does not exist' % manifest)
    arch = d.getVar('VBAKE_ARCH')
    if not arch:
        bb.fatal('vbake bakes for aarch64 and x86_64 targets; TARGET_ARCH is %s' % d.getVar('TARGET_ARCH'))
    manifest_arch = vbake_manifest_value(d, 'arch')
    if manifest_arch and manifest_arch != arch:
        bb.fatal('%s says arch: %s, but this image is for %s (VBAKE_ARCH): the containers would not '
                 'run on the target' % (manifest, manifest_arch, arch))
}

# The bake writes here; sstate then puts it in VBAKE_OUT (and restores it there, with no bake at
# all, when the task's signature is unchanged).
VBAKE_SSTATE_OUT = "${WORKDIR}/vbake-sstate-out"

do_vbake[doc] = "Bakes the container storage of VBAKE_MANIFEST (or BUNDLED_CONTAINERS) with vbake into VBAKE_OUT"
do_vbake[prefuncs] += "vbake_check"
do_vbake[dirs] = "${WORKDIR}"
do_vbake[cleandirs] = "${VBAKE_SSTATE_OUT} ${VBAKE_STATE_DIR}"
do_vbake[vardeps] += "BUNDLED_CONTAINERS VBAKE_BUNDLED_RUNTIME VBAKE_SERVICE_FILE_ARGS"
SSTATETASKS += "do_vbake"
do_vbake[sstate-inputdirs] = "${VBAKE_SSTATE_OUT}"
do_vbake[sstate-outputdirs] = "${VBAKE_OUT}"
VBAKE_SERVICE_FILE_ARGS = "${@vbake_service_file_args(d)}"
# Pulling from registries is part of the bake.
do_vbake[network] = "1"
# A change of the manifest (or of VBAKE_EXTRA_INPUTS) reruns the bake.
do_vbake[file-checksums] += "${@vbake_file_checksums(d)}"
# Where things are kept, and whether the network may be used, do not change the output.
do_vbake[vardepsexclude] += "VBAKE_CACHE_DIR VBAKE_OFFLINE_ARG BB_NO_NETWORK"
do_vbake() {
    set -- ${VBAKE}
    if ! command -v "$1" >/dev/null 2>&1; then
        bbfatal "vbake: '$1' is not on the task's PATH. Add it to HOSTTOOLS in local.conf, with what it runs: HOSTTOOLS += \"vbake java qemu-system-${VBAKE_ARCH}\" (or set VBAKE to a native tool)"
    fi
    if [ -n "${VBAKE_CACHE_DIR}" ]; then
        export VBAKE_CACHE_DIR="${VBAKE_CACHE_DIR}"
    fi
    export SOURCE_DATE_EPOCH="${VBAKE_SOURCE_DATE_EPOCH}"
    manifest="${VBAKE_MANIFEST}"
    if [ -z "$manifest" ]; then
        manifest="${WORKDIR}/vbake-bundled.yaml"
        ${VBAKE} manifest from-bundled --deploy-dir "${DEPLOY_DIR_IMAGE}" -a "${VBAKE_ARCH}" \
            --runtime "${VBAKE_BUNDLED_RUNTIME}" ${VBAKE_SERVICE_FILE_ARGS} -o "$manifest" ${BUNDLED_CONTAINERS} \
            || bbfatal "vbake: cannot make a manifest from BUNDLED_CONTAINERS (see the message above)"
    fi
    bbnote "vbake: baking $manifest (${VBAKE_ARCH}, ${VBAKE_RUNTIME}) into ${VBAKE_SSTATE_OUT}"
    rc=0
    ${VBAKE} bake "$manifest" -o "${VBAKE_SSTATE_OUT}" --progress=plain \
        --state-dir "${VBAKE_STATE_DIR}" ${VBAKE_OFFLINE_ARG} ${VBAKE_EXTRA_ARGS} || rc=$?
    case $rc in
    0) ;;
    2) bbfatal "vbake bake failed (exit 2, bad input): the message above names the manifest line and the entry" ;;
    3) bbfatal "vbake bake failed (exit 3, guest failure): the message above names the log to read" ;;
    *) bbfatal "vbake bake failed (exit $rc): see the messages above" ;;
    esac
}
addtask vbake after do_prepare_recipe_sysroot before do_rootfs

python do_vbake_setscene () {
    sstate_setscene(d)
}
addtask do_vbake_setscene

# tar --zstd runs zstd: take it from the native sysroot rather than relying on the host.
do_rootfs[depends] += "zstd-native:do_populate_sysroot"

ROOTFS_POSTPROCESS_COMMAND += "vbake_install_storage;"

# Runs under pseudo (do_rootfs is a fakeroot task): pseudo records the owners, the overlay
# whiteouts (character devices 0/0) and every xattr that tar sets, including trusted.* and
# security.capability, and hands them to the image creation tasks, which run under it too.
vbake_install_storage() {
    out="${VBAKE_OUT}"
    if [ -f "$out/storage.ext4" ]; then
        vbake_install_partition
        return
    fi
    storage=""
    for f in storage.tar.zst storage.tar.gz storage.tar; do
        if [ -z "$storage" ] && [ -f "$out/$f" ]; then
            storage="$out/$f"
        fi
    done
    if [ -z "$storage" ]; then
        bbfatal "vbake: no storage.tar.zst, storage.tar.gz or storage.tar in $out: do_vbake has not run"
    fi
    zflag=""
    case "$storage" in
    *.zst)
        zflag=--zstd
        case "$(tar --help 2>/dev/null)" in
        *--zstd*) ;;
        *) bbfatal "vbake: $(command -v tar) has no --zstd (GNU tar 1.31 or newer needed): use a newer build host, or output: tar.gz in the manifest" ;;
        esac
        ;;
    *.gz)
        zflag=--gzip
        ;;
    esac

    # docker or podman, from the first top-level directory only one of them has (image/ sorts
    # before overlay2/, so a docker tree answers at once).
    kind=$(tar $zflag -tf "$storage" 2>/dev/null | awk -F/ '
        { n = ($1 == ".") ? $2 : $1 }
        n == "image" || n == "overlay2" { print "docker"; exit }
        n == "libpod" || n == "overlay" || n ~ /^overlay-/ || n ~ /^vfs-/ { print "podman"; exit }')
    case "$kind" in
    docker) dest="${IMAGE_ROOTFS}/var/lib/docker" ;;
    podman) dest="${IMAGE_ROOTFS}/var/lib/containers/storage" ;;
    *) bbfatal "vbake: $storage is neither a docker nor a podman storage tree" ;;
    esac
    if [ -n "${VBAKE_RUNTIME}" ] && [ "${VBAKE_RUNTIME}" != "$kind" ]; then
        bbwarn "vbake: the manifest says runtime: ${VBAKE_RUNTIME} but the baked tree is $kind's"
    fi
    if [ -d "$dest" ] && [ -n "$(ls -A "$dest")" ]; then
        bbfatal "vbake: $dest already holds files (from a package?): a data-root must come from the bake alone"
    fi

    mkdir -p "$dest"
    bbnote "vbake: unpacking $storage ($kind) into $dest"
    # GNU tar exits 0 when it cannot set an xattr, so its messages are checked as well.
    if ! tar $zflag -xpf "$storage" --xattrs --xattrs-include='*' --numeric-owner --same-owner \
            -C "$dest" 2>"${T}/vbake-tar.log"; then
        bbfatal "vbake: tar could not unpack $storage: $(head -n 5 "${T}/vbake-tar.log")"
    fi
    if grep -qiE 'xattr|extended attribute' "${T}/vbake-tar.log"; then
        bbfatal "vbake: tar could not set extended attributes under pseudo (${T}/vbake-tar.log): $(head -n 3 "${T}/vbake-tar.log")"
    fi
    if [ -s "${T}/vbake-tar.log" ]; then
        bbwarn "vbake: tar: $(cat "${T}/vbake-tar.log")"
    fi

    made=""
    if [ "$kind" = podman ] && [ -f "$out/storage.conf" ]; then
        install -D -m 0644 "$out/storage.conf" "${IMAGE_ROOTFS}${sysconfdir}/containers/storage.conf"
        made="$made ${IMAGE_ROOTFS}${sysconfdir}/containers/storage.conf"
    fi

    vbake_install_units_and_listing
    bbnote "vbake: $kind storage in $dest, $units unit(s) enabled, listing and SBOM in ${datadir}/vbake and ${IMGDEPLOYDIR}"
}

# output: ext4 -- the data-root is its own partition: the image goes to the deploy dir for wic
# (e.g. part /var/lib/docker --source rawcopy --sourceparams="file=${IMAGE_LINK_NAME}.vbake-storage.ext4"),
# nothing is unpacked into the rootfs; units, storage.conf, listing and SBOM are installed as usual.
vbake_install_partition() {
    kind="${VBAKE_RUNTIME}"
    made=""
    if [ "$kind" = podman ] && [ -f "$out/storage.conf" ]; then
        install -D -m 0644 "$out/storage.conf" "${IMAGE_ROOTFS}${sysconfdir}/containers/storage.conf"
        made="$made ${IMAGE_ROOTFS}${sysconfdir}/containers/storage.conf"
    fi
    install -d "${IMGDEPLOYDIR}"
    install -m 0644 "$out/storage.ext4" "${IMGDEPLOYDIR}/${IMAGE_NAME}.vbake-storage.ext4"
    if [ -n "${IMAGE_LINK_NAME}" ] && [ "${IMAGE_LINK_NAME}" != "${IMAGE_NAME}" ]; then
        ln -sf "${IMAGE_NAME}.vbake-storage.ext4" "${IMGDEPLOYDIR}/${IMAGE_LINK_NAME}.vbake-storage.ext4"
    fi
    vbake_install_units_and_listing
    bbnote "vbake: $kind storage as the partition image ${IMAGE_NAME}.vbake-storage.ext4, $units unit(s) enabled"
}

vbake_install_units_and_listing() {
    units=0
    unitdir="${IMAGE_ROOTFS}${sysconfdir}/systemd/system"
    for unit in "$out"/systemd/*.service; do
        [ -f "$unit" ] || continue
        name=$(basename "$unit")
        install -D -m 0644 "$unit" "$unitdir/$name"
        targets=$(sed -n 's/^[[:space:]]*WantedBy[[:space:]]*=//p' "$unit")
        [ -n "$targets" ] || targets=multi-user.target
        for target in $targets; do
            install -d "$unitdir/$target.wants"
            ln -sf "${sysconfdir}/systemd/system/$name" "$unitdir/$target.wants/$name"
            made="$made $unitdir/$target.wants/$name $unitdir/$target.wants"
        done
        made="$made $unitdir/$name"
        units=$(expr $units + 1)
    done
    if [ $units -gt 0 ] && ! ${@bb.utils.contains('DISTRO_FEATURES', 'systemd', 'true', 'false', d)}; then
        bbwarn "vbake: $units unit(s) installed, but DISTRO_FEATURES has no systemd: nothing will start the containers at boot"
    fi
    for unit in "$out"/quadlet/*.container "$out"/quadlet/*.network "$out"/quadlet/*.volume; do
        [ -f "$unit" ] || continue
        install -D -m 0644 "$unit" "${IMAGE_ROOTFS}${sysconfdir}/containers/systemd/$(basename "$unit")"
        made="$made ${IMAGE_ROOTFS}${sysconfdir}/containers/systemd/$(basename "$unit")"
    done
    # compose stacks (docker): the file its unit brings up, where the unit looks for it
    for stack in "$out"/compose/*/compose.yaml; do
        [ -f "$stack" ] || continue
        project=$(basename "$(dirname "$stack")")
        install -D -m 0644 "$stack" "${IMAGE_ROOTFS}/usr/share/vbake/compose/$project/compose.yaml"
        made="$made ${IMAGE_ROOTFS}/usr/share/vbake/compose/$project/compose.yaml ${IMAGE_ROOTFS}/usr/share/vbake/compose/$project"
    done

    install -d "${IMAGE_ROOTFS}${datadir}/vbake" "${IMGDEPLOYDIR}"
    for f in listing.json sbom.cdx.json; do
        if [ ! -f "$out/$f" ]; then
            bbwarn "vbake: $out/$f is missing; not installed"
            continue
        fi
        install -m 0644 "$out/$f" "${IMAGE_ROOTFS}${datadir}/vbake/$f"
        made="$made ${IMAGE_ROOTFS}${datadir}/vbake/$f"
        # IMGDEPLOYDIR ends up in DEPLOY_DIR_IMAGE through do_image_complete's sstate.
        install -m 0644 "$out/$f" "${IMGDEPLOYDIR}/${IMAGE_NAME}.vbake-$f"
        if [ -n "${IMAGE_LINK_NAME}" ] && [ "${IMAGE_LINK_NAME}" != "${IMAGE_NAME}" ]; then
            ln -sf "${IMAGE_NAME}.vbake-$f" "${IMGDEPLOYDIR}/${IMAGE_LINK_NAME}.vbake-$f"
        fi
    done
    made="$made ${IMAGE_ROOTFS}${datadir}/vbake"
    if [ -n "${VBAKE_SOURCE_DATE_EPOCH}" ]; then
        touch -h -d "@${VBAKE_SOURCE_DATE_EPOCH}" $made
    fi
}
