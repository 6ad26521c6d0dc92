#!/usr/bin/env bash
# Stop exactly the SLURM daemons tests/cluster/slurm_up.sh started (the ones listed in
# $STATE/started with their PID files), by PID: slurmd, then slurmctld, then munged. A daemon
# that someone else started is left running; the packages and the config stay (the next
# slurm_up.sh is then a start, not an install). Idempotent: nothing recorded, nothing done.
set -euo pipefail

STATE=${DRG_SLURM_STATE:-/run/drg-slurm}
say() { echo "slurm_down: $*" >&2; }

sudo=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then sudo="sudo -n"; fi

# With no controller, SLURM clients still read the config and wait about 9 s for a controller
# that is gone: that is every `snakemake` start on this machine, since the SLURM executor plugin
# runs `scontrol show config` when it loads. So once no slurmctld runs, the config this setup
# wrote goes (clients then fail at once); slurm_up.sh writes it again.
CONF=/etc/slurm/slurm.conf
MARK="# written by drg-workflow tests/cluster/slurm_up.sh"
forget_config() {
  if ! pgrep -x slurmctld >/dev/null && [ -e "$CONF" ] && grep -qF "$MARK" "$CONF"; then
    $sudo rm -f "$CONF"
    say "removed $CONF (slurm_up.sh wrote it; it writes it again)"
  fi
}

[ -s "$STATE/started" ] || {
  say "no daemons recorded in $STATE/started: nothing to stop"
  forget_config
  exit 0
}

stop() {  # stop NAME: SIGTERM the PID in its recorded PID file, if it is still that daemon
  local name=$1 pidfile pid
  pidfile=$(awk -v n="$name" '$1 == n {print $2}' "$STATE/started")
  [ -n "$pidfile" ] || return 0
  pid=$($sudo cat "$pidfile" 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$($sudo cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
    $sudo kill -TERM "$pid"
    for _ in $(seq 100); do  # up to 10 s, then SIGKILL
      [ -d "/proc/$pid" ] || break
      sleep 0.1
    done
    if [ -d "/proc/$pid" ]; then $sudo kill -KILL "$pid" || true; fi
    say "stopped $name (pid $pid)"
  else
    say "$name (pid file $pidfile) is not running"
  fi
  # Forget it: the list keeps only what is still ours.
  $sudo sed -i "/^$name /d" "$STATE/started"
}

stop slurmd
stop slurmctld
stop munged
forget_config
