# Accounting for the local cluster: slurmdbd on a MariaDB of its own (a
# data directory in the state, the default socket, no TCP port, so only
# local processes with the password reach it). Sourced, never run.

start_mariadb() {
  if [ -S "$DB_SOCKET" ] && mariadb-admin --socket="$DB_SOCKET" ping >/dev/null 2>&1; then
    pid_alive "$DB_PID" \
      || die "a MariaDB that is not ours answers at $DB_SOCKET; stop it (service mariadb stop), or run up with --no-accounting"
    return 0
  fi
  install -d -o mysql -g mysql -m 0700 "$STATE/mysql"
  install -d -o mysql -g mysql -m 0755 /run/mysqld
  if [ ! -d "$STATE/mysql/mysql" ]; then
    log "initialising MariaDB for slurmdbd"
    mariadb-install-db --no-defaults --user=mysql --datadir="$STATE/mysql" \
      --auth-root-authentication-method=socket --skip-test-db >"$STATE/log/mariadb-install.log" 2>&1 \
      || { tail -5 "$STATE/log/mariadb-install.log" >&2; die "mariadb-install-db failed (log: $STATE/log/mariadb-install.log)"; }
  fi
  touch "$STATE/log/mariadb.log"
  chown mysql:mysql "$STATE/log/mariadb.log"
  chmod 0640 "$STATE/log/mariadb.log"
  runuser -u mysql -- setsid mariadbd --no-defaults --datadir="$STATE/mysql" --socket="$DB_SOCKET" \
    --pid-file="$DB_PID" --skip-networking --log-error="$STATE/log/mariadb.log" \
    </dev/null >/dev/null 2>&1 9>&- &
  local _
  for _ in $(seq 100); do
    mariadb-admin --socket="$DB_SOCKET" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  tail -5 "$STATE/log/mariadb.log" >&2
  die "MariaDB did not come up (log: $STATE/log/mariadb.log)"
}

# slurmdbd reads slurmdbd.conf beside $SLURM_CONF; its password is made
# once and kept in files only root can read.
start_slurmdbd() {
  local pw _
  secret "$STATE/db.pw" 24
  pw=$(cat "$STATE/db.pw")
  mariadb --socket="$DB_SOCKET" -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$pw'; ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$pw'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
  write_slurmdbd_conf "$pw"
  # Inside a release's root, with the host's client library (see DBD_LIBS).
  local libs=
  inside_root && libs=$DBD_LIBS
  pid_alive "$STATE/run/slurmdbd.pid" || SLURM_CONF=$CONF LD_LIBRARY_PATH=$libs slurmdbd 9>&-
  for _ in $(seq 100); do
    SLURM_CONF=$CONF timeout 5 sacctmgr -n show cluster >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  tail -5 "$STATE/log/slurmdbd.log" >&2
  die "slurmdbd did not answer (log: $STATE/log/slurmdbd.log)"
}

# The cluster, the account `drover` and root in it (root's default account
# stays `root`): what --account tests name. Limits and QOS are the tests' own.
add_accounts() {
  local m=(env SLURM_CONF="$CONF" sacctmgr -i)
  "${m[@]}" add cluster drover-local >/dev/null
  "${m[@]}" add account drover Description=drover Organization=drover >/dev/null
  "${m[@]}" add user root Account=drover >/dev/null
}
