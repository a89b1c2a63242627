"""The arithmetic primitives of a training step (add, in-place accumulate, fill, Linear's bias add,
the bias gradient's per-channel sum, the step counter, copies of strided views) against NumPy
float64 on every backend, over random sizes: odd, empty, and views that start off a 16-byte
boundary (the kernels' scalar path); random transposes around the 32x32 tile of the tiled copy."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from tests.helpers import assert_close, assert_schedule_independent

SIZES = [0, 1, 3, 4, 7, 8, 33, 1000, 4099]


def _offset(be, host, offset):
    """A backend array equal to ``host``, starting ``offset`` elements into a larger buffer (so a
    non-zero offset is not 16-byte aligned for offset*itemsize % 16 != 0)."""
    flat = np.full(host.size + offset, np.nan, dtype=host.dtype)
    flat[offset:] = host.reshape(-1)
    return be.asarray(flat)[offset:].reshape(host.shape)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("offset", [0, 1])
def test_add_and_accumulate(backend, dtype, rng, size, offset):
    a, b = (rng.standard_normal(size).astype(dtype) for _ in range(2))
    da, db = _offset(backend, a, offset), _offset(backend, b, 1 - offset)
    out = backend.add(da, db)
    assert out.dtype == dtype and out.shape == (size,)
    assert_close(out, a.astype(np.float64) + b)
    same = backend.add_(da, db)
    assert same is da
    assert_close(da, a.astype(np.float64) + b)
    assert_close(db, b)  # the addend is left alone


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1,), (0, 3), (7, 9)])
def test_functional_add_checks_and_adds(backend, dtype, rng, shape):
    a, b = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    assert_close(F.add(gpuconv.asarray(a), gpuconv.asarray(b)), a.astype(np.float64) + b)
    # A transposed (non-contiguous) operand gives the same sum.
    if len(shape) == 2:
        bt = gpuconv.asarray(np.ascontiguousarray(b.T)).T
        assert_close(F.add(gpuconv.asarray(a), bt), a.astype(np.float64) + b)


def test_functional_add_rejects_bad_operands(backend):
    a = gpuconv.asarray(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"b must have the shape of a \(2, 3\), got \(3, 2\)"):
        F.add(a, gpuconv.asarray(np.zeros((3, 2), np.float32)))
    with pytest.raises(TypeError, match="b has dtype float64 but a has dtype float32"):
        F.add(a, gpuconv.asarray(np.zeros((2, 3), np.float64)))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("value", [0.0, 1.0, -2.5])
def test_fill(backend, dtype, rng, size, offset, value):
    a = _offset(backend, rng.standard_normal(size).astype(dtype), offset)
    assert backend.fill_(a, value) is a
    np.testing.assert_array_equal(gpuconv.to_numpy(a), np.full(size, value, dtype))


@pytest.mark.parametrize("rows,cols", [(0, 5), (1, 1), (3, 7), (64, 10), (5, 300), (2, 1)])
def test_bias_add(backend, dtype, rng, rows, cols):
    y = rng.standard_normal((rows, cols)).astype(dtype)
    bias = rng.standard_normal(cols).astype(dtype)
    dy = backend.asarray(y.copy())  # numpy: asarray would share y's memory
    assert backend.bias_add_(dy, backend.asarray(bias)) is dy
    assert_close(dy, y.astype(np.float64) + bias)


@pytest.mark.parametrize("shape,axis", [((2, 3, 4, 5), 1), ((1, 1, 1, 1), 1), ((5, 7, 1, 1), 1), ((3, 16, 9, 11), 1),
                                        ((64, 10), 1), ((1, 300), 1), ((1000, 3), 1), ((0, 4, 2, 2), 1),
                                        ((2, 0, 3, 3), 1), ((4, 5, 6), 2)])
def test_sum_except_channel(backend, dtype, rng, shape, axis):
    x = (rng.standard_normal(shape) + 3).astype(dtype)
    out = backend.sum_except_channel(backend.asarray(x), axis)
    assert out.dtype == dtype and out.shape == (shape[axis],)
    expected = x.astype(np.float64).sum(axis=tuple(i for i in range(x.ndim) if i != axis))
    count = max(1, x.size // max(1, shape[axis]))
    assert_close(out, expected, atol=TOL_ATOL[np.dtype(dtype)] * count)


TOL_ATOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-14}


def test_sum_except_channel_is_schedule_independent(rng):
    x = rng.standard_normal((3, 5, 13, 17)).astype(np.float32)
    with gpuconv.backend("emulated") as be:
        assert_schedule_independent(lambda: be.sum_except_channel(be.asarray(x), 1))


def test_count_step(backend):
    counter = backend.zeros((), np.int64)
    for _ in range(3):
        backend.count_step(counter)
    assert int(counter) == 3


def test_linear_and_conv_bias_gradients_use_the_channel_sum(backend, dtype, rng):
    x = rng.standard_normal((5, 4)).astype(dtype)
    w = rng.standard_normal((3, 4)).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    g = gpuconv.asarray
    y = F.linear(g(x), g(w), g(b))
    assert_close(y, x.astype(np.float64) @ w.T + b)
    dy = rng.standard_normal((5, 3)).astype(dtype)
    _, _, db = F.linear_backward(g(dy), g(x), g(w))
    assert_close(db, dy.astype(np.float64).sum(axis=0))
    xc = rng.standard_normal((2, 2, 5, 5)).astype(dtype)
    wc = rng.standard_normal((3, 2, 3, 3)).astype(dtype)
    dyc = rng.standard_normal((2, 3, 3, 3)).astype(dtype)
    _, _, dbc = F.conv2d_backward(g(dyc), g(xc), g(wc))
    assert_close(dbc, dyc.astype(np.float64).sum(axis=(0, 2, 3)))


@pytest.mark.parametrize("shape,axes", [((3, 4), (1, 0)), ((2, 3, 5), (1, 0, 2)), ((2, 3, 4, 5), (1, 0, 3, 2)),
                                        ((4, 1, 7), (2, 1, 0)), ((0, 3), (1, 0)), ((5,), (0,)), ((33, 17), (1, 0))])
def test_copy_of_a_strided_view(backend, dtype, rng, shape, axes):
    x = rng.standard_normal(shape).astype(dtype)
    view = backend.asarray(x).transpose(axes)
    expected = x.transpose(axes)
    out = backend.contiguous(view)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(gpuconv.to_numpy(out), expected)
    if x.ndim >= 2 and x.shape[0] > 1:
        sliced = backend.asarray(x)[1:, ::2]
        dst = backend.empty(sliced.shape, dtype)
        assert backend.copy_into(dst, sliced) is dst
        np.testing.assert_array_equal(gpuconv.to_numpy(dst), x[1:, ::2])


TRANSPOSE_SIZES = [1, 2, 31, 32, 33, 65]


@pytest.mark.parametrize("seed", range(16))
def test_copy_of_random_transposes(backend, dtype, seed):
    """Random shapes (sizes around the 32x32 tile) and axis orders of 2 to 4 dimensions, whole and
    with a strided last axis: the tiled transpose and the general kernel, exactly."""
    rng = np.random.default_rng(seed)
    ndim = int(rng.integers(2, 5))
    shape = tuple(int(rng.choice(TRANSPOSE_SIZES if ndim <= 3 else TRANSPOSE_SIZES[:5])) for _ in range(ndim))
    axes = tuple(int(a) for a in rng.permutation(ndim))
    x = rng.standard_normal(shape).astype(dtype)
    view = backend.asarray(x).transpose(axes)
    out = backend.contiguous(view)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(gpuconv.to_numpy(out), x.transpose(axes))
    step = int(rng.integers(1, 3))
    sliced = backend.asarray(x)[..., ::step].transpose(axes)
    dst = backend.empty(sliced.shape, dtype)
    assert backend.copy_into(dst, sliced) is dst
    np.testing.assert_array_equal(gpuconv.to_numpy(dst), x[..., ::step].transpose(axes))


@pytest.mark.parametrize("shape,axes,expected", [
    ((33, 65), (1, 0), (1, 1, 65, 33, 0, 0, 65)),
    ((4, 33, 17), (0, 2, 1), (4, 4, 17, 33, 0, 561, 17)),
    ((2, 3, 4, 5), (1, 0, 3, 2), (6, 2, 5, 4, 20, 60, 5)),
    ((4, 1, 7), (2, 1, 0), (1, 1, 7, 4, 0, 0, 7)),
    ((2, 3, 4, 5), (2, 3, 0, 1), (1, 1, 20, 6, 0, 0, 20)),  # axes merged: a plain 2-D transpose
    ((2, 32, 28, 28), (0, 2, 1, 3), None),  # the last axis keeps stride 1: the general kernel
    ((2, 3), (0, 1), None),
])
def test_which_views_are_batched_transposes(shape, axes, expected):
    from gpuconv.backend.cuda.arith import _batched_transpose

    x = np.empty(shape, np.float32).transpose(axes)
    shape4 = (1,) * (4 - x.ndim) + x.shape
    strides4 = (0,) * (4 - x.ndim) + tuple(s // 4 for s in x.strides)
    assert _batched_transpose(shape4, strides4) == expected


def test_transposes_loop_over_a_small_grid(monkeypatch, rng):
    """More tiles and batches than blocks: the tiled kernel's grid-stride loops."""
    from gpuconv.backend.cuda import arith as launch

    monkeypatch.setattr(launch, "MAX_GRID", 2)
    x = rng.standard_normal((5, 3, 70, 97))
    with gpuconv.backend("emulated") as be:
        np.testing.assert_array_equal(be.contiguous(be.asarray(x).transpose(1, 0, 3, 2)), x.transpose(1, 0, 3, 2))


def test_the_tiled_transpose_is_schedule_independent(rng):
    x = rng.standard_normal((3, 45, 70)).astype(np.float32)
    with gpuconv.backend("emulated") as be:
        out = assert_schedule_independent(lambda: be.contiguous(be.asarray(x).transpose(0, 2, 1)))
    np.testing.assert_array_equal(out[0], x.transpose(0, 2, 1))
