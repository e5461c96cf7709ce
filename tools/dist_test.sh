#!/usr/bin/env bash
# Multi-GPU testing through torch.distributed (MMEngine's 'pytorch' launcher).
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [tools/test.py arguments]
# NNODES, NODE_RANK, MASTER_ADDR, PORT select multi-node runs.
set -euo pipefail
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
shift 3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
DIR=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-$(command -v python)}
exec "$PY" -m torch.distributed.run --nnodes="$NNODES" --node_rank="$NODE_RANK" \
  --master_addr="$MASTER_ADDR" --nproc_per_node="$GPUS" --master_port="$PORT" \
  "$DIR/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
