#!/usr/bin/env bash
# Distributed testing through torchrun and MMEngine's 'pytorch' launcher (gloo without CUDA).
# Every test image is counted once: the FROC equals a single-process run's.
#   tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [tools/test.py arguments]
# NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT (or PORT) select multi-node runs, as in
# tools/dist_train.sh; nodes need a shared file system for the work dir (results are gathered
# through it).
# The torchrun settings are in tools/dist_run.sh.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG CHECKPOINT NUM_PROCS [tools/test.py arguments]" >&2
  exit 2
fi
DIR=$(cd "$(dirname "$0")" && pwd)
exec bash "$DIR/dist_run.sh" "$3" "$DIR/test.py" "$1" "$2" "${@:4}"
