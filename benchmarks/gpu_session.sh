#!/usr/bin/env bash
# A GPU session's benchmark in one device call. The device machine has torch and transformers but no
# network, so TRL and the packages it (and reinforge) lack there travel as wheels fetched beforehand.
#
#   benchmarks/gpu_session.sh fetch     # here, with network: wheels into .whl/ (ignored by git)
#   benchmarks/gpu_session.sh run       # on the device (carry: [".whl"]): JSON lines and a profile in $OUT
#
# `run` takes SIDES and STEPS from the environment (defaults: every side make bench-gpu runs, 3 steps) and
# skips the profile when PROFILE=0.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
fetch)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 pydantic==2.14.4 \
    pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  ls .whl
  ;;
run)
  out="${OUT:-/tmp/gpu-out}"
  mkdir -p "$out"
  if compgen -G ".whl/*.whl" >/dev/null; then
    # a wheel that does not fit this Python costs only the sides that need it (TRL's records an error)
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl \
      || echo "gpu_session: the wheels in .whl did not install (made for Python 3.12)"
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  fi
  { nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv || echo "no nvidia-smi"; } | tee "$out/gpu.txt"
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' \
    | tee -a "$out/gpu.txt"
  python3 -m benchmarks.bench_grpo_gpu --steps "${STEPS:-3}" \
    --sides "${SIDES:-reinforge,reinforge_packed,reinforge_keep_logits,trl}" 2>"$out/bench_stderr.txt" \
    | tee "$out/bench_gpu.jsonl"
  if [ "${PROFILE:-1}" != 0 ]; then
    python3 -m benchmarks.bench_grpo_gpu --profile >"$out/profile.txt" 2>&1 || echo "profile failed (see profile.txt)"
  fi
  ;;
*)
  echo "usage: $0 fetch|run" >&2
  exit 2
  ;;
esac
