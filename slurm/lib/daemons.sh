# Starting, checking and stopping the local cluster's daemons: munged,
# slurmctld, one slurmd per node namespace, slurmrestd. Each is stopped by
# the pid file it was started with, so nothing of anyone else's is touched.
# Sourced, never run.

start_munge() {
  install -d -o munge -g munge -m 0700 /etc/munge
  if [ ! -s /etc/munge/munge.key ]; then
    log "creating munge key"
    mungekey -c -f -k /etc/munge/munge.key
    # Ours to remove on `purge` (when the package made it, it stays).
    : | put 0644 "$STATE/munge-key.ours"
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    return 0
  fi
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged 9>&-
  : | put 0644 "$STATE/run/munged.ours"
  local _
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "munged did not come up (log: /var/log/munge/munged.log)"
}

start_slurmd() {
  install -d -m 0755 "$STATE/spool/slurmd-node$1"
  inside_root || clear_slurm_cgroups "$1"
  nsenter --net="/var/run/netns/$NODE_NS$1" unshare --uts \
    sh -c "hostname node$1 && exec env SLURM_CONF='$CONF' slurmd -f '$CONF' -N node$1" 9>&-
}

# slurmrestd, as a user of its own, with JWT authentication; SLURM_JWT=daemon
# makes it talk to slurmctld with each client's token.
start_slurmrestd() {
  if ! id "$REST_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin --comment "$REST_USER_COMMENT" "$REST_USER"
  fi
  pid_alive "$STATE/run/slurmrestd.pid" && return 0
  # It reads slurm.conf as that user: say so plainly if it cannot.
  runuser -u "$REST_USER" -- test -r "$CONF" \
    || die "$REST_USER cannot read $CONF (mode $(stat -c %a "$CONF"), directory $(stat -c %a "$STATE")); run up again to rewrite it"
  : | put 0644 "$STATE/log/slurmrestd.log"
  # Its socket's directory is its own; the socket is where a job reaches it
  # (the host's loopback is not a node's, and drover sends a token over
  # plain http to loopback only).
  install -d -o "$REST_USER" -g "$REST_USER" -m 0755 "$(dirname "$REST_SOCKET")"
  rm -f "$REST_SOCKET"
  # setpriv execs (runuser would stay as its parent), so $! is slurmrestd
  # itself and its pid file names the daemon.
  setpriv --reuid="$REST_USER" --regid="$REST_USER" --init-groups \
    setsid env SLURM_CONF="$CONF" SLURM_JWT=daemon slurmrestd $(rest_plugins) -a rest_auth/jwt "$REST_ADDR" "unix:$REST_SOCKET" \
    </dev/null >>"$STATE/log/slurmrestd.log" 2>&1 9>&- &
  echo $! | put 0644 "$STATE/run/slurmrestd.pid"
  local _
  for _ in $(seq 100); do
    # It exits at once when it cannot listen: checked first, so a squatter
    # on the port (which answers nothing) is never taken for it.
    pid_alive "$STATE/run/slurmrestd.pid" || break
    # Any HTTP answer (401 without a token) means it listens.
    [ "$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://$REST_ADDR/slurm/v0.0.38/ping")" != 000 ] && return 0
    sleep 0.1
  done
  tail -5 "$STATE/log/slurmrestd.log" >&2
  die "slurmrestd did not come up on $REST_ADDR (log: $STATE/log/slurmrestd.log; is the port taken? set DROVER_SLURMRESTD_ADDR)"
}

# slurmrestd's API plugins, where its default will not do: without
# accounting, its default (every plugin, slurmdbd's too) is fatal, so only
# slurmctld's are asked: 22.05's "slurm not configured with slurmdbd" from
# its dbv0.0.38 plugin, 23.02 on "Failure loading plugin path bindings".
rest_plugins() {
  [ "$ACCOUNTING" = 0 ] || return 0
  if inside_root; then echo "-s openapi/slurmctld"; else echo "-s openapi/v0.0.36,openapi/v0.0.37,openapi/v0.0.38"; fi
}

# `stop_pid FILE`: the process FILE names, TERM then KILL after 5 s.
stop_pid() {
  local f=$1 pid _
  [ -e "$f" ] || return 0
  if pid_alive "$f"; then
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# Stops the controller that answers at this cluster's address, whatever
# its pid file says: Slurm 24.11's daemon (`slurmctld-wlm`) was seen
# holding the port while the pid file named a process that had exited, so
# a stop by pid left the old controller (and its old slurm.conf) serving.
stop_controller() {
  if SLURM_CONF=$CONF timeout 10 scontrol shutdown slurmctld >/dev/null 2>&1; then
    local deadline=$((SECONDS + 30))
    while [ $SECONDS -lt $deadline ] && SLURM_CONF=$CONF timeout 5 scontrol ping 2>/dev/null | grep -q ' is UP'; do
      sleep 0.2
    done
  fi
  stop_pid "$STATE/run/slurmctld.pid"
}

stop_daemons() {
  local f
  [ -s "$CONF" ] && stop_controller
  for f in "$STATE"/run/sshd-login.pid "$STATE"/run/slurmrestd.pid "$STATE"/run/slurmd-*.pid "$STATE"/run/slurmctld.pid \
           "$STATE"/run/slurmdbd.pid "$DB_PID"; do
    stop_pid "$f"
  done
  kill_namespace_processes
  if [ -e "$STATE/run/munged.ours" ]; then
    stop_pid /run/munge/munged.pid
    rm -f "$STATE/run/munged.ours"
  fi
}

running() {
  [ -f "$CONF" ] || return 1
  pid_alive "$STATE/run/slurmctld.pid" || return 1
  local n i
  n=$(cat "$STATE/nodes" 2>/dev/null || echo 0)
  [ "$n" -gt 0 ] || return 1
  for i in $(seq 1 "$n"); do pid_alive "$STATE/run/slurmd-node$i.pid" || return 1; done
  pid_alive "$STATE/run/slurmrestd.pid" || return 1
  if [ "$ACCOUNTING" = 1 ]; then pid_alive "$STATE/run/slurmdbd.pid" || return 1; fi
  if has_login; then pid_alive "$STATE/run/sshd-login.pid" || return 1; fi
  SLURM_CONF=$CONF timeout 10 sinfo -h >/dev/null 2>&1
}

wait_idle() {
  local states deadline=$((SECONDS + 60))
  while [ $SECONDS -lt $deadline ]; do
    pid_alive "$STATE/run/slurmctld.pid" || { tail -5 "$STATE/log/slurmctld.log" >&2; die "slurmctld exited (log: $STATE/log/slurmctld.log)"; }
    states=$(SLURM_CONF=$CONF timeout 5 sinfo -h -N -o '%T' 2>/dev/null | sort -u | tr '\n' ' ')
    if [ "$states" = "idle " ]; then return 0; fi
    if echo "$states" | grep -Eq 'down|unk|drain'; then
      SLURM_CONF=$CONF timeout 5 scontrol update nodename="node[1-$NODES]" state=resume >/dev/null 2>&1 || true
    fi
    sleep 0.2
  done
  SLURM_CONF=$CONF sinfo -N -l >&2 || true
  die "nodes did not become idle within 60 s (logs: $STATE/log)"
}

# After a controller restart, until every node has registered again (its
# state without the `*` of a node not responding), so jobs can start.
wait_nodes_back() {
  local states deadline=$((SECONDS + 60))
  while [ $SECONDS -lt $deadline ]; do
    states=$(SLURM_CONF=$CONF timeout 5 sinfo -h -N -o '%T' 2>/dev/null | sort -u | tr '\n' ' ')
    if [ -n "$states" ] && ! echo "$states" | grep -Eq '\*|unk|down|drain|fail'; then return 0; fi
    sleep 0.2
  done
  SLURM_CONF=$CONF sinfo -N -l >&2 || true
  die "nodes did not register again within 60 s (logs: $STATE/log)"
}

# The controller from its saved state (no -c: jobs are kept).
start_controller() {
  pid_alive "$STATE/run/slurmctld.pid" && { log "slurmctld already running"; return 0; }
  SLURM_CONF=$CONF slurmctld -f "$CONF" 9>&-
  local deadline=$((SECONDS + 60))
  while [ $SECONDS -lt $deadline ]; do
    SLURM_CONF=$CONF timeout 5 sinfo -h >/dev/null 2>&1 && { log "slurmctld is back"; return 0; }
    sleep 0.2
  done
  die "slurmctld did not answer within 60 s (log: $STATE/log/slurmctld.log)"
}
