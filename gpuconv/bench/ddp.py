"""The ``ddp`` subcommand: data-parallel training of a small ResNet on 1, 2, ... MPI ranks.

Each rank count is one ``mpiexec -n R`` launch of :mod:`gpuconv.bench.ddp_worker` (the mpiexec
installed next to this Python, from the mpich wheel). A row per rank count: step times, images
per second over all ranks, the speed-up against the first rank count of the same run, and the
milliseconds per step spent in gradient all-reduces that backward did not hide (on the last rank
to reach them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .errors import BenchError

LAUNCH_TIMEOUT_S = 900


def mpiexec() -> Path:
    return Path(sys.executable).parent / "mpiexec"


def _launch(ranks: int, args: Any, backend: str) -> dict[str, Any]:
    command = [str(mpiexec()), "-n", str(ranks), sys.executable, "-m", "gpuconv.bench.ddp_worker",
               "--backend", backend, "--dtype", args.dtype, "--batch", str(args.batch),
               "--image-size", str(args.image_size), "--steps", str(args.repeats), "--warmup", str(args.warmup)]
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")) if p))
    # Each rank's BLAS gets its share of the cores (unless the user set it): R ranks with a thread
    # per core each oversubscribe the machine R times (2 ranks on 2 cores ran 3.6x slower than 1).
    share = str(max(1, (os.cpu_count() or 1) // ranks))
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        environment.setdefault(variable, share)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S, env=environment)
    except subprocess.TimeoutExpired:
        return {"status": "error", "note": f"{ranks} ranks did not finish within {LAUNCH_TIMEOUT_S} s"}
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": "error", "note": f"mpiexec -n {ranks} exited {result.returncode}: {tail}"}
    return {"status": "ok", **json.loads(lines[-1])}


def run(args: Any, be: Any, notes: list[str]) -> list[dict[str, Any]]:
    """One row per rank count in ``args.ranks``."""
    if not mpiexec().exists():
        raise BenchError(f"gpuconv-bench ddp needs MPI: no mpiexec next to {sys.executable}; install it with "
                         "pip install 'gpuconv[distributed]'")
    notes.append(f"small ResNet (16-32-64 planes, {args.image_size}x{args.image_size} images), {args.batch} images "
                 "per rank, SGD with momentum; allreduce_ms: the time per step backward spent starting and waiting for "
                 "gradient buckets on the last rank to get there (the others also wait for that rank: that is load "
                 "imbalance, not communication)")
    if not be.capabilities.gpu:
        notes.append(f"CPU: the ranks share this machine's {os.cpu_count()} cores, so more ranks split the same "
                     "cores (images/s measures the framework's overhead, not a scaling of hardware); each rank's "
                     "BLAS threads: cores / ranks unless OPENBLAS_NUM_THREADS / OMP_NUM_THREADS are set")
    rows: list[dict[str, Any]] = []
    baseline = None
    for ranks in args.ranks:
        outcome = _launch(ranks, args, be.name)
        row: dict[str, Any] = {"case": f"{ranks} rank{'s' if ranks > 1 else ''}", "ranks": ranks,
                               "status": outcome["status"]}
        if outcome["status"] != "ok":
            row["note"] = outcome["note"]
            rows.append(row)
            continue
        row.update(median_ms=outcome["median_ms"], best_ms=outcome["best_ms"],
                   images_per_s=outcome["images_per_s"], allreduce_ms=outcome["allreduce_ms"],
                   impl=outcome["engine"])
        baseline = baseline or outcome["images_per_s"]
        row["speedup"] = outcome["images_per_s"] / baseline
        rows.append(row)
    return rows
