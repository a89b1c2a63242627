"""Activations and softmax / log_softmax (gpuconv/functional/activation.py) against the float64
references, on every backend; finite differences in float64; the argument checks; the elementwise
kernels' vector path and tail (kernels/elementwise.cu).

kernels/softmax.cu through F.softmax / F.log_softmax and their backwards, over random shapes and
axes: odd sizes, size 1 and 0 along the axis, non-contiguous inputs, NaN rows and huge values; rows
of every length around the warp / block switch, each layout's schedule, rows looping over a small
grid, and schedule independence."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from tests import reference as ref
from tests.helpers import assert_close, assert_schedule_independent, finite_difference_check

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


# ---- kernels/softmax.cu: random shapes and axes, every row length and layout, schedules -----------------------

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


# Row lengths around a warp (32) and the warp/block switch (WARP_ROW_LIMIT = 256), and wide rows.
ROW_LENGTHS = [1, 31, 32, 33, 256, 257, 1000, 1025]


def _softmax64(x, axis):
    """float64 NumPy softmax (max subtracted)."""
    z = x.astype(np.float64)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _backward64(dy, x, axis, log):
    """float64 NumPy backward of softmax / log_softmax at the input x (the Jacobian's closed form;
    tests/reference.py's loops are quadratic in the row length)."""
    p, g = _softmax64(x, axis), dy.astype(np.float64)
    if log:
        return g - p * g.sum(axis=axis, keepdims=True)
    return p * (g - (g * p).sum(axis=axis, keepdims=True))


@pytest.mark.parametrize("classes", ROW_LENGTHS)
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_rows_of_every_length(backend, dtype, classes, log):
    """Contiguous rows (the warp and block kernels): 1..300 rows of every length, some shifted far
    from 0 (log-sum-exp with the maximum subtracted), against float64."""
    rng = np.random.default_rng(classes * 2 + log)
    rows = int(rng.integers(1, 301 if classes <= 256 else 41))
    x = rng.standard_normal((rows, classes)) * rng.uniform(0.5, 30)
    x[::3] += rng.choice([-1e3, 1e3])
    x = x.astype(dtype)
    dy = rng.standard_normal((rows, classes)).astype(dtype)
    fwd, bwd = (F.log_softmax, F.log_softmax_backward) if log else (F.softmax, F.softmax_backward)
    y = fwd(gpuconv.asarray(x), 1)
    assert_close(y, getattr(ref, fwd.__name__)(x, 1))
    assert_close(bwd(gpuconv.asarray(dy), y, 1), _backward64(dy, x, 1, log))


@pytest.mark.parametrize("shape,dim", [((3, 5, 257), -1), ((3, 5, 33), 2), ((257, 3), 0), ((2, 1000, 3), 1),
                                       ((1025,), 0), ((4, 1, 31), 1)])
def test_every_layout_against_the_reference(backend, dtype, rng, shape, dim):
    """The three schedules through F.softmax's axis: last axis (a warp or a block per row), inner
    axes (a thread per row), a single row; against tests/reference.py."""
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    for fwd, bwd in ((F.softmax, F.softmax_backward), (F.log_softmax, F.log_softmax_backward)):
        y = fwd(gpuconv.asarray(x), dim)
        assert_close(y, getattr(ref, fwd.__name__)(x, dim))
        log = fwd is F.log_softmax
        assert_close(bwd(gpuconv.asarray(dy), y, dim), _backward64(dy, x, dim, log))


def test_the_schedule_follows_the_layout():
    from gpuconv.backend.cuda.softmax import WARP_ROW_LIMIT, row_schedule

    assert row_schedule(300, 10, 4)[0] == ""
    assert row_schedule(300, WARP_ROW_LIMIT, 1) == ("_warp", (38,), (256,))
    assert row_schedule(3, WARP_ROW_LIMIT + 1, 1) == ("_block", (3,), (256,))
    assert row_schedule(10**6, 1000, 1)[1] == (65535,)


@pytest.mark.parametrize("classes", [33, 1000])
def test_rows_loop_over_a_small_grid(monkeypatch, rng, classes):
    """Fewer blocks than rows: each warp / block loops over several rows."""
    from gpuconv.backend.cuda import softmax as launch

    monkeypatch.setattr(launch, "MAX_GRID", 2)
    x = rng.standard_normal((70, classes))
    dy = rng.standard_normal((70, classes))
    with gpuconv.backend("emulated") as be:
        y = F.softmax(be.asarray(x), 1)
        assert_close(y, _softmax64(x, 1))
        assert_close(F.softmax_backward(be.asarray(dy), y, 1), _backward64(dy, x, 1, False))
        assert_close(F.log_softmax(be.asarray(x.T.copy()), 0), np.log(_softmax64(x.T, 0)))


@pytest.mark.parametrize("classes", [33, 1025])
def test_row_kernels_are_schedule_independent(rng, classes):
    x = rng.standard_normal((20, classes)).astype(np.float32)
    dy = rng.standard_normal((20, classes)).astype(np.float32)
    with gpuconv.backend("emulated") as be:
        g = be.asarray
        assert_schedule_independent(lambda: (F.softmax_backward(g(dy), F.softmax(g(x), 1), 1),
                                             F.log_softmax_backward(g(dy), F.log_softmax(g(x), 1), 1)))
