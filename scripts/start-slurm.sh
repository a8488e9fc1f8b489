#!/usr/bin/env bash
# A single-node Slurm cluster on this host for runnel's custom executor tests (the Slurm driver in
# examples/custom-slurm). Idempotent; run as root.
#
# Installs slurm-wlm and munge from apt when missing, writes a munge key and a minimal slurm.conf
# (cluster `runnel`, one node = this host, partition `debug`, proctrack/linuxproc and task/none so
# no cgroups are needed) under /etc, and starts munged, slurmctld and slurmd. A node left DOWN or
# DRAINED by an earlier run is resumed. When it returns, `srun true` works.
#
#   srun -p debug hostname      squeue --noheader      scancel --name NAME
set -euo pipefail

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  echo "installing slurm-wlm and munge from apt"
  [[ -n "$(apt-get indextargets)" ]] || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurm-wlm munge >/dev/null
fi

node=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.8 }' /proc/meminfo)

# munge: a key, then the daemon.
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
fi
if ! munge -n </dev/null >/dev/null 2>&1; then
  echo "starting munged"
  runuser -u munge -- /usr/sbin/munged
fi
for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.1; done
munge -n </dev/null >/dev/null || { echo "munged does not answer" >&2; exit 1; }

conf=/etc/slurm/slurm.conf
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
want=$(cat <<CONF
# Written by runnel's scripts/start-slurm.sh: one node, no cgroups.
ClusterName=runnel
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
KillWait=5
InactiveLimit=0
MinJobAge=60
NodeName=$node CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
CONF
)
changed=0
if [[ ! -f $conf ]] || [[ "$(cat "$conf")" != "$want" ]]; then
  printf '%s\n' "$want" >"$conf"
  changed=1
fi

running() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
if ((changed)); then
  running /run/slurm/slurmd.pid && kill "$(cat /run/slurm/slurmd.pid)" && sleep 1
  running /run/slurm/slurmctld.pid && kill "$(cat /run/slurm/slurmctld.pid)" && sleep 1
fi
if ! running /run/slurm/slurmctld.pid; then
  echo "starting slurmctld"
  /usr/sbin/slurmctld
fi
if ! running /run/slurm/slurmd.pid; then
  echo "starting slurmd"
  /usr/sbin/slurmd
fi

for _ in $(seq 100); do
  state=$(sinfo --noheader -n "$node" -o '%T' 2>/dev/null || true)
  case $state in
    idle* | mixed* | allocated*) break ;;
    down* | drain* | fail*) scontrol update NodeName="$node" State=RESUME 2>/dev/null || true ;;
  esac
  sleep 0.2
done
if ! timeout 30 srun --quiet -p debug -N1 -t 1 true; then
  echo "slurm does not run jobs (node state: ${state:-unknown}); see /var/log/slurm/" >&2
  exit 1
fi
echo "slurm ready: node $node ($cpus CPUs), partition debug"
