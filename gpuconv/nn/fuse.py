"""Folding BatchNorm2d into the Conv2d before it, for inference."""

from __future__ import annotations

import copy

import numpy as np

from ..backend import get_backend, to_numpy
from .container import Sequential
from .conv import Conv2d
from .misc import Identity
from .module import Module
from .norm import BatchNorm2d
from .parameter import Parameter


def _foldable(conv: Module, bn: Module) -> bool:
    return (isinstance(conv, Conv2d) and isinstance(bn, BatchNorm2d) and bn.track_running_stats
            and conv.out_channels == bn.num_features)


def fold_conv_bn(conv: Conv2d, bn: BatchNorm2d) -> Conv2d:
    """A Conv2d computing bn(conv(x)) with bn in eval mode: weight * s and (bias - running_mean) * s + beta,
    s = gamma / sqrt(running_var + eps) per output channel (computed in float64)."""
    dtype = conv.weight.dtype
    var = to_numpy(bn.running_var).astype(np.float64)
    mean = to_numpy(bn.running_mean).astype(np.float64)
    gamma = to_numpy(bn.weight.data).astype(np.float64) if bn.weight is not None else np.ones_like(var)
    beta = to_numpy(bn.bias.data).astype(np.float64) if bn.bias is not None else np.zeros_like(var)
    scale = gamma / np.sqrt(var + bn.eps)
    weight = to_numpy(conv.weight.data).astype(np.float64) * scale[:, None, None, None]
    bias = to_numpy(conv.bias.data).astype(np.float64) if conv.bias is not None else np.zeros_like(var)
    be = get_backend()
    fused = copy.deepcopy(conv)
    fused.weight = Parameter(be.asarray(weight.astype(dtype)))
    fused.bias = Parameter(be.asarray(((bias - mean) * scale + beta).astype(dtype)))
    return fused


def _fuse_in_place(module: Module) -> None:
    for child in module.children():
        _fuse_in_place(child)
    if isinstance(module, Sequential):
        keys = list(module._modules)
        for first, second in zip(keys, keys[1:]):
            conv, bn = module._modules[first], module._modules[second]
            if _foldable(conv, bn):
                module._modules[first] = fold_conv_bn(conv, bn)
                module._modules[second] = Identity()
    for conv_name, bn_name in getattr(module, "_fusable", ()):
        conv, bn = module._modules.get(conv_name), module._modules.get(bn_name)
        if _foldable(conv, bn):
            module._modules[conv_name] = fold_conv_bn(conv, bn)
            module._modules[bn_name] = Identity()


def fuse_conv_bn(model: Module) -> Module:
    """An inference copy of ``model`` (in eval mode) where every Conv2d directly followed by a
    BatchNorm2d with running statistics (consecutive in a Sequential, or a conv1/bn1-style pair of
    a ResNet block or stem) is one Conv2d with the normalization folded in; the BatchNorm2d
    becomes an Identity. ``model`` itself is unchanged. Eval outputs match the unfused model's up
    to rounding."""
    fused = copy.deepcopy(model)  # parameters and buffers only: modules hold no activations
    fused.eval()
    _fuse_in_place(fused)
    return fused.eval()


__all__ = ["fold_conv_bn", "fuse_conv_bn"]
