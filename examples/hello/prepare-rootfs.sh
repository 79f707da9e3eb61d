#!/bin/bash
# Builds the example's root filesystem for one arch from Debian's busybox-static package: a tiny
# web server image. The package's control data goes into var/lib/dpkg/status, as dpkg would have
# recorded it, so the bake's listing and SBOM can name what is inside.
#
#   examples/hello/prepare-rootfs.sh aarch64|x86_64 OUTDIR
set -euo pipefail
arch=${1:?usage: prepare-rootfs.sh aarch64|x86_64 OUTDIR}
out=${2:?usage: prepare-rootfs.sh aarch64|x86_64 OUTDIR}
case "$arch" in
    aarch64|arm64) deb_arch=arm64 ;;
    x86_64|amd64) deb_arch=amd64 ;;
    *) echo "prepare-rootfs: unknown arch '$arch' (aarch64 or x86_64)" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! dpkg --print-foreign-architectures | grep -qx "$deb_arch" && [ "$deb_arch" != "$(dpkg --print-architecture)" ]; then
    echo "prepare-rootfs: dpkg does not know $deb_arch; run tests/setup-host.sh (it adds arm64)" >&2
    exit 2
fi
(cd "$work" && apt-get download -q -o APT::Sandbox::User=root "busybox-static:$deb_arch" >/dev/null)
deb=$(ls "$work"/busybox-static_*.deb)

rm -rf "$out"
mkdir -p "$out"
dpkg-deb -x "$deb" "$out"
mkdir -p "$out/bin" "$out/var/lib/dpkg" "$out/etc" "$out/www" "$out/tmp"
chmod 1777 "$out/tmp"
busybox=$(cd "$out" && find . -path '*bin/busybox' -type f | head -n 1)
for applet in sh httpd cat ls echo true; do
    [ -e "$out/bin/$applet" ] || ln -s "/${busybox#./}" "$out/bin/$applet"
done
{
    dpkg-deb -f "$deb" Package Version Architecture Maintainer Installed-Size Source Description \
        | sed '1a Status: install ok installed'
    echo
} > "$out/var/lib/dpkg/status"
cp "$here/rootfs/etc/os-release" "$out/etc/os-release"
cp "$here/rootfs/www/index.html" "$out/www/index.html"
echo "prepare-rootfs: $out ($(dpkg-deb -f "$deb" Package Version Architecture | tr '\n' ' '))"
