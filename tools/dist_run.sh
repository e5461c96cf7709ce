#!/usr/bin/env bash
# The torchrun call shared by tools/dist_train.sh and tools/dist_test.sh (MMDetection's settings):
#   tools/dist_run.sh NUM_PROCS SCRIPT [SCRIPT arguments]
# NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), MASTER_PORT (or PORT, 29500), PYTHON.
set -euo pipefail
NPROC=$1
SCRIPT=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_PORT=${MASTER_PORT:-${PORT:-29500}}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PY=${PYTHON:-$(command -v python)}
exec "$PY" -m torch.distributed.run --nnodes="$NNODES" --node_rank="$NODE_RANK" \
  --master_addr="$MASTER_ADDR" --nproc_per_node="$NPROC" --master_port="$MASTER_PORT" \
  "$SCRIPT" "$@" --launcher pytorch
