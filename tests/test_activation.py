"""Activations and softmax / log_softmax against the float64 references, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from tests import reference as ref
from tests.helpers import assert_close, finite_difference_check

SHAPES = [(7,), (3, 5), (2, 3, 4), (2, 1, 3, 3), (1, 1)]


def _random(rng, shape, dtype):
    # Keep values away from 0 so relu / leaky_relu finite differences never straddle the kink.
    x = rng.standard_normal(shape) * 2
    x = np.where(np.abs(x) < 0.05, 0.3, x)
    return x.astype(dtype)


@pytest.mark.parametrize("shape", SHAPES)
def test_relu_family(backend, dtype, rng, shape):
    x, dy = _random(rng, shape, dtype), rng.standard_normal(shape).astype(dtype)
    slope = float(rng.uniform(0.001, 0.5))
    gx, gdy = gpuconv.asarray(x), gpuconv.asarray(dy)
    for fwd, bwd, args in ((F.relu, F.relu_backward, ()), (F.leaky_relu, F.leaky_relu_backward, (slope,))):
        y = fwd(gx, *args)
        assert y.dtype == dtype
        assert_close(y, getattr(ref, fwd.__name__)(x, *args))
        assert_close(bwd(gdy, gx, *args), getattr(ref, bwd.__name__)(dy, x, *args))


@pytest.mark.parametrize("shape", SHAPES)
def test_sigmoid_tanh(backend, dtype, rng, shape):
    x, dy = _random(rng, shape, dtype), rng.standard_normal(shape).astype(dtype)
    for fwd, bwd in ((F.sigmoid, F.sigmoid_backward), (F.tanh, F.tanh_backward)):
        y = fwd(gpuconv.asarray(x))
        assert y.dtype == dtype
        expected = getattr(ref, fwd.__name__)(x)
        assert_close(y, expected)
        # The backward takes the forward's output; the reference derivative is written independently.
        dexpected = dy * (expected * (1 - expected) if fwd is F.sigmoid else 1 - expected ** 2)
        assert_close(bwd(gpuconv.asarray(dy), y), dexpected)


def test_sigmoid_extremes_do_not_overflow(backend, dtype):
    x = gpuconv.asarray(np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype=dtype))
    with np.errstate(over="raise", invalid="raise"):
        y = gpuconv.to_numpy(F.sigmoid(x))
    assert np.all(np.isfinite(y)) and y[0] == 0.0 and y[2] == 0.5 and y[-1] == 1.0


@pytest.mark.parametrize("shape,dim", [((6,), 0), ((3, 5), -1), ((3, 5), 0), ((2, 3, 4), 1), ((2, 3, 4), -3),
                                       ((2, 1, 3, 2), 1), ((4, 1), 1)])
def test_softmax_log_softmax(backend, dtype, rng, shape, dim):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    for fwd, bwd in ((F.softmax, F.softmax_backward), (F.log_softmax, F.log_softmax_backward)):
        y = fwd(gpuconv.asarray(x), dim)
        assert y.dtype == dtype
        assert_close(y, getattr(ref, fwd.__name__)(x, dim))
        assert_close(bwd(gpuconv.asarray(dy), y, dim), getattr(ref, bwd.__name__)(dy, x, dim))


def test_softmax_is_stable_for_huge_logits(backend, dtype):
    x = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1002.0, -1001.0]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise"):
        s = F.softmax(gpuconv.asarray(x))
        ls = F.log_softmax(gpuconv.asarray(x))
    assert_close(s, ref.softmax(x - x.max(axis=1, keepdims=True), 1))
    assert_close(ls, ref.log_softmax(x.astype(np.float64), 1), rtol=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax"])
def test_finite_differences(backend, rng, name):
    x = _random(rng, (3, 4), np.float64)
    w = rng.standard_normal((3, 4))
    fwd, bwd = getattr(F, name), getattr(F, name + "_backward")
    extra = {"leaky_relu": (0.2,), "softmax": (0,), "log_softmax": (1,)}.get(name, ())

    def f(x):
        return float(np.sum(gpuconv.to_numpy(fwd(gpuconv.asarray(x), *extra)) * w))

    gx = gpuconv.asarray(x)
    saved = gx if name in ("relu", "leaky_relu") else fwd(gx, *extra)
    grad = gpuconv.to_numpy(bwd(gpuconv.asarray(w), saved, *extra))
    finite_difference_check(f, {"x": x}, {"x": grad}, rng=rng)


def test_activation_bad_inputs(backend):
    x = gpuconv.asarray(np.ones((2, 3)))
    with pytest.raises(TypeError, match="x"):
        F.relu(gpuconv.asarray(np.ones((2, 3), dtype=np.int32)))
    with pytest.raises(TypeError, match="x"):
        F.sigmoid([1.0, 2.0])
    with pytest.raises(ValueError, match="dy must have the shape"):
        F.relu_backward(gpuconv.asarray(np.ones((3, 2))), x)
    with pytest.raises(TypeError, match="dy has dtype"):
        F.tanh_backward(gpuconv.asarray(np.ones((2, 3), dtype=np.float32)), x)
    with pytest.raises(ValueError, match="dim"):
        F.softmax(x, dim=2)
    with pytest.raises(TypeError, match="dim"):
        F.log_softmax(x, dim=1.0)
    with pytest.raises(TypeError, match="negative_slope"):
        F.leaky_relu(x, negative_slope="0.1")


@pytest.mark.parametrize("size", [1, 5, 8, 37, 1000])
def test_relu_kernels_vector_tail_and_misaligned(backend, dtype, rng, size):
    """The elementwise kernels' 16-byte path, its scalar tail, a view off a 16-byte boundary and
    NaN, against the references."""
    base = _random(rng, (size + 1,), dtype)
    base[size // 2] = np.nan
    dy_base = rng.standard_normal(size + 1).astype(dtype)
    slope = 0.2
    for x, dy in ((base[:size], dy_base[:size]), (base[1:], dy_base[1:])):
        gx, gdy = gpuconv.asarray(x), gpuconv.asarray(dy)
        np.testing.assert_array_equal(gpuconv.to_numpy(F.relu(gx)), np.maximum(x, 0))
        np.testing.assert_array_equal(gpuconv.to_numpy(F.relu_backward(gdy, gx)), dy * (x > 0))
        assert_close(F.leaky_relu(gx, slope), ref.leaky_relu(x, slope), equal_nan=True)
        assert_close(F.leaky_relu_backward(gdy, gx, slope), ref.leaky_relu_backward(dy, x, slope))


