# Slurm releases other than this machine's own, each from a Debian root of
# its own. Sourced, never run.
#
# Debian 12's Slurm is 22.05; Debian's registry also has 24.11 (Debian 13,
# "trixie") and 26.05 (Debian unstable, "sid"). Those need their release's
# libc, so they cannot be installed beside 22.05: `debootstrap` builds a
# root for each under $ROOTS/<release>, with Slurm's daemons and commands,
# munge and MariaDB in it. The whole of slurm/local-cluster then runs inside
# that root (chroot), so every daemon and command is the release's own.
# Bind-mounted into the root at the same paths: /proc, /sys, /dev, /tmp,
# /root (cargo, rustup, Python), this repository, and /run/netns (shared,
# so the node namespaces made inside are the host's); and at $STATE, the
# release's own state directory, $STATE-<release> on the host. The nodes
# stay network namespaces as on the host.
#
# Each release's cluster has its own slot (common.sh: bridge, subnet,
# namespaces, ports, state), so clusters of several releases run side by
# side. A command goes to the release --slurm names, else
# DROVER_SLURM_RELEASE's, else the one last brought up ($ROOTS/current).

ROOTS=${DROVER_SLURM_ROOTS:-/var/lib/drover-slurm-roots}
CURRENT="$ROOTS/current"
# Inside a root, this file names its release.
ROOT_MARK=/etc/drover-slurm-release
# Packages every root holds.
# The libraries after procps are those the tests' Python (pyenv's, under
# the bind-mounted /root) links to and a minimal root lacks; graphviz draws
# the graphs of the demo's Dask programs, as slurm/python-env has it here.
ROOT_PACKAGES=slurm-wlm,slurm-wlm-jwt-plugin,ca-certificates,slurmdbd,slurmrestd,munge,mariadb-server,curl,iproute2,util-linux,procps,libffi8,libnsl2,libsqlite3-0,graphviz
# Inside a root, the packages it was built or last topped up with.
ROOT_PACKAGES_MARK=/etc/drover-root-packages
# This repository, mounted at the same path inside each root.
REPO=$(cd "$LIB/../.." && pwd)

# The Debian suite a release comes from.
suite_of() {
  case "$1" in
    24.11) echo trixie ;;
    26.05) echo sid ;;
    *) die "unknown Slurm release '$1': accepted: 22.05 (this machine's), 24.11, 26.05" ;;
  esac
}

# Whether this shell runs inside a release's root.
inside_root() { [ -f "$ROOT_MARK" ]; }

# The release a command without --slurm or DROVER_SLURM_RELEASE goes to:
# the one last brought up.
current_release() { cat "$CURRENT" 2>/dev/null || echo 22.05; }

# The host's state directory of a release's cluster.
state_of() { if [ "$1" = 22.05 ]; then echo "$STATE"; else echo "$STATE-$1"; fi; }

# The releases that run from roots.
ROOT_RELEASES="24.11 26.05"

# Which Slurm runs the cluster, in words: its release, version and where.
release_words() {
  if inside_root; then
    echo "Slurm $(cat "$ROOT_MARK") ($(cat /etc/drover-slurm-version 2>/dev/null), from a Debian root at $ROOTS/$(cat "$ROOT_MARK"); run commands there with: slurm/local-cluster exec -- CMD)"
  else
    echo "Slurm 22.05 (this machine's: $(sinfo -V 2>/dev/null || echo unknown))"
  fi
}

# `ensure_root RELEASE`: its root, built when missing (or left half-built).
ensure_root() {
  local release=$1 root="$ROOTS/$1" suite
  suite=$(suite_of "$release")
  if [ -f "$root$ROOT_MARK" ]; then
    top_up_root "$root"
    return 0
  fi
  command -v debootstrap >/dev/null 2>&1 || {
    log "installing debootstrap"
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap >/dev/null \
      || die "apt-get install debootstrap failed: see apt's words above"
  }
  unmount_root "$root"
  # Never remove a root with anything still mounted in it: a bind mount of
  # /root or the repository would be removed with it.
  if findmnt -rn -o TARGET | grep -q "^$root/"; then
    die "cannot rebuild $root: something is still mounted in it ($(findmnt -rn -o TARGET | grep "^$root/" | head -1))"
  fi
  rm -rf "$root"
  install -d -m 0755 "$ROOTS"
  log "building a Debian $suite root for Slurm $release in $root (a few minutes, once)"
  debootstrap --variant=minbase --include="$ROOT_PACKAGES" "$suite" "$root" \
    "${DROVER_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$ROOTS/build-$release.log" 2>&1 \
    || { tail -5 "$ROOTS/build-$release.log" >&2; die "debootstrap $suite failed (log: $ROOTS/build-$release.log)"; }
  # The packages' own services are not wanted: the cluster starts its own.
  chroot "$root" dpkg-query -W -f='${Version}\n' slurm-wlm | put 0644 "$root/etc/drover-slurm-version"
  echo "$ROOT_PACKAGES" | put 0644 "$root$ROOT_PACKAGES_MARK"
  echo "$release" | put 0644 "$root$ROOT_MARK"
  log "Slurm $(cat "$root/etc/drover-slurm-version") ready in $root"
}

# `top_up_root ROOT`: a root built with fewer packages than ROOT_PACKAGES
# now names gets the others, from its own suite.
top_up_root() {
  local root=$1
  [ "$(cat "$root$ROOT_PACKAGES_MARK" 2>/dev/null)" = "$ROOT_PACKAGES" ] && return 0
  local p missing=()
  for p in ${ROOT_PACKAGES//,/ }; do
    chroot "$root" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "$ROOT_PACKAGES" | put 0644 "$root$ROOT_PACKAGES_MARK"
    return 0
  fi
  log "adding packages to $root: ${missing[*]}"
  mount_root "$root"
  # apt needs the registry's resolver, which the cluster goes without. The
  # registry may serve release files past their Valid-Until (debootstrap
  # does not check it; apt does).
  cp -L /etc/resolv.conf "$root/etc/resolv.conf.apt"
  {
    mount --bind "$root/etc/resolv.conf.apt" "$root/etc/resolv.conf" \
      && chroot "$root" apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Check-Valid-Until=false update -qq \
      && chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
        install -y -qq --no-install-recommends "${missing[@]}"
  } >"$ROOTS/top-up.log" 2>&1 || { umount "$root/etc/resolv.conf" 2>/dev/null; tail -5 "$ROOTS/top-up.log" >&2; die "apt-get in $root failed (log: $ROOTS/top-up.log)"; }
  umount "$root/etc/resolv.conf"
  rm -f "$root/etc/resolv.conf.apt"
  echo "$ROOT_PACKAGES" | put 0644 "$root$ROOT_PACKAGES_MARK"
}

# `mount_root ROOT`: the bind mounts the cluster needs inside it. Each is a
# slave of the host's (nothing unmounted inside reaches the host) but
# /run/netns, a peer: namespaces made inside are the host's.
mount_root() {
  local root=$1 dir
  # mkdir -p, never install -d: that would reset the mode of /tmp or /root.
  mkdir -p /run/netns
  findmnt -rn /run/netns >/dev/null || mount --bind /run/netns /run/netns
  mount --make-shared /run/netns
  for dir in /proc /sys /dev /tmp /root "$REPO"; do
    mkdir -p "$root$dir"
    if ! findmnt -rn "$root$dir" >/dev/null; then
      mount --rbind "$dir" "$root$dir"
      mount --make-rslave "$root$dir"
    fi
  done
  # The release's own state directory at $STATE: one mounted from
  # elsewhere (another release's, or the host's own) is replaced.
  local state
  state=$(state_of "$(basename "$root")")
  [ -d "$state" ] || install -d -m 0755 -o root -g root "$state"
  mkdir -p "$root$STATE"
  if findmnt -rn "$root$STATE" >/dev/null && [ "$(findmnt -rn -o FSROOT "$root$STATE" | tail -1)" != "$state" ]; then
    umount -l "$root$STATE"
  fi
  if ! findmnt -rn "$root$STATE" >/dev/null; then
    mount --bind "$state" "$root$STATE"
    mount --make-slave "$root$STATE"
  fi
  # debootstrap writes no /etc/hosts: MariaDB and munge look up this
  # host's name and localhost, so the root gets this machine's lines.
  if ! grep -qw localhost "$root/etc/hosts" 2>/dev/null; then
    grep -v "$HOSTS_MARK" /etc/hosts | put 0644 "$root/etc/hosts"
  fi
  root_resolver "$root"
  mkdir -p "$root/run/netns"
  findmnt -rn "$root/run/netns" >/dev/null || mount --bind /run/netns "$root/run/netns"
}

# `unmount_root ROOT`: every mount under it, deepest first; /run/netns is
# made private first, so its namespaces stay mounted on the host.
unmount_root() {
  local root=$1 m
  [ -d "$root" ] || return 0
  if findmnt -rn "$root/run/netns" >/dev/null; then
    mount --make-rprivate "$root/run/netns" 2>/dev/null || true
  fi
  for m in $(findmnt -rn -o TARGET | grep "^$root/" | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
}

# `root_resolver ROOT`: no DNS server inside. The nodes' namespaces reach
# none, and from 23.11 on slurmd looks names up (DNS SRV records for the
# controller, among others): each lookup waited 20 s for a server it could
# not reach, slurmd took 10 s to start and batch launches timed out, so
# jobs were requeued. Names come from the root's /etc/hosts; a lookup of
# anything else fails at once. The registry's resolver is kept beside it
# for apt, should packages be added to the root by hand.
root_resolver() {
  local root=$1
  grep -qx 'nameserver 127.0.0.1' "$root/etc/resolv.conf" 2>/dev/null && return 0
  [ -e "$root/etc/resolv.conf.registry" ] || cp -L "$root/etc/resolv.conf" "$root/etc/resolv.conf.registry" 2>/dev/null || true
  printf '%s\n' "# slurm/local-cluster: no DNS inside (names are in /etc/hosts)" "nameserver 127.0.0.1" \
    | put 0644 "$root/etc/resolv.conf"
}

# Where a root holds the host's MariaDB client library, for slurmdbd.
# Debian's slurmdbd of 24.11 and of 26.05 dies at its first query with the
# client library their roots get (MariaDB 11.8.9's: "mysql_query failed:
# 5027 Number of columns in result (=1) set exceeds maximum allowed number
# of columns (=0)" in _check_mysql_concat_is_sane), while the root's own
# `mariadb` runs that query fine; with Debian 12's libmariadb 3.3 it
# starts and keeps accounts against the root's MariaDB 11.8 server.
DBD_LIBS=/opt/drover-libmariadb

# `give_mariadb_client ROOT`: the host's libmariadb.so.3 into ROOT$DBD_LIBS.
give_mariadb_client() {
  local root=$1 lib=/usr/lib/x86_64-linux-gnu/libmariadb.so.3
  if [ ! -e "$lib" ]; then
    log "installing libmariadb3 (the MariaDB client slurmdbd uses in the release's root)"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq libmariadb3 >/dev/null \
      || die "apt-get install libmariadb3 failed: see apt's words above"
  fi
  mkdir -p "$root$DBD_LIBS"
  chmod 0755 "$root$DBD_LIBS"
  cp -L "$lib" "$root$DBD_LIBS/libmariadb.so.3.tmp"
  chmod 0644 "$root$DBD_LIBS/libmariadb.so.3.tmp"
  mv -f "$root$DBD_LIBS/libmariadb.so.3.tmp" "$root$DBD_LIBS/libmariadb.so.3"
}

# `in_root RELEASE CMD...`: CMD inside the release's root, in this
# directory, with this environment.
in_root() {
  local root="$ROOTS/$1"
  shift
  mount_root "$root"
  chroot "$root" /bin/sh -c 'cd "$1" 2>/dev/null || cd /; shift; exec "$@"' sh "$PWD" "$@"
}
