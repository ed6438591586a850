#!/usr/bin/env bash
# One prepared check of every CUDA path, for a short GPU window: `scripts/gpu_check.sh OUTDIR`.
#
# Writes everything under OUTDIR (at most 8 files: what the device tool brings back):
#   summary.txt      versions, nvidia-smi, and one line per step with its exit status
#   gpu-tests.log    pytest -m gpu (tests/test_gpu.py): every architecture with --gpus 1,
#                    kill -9 + resume, bf16 and fp16, --compile, gan sample / gan eval
#   bench.json       benchmarks/run_benchmark.py --device cuda (tutorial loop vs gan train)
#   bench-compile.json  the same with --compile rows
#   cpu_vs_gpu.json  the largest difference of a few fp32 steps on CPU and GPU
#   bench.log        the benchmarks' console output
# Budget: at most 8 minutes on one GPU (each step has its own timeout). Without a GPU it says
# so in one line and exits 3 within seconds. Python: $GAN_PYTHON, else python3 (on the device
# machine the image's python3 holds torch, accelerate, typer, rich); the package is used from
# this checkout (PYTHONPATH), nothing is installed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/gpu_check.sh OUTDIR}
mkdir -p "$out"
py=${GAN_PYTHON:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
summary=$out/summary.txt

if ! "$py" -c 'import torch' 2>/dev/null; then
    echo "gpu_check: $py cannot import torch: set GAN_PYTHON to a Python that has it" | tee "$summary"
    exit 3
fi
if ! "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu_check: no CUDA GPU visible (torch.cuda.is_available() is false): nothing to check" | tee "$summary"
    exit 3
fi

step() {  # step NAME SECONDS COMMAND...: run with a timeout, record the status
    local name=$1 seconds=$2
    shift 2
    local tic=$SECONDS
    timeout --kill-after=10 "$seconds" "$@"
    local rc=$?
    echo "$name: exit $rc in $((SECONDS - tic)) s" | tee -a "$summary"
}

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    "$py" -c 'import torch, accelerate, platform; print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "accelerate", accelerate.__version__)'
} >"$summary" 2>&1

step tests 270 "$py" -m pytest -q -rA -m gpu tests/test_gpu.py -p no:cacheprovider >"$out/gpu-tests.log" 2>&1
step cpu_vs_gpu 60 sh -c "'$py' scripts/cpu_vs_gpu.py --steps 20 >'$out/cpu_vs_gpu.json'"
step bench 90 "$py" benchmarks/run_benchmark.py --device cuda --repeats 1 --images 60000 --wait-idle 0 \
    --out "$out/bench.json" >"$out/bench.log" 2>&1
step bench-compile 120 "$py" benchmarks/run_benchmark.py --device cuda --compile --precisions no,bf16 \
    --repeats 1 --images 60000 --wait-idle 0 --skip-peak --out "$out/bench-compile.json" >>"$out/bench.log" 2>&1
grep -E "passed|failed|error" "$out/gpu-tests.log" | tail -n 3 >>"$summary"
cat "$summary"
