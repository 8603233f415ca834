#!/usr/bin/env bash
# Stops the single-node cluster that scripts/slurm/start.sh started (by its PID files).
# Job state stays in $INSILICO_SLURM_DIR/state; pass --purge to remove that directory too.
set -euo pipefail
dir="${INSILICO_SLURM_DIR:-/var/tmp/insilico-slurm}"
for daemon in slurmd slurmctld munged; do
    pidfile="$dir/$daemon.pid"
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$pidfile"
done
if [ "${1:-}" = "--purge" ]; then
    rm -rf "$dir"
fi
echo "slurm: stopped"
