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
from .grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from . import autograd
from .autograd import Tensor
from .autograd.factory import (arange, as_tensor, empty, empty_like, full, full_like, ones, ones_like, rand, rand_like,
                               randn, randn_like, tensor, zeros, zeros_like)
from .autograd.ops import (abs, amax, amin, argmax, argmin, cat, chunk, clamp, exp, expand, flatten, log, matmul, max,
                           maximum, mean, min, minimum, permute, reshape, rsqrt, sigmoid, split, sqrt, squeeze, stack,
                           sum, tanh, transpose, unsqueeze, var, where)
from .autograd.ops import relu
from .random import default_generator, manual_seed
from .checkpoint import load, save
from . import data, flags, memory, nn, optim, transforms
from .backend.memory_hooks import OutOfMemoryError
from .memory import summary
from .warmup import warmup

# gpuconv.backend is both the backend package and the context manager `with gpuconv.backend(name):`
backend = _backend_package

# Imported on first use (``gc.models.resnet18()`` works without ``import gpuconv.models``), so that
# ``import gpuconv`` stays light (train imports tqdm).
_LAZY_SUBMODULES = ("models", "train")


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'gpuconv' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))


__version__ = "0.1.0"

__all__ = [
    "Tensor", "abs", "amax", "amin", "arange", "argmax", "argmin", "as_tensor", "autograd", "cat", "chunk", "clamp",
    "empty", "empty_like", "exp", "expand", "flatten", "full", "full_like", "inference_mode", "log", "matmul", "max",
    "maximum", "mean", "min", "minimum", "ones", "ones_like", "permute", "rand", "rand_like", "randn", "randn_like",
    "relu", "reshape", "rsqrt", "set_grad_enabled", "sigmoid", "split", "sqrt", "squeeze", "stack", "sum", "tanh",
    "tensor", "transpose", "unsqueeze", "var", "where", "zeros", "zeros_like",
    "BackendUnavailableError", "KernelCompileError", "KernelLaunchError", "asarray", "backend",
    "data", "default_generator", "enable_grad", "flags", "get_array_module", "get_backend", "is_grad_enabled",
    "load", "manual_seed", "memory", "models", "nn", "no_grad", "optim", "OutOfMemoryError", "save", "summary",
    "to_numpy", "train", "transforms", "use", "warmup", "__version__",
]
