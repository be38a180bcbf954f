# Settings, logging and file helpers shared by slurm/local-cluster's parts.
# Sourced, never run.
#
# Everything the local Slurm writes gets its mode explicitly: files through
# `put` (a fresh file renamed into place, so an existing file's mode never
# survives a rewrite), directories through `install -d -m`. The caller's
# umask therefore changes nothing: 077 and 027 (common on HPC login nodes)
# and 000 all give the same modes as 022.

# The release whose cluster this copy runs: inside a release's root (see
# release.sh) its mark names it; on the host it is the machine's own 22.05.
HERE_RELEASE=$(cat /etc/drover-slurm-release 2>/dev/null || echo 22.05)
# Each release's cluster has a slot of its own, so they can run side by
# side: its bridge and subnet, node namespaces and links, daemon ports and
# state directory (the host's $STATE-<release>, mounted at $STATE in its
# root, so every path inside is the same as on the host).
case $HERE_RELEASE in
  24.11) SLOT=1 ;;
  26.05) SLOT=2 ;;
  *) SLOT=0 ;;
esac
STATE=${DROVER_SLURM_DIR:-/var/lib/drover-slurm}
CONF="$STATE/slurm.conf"
# A file in the state directory saying it is ours: `purge` removes only a
# directory that carries it.
STATE_MARK="$STATE/.drover-local-slurm"
BRIDGE=${DROVER_SLURM_BRIDGE:-drvbr$SLOT}
NET_PREFIX=${DROVER_SLURM_NET:-10.77.$SLOT}
# The node namespaces and the host ends of their links: drover-node1 and
# drv-n1 for 22.05 (as always), drover1-node1 and drv1-n1 for slot 1.
if [ "$SLOT" = 0 ]; then NODE_NS=drover-node NODE_LINK=drv-n; else NODE_NS=drover$SLOT-node NODE_LINK=drv$SLOT-n; fi
CTLD_PORT=$((6817 + 10 * SLOT))
DBD_PORT=$((6819 + 10 * SLOT))
CTL_ADDR="$NET_PREFIX.1"
# slurmctld only runs on the host SlurmctldHost names: this machine's short hostname.
CTL_NAME=$(hostname -s)
HOSTS_MARK="# drover-local-slurm"
NODES=2
CPUS=16
MEMORY=32000
# GPUs the last node declares (stand-ins: see write_gres).
GPUS=2
# Slurm's SchedulerParameters (e.g. default_queue_depth=200,sched_min_interval=0);
# empty: Slurm's defaults, as most sites start from.
SCHED_PARAMS=${DROVER_SLURM_SCHEDULER_PARAMETERS:-}
# Accounting through slurmdbd and MariaDB: 1 (default) or 0.
ACCOUNTING=${DROVER_SLURM_ACCOUNTING:-1}
# slurmrestd: where it listens, and the user it runs as (it refuses root
# and SlurmUser's group). The user's comment marks it as ours for `purge`.
REST_ADDR=${DROVER_SLURMRESTD_ADDR:-127.0.0.1:$((6820 + 10 * SLOT))}
REST_USER=drover-rest
# Also a local socket, for jobs: the nodes share this filesystem.
REST_SOCKET="$STATE/rest/slurmrestd.sock"
REST_USER_COMMENT="drover local Slurm (slurmrestd)"
JWT_KEY="$STATE/jwt_hs256.key"
# MariaDB's default socket: where slurmdbd's client library connects for
# StorageHost=localhost.
DB_SOCKET=/run/mysqld/mysqld.sock
# Its pid file, where the mysql user may write it.
DB_PID=/run/mysqld/drover-mysqld.pid
# Held (fd 9) by every command that changes the cluster, so two at once (CI's
# lanes, a user's second terminal) take turns instead of racing. Outside
# the state directory, which `purge` removes. Every daemon is started with
# fd 9 closed (`9>&-`): one that kept it would hold the lock for its life.
LOCK_FILE=/run/lock/drover-local-slurm.lock

log() { printf 'local-cluster: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_root() {
  [ "$(id -u)" = 0 ] || die "must run as root (it creates network namespaces and starts Slurm daemons); run it again with sudo"
}

# `take_lock`: waits for any other changing command to finish.
take_lock() {
  install -d -m 0755 "$(dirname "$LOCK_FILE")"
  exec 9>"$LOCK_FILE"
  if ! flock -n 9; then
    log "waiting for another slurm/local-cluster command to finish"
    flock 9
  fi
}

# `put MODE PATH [OWNER]` writes stdin to PATH with exactly MODE: into a
# fresh file beside it (mktemp makes it 0600 whatever the umask), then
# renamed over PATH. A secret is never readable by others, even briefly.
put() {
  local mode=$1 path=$2 owner=${3:-root:root} tmp
  tmp=$(mktemp "$path.XXXXXX")
  if ! cat >"$tmp"; then rm -f "$tmp"; die "cannot write $path"; fi
  chown "$owner" "$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$path"
}

# `secret PATH BYTES`: PATH holds BYTES random bytes (base64, no padding),
# made once and kept; mode 0600, root's.
secret() {
  if [ ! -s "$1" ]; then
    head -c "$2" /dev/urandom | base64 | tr -d '/+=\n' | put 0600 "$1"
  fi
  chown root:root "$1"
  chmod 0600 "$1"
}

# The directories of the state: traversable by the daemons' own users
# (mysql, drover-rest), whatever the umask.
make_state_dirs() {
  install -d -m 0755 -o root -g root "$STATE" "$STATE/run" "$STATE/log" "$STATE/ctld" "$STATE/spool"
  [ -e "$STATE_MARK" ] || echo "made by drover's slurm/local-cluster; removed by its purge" | put 0644 "$STATE_MARK"
}

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

node_addr() { echo "$NET_PREFIX.$((10 + $1))"; }

# What a failed `up` says, so the next step is always named: the ERR trap
# notes where a command failed, the EXIT trap (on a non-zero status, from a
# failed command or a `die`) names what to do. The next `up` starts afresh
# from whatever this one left.
FAILED_AT=""
note_failure() { FAILED_AT="line $1: $2"; }
explain_failed_up() {
  local status=$?
  [ "$status" -ne 0 ] || return 0
  [ -z "$FAILED_AT" ] || log "error: up failed at slurm/local-cluster $FAILED_AT (exit $status)"
  log "the daemons' logs are in $STATE/log"
  log "next: fix what the error names, then run 'slurm/local-cluster up' again: it starts"
  log "      afresh and rewrites every file; 'slurm/local-cluster purge' first starts from nothing"
}
