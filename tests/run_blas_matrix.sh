#!/usr/bin/env bash
# Runs the test suite once per BLAS setting that changes how float sums are ordered: OpenBLAS with
# 1 and 2 threads, each with OPENBLAS_CORETYPE unset (the kernels OpenBLAS picks for this CPU) and
# set (default Prescott, its plain SSE3 kernels: another blocking, no FMA). Float tolerances derive
# from the length and magnitude of each sum (tests/helpers.py: sum_tolerance), so every setting
# must pass.
#
# Usage: tests/run_blas_matrix.sh [pytest arguments...]   (default: the whole suite, -n 2)
# Environment: PYTHON (default: python), BLAS_MATRIX_CORETYPE (default: Prescott).
set -u
python=${PYTHON:-python}
coretype=${BLAS_MATRIX_CORETYPE:-Prescott}
if [ $# -eq 0 ]; then
    set -- -n 2 -q
fi
cd "$(dirname "$0")/.." || exit 2

failed=()
for threads in 1 2; do
    for core in "" "$coretype"; do
        label="OPENBLAS_NUM_THREADS=$threads OPENBLAS_CORETYPE=${core:-unset}"
        echo "=== $label" >&2
        if [ -n "$core" ]; then
            OPENBLAS_NUM_THREADS=$threads OPENBLAS_CORETYPE=$core "$python" -m pytest "$@" || failed+=("$label")
        else
            env -u OPENBLAS_CORETYPE OPENBLAS_NUM_THREADS=$threads "$python" -m pytest "$@" || failed+=("$label")
        fi
    done
done
if [ ${#failed[@]} -gt 0 ]; then
    printf 'FAILED under: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "passed under all four BLAS settings" >&2
