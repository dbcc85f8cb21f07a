#!/usr/bin/env bash
# A real single-node Slurm cluster (Debian's slurmctld, slurmd and munge, 22.05) in a private
# folder, started and stopped without systemd: for the tests of ct-segment's job arrays, and
# for trying the sbatch files of deploy/slurm on one machine.
#
#   tools/slurm-local.sh start DIR   start munged, slurmctld and slurmd with their files in DIR;
#                                    prints the SLURM_CONF to export for sbatch, squeue, ...
#   tools/slurm-local.sh stop DIR    cancel the jobs, stop the daemons by their pids
#   tools/slurm-local.sh status DIR  sinfo and squeue of the cluster in DIR
#
# Nothing outside DIR is touched: the daemons listen on free ports of 127.0.0.1, munged has its
# own key, socket and seed, and the node is this machine as `slurmd -C` describes it.
set -euo pipefail

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }
log() { printf '[slurm-local] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Client calls hang for 10 s when munged is gone: every call is bounded.
bounded() { timeout 20 "$@"; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# The user the daemons run as: munge's own user when we are root (munged refuses to run as
# root without --force), otherwise whoever runs this.
daemon_user() { if [ "$(id -u)" -eq 0 ] && id munge >/dev/null 2>&1; then echo munge; else id -un; fi; }

start_munge() {
  local dir=$1 user
  user=$(daemon_user)
  mkdir -p "$dir/munge"
  # Others must reach the socket (execute only); the key stays private to the user.
  chmod 711 "$dir/munge"
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge/munge.key"
  [ "$user" = "$(id -un)" ] || chown -R "$user:" "$dir/munge"
  local command=(munged -F --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket"
                 --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log"
                 --seed-file="$dir/munge/munged.seed" --num-threads=2)
  if [ "$user" = "$(id -un)" ]; then
    "${command[@]}" >"$dir/munged.out" 2>&1 &
  else
    setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups "${command[@]}" >"$dir/munged.out" 2>&1 &
  fi
  echo $! >"$dir/munged.pid"
  for _ in $(seq 100); do
    [ -S "$dir/munge/munge.socket" ] && return 0
    pid_alive "$dir/munged.pid" || break
    sleep 0.05
  done
  cat "$dir/munged.out" "$dir/munge/munged.log" >&2 2>/dev/null || true
  die "munged did not start"
}

write_config() {
  local dir=$1 user node
  user=$(id -un)
  # The node exactly as slurmd sees it (more RealMemory than it finds would drain it).
  node=$(slurmd -C | head -1 | sed 's/ UpTime=.*//')
  node=${node/NodeName=$(hostname -s)/NodeName=$(hostname -s) NodeAddr=127.0.0.1}
  cat >"$dir/slurm.conf" <<EOF
ClusterName=dlwptlocal
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.daemon.pid
SlurmdPidFile=$dir/slurmd.daemon.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
# No cgroups and no accounting here: process tracking by /proc, cores as the only resource
# (with memory accounting every task would take the whole node).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# Schedule at once (the default waits up to 3 s per job).
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
MaxArraySize=100001
KillWait=5
$node State=UNKNOWN
PartitionName=local Nodes=$(hostname -s) Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
  local dir=$1
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null ||
    die "Slurm or munge is not installed (tools/dev.sh setup installs them)"
  pid_alive "$dir/slurmctld.pid" && die "a cluster already runs in $dir"
  mkdir -p "$dir/state" "$dir/spool"
  dir=$(cd "$dir" && pwd)
  start_munge "$dir"
  write_config "$dir"
  slurmctld -D -i -f "$dir/slurm.conf" >"$dir/slurmctld.out" 2>&1 &
  echo $! >"$dir/slurmctld.pid"
  slurmd -D -N "$(hostname -s)" -f "$dir/slurm.conf" >"$dir/slurmd.out" 2>&1 &
  echo $! >"$dir/slurmd.pid"
  export SLURM_CONF=$dir/slurm.conf
  for _ in $(seq 200); do
    if pid_alive "$dir/slurmctld.pid" && pid_alive "$dir/slurmd.pid" &&
       [ "$(bounded sinfo -h -o %t 2>/dev/null)" = idle ]; then
      log "cluster up in $dir"
      echo "export SLURM_CONF=$dir/slurm.conf"
      return 0
    fi
    pid_alive "$dir/slurmctld.pid" && pid_alive "$dir/slurmd.pid" || break
    sleep 0.05
  done
  tail -n 20 "$dir"/slurmctld.log "$dir"/slurmd.log "$dir"/*.out >&2 2>/dev/null || true
  stop "$dir"
  die "the cluster did not come up (logs above)"
}

stop_pid() {
  local file=$1
  pid_alive "$file" || { rm -f "$file"; return 0; }
  local pid
  pid=$(cat "$file")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$file"
}

stop() {
  local dir=$1
  [ -d "$dir" ] || die "no cluster folder $dir"
  export SLURM_CONF=$dir/slurm.conf
  # Jobs first (a shut-down controller would leave their processes), while munged still runs.
  if pid_alive "$dir/slurmctld.pid"; then
    bounded scancel --full --quiet --user "$(id -un)" 2>/dev/null || true
    for _ in $(seq 100); do
      [ -z "$(bounded squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.1
    done
  fi
  stop_pid "$dir/slurmd.pid"
  stop_pid "$dir/slurmctld.pid"
  stop_pid "$dir/munged.pid"
  log "cluster in $dir stopped"
}

status() {
  export SLURM_CONF=$1/slurm.conf
  bounded sinfo
  bounded squeue
}

case "${1:-}" in
  start | stop | status)
    [ $# -eq 2 ] || { usage >&2; exit 2; }
    "$1" "$2" ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
