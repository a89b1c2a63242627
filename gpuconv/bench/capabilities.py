"""Optional libraries the command line uses when they are installed (torch, torchvision, matplotlib)."""

from __future__ import annotations

import importlib.util


def has_module(name: str) -> bool:
    """An optional library (torch, torchvision, matplotlib) is installed, without importing it."""
    return importlib.util.find_spec(name) is not None

