#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests/test_slurm_cluster.py (and for trying
# `snakemake --profile profiles/slurm` by hand; see README.md, "Running on a cluster").
#
#   tests/cluster/slurm_up.sh      # install (Debian packages), configure, start; prints the state
#   tests/cluster/slurm_down.sh    # stop exactly the daemons this script started
#
# Idempotent: packages already installed are not reinstalled, a config it wrote before is
# kept, and a daemon already running (ours or not) is left as it is. Each daemon it starts is
# recorded in $STATE/started with its PID file, so slurm_down.sh stops exactly those, by PID.
# Needs root (or sudo) and Debian's slurmctld, slurmd, slurm-client and munge packages (SLURM
# 22.05 on Debian 12); runs without systemd. No accounting daemon: `sacct` does not work, so
# Snakemake's SLURM executor must poll with `squeue` (profiles/slurm sets it).
# Exit status: 0 when `sinfo` shows the node idle, 2 when SLURM cannot be installed here at
# all (no apt-get, no root), 1 on any other failure (with the daemons' logs printed).
set -euo pipefail

STATE=${DRG_SLURM_STATE:-/run/drg-slurm}   # PID files and the list of daemons we started
SPOOL=/var/spool/drg-slurm
LOGS=/var/log/drg-slurm
CONF=/etc/slurm/slurm.conf
MARK="# written by drg-workflow tests/cluster/slurm_up.sh"
PARTITION=${DRG_SLURM_PARTITION:-debug}

say() { echo "slurm_up: $*" >&2; }

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    say "needs root (or password-less sudo) to install and start SLURM"
    exit 2
  fi
fi

# ---------------------------------------------------------------------------- install
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null ||
   ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  if ! command -v apt-get >/dev/null; then
    say "SLURM is not installed and there is no apt-get to install it"
    exit 2
  fi
  say "installing slurmctld slurmd slurm-client munge (apt-get)"
  if ! { $sudo apt-get update -qq >/dev/null &&
         $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
           slurmctld slurmd slurm-client munge >/dev/null; }; then
    say "could not install the SLURM packages (apt-get failed: no network or no such packages?)"
    exit 2
  fi
fi

# ----------------------------------------------------------------------------- configure
$sudo mkdir -p "$STATE" "$SPOOL/ctld" "$SPOOL/d" "$LOGS" /etc/slurm
$sudo touch "$STATE/started"

if [ ! -s /etc/munge/munge.key ]; then
  $sudo mungekey --create --keyfile /etc/munge/munge.key
  $sudo chown munge:munge /etc/munge/munge.key
  $sudo chmod 0400 /etc/munge/munge.key
fi
$sudo mkdir -p /run/munge /var/log/munge /var/lib/munge
$sudo chown munge:munge /run/munge /var/log/munge /var/lib/munge

host=$(hostname -s)
if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
  say "keeping the existing $CONF (not written by this script)"
else
  # The node line as slurmd sees this machine (CPUs, sockets, cores, memory), reachable on
  # 127.0.0.1 whatever the host name resolves to.
  node=$(slurmd -C | head -n 1)
  conf=$(cat <<EOF
$MARK
ClusterName=drg-test
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# Finished jobs stay visible to squeue this long (Snakemake polls with squeue; the test looks
# its jobs up after the run).
MinJobAge=3600
ReturnToService=2
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/d
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
)
  if [ ! -e "$CONF" ] || [ "$conf" != "$(cat "$CONF")" ]; then
    printf '%s\n' "$conf" | $sudo tee "$CONF" >/dev/null
    reconfigure=yes
  fi
fi

# ------------------------------------------------------------------------------ start
alive() {  # alive PIDFILE NAME: the PID file names a running process called NAME
  local pid
  pid=$($sudo cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$($sudo cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

record() {  # record NAME PIDFILE: remember that we started it (read by slurm_down.sh)
  grep -qx "$1 $2" "$STATE/started" 2>/dev/null ||
    echo "$1 $2" | $sudo tee -a "$STATE/started" >/dev/null
}

start() {  # start NAME PIDFILE COMMAND...: start a daemon unless one is already running
  local name=$1 pidfile=$2
  shift 2
  if alive "$pidfile" "$name" || pgrep -x "$name" >/dev/null; then
    say "$name already running"
    return
  fi
  "$@"
  for _ in $(seq 50); do
    alive "$pidfile" "$name" && break
    sleep 0.1
  done
  if ! alive "$pidfile" "$name"; then
    say "$name did not start"
    exit 1
  fi
  record "$name" "$pidfile"
  say "started $name (pid $($sudo cat "$pidfile"))"
}

start munged /run/munge/munged.pid \
  $sudo runuser -u munge -- munged --pid-file=/run/munge/munged.pid
start slurmctld "$STATE/slurmctld.pid" $sudo slurmctld
start slurmd "$STATE/slurmd.pid" $sudo slurmd
# Daemons that were already running read a config this script has just changed.
if [ "${reconfigure:-}" = yes ]; then
  timeout 30 $sudo scontrol reconfigure || say "scontrol reconfigure failed"
fi

# ------------------------------------------------------------------------------- wait
# While slurmctld is not answering, each sinfo blocks ~10 s: a deadline, not a count.
deadline=$((SECONDS + 60))
while :; do
  state=$(timeout 15 sinfo -h -N -o '%T' 2>/dev/null | head -n 1) || state=""
  case $state in
    idle | mixed | allocated | completing) break ;;
    down* | drain* | unknown*)
      $sudo scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
  esac
  if [ $SECONDS -ge $deadline ]; then
    say "the node did not become idle within 60 s (state: ${state:-no answer})"
    $sudo tail -n 20 "$LOGS/slurmctld.log" "$LOGS/slurmd.log" >&2 || true
    exit 1
  fi
  sleep 1
done
sinfo
