"""The backend interface: array creation and movement, the capability flags, and where the
primitive ops are written down.

The contract has three parts:

- :class:`Backend` (below): arrays, GEMM and synchronization, which every backend has.
- The primitives, one ``typing.Protocol`` per op family, each declared at the top of the module that
  calls them (the family's consumer): ``PoolPrimitives`` in gpuconv/functional/pool.py,
  ``ConvPrimitives`` in gpuconv/functional/conv_primitives.py, ``OptimizerPrimitives`` in
  gpuconv/optim/optimizer.py, ... (every class named ``*Primitives`` in gpuconv/functional and
  gpuconv/optim). A new op is then declared beside the code that calls it, and the backend files implement it
  (gpuconv/backend/numpy/<family>.py, gpuconv/backend/cuda/<family>.py).
- :class:`Capabilities`: what a backend offers beyond the primitives every backend has (the optional
  Protocols) and the facts about it that callers may act on. Callers outside ``backend/`` read these
  flags; they never probe a backend with ``hasattr`` or compare its name.

tests/test_backend_contract.py checks every backend (the numpy, emulated and cupy classes, which need
no GPU to be inspected, and the memory estimator's shape-only backends) against every Protocol,
parameter by parameter.

``gpuconv.functional`` validates arguments and does shape arithmetic once, then calls these
primitives. A primitive may assume its arguments are validated, native to the backend, of a
supported dtype and (for kernels) C-contiguous where it says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .meta_array import MetaArray

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


#: The Protocols only some backends implement, each with the Capabilities flag that says which.
OPTIONAL_PROTOCOLS: dict[type, str] = {}


def needs_capability(flag: str):
    """Class decorator: the primitives Protocol it marks is implemented exactly by the backends
    whose ``capabilities.<flag>`` is True (the contract test holds both directions)."""
    def mark(protocol: type) -> type:
        if flag not in Capabilities.__dataclass_fields__:
            raise ValueError(f"no capability named {flag!r}")
        OPTIONAL_PROTOCOLS[protocol] = flag
        return protocol
    return mark


@dataclass(frozen=True)
class Capabilities:
    """What a backend offers beyond the primitives every backend has, and the facts about it that
    code outside ``backend/`` may act on."""

    #: Runs our kernels (kernels/*.cu: cupy on the GPU, emulated on the CPU); False: NumPy expressions,
    #: whose temporaries the memory checks count separately.
    kernels: bool = False
    #: Arrays live in GPU memory, allocated through CuPy's pool: a request is checked against the
    #: device's free memory, and PyTorch comparisons run on ``cuda``.
    gpu: bool = False
    #: Wall time measures the computation (False on the emulator, where it measures the emulation).
    timed: bool = True
    #: ``OptimizerPrimitives.multi_tensor_step`` (gpuconv/optim/optimizer.py): one launch updates
    #: a whole group of parameters.
    fused_optimizer: bool = False
    #: ``conv2d_bias_epilogue`` (gpuconv/functional/conv_primitives.py's ``BiasEpiloguePrimitives``).
    conv_bias_epilogue: bool = False
    #: ``dropout_device`` (gpuconv/functional/dropout.py's ``DeviceDropoutPrimitives``): the mask is
    #: drawn on the device from a seed instead of on the host.
    device_dropout: bool = False
    #: Host bytes a primitive's kernel launches hold in Python objects while it runs (the emulator's
    #: ctypes argument records and address tables); the memory estimator adds them per primitive.
    launch_host_bytes: int = 0


class Backend:
    """Base class of the numpy, cupy and emulated backends."""

    name: str = "?"
    xp: ModuleType = np
    capabilities: Capabilities = Capabilities()
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

    def activate(self) -> Any:
        """Makes this backend's device current; returns what :meth:`restore` puts back (nothing on
        the CPU)."""
        return None

    def restore(self, previous: Any) -> None:
        """Undoes :meth:`activate` with what it returned."""

    def load_kernel_files(self) -> list[str]:
        """Loads (or compiles) every kernels/*.cu file this backend runs; returns their names.
        The numpy backend runs none."""
        return []

    # ---- GEMM -----------------------------------------------------------------------------------
    def conv_heuristic(self, g: Any, direction: str) -> str | None:
        """This backend's own choice for ``algo="auto"`` in ``direction`` for ConvGeometry ``g``, or
        None to follow :func:`gpuconv.functional.conv_algo.heuristic` (the GPU's measured rule)."""
        return None

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
