"""Stateless ops, forward and backward, written once against the backend interface.

``import gpuconv.functional as F``. Each op validates its arguments (a clear exception before any
kernel runs), does the shape arithmetic, and calls the current backend's primitives.
"""

from .im2col import col2im, col2im_backward, fold, im2col, im2col_backward, unfold

__all__ = ["col2im", "col2im_backward", "fold", "im2col", "im2col_backward", "unfold"]
