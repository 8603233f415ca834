#!/usr/bin/env bash
# Starts a single-node Slurm cluster on this machine (Debian 12: slurm-wlm 22.05 and munge),
# for the integration tests and for trying the Slurm executor: munged, slurmctld and slurmd,
# one partition `debug` with all CPUs, no accounting. Waits until the node is idle.
#
#   sudo apt-get install -y slurm-wlm munge     # once (about 20 s)
#   scripts/slurm/start.sh [--install]         # as root; --install runs the line above
#   scripts/slurm/stop.sh
#
# State, logs and PID files go to $INSILICO_SLURM_DIR (default /var/tmp/insilico-slurm); job
# state persists there across restarts. Writes /etc/slurm/slurm.conf (refusing to replace
# one it did not write).
set -euo pipefail
dir="${INSILICO_SLURM_DIR:-/var/tmp/insilico-slurm}"
conf=/etc/slurm/slurm.conf
marker="# written by insilico scripts/slurm/start.sh"
# The exit code with which `insilico sweep --point` asks to be requeued (REQUEUE_EXIT in
# crates/insilico-study/src/sweep/slurm.rs).
requeue_exit=85
started=$(date +%s%N)

die() { echo "start.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (it starts munged and the Slurm daemons)"
if [ "${1:-}" = "--install" ]; then
    if ! command -v slurmctld >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y slurm-wlm munge >/dev/null ||
            { apt-get update >/dev/null && apt-get install -y slurm-wlm munge >/dev/null; }
    fi
fi
for cmd in munged slurmctld slurmd sinfo setpriv; do
    command -v "$cmd" >/dev/null || die "$cmd not found: apt-get install -y slurm-wlm munge (or pass --install)"
done
if [ -e "$conf" ] && ! grep -qF "$marker" "$conf"; then
    die "$conf exists and was not written by this script; not replacing it"
fi

mkdir -p "$dir/state" "$dir/spool"
host=$(hostname -s)
cpus=$(nproc)
# Memory for jobs: the machine's, less 1 GiB for the system; each CPU's default share is
# DefMemPerCPU (else each task asks for the whole node's memory and tasks run one at a time).
mem=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024 ))
cat > "$conf" <<CONF
$marker
ClusterName=insilico
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
# Short credential lifetime: a requeued task restarts within seconds, not two minutes.
AuthInfo=cred_expire=5
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$(( mem / cpus ))
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
SchedulerParameters=sched_interval=2,bf_interval=1
RequeueExit=$requeue_exit
# Finished jobs stay visible to scontrol for a day (there is no accounting database).
MinJobAge=86400
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

# munge: no systemd here, so run munged in the foreground as its user, in the background,
# so that the recorded PID is munged itself. The package created the key.
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    install -d -o munge -g munge -m 0755 /run/munge
    setpriv --reuid=munge --regid=munge --init-groups munged -F >>"$dir/munged.log" 2>&1 &
    echo $! > "$dir/munged.pid"
    for _ in $(seq 50); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n </dev/null | unmunge >/dev/null || die "munged did not start (see $dir/munged.log)"
fi

pgrep -F "$dir/slurmctld.pid" >/dev/null 2>&1 || slurmctld
pgrep -F "$dir/slurmd.pid" >/dev/null 2>&1 || slurmd
for _ in $(seq 120); do
    state=$(sinfo -h -N -o %T 2>/dev/null | head -1 || true)
    if [ "$state" = idle ] || [ "$state" = mixed ] || [ "$state" = allocated ]; then
        ms=$(( ($(date +%s%N) - started) / 1000000 ))
        echo "slurm: node $host $state ($cpus CPUs, $mem MiB) after ${ms} ms; logs in $dir"
        exit 0
    fi
    sleep 0.5
done
tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
die "the node did not become idle within 60 s (state: ${state:-none})"
