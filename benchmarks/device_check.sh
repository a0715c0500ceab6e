#!/usr/bin/env bash
# The device check (<= 5 minutes on one CUDA GPU): fused and soft paths of every loss under float32/bf16/fp16 autocast
# against a float64 CPU reference, the loss test files on CUDA (torch.compile included), loss_speed.py --device cuda;
# writes benchmarks/results_gpu.md. Without a GPU: says so, runs the CPU half, exits 0. See benchmarks/device_check.py.
# Usage: bash benchmarks/device_check.sh   (PYTHON=/path/to/python to pick the interpreter; default .venv or python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
exec "$PYTHON" benchmarks/device_check.py "$@"
