#!/usr/bin/env bash
# Usage: [GPUS=8] tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args...]
# PYTHON: the interpreter of the install on the compute nodes (default:
# python, else python3), e.g. PYTHON=$PWD/.venv/bin/python.
set -x

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
TOOLS=$(dirname "$0")

if [ -z "$PYTHON" ]; then
    PYTHON=$(command -v python || command -v python3)
fi
if ! "$PYTHON" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("torch") is None)' 2>/dev/null; then
    echo "ERROR: $0: the interpreter \"${PYTHON:-python}\" cannot import torch;" \
        "set PYTHON to the python of your install," \
        "e.g. PYTHON=\$PWD/.venv/bin/python bash $0 $*" >&2
    exit 1
fi

# srun starts one task per GPU; each runs test.py with this interpreter.
PYTHONPATH="$TOOLS/..":$PYTHONPATH \
srun -p ${PARTITION} \
    --job-name=${JOB_NAME} \
    --gres=gpu:${GPUS_PER_NODE} \
    --ntasks=${GPUS} \
    --ntasks-per-node=${GPUS_PER_NODE} \
    --cpus-per-task=${CPUS_PER_TASK} \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    "$PYTHON" -u "$TOOLS/test.py" "$CONFIG" "$CHECKPOINT" --launcher="slurm" "${@:5}"
