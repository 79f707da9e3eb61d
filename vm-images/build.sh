#!/bin/bash
# Builds one vbake guest image set from Debian packages, without emulation:
#   vmlinuz, initrd.img (busybox + the modules needed to reach the disks), tools.squashfs (the
#   engine's userland, read-only), kernel.config, and manifest.json (package versions, sha256).
#
#   build.sh --suite trixie --arch aarch64 --runtime docker --out DIR [--owner UID:GID]
#
# --owner: run as root (sudo) for another user, whose cache DIR is: the files are given to them.
# Needs root (mmdebstrap --mode=root keeps file owners and capabilities right for mksquashfs),
# mmdebstrap, squashfs-tools, kmod, cpio, xz-utils and golang-go on the host. Two runs with the same
# package versions give the same bytes: times come from SOURCE_DATE_EPOCH and every list is sorted.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
suite=trixie arch= runtime= out= owner= mirror=${VBAKE_DEBIAN_MIRROR:-}
usage() { echo "usage: $0 --suite SUITE --arch aarch64|x86_64 --runtime docker|podman --out DIR [--owner UID:GID]" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --suite) suite=$2; shift 2 ;;
        --arch) arch=$2; shift 2 ;;
        --runtime) runtime=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --owner) owner=$2; shift 2 ;;
        --mirror) mirror=$2; shift 2 ;;
        *) usage ;;
    esac
done
[ -n "$arch" ] && [ -n "$runtime" ] && [ -n "$out" ] || usage
case "$arch" in
    aarch64) deb_arch=arm64 go_arch=arm64 ;;
    x86_64) deb_arch=amd64 go_arch=amd64 ;;
    *) echo "build.sh: unknown arch '$arch' (aarch64, x86_64)" >&2; exit 2 ;;
esac
[ -f "$here/packages/$runtime.list" ] || { echo "build.sh: unknown runtime '$runtime' (docker, podman)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "build.sh: building guest images needs root (mmdebstrap --mode=root); run it once with sudo" >&2; exit 2; }
case "$owner" in ''|[0-9]*:[0-9]*) ;; *) usage ;; esac
for tool in mmdebstrap mksquashfs depmod cpio xz go; do
    command -v "$tool" >/dev/null || { echo "build.sh: '$tool' is missing; run tests/setup-host.sh (or apt-get install mmdebstrap squashfs-tools kmod cpio xz-utils golang-go)" >&2; exit 2; }
done

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1735689600}
export LC_ALL=C
step() { echo "==> [$suite/$arch/$runtime] $*"; }

mkdir -p "$out"
work=$(mktemp -d "${out%/}/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root initrd=$work/initrd

# name@suite lines apply to that suite only
packages() {
    sed -e 's/#.*//' -e 's/[[:space:]]//g' "$@" | while read -r line; do
        [ -n "$line" ] || continue
        case "$line" in
            *@*) [ "${line#*@}" = "$suite" ] && echo "${line%@*}" ;;
            *) echo "$line" ;;
        esac
    done
}
include=$( (packages "$here/packages/common.list" "$here/packages/$runtime.list"; echo "linux-image-cloud-$deb_arch") | sort -u | paste -sd, -)

step "unpacking Debian packages ($include)"
# extract: unpack only, run no maintainer script, so no emulation of the target arch is needed.
# The extract hook records the exact .deb files before mmdebstrap cleans its cache.
mmdebstrap --quiet --mode=root --variant=extract --arch="$deb_arch" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include="$include" \
    --extract-hook='cd "$1/var/cache/apt/archives" && sha256sum -- *.deb > "$1/../debs.sha256"' \
    "$suite" "$root" ${mirror:+"$mirror"}

kver=$(basename "$(ls -d "$root"/usr/lib/modules/*/ | head -n 1)")
[ -n "$kver" ] && [ -f "$root/boot/vmlinuz-$kver" ] || { echo "build.sh: no kernel found in the unpacked tree" >&2; exit 1; }

step "building the agent for $go_arch"
( cd "$here/agent" && CGO_ENABLED=0 GOOS=linux GOARCH=$go_arch GOFLAGS=-mod=mod GOCACHE="$work/gocache" \
    go build -trimpath -ldflags='-s -w -buildid=' -o "$work/vbake-agent" . )

step "assembling the tools tree (kernel $kver)"
cp -a "$here/rootfs/common/." "$root/"
[ -d "$here/rootfs/$runtime" ] && cp -a "$here/rootfs/$runtime/." "$root/"
install -m 0755 "$work/vbake-agent" "$root/usr/lib/vbake/vbake-agent"
chmod 0755 "$root/usr/lib/vbake/init2"
# What package postinsts would have done, had they run.
cp "$root/usr/share/base-passwd/passwd.master" "$root/etc/passwd"
cp "$root/usr/share/base-passwd/group.master" "$root/etc/group"
grep -q '^docker:' "$root/etc/group" || echo 'docker:x:999:' >> "$root/etc/group"
# No shell package is unpacked (extract runs no dpkg triggers or alternatives): busybox is /bin/sh.
[ -e "$root/usr/bin/sh" ] || ln -s busybox "$root/usr/bin/sh"
# The iptables alternatives, as update-alternatives would set them (the nft backend): dockerd and
# netavark give a resident guest's containers their bridge and published ports through them.
for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    [ -e "$root/usr/sbin/$t-nft" ] && [ ! -e "$root/usr/sbin/$t" ] && ln -s "$t-nft" "$root/usr/sbin/$t"
done
mkdir -p "$root"/{proc,sys,dev,run,tmp,mnt}
chmod 1777 "$root/tmp"
rm -rf "$root/var/run" && ln -s ../run "$root/var/run"
echo vbake > "$root/etc/hostname"
# The guest reaches no outside network (a resident guest's NIC is QEMU user-mode with restrict=on);
# the host's resolver settings that mmdebstrap copied in mean nothing there.
rm -f "$root/etc/resolv.conf" && : > "$root/etc/resolv.conf"
printf 'PRETTY_NAME="vbake guest (Debian %s)"\nNAME="vbake guest"\nID=vbake\nID_LIKE=debian\nVERSION_CODENAME=%s\n' "$suite" "$suite" > "$root/usr/lib/os-release"
ln -sf ../usr/lib/os-release "$root/etc/os-release"
echo "$suite" > "$root/etc/vbake-suite"
echo "$runtime" > "$root/etc/vbake-runtime"
[ -e "$root/etc/mtab" ] || ln -s ../proc/self/mounts "$root/etc/mtab"
depmod -b "$root" "$kver"
cp "$root/boot/vmlinuz-$kver" "$work/vmlinuz"
cp "$root/boot/config-$kver" "$work/kernel.config"
# Not needed at run time: the kernel is passed to QEMU directly; docs, manuals, translations, apt state.
rm -rf "$root/boot" "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/info" \
    "$root/usr/share/locale" "$root/usr/share/lintian" "$root/var/cache/apt" "$root/var/lib/apt/lists" \
    "$root/var/log"/* "$root/usr/lib/modules/$kver/kernel/drivers/gpu" "$root/usr/lib/modules/$kver/kernel/sound"

step "building the initramfs"
mkdir -p "$initrd"/{bin,etc/vbake,lib/modules,proc,sys,dev,mnt,newroot}
cp "$root/usr/bin/busybox" "$initrd/bin/busybox"
install -m 0755 "$here/initramfs/init" "$initrd/init"
: > "$initrd/etc/vbake/modules.order"
sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/initramfs/modules" | while read -r mod; do
    # --show-depends prints dependencies first, one "insmod PATH" per module, or "builtin NAME".
    modprobe -d "$root" -S "$kver" --show-depends "$mod" | while read -r kind path _; do
        [ "$kind" = insmod ] || continue
        name=$(basename "$path"); name=${name%.xz}; name=${name%.zst}
        grep -qx "$name" "$initrd/etc/vbake/modules.order" && continue
        case "$path" in
            *.xz) xz -dc "$path" > "$initrd/lib/modules/$name" ;;
            *.zst) zstd -qdc "$path" > "$initrd/lib/modules/$name" ;;
            *) cp "$path" "$initrd/lib/modules/$name" ;;
        esac
        echo "$name" >> "$initrd/etc/vbake/modules.order"
    done
done
( cd "$initrd" && find . -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} + \
    && find . -print0 | sort -z | cpio --quiet --null -o -H newc -R 0:0 --reproducible ) > "$work/initrd.img"

step "making the tools squashfs"
find "$root" -newermt "@$SOURCE_DATE_EPOCH" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
# mksquashfs reads SOURCE_DATE_EPOCH itself for the file system time and every inode time.
mksquashfs "$root" "$work/tools.squashfs" -quiet -no-progress -comp zstd -b 256K -noappend \
    -processors "$(nproc)" >/dev/null

step "writing the manifest"
sha() { sha256sum "$work/$1" | cut -d' ' -f1; }
{
    printf '{\n  "suite": "%s",\n  "arch": "%s",\n  "runtime": "%s",\n  "kernel": "%s",\n' "$suite" "$arch" "$runtime" "$kver"
    printf '  "sourceDateEpoch": %s,\n' "$SOURCE_DATE_EPOCH"
    printf '  "files": {\n'
    printf '    "vmlinuz": "%s",\n    "initrd.img": "%s",\n    "tools.squashfs": "%s",\n    "kernel.config": "%s"\n  },\n' \
        "$(sha vmlinuz)" "$(sha initrd.img)" "$(sha tools.squashfs)" "$(sha kernel.config)"
    printf '  "packages": [\n'
    # debs.sha256 lines: "<sha256>  <name>_<version>_<arch>.deb" (version with %3a for ':')
    sort -k2 "$work/debs.sha256" | awk '{ n = split($2, p, "_"); sub(/\.deb$/, "", p[3]); gsub(/%3a/, ":", p[2]);
        printf "%s    {\"name\": \"%s\", \"version\": \"%s\", \"arch\": \"%s\", \"sha256\": \"%s\"}", (NR > 1 ? ",\n" : ""), p[1], p[2], p[3], $1 }'
    printf '\n  ]\n}\n'
} > "$work/manifest.json"

for f in vmlinuz initrd.img tools.squashfs kernel.config manifest.json; do
    [ -z "$owner" ] || chown "$owner" "$work/$f"
    mv -f "$work/$f" "$out/$f"
done
step "done: $(du -sh "$out/tools.squashfs" | cut -f1) tools disk, $(du -sh "$out/initrd.img" | cut -f1) initramfs"
