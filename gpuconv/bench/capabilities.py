"""Features that land in gpuconv in parallel with this command line, each behind ONE check.

NOTE: when ``gpuconv.flags`` (the autotuner and TF32 switch) and ``gpuconv.memory`` (the memory
estimator) are on main everywhere, these checks and their "unavailable" branches can go.
"""

from __future__ import annotations

import importlib.util

import gpuconv


def has_flags() -> bool:
    """``gpuconv.flags`` exists: TF32, the autotuner ("tuned" rows) and per-direction ``choose_algo``."""
    return hasattr(gpuconv, "flags")


def has_memory() -> bool:
    """``gpuconv.memory`` exists: ``estimate`` and ``measure`` of peak memory."""
    return importlib.util.find_spec("gpuconv.memory") is not None


def has_module(name: str) -> bool:
    """An optional library (torch, torchvision, matplotlib) is installed, without importing it."""
    return importlib.util.find_spec(name) is not None


FLAGS_UNAVAILABLE = "unavailable in this build of gpuconv (it has no gpuconv.flags)"
MEMORY_UNAVAILABLE = "unavailable in this build of gpuconv (it has no gpuconv.memory estimator)"
