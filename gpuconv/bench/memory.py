"""The ``memory`` subcommand: ``gpuconv.memory.estimate`` against the measured peak, per model and mode.

Without the estimator in this build of gpuconv the rows carry the measured peaks only, and the
header says why.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .model import MODES, check_input, estimate, measured_peak
from .progress import bar


def run(args: Any, be: Any, notes: list[str]) -> list[dict[str, Any]]:
    """One row per (model, mode): estimated and measured peak bytes and their ratio."""
    dtype = np.dtype(args.dtype)
    rows = []
    names = args.model or ["resnet18"]
    # Per model: the input check, then per mode a measured run and an estimate.
    with bar(len(names) * (1 + 2 * len(MODES)), "memory", "step", args.quiet) as progress:
        for name in names:
            progress.set_postfix_str(f"{name}: checking the input")
            check_input(name, args, dtype)
            progress.update()
            for mode in MODES:
                progress.set_postfix_str(f"{name} {mode}: measuring the peak")
                measured = measured_peak(name, args, dtype, mode, be)
                progress.update()
                progress.set_postfix_str(f"{name} {mode}: estimating")
                row: dict[str, Any] = {"case": name, "mode": mode, "status": "ok", "peak_measured_bytes": measured}
                estimated = estimate(name, args, dtype, mode, notes)
                progress.update()
                if estimated is not None:
                    row["peak_estimated_bytes"] = estimated
                    row["estimate_ratio"] = estimated / measured if measured else float("nan")
                rows.append(row)
    return rows
