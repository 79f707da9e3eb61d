# Shared by host-engine.sh and host-store.sh: runs the HOST's own dockerd (with its own
# containerd) or podman on a private data-root, touching nothing outside the given directories:
# no iptables rules, no bridge, no ip_forward sysctl, no host daemon.json or storage.conf.
# Every process is started here, tracked by pid and stopped by pid.
#
# The engines run in a private mount namespace (see private_mounts_prefix): dockerd 20.10 always
# creates /run/docker/plugins and /etc/docker/key.json, and podman 4.3 as root always writes
# /var/lib/containers/cache/blob-info-cache-v1.boltdb; no flag moves them. There they land on
# throw-away tmpfs instead, and whatever an engine leaves mounted vanishes with the namespace.
# On a host without /etc/docker or /var/lib/containers those two cannot be covered (a mount
# point must exist) and the engines create them.
#
# The caller sets: ENGINE (docker|podman), ROOT (data-root / graph root), WORK (logs), and calls
# engine_prepare before anything else. Sockets and pid files go to RUN: WORK/run, or a short
# directory under /tmp when WORK is too deep for a unix socket path (108 bytes) or, for podman,
# its runroot (50 characters).

DRIVER=${ORACLE_DRIVER:-}
TIMEOUT=${ORACLE_TIMEOUT:-60}
STEP_TIMEOUT=${ORACLE_STEP_TIMEOUT:-600}
RUN=
RUN_IS_TEMP=0
PRIVATE_MOUNTS=()
CONTAINERD_PID=
DOCKERD_PID=
PODMAN_READY=0
ORACLE_NAME=${ORACLE_NAME:-host-engine}

die() {
    echo "$ORACLE_NAME: $*" >&2
    exit 1
}

note() {
    echo "$ORACLE_NAME: $*" >&2
}

# step NAME CMD...: runs CMD; on failure names the step and exits.
step() {
    local name=$1
    shift
    note "$name"
    local rc=0
    "$@" || rc=$?
    if [ "$rc" != 0 ]; then
        engine_log_tail
        die "step '$name' failed (exit $rc)"
    fi
}

# to_file FILE CMD...: CMD's stdout into FILE.
to_file() {
    local file=$1
    shift
    "$@" >"$file"
}

engine_prepare() {
    case "$ENGINE" in
        docker) DRIVER=${DRIVER:-overlay2} ;;
        podman) DRIVER=${DRIVER:-overlay} ;;
        *) die "engine must be docker or podman, not '$ENGINE'" ;;
    esac
    [ "$(id -u)" = 0 ] || die "needs root (the store holds root-owned files, devices and trusted.* xattrs)"
    RUN=$WORK/run
    # docker: the longest socket, RUN/containerd.sock.ttrpc, must fit 107 bytes;
    # podman refuses a runroot (RUN/storage) longer than 50 characters.
    local limit=$(( 107 - 24 ))
    [ "$ENGINE" = podman ] && limit=$(( 50 - 8 ))
    if [ ${#RUN} -gt $limit ]; then
        RUN=$(mktemp -d /tmp/oracle-run.XXXXXX)
        RUN_IS_TEMP=1
        note "run directory $RUN (WORK is too deep for sockets or a podman runroot)"
    fi
    mkdir -p "$RUN"
    private_mounts_prefix
    unset DOCKER_HOST DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
    # Empty credentials: neither engine may use the host user's logins (podman reads both files).
    export DOCKER_CONFIG=$RUN/docker-config
    export REGISTRY_AUTH_FILE=$RUN/auth.json
    mkdir -p "$DOCKER_CONFIG"
    echo '{"auths":{}}' >"$DOCKER_CONFIG/config.json"
    echo '{"auths":{}}' >"$REGISTRY_AUTH_FILE"
}

# is_running PID: alive and not a zombie waiting for us to reap it.
is_running() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# wait_until WHAT PID CHECK...: polls CHECK until it succeeds, PID dies, or TIMEOUT passes.
wait_until() {
    local what=$1 pid=$2
    shift 2
    local deadline=$(( SECONDS + TIMEOUT ))
    until "$@" >/dev/null 2>&1; do
        is_running "$pid" || { engine_log_tail; die "$what exited during start-up"; }
        [ $SECONDS -lt $deadline ] || { engine_log_tail; die "$what not ready after ${TIMEOUT}s"; }
        sleep 0.2
    done
}

# stop_pid NAME PID: SIGTERM, up to 30 s, then SIGKILL; reaps the child.
stop_pid() {
    local name=$1 pid=$2 i
    [ -n "$pid" ] || return 0
    if is_running "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 150); do
            is_running "$pid" || break
            sleep 0.2
        done
        if is_running "$pid"; then
            note "$name (pid $pid) ignored SIGTERM for 30s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

engine_log_tail() {
    local log
    for log in "$WORK/containerd.log" "$WORK/dockerd.log"; do
        if [ -s "$log" ]; then
            local errors
            errors=$(tail -n 500 "$log" | grep -E 'level=(error|fatal|panic)' | tail -n 10 || true)
            echo "---- $log${errors:+ (errors only)}:" >&2
            echo "${errors:-$(tail -n 5 "$log")}" >&2
        fi
    done
}

# PRIVATE_MOUNTS: a command prefix that execs the rest (keeping its pid, so $! is the engine's)
# in a private mount namespace where /run, and /etc/docker and /var/lib/containers if present,
# are empty tmpfs. Left empty when WORK or RUN lies under one of them.
private_mounts_prefix() {
    local d
    PRIVATE_MOUNTS=()
    for d in /run /etc/docker /var/lib/containers; do
        case "$WORK/" in "$d"/*) note "WORK is under $d: engines see the host's $d"; return ;; esac
        case "$RUN/" in "$d"/*) note "RUN is under $d: engines see the host's $d"; return ;; esac
    done
    # shellcheck disable=SC2016
    PRIVATE_MOUNTS=(unshare --mount --propagation private -- sh -c '
        mount -t tmpfs -o mode=0755 oracle-run /run || exit 125
        for d in /etc/docker /var/lib/containers; do
            if [ -d "$d" ]; then mount -t tmpfs -o mode=0700 oracle-hidden "$d" || exit 125; fi
        done
        exec "$@"' sh)
}

docker_cli() {
    timeout --kill-after=10 "$STEP_TIMEOUT" docker --host "unix://$RUN/docker.sock" "$@"
}

containerd_ready() {
    [ -S "$RUN/containerd.sock" ]
}

docker_start() {
    cat >"$RUN/containerd.toml" <<EOF
version = 2
root = "$RUN/containerd/root"
state = "$RUN/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$RUN/containerd.sock"
[ttrpc]
  address = "$RUN/containerd.sock.ttrpc"
[debug]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$RUN/containerd/opt"
EOF
    echo '{}' >"$RUN/daemon.json"
    note "starting containerd (log: $WORK/containerd.log)"
    "${PRIVATE_MOUNTS[@]}" containerd --config "$RUN/containerd.toml" >"$WORK/containerd.log" 2>&1 &
    CONTAINERD_PID=$!
    echo "$CONTAINERD_PID" >"$RUN/containerd.pid"
    wait_until containerd "$CONTAINERD_PID" containerd_ready
    # Without --bridge=none/--iptables=false/--ip-forward=false dockerd 20.10 still starts, but
    # creates docker0, installs iptables chains and sets net.ipv4.ip_forward on the host.
    note "starting dockerd --storage-driver $DRIVER (log: $WORK/dockerd.log)"
    "${PRIVATE_MOUNTS[@]}" dockerd \
        --config-file "$RUN/daemon.json" \
        --data-root "$ROOT" \
        --exec-root "$RUN/exec" \
        --pidfile "$RUN/dockerd.pid" \
        --host "unix://$RUN/docker.sock" \
        --containerd "$RUN/containerd.sock" \
        --storage-driver "$DRIVER" \
        --bridge=none \
        --iptables=false \
        --ip6tables=false \
        --ip-forward=false \
        --ip-masq=false \
        --userland-proxy=false \
        >"$WORK/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    wait_until dockerd "$DOCKERD_PID" docker_cli version
}

docker_stop() {
    stop_pid dockerd "$DOCKERD_PID"
    DOCKERD_PID=
    stop_pid containerd "$CONTAINERD_PID"
    CONTAINERD_PID=
}

podman_cli() {
    timeout --kill-after=10 "$STEP_TIMEOUT" "${PRIVATE_MOUNTS[@]}" podman --root "$ROOT" --runroot "$RUN/storage" --storage-driver "$DRIVER" \
        --tmpdir "$RUN/libpod" --cgroup-manager cgroupfs --events-backend file \
        --network-config-dir "$RUN/net" "$@"
}

# Private containers.conf / storage.conf / registries.conf: the host's must not leak in.
podman_prepare() {
    mkdir -p "$RUN/tmp" "$RUN/net"
    cat >"$RUN/storage.conf" <<EOF
[storage]
driver = "$DRIVER"
graphroot = "$ROOT"
runroot = "$RUN/storage"
EOF
    cat >"$RUN/containers.conf" <<EOF
[containers]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$RUN/events.log"
tmp_dir = "$RUN/libpod"
image_copy_tmp_dir = "$RUN/tmp"
EOF
    : >"$RUN/registries.conf"
    export CONTAINERS_STORAGE_CONF=$RUN/storage.conf
    export CONTAINERS_CONF=$RUN/containers.conf
    export CONTAINERS_REGISTRIES_CONF=$RUN/registries.conf
    export TMPDIR=$RUN/tmp
    PODMAN_READY=1
}

# Stops what is still running, unmounts what the engines left mounted under ROOT or RUN, and
# fails if any process still names RUN on its command line.
engine_cleanup() {
    local rc=$?
    set +e
    if [ "$PODMAN_READY" = 1 ]; then
        podman_cli rm --force --ignore oracle >/dev/null 2>&1
    fi
    docker_stop
    local m
    for m in $(awk -v a="$ROOT" -v b="$RUN" '
            { m = $5; if (m == a || index(m, a "/") == 1 || m == b || index(m, b "/") == 1) print m }' \
            /proc/self/mountinfo | sort -r); do
        note "unmounting leftover $m"
        umount "$m" 2>/dev/null || umount -l "$m"
    done
    local left
    left=$(pgrep -a -f -- "$RUN/" 2>/dev/null)
    if [ -n "$left" ]; then
        note "processes left running:"$'\n'"$left"
        [ "$rc" = 0 ] && rc=1
    fi
    if [ "$RUN_IS_TEMP" = 1 ]; then
        rm -rf "$RUN"
    fi
    exit "$rc"
}
