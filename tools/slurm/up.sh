#!/usr/bin/env bash
# Bring up a one-node SLURM cluster on localhost, for the SLURM workflow test (tests/test_slurm.py).
#
# Debian/Ubuntu and root only: installs munge, slurmctld, slurmd and slurm-client with apt-get when
# they are missing, writes a minimal slurm.conf under $PROBELAB_SLURM_BASE and starts the daemons
# by hand (containers have no systemd). Every daemon this script starts is recorded in
# $PROBELAB_SLURM_BASE/run/started, and tools/slurm/down.sh stops exactly those, by PID.
#
# There is no accounting database (slurmdbd), so `sacct` knows no jobs: Snakemake's SLURM plugin
# must query job states with `squeue` (`slurm-status-command: squeue` in profiles/slurm), which
# sees finished jobs for MinJobAge seconds.
#
# Exit status: 0 when `sinfo` answers afterwards (also when a SLURM was already answering, in
# which case nothing is started); 2 when this machine cannot host it (not root, no apt-get, a
# foreign /etc/slurm/slurm.conf), with one line saying why; 1 when start-up failed (the daemons
# started so far are stopped again; logs in $PROBELAB_SLURM_BASE/log).
set -euo pipefail

BASE=${PROBELAB_SLURM_BASE:-/tmp/probelab-slurm}
HERE=$(cd "$(dirname "$0")" && pwd)
CONF=/etc/slurm/slurm.conf    # see below: the plugin's in-job srun needs the default path
STARTED="$BASE/run/started"
export DEBIAN_FRONTEND=noninteractive

say() { echo "[slurm up] $*"; }
cannot() { echo "[slurm up] cannot bring up SLURM here: $*" >&2; exit 2; }
started_at=$(date +%s)

if timeout 5 sinfo -h >/dev/null 2>&1; then
  say "a SLURM controller already answers; starting nothing"
  exit 0
fi
[ "$(id -u)" = 0 ] || cannot "needs root (apt-get and the daemons), running as $(id -un)"
if [ -e "$CONF" ] && [ "$(readlink -f "$CONF")" != "$BASE/etc/slurm.conf" ]; then
  cannot "$CONF exists and is not this script's; refusing to replace a site configuration"
fi
if [ -s "$STARTED" ]; then
  cannot "$STARTED lists daemons from an earlier start; run tools/slurm/down.sh first"
fi

# ------------------------------------------------------------------ packages
missing=""
for tool in munged slurmctld slurmd sinfo; do command -v "$tool" >/dev/null || missing=1; done
if [ -n "$missing" ]; then
  command -v apt-get >/dev/null || cannot "SLURM is not installed and there is no apt-get to install it"
  packages="munge slurmctld slurmd slurm-client"
  # A fresh container has empty package lists: update only when the install cannot find packages.
  if ! apt-get install -y -qq --no-install-recommends $packages >/dev/null 2>&1; then
    apt-get update -qq || cannot "apt-get update failed (no network to the package mirror?)"
    apt-get install -y -qq --no-install-recommends $packages >/dev/null \
      || cannot "apt-get install $packages failed"
  fi
  say "packages installed after $(( $(date +%s) - started_at )) s"
fi

mkdir -p "$BASE"/{etc,state/ctld,state/d,log,run}
: > "$STARTED"

# Undo a half-finished start: stop what this script started so far.
trap 'status=$?; echo "[slurm up] start-up failed; stopping what was started (logs: $BASE/log)" >&2;
      "$HERE/down.sh" || true; exit 1' ERR

wait_for() {  # $1 = seconds, rest = command that must succeed
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

# ------------------------------------------------------------------ munge (authentication)
if [ ! -s /etc/munge/munge.key ]; then    # Debian's postinst normally creates the key
  mungekey -c -k /etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
fi
MUNGE_PID=/run/munge/munged.pid
if [ -s "$MUNGE_PID" ] && kill -0 "$(cat "$MUNGE_PID")" 2>/dev/null; then
  say "munged already runs (pid $(cat "$MUNGE_PID")); using it and leaving it running"
else
  install -d -o munge -g munge -m 755 /run/munge
  runuser -u munge -- /usr/sbin/munged     # as the munge user: it owns the key and /run/munge
  wait_for 10 test -s "$MUNGE_PID"
  echo "munged $MUNGE_PID" >> "$STARTED"
fi
wait_for 10 sh -c 'munge -n | unmunge'

# ------------------------------------------------------------------ slurm.conf
# Memory SLURM may hand out: 80 % of this machine's, so that jobs asking for mem_mb fit.
real_memory=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.8 }' /proc/meminfo)
# CPUs SLURM may hand out: at least 8, more than a small CI machine has (config_overrides lets
# slurmd register them). A test job spends most of its time starting Python processes; with only
# the real 2 cores, the demo DAG test's (tests/test_slurm.py) split and 2-CPU group jobs queued
# behind the 1-CPU embedding jobs for up to a minute.
cpus=$(nproc)
[ "$cpus" -ge 8 ] || cpus=8
cat > "$BASE/etc/slurm.conf" <<CONF_EOF
# Written by tools/slurm/up.sh: a one-node test cluster without accounting.
ClusterName=probelab
SlurmctldHost=$(hostname -s)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MailProg=/bin/true
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$BASE/state/ctld
SlurmdSpoolDir=$BASE/state/d
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
# Without accounting, squeue is the only status source: keep finished jobs visible for an hour
# (the tests read the rule and state of every job of a run that can take minutes on a busy CI box).
MinJobAge=3600
KillWait=5
Waittime=0
SlurmdParameters=config_overrides
NodeName=$(hostname -s) CPUs=$cpus RealMemory=$real_memory State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF_EOF
# The plugin's job step strips every SLURM_* variable (SLURM_CONF too) before its inner srun, so
# the configuration must sit at the compiled-in default path; a symlink is enough.
mkdir -p /etc/slurm
ln -sfn "$BASE/etc/slurm.conf" "$CONF"

# ------------------------------------------------------------------ daemons
slurmctld -c          # -c: clean state, no jobs left over from an earlier cluster
wait_for 10 test -s "$BASE/run/slurmctld.pid"
echo "slurmctld $BASE/run/slurmctld.pid" >> "$STARTED"
slurmd
wait_for 10 test -s "$BASE/run/slurmd.pid"
echo "slurmd $BASE/run/slurmd.pid" >> "$STARTED"

wait_for 30 sh -c "sinfo -h -o %T | grep -qx idle"
timeout 30 srun -t 1 true
trap - ERR
sinfo
say "SLURM up after $(( $(date +%s) - started_at )) s (base $BASE; stop it with tools/slurm/down.sh)"
