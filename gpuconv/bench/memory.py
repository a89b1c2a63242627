"""The ``memory`` subcommand: ``gpuconv.memory.estimate`` against the measured peak, per model and mode.

Without the estimator in this build of gpuconv the rows carry the measured peaks only, and the
header says why.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .model import MODES, check_input, estimate, measured_peak


def run(args: Any, be: Any, notes: list[str]) -> list[dict[str, Any]]:
    """One row per (model, mode): estimated and measured peak bytes and their ratio."""
    dtype = np.dtype(args.dtype)
    rows = []
    for name in args.model or ["resnet18"]:
        check_input(name, args, dtype)
        for mode in MODES:
            measured = measured_peak(name, args, dtype, mode, be)
            row: dict[str, Any] = {"case": name, "mode": mode, "status": "ok", "peak_measured_bytes": measured}
            estimated = estimate(name, args, dtype, mode, notes)
            if estimated is not None:
                row["peak_estimated_bytes"] = estimated
                row["estimate_ratio"] = estimated / measured if measured else float("nan")
            rows.append(row)
    return rows
