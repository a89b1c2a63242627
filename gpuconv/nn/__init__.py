"""Layers and models: ``gpuconv.nn``, PyTorch's names, arguments and defaults.

Modules implement ``forward`` only; autograd derives the backward: ``loss = crit(model(x), t)``,
``loss.backward()`` fills each parameter's ``.grad``.
"""

from .activation import LeakyReLU, ReLU, Sigmoid, Tanh
from .container import Chain, ModuleDict, ModuleList, Sequential
from .conv import Conv2d
from .conv_transpose import ConvTranspose2d
from .fuse import fold_conv_bn, fuse_conv_bn
from .linear import Linear
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss, SmoothL1Loss
from .group_norm import GroupNorm
from .misc import Dropout, Dropout2d, Flatten, Identity
from .module import IncompatibleKeys, Module
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .parameter import Parameter
from .pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, GeM, MaxPool2d
from .resnet_blocks import BasicBlock, Bottleneck
from .upsample import Upsample
from .sync_batchnorm import SyncBatchNorm
from . import init, parallel

__all__ = [
    "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "AvgPool2d", "BasicBlock", "BatchNorm2d", "Bottleneck", "Chain",
    "Conv2d", "CrossEntropyLoss", "Dropout", "Flatten", "GeM", "Identity", "IncompatibleKeys", "LayerNorm",
    "LeakyReLU", "Linear", "MSELoss", "MaxPool2d", "Module", "Parameter", "ReLU", "Sequential", "Sigmoid", "Tanh",
    "fold_conv_bn", "fuse_conv_bn", "init",
]
__all__ += ["BCELoss", "BCEWithLogitsLoss", "BatchNorm1d", "ConvTranspose2d", "Dropout2d", "GroupNorm", "ModuleDict",
            "ModuleList", "NLLLoss", "SmoothL1Loss", "SyncBatchNorm", "Upsample", "parallel", "add"]
