#!/usr/bin/env bash
# The srun call shared by tools/slurm_train.sh and tools/slurm_test.sh (MMDetection's settings):
#   tools/slurm_run.sh PARTITION JOB_NAME SCRIPT [SCRIPT arguments]
# GPUS (tasks, default 8), GPUS_PER_NODE (default 8; 0 on CPU partitions drops the --gres
# request and gloo is used), TASKS_PER_NODE, CPUS_PER_TASK (default 5), SRUN_ARGS, PYTHON.
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
SCRIPT=$3
shift 3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
TASKS_PER_NODE=${TASKS_PER_NODE:-$(( GPUS_PER_NODE > 0 ? GPUS_PER_NODE : GPUS ))}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
GRES=()
if [ "$GPUS_PER_NODE" -gt 0 ]; then GRES=(--gres="gpu:$GPUS_PER_NODE"); fi
PY=${PYTHON:-$(command -v python)}
# shellcheck disable=SC2086
exec srun -p "$PARTITION" --job-name="$JOB_NAME" "${GRES[@]}" --ntasks="$GPUS" \
  --ntasks-per-node="$TASKS_PER_NODE" --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 \
  $SRUN_ARGS "$PY" -u "$SCRIPT" "$@" --launcher=slurm
