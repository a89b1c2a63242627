"""Optional libraries the command line uses when they are installed, each behind ONE check.

NOTE: when ``gpuconv.memory`` (the memory estimator) is on main everywhere, its check and its
"unavailable" branches can go.
"""

from __future__ import annotations

import importlib.util


def has_memory() -> bool:
    """``gpuconv.memory`` exists: ``estimate`` and ``measure`` of peak memory."""
    return importlib.util.find_spec("gpuconv.memory") is not None


def has_module(name: str) -> bool:
    """An optional library (torch, torchvision, matplotlib) is installed, without importing it."""
    return importlib.util.find_spec(name) is not None


MEMORY_UNAVAILABLE = "unavailable in this build of gpuconv (it has no gpuconv.memory estimator)"
