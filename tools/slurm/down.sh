#!/usr/bin/env bash
# Stop the daemons tools/slurm/up.sh started, and only those: each is named with its PID file in
# $PROBELAB_SLURM_BASE/run/started. A daemon that was already running before up.sh (a site's
# munged, a real SLURM) is not listed there and is left alone. Safe to run twice.
set -uo pipefail

BASE=${PROBELAB_SLURM_BASE:-/tmp/probelab-slurm}
STARTED="$BASE/run/started"
CONF=/etc/slurm/slurm.conf

say() { echo "[slurm down] $*"; }

if [ ! -s "$STARTED" ]; then
  say "nothing to stop ($STARTED lists no daemons)"
  exit 0
fi

stop() {  # $1 = daemon name, $2 = its PID file: SIGTERM, wait up to 10 s, then SIGKILL
  local name=$1 pidfile=$2 pid
  [ -s "$pidfile" ] || { say "$name: no PID file $pidfile (already stopped)"; return 0; }
  pid=$(cat "$pidfile")
  # A PID can be reused by another process once ours exited: check it is still the daemon.
  if ! kill -0 "$pid" 2>/dev/null || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$name" ]; then
    say "$name: pid $pid is not running any more"; rm -f "$pidfile"; return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 40); do
    kill -0 "$pid" 2>/dev/null || { say "$name (pid $pid) stopped"; rm -f "$pidfile"; return 0; }
    sleep 0.25
  done
  say "$name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null
  rm -f "$pidfile"
}

# Our controller's jobs would otherwise outlive it as orphaned job steps.
if grep -q '^slurmctld ' "$STARTED"; then
  timeout 10 scancel --user="$(id -un)" 2>/dev/null && sleep 1
fi
# Stop in reverse start order: slurmd, slurmctld, then munged (both SLURM daemons need munge).
tac "$STARTED" | while read -r name pidfile; do stop "$name" "$pidfile"; done
rm -f "$STARTED"
if [ -L "$CONF" ] && [ "$(readlink "$CONF")" = "$BASE/etc/slurm.conf" ]; then
  rm -f "$CONF"
fi
say "done"
