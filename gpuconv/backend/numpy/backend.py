"""The numpy backend: vectorized NumPy, the CPU path users get without a GPU."""

from __future__ import annotations

import numpy as np

from ..base import Backend, Capabilities
from .arith import ArithOps
from .conv import NumpyConvOps
from .conv_direct import NumpyDirectConvOps
from .elementwise import ElementwiseOps
from .batchnorm import BatchNormOps
from .im2col import Im2colOps
from .loss import LossOps
from .pool import PoolOps
from .softmax import SoftmaxOps


class NumpyBackend(NumpyConvOps, NumpyDirectConvOps, Im2colOps, PoolOps, BatchNormOps, ElementwiseOps, ArithOps, LossOps, SoftmaxOps, Backend):
    name = "numpy"
    xp = np
    capabilities = Capabilities()
