"""Stateless ops, forward and backward, written once against the backend interface.

``import gpuconv.functional as F``. Each op validates its arguments (a clear exception before any
kernel runs), does the shape arithmetic, and calls the current backend's primitives.
"""

from .batchnorm import batch_norm, batch_norm_backward
from .im2col import col2im, col2im_backward, fold, im2col, im2col_backward, unfold
from .pool import (
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward,
    adaptive_max_pool2d,
    adaptive_max_pool2d_backward,
    avg_pool2d,
    avg_pool2d_backward,
    gem,
    gem_backward,
    max_pool2d,
    max_pool2d_backward,
)

__all__ = ["col2im", "col2im_backward", "fold", "im2col", "im2col_backward", "unfold"]
__all__ += ["adaptive_avg_pool2d", "adaptive_avg_pool2d_backward", "adaptive_max_pool2d",
            "adaptive_max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward", "gem", "gem_backward",
            "max_pool2d", "max_pool2d_backward"]
__all__ += ["batch_norm", "batch_norm_backward"]
