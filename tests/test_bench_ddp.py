"""``gpuconv-bench ddp``: 1 and 2 MPI ranks of a small ResNet; the JSON matches the schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gpuconv.bench.schema import validate

from .mpi_launch import require_mpi

REPO = Path(__file__).resolve().parent.parent


def test_ddp_reports_images_per_second_and_allreduce_time_for_1_and_2_ranks():
    require_mpi()
    env = {k: v for k, v in os.environ.items() if k != "GPUCONV_BACKEND"}
    result = subprocess.run([sys.executable, "-m", "gpuconv.bench", "ddp", "--backend", "numpy", "--ranks", "1,2",
                             "--batch", "2", "--image-size", "8", "--repeats", "2", "--warmup", "1", "--format", "json"],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert validate(report) == []
    rows = report["rows"]
    assert [(r["case"], r["ranks"], r["status"], r["impl"]) for r in rows] == [("1 rank", 1, "ok", "mpi"),
                                                                              ("2 ranks", 2, "ok", "mpi")]
    for row in rows:
        assert row["images_per_s"] > 0 and row["best_ms"] <= row["median_ms"] and row["allreduce_ms"] >= 0
    assert rows[0]["speedup"] == 1
    assert abs(rows[1]["speedup"] - rows[1]["images_per_s"] / rows[0]["images_per_s"]) < 1e-12


def test_ddp_rejects_bad_rank_counts():
    result = subprocess.run([sys.executable, "-m", "gpuconv.bench", "ddp", "--ranks", "0,2"], capture_output=True,
                            text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2
    assert "expected comma-separated positive ints such as 1,2, got '0,2'" in result.stderr
