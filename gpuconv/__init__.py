"""gpuconv: a small convolutional-network framework for NVIDIA GPUs, built on CuPy.

``import gpuconv as gc; import gpuconv.functional as F``. Works without CuPy or a GPU: the numpy
backend computes on the CPU, and the emulated backend runs gpuconv's own CUDA kernels on the CPU.
"""

from . import backend as _backend_package
from .backend import (
    BackendUnavailableError,
    KernelCompileError,
    KernelLaunchError,
    asarray,
    get_array_module,
    get_backend,
    to_numpy,
    use,
)
from .grad_mode import enable_grad, is_grad_enabled, no_grad
from .random import default_generator, manual_seed
from .checkpoint import load, save
from . import data, nn, optim
from . import memory
from .backend.memory_hooks import OutOfMemoryError
from .memory import summary

# gpuconv.backend is both the backend package and the context manager `with gpuconv.backend(name):`
backend = _backend_package

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError", "KernelCompileError", "KernelLaunchError", "asarray", "backend",
    "data", "default_generator", "enable_grad", "get_array_module", "get_backend", "is_grad_enabled", "load",
    "manual_seed", "memory", "nn", "no_grad", "optim", "OutOfMemoryError", "save", "summary", "to_numpy", "use",
    "__version__",
]
