# The local cluster's login node and a laptop outside the cluster, for
# drover's `--ssh` (a driver that reaches the cluster only through ssh to
# its login node). Only the host's own cluster (22.05) has them: the
# releases' roots have no sshd. Sourced, never run.
#
# login: a network namespace on the bridge (ib0, $LOGIN_ADDR, hostname
# `login`) running Debian's sshd with a config, host key and authorized
# keys of its own under $LOGIN_DIR. It shares this machine's filesystem, so
# Slurm's commands are there, and its sessions get SLURM_CONF as a login
# node's users would.
#
# laptop: a network namespace whose one link goes to the login node (a
# point-to-point pair, no forwarding on the login side), so from it only
# the login node answers: no route to the nodes' ib0, slurmctld or
# slurmrestd. `laptop -- CMD` runs CMD there in a mount namespace where
# Slurm's commands, configs and state are hidden, with an ~/.ssh of its
# own whose config names the login node.

LOGIN_NS=drover-login
LAPTOP_NS=drover-laptop
# Host end of the login node's link on the bridge; the laptop pair.
LOGIN_LINK=drv-login
LAPTOP_LINK=drv-laptop
LOGIN_ADDR="$NET_PREFIX.250"
# The laptop's own small subnet, to the login node only.
LAPTOP_NET=10.78.0
LOGIN_DIR="$STATE/login"
LAPTOP_HOME="$STATE/laptop"

has_login() { [ "$SLOT" = 0 ]; }

# Debian's openssh-server without starting the machine's own sshd: its
# package scripts would start one on this machine's port 22.
install_sshd() {
  has_login || return 0
  [ -x /usr/sbin/sshd ] && return 0
  log "installing openssh-server (the login node's sshd)"
  local policy=/usr/sbin/policy-rc.d ours=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    ours=1
  fi
  apt-get -o DPkg::Lock::Timeout=600 update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq openssh-server >/dev/null
  local status=$?
  [ "$ours" = 0 ] || rm -f "$policy"
  [ "$status" = 0 ] || die "apt-get install openssh-server failed: see apt's words above, then run up again"
}

# Keys, sshd's config and the ssh configs of this machine and the laptop.
# Keys are made once and kept (a laptop's known_hosts stays true).
write_login_files() {
  install -d -m 0700 -o root -g root "$LOGIN_DIR" "$LAPTOP_HOME" "$LAPTOP_HOME/.ssh"
  [ -s "$LOGIN_DIR/host_key" ] || ssh-keygen -q -t ed25519 -N '' -C login-host -f "$LOGIN_DIR/host_key"
  [ -s "$LOGIN_DIR/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C machine -f "$LOGIN_DIR/id_ed25519"
  [ -s "$LAPTOP_HOME/.ssh/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C laptop -f "$LAPTOP_HOME/.ssh/id_ed25519"
  cat "$LOGIN_DIR/id_ed25519.pub" "$LAPTOP_HOME/.ssh/id_ed25519.pub" | put 0600 "$LOGIN_DIR/authorized_keys"
  local host_key
  host_key=$(cut -d' ' -f1,2 "$LOGIN_DIR/host_key.pub")
  echo "login,$LOGIN_ADDR $host_key" | put 0600 "$LOGIN_DIR/known_hosts"
  echo "login,$LAPTOP_NET.1 $host_key" | put 0600 "$LAPTOP_HOME/.ssh/known_hosts"
  put 0600 "$LOGIN_DIR/sshd_config" <<EOF
# The local cluster's login node (slurm/local-cluster).
ListenAddress 0.0.0.0
Port 22
HostKey $LOGIN_DIR/host_key
PidFile $STATE/run/sshd-login.pid
AuthorizedKeysFile $LOGIN_DIR/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# Forwarded TCP ports are how a driver outside reaches its pool.
AllowTcpForwarding local
AllowStreamLocalForwarding no
X11Forwarding no
PermitTunnel no
# One master connection carries every command of a pool.
MaxSessions 64
SetEnv SLURM_CONF=$CONF
Subsystem sftp internal-sftp
EOF
  put 0644 "$LOGIN_DIR/ssh_config" <<EOF
# \`ssh -F $LOGIN_DIR/ssh_config login\` from this machine.
Host login
  HostName $LOGIN_ADDR
  User root
  IdentityFile $LOGIN_DIR/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $LOGIN_DIR/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
EOF
  put 0600 "$LAPTOP_HOME/.ssh/config" <<EOF
# The laptop's ssh configuration: \`ssh login\` with no arguments.
Host login
  HostName $LAPTOP_NET.1
  User root
  IdentityFile ~/.ssh/id_ed25519
  IdentitiesOnly yes
  StrictHostKeyChecking yes
  BatchMode yes
EOF
}

make_login_network() {
  has_login || return 0
  add_host_ns "$LOGIN_NS" "$LOGIN_LINK" "$LOGIN_ADDR" ib0
  nsenter --net="/var/run/netns/$LOGIN_NS" sysctl -qw net.ipv4.ip_forward=0
  ip netns add "$LAPTOP_NS"
  ip link add "$LAPTOP_LINK" type veth peer name "$LAPTOP_LINK-x"
  ip link set "$LAPTOP_LINK" netns "$LAPTOP_NS"
  ip link set "$LAPTOP_LINK-x" netns "$LOGIN_NS"
  local in_laptop="nsenter --net=/var/run/netns/$LAPTOP_NS" in_login="nsenter --net=/var/run/netns/$LOGIN_NS"
  $in_laptop ip link set "$LAPTOP_LINK" name eth0
  $in_laptop ip addr add "$LAPTOP_NET.2/30" dev eth0
  $in_laptop ip link set eth0 up
  $in_laptop ip link set lo up
  $in_login ip link set "$LAPTOP_LINK-x" name uplink
  $in_login ip addr add "$LAPTOP_NET.1/30" dev uplink
  $in_login ip link set uplink up
}

remove_login_network() {
  local ns
  for ns in "$LAPTOP_NS" "$LOGIN_NS"; do
    ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$ns" || continue
    local p
    for p in $(ip netns pids "$ns" 2>/dev/null || true); do kill -9 "$p" 2>/dev/null || true; done
    ip netns delete "$ns" 2>/dev/null || true
  done
  ip link delete "$LOGIN_LINK" 2>/dev/null || true
}

start_login() {
  has_login || return 0
  write_login_files
  install -d -m 0755 /run/sshd
  stop_pid "$STATE/run/sshd-login.pid"
  nsenter --net="/var/run/netns/$LOGIN_NS" unshare --uts \
    sh -c "hostname login && exec /usr/sbin/sshd -f '$LOGIN_DIR/sshd_config' -E '$STATE/log/sshd-login.log'" 9>&-
  local _
  for _ in $(seq 50); do
    ssh -F "$LOGIN_DIR/ssh_config" -o ConnectTimeout=2 login true 2>/dev/null && return 0
    sleep 0.1
  done
  tail -5 "$STATE/log/sshd-login.log" >&2 || true
  die "the login node's sshd does not answer on $LOGIN_ADDR:22 (log: $STATE/log/sshd-login.log)"
}

# `laptop -- CMD...`: CMD as a laptop outside the cluster would run it.
cmd_laptop() {
  need_root
  has_login || die "only the host's Slurm (22.05) has a login node and a laptop"
  [ "${1:-}" = -- ] && shift
  [ $# -gt 0 ] || die "laptop needs a command: slurm/local-cluster laptop -- CMD..."
  [ -e "/var/run/netns/$LAPTOP_NS" ] && pid_alive "$STATE/run/sshd-login.pid" \
    || die "no login node is running; run: slurm/local-cluster up"
  local hide="" bin dir
  for bin in $(dpkg -L slurm-client 2>/dev/null | grep '^/usr/bin/' || true); do
    [ -e "$bin" ] && hide="$hide mount --bind /dev/null $bin;"
  done
  for dir in /etc/slurm /run/munge "$STATE" "$STATE"-[0-9]* "$ROOTS"; do
    [ -d "$dir" ] && hide="$hide mount -t tmpfs -o mode=0755,size=1m tmpfs '$dir';"
  done
  # The laptop's ~/.ssh replaces the machine's (ssh reads ~/.ssh from the
  # passwd entry, not $HOME); the rest of the home stays (a venv's Python
  # may live there). Then the state directory it came from is hidden. The
  # environment keeps nothing of Slurm's or of the local cluster's.
  local ssh_dir
  ssh_dir="$(getent passwd "$(id -un)" | cut -d: -f6)/.ssh"
  [ -d "$ssh_dir" ] || install -d -m 0700 "$ssh_dir"
  unshare --mount --uts --propagation private -- sh -c \
    "hostname laptop && mount --bind '$LAPTOP_HOME/.ssh' '$ssh_dir' && $hide exec nsenter --net=/var/run/netns/$LAPTOP_NS \"\$@\"" laptop \
    env -u SLURM_CONF -u SLURMRESTD_URL -u SLURM_JWT -u DROVER_SLURM_RELEASE -u DROVER_LOCAL_BRIDGE \
    -u DROVER_SLURM_JWT_FILE -u DROVER_SLURM_API "$@" 9>&-
}
