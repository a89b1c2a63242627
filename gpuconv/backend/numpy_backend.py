"""The numpy backend: vectorized NumPy, the CPU path users get without a GPU."""

from __future__ import annotations

import numpy as np

from .base import Backend
from .numpy_ops.arith import ArithOps
from .numpy_ops.conv import NumpyConvOps
from .numpy_ops.conv_direct import NumpyDirectConvOps
from .numpy_ops.elementwise import ElementwiseOps
from .numpy_ops.batchnorm import BatchNormOps
from .numpy_ops.im2col import Im2colOps
from .numpy_ops.loss import LossOps
from .numpy_ops.pool import PoolOps
from .numpy_ops.softmax import SoftmaxOps


class NumpyBackend(NumpyConvOps, NumpyDirectConvOps, Im2colOps, PoolOps, BatchNormOps, ElementwiseOps, ArithOps, LossOps, SoftmaxOps, Backend):
    name = "numpy"
    xp = np
