"""linear (gpuconv/functional/linear.py), forward and backward, against the float64 references on every
backend; finite differences in float64; the argument checks."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from tests import reference as ref
from tests.helpers import assert_close, finite_difference_check


LINEAR_CASES = [((4, 3), 5, True), ((1, 1), 1, False), ((2, 3, 6), 4, True), ((7,), 2, True), ((2, 2, 2, 3), 3, False)]


@pytest.mark.parametrize("x_shape,out_features,with_bias", LINEAR_CASES)
def test_linear(backend, dtype, rng, x_shape, out_features, with_bias):
    in_features = x_shape[-1]
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((out_features, in_features)).astype(dtype)
    b = rng.standard_normal(out_features).astype(dtype) if with_bias else None
    dy = rng.standard_normal(x_shape[:-1] + (out_features,)).astype(dtype)
    g = gpuconv.asarray
    y = F.linear(g(x), g(w), None if b is None else g(b))
    assert y.dtype == dtype
    assert_close(y, ref.linear(x, w, b))
    dx, dw, db = F.linear_backward(g(dy), g(x), g(w))
    rdx, rdw, rdb = ref.linear_backward(dy, x, w)
    assert_close(dx, rdx)
    assert_close(dw, rdw)
    assert_close(db, rdb)
    assert F.linear_backward(g(dy), g(x), g(w), needs=(False, True, False))[0::2] == (None, None)


def test_linear_finite_differences(backend, rng):
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((2, 4)), rng.standard_normal(2)
    probe = rng.standard_normal((3, 2))

    def f(x, w, b):
        return float(np.sum(gpuconv.to_numpy(F.linear(*map(gpuconv.asarray, (x, w, b)))) * probe))

    dx, dw, db = F.linear_backward(gpuconv.asarray(probe), gpuconv.asarray(x), gpuconv.asarray(w))
    finite_difference_check(f, {"x": x, "w": w, "b": b},
                            {"x": gpuconv.to_numpy(dx), "w": gpuconv.to_numpy(dw), "b": gpuconv.to_numpy(db)}, rng=rng)


def test_linear_bad_inputs(backend):
    g = gpuconv.asarray
    x, w = g(np.ones((2, 3))), g(np.ones((4, 3)))
    with pytest.raises(ValueError, match="in_features"):
        F.linear(g(np.ones((2, 5))), w)
    with pytest.raises(ValueError, match="weight"):
        F.linear(x, g(np.ones(3)))
    with pytest.raises(ValueError, match="bias"):
        F.linear(x, w, g(np.ones(3)))
    with pytest.raises(TypeError, match="weight has dtype"):
        F.linear(x, g(np.ones((4, 3), dtype=np.float32)))
    with pytest.raises(ValueError, match="dy"):
        F.linear_backward(g(np.ones((2, 3))), x, w)
    with pytest.raises(ValueError, match="needs"):
        F.linear_backward(g(np.ones((2, 4))), x, w, needs=(True, True))
