"""Argument checks that need more than argparse's types: whether an output file can be written and
whether a model's input batch fits in memory at all (each a one-line argument error, exit 2)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gpuconv.functional._memory import physical_memory_bytes


def unwritable(path: Path | None) -> str | None:
    """Why ``path`` (an --output or --plot file) cannot be written, or None (also for no path)."""
    if path is None:
        return None
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        return f"folder {folder} does not exist"
    if path.is_dir():
        return f"{path} is a folder"
    # access() reports a read-only file system (EROFS) too, for root as well.
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"cannot write {path} (no write permission or a read-only file system)"
    return None


def input_too_large(batch: int, image_size: int, dtype: np.dtype) -> str | None:
    """Why a (batch, 3, image_size, image_size) input cannot be made here, or None. The batch is
    drawn in float64 before the cast, and a model's activations are larger still: this catches
    the hopeless sizes before anything is allocated, the run itself the rest."""
    needed = batch * 3 * image_size * image_size * (8 + np.dtype(dtype).itemsize)
    available = physical_memory_bytes()
    if available is not None and needed > available:
        return (f"the input batch alone needs {needed / 2**30:.1f} GiB, more than this machine's "
                f"{available / 2**30:.1f} GiB of memory")
    return None
