#!/usr/bin/env bash
# Data-parallel training, one process per GPU (or per CPU share without CUDA), through torchrun
# and MMEngine's 'pytorch' launcher; without CUDA acsdet uses the gloo backend.
#   tools/dist_train.sh CONFIG NUM_PROCS [tools/train.py arguments]
# Multi-node, as MMDetection's script: on every node, with the same MASTER_ADDR / MASTER_PORT,
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 MASTER_PORT=29500 tools/dist_train.sh CONFIG 8
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 MASTER_PORT=29500 tools/dist_train.sh CONFIG 8
# (PORT is accepted for MASTER_PORT, as in MMDetection; PYTHON picks the interpreter.)
# The torchrun settings are in tools/dist_run.sh.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG NUM_PROCS [tools/train.py arguments]" >&2
  exit 2
fi
DIR=$(cd "$(dirname "$0")" && pwd)
exec bash "$DIR/dist_run.sh" "$2" "$DIR/train.py" "$1" "${@:3}"
