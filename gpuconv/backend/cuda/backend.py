"""CudaBackend: the launch code shared by the cupy and emulated backends.

The two differ only in their array module and kernel loader, so every grid/block computation and
every argument list the GPU sees is exercised by the emulated tests on the CPU.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..base import Backend, Capabilities
from .conv_direct import ConvDirectKernels
from .conv_im2col import ConvIm2colKernels
from .conv_implicit_gemm import ConvImplicitGemmKernels
from .arith import ArithKernels
from .batchnorm import BatchNormKernels
from .elementwise import ElementwiseKernels
from .im2col import Im2colKernels
from .loss import LossKernels
from .pool import PoolKernels
from .softmax import SoftmaxKernels
from ..kernel_source import kernel_files

_DTYPE_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}

# A 1-D grid-stride launch uses at most this many blocks: enough to fill any current GPU many
# times over, and the kernels loop over the rest.
MAX_GRID_BLOCKS = 65535
BLOCK_1D = 256
MAX_CACHED_PLANS = 256  # launch plans kept per table (cleared when full); a network has a few dozen shapes


def dtype_suffix(dtype) -> str:
    try:
        return _DTYPE_SUFFIX[np.dtype(dtype)]
    except KeyError:
        raise TypeError(f"gpuconv kernels support float32 and float64, got {np.dtype(dtype).name}") from None


class CudaBackend(ConvDirectKernels, ConvIm2colKernels, ConvImplicitGemmKernels, Im2colKernels, PoolKernels,
                  BatchNormKernels, ElementwiseKernels, ArithKernels, LossKernels, SoftmaxKernels, Backend):
    """Launches kernels/*.cu; subclasses provide ``xp`` and ``load_module(filename, defines)``."""

    capabilities = Capabilities(kernels=True, fused_optimizer=True, conv_bias_epilogue=True, device_dropout=True)

    def __init__(self):
        self._modules: dict = {}
        self._kernels: dict = {}

    def load_module(self, filename: str, defines: dict | None):
        raise NotImplementedError

    def module(self, filename: str, defines: dict | None = None):
        key = (self.module_cache_key(), filename, tuple(sorted((defines or {}).items())))
        if key not in self._modules:
            self._modules[key] = self.load_module(filename, defines)
        return self._modules[key]

    def module_cache_key(self):
        """Extra key for the module cache (the device, on the GPU)."""
        return None

    def load_kernel_files(self) -> list[str]:
        names = [path.name for path in kernel_files()]
        for name in names:
            self.module(name)
        return names

    def kernel(self, filename: str, op: str, dtype, defines: dict | None = None):
        """The entry point ``<op>_<f32|f64>`` of ``filename``."""
        key = (self.module_cache_key(), filename, op, np.dtype(dtype), tuple(sorted((defines or {}).items())))
        if key not in self._kernels:
            self._kernels[key] = self.module(filename, defines).get_function(f"{op}_{dtype_suffix(dtype)}")
        return self._kernels[key]

    def cached_plan(self, table: str, key: tuple, make: Callable[[], Any], limit: int = MAX_CACHED_PLANS) -> Any:
        """``make()``'s launch plan for ``key``, computed once: the launchers keep their kernel, grid
        and scalar arguments per configuration, because computing them (NumPy scalars, grid sizes)
        costs more host time than the launch on small tensors. ``table`` names the instance attribute
        holding the plans (``*_plans``: gpuconv.backend.kernel_stubs swaps them); it is emptied when
        it holds ``limit`` plans. ``make`` may return None (a plan meaning "the fallback runs")."""
        plans = self.__dict__.setdefault(table, {})
        if key not in plans:
            if len(plans) >= limit:
                plans.clear()
            plans[key] = make()
        return plans[key]

    def launch_1d(self, kernel, n_items: int, args: tuple, block: int = BLOCK_1D, shared_mem: int = 0) -> None:
        """Launches a grid-stride kernel over ``n_items`` items (nothing to do when there are none)."""
        if n_items <= 0:
            return
        grid = min(-(-n_items // block), MAX_GRID_BLOCKS)
        kernel((grid,), (block,), args, shared_mem=shared_mem)

    def launch_reaching(self, kernel, grid, block, args: tuple, reachable: Callable[[], list]) -> None:
        """Launches ``kernel`` whose threads also reach the arrays ``reachable()`` lists, (name, array)
        pairs whose addresses are stored in its array arguments (a table of pointers). A GPU needs
        nothing more; the emulated backend's sanitizer checks those accesses like an argument's (it
        overrides this). A function, so that the list is made only where it is used."""
        kernel(grid, block, args)
