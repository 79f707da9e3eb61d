#!/bin/bash
# Tests bake-into-rootfs.sh without QEMU: a stub vbake "bakes" hand-made docker and podman storage
# trees that hold what real ones hold (an overlay whiteout, trusted.overlay.opaque, a file
# capability on a hardlinked file, setuid, a non-root owner), and the installed rootfs is checked
# as root, under fakeroot and under pseudo, down to an ext4 image made by mke2fs -d in the session.
#
#   integrations/shell/test-bake-into-rootfs.sh      (as root: fixtures need mknod and trusted.*)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
script=$here/bake-into-rootfs.sh
[ "$(id -u)" = 0 ] || { echo "test: run as root (fixtures need mknod and trusted.* xattrs)" >&2; exit 2; }
for tool in zstd getfattr setfattr fakeroot setpriv /usr/sbin/mke2fs /usr/sbin/debugfs; do
    command -v "$tool" >/dev/null || { echo "test: needs $tool (apt-get install zstd attr fakeroot util-linux e2fsprogs)" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
failures=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
check() { # DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@" >/dev/null 2>&1; then pass "$what"; else fail "$what"; fi
}
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$work/home" "$@"; }

# --- fixtures: two bake outputs, and a stub vbake that copies one into OUTDIR -----------------
docker_tree=$work/fixture/docker-tree
layer=$docker_tree/overlay2/0a1b/diff
mkdir -p "$docker_tree/image/overlay2/imagedb" "$layer/etc/opaque" "$layer/bin" "$docker_tree/overlay2/l"
echo '{"Repositories":{}}' >"$docker_tree/image/overlay2/repositories.json"
mknod "$layer/etc/removed" c 0 0
setfattr -n trusted.overlay.opaque -v y "$layer/etc/opaque"
printf 'ping\n' >"$layer/bin/ping"
chmod 755 "$layer/bin/ping"
setfattr -n security.capability -v 0x0100000200200000000000000000000000000000 "$layer/bin/ping"
ln "$layer/bin/ping" "$layer/bin/ping6"
printf 'su\n' >"$layer/bin/su"
chmod 4755 "$layer/bin/su"
printf 'app\n' >"$layer/etc/app.conf"
chown 1000:1000 "$layer/etc/app.conf"
ln -s ../0a1b/diff "$docker_tree/overlay2/l/ABCDEFGH"

podman_tree=$work/fixture/podman-tree
mkdir -p "$podman_tree/overlay/0a1b/diff/etc" "$podman_tree/overlay-images" "$podman_tree/overlay-layers"
mknod "$podman_tree/overlay/0a1b/diff/etc/removed" c 0 0
echo '[]' >"$podman_tree/overlay-images/images.json"

mkdir -p "$work/fixture/docker-out/systemd" "$work/fixture/podman-out/quadlet"
tar --xattrs --xattrs-include='*' --numeric-owner -C "$docker_tree" -cf - . | zstd -q -o "$work/fixture/docker-out/storage.tar.zst"
tar --xattrs --xattrs-include='*' --numeric-owner -C "$podman_tree" -czf "$work/fixture/podman-out/storage.tar.gz" .
printf '[Unit]\nDescription=web\n[Service]\nExecStart=/usr/bin/docker start -a web\n[Install]\nWantedBy=multi-user.target\n' \
    >"$work/fixture/docker-out/systemd/vbake-web.service"
printf '[Container]\nImage=localhost/web:1\n[Install]\nWantedBy=multi-user.target\n' >"$work/fixture/podman-out/quadlet/web.container"
printf '[storage]\ndriver = "overlay"\n' >"$work/fixture/podman-out/storage.conf"
printf '[Network]\nNetworkName=shop_default\n' >"$work/fixture/podman-out/quadlet/shop.network"
mkdir -p "$work/fixture/docker-out/compose/shop" "$work/fixture/ext4-out"
printf 'services:\n  web:\n    image: web@sha256:0\n' >"$work/fixture/docker-out/compose/shop/compose.yaml"
printf 'not really ext4\n' >"$work/fixture/ext4-out/storage.ext4"
for o in docker-out podman-out ext4-out; do
    echo '{"images":[]}' >"$work/fixture/$o/listing.json"
    echo '{"bomFormat":"CycloneDX","specVersion":"1.5"}' >"$work/fixture/$o/sbom.cdx.json"
done
chmod -R a+rX "$work/fixture"

stub=$work/vbake
cat >"$stub" <<EOF
#!/bin/sh
# stub vbake: bake MANIFEST -o OUTDIR ...; the manifest's first line names the fixture or an exit code
[ "\$1" = bake ] && [ "\$3" = -o ] || { echo "stub vbake: unexpected arguments: \$*" >&2; exit 2; }
what=\$(head -n 1 "\$2")
case \$what in exit*) echo "vbake: guest failed, see console.log" >&2; exit \${what#exit } ;; esac
mkdir -p "\$4" && cp -R "$work/fixture/\$what/." "\$4/"
echo "vbake: baked \$2 (uid \$(id -u))" >&2
EOF
chmod 755 "$stub"
export VBAKE=$stub
for m in docker-out podman-out ext4-out "exit 3"; do
    echo "$m" >"$work/${m// /-}.yaml"
done
mkdir -p "$work/home" && chown 65534:65534 "$work/home"
fresh_rootfs() { rm -rf "$work/${1:?}" && mkdir -p "$work/$1/etc" && chown -R "${2:-0}" "$work/$1"; }

# Checks an ext4 image made from a rootfs with the docker fixture installed.
check_image() { # LABEL IMAGE
    local img=$2 d=/var/lib/docker/overlay2/0a1b/diff
    check "$1: opaque xattr in the image" sh -c "debugfs -R 'ea_list $d/etc/opaque' $img 2>/dev/null | grep -q 'trusted.overlay.opaque (1) = \"y\"'"
    check "$1: file capability in the image" sh -c "debugfs -R 'ea_list $d/bin/ping' $img 2>/dev/null | grep -q 'security.capability (20)'"
    check "$1: whiteout is a char device 0/0" sh -c "debugfs -R 'stat $d/etc/removed' $img 2>/dev/null | grep -q 'Type: character special'"
    check "$1: ping is a regular file with 2 links" sh -c "debugfs -R 'stat $d/bin/ping' $img 2>/dev/null | grep -q 'Type: regular' && debugfs -R 'stat $d/bin/ping' $img 2>/dev/null | grep -q 'Links: 2'"
    check "$1: su keeps setuid, owned by 0" sh -c "debugfs -R 'stat $d/bin/su' $img 2>/dev/null | grep -q 'Mode:  04755' && debugfs -R 'stat $d/bin/su' $img 2>/dev/null | grep -q 'User:     0'"
    check "$1: app.conf owned by 1000" sh -c "debugfs -R 'stat $d/etc/app.conf' $img 2>/dev/null | grep -q 'User:  1000   Group:  1000'"
    check "$1: unit enabled in the image" sh -c "debugfs -R 'stat /etc/systemd/system/multi-user.target.wants/vbake-web.service' $img 2>/dev/null | grep -q 'Type: symlink'"
}

# --- as root ------------------------------------------------------------------------------------
fresh_rootfs root-rootfs
if SOURCE_DATE_EPOCH=1735689600 "$script" "$work/docker-out.yaml" "$work/root-rootfs" >"$work/log" 2>&1; then
    pass "root: docker install exits 0"
else
    fail "root: docker install exits 0"
    cat "$work/log"
fi
d=$work/root-rootfs/var/lib/docker/overlay2/0a1b/diff
check "root: opaque xattr" sh -c "getfattr -n trusted.overlay.opaque --only-values '$d/etc/opaque' | grep -qx y"
check "root: capability" sh -c "getfattr -n security.capability '$d/bin/ping' | grep -q capability"
check "root: whiteout" test -c "$d/etc/removed"
check "root: hardlink kept" test "$d/bin/ping" -ef "$d/bin/ping6"
check "root: setuid kept" test -u "$d/bin/su"
check "root: owner 1000 kept" test "$(stat -c %u:%g "$d/etc/app.conf")" = 1000:1000
check "root: unit installed" test -f "$work/root-rootfs/etc/systemd/system/vbake-web.service"
check "root: compose file where its unit looks" cmp "$work/fixture/docker-out/compose/shop/compose.yaml" "$work/root-rootfs/usr/share/vbake/compose/shop/compose.yaml"
check "root: unit enabled" test "$(readlink "$work/root-rootfs/etc/systemd/system/multi-user.target.wants/vbake-web.service")" = /etc/systemd/system/vbake-web.service
check "root: listing and SBOM" test -f "$work/root-rootfs/usr/share/vbake/listing.json" -a -f "$work/root-rootfs/usr/share/vbake/sbom.cdx.json"
check "root: installed files clamped to SOURCE_DATE_EPOCH" test "$(stat -c %Y "$work/root-rootfs/usr/share/vbake/listing.json")" = 1735689600
check "root: warns that the rootfs has no systemd" grep -q "no systemd" "$work/log"

rc=0
"$script" "$work/docker-out.yaml" "$work/root-rootfs" >"$work/log" 2>&1 || rc=$?
check "root: non-empty data-root refused with exit 2" test $rc = 2
check "root: VBAKE_REPLACE=1 replaces it" env VBAKE_REPLACE=1 "$script" "$work/docker-out.yaml" "$work/root-rootfs"

fresh_rootfs podman-rootfs
check "root: podman install exits 0" "$script" "$work/podman-out.yaml" "$work/podman-rootfs"
check "root: podman tree in var/lib/containers/storage" test -c "$work/podman-rootfs/var/lib/containers/storage/overlay/0a1b/diff/etc/removed"
check "root: storage.conf installed" test -f "$work/podman-rootfs/etc/containers/storage.conf"
check "root: quadlet installed" test -f "$work/podman-rootfs/etc/containers/systemd/web.container"
check "root: quadlet network installed" test -f "$work/podman-rootfs/etc/containers/systemd/shop.network"

fresh_rootfs ext4-rootfs
rc=0
"$script" "$work/ext4-out.yaml" "$work/ext4-rootfs" >"$work/log" 2>&1 || rc=$?
check "an ext4 partition image is refused with exit 2, saying what it is" sh -c "test $rc = 2 && grep -q 'storage.ext4 (output: ext4), a partition image' '$work/log'"

rc=0
"$script" "$work/exit-3.yaml" "$work/podman-rootfs" >"$work/log" 2>&1 || rc=$?
check "vbake's exit code 3 passes through" test $rc = 3

fresh_rootfs escape-rootfs
mkdir -p "$work/outside"
ln -s "$work/outside" "$work/escape-rootfs/var"
rc=0
"$script" "$work/docker-out.yaml" "$work/escape-rootfs" >"$work/log" 2>&1 || rc=$?
check "a symlink leading out of the rootfs is refused (exit 2)" test $rc = 2
check "nothing written outside the rootfs" test -z "$(ls -A "$work/outside")"

# --- not root -----------------------------------------------------------------------------------
fresh_rootfs user-rootfs 65534
rc=0
as_nobody "$script" "$work/docker-out.yaml" "$work/user-rootfs" >"$work/log" 2>&1 || rc=$?
check "non-root without FAKEROOT=1 refused with exit 2" test $rc = 2
check "the refusal explains the choices" grep -q BR2_ROOTFS_POST_FAKEROOT_SCRIPT "$work/log"
check "the refusal comes before the bake" sh -c "! grep -q 'vbake: baked' '$work/log'"

rc=0
as_nobody env FAKEROOT=1 "$script" "$work/docker-out.yaml" "$work/user-rootfs" \
    -- /usr/sbin/mke2fs -q -t ext4 -d "$work/user-rootfs" "$work/home/fakeroot.ext4" 64M >"$work/log" 2>&1 || rc=$?
check "FAKEROOT=1 with mke2fs after -- exits 0" test $rc = 0
check "vbake ran as the real user, not as fake root" grep -q "(uid 65534)" "$work/log"
check "fakeroot: typeless files repaired" grep -q "re-created 1 file" "$work/log"
if [ $rc = 0 ]; then check_image fakeroot "$work/home/fakeroot.ext4"; else cat "$work/log"; fi

# --- split steps, the Buildroot way: bake as the user, install in the image-making session ------
if command -v fakeroot-pseudo >/dev/null; then
    fresh_rootfs pseudo-rootfs 65534
    rc=0
    as_nobody "$script" --bake-only "$work/docker-out.yaml" "$work/pseudo-rootfs" "$work/home/out" >"$work/log" 2>&1 || rc=$?
    check "--bake-only as the user" test $rc = 0
    as_nobody fakeroot-pseudo sh -c "'$script' --install-only '$work/docker-out.yaml' '$work/pseudo-rootfs' '$work/home/out' \
        && /usr/sbin/mke2fs -q -t ext4 -d '$work/pseudo-rootfs' '$work/home/pseudo.ext4' 64M" >"$work/log" 2>&1 || rc=$?
    check "--install-only under pseudo, then mke2fs" test $rc = 0
    if [ $rc = 0 ]; then check_image pseudo "$work/home/pseudo.ext4"; else cat "$work/log"; fi
else
    echo "skip pseudo (apt-get install pseudo to run it)"
fi

echo
if [ $failures -gt 0 ]; then
    echo "test: $failures check(s) failed"
    exit 1
fi
echo "test: all checks passed"
