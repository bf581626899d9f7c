#!/bin/bash
# QMIO tunnel job, as the centre's qpu.sh: `sbatch --partition=qpu --time=00:03:00 qpu.sh [PORT]`.
# It opens a tunnel to the QPU service for this job's user and holds it while the job runs;
# the job's end (its time limit, scancel) closes it. `qmio tunnel --slurm` submits it and
# prints the `export ZMQ_SERVER=...` line once the tunnel is open.
#SBATCH --job-name=qmio-tunnel
#SBATCH --ntasks=1
set -euo pipefail
port="${1:-${QMIO_TUNNEL_PORT:-}}"
python="${QMIO_PYTHON:-python3}"
seconds="${QMIO_TUNNEL_SECONDS:-180}"
args=(-m qmio_lab.cli tunnel --hold --time "$(( seconds / 60 )):$(( seconds % 60 ))")
if [[ -n "$port" ]]; then
    args+=(--port "$port")
fi
exec "$python" "${args[@]}"
