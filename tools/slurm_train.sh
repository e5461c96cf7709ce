#!/usr/bin/env bash
# Training on a Slurm cluster through MMEngine's 'slurm' launcher (as MMDetection's script):
#   [GPUS=16] [GPUS_PER_NODE=8] tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [args]
# srun starts one task per GPU; ranks, world size and the master address come from Slurm.
# CPU partitions: GPUS counts tasks and GPUS_PER_NODE=0 drops the --gres request (gloo is used).
# The srun settings are in tools/slurm_run.sh.
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py arguments]" >&2
  exit 2
fi
DIR=$(cd "$(dirname "$0")" && pwd)
exec bash "$DIR/slurm_run.sh" "$1" "$2" "$DIR/train.py" "$3" --work-dir="$4" "${@:5}"
