#!/bin/bash
# Drives the launchers as a user would: bad input, a real aarch64 docker command, no QEMU left.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
state=$(mktemp -d /tmp/vbake-e2e.XXXXXX)
trap 'rm -rf "$state"' EXIT
pass=0 fail=0
check() { if [ "$2" = "$3" ]; then pass=$((pass + 1)); else echo "FAIL: $1: expected '$3', got '$2'" >&2; fail=$((fail + 1)); fi; }

"$top/bin/vdkr" --no-such-option info >/dev/null 2>"$state/err"; check "unknown option exit code" "$?" 2
check "unknown option error is one line plus hint" "$(wc -l < "$state/err")" 2
"$top/bin/vdkr" -a sparc info >/dev/null 2>"$state/err"; check "bad arch exit code" "$?" 2
grep -q "unknown arch 'sparc'" "$state/err"; check "bad arch names the value" "$?" 0

out=$("$top/bin/vdkr-aarch64" --state-dir "$state/s" info --format '{{.Architecture}}' 2>"$state/err")
check "vdkr-aarch64 info exit code" "$?" 0
check "vdkr-aarch64 reports the guest arch" "$out" aarch64
out=$(echo '{"k": 1}' | "$top/bin/vdkr" -a aarch64 --state-dir "$state/s" run --rm -i --network none busybox-missing cat 2>"$state/err")
check "missing image gives the engine's exit code" "$?" 125
pgrep -f "qemu-system.*$state" >/dev/null; check "no qemu left" "$?" 1

# The README's first command, exactly as written there (root on a fresh machine has no sudo): the
# bundled example bakes an arm64 data-root into build/hello-aarch64.
first=$(awk '/^## Quick start/ { q = 1 } q && /^```sh/ { getline; print; exit }' "$top/README.md")
first=${first%%#*}
(cd "$top" && bash -c "$first") >"$state/bake.out" 2>"$state/bake.err"
check "README's first command exit code ($first)" "$?" 0
rm -rf "$state/hello" && cp -a "$top/build/hello-aarch64" "$state/hello"
grep -q '"name": "busybox-static"' "$state/hello/listing.json" 2>/dev/null; check "example listing names busybox-static" "$?" 0
grep -q 'ExecStart=/usr/bin/docker run --rm --name hello-httpd' "$state/hello/systemd/vbake-hello-httpd.service" 2>/dev/null
check "example unit starts the container" "$?" 0
zstd -dcq "$state/hello/storage.tar.zst" 2>/dev/null | tar -t > "$state/hello.list" 2>/dev/null
grep -qx './image/overlay2/repositories.json' "$state/hello.list"; check "example tree is a docker data-root" "$?" 0
pgrep -f "qemu-system" >/dev/null && pgrep -af qemu-system | grep -q "vbake/bake"; check "no bake qemu left" "$?" 1

echo "e2e: $pass passed, $fail failed"
[ "$fail" = 0 ]
