"""Stateless ops, forward and backward, written once against the backend interface.

``import gpuconv.functional as F``. Each op validates its arguments (a clear exception before any
kernel runs), does the shape arithmetic, and calls the current backend's primitives.
"""

from .conv import (ALGOS, DIRECTIONS, choose_algo, conv2d, conv2d_backward, conv2d_workspace_bytes, conv_geometry,
                   get_workspace_limit, set_workspace_limit)
from .activation import (
    leaky_relu,
    leaky_relu_backward,
    log_softmax,
    log_softmax_backward,
    relu,
    relu_backward,
    sigmoid,
    sigmoid_backward,
    softmax,
    softmax_backward,
    tanh,
    tanh_backward,
)
from .arith import add
from .dropout import dropout, dropout_backward
from .im2col import col2im, col2im_backward, fold, im2col, im2col_backward, unfold
from .linear import linear, linear_backward
from .loss import cross_entropy, cross_entropy_backward, mse_loss, mse_loss_backward
from .loss import (binary_cross_entropy, binary_cross_entropy_backward, binary_cross_entropy_with_logits,
                   binary_cross_entropy_with_logits_backward, nll_loss, nll_loss_backward, smooth_l1_loss,
                   smooth_l1_loss_backward)
from .normalization import layer_norm, layer_norm_backward
from .batchnorm import batch_norm, batch_norm_backward
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

__all__ = [
    "ALGOS", "DIRECTIONS", "choose_algo", "col2im", "col2im_backward", "conv2d", "conv2d_backward", "conv2d_workspace_bytes",
    "conv_geometry", "cross_entropy", "cross_entropy_backward", "dropout", "dropout_backward", "fold",
    "get_workspace_limit", "im2col", "im2col_backward", "layer_norm", "layer_norm_backward", "leaky_relu",
    "leaky_relu_backward", "linear", "linear_backward", "log_softmax", "log_softmax_backward", "mse_loss",
    "mse_loss_backward", "relu", "relu_backward", "set_workspace_limit", "sigmoid", "sigmoid_backward", "softmax",
    "softmax_backward", "tanh", "tanh_backward", "unfold",
]
__all__ += ["adaptive_avg_pool2d", "adaptive_avg_pool2d_backward", "adaptive_max_pool2d",
            "adaptive_max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward", "gem", "gem_backward",
            "max_pool2d", "max_pool2d_backward"]
__all__ += ["add", "batch_norm", "batch_norm_backward"]
__all__ += ["binary_cross_entropy", "binary_cross_entropy_backward", "binary_cross_entropy_with_logits",
            "binary_cross_entropy_with_logits_backward", "nll_loss", "nll_loss_backward", "smooth_l1_loss",
            "smooth_l1_loss_backward"]

from .channel_dropout import dropout2d, dropout2d_backward
from .conv_transpose import (conv_transpose2d, conv_transpose2d_backward, conv_transpose2d_output_shape,
                             conv_transpose2d_workspace_bytes)
from .group_norm import group_norm, group_norm_backward
from .pad import pad, pad_backward
from .interpolate import (check_interpolate_args, interpolate, interpolate_backward, interpolate_geometry,
                          interpolate_workspace_bytes)

__all__ += ["conv_transpose2d", "conv_transpose2d_backward", "conv_transpose2d_output_shape",
            "conv_transpose2d_workspace_bytes", "dropout2d", "dropout2d_backward", "group_norm",
            "group_norm_backward", "check_interpolate_args", "interpolate", "interpolate_backward", "interpolate_geometry",
            "interpolate_workspace_bytes"]
__all__ += ["pad", "pad_backward"]

# CuPy's out-of-memory error inside any public op becomes gpuconv.OutOfMemoryError naming it: one
# wrapper here rather than a try in every op. Shape helpers and settings allocate nothing.
from ._memory import translate_out_of_memory as _translate_out_of_memory

_NOT_OPS = {"ALGOS", "DIRECTIONS", "check_interpolate_args", "choose_algo", "conv2d_workspace_bytes", "conv_geometry",
            "conv_transpose2d_output_shape", "conv_transpose2d_workspace_bytes", "get_workspace_limit",
            "interpolate_geometry", "interpolate_workspace_bytes", "set_workspace_limit"}
# Every differentiable op takes Tensors too (then it records the autograd graph): see _dispatch.
from ._dispatch import differentiable as _differentiable

DIFFERENTIABLE = ("adaptive_avg_pool2d", "adaptive_max_pool2d", "add", "avg_pool2d", "batch_norm",
                  "binary_cross_entropy", "binary_cross_entropy_with_logits", "col2im", "conv2d", "conv_transpose2d",
                  "cross_entropy", "dropout", "dropout2d", "fold", "gem", "group_norm", "im2col", "interpolate",
                  "layer_norm", "leaky_relu", "linear", "log_softmax", "max_pool2d", "mse_loss", "nll_loss", "pad", "relu",
                  "sigmoid", "smooth_l1_loss", "softmax", "tanh", "unfold")
for _name in __all__:
    if _name not in _NOT_OPS:
        _op = globals()[_name]
        if _name in DIFFERENTIABLE:
            _op = _differentiable(_op, _name)
        globals()[_name] = _translate_out_of_memory(_op)
del _name, _op
