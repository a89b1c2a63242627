"""Pooling (max, average, adaptive, LP, GeM), forward and backward, on every backend, against the float64
references in tests/reference.py (and PyTorch for LP pooling); finite differences in float64; race checks
on the emulator."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from gpuconv.backend.cuda import pool as pool_launch

from tests import reference
from tests.helpers import (assert_close, assert_schedule_independent, finite_difference_check,
                           gem_finite_difference_check, set_pool_launch_limits, tiled_and_untiled)


def distinct(rng, shape, dtype):
    """Values without ties (a random permutation of multiples of 1/8, exact in float32)."""
    size = int(np.prod(shape))
    return ((rng.permutation(size) - size / 2) / 8).reshape(shape).astype(dtype)


def window_config(rng, dilation=True):
    """A random valid (shape, kernel, stride, padding, dilation, ceil_mode) for 2-D pooling."""
    while True:
        k = tuple(int(v) for v in rng.integers(1, 5, 2))
        s = tuple(int(v) for v in rng.integers(1, 4, 2))
        p = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k)
        d = tuple(int(v) for v in rng.integers(1, 3, 2)) if dilation else (1, 1)
        ceil = bool(rng.integers(0, 2))
        shape = (int(rng.integers(1, 3)), int(rng.integers(1, 3)), int(rng.integers(1, 10)), int(rng.integers(1, 10)))
        out = [reference.pool_out_size(shape[2 + a], k[a], s[a], p[a], d[a], ceil) for a in range(2)]
        if min(out) >= 1:
            return shape, k, s, p, d, ceil


def kwargs_of(k, s, p, d, ceil):
    """Arguments as a user writes them: ints where both entries agree, stride sometimes left out."""
    def short(v):
        return v[0] if v[0] == v[1] else v
    return dict(kernel_size=short(k), stride=None if s == k else short(s), padding=short(p), dilation=short(d),
                ceil_mode=ceil)


# ---- max pooling ---------------------------------------------------------------------------------
def test_max_pool2d_random_configs(backend, dtype, rng):
    for _ in range(40):
        shape, k, s, p, d, ceil = window_config(rng)
        x = distinct(rng, shape, dtype)
        kw = kwargs_of(k, s, p, d, ceil)
        y, indices = F.max_pool2d(gpuconv.asarray(x), **kw, return_indices=True)
        ref_y, ref_idx = reference.max_pool2d(x, k, s, p, d, ceil)
        assert_close(y, ref_y, dtype)
        np.testing.assert_array_equal(gpuconv.to_numpy(indices), ref_idx)
        assert gpuconv.to_numpy(indices).dtype == np.int64
        y32, idx32 = F.max_pool2d(gpuconv.asarray(x), **kw, return_indices=True, index_dtype=np.int32)
        assert gpuconv.to_numpy(idx32).dtype == np.int32
        np.testing.assert_array_equal(gpuconv.to_numpy(idx32), ref_idx)
        np.testing.assert_array_equal(gpuconv.to_numpy(y32), gpuconv.to_numpy(y))
        assert_close(F.max_pool2d(gpuconv.asarray(x), **kw), ref_y, dtype)
        dy = rng.standard_normal(ref_y.shape).astype(dtype)
        dx = F.max_pool2d_backward(gpuconv.asarray(dy), gpuconv.asarray(x), indices, **kw)
        assert_close(dx, reference.max_pool2d_backward(dy, ref_idx, shape, k, s, p, d), dtype)
        dx32 = F.max_pool2d_backward(gpuconv.asarray(dy), gpuconv.asarray(x), idx32, **kw)
        np.testing.assert_array_equal(gpuconv.to_numpy(dx32), gpuconv.to_numpy(dx))


@pytest.mark.parametrize("warp_min_window", [0, 10**9], ids=["warp-per-output", "thread-per-output"])
def test_strided_launch_geometry(rng, monkeypatch, warp_min_window):
    """Grids too small for the data, so every kernel strides over planes (grid.y), positions
    (grid.x) and outputs (warps); the reductions with a warp per output and with a thread per output."""
    monkeypatch.setattr(pool_launch, "MAX_GRID_X", 1)
    monkeypatch.setattr(pool_launch, "MAX_GRID_Y", 2)
    monkeypatch.setattr(pool_launch, "MAX_WARP_BLOCKS", 1)
    monkeypatch.setattr(pool_launch, "WARP_MIN_WINDOW", warp_min_window)
    with gpuconv.backend("emulated"):
        for _ in range(4):
            shape, k, s, p, d, ceil = window_config(rng)
            shape = (shape[0] + 2, *shape[1:3], shape[3] + 17)  # more planes and positions than the grid
            x = distinct(rng, shape, np.float64)
            y, indices = F.max_pool2d(gpuconv.asarray(x), k, s, p, d, ceil, return_indices=True)
            ref_y, ref_idx = reference.max_pool2d(x, k, s, p, d, ceil)
            assert_close(y, ref_y)
            np.testing.assert_array_equal(indices, ref_idx)
            dy = rng.standard_normal(ref_y.shape)
            assert_close(F.max_pool2d_backward(dy, x, indices, k, s, p, d, ceil),
                         reference.max_pool2d_backward(dy, ref_idx, shape, k, s, p, d))
            ref_avg = reference.avg_pool2d(x, k, s, p, ceil, True, None)
            assert_close(F.avg_pool2d(x, k, s, p, ceil), ref_avg)
            dya = rng.standard_normal(ref_avg.shape)
            assert_close(F.avg_pool2d_backward(dya, shape, k, s, p, ceil),
                         reference.avg_pool2d_backward(dya, shape, k, s, p, ceil, True, None))
            out = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
            assert_close(F.adaptive_avg_pool2d(x, out), reference.adaptive_avg_pool2d(x, out))
            dyo = rng.standard_normal((*shape[:2], *out))
            assert_close(F.adaptive_avg_pool2d_backward(dyo, shape, out),
                         reference.adaptive_avg_pool2d_backward(dyo, shape))
            ym, im = F.adaptive_max_pool2d(x, out, return_indices=True)
            assert_close(ym, reference.adaptive_max_pool2d(x, out)[0])
            assert_close(F.adaptive_max_pool2d_backward(dyo, x, im, out), reference.index_backward(dyo, im, shape))
            xg = rng.uniform(0.1, 2.0, shape)
            assert_close(F.gem(xg, 2.0), reference.gem(xg, 2.0, 1e-6, shape[2:], (1, 1)))
            dyg = rng.standard_normal((*shape[:2], 1, 1))
            assert_close(F.gem_backward(dyg, xg, 2.0)[0],
                         reference.gem_backward(dyg, xg, 2.0, 1e-6, shape[2:], (1, 1))[0])


@pytest.mark.parametrize("int_dtype", [np.uint8, np.int8, np.int16, np.int32, np.int64])
def test_max_pool2d_on_integer_images_matches_torch_and_keeps_the_dtype(backend, int_dtype, rng):
    torch = pytest.importorskip("torch")
    info = np.iinfo(int_dtype)
    for trial in range(25):
        shape, k, s, p, d, ceil = window_config(rng)
        # Few distinct values (ties: the first maximum in window order wins) and the type's extremes
        # (an element equal to the minimum must still beat the padding).
        x = rng.choice(np.array([info.min, info.min + 1, 0, 3, info.max - 1, info.max], dtype=int_dtype), shape)
        kw = kwargs_of(k, s, p, d, ceil)
        y, indices = F.max_pool2d(gpuconv.asarray(x), **kw, return_indices=True)
        t_y, t_idx = torch.nn.functional.max_pool2d(torch.from_numpy(x), k, s, p, d, ceil_mode=ceil,
                                                    return_indices=True)
        assert gpuconv.to_numpy(y).dtype == int_dtype
        np.testing.assert_array_equal(gpuconv.to_numpy(y), t_y.numpy())
        np.testing.assert_array_equal(gpuconv.to_numpy(indices), t_idx.numpy())
        np.testing.assert_array_equal(gpuconv.to_numpy(F.max_pool2d(gpuconv.asarray(x), **kw)), t_y.numpy())


def test_max_pool2d_integer_int64_is_exact_beyond_float64(backend):
    x = np.array([2**62 + 1, 2**62, 2**62 + 3, 2**62 + 2], dtype=np.int64).reshape(1, 1, 2, 2)
    y, idx = F.max_pool2d(gpuconv.asarray(x), 2, return_indices=True)
    assert gpuconv.to_numpy(y).tolist() == [[[[2**62 + 3]]]] and gpuconv.to_numpy(idx).tolist() == [[[[2]]]]
    # A window of padding only: the type's minimum and PyTorch's index (as for floats: -inf and 6).
    y, idx = F.max_pool2d(gpuconv.asarray(np.arange(4, dtype=np.uint8).reshape(1, 1, 2, 2)), 2, 1, 1, 3,
                          return_indices=True)
    assert gpuconv.to_numpy(y).tolist() == [[[[0]]]] and gpuconv.to_numpy(idx).tolist() == [[[[6]]]]
    with pytest.raises(TypeError, match="float32 or float64"):
        F.max_pool2d(gpuconv.asarray(np.ones((1, 1, 2, 2), bool)), 2)


def test_max_pool2d_resnet_stem_shape(backend, rng):
    x = distinct(rng, (2, 3, 15, 16), np.float32)
    y, indices = F.max_pool2d(gpuconv.asarray(x), 3, 2, 1, return_indices=True)
    ref_y, ref_idx = reference.max_pool2d(x, (3, 3), (2, 2), (1, 1), (1, 1), False)
    assert y.shape == (2, 3, 8, 8)
    assert_close(y, ref_y)
    np.testing.assert_array_equal(gpuconv.to_numpy(indices), ref_idx)


def test_max_pool2d_window_without_input_elements(backend):
    # Dilation can put every tap of a window in the padding: -inf, and PyTorch's index rule (first tap
    # moved into the plane by whole dilation steps; here 2*2 + 2 = 6, outside the 2x2 plane). Such a
    # window passes no gradient on, even where that index lands on an element of another window.
    x = gpuconv.asarray(np.arange(4, dtype=np.float64).reshape(1, 1, 2, 2))
    y, indices = F.max_pool2d(x, 2, 1, 1, 3, return_indices=True)
    assert gpuconv.to_numpy(y).tolist() == [[[[-np.inf]]]]
    assert gpuconv.to_numpy(indices).tolist() == [[[[6]]]]
    dx = F.max_pool2d_backward(gpuconv.asarray(np.ones((1, 1, 1, 1))), x, indices, 2, 1, 1, 3)
    assert gpuconv.to_numpy(dx).tolist() == [[[[0.0, 0.0], [0.0, 0.0]]]]
    x = gpuconv.asarray(np.arange(9, dtype=np.float64).reshape(1, 1, 3, 3) + 1)
    y, indices = F.max_pool2d(x, (1, 2), 1, (0, 1), (1, 4), return_indices=True)
    # Kernel (1, 2), dilation (1, 4), padding (0, 1) on a 3x3 plane: the column taps -1 and 3 are both
    # outside, and PyTorch's index row*3 + 3 is the first element of the next row (or past the plane).
    assert gpuconv.to_numpy(indices).ravel().tolist() == [3, 6, 9]
    dx = F.max_pool2d_backward(gpuconv.asarray(np.ones(y.shape)), x, indices, (1, 2), 1, (0, 1), (1, 4))
    assert gpuconv.to_numpy(dx).sum() == 0


def test_max_pool2d_nan_propagates(backend):
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    y = gpuconv.to_numpy(F.max_pool2d(gpuconv.asarray(x), 2))
    assert np.isnan(y[0, 0, 0, 0]) and not np.isnan(y[0, 0, 1:, :]).any() and not np.isnan(y[0, 0, :, 1]).any()


# ---- average pooling -----------------------------------------------------------------------------
def test_avg_pool2d_random_configs(backend, dtype, rng):
    for _ in range(40):
        shape, k, s, p, d, ceil = window_config(rng, dilation=False)
        include_pad = bool(rng.integers(0, 2))
        divisor = None if rng.integers(0, 3) else int(rng.integers(1, 6))
        x = rng.standard_normal(shape).astype(dtype)
        kw = kwargs_of(k, s, p, d, ceil)
        del kw["dilation"]
        kw.update(count_include_pad=include_pad, divisor_override=divisor)
        y = F.avg_pool2d(gpuconv.asarray(x), **kw)
        ref_y = reference.avg_pool2d(x, k, s, p, ceil, include_pad, divisor)
        assert_close(y, ref_y, dtype)
        dy = rng.standard_normal(ref_y.shape).astype(dtype)
        dx = F.avg_pool2d_backward(gpuconv.asarray(dy), shape, **kw)
        assert_close(dx, reference.avg_pool2d_backward(dy, shape, k, s, p, ceil, include_pad, divisor), dtype)


# ---- tiled forward kernels (v2) -----------------------------------------------------------------
# Tile settings that exercise every path of the tiled kernels on small inputs: the default (whole
# planes, several per block), small tiles (several tiles per plane, partial tiles at the edges, one
# output per thread), and a plane-group grid smaller than the planes (grid.y strides).
TILE_SETTINGS = {
    "default": {},
    "small-tiles": dict(TILE_OUTPUTS=24, MIN_TILE_OUTPUTS=24, TILE_WIDTH=5),
    "strided-planes": dict(TILE_OUTPUTS=64, MIN_TILE_OUTPUTS=64, TILE_WIDTH=8, MAX_GRID_Y=2),
}


def larger_window_config(rng, dilation=True):
    """window_config on planes up to 40x40 (several tiles of the small tile settings)."""
    shape, k, s, p, d, ceil = window_config(rng, dilation)
    shape = (*shape[:2], int(rng.integers(1, 41)), int(rng.integers(1, 41)))
    out = [reference.pool_out_size(shape[2 + a], k[a], s[a], p[a], d[a], ceil) for a in range(2)]
    return (shape, k, s, p, d, ceil) if min(out) >= 1 else larger_window_config(rng, dilation)


@pytest.mark.parametrize("settings", TILE_SETTINGS, ids=list(TILE_SETTINGS))
def test_tiled_forward_matches_reference_and_v1(dtype, rng, monkeypatch, settings):
    """max_pool2d and avg_pool2d forward on the emulated backend: the tiled kernels (v2) agree with the
    float64 reference and bit for bit with v1, with int64 and int32 indices, every option."""
    set_pool_launch_limits(monkeypatch, TILE_SETTINGS[settings])
    with gpuconv.backend("emulated"):
        for _ in range(12):
            shape, k, s, p, d, ceil = larger_window_config(rng)
            x = distinct(rng, shape, dtype)
            x.flat[rng.integers(0, x.size)] = -np.inf  # an input -inf never replaces the first tap's index
            (y, idx), (y1, idx1) = tiled_and_untiled(
                monkeypatch, lambda: F.max_pool2d(x, k, s, p, d, ceil, return_indices=True))
            ref_y, ref_idx = reference.max_pool2d(x, k, s, p, d, ceil)
            assert_close(y, ref_y, dtype)
            np.testing.assert_array_equal(idx, ref_idx)
            np.testing.assert_array_equal(y, y1)
            np.testing.assert_array_equal(idx, idx1)
            (y32, idx32), _ = tiled_and_untiled(
                monkeypatch, lambda: F.max_pool2d(x, k, s, p, d, ceil, return_indices=True, index_dtype=np.int32))
            np.testing.assert_array_equal(idx32, ref_idx)
            np.testing.assert_array_equal(y32, y)

            shape, k, s, p, _, ceil = larger_window_config(rng, dilation=False)
            x = rng.standard_normal(shape).astype(dtype)
            include_pad = bool(rng.integers(0, 2))
            divisor = None if rng.integers(0, 3) else int(rng.integers(1, 6))
            ya, ya1 = tiled_and_untiled(monkeypatch, lambda: F.avg_pool2d(x, k, s, p, ceil, include_pad, divisor))
            assert_close(ya, reference.avg_pool2d(x, k, s, p, ceil, include_pad, divisor), dtype)
            np.testing.assert_array_equal(ya, ya1)


def test_tiled_forward_nan_and_all_padding_windows(rng, monkeypatch):
    """NaN wins its window (the last NaN's index, PyTorch's rule, which the numpy backend follows and
    the reference does not model), and a window of padding only gives -inf and PyTorch's index, in the
    tiled kernel as in v1."""
    x = distinct(rng, (2, 3, 13, 11), np.float32)
    x[0, 1, 4, 5] = x[0, 1, 4, 6] = x[1, 2, 12, 0] = np.nan
    for args in ((3, 2, 1, 1, False), (3, 1, 1, 2, True), (2, 2, 1, 3, True)):
        with gpuconv.backend("numpy"):
            want_y, want_idx = F.max_pool2d(x, *args, return_indices=True)
        assert np.isnan(want_y).any()
        with gpuconv.backend("emulated"):
            (y, idx), (y1, idx1) = tiled_and_untiled(monkeypatch,
                                                          lambda: F.max_pool2d(x, *args, return_indices=True))
        for got_y, got_idx in ((y, idx), (y1, idx1)):
            np.testing.assert_array_equal(got_y, want_y)
            np.testing.assert_array_equal(got_idx, want_idx)
    with gpuconv.backend("emulated"):
        x = np.arange(4, dtype=np.float64).reshape(1, 1, 2, 2)
        y, idx = F.max_pool2d(x, 2, 1, 1, 3, return_indices=True)
        assert y.tolist() == [[[[-np.inf]]]] and idx.tolist() == [[[[6]]]]


@pytest.mark.parametrize("settings", ["default", "small-tiles"])
def test_tiled_forward_is_schedule_independent(rng, monkeypatch, settings):
    """The staged tile is complete before any thread reads it, under every emulator schedule."""
    set_pool_launch_limits(monkeypatch, TILE_SETTINGS[settings])
    with gpuconv.backend("emulated"):
        x = distinct(rng, (2, 3, 17, 14), np.float32)
        assert_schedule_independent(lambda: (*F.max_pool2d(x, 3, 2, 1, return_indices=True),
                                             F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)))


def _tap_words(tile, planes, out_size, kernel_size, stride, dilation):
    """Word of each (output of the block, tap) as the tiled kernels compute it, and the tile's rows."""
    grid, block, shared, (tile_oh, tile_ow, tiles_x, tpb, cw, row_words, plane_words) = tile
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    rows = (tile_oh - 1) * sh + (kh - 1) * dh + 1
    cols = (tile_ow - 1) * sw + (kw - 1) * dw + 1
    words = {}
    for t in range(tpb * tile_oh * tile_ow):
        pl, rem = divmod(t, tile_oh * tile_ow)
        oyl, oxl = divmod(rem, tile_ow)
        for i in range(kh):
            for j in range(kw):
                r, c = oyl * sh + i * dh, oxl * sw + j * dw
                assert r < rows and c < cols
                words[t, i, j] = pl * plane_words + r * row_words + (c % sw) * cw + c // sw
    return words, rows, cols


@pytest.mark.parametrize("itemsize", [4, 8])
def test_pool_tile_layout(rng, itemsize):
    """The launcher's tile layout: every tap of every output inside the staged rows and columns and
    in a word of its own row and phase; shared memory within the limit; where the row stride can
    reach it (tile width a multiple of gcd(stride, 32)), the reads of one tap by consecutive outputs
    hit consecutive banks (no bank conflicts)."""
    for _ in range(60):
        planes = int(rng.integers(1, 300))
        out_size = tuple(int(v) for v in rng.integers(1, 150, 2))
        kernel_size = tuple(int(v) for v in rng.integers(1, 8, 2))
        stride = tuple(int(v) for v in rng.choice([1, 2, 3, 4], 2))
        dilation = tuple(int(v) for v in rng.integers(1, 3, 2))
        tile = pool_launch.pool_tile(planes, out_size, kernel_size, stride, dilation, itemsize)
        assert tile is not None
        grid, block, shared, (tile_oh, tile_ow, tiles_x, tpb, cw, row_words, plane_words) = tile
        assert shared == tpb * plane_words * itemsize <= pool_launch.TILE_SHARED_BYTES
        assert grid[0] == -(-out_size[0] // tile_oh) * tiles_x and tiles_x * tile_ow >= out_size[1]
        assert block[0] % 32 == 0 and block[0] <= pool_launch.BLOCK
        assert tpb == 1 or (tile_oh, tile_ow) == out_size
        words, rows, cols = _tap_words(tile, planes, out_size, kernel_size, stride, dilation)
        assert cw * stride[1] >= cols and row_words >= stride[1] * cw and plane_words >= rows * row_words
        if tile_ow % math.gcd(stride[0], 32) == 0:
            for (t, i, j), word in words.items():
                assert (word - words[0, i, j] - t) % 32 == 0
    assert pool_launch.pool_tile(4, (3, 3), (200, 200), (1, 1), (1, 1), 4) is None  # runs v1


# ---- adaptive pooling ----------------------------------------------------------------------------
def adaptive_config(rng):
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 3)), int(rng.integers(1, 10)), int(rng.integers(1, 10)))
    out = (int(rng.integers(1, shape[2] + 3)), int(rng.integers(1, shape[3] + 3)))
    choice = rng.integers(0, 4)
    if choice == 0:
        return shape, out[0], (out[0], out[0])
    if choice == 1:
        return shape, (None, out[1]), (shape[2], out[1])
    return shape, out, out


def test_adaptive_avg_pool2d_random_configs(backend, dtype, rng):
    for _ in range(30):
        shape, arg, out = adaptive_config(rng)
        x = rng.standard_normal(shape).astype(dtype)
        y = F.adaptive_avg_pool2d(gpuconv.asarray(x), arg)
        assert_close(y, reference.adaptive_avg_pool2d(x, out), dtype)
        dy = rng.standard_normal((*shape[:2], *out)).astype(dtype)
        dx = F.adaptive_avg_pool2d_backward(gpuconv.asarray(dy), shape, arg)
        assert_close(dx, reference.adaptive_avg_pool2d_backward(dy, shape), dtype)


def test_adaptive_max_pool2d_random_configs(backend, dtype, rng):
    for _ in range(30):
        shape, arg, out = adaptive_config(rng)
        x = distinct(rng, shape, dtype)
        y, indices = F.adaptive_max_pool2d(gpuconv.asarray(x), arg, return_indices=True)
        ref_y, ref_idx = reference.adaptive_max_pool2d(x, out)
        assert_close(y, ref_y, dtype)
        np.testing.assert_array_equal(gpuconv.to_numpy(indices), ref_idx)
        assert_close(F.adaptive_max_pool2d(gpuconv.asarray(x), arg), ref_y, dtype)
        dy = rng.standard_normal(out and ref_y.shape).astype(dtype)
        dx = F.adaptive_max_pool2d_backward(gpuconv.asarray(dy), gpuconv.asarray(x), indices, arg)
        assert_close(dx, reference.index_backward(dy, ref_idx, shape), dtype)


def test_adaptive_max_pool2d_ties_and_nan_in_large_bins(backend, dtype, rng):
    """Bins of 16+ elements (a warp per output on the kernel backends): ties go to the first maximum
    in row-major order, a bin holding NaN gives NaN at its last NaN; int32 indices agree."""
    x = rng.integers(0, 3, (2, 3, 11, 9)).astype(dtype)  # many ties
    for out in ((1, 1), (2, 2), (1, 3)):
        ref_y, ref_idx = reference.adaptive_max_pool2d(x, out)
        for index_dtype in (np.int64, np.int32):
            y, indices = F.adaptive_max_pool2d(gpuconv.asarray(x), out, return_indices=True, index_dtype=index_dtype)
            assert_close(y, ref_y, dtype)
            assert gpuconv.to_numpy(indices).dtype == index_dtype
            np.testing.assert_array_equal(gpuconv.to_numpy(indices), ref_idx)
    x[0, 0, 2, 3] = x[0, 0, 8, 1] = x[1, 2, 0, 0] = np.nan
    y, indices = F.adaptive_max_pool2d(gpuconv.asarray(x), 1, return_indices=True)
    y, indices = gpuconv.to_numpy(y), gpuconv.to_numpy(indices)
    assert np.isnan(y[0, 0, 0, 0]) and indices[0, 0, 0, 0] == 8 * 9 + 1
    assert np.isnan(y[1, 2, 0, 0]) and indices[1, 2, 0, 0] == 0
    assert not np.isnan(y[0, 1, 0, 0])


def test_adaptive_pools_global_on_odd_plane(backend, rng):
    x = rng.standard_normal((2, 3, 7, 5))
    assert_close(F.adaptive_avg_pool2d(gpuconv.asarray(x), 1), x.mean(axis=(2, 3), keepdims=True))
    assert_close(F.adaptive_max_pool2d(gpuconv.asarray(x), (1, 1)), x.max(axis=(2, 3), keepdims=True))


# ---- GeM -----------------------------------------------------------------------------------------
def gem_config(rng):
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 8)), int(rng.integers(1, 8)))
    if rng.integers(0, 3) == 0:
        return shape, None, None, (shape[2], shape[3]), (1, 1)
    k = (int(rng.integers(1, shape[2] + 1)), int(rng.integers(1, shape[3] + 1)))
    if rng.integers(0, 2):
        return shape, k, None, k, k
    s = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    return shape, k, s, k, s


def gem_inputs(rng, shape, dtype):
    # Mostly positive; about one in ten below eps, to exercise the clamp.
    return rng.uniform(-0.2, 2.0, shape).astype(dtype)


def test_gem_random_configs(backend, dtype, rng):
    tol = {} if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    for _ in range(20):
        shape, kernel_size, stride, k, s = gem_config(rng)
        x = gem_inputs(rng, shape, dtype)
        p = float(rng.uniform(0.5, 5.0))
        eps = 1e-6 if rng.integers(0, 2) else 0.05
        p_arg = p if rng.integers(0, 2) else gpuconv.asarray(np.array([p], dtype=dtype))
        y = F.gem(gpuconv.asarray(x), p_arg, eps, kernel_size, stride)
        p_used = float(np.asarray(p, dtype=dtype))
        ref_y = reference.gem(x, p_used, eps, k, s)
        assert_close(y, ref_y, dtype, **tol)
        dy = rng.standard_normal(ref_y.shape).astype(dtype)
        dx, dp = F.gem_backward(gpuconv.asarray(dy), gpuconv.asarray(x), p_arg, eps, kernel_size, stride)
        ref_dx, ref_dp = reference.gem_backward(dy, x, p_used, eps, k, s)
        assert_close(dx, ref_dx, dtype, **tol)
        assert dp.shape == (1,) and gpuconv.to_numpy(dp).dtype == dtype
        assert_close(dp, ref_dp, dtype, **(tol or dict(rtol=1e-9, atol=1e-10)))


def test_gem_needs(backend, rng):
    x = gpuconv.asarray(gem_inputs(rng, (2, 2, 4, 4), np.float64))
    dy = gpuconv.asarray(rng.standard_normal((2, 2, 1, 1)))
    dx, dp = F.gem_backward(dy, x, 3.0, needs=(True, False))
    assert dp is None and dx.shape == (2, 2, 4, 4)
    dx, dp = F.gem_backward(dy, x, 3.0, needs=(False, True))
    assert dx is None and dp.shape == (1,)


def test_gem_finite_differences(backend, rng):
    configs = ((None, None, (2, 2, 3, 4)), (2, 1, (1, 2, 4, 5)), ((3, 2), (2, 3), (2, 1, 7, 6)))
    for kernel_size, stride, shape in configs:
        gem_finite_difference_check(rng, kernel_size, stride, shape)


def test_pool_finite_differences(backend, rng):
    x = distinct(rng, (2, 2, 6, 7), np.float64)
    for op, back, kw in (
        (F.max_pool2d, None, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
        (F.avg_pool2d, F.avg_pool2d_backward, dict(kernel_size=(3, 2), stride=2, padding=1, ceil_mode=True,
                                                   count_include_pad=False)),
    ):
        y = gpuconv.to_numpy(op(gpuconv.asarray(x), **kw))
        weights = rng.standard_normal(y.shape)

        def loss(x):
            return float(np.sum(gpuconv.to_numpy(op(gpuconv.asarray(x), **kw)) * weights))

        if back is None:
            _, indices = F.max_pool2d(gpuconv.asarray(x), **kw, return_indices=True)
            dx = F.max_pool2d_backward(gpuconv.asarray(weights), gpuconv.asarray(x), indices, **kw)
        else:
            dx = back(gpuconv.asarray(weights), x.shape, **kw)
        finite_difference_check(loss, {"x": x}, {"x": gpuconv.to_numpy(dx)}, rng=rng, samples=20)


@pytest.mark.parametrize("blocks", [3, pool_launch.GEM_REDUCE_BLOCKS])
def test_gem_dp_reduction_is_schedule_independent(rng, monkeypatch, blocks):
    # With 3 blocks every thread of the reduction grid sums two or three outputs before the tree.
    monkeypatch.setattr(pool_launch, "GEM_REDUCE_BLOCKS", blocks)
    with gpuconv.backend("emulated"):
        x = gpuconv.asarray(rng.uniform(0.0, 2.0, (4, 5, 9, 11)).astype(np.float32))
        dy = gpuconv.asarray(rng.standard_normal((4, 5, 8, 10)).astype(np.float32))
        dx, dp = assert_schedule_independent(lambda: F.gem_backward(dy, x, 3.0, 1e-6, 2, 1))
        ref_dx, ref_dp = reference.gem_backward(gpuconv.to_numpy(dy), gpuconv.to_numpy(x), 3.0, 1e-6, (2, 2), (1, 1))
        assert_close(dx, ref_dx, rtol=1e-4, atol=1e-5)
        assert_close(dp, ref_dp, rtol=1e-4, atol=1e-3)


def test_pool_backward_kernels_are_schedule_independent(rng):
    with gpuconv.backend("emulated"):
        x = gpuconv.asarray(distinct(rng, (2, 3, 9, 8), np.float32))
        y, indices = F.max_pool2d(x, 3, 2, 1, return_indices=True)
        dy = gpuconv.asarray(rng.standard_normal(y.shape).astype(np.float32))
        assert_schedule_independent(lambda: (F.max_pool2d_backward(dy, x, indices, 3, 2, 1),
                                             F.avg_pool2d_backward(dy, x.shape, 3, 2, 1)))


def test_one_by_one_planes(backend, dtype, rng):
    x = distinct(rng, (3, 2, 1, 1), dtype)
    dy = rng.standard_normal((3, 2, 2, 2)).astype(dtype)
    for k, s, p, ceil in ((1, 1, 0, False), (2, 1, 1, False), (3, 2, 1, True), (2, 3, 1, True)):
        kw = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil)
        ref_y, ref_idx = reference.max_pool2d(x, (k, k), (s, s), (p, p), (1, 1), ceil)
        y, indices = F.max_pool2d(gpuconv.asarray(x), **kw, return_indices=True)
        assert_close(y, ref_y, dtype)
        np.testing.assert_array_equal(gpuconv.to_numpy(indices), ref_idx)
        g = dy[:, :, :ref_y.shape[2], :ref_y.shape[3]].copy()
        assert_close(F.max_pool2d_backward(gpuconv.asarray(g), gpuconv.asarray(x), indices, **kw),
                     reference.max_pool2d_backward(g, ref_idx, x.shape, (k, k), (s, s), (p, p), (1, 1)), dtype)
        for include_pad in (True, False):
            ref_a = reference.avg_pool2d(x, (k, k), (s, s), (p, p), ceil, include_pad, None)
            assert_close(F.avg_pool2d(gpuconv.asarray(x), **kw, count_include_pad=include_pad), ref_a, dtype)
            g = dy[:, :, :ref_a.shape[2], :ref_a.shape[3]].copy()
            assert_close(F.avg_pool2d_backward(gpuconv.asarray(g), x.shape, **kw, count_include_pad=include_pad),
                         reference.avg_pool2d_backward(g, x.shape, (k, k), (s, s), (p, p), ceil, include_pad, None),
                         dtype)
    for out in (1, 2):
        assert_close(F.adaptive_avg_pool2d(gpuconv.asarray(x), out), reference.adaptive_avg_pool2d(x, (out, out)),
                     dtype)
        assert_close(F.adaptive_max_pool2d(gpuconv.asarray(x), out), reference.adaptive_max_pool2d(x, (out, out))[0],
                     dtype)
    xg = np.abs(x) + 0.5
    assert_close(F.gem(gpuconv.asarray(xg), 3.0), reference.gem(xg, 3.0, 1e-6, (1, 1), (1, 1)), dtype, rtol=1e-5)


def test_non_contiguous_input_and_nan_in_gem(backend, rng):
    x = distinct(rng, (2, 3, 8, 7), np.float64)
    view = gpuconv.asarray(x)[:, ::-1, :, ::2]
    expected = x[:, ::-1, :, ::2]
    assert_close(F.max_pool2d(view, 2, 1, 1), reference.max_pool2d(expected, (2, 2), (1, 1), (1, 1), (1, 1), False)[0])
    assert_close(F.avg_pool2d(view, 3, 2, 1), reference.avg_pool2d(expected, (3, 3), (2, 2), (1, 1), False, True, None))
    assert_close(F.gem(gpuconv.asarray(np.abs(x))[:, :, ::2], 2.0),
                 reference.gem(np.abs(x)[:, :, ::2], 2.0, 1e-6, (4, 7), (1, 1)))
    # NaN is not clamped away (PyTorch's clamp keeps it).
    x[0, 0, 0, 0] = np.nan
    y = gpuconv.to_numpy(F.gem(gpuconv.asarray(x), 3.0))
    assert np.isnan(y[0, 0, 0, 0]) and not np.isnan(y[1:]).any()


# ---- bad input -----------------------------------------------------------------------------------
def test_bad_input(backend, rng):
    x = gpuconv.asarray(rng.standard_normal((2, 3, 6, 6)).astype(np.float32))
    x3 = gpuconv.asarray(rng.standard_normal((3, 6, 6)).astype(np.float32))
    for op in (lambda a: F.max_pool2d(a, 2), lambda a: F.avg_pool2d(a, 2), lambda a: F.adaptive_avg_pool2d(a, 2),
               lambda a: F.adaptive_max_pool2d(a, 2), lambda a: F.gem(a)):
        with pytest.raises(ValueError, match="x must be 4-D"):
            op(x3)
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        F.max_pool2d(gpuconv.asarray(np.ones((1, 1, 4, 4), np.float16)), 2)
    with pytest.raises(ValueError, match="padding must be at most half of kernel_size"):
        F.max_pool2d(x, 3, padding=2)
    with pytest.raises(ValueError, match="padding must be at most half of kernel_size"):
        F.avg_pool2d(x, (2, 4), padding=(1, 3))
    with pytest.raises(ValueError, match="stride must be positive"):
        F.max_pool2d(x, 2, stride=0)
    with pytest.raises(ValueError, match="kernel_size must be positive"):
        F.avg_pool2d(x, 0)
    with pytest.raises(TypeError, match="kernel_size must be an int or a pair"):
        F.max_pool2d(x, 2.5)
    with pytest.raises(ValueError, match="output size .* is too small"):
        F.max_pool2d(x, 4, dilation=2)
    with pytest.raises(ValueError, match="divisor_override"):
        F.avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(ValueError, match="output_size must be positive"):
        F.adaptive_avg_pool2d(x, (0, 2))
    with pytest.raises(TypeError, match="output_size"):
        F.adaptive_max_pool2d(x, "7")
    with pytest.raises(ValueError, match="p must be a finite number > 0"):
        F.gem(x, 0.0)
    with pytest.raises(ValueError, match="p must be a finite number > 0"):
        F.gem(x, gpuconv.asarray(np.array([-1.0], dtype=np.float32)))
    with pytest.raises(TypeError, match="p must be"):
        F.gem(x, gpuconv.asarray(np.ones(2, dtype=np.float32)))
    with pytest.raises(ValueError, match="kernel_size .* is larger than the input"):
        F.gem(x, 3.0, kernel_size=7)
    with pytest.raises(ValueError, match="eps must be"):
        F.gem(x, 3.0, eps=0.0)
    y, indices = F.max_pool2d(x, 2, return_indices=True)
    with pytest.raises(ValueError, match="dy must have the forward output's shape"):
        F.max_pool2d_backward(x, x, indices, 2)
    with pytest.raises(TypeError, match="indices must be int64"):
        F.max_pool2d_backward(y, x, y, 2)
    with pytest.raises(ValueError, match="x_shape must be a 4-D"):
        F.avg_pool2d_backward(y, (3, 6, 6), 2)
    with pytest.raises(TypeError, match="dy has dtype float64 but x has dtype float32"):
        F.gem_backward(gpuconv.asarray(np.ones((2, 3, 1, 1))), x, 3.0)
    with pytest.raises(TypeError, match="needs"):
        F.gem_backward(gpuconv.asarray(np.ones((2, 3, 1, 1), dtype=np.float32)), x, 3.0, needs=(True,))


def test_bad_input_raises_before_any_kernel(emulated_without_kernels, rng):
    x = gpuconv.asarray(rng.standard_normal((1, 2, 5, 5)).astype(np.float32))
    with pytest.raises(ValueError, match="padding"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="p must be"):
        F.gem(x, -3.0)


def test_warp_per_output_reductions_are_schedule_independent(rng):
    """The warp-per-output kernels (adaptive pooling, GeM over large windows) combine lanes with
    shuffles in a fixed butterfly: bit-identical under every emulator schedule."""
    with gpuconv.backend("emulated"):
        x = gpuconv.asarray(rng.uniform(0.1, 2.0, (2, 5, 11, 9)).astype(np.float32))
        x[0, 1, 3, 3] = x[0, 1, 5, 2]  # a tie
        assert_schedule_independent(lambda: (F.adaptive_avg_pool2d(x, (1, 2)),
                                             *F.adaptive_max_pool2d(x, 1, return_indices=True),
                                             F.gem(x, 3.0)))


@pytest.mark.parametrize("warp_min_window", [0, 10**9], ids=["warp-per-output", "thread-per-output"])
def test_gem_backward_both_geometries_match_reference(rng, monkeypatch, warp_min_window):
    monkeypatch.setattr(pool_launch, "WARP_MIN_WINDOW", warp_min_window)
    with gpuconv.backend("emulated"):
        x = gpuconv.asarray(rng.uniform(0.0, 2.0, (3, 4, 7, 6)))
        for kernel_size, stride in ((None, None), ((3, 2), (2, 1))):
            y = F.gem(x, 2.5, 1e-6, kernel_size, stride)
            dy = gpuconv.asarray(rng.standard_normal(y.shape))
            dx, dp = assert_schedule_independent(lambda: F.gem_backward(dy, x, 2.5, 1e-6, kernel_size, stride))
            k, s = (kernel_size or (7, 6)), (stride or (1, 1))
            ref_dx, ref_dp = reference.gem_backward(gpuconv.to_numpy(dy), gpuconv.to_numpy(x), 2.5, 1e-6, k, s)
            assert_close(dx, ref_dx)
            assert_close(dp, ref_dp, rtol=1e-9, atol=1e-10)


# ---- LP pooling ----------------------------------------------------------------------------------
def lp_config(rng):
    """A random valid (shape, kernel, stride, ceil_mode) for LP pooling (no padding, no dilation)."""
    while True:
        shape, k, s, _, _, ceil = window_config(rng, dilation=False)
        out = [reference.pool_out_size(shape[2 + a], k[a], s[a], 0, 1, ceil) for a in range(2)]
        if min(out) >= 1:
            return shape, k, s, ceil


def lp_reference(x, p, k, s, ceil, dy):
    """float64 (y, dx, |dx| terms) of PyTorch's formula from the naive average pooling: y = (avg(x^p) *
    K)^(1/p), dx = p x^(p-1) * avg_backward([avg != 0] dy (1/p) u^(1/p-1) K), u = avg * K; the third
    is dx with every term's absolute value (the scale of the float32 rounding)."""
    x = np.asarray(x, dtype=np.float64)
    K = k[0] * k[1]
    avg = reference.avg_pool2d(x ** p, k, s, (0, 0), ceil, True, None)
    u = avg * K
    y = u ** (1.0 / p)
    coef = np.where(avg != 0, np.asarray(dy, np.float64) * (1.0 / p) * u ** (1.0 / p - 1.0) * K, 0.0)
    slope = p * x ** (p - 1.0)
    dx = reference.avg_pool2d_backward(coef, x.shape, k, s, (0, 0), ceil, True, None) * slope
    scale = reference.avg_pool2d_backward(np.abs(coef), x.shape, k, s, (0, 0), ceil, True, None) * np.abs(slope)
    return y, dx, scale


def torch_lp_pool2d(x, dy, p, kernel_size, stride, ceil):
    """PyTorch's y and dx (in x's dtype) for the same arguments."""
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.lp_pool2d(xt, p, kernel_size, stride, ceil)
    yt.backward(torch.tensor(dy))
    return yt.detach().numpy(), xt.grad.numpy()


def lp_tolerance(K, p, dtype):
    """Relative error of y in ``dtype``: K terms x^p summed (K * eps, every term positive), the divide
    and multiply, powf's few ulp, then ^(1/p) scales the sum's error by 1/p."""
    return (K + 8) * np.finfo(dtype).eps * max(1.0, 1.0 / p)


def test_lp_pool2d_random_configs(backend, dtype, rng):
    for _ in range(30):
        shape, k, s, ceil = lp_config(rng)
        p = float(rng.choice([1.0, 2.0, 3.0, rng.uniform(0.5, 4.0)]))
        x = rng.uniform(0.25, 2.0, shape).astype(dtype)
        kw = dict(kernel_size=k[0] if k[0] == k[1] else k, stride=None if s == k else s, ceil_mode=ceil)
        y = F.lp_pool2d(gpuconv.asarray(x), p, **kw)
        ref_y, _, _ = lp_reference(x, p, k, s, ceil, np.zeros((1, 1, 1, 1)))
        dy = rng.standard_normal(ref_y.shape).astype(dtype)
        ref_y, ref_dx, scale = lp_reference(x, p, k, s, ceil, dy)
        torch_y, torch_dx = torch_lp_pool2d(x.astype(np.float64), dy.astype(np.float64), p, kw["kernel_size"],
                                            kw["stride"], ceil)
        rtol = lp_tolerance(k[0] * k[1], p, dtype)
        for expected in (ref_y, torch_y):
            np.testing.assert_allclose(gpuconv.to_numpy(y), expected, rtol=rtol, atol=0)
        dx = gpuconv.to_numpy(F.lp_pool2d_backward(gpuconv.asarray(dy), gpuconv.asarray(x), p, **kw))
        # Each window's coefficient carries y's relative error times |1/p - 1| (u^(1/p-1)) and its own
        # roundings; the windows' sum adds (windows + 1) * eps of the terms' absolute values.
        bound = (rtol * (1 + abs(1 / p - 1)) + 16 * np.finfo(dtype).eps) * scale
        for expected in (ref_dx, torch_dx):
            assert np.all(np.abs(dx - expected) <= bound + np.finfo(dtype).tiny), (shape, k, s, ceil, p)
        assert dx.dtype == dtype and y.dtype == dtype


def test_lp_pool2d_float32_matches_torch_float32(backend, rng):
    """The second oracle in the same precision: PyTorch's float32 result, within both errors."""
    for _ in range(10):
        shape, k, s, ceil = lp_config(rng)
        p = float(rng.uniform(0.5, 4.0))
        x = rng.uniform(0.25, 2.0, shape).astype(np.float32)
        y = gpuconv.to_numpy(F.lp_pool2d(gpuconv.asarray(x), p, k, s, ceil))
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx = gpuconv.to_numpy(F.lp_pool2d_backward(gpuconv.asarray(dy), gpuconv.asarray(x), p, k, s, ceil))
        torch_y, torch_dx = torch_lp_pool2d(x, dy, p, k, s, ceil)
        _, _, scale = lp_reference(x, p, k, s, ceil, dy)
        rtol = 2 * lp_tolerance(k[0] * k[1], p, np.float32)
        np.testing.assert_allclose(y, torch_y, rtol=rtol, atol=0)
        bound = 2 * (rtol * (1 + abs(1 / p - 1)) + 16 * np.finfo(np.float32).eps) * scale
        assert np.all(np.abs(dx - torch_dx) <= bound + np.finfo(np.float32).tiny)


def test_lp_pool2d_signs_zeros_and_nan_follow_torch(backend, rng):
    """Negative inputs: even p is defined, odd p gives NaN for a negative window sum, a non-integer
    p NaN for any negative element; a window of zeros passes no gradient (PyTorch's relu)."""
    x = rng.standard_normal((2, 3, 6, 5))
    x[0, 0, :2, :2] = 0.0
    for p in (2.0, 3.0, 1.5, 1.0):
        for k, s, ceil in ((2, None, False), (3, 2, True), ((2, 3), (1, 2), True)):
            y = gpuconv.to_numpy(F.lp_pool2d(gpuconv.asarray(x), p, k, s, ceil))
            dy = rng.standard_normal(y.shape)
            dx = gpuconv.to_numpy(F.lp_pool2d_backward(gpuconv.asarray(dy), gpuconv.asarray(x), p, k, s, ceil))
            torch_y, torch_dx = torch_lp_pool2d(x, dy, p, k, s, ceil)
            np.testing.assert_allclose(y, torch_y, rtol=1e-12, atol=1e-14, equal_nan=True)
            np.testing.assert_allclose(dx, torch_dx, rtol=1e-10, atol=1e-12, equal_nan=True)
    zeros = gpuconv.asarray(np.zeros((1, 1, 2, 2)))
    dx = F.lp_pool2d_backward(gpuconv.asarray(np.ones((1, 1, 1, 1))), zeros, 2.0, 2)
    np.testing.assert_array_equal(gpuconv.to_numpy(dx), 0.0)


def test_lp_pool2d_autograd_gradcheck_and_node(backend, rng):
    """On Tensors lp_pool2d records LpPool2DBackward (declared in functional/pool.py), saving only its
    input; gradcheck in float64, also with an overhanging ceil_mode window."""
    from gpuconv.autograd import gradcheck

    for p, k, s, ceil, shape in ((2.0, 2, None, False, (2, 2, 4, 4)), (2.5, (3, 2), 2, True, (1, 2, 6, 5))):
        x = gpuconv.Tensor(gpuconv.asarray(rng.uniform(0.5, 2.0, shape)), requires_grad=True)
        y = F.lp_pool2d(x, p, k, s, ceil)
        assert y.grad_fn.name == "LpPool2DBackward"
        assert gradcheck(lambda t: F.lp_pool2d(t, p, k, s, ceil), [x], eps=1e-6, atol=1e-7, rtol=1e-5)


def test_lp_pool2d_autograd_module_matches_torch(backend, rng):
    torch = pytest.importorskip("torch")
    x = rng.uniform(0.25, 2.0, (2, 3, 7, 7))
    ours, theirs = gpuconv.nn.LPPool2d(3, 3, stride=2, ceil_mode=True), torch.nn.LPPool2d(3, 3, stride=2, ceil_mode=True)
    assert repr(ours) == repr(theirs) == "LPPool2d(norm_type=3, kernel_size=3, stride=2, ceil_mode=True)"
    xs = gpuconv.Tensor(gpuconv.asarray(x), requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    y, yt = ours(xs), theirs(xt)
    assert ours.output_shape(x.shape) == tuple(yt.shape)
    dy = rng.standard_normal(tuple(yt.shape))
    (y * gpuconv.Tensor(gpuconv.asarray(dy))).sum().backward()
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(gpuconv.to_numpy(y.data), yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(gpuconv.to_numpy(xs.grad), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert gpuconv.nn.LPPool2d(2, 2).stride is None  # PyTorch keeps None


def test_lp_pool2d_bad_input(backend, rng):
    x = gpuconv.asarray(rng.standard_normal((2, 3, 6, 6)).astype(np.float32))
    for norm_type, error, message in ((0, ValueError, "norm_type must be a finite number > 0, got 0"),
                                      (-2.0, ValueError, "norm_type must be a finite number > 0, got -2.0"),
                                      (float("inf"), ValueError, "norm_type must be a finite number > 0, got inf"),
                                      (float("nan"), ValueError, "norm_type must be a finite number > 0, got nan"),
                                      ("2", TypeError, "norm_type must be a real number, got '2'"),
                                      (True, TypeError, "norm_type must be a real number, got True")):
        with pytest.raises(error, match=re.escape(message)):
            F.lp_pool2d(x, norm_type, 2)
    with pytest.raises(ValueError, match=r"input must be 4-D \(N, C, H, W\), got shape \(3, 6, 6\)"):
        F.lp_pool2d(x[0], 2, 2)
    with pytest.raises(TypeError, match="input must be float32 or float64, got float16"):
        F.lp_pool2d(gpuconv.asarray(np.ones((1, 1, 4, 4), np.float16)), 2, 2)
    with pytest.raises(ValueError, match="kernel_size must be positive, got 0"):
        F.lp_pool2d(x, 2, 0)
    with pytest.raises(ValueError, match="stride must be positive"):
        F.lp_pool2d(x, 2, 2, stride=(1, 0))
    with pytest.raises(ValueError, match="output size .* is too small"):
        F.lp_pool2d(x, 2, 7)
    y = F.lp_pool2d(x, 2, 2)
    with pytest.raises(ValueError, match=r"dy must have the forward output's shape \(2, 3, 3, 3\), got \(2, 3, 6, 6\)"):
        F.lp_pool2d_backward(x, x, 2, 2)
    with pytest.raises(TypeError, match="dy has dtype float64 but input has dtype float32"):
        F.lp_pool2d_backward(gpuconv.asarray(np.ones(y.shape)), x, 2, 2)


def test_lp_pool2d_bad_input_raises_before_any_kernel(emulated_without_kernels, rng):
    x = gpuconv.asarray(rng.standard_normal((1, 2, 5, 5)).astype(np.float32))
    with pytest.raises(ValueError, match="norm_type"):
        F.lp_pool2d(x, -1.0, 2)
    with pytest.raises(ValueError, match="dy must have"):
        F.lp_pool2d_backward(x, x, 2.0, 2)


def test_lp_pool2d_is_schedule_independent(rng):
    with gpuconv.backend("emulated"):
        x = gpuconv.asarray(rng.uniform(0.25, 2.0, (3, 5, 9, 8)).astype(np.float32))
        dy = gpuconv.asarray(rng.standard_normal((3, 5, 4, 4)).astype(np.float32))
        assert_schedule_independent(lambda: (F.lp_pool2d(x, 2.5, 3, 2, True),
                                             F.lp_pool2d_backward(dy, x, 2.5, 3, 2, True)))


@pytest.mark.measures_allocations
@pytest.mark.parametrize("name", ["numpy", "emulated"])
def test_lp_pool2d_memory_estimate_within_5_percent(name, monkeypatch):
    """A model with nn.LPPool2d: the estimator has no method for its primitives and runs their own
    code on shapes (gpuconv.backend.shape_only); the step's peak is within 5% of the measured one.
    The pooling's temporaries are at the step's peak here (counted as none, the estimate is 27% low
    on numpy, 9.5% on emulated)."""
    import gpuconv.memory as M
    from gpuconv.memory import _meta

    reason = gpuconv.backend.unavailable_reason(name)
    if reason:
        pytest.skip(reason)
    asked = []
    real = _meta.shape_only_primitive
    monkeypatch.setattr(_meta, "shape_only_primitive", lambda target, op: asked.append(op) or real(target, op))
    gpuconv.manual_seed(0)
    nn = gpuconv.nn
    model = nn.Sequential(nn.Conv2d(3, 16, 1), nn.LPPool2d(2, 3, stride=2, ceil_mode=True), nn.Flatten(),
                          nn.Linear(16 * 16 * 16, 10))
    with gpuconv.backend(name):
        model.to()
        result = M.compare(model, (16, 3, 32, 32), optimizer=gpuconv.optim.SGD(model.parameters(), lr=0.1),
                           verbose=False)
    assert {"lp_pool2d", "lp_pool2d_backward"} <= set(asked)
    est, got = result.estimate, result.measured
    assert abs(est.peak - got["peak"]) <= 0.05 * got["peak"], str(result)


# ---- indices the forward made are not checked again ---------------------------------------------
@pytest.mark.parametrize("kernel_size, stride, padding, dilation, ceil_mode", [
    (2, 2, 0, 1, False), (3, 2, 1, 1, True), (3, 1, 1, 2, False), (2, 3, 1, 1, True)])
def test_unchecked_backward_equals_the_checked_one(backend, rng, kernel_size, stride, padding, dilation, ceil_mode):
    x = gpuconv.asarray(rng.standard_normal((2, 3, 9, 8)))
    args = (kernel_size, stride, padding, dilation, ceil_mode)
    y, indices = F.max_pool2d(x, *args, return_indices=True)
    dy = gpuconv.asarray(rng.standard_normal(y.shape))
    checked = F.max_pool2d_backward(dy, x, indices, *args)
    unchecked = F.max_pool2d_backward(dy, x, indices, *args, check_indices=False)
    np.testing.assert_array_equal(gpuconv.to_numpy(unchecked), gpuconv.to_numpy(checked))


def test_autograd_passes_its_own_indices_unchecked_and_a_direct_call_checks(backend, rng, monkeypatch):
    seen = []
    original = type(backend).max_pool2d_backward

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("check_indices", True))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(backend), "max_pool2d_backward", spy)
    x = gpuconv.tensor(rng.standard_normal((2, 3, 8, 8)), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    assert seen == [False]
    y, indices = F.max_pool2d(x.data, 2, return_indices=True)
    F.max_pool2d_backward(gpuconv.asarray(np.ones(y.shape)), x.data, indices, 2)
    assert seen == [False, True]


def test_unchecked_backward_on_the_kernels_neither_checks_nor_syncs(kernel_backend, rng, monkeypatch):
    """Checking ends in a read of the device flag (a host sync); the forward's own indices skip it on
    both paths: the tiled kernel's (v2) and v1 followed by the check kernel."""
    reads = []
    original = type(kernel_backend).to_numpy
    monkeypatch.setattr(type(kernel_backend), "to_numpy", lambda self, a: reads.append(a.shape) or original(self, a))
    x = gpuconv.asarray(rng.standard_normal((2, 3, 9, 8)).astype(np.float32))
    y, indices = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    dy = gpuconv.asarray(rng.standard_normal(y.shape).astype(np.float32))
    for version in (2, 1):
        if version == 1:  # no shared memory for a tile: v1, then the check kernel
            monkeypatch.setattr(pool_launch, "TILE_SHARED_BYTES", 0)
        assert (pool_launch.pool_backward_tile(6, (9, 8), tuple(y.shape[2:]), ((3, 3), (2, 2), (1, 1)), 4, 8)
                is None) == (version == 1)
        reads.clear()
        F.max_pool2d_backward(dy, x, indices, 3, 2, 1, check_indices=False)
        assert reads == []
        F.max_pool2d_backward(dy, x, indices, 3, 2, 1)
        assert reads == [(1,)]
