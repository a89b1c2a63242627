"""The backend interface: array creation and movement, and the primitive ops every backend provides.

``gpuconv.functional`` validates arguments and does shape arithmetic once, then calls these
primitives. A primitive may assume its arguments are validated, native to the backend, of a
supported dtype and (for kernels) C-contiguous where it says so.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from .meta_array import MetaArray

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Backend:
    """Base class of the numpy, cupy and emulated backends."""

    name: str = "?"
    xp: ModuleType = np
    #: Whether gpuconv.functional checks each request against the memory there is before allocating
    #: (False for the memory estimator's shape-only backend, whose arrays take no memory).
    checks_requests: bool = True

    # ---- arrays ---------------------------------------------------------------------------------
    def is_native(self, a: Any) -> bool:
        """Whether ``a`` is an array this backend computes on without a copy."""
        return isinstance(a, self.xp.ndarray)

    def check_native(self, argument: str, a: Any) -> None:
        """TypeError naming ``argument`` and both backends when ``a`` belongs to another backend.

        gpuconv never copies between host and device behind the user's back.
        """
        if self.is_native(a):
            return
        kind = _array_kind(a)
        if kind is None:
            raise TypeError(f"argument '{argument}' must be an array of the current backend ({self.name}), "
                            f"got {type(a).__module__}.{type(a).__name__}")
        raise TypeError(f"argument '{argument}' is a {kind} array but the current backend is {self.name}; "
                        f"move it explicitly with gpuconv.asarray({argument}) (gpuconv never copies between "
                        "host and device implicitly)")

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        """``a`` as an array of this backend (a host/device copy when it lives elsewhere)."""
        if _array_kind(a) == "cupy" and self.xp is np:
            a = a.get()
        return self.xp.asarray(a, dtype=dtype)

    def to_numpy(self, a: Any) -> np.ndarray:
        return np.asarray(a)

    def empty(self, shape, dtype) -> Any:
        return self.xp.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype) -> Any:
        return self.xp.zeros(shape, dtype=dtype)

    def synchronize(self) -> None:
        """Waits for queued device work (nothing to wait for on the CPU)."""

    def load_kernel_files(self) -> list[str]:
        """Loads (or compiles) every kernels/*.cu file this backend runs; returns their names.
        The numpy backend runs none."""
        return []

    # ---- GEMM -----------------------------------------------------------------------------------
    def matmul(self, a: Any, b: Any, out: Any = None) -> Any:
        """2-D matrix product (BLAS on the CPU, cuBLAS on the GPU)."""
        return self.xp.matmul(a, b, out=out)

    def __repr__(self) -> str:
        return f"<gpuconv backend {self.name}>"


def _array_kind(a: Any) -> str | None:
    if isinstance(a, np.ndarray):
        return "numpy"
    if isinstance(a, MetaArray):
        return "meta"
    module = type(a).__module__
    if module.startswith("cupy") and hasattr(a, "__cuda_array_interface__"):
        return "cupy"
    return None


def array_kind(a: Any) -> str | None:
    """``"numpy"``, ``"cupy"``, ``"meta"`` (the memory estimator's shape-only arrays) or ``None`` for
    something that is not an array."""
    return _array_kind(a)
