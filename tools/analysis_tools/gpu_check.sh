#!/usr/bin/env bash
# Every GPU measurement of docs/en/benchmarks.md in one call (at most about
# 8 minutes on one H100): the training step of every stage of
# configs/csdn_sysu.py and configs/eees_sysu.py in bf16 and fp32 against the
# reference-style step, with peak memory, feature-cache extraction and the
# train loader (its 8 workers); the evaluation of a full-size synthetic
# SYSU-MM01 test split; the toy CSDN recipe's Rank-1 with and without bf16;
# the description throughput of the LLaVA-1.5-7B architecture. The data it
# needs is generated first (nothing is downloaded). Each part has its own
# time limit; a failing part records its error and the next one runs.
#
#   bash tools/analysis_tools/gpu_check.sh [--out DIR] [--budget SECONDS]
#   bash tools/analysis_tools/gpu_check.sh --device cpu --small   # CI, ~2 min
#
# Writes DIR/gpu_check.json, DIR/gpu_check.md (the markdown rows, also
# printed at the end) and DIR/parts/<part>.log; DIR defaults to
# work_dirs/gpu_check. Generated data stays in data/gpu_check (--data-dir),
# so a rerun skips its generation. PYTHON: the interpreter of the install
# (default: python, else python3), e.g. PYTHON=.venv/bin/python.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-}
. tools/find_python.sh
exec "$PYTHON" tools/analysis_tools/gpu_check.py "$@"
