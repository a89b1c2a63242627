"""Where gpuconv keeps what it computes once per machine (compiled kernels, autotuner results)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_folder(env: str, name: str) -> Path:
    """``$<env>`` when set, else ``$XDG_CACHE_HOME/gpuconv/<name>``, else ``~/.cache/gpuconv/<name>``."""
    if os.environ.get(env):
        return Path(os.environ[env])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gpuconv" / name
