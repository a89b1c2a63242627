"""Stateless ops, forward and backward, written once against the backend interface.

``import gpuconv.functional as F``. Each op validates its arguments (a clear exception before any
kernel runs), does the shape arithmetic, and calls the current backend's primitives.
"""

from .conv import (choose_algo, conv2d, conv2d_backward, conv2d_workspace_bytes, get_workspace_limit,
                   set_workspace_limit)
from .im2col import col2im, col2im_backward, fold, im2col, im2col_backward, unfold

__all__ = ["choose_algo", "col2im", "conv2d", "conv2d_backward", "conv2d_workspace_bytes", "get_workspace_limit",
           "set_workspace_limit", "col2im_backward", "fold", "im2col", "im2col_backward",
           "unfold"]
