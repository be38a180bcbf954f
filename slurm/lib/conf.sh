# Slurm's configuration files for the local cluster. Sourced, never run.
#
# Modes: slurm.conf and gres.conf are read by daemons of other users
# (slurmrestd runs as drover-rest), so 0644; slurmdbd.conf holds the
# database password and slurmdbd insists on 0600; the JWT key is 0600.

write_conf() {
  local last=$NODES
  {
    cat <<EOF
# Written by drover's slurm/local-cluster; regenerated on every \`up\`.
ClusterName=drover-local
SlurmctldHost=$CTL_NAME($CTL_ADDR)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A job step credential's lifetime, which is also how long Slurm keeps a
# requeued job from starting again (120 s by default): ample for jobs on
# this machine, and the requeue tests each wait 100 s less.
AuthInfo=cred_expire=20
$(release_conf)
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=$(task_plugin)
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
$(accounting_conf)
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$JWT_KEY
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
ReturnToService=2
SlurmdParameters=config_overrides
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool/slurmd-%n
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd-%n.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd-%n.log
SlurmctldPort=$CTLD_PORT
SlurmdPort=6818
SlurmctldTimeout=30
SlurmdTimeout=20
InactiveLimit=0
KillWait=5
MinJobAge=300
MaxJobCount=100000
GresTypes=gpu
EOF
    overridden MaxArraySize 100001
    [ -z "$SCHED_PARAMS" ] || echo "SchedulerParameters=$SCHED_PARAMS"
    # `set` overrides of keys not written above.
    if [ -s "$STATE/overrides" ]; then grep -Ev '^(MaxArraySize|PreemptMode)=' "$STATE/overrides" || true; fi
    local i gres
    for i in $(seq 1 "$last"); do
      gres=""
      [ "$i" != "$last" ] || [ "$last" = 1 ] || gres=" Gres=gpu:$GPUS"
      echo "NodeName=node$i NodeAddr=$(node_addr "$i") NodeHostname=node$i CPUs=$CPUS RealMemory=$MEMORY$gres State=UNKNOWN"
    done
    # Jobs of batch, small and big are never preempted (PreemptMode=OFF).
    echo "PartitionName=batch Nodes=node[1-$last] Default=YES MaxTime=INFINITE PreemptMode=OFF State=UP"
    # small bills as sites do (TRESBillingWeights): 2 per CPU and 1 per GiB,
    # summed; what a pool cost is checked against it (slurm_costs.rs).
    echo "PartitionName=small Nodes=node1 MaxTime=01:00:00 MaxNodes=1 PreemptMode=OFF TRESBillingWeights=CPU=2.0,Mem=1.0G State=UP"
    # The last node (with the stand-in GPUs) also as a partition of its own,
    # for pools whose groups go to different partitions.
    echo "PartitionName=big Nodes=node$last MaxTime=INFINITE PreemptMode=OFF State=UP"
    # As sites have them: a scavenger partition on every node whose jobs
    # a job of the higher-tier urgent partition preempts (SIGTERM, then
    # GraceTime seconds, then requeued; `set PreemptMode=CANCEL` cancels instead).
    echo "PartitionName=scavenger Nodes=node[1-$last] MaxTime=INFINITE PriorityTier=1 $(overridden PreemptMode REQUEUE) GraceTime=10 State=UP"
    echo "PartitionName=urgent Nodes=node[1-$last] MaxTime=INFINITE PriorityTier=10 PreemptMode=OFF State=UP"
  } | put 0644 "$CONF"
  write_gres "$last"
  write_cgroup_conf
  echo "$NODES" | put 0644 "$STATE/nodes"
  shape | put 0644 "$STATE/shape"
}

# Memory enforced as sites do (task/cgroup): a job's processes may use
# what it asked for (--mem), and one that goes over is killed by the
# kernel and ends OUT_OF_MEMORY. This machine mounts cgroup v1's memory
# controller (the unified hierarchy holds no controllers), which every
# release here can drive. Cores and devices are not confined: the nodes
# share this machine's CPUs, and the GPUs are stand-ins.
# The host's cluster only: every release names its nodes node1, node2...,
# and Slurm's cgroup v1 paths are /sys/fs/cgroup/memory/slurm_NODE/uid_U/
# job_ID, so clusters of two releases side by side would share them (job
# ids repeat between clusters) and one's limits break the other's jobs
# (in CI, 26.05 could not set a job's limit in a directory 22.05 had made).
task_plugin() {
  if memory_cgroup && ! inside_root; then echo task/cgroup; else echo task/none; fi
}

# Removes the empty job cgroups of node $1 that a killed slurmd or an
# earlier cluster left (a new cluster's job ids start again at 1): a job
# reusing one would find another's limits there.
clear_slurm_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/slurm_node"$1"; do
    [ -d "$d" ] && find "$d" -depth -mindepth 1 -type d -exec rmdir {} + 2>/dev/null
  done
  return 0
}

# Whether cgroup v1's memory controller is mounted where Slurm looks.
memory_cgroup() { [ -e /sys/fs/cgroup/memory/memory.limit_in_bytes ]; }

write_cgroup_conf() {
  [ "$(task_plugin)" = task/cgroup ] || inside_root || log "no cgroup v1 memory controller at /sys/fs/cgroup/memory: memory is not enforced (TaskPlugin=task/none)"
  put 0644 "$STATE/cgroup.conf" <<EOF
# Written by drover's slurm/local-cluster.
CgroupPlugin=cgroup/v1
ConstrainRAMSpace=yes
ConstrainSwapSpace=yes
AllowedSwapSpace=0
ConstrainCores=no
ConstrainDevices=no
EOF
}

# The last node (of two or more) declares $GPUS GPUs. They are stand-ins:
# Slurm only needs a file per device to hand out indexes and set
# CUDA_VISIBLE_DEVICES, so each is a copy of /dev/null's device node (no
# cgroup device constraint runs here, and nothing can use it as a GPU).
write_gres() {
  if [ "$1" -le 1 ]; then
    put 0644 "$STATE/gres.conf" </dev/null
    return 0
  fi
  install -d -m 0755 "$STATE/dev"
  local g
  for g in $(seq 0 $((GPUS - 1))); do
    [ -c "$STATE/dev/gpu$g" ] || { rm -f "$STATE/dev/gpu$g"; mknod "$STATE/dev/gpu$g" c 1 3; }
    chmod 0666 "$STATE/dev/gpu$g"
  done
  echo "NodeName=node$1 Name=gpu File=$STATE/dev/gpu[0-$((GPUS - 1))]" | put 0644 "$STATE/gres.conf"
}

# What a running cluster was made with: `up` with other values starts afresh.
shape() {
  echo "nodes=$NODES cpus=$CPUS memory=$MEMORY gpus=$GPUS partitions=batch,small,big,scavenger,urgent tasks=$(task_plugin) scheduler-parameters=$SCHED_PARAMS accounting=$ACCOUNTING rest=$REST_ADDR"
}

# The settings a running cluster was made with, read back from its shape.
load_shape() {
  local shape kv
  shape=$(cat "$STATE/shape" 2>/dev/null) || die "no cluster here; run: slurm/local-cluster up"
  for kv in $shape; do
    case "$kv" in
      nodes=*) NODES=${kv#*=} ;;
      cpus=*) CPUS=${kv#*=} ;;
      memory=*) MEMORY=${kv#*=} ;;
      scheduler-parameters=*) SCHED_PARAMS=${kv#*=} ;;
      accounting=*) ACCOUNTING=${kv#*=} ;;
    esac
  done
}

# `KEY=DEFAULT`, or `KEY=VALUE` as `set` gave it.
overridden() {
  local v
  v=$(grep -m1 "^$1=" "$STATE/overrides" 2>/dev/null | cut -d= -f2- || true)
  echo "$1=${v:-$2}"
}

# Keys only some releases know. 22.05 names its munge credential and
# switch plugins; 23.11 and later have no crypto/ or switch/none plugins
# (their credentials are cred/munge by default, and no switch is the default).
release_conf() {
  if inside_root; then
    echo "# Slurm $(cat "$ROOT_MARK")"
  else
    printf '%s\n' "CryptoType=crypto/munge" "SwitchType=switch/none"
  fi
}

accounting_conf() {
  if [ "$ACCOUNTING" = 1 ]; then
    printf '%s\n' "AccountingStorageType=accounting_storage/slurmdbd" \
      "AccountingStorageHost=127.0.0.1" "AccountingStoragePort=$DBD_PORT" \
      "AccountingStorageEnforce=associations,limits,qos"
  else
    echo "AccountingStorageType=accounting_storage/none"
  fi
}

# The key slurmctld signs and checks JWTs with (and slurmdbd, for
# slurmrestd's accounting queries): made once, readable by root alone.
make_jwt_key() { secret "$JWT_KEY" 32; }

# slurmdbd.conf beside slurm.conf, with the database password: 0600.
write_slurmdbd_conf() {
  put 0600 "$STATE/slurmdbd.conf" <<EOF
# Written by drover's slurm/local-cluster.
AuthType=auth/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$JWT_KEY
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$STATE/log/slurmdbd.log
PidFile=$STATE/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$1
StorageLoc=slurm_acct_db
EOF
}
