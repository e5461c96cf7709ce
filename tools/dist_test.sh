#!/usr/bin/env bash
# Distributed testing through torchrun and MMEngine's 'pytorch' launcher (gloo without CUDA).
# Every test image is counted once: the FROC equals a single-process run's.
#   tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [tools/test.py arguments]
# NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT (or PORT) select multi-node runs, as in
# tools/dist_train.sh; nodes need a shared file system for the work dir (results are gathered
# through it).
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG CHECKPOINT NUM_PROCS [tools/test.py arguments]" >&2
  exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_PORT=${MASTER_PORT:-${PORT:-29500}}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
DIR=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-$(command -v python)}
exec "$PY" -m torch.distributed.run --nnodes="$NNODES" --node_rank="$NODE_RANK" \
  --master_addr="$MASTER_ADDR" --nproc_per_node="$NPROC" --master_port="$MASTER_PORT" \
  "$DIR/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
