"""TF32 for the convolution GEMMs (``gpuconv.flags.allow_tf32``), per call.

cupy: CuPy reads ``CUPY_TF32`` only at import, so the switch is cuBLAS's math mode on CuPy's
handle for the current device and thread: ``setMathMode(handle, CUBLAS_TF32_TENSOR_OP_MATH)``
(3; CuPy does not export the name) around the GEMMs, then the previous mode back. It switches
``cupy.matmul``, 2-D and batched, to TF32 tensor cores (checked on an H100, CUDA-NOTES.md).

emulated: the GEMM inputs are rounded to TF32 (10 mantissa bits, round to nearest with ties away
from zero, as the hardware's ``cvt.rna.tf32.f32`` does) and multiplied in float32, so the
tolerances of TF32 results are tested without a GPU. float64 GEMMs never use TF32.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

CUBLAS_TF32_TENSOR_OP_MATH = 3
_DROPPED_BITS = 13  # float32 has 23 mantissa bits, TF32 keeps 10


def round_to_tf32(a: np.ndarray) -> np.ndarray:
    """A float32 copy of ``a`` rounded to TF32 precision (NaN and infinity unchanged)."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    finite = (bits & 0x7F800000) != 0x7F800000
    # Adding half of the dropped range to the magnitude bits rounds ties away from zero; a carry
    # into the exponent is the correct rounding up to the next binade (or to infinity).
    rounded = (bits + np.uint32(1 << (_DROPPED_BITS - 1))) & np.uint32(~((1 << _DROPPED_BITS) - 1) & 0xFFFFFFFF)
    return np.where(finite, rounded, bits).view(np.float32)


@contextlib.contextmanager
def cublas_tf32(xp) -> Iterator[None]:
    """cuBLAS calls on CuPy's handle use TF32 tensor cores inside the block."""
    from cupy_backends.cuda.libs import cublas

    handle = xp.cuda.device.get_cublas_handle()
    previous = cublas.getMathMode(handle)
    cublas.setMathMode(handle, CUBLAS_TF32_TENSOR_OP_MATH)
    try:
        yield
    finally:
        cublas.setMathMode(handle, previous)
