#!/usr/bin/env bash
# Data-parallel training, one process per GPU (or per CPU share without CUDA), through torchrun
# and MMEngine's 'pytorch' launcher; without CUDA acsdet uses the gloo backend.
#   tools/dist_train.sh CONFIG NUM_PROCS [tools/train.py arguments]
# Multi-node, as MMDetection's script: on every node, with the same MASTER_ADDR / MASTER_PORT,
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 MASTER_PORT=29500 tools/dist_train.sh CONFIG 8
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 MASTER_PORT=29500 tools/dist_train.sh CONFIG 8
# (PORT is accepted for MASTER_PORT, as in MMDetection; PYTHON picks the interpreter.)
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG NUM_PROCS [tools/train.py arguments]" >&2
  exit 2
fi
CONFIG=$1
NPROC=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_PORT=${MASTER_PORT:-${PORT:-29500}}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
DIR=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-$(command -v python)}
exec "$PY" -m torch.distributed.run --nnodes="$NNODES" --node_rank="$NODE_RANK" \
  --master_addr="$MASTER_ADDR" --nproc_per_node="$NPROC" --master_port="$MASTER_PORT" \
  "$DIR/train.py" "$CONFIG" --launcher pytorch "$@"
