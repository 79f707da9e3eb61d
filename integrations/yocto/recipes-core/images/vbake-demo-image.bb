SUMMARY = "A small image whose containers are baked in at build time by vbake"
DESCRIPTION = "core-image with an engine, and the images of files/containers.yaml already in \
its storage: the containers start at first boot without pulling anything."
LICENSE = "MIT"

inherit core-image vbake features_check

# The engine must be able to start at boot, and meta-virtualization wants its distro feature.
REQUIRED_DISTRO_FEATURES = "systemd virtualization"

VBAKE_MANIFEST = "${THISDIR}/files/containers.yaml"

# The engine that reads the baked storage: docker-moby (meta-virtualization) for a docker
# manifest, podman for a podman one. VBAKE_RUNTIME is the manifest's runtime: key.
IMAGE_INSTALL += "${@'podman' if d.getVar('VBAKE_RUNTIME') == 'podman' else 'docker-moby'}"

# The baked storage is counted in the rootfs size already; this is room (in KiB) for what the
# containers write at run time: their writable layers, volumes and logs.
IMAGE_ROOTFS_EXTRA_SPACE = "524288"
