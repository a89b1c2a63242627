"""kernels/softmax.cu through F.softmax / F.log_softmax and their backwards, against the float64
references on every backend, over random shapes and axes: odd sizes, size 1 and 0 along the axis,
non-contiguous inputs, NaN rows and huge values."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from tests import reference as ref
from tests.helpers import assert_close


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_random_shapes_and_axes(backend, dtype, seed, log):
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(1, 7, int(rng.integers(1, 5))))
    dim = int(rng.integers(-len(shape), len(shape)))
    x = (rng.standard_normal(shape) * rng.uniform(0.5, 10)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    fwd, bwd = (F.log_softmax, F.log_softmax_backward) if log else (F.softmax, F.softmax_backward)
    y = fwd(gpuconv.asarray(x), dim)
    assert y.dtype == dtype and y.shape == shape
    assert_close(y, getattr(ref, fwd.__name__)(x, dim))
    assert_close(bwd(gpuconv.asarray(dy), y, dim), getattr(ref, bwd.__name__)(dy, x, dim))


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_transposed_input(backend, dtype, rng, log):
    x = rng.standard_normal((5, 7)).astype(dtype)
    fwd = F.log_softmax if log else F.softmax
    y = fwd(gpuconv.asarray(np.ascontiguousarray(x.T)).T, 1)
    assert_close(y, getattr(ref, fwd.__name__)(x, 1))


def test_nan_stays_in_its_row_and_empty_axes(backend, dtype):
    x = np.array([[0.0, np.nan, 1.0], [1e4, -1e4, 0.0]], dtype)
    for fwd in (F.softmax, F.log_softmax):
        y = gpuconv.to_numpy(fwd(gpuconv.asarray(x), 1))
        assert np.isnan(y[0]).all() and np.isfinite(y[1]).all()
        assert fwd(gpuconv.asarray(np.zeros((3, 0), dtype)), 1).shape == (3, 0)
        assert fwd(gpuconv.asarray(np.zeros((0, 4), dtype)), 1).shape == (0, 4)
