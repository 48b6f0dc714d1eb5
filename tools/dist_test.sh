#!/usr/bin/env bash
# Usage: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node.
# PYTHON: the interpreter of the install (default: python, else python3),
# e.g. PYTHON=.venv/bin/python. It runs torch's launcher as a module
# (python -m torch.distributed.run, what the torchrun script runs), so no
# torchrun needs to be on PATH.
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
TOOLS=$(dirname "$0")

if [ -z "$PYTHON" ]; then
    PYTHON=$(command -v python || command -v python3)
fi
if ! "$PYTHON" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("torch") is None)' 2>/dev/null; then
    echo "ERROR: $0: the interpreter \"${PYTHON:-python}\" cannot import torch;" \
        "set PYTHON to the python of your install," \
        "e.g. PYTHON=.venv/bin/python bash $0 $*" >&2
    exit 1
fi

PYTHONPATH="$TOOLS/..":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    "$TOOLS/test.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch "${@:4}"
