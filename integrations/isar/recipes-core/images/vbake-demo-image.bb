# A Debian image whose containers are baked in at build time by vbake: the engine comes from
# Debian (IMAGE_PREINSTALL), its storage with the images of files/containers.yaml from vbake.
DESCRIPTION = "Debian image with containers baked in by vbake"
LICENSE = "MIT"

inherit image vbake-isar

VBAKE_MANIFEST = "${THISDIR}/files/containers.yaml"

# docker.io for a docker manifest, podman for a podman one (VBAKE_RUNTIME is its runtime: key).
IMAGE_PREINSTALL += "${@'podman' if d.getVar('VBAKE_RUNTIME') == 'podman' else 'docker.io'}"
