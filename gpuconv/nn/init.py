"""Parameter initialisation, PyTorch's formulas, drawn from ``gpuconv.default_generator()``.

Draws are made on the host with NumPy in the parameter's dtype (float32 draws halve the time and
memory of a VGG), then moved to the current backend, so ``gpuconv.manual_seed(s)`` gives the same
initial parameters on every backend.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backend import get_backend
from ..random import default_generator

GAINS = {"linear": 1.0, "conv2d": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2.0)}


def fan_in_and_fan_out(shape: tuple[int, ...]) -> tuple[int, int]:
    """PyTorch's fans: (in_features * receptive field, out_features * receptive field)."""
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need at least 2 dimensions, got shape {shape}")
    receptive = int(np.prod(shape[2:], dtype=np.int64)) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity not in GAINS:
        raise ValueError(f"nonlinearity must be one of {sorted(GAINS) + ['leaky_relu']}, got {nonlinearity!r}")
    return GAINS[nonlinearity]


def _check_dtype(dtype: Any) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def uniform(shape: tuple[int, ...], bound: float, dtype: Any = np.float32) -> Any:
    """Uniform on [-bound, bound)."""
    dtype = _check_dtype(dtype)
    values = default_generator().random(shape, dtype=dtype)
    values *= dtype.type(2 * bound)
    values -= dtype.type(bound)
    return get_backend().asarray(values)


def normal(shape: tuple[int, ...], std: float, mean: float = 0.0, dtype: Any = np.float32) -> Any:
    """Normal with mean ``mean`` and standard deviation ``std``."""
    dtype = _check_dtype(dtype)
    values = default_generator().standard_normal(shape, dtype=dtype)
    values *= dtype.type(std)
    values += dtype.type(mean)
    return get_backend().asarray(values)


def kaiming_uniform(shape: tuple[int, ...], a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    dtype: Any = np.float32) -> Any:
    """``torch.nn.init.kaiming_uniform_``: bound gain * sqrt(3 / fan)."""
    fan = fan_in_and_fan_out(shape)[0 if mode == "fan_in" else 1]
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform(shape, bound, dtype)


def kaiming_normal(shape: tuple[int, ...], a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                   dtype: Any = np.float32) -> Any:
    """``torch.nn.init.kaiming_normal_``: std gain / sqrt(fan)."""
    fan = fan_in_and_fan_out(shape)[0 if mode == "fan_in" else 1]
    return normal(shape, calculate_gain(nonlinearity, a) / math.sqrt(fan), dtype=dtype)


def default_weight_and_bias(weight_shape: tuple[int, ...], bias: bool, dtype: Any) -> tuple[Any, Any]:
    """PyTorch's default for Conv2d and Linear: weight kaiming_uniform(a=sqrt(5)), i.e. uniform on
    +-1/sqrt(fan_in), and bias uniform on +-1/sqrt(fan_in)."""
    weight = kaiming_uniform(weight_shape, a=math.sqrt(5), dtype=dtype)
    if not bias:
        return weight, None
    fan_in = fan_in_and_fan_out(weight_shape)[0]
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return weight, uniform((weight_shape[0],), bound, dtype)
