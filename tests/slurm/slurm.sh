#!/usr/bin/env bash
# A real single-node SLURM for tests and demos, without systemd.
#
#   bash tests/slurm/slurm.sh install        # apt-get slurm-wlm + munge, only when missing
#   bash tests/slurm/slurm.sh start DIR      # config, state and logs in DIR; prints `export SLURM_CONF=...`
#   bash tests/slurm/slurm.sh status DIR     # exit 0 when the node answers in sinfo
#   bash tests/slurm/slurm.sh stop DIR       # stops slurmd and slurmctld by their pid files
#
# Every subcommand is idempotent: `start` on a running cluster only prints the export line.
# Two partitions exist, as at QMIO: `emulator` (default, Dask workers) and `qpu`.
# The node advertises 8 CPUs (SlurmdParameters=config_overrides) so several 1-CPU jobs run at once
# on a 2-core machine.
set -euo pipefail

die() { echo "slurm.sh: $*" >&2; exit 1; }

need_root() {
  [[ $(id -u) -eq 0 ]] || die "$1 needs root (it installs packages or starts daemons as root)"
}

cmd_install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    return 0
  fi
  need_root install
  echo "installing slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
}

abs_dir() {
  [[ -n ${1:-} ]] || die "usage: slurm.sh start|stop|status DIR"
  mkdir -p "$1"
  (cd "$1" && pwd)
}

write_conf() {
  local dir=$1 node=$2 conf=$1/slurm.conf
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  cat >"$conf" <<EOF
# Written by tests/slurm/slurm.sh: single-node SLURM, no cgroups, no accounting daemon.
ClusterName=qmiolab
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=${QMIO_SLURMCTLD_PORT:-6817}
SlurmdPort=${QMIO_SLURMD_PORT:-6818}
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
ReturnToService=2
SlurmdParameters=config_overrides
MpiDefault=none
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=30
KillWait=5
Waittime=0
NodeName=$node NodeAddr=127.0.0.1 CPUs=8 RealMemory=16000 State=UNKNOWN
PartitionName=emulator Nodes=$node Default=YES MaxTime=INFINITE State=UP
PartitionName=qpu Nodes=$node Default=NO MaxTime=60 State=UP
EOF
}

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    return 0
  fi
  [[ -f /etc/munge/munge.key ]] || mungekey -c
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge/munge.key 2>/dev/null || true
  if id munge >/dev/null 2>&1; then
    runuser -u munge -- munged --force 2>/dev/null || munged --force 2>/dev/null
  else
    munged --force 2>/dev/null
  fi
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "munged did not start: \`munge -n | unmunge\` fails; see /var/log/munge/munged.log"
}

node_idle() {
  local state
  state=$(SLURM_CONF=$1/slurm.conf sinfo -h -N -o '%t' 2>/dev/null | head -n1) || return 1
  [[ $state == idle* || $state == mix* || $state == alloc* ]]
}

cmd_start() {
  need_root start
  local dir node
  dir=$(abs_dir "${1:-}")
  node=$(hostname -s)
  command -v slurmctld >/dev/null || die "slurmctld not found: run \`bash $0 install\` first"
  export SLURM_CONF=$dir/slurm.conf
  if alive "$dir/slurmctld.pid" && alive "$dir/slurmd.pid" && node_idle "$dir"; then
    echo "export SLURM_CONF=$SLURM_CONF"
    return 0
  fi
  cmd_stop "$dir" >/dev/null
  write_conf "$dir" "$node"
  start_munge
  slurmctld -f "$SLURM_CONF" || die "slurmctld failed to start; see $dir/log/slurmctld.log"
  slurmd -f "$SLURM_CONF" || die "slurmd failed to start; see $dir/log/slurmd.log"
  for _ in $(seq 150); do
    if node_idle "$dir"; then
      echo "export SLURM_CONF=$SLURM_CONF"
      return 0
    fi
    # a node left DOWN by an earlier run comes back once told so
    scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
    sleep 0.2
  done
  sinfo -N -l >&2 || true
  tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
  die "the node did not become idle within 30 s (logs above, in $dir/log)"
}

stop_pid() {
  local pidfile=$1 pid
  alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

cmd_stop() {
  local dir
  dir=$(abs_dir "${1:-}")
  # cancel what is still queued so no job outlives its daemons
  if alive "$dir/slurmctld.pid"; then
    SLURM_CONF=$dir/slurm.conf scancel --full --quiet -u root 2>/dev/null || true
  fi
  stop_pid "$dir/slurmd.pid"
  stop_pid "$dir/slurmctld.pid"
  echo "stopped SLURM in $dir"
}

cmd_status() {
  local dir
  dir=$(abs_dir "${1:-}")
  if alive "$dir/slurmctld.pid" && alive "$dir/slurmd.pid" && node_idle "$dir"; then
    SLURM_CONF=$dir/slurm.conf sinfo
    echo "export SLURM_CONF=$dir/slurm.conf"
    return 0
  fi
  echo "SLURM is not running in $dir" >&2
  return 1
}

case ${1:-} in
  install) cmd_install ;;
  start) cmd_start "${2:-}" ;;
  stop) cmd_stop "${2:-}" ;;
  status) cmd_status "${2:-}" ;;
  *) die "usage: slurm.sh install | start DIR | stop DIR | status DIR" ;;
esac
