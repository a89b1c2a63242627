"""gpuconv: a small convolutional-network framework for NVIDIA GPUs, built on CuPy, with its own
CUDA kernels, PyTorch's names and semantics, and a define-by-run autograd: ``gpuconv.Tensor`` wraps
one ``numpy.ndarray`` / ``cupy.ndarray`` (NCHW for image batches) and ``loss.backward()`` fills every
parameter's ``.grad``.

Backends (``gc.use(name)``, ``with gc.backend(name):``, or ``GPUCONV_BACKEND``):
    numpy     the CPU path: vectorized NumPy and BLAS; works without CuPy or a GPU
    cupy      gpuconv's CUDA kernels (kernels/*.cu) through CuPy, GEMMs through cuBLAS
    emulated  the same CUDA kernels compiled for the CPU with g++ (for tests; slow)
    auto      cupy when a GPU is usable, else numpy (the default)

Where to start:
    gpuconv.Tensor, gpuconv.autograd   tensors, backward, grad, Function, gradcheck, no_grad
    gpuconv.functional   stateless ops, each with its ``*_backward``: conv2d, max_pool2d,
                         batch_norm, cross_entropy, ... (``import gpuconv.functional as F``)
    gpuconv.nn           modules: Conv2d, BatchNorm2d, MaxPool2d, Linear, Sequential, losses
    gpuconv.optim        SGD, Adam, AdamW, ... and ``optim.lr_scheduler``
    gpuconv.models       LeNet-5, AlexNet, VGG, ResNet with torchvision's parameter names
    gpuconv.data, gpuconv.transforms, gpuconv.train.fit   loading, augmentation, training loop
    gpuconv.memory       estimate / summary / suggest_batch_size: memory before you run
    gpuconv.save / gpuconv.load                           checkpoints (.npz)
    gpuconv.flags        settings: conv_benchmark, allow_tf32, workspace_limit, ...

A first step::

    import numpy as np
    import gpuconv as gc
    from gpuconv import nn

    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    y = model(gc.asarray(np.random.rand(2, 3, 16, 16).astype(np.float32)))   # (2, 8), a Tensor
    y.sum().backward()                                                      # model[0].weight.grad
    gc.summary(model, (2, 3, 16, 16))                                        # layers, sizes, memory

The command line ``gpuconv-bench`` benchmarks every op against PyTorch (``gpuconv-bench list``).
"""

from . import backend
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
