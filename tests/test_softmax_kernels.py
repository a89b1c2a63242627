"""kernels/softmax.cu through F.softmax / F.log_softmax and their backwards, against the float64
references on every backend, over random shapes and axes: odd sizes, size 1 and 0 along the axis,
non-contiguous inputs, NaN rows and huge values; rows of every length around the warp / block
switch, each layout's schedule, rows looping over a small grid, and schedule independence."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from tests import reference as ref
from tests.helpers import assert_close, assert_schedule_independent


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
