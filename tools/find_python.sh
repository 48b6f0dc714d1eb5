# Sourced by the launch scripts (dist_*.sh, slurm_*.sh): settle PYTHON, the
# interpreter of the install, and stop in one line if it cannot import torch.
# Torch's launcher then runs as a module of it, so no `torchrun` on PATH is
# needed. PYTHON_EXAMPLE is the example path the message suggests.
if [ -z "$PYTHON" ]; then
    PYTHON=$(command -v python || command -v python3)
fi
if ! "$PYTHON" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("torch") is None)' 2>/dev/null; then
    echo "ERROR: $0: the interpreter \"${PYTHON:-python}\" cannot import torch;" \
        "set PYTHON to the python of your install," \
        "e.g. PYTHON=${PYTHON_EXAMPLE:-.venv/bin/python} bash $0 $*" >&2
    exit 1
fi
