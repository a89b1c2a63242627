#!/usr/bin/env bash
# Every GPU check the open issues ask for, as ONE command for a lent GPU (a session has about 15
# minutes of device time, one command at most 10). Run from the repository root, from source:
#
#     cp ../shared/tools/profile_step.py benchmarks/     # optional: the per-kernel step profile
#     OUT=/some/folder bash benchmarks/gpu_session.sh    # OUT: where the results go (the device tool sets it)
#
# Steps run most important first, each under its own time limit; a step that would not fit in what
# is left of GPU_SESSION_BUDGET_S (default 480 s) is skipped and says so, so the command ends in time
# and what ran still comes back. Results: $OUT/gpu-results.tar.gz (one file per step, named after it)
# and $OUT/session.log (everything printed). Commit the tables under benchmarks/results/ with the
# card's name in the file names.
set -uo pipefail
cd "$(dirname "$0")/.."

: "${OUT:?set OUT to the folder the results go to}"
BUDGET=${GPU_SESSION_BUDGET_S:-480}
# A dry run of every step's command line without a GPU: GPU_SESSION_BACKEND=numpy GPU_SESSION_BATCH=2.
BACKEND=${GPU_SESSION_BACKEND:-cupy}
BATCH=${GPU_SESSION_BATCH:-32}
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
RESULTS=$(mktemp -d)
START=$SECONDS
exec > >(tee "$OUT/session.log") 2>&1

# step NAME LIMIT_S COMMAND...: runs COMMAND with its output in $RESULTS/NAME.txt when LIMIT_S fits.
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - (SECONDS - START)))
    if ((limit > left)); then
        echo "== $name: SKIPPED (needs up to ${limit} s, ${left} s left of the budget)"
        return
    fi
    echo "== $name (limit ${limit} s, ${left} s left)"
    local t0=$SECONDS
    timeout --kill-after=5 "$limit" "$@" >"$RESULTS/$name.txt" 2>&1
    local rc=$?
    tail -n 40 "$RESULTS/$name.txt"
    echo "== $name: exit $rc after $((SECONDS - t0)) s"
}

# `timeout` runs programs, not shell functions: the bench is spelled out in each step.
BENCH=("$PY" -m gpuconv.bench)

step machine 20 bash -c "nvidia-smi; $PY -c 'import cupy, numpy, torch; print(cupy.__version__, numpy.__version__, torch.__version__)'"
# Issue 16: a first training step in a fresh process with empty caches, then the README's main job on
# cupy (first run, empty caches) and on numpy, by wall clock.
step first-step 90 env CUPY_CACHE_DIR="$(mktemp -d)" GPUCONV_KERNEL_CACHE="$(mktemp -d)" \
    "$PY" benchmarks/first_step.py --backend "$BACKEND"
step train-digits-cupy-cold 90 env CUPY_CACHE_DIR="$(mktemp -d)" GPUCONV_KERNEL_CACHE="$(mktemp -d)" \
    bash -c "time $PY examples/train_digits.py --backend "$BACKEND" --no-progress"
step train-digits-numpy 60 bash -c "time $PY examples/train_digits.py --backend numpy --no-progress"
step pytest-gpu 150 "$PY" -m pytest -m gpu -n 8 -q -p no:cacheprovider
# Issues 8 and 11: per layer and direction against cuDNN, FP32 then TF32.
# The JSON reports come back too; conv_auto_check.py renders each with the table of where auto is
# more than 10% slower than the fastest algorithm (what the heuristic in conv_algo.py should change).
step conv-resnet18-b32 150 "${BENCH[@]}" conv --suite resnet18 --backend "$BACKEND" --batch "$BATCH" --format json \
    --output "$RESULTS/conv-resnet18-b32.json"
step conv-resnet18-b32-md 20 "$PY" benchmarks/conv_auto_check.py "$RESULTS/conv-resnet18-b32.json"
step conv-resnet18-b32-tf32 120 "${BENCH[@]}" conv --suite resnet18 --backend "$BACKEND" --batch "$BATCH" --tf32 --format json \
    --output "$RESULTS/conv-resnet18-b32-tf32.json"
step conv-resnet18-b32-tf32-md 20 "$PY" benchmarks/conv_auto_check.py "$RESULTS/conv-resnet18-b32-tf32.json"
# Issue 9: the memory-bound families against a copy and PyTorch.
step pool-b32 60 "${BENCH[@]}" pool --backend "$BACKEND" --batch "$BATCH" --format md
step bn-b32 60 "${BENCH[@]}" bn --backend "$BACKEND" --batch "$BATCH" --format md
step elementwise-b32 60 "${BENCH[@]}" elementwise --backend "$BACKEND" --batch "$BATCH" --format md
# Issue 9 point 4: host time per call of conv2d, batch_norm, pooling (target: at most 30 us on cupy).
step host-overhead 45 "$PY" benchmarks/bench_host_overhead.py --backend "$BACKEND" --calls 300
# Issue 8 point 3: im2col/col2im v2, v3 and v4 side by side (the launcher's default is v4 by the
# emulator's profile only; this decides it).
step im2col-versions-b32 60 "$PY" benchmarks/gpu_im2col_versions.py --backend "$BACKEND" --batch "$BATCH"
step im2col-b32 60 "${BENCH[@]}" im2col --backend "$BACKEND" --batch "$BATCH" --format md
step model-resnet18-b32 90 "${BENCH[@]}" model --model resnet18 --backend "$BACKEND" --batch "$BATCH" --format md
if [[ -f benchmarks/profile_step.py ]]; then
    step profile-step-b32 60 "$PY" benchmarks/profile_step.py --batch "$BATCH"
fi
# Issue 10: the memory estimator against measured peaks on the GPU.
step memory-resnet18-b32 60 "${BENCH[@]}" memory --model resnet18 --backend "$BACKEND" --batch "$BATCH" --format md
# Issue 25: one rank of NCCL (NCCL refuses two ranks on one GPU): the collectives and DDP against one
# process (pytest -k nccl), then gpuconv-bench ddp's step time with the NCCL engine.
step ddp-nccl 90 "$PY" -m pytest -q -p no:cacheprovider -n0 -rs tests/test_distributed.py tests/test_ddp.py -k nccl
step ddp-bench-nccl 60 "${BENCH[@]}" ddp --ranks 1 --backend "$BACKEND" --batch "$BATCH" --format md
# Issue 11: compute-sanitizer over the implicit-GEMM tests.
step sanitizer-igemm 120 compute-sanitizer --tool memcheck --error-exitcode 1 \
    "$PY" -m pytest -m gpu -q -p no:cacheprovider -k implicit_gemm -x

tar -czf "$OUT/gpu-results.tar.gz" -C "$RESULTS" .
echo "== done in $((SECONDS - START)) s; results in gpu-results.tar.gz"
