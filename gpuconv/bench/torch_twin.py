"""A PyTorch twin of a gpuconv module tree, built from the tree itself (no torchvision).

``twin(torch, module)`` walks a gpuconv model (any zoo model, any Sequential of gpuconv layers) and
builds the ``torch.nn.Module`` that computes the same function, with the same child names, so that
``twin.load_state_dict(state)`` takes gpuconv's state dict as it is; :func:`copy_weights` does that.
The benchmark uses it to time PyTorch on exactly the architecture gpuconv runs, where torchvision is
missing or its binary wheel does not match the installed torch build.

Imported only where PyTorch is (the module itself imports no torch: ``torch`` is passed in).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

import numpy as np

from .. import nn
from ..backend import to_numpy


class UnsupportedLayer(TypeError):
    """A gpuconv module without a PyTorch twin here."""


def _pair_or_str(value: Any) -> Any:
    return value if isinstance(value, str) else tuple(value) if isinstance(value, (tuple, list)) else value


def _conv(torch: Any, m: nn.Conv2d) -> Any:
    return torch.nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride,
                           padding=_pair_or_str(m.padding), dilation=m.dilation, groups=m.groups,
                           bias=m.bias is not None, padding_mode=m.padding_mode)


def _conv_transpose(torch: Any, m: nn.ConvTranspose2d) -> Any:
    return torch.nn.ConvTranspose2d(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride,
                                    padding=m.padding, output_padding=m.output_padding, groups=m.groups,
                                    bias=m.bias is not None, dilation=m.dilation)


def _batch_norm(torch: Any, m: nn.BatchNorm2d) -> Any:
    kind = torch.nn.BatchNorm1d if isinstance(m, nn.BatchNorm1d) else torch.nn.BatchNorm2d
    return kind(m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
                track_running_stats=m.track_running_stats)


# Leaf layers: gpuconv class -> builder of the PyTorch layer. Subclasses come before their bases
# (BatchNorm1d derives from BatchNorm2d), since the first isinstance match wins.
_LEAVES: list[tuple[type, Callable[[Any, Any], Any]]] = [
    (nn.Conv2d, _conv),
    (nn.ConvTranspose2d, _conv_transpose),
    (nn.BatchNorm2d, _batch_norm),
    (nn.GroupNorm, lambda t, m: t.nn.GroupNorm(m.num_groups, m.num_channels, eps=m.eps, affine=m.affine)),
    (nn.LayerNorm, lambda t, m: t.nn.LayerNorm(m.normalized_shape, eps=m.eps,
                                               elementwise_affine=m.elementwise_affine,
                                               bias=m.bias is not None)),
    (nn.Linear, lambda t, m: t.nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)),
    (nn.ReLU, lambda t, m: t.nn.ReLU(inplace=m.inplace)),
    (nn.LeakyReLU, lambda t, m: t.nn.LeakyReLU(m.negative_slope, inplace=m.inplace)),
    (nn.Sigmoid, lambda t, m: t.nn.Sigmoid()),
    (nn.Tanh, lambda t, m: t.nn.Tanh()),
    (nn.MaxPool2d, lambda t, m: t.nn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation,
                                               ceil_mode=m.ceil_mode)),
    (nn.AvgPool2d, lambda t, m: t.nn.AvgPool2d(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode,
                                               count_include_pad=m.count_include_pad,
                                               divisor_override=m.divisor_override)),
    (nn.LPPool2d, lambda t, m: t.nn.LPPool2d(m.norm_type, m.kernel_size, m.stride, ceil_mode=m.ceil_mode)),
    (nn.AdaptiveAvgPool2d, lambda t, m: t.nn.AdaptiveAvgPool2d(m.output_size)),
    (nn.AdaptiveMaxPool2d, lambda t, m: t.nn.AdaptiveMaxPool2d(m.output_size)),
    (nn.Dropout2d, lambda t, m: t.nn.Dropout2d(m.p, inplace=m.inplace)),
    (nn.Dropout, lambda t, m: t.nn.Dropout(m.p, inplace=m.inplace)),
    (nn.Flatten, lambda t, m: t.nn.Flatten(m.start_dim, m.end_dim)),
    (nn.Identity, lambda t, m: t.nn.Identity()),
    (nn.Upsample, lambda t, m: t.nn.Upsample(m.size, m.scale_factor, m.mode, m.align_corners)),
]


def _chain_class(torch: Any) -> type:
    class Chain(torch.nn.Module):
        """gpuconv's Chain: named children, applied in a fixed order that may include modules
        that are not children (a Flatten where torchvision's forward calls ``torch.flatten``)."""

        def __init__(self, children: OrderedDict, order: list[Any]):
            super().__init__()
            for name, child in children.items():
                self.add_module(name, child)
            self._order = order  # child names (str) or unregistered modules

        def forward(self, x: Any) -> Any:
            for step in self._order:
                x = (self._modules[step] if isinstance(step, str) else step)(x)
            return x

    return Chain


def _residual_class(torch: Any) -> type:
    class Residual(torch.nn.Module):
        """torchvision's BasicBlock / Bottleneck: conv-bn pairs with ReLUs between them, plus the
        shortcut (``downsample`` or the identity), then a ReLU."""

        def __init__(self, children: OrderedDict, pairs: list[tuple[str, str]]):
            super().__init__()
            for name, child in children.items():
                self.add_module(name, child)
            self._pairs = pairs

        def forward(self, x: Any) -> Any:
            out = x
            for index, (conv, bn) in enumerate(self._pairs):
                out = self._modules[bn](self._modules[conv](out))
                if index < len(self._pairs) - 1:
                    out = torch.relu(out)
            shortcut = self._modules.get("downsample")
            identity = x if shortcut is None else shortcut(x)
            return torch.relu(out + identity)

    return Residual


def _named_children(module: Any) -> OrderedDict:
    return OrderedDict((name, child) for name, child in module._modules.items() if child is not None)


def twin(torch: Any, module: Any) -> Any:
    """The ``torch.nn.Module`` that computes what gpuconv ``module`` computes, with the same
    parameter and buffer names (weights are PyTorch's defaults: see :func:`copy_weights`).

    Raises:
        UnsupportedLayer: ``module`` holds a layer without a twin here (named with its path).
    """
    return _twin(torch, module, type(module).__name__)


def _twin(torch: Any, module: Any, path: str) -> Any:
    if isinstance(module, nn.Sequential):
        return torch.nn.Sequential(OrderedDict((name, _twin(torch, child, f"{path}.{name}"))
                                               for name, child in _named_children(module).items()))
    if isinstance(module, nn.Chain):
        children = OrderedDict((name, _twin(torch, child, f"{path}.{name}"))
                               for name, child in _named_children(module).items())
        by_id = {id(child): name for name, child in _named_children(module).items()}
        order = [by_id[id(step)] if id(step) in by_id else _twin(torch, step, f"{path}.<{type(step).__name__}>")
                 for step in module._chain()]
        return _chain_class(torch)(children, order)
    if isinstance(module, (nn.BasicBlock, nn.Bottleneck)):
        children = OrderedDict((name, _twin(torch, child, f"{path}.{name}"))
                               for name, child in _named_children(module).items())
        return _residual_class(torch)(children, list(module._fusable))
    for kind, build in _LEAVES:
        if isinstance(module, kind):
            return build(torch, module)
    raise UnsupportedLayer(f"no PyTorch twin for {path} ({type(module).__module__}.{type(module).__name__}); "
                           f"supported: Sequential, Chain, BasicBlock, Bottleneck, "
                           f"{', '.join(kind.__name__ for kind, _ in _LEAVES)}")


def copy_weights(torch: Any, source: Any, target: Any) -> None:
    """Loads gpuconv ``source``'s state dict into its twin ``target`` (strict: every name matches)."""
    state = OrderedDict()
    for name, value in source.state_dict().items():
        state[name] = torch.from_numpy(np.array(to_numpy(value), copy=True))
    target.load_state_dict(state, strict=True)


def build(torch: Any, module: Any, dtype: Any = np.float32) -> Any:
    """:func:`twin` of ``module`` in ``dtype``, with its weights copied, in the same train/eval mode."""
    model = twin(torch, module).to(dtype=getattr(torch, np.dtype(dtype).name))
    copy_weights(torch, module, model)
    model.train(module.training)
    return model
