"""Layer normalization (gpuconv/functional/normalization.py), forward and backward, against the
float64 references on every backend; float32 rows whose mean dwarfs their spread (the statistics
must not depend on how the backend sums: CuPy's GPU reductions lost 1e-3 at mean 1e4 where NumPy's
did not); finite differences in float64; the argument checks."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from tests import reference as ref
from tests.helpers import assert_close, finite_difference_check

LN_CASES = [((4, 6), (6,), True), ((2, 3, 4), (3, 4), True), ((2, 3, 4), 4, False), ((5, 1), (1,), True),
            ((1, 2, 3, 3), (2, 3, 3), True), ((7,), (7,), False)]


@pytest.mark.parametrize("x_shape,normalized_shape,affine", LN_CASES)
def test_layer_norm(backend, dtype, rng, x_shape, normalized_shape, affine):
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
    x = (rng.standard_normal(x_shape) * 2 + rng.uniform(-3, 3)).astype(dtype)
    w = rng.standard_normal(shape).astype(dtype) if affine else None
    b = rng.standard_normal(shape).astype(dtype) if affine else None
    dy = rng.standard_normal(x_shape).astype(dtype)
    g = gpuconv.asarray
    eps = 1e-5
    y, mean, invstd = F.layer_norm(g(x), normalized_shape, None if w is None else g(w), None if b is None else g(b),
                                   eps, return_stats=True)
    ry, rmean, rinvstd = ref.layer_norm(x, shape, w, b, eps)
    assert y.dtype == dtype and mean.shape == x_shape[:len(x_shape) - len(shape)] + (1,) * len(shape)
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else {}
    assert_close(y, ry, **tol)
    assert_close(mean.reshape(-1), rmean, **tol)
    assert_close(invstd.reshape(-1), rinvstd, **tol)
    dx, dw, db = F.layer_norm_backward(g(dy), g(x), normalized_shape, None if w is None else g(w), mean, invstd)
    rdx, rdw, rdb = ref.layer_norm_backward(dy, x, shape, w, eps)
    assert_close(dx, rdx, **tol)
    assert_close(db, rdb, **tol)
    if affine:
        assert_close(dw, rdw, **tol)
    else:
        assert dw is None


def test_layer_norm_large_mean_float32(backend):
    # Two-pass statistics: a row with mean 1e4 and std 1 still normalizes accurately in float32.
    x = (np.random.default_rng(5).standard_normal((4, 256)) + 1e4).astype(np.float32)
    y = gpuconv.to_numpy(F.layer_norm(gpuconv.asarray(x), 256))
    ry, _, _ = ref.layer_norm(x, (256,))
    np.testing.assert_allclose(y, ry, atol=1e-3)


@pytest.mark.parametrize("offset", [1e4, 3e5, -2e6])
def test_layer_norm_float32_rows_with_huge_means(backend, rng, offset):
    # At 3e5 a float32 mean is only good to 0.016: normalizing by a rounded mean would be off by
    # that much; centering on a sample of the row keeps the error at float32 rounding of O(1) data.
    x = (rng.standard_normal((5, 300)) + offset).astype(np.float32)
    weight, bias = rng.standard_normal(300).astype(np.float32), rng.standard_normal(300).astype(np.float32)
    y = gpuconv.to_numpy(F.layer_norm(gpuconv.asarray(x), 300, gpuconv.asarray(weight), gpuconv.asarray(bias)))
    expected, _, _ = ref.layer_norm(x, (300,), weight, bias)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=2e-5)



def test_layer_norm_finite_differences(backend, rng):
    x, w, b = rng.standard_normal((3, 2, 4)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    probe = rng.standard_normal((3, 2, 4))

    def f(x, w, b):
        y = F.layer_norm(gpuconv.asarray(x), (2, 4), gpuconv.asarray(w), gpuconv.asarray(b))
        return float(np.sum(gpuconv.to_numpy(y) * probe))

    _, mean, invstd = F.layer_norm(gpuconv.asarray(x), (2, 4), gpuconv.asarray(w), gpuconv.asarray(b),
                                   return_stats=True)
    grads = F.layer_norm_backward(gpuconv.asarray(probe), gpuconv.asarray(x), (2, 4), gpuconv.asarray(w), mean, invstd)
    finite_difference_check(f, {"x": x, "w": w, "b": b}, dict(zip("xwb", map(gpuconv.to_numpy, grads), strict=True)), rng=rng)


def test_layer_norm_bad_inputs(backend):
    g = gpuconv.asarray
    x = g(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="normalized_shape"):
        F.layer_norm(x, (3,))
    with pytest.raises(ValueError, match="normalized_shape"):  # an int of a wrong value: ValueError
        F.layer_norm(x, (0,))
    with pytest.raises(ValueError, match="weight"):
        F.layer_norm(x, (4,), g(np.ones(3)))
    with pytest.raises(TypeError, match="bias has dtype"):
        F.layer_norm(x, (4,), None, g(np.ones(4, dtype=np.float32)))
    with pytest.raises(ValueError, match="eps"):
        F.layer_norm(x, 4, eps=-1.0)
    _, mean, invstd = F.layer_norm(x, 4, return_stats=True)
    with pytest.raises(ValueError, match="save_mean"):
        F.layer_norm_backward(x, x, 4, None, mean[:1], invstd)
    with pytest.raises(ValueError, match="dy"):
        F.layer_norm_backward(g(np.ones((2, 3, 5))), x, 4, None, mean, invstd)
