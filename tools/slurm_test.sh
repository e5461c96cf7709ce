#!/usr/bin/env bash
# Testing on a Slurm cluster through MMEngine's 'slurm' launcher (as MMDetection's script):
#   [GPUS=8] [GPUS_PER_NODE=8] tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [args]
# CPU partitions: GPUS counts tasks and GPUS_PER_NODE=0 drops the --gres request (gloo is used).
# The srun settings are in tools/slurm_run.sh.
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 PARTITION JOB_NAME CONFIG CHECKPOINT [tools/test.py arguments]" >&2
  exit 2
fi
DIR=$(cd "$(dirname "$0")" && pwd)
exec bash "$DIR/slurm_run.sh" "$1" "$2" "$DIR/test.py" "$3" "$4" "${@:5}"
