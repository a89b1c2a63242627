"""algo="implicit_gemm" (kernels/conv_implicit_gemm.cu) against the float64 reference.

The random and hand-picked configurations of test_conv run through F.conv2d / conv2d_backward on
every backend (numpy maps the algorithm to its GEMM path); the kernel tests force each tile size
and several split counts on shapes that span several block tiles and end in partial ones.
"""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from gpuconv.backend.cuda import conv_implicit_gemm as igemm
from gpuconv.backend.cuda.tf32 import round_to_tf32
from gpuconv.functional import conv as conv_module
from gpuconv.functional import conv_algo
from tests import reference
from tests.helpers import assert_close, assert_schedule_independent, assert_sums_close, conv_sum_bounds
from tests.test_conv import CONFIGS, POINTWISE, _algo_id, _check_against_reference

MIXED = [{"forward": "implicit_gemm", "backward_data": "direct", "backward_weight": "implicit_gemm"},
         {"forward": "im2col", "backward_data": "implicit_gemm"}]


@pytest.mark.parametrize("index", range(len(CONFIGS)))
def test_matches_reference(backend, dtype, index):
    _check_against_reference("general", index, "implicit_gemm", dtype)


@pytest.mark.parametrize("algo", ["implicit_gemm"] + MIXED, ids=_algo_id)
@pytest.mark.parametrize("index", range(len(POINTWISE)))
def test_pointwise_and_mixed_match_reference(backend, algo, index):
    _check_against_reference("pointwise", index, algo, np.dtype(np.float32))


def _problem(x_shape, w_shape, stride, padding, dilation, groups, seed):
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    g = conv_module.conv_geometry(x_shape, w_shape, stride, padding, dilation, groups)
    dy = rng.standard_normal((g.n, g.c_out) + g.out_size)
    y = reference.conv2d(x, w, b, g.stride, g.padding, g.dilation, g.groups)
    dx, dw, _ = reference.conv2d_backward(dy, x, w, g.stride, g.padding, g.dilation, g.groups)
    return g, (x, w, b, dy), (y, dx, dw)


# GEMM dimensions that cross the tile boundaries of every size (32, 64, 128) and end in partial
# tiles, kept small for the emulator: the forward's and backward weight's M is C_out = 136 (N is
# 2*7*10 = 140 pixels, backward weight's N 30 taps); backward data's M is C_in = 136 in the second.
TILE_CASES = [
    ((2, 10, 7, 10), (136, 10, 1, 3), 1, (0, 1), 1, 1),
    ((2, 136, 5, 7), (4, 136, 1, 3), (1, 2), 1, (1, 2), 1),
    ((2, 12, 13, 11), (18, 4, 3, 2), (2, 3), (1, 2), (2, 1), 3),
]


@pytest.mark.parametrize("case", TILE_CASES, ids=["wide-c_out", "wide-c_in", "strided-grouped"])
def test_every_tile_and_split_count(kernel_backend, dtype, case):
    g, (x, w, b, dy), (y_ref, dx_ref, dw_ref) = _problem(*case, seed=4)
    X, W, B, DY = (gpuconv.asarray(a.astype(dtype)) for a in (x, w, b, dy))
    tiles = igemm.SIMT_TILES if dtype == np.float32 else igemm.F64_TILES  # the TF32 tiles: tests below
    y_sum, dx_sum, dw_sum, _ = conv_sum_bounds(g, x, w, dy, b)
    be = kernel_backend
    for tile in tiles:
        assert_sums_close(be.conv2d_implicit_gemm_forward(X, W, B, g, tile=tile), y_ref, *y_sum, dtype, f"y ({tile})")
        assert_sums_close(be.conv2d_implicit_gemm_backward_data(DY, W, g, tile=tile), dx_ref, *dx_sum, dtype,
                          f"dx ({tile})")
        for splits in (1, 3, 1000):  # one (dw written directly), a ragged last split, one BK step each
            dw = be.conv2d_implicit_gemm_backward_weight(DY, X, g, tile=tile, splits=splits)
            assert_sums_close(dw, dw_ref, *dw_sum, dtype, f"dweight ({tile}, {splits} splits)")


@pytest.mark.parametrize("tile", igemm.SIMT_TILES + ("tc_large", "tc_medium"))
def test_vector_loads_and_stores_match_the_element_paths(kernel_backend, dtype, tile):
    """Where OH*OW is a multiple of 4, backward weight loads dy as vectors (SIMT and tensor-core
    tiles); where H*W (backward data) or C_in/groups*KH*KW (backward weight) is a multiple of TN/2,
    the float32 SIMT tiles store their outputs as vectors (runs of TN/2 columns). dy one element off
    alignment takes backward weight's element loads, an image plane of odd size the element stores.
    Every path against the reference (TF32-rounded for the tensor-core tiles), with GEMM sizes that
    end in partial tiles; the forward (element stores) runs alongside."""
    if tile not in (igemm.TILES if dtype == np.float32 else igemm.F64_TILES):
        pytest.skip(f"no {tile} tile for {dtype}")
    for case in (((2, 12, 8, 8), (36, 12, 3, 3), 1, 1, 1, 1),   # OH*OW = H*W = 64, dw's N = 108
                 ((3, 8, 4, 6), (20, 4, 1, 2), (1, 2), 0, 1, 2),  # OH*OW = 12, H*W = 24, dw's N = 8
                 ((2, 6, 5, 7), (10, 6, 3, 3), 1, 1, 1, 1)):      # H*W = 35: backward data stores elements
        g, (x, w, b, dy), (y_ref, dx_ref, dw_ref) = _problem(*case, seed=9)
        sums = conv_sum_bounds(g, x, w, dy, b)
        if tile.startswith("tc_"):
            y_ref, dx_ref, dw_ref = _tf32_references(g, *(a.astype(np.float32) for a in (x, w, b, dy)))
            sums = _tf32_sum_bounds(g, *(a.astype(np.float32) for a in (x, w, b, dy)))
        y_sum, dx_sum, dw_sum, _ = sums
        X, W, B, DY = (gpuconv.asarray(a.astype(dtype)) for a in (x, w, b, dy))
        shifted = gpuconv.asarray(np.empty(dy.size + 1, dtype)[1:].reshape(dy.shape))
        shifted[...] = DY
        assert_sums_close(kernel_backend.conv2d_implicit_gemm_forward(X, W, B, g, tile=tile), y_ref, *y_sum, dtype, "y")
        assert_sums_close(kernel_backend.conv2d_implicit_gemm_backward_data(DY, W, g, tile=tile), dx_ref, *dx_sum,
                          dtype, "dx")
        for grad in (DY, shifted):
            for splits in (1, 3):
                assert_sums_close(kernel_backend.conv2d_implicit_gemm_backward_weight(grad, X, g, tile=tile,
                                                                                      splits=splits),
                                  dw_ref, *dw_sum, dtype, f"dweight ({splits} splits)")


def test_forward_epilogue_covers_every_window_row_and_plane(kernel_backend, dtype):
    """The SIMT forward stages its C tile through shared memory in windows of 32 columns and stores
    whole rows of a window per warp, adding the bias there. Planes of 35 pixels put plane
    boundaries inside windows; N = 105 pixels ends inside a window of every tile; 70 output
    channels per group end inside a row tile of every size; two groups offset the rows. With and
    without bias, every SIMT tile, against the reference (the output is poisoned before the kernel,
    so an element no warp stores fails)."""
    g, (x, w, b, dy), (y_ref, _, _) = _problem((3, 6, 5, 7), (140, 3, 3, 3), 1, 1, 1, 2, seed=10)
    y_nobias = reference.conv2d(x, w, None, g.stride, g.padding, g.dilation, g.groups)
    X, W, B = (gpuconv.asarray(a.astype(dtype)) for a in (x, w, b))
    y_sum, y_nobias_sum = conv_sum_bounds(g, x, w, dy, b)[0], conv_sum_bounds(g, x, w, dy)[0]
    for tile in igemm.SIMT_TILES if dtype == np.float32 else igemm.F64_TILES:
        assert_sums_close(kernel_backend.conv2d_implicit_gemm_forward(X, W, B, g, tile=tile), y_ref, *y_sum, dtype,
                          f"y ({tile})")
        assert_sums_close(kernel_backend.conv2d_implicit_gemm_forward(X, W, None, g, tile=tile), y_nobias,
                          *y_nobias_sum, dtype, f"y without bias ({tile})")


def test_forward_epilogue_is_schedule_independent():
    """The stage is written and read between barriers, four windows in a row for the large tile:
    a missing barrier shows as a difference between thread schedules."""
    g, (x, w, b, _), _ = _problem((2, 5, 6, 7), (72, 5, 3, 3), 1, 1, 1, 1, seed=11)
    with gpuconv.backend("emulated") as be:
        X, W, B = (a.astype(np.float32) for a in (x, w, b))
        assert_schedule_independent(lambda: be.conv2d_implicit_gemm_forward(X, W, B, g, tile="large"))


@pytest.mark.parametrize("tile", ["large", "medium", "small", "tc_medium"])
def test_forward_with_aligned_and_misaligned_weights(tile):
    """The forward loads weight rows as vectors when K % 4 == 0 and the weights are 16-byte
    aligned, element by element otherwise: a weight array one float off alignment takes the
    scalar path and must give the same result."""
    g, (x, w, b, dy), (y_ref, _, _) = _problem((2, 8, 6, 7), (70, 4, 3, 2), 1, 1, 1, 2, seed=8)  # K = 24
    X, W, B = (a.astype(np.float32) for a in (x, w, b))
    shifted = np.empty(W.size + 1, np.float32)[1:].reshape(W.shape)
    shifted[...] = W
    assert W.ctypes.data % 16 == 0 and shifted.ctypes.data % 16 != 0
    if tile.startswith("tc_"):
        expected, y_sum = _tf32_references(g, X, W, B, dy.astype(np.float32))[0], _tf32_sum_bounds(g, X, W, B, dy)[0]
    else:
        expected, y_sum = y_ref, conv_sum_bounds(g, x, w, dy, b)[0]
    with gpuconv.backend("emulated") as be:
        for weights in (W, shifted):
            assert_sums_close(be.conv2d_implicit_gemm_forward(X, weights, B, g, tile=tile), expected, *y_sum,
                              np.float32, "y")


def test_backward_weight_plan_counts_whole_steps():
    g = conv_module.conv_geometry((2, 70, 11, 13), (136, 70, 3, 3), 1, 1, 1, 1)
    k = 2 * 11 * 13
    for splits in (1, 2, 3, 7, 1000):
        tile, actual, k_split = igemm.backward_weight_plan(g, 4, "small", splits)
        assert tile == "small" and k_split % 8 == 0
        assert (actual - 1) * k_split < k <= actual * k_split  # every split has work, all of K is covered
    assert igemm.backward_weight_plan(g, 4, "small", 1000)[1:] == (-(-k // 8), 8)
    tile, splits, _ = igemm.backward_weight_plan(g, 8)
    assert tile in igemm.F64_TILES and splits >= 1


@pytest.mark.parametrize("tile", ["small", "tc_medium"])
def test_kernels_are_schedule_independent(tile):
    """Shared memory double buffering, the gather tables and (tensor cores) the warp scratch: any
    missing barrier shows as a difference between thread schedules."""
    g, (x, w, b, dy), _ = _problem((2, 6, 7, 9), (40, 3, 3, 2), 1, 1, (1, 2), 2, seed=5)
    with gpuconv.backend("emulated") as be:
        X, W, B, DY = (a.astype(np.float32) for a in (x, w, b, dy))
        assert_schedule_independent(lambda: (be.conv2d_implicit_gemm_forward(X, W, B, g, tile=tile),
                                             be.conv2d_implicit_gemm_backward_data(DY, W, g, tile=tile),
                                             be.conv2d_implicit_gemm_backward_weight(DY, X, g, tile=tile,
                                                                                     splits=3)))


def _tf32_references(g, x, w, b, dy):
    """(y, dx, dw) in float64 from the TF32-rounded operands (the bias is added unrounded)."""
    xr, wr, dyr = (round_to_tf32(a).astype(np.float64) for a in (x, w, dy))
    y = reference.conv2d(xr, wr, b.astype(np.float32), g.stride, g.padding, g.dilation, g.groups)
    dx, dw, _ = reference.conv2d_backward(dyr, xr, wr, g.stride, g.padding, g.dilation, g.groups)
    return y, dx, dw


def _tf32_sum_bounds(g, x, w, b, dy):
    """tests.helpers.conv_sum_bounds of the TF32-rounded operands: the tensor cores multiply them
    exactly and accumulate in float32."""
    return conv_sum_bounds(g, *(round_to_tf32(np.asarray(a, np.float32)).astype(np.float64) for a in (x, w, dy)),
                           np.asarray(b, np.float64))


@pytest.mark.parametrize("case", TILE_CASES, ids=["wide-c_out", "wide-c_in", "strided-grouped"])
def test_tensor_core_kernels_match_the_tf32_rounded_reference(case):
    g, (x, w, b, dy), exact = _problem(*case, seed=6)
    X, W, B, DY = (a.astype(np.float32) for a in (x, w, b, dy))
    expected = _tf32_references(g, X, W, B, DY)
    with gpuconv.backend("emulated") as be:
        for tile in ("tc_large", "tc_medium"):
            got = (be.conv2d_implicit_gemm_forward(X, W, B, g, tile=tile),
                   be.conv2d_implicit_gemm_backward_data(DY, W, g, tile=tile),
                   be.conv2d_implicit_gemm_backward_weight(DY, X, g, tile=tile, splits=2))
            for name, actual, want, full, sums in zip(("y", "dx", "dw"), got, expected, exact,
                                                      _tf32_sum_bounds(g, X, W, B, DY)[:3], strict=True):
                assert_sums_close(actual, want, *sums, np.float32, f"{name} ({tile})")
                # the test can tell TF32 from FP32: the unrounded result is further away
                assert np.abs(actual - full).max() > 5e-4, (tile, name)


def test_allow_tf32_runs_the_tensor_cores_for_float32_only():
    g, (x, w, b, dy), exact = _problem((2, 5, 9, 8), (70, 5, 3, 3), 1, "same", 1, 1, seed=7)
    args = dict(padding="same")
    X, W, B, DY = (a.astype(np.float32) for a in (x, w, b, dy))
    with gpuconv.backend("emulated"), gpuconv.flags(allow_tf32=True):
        y = F.conv2d(X, W, B, **args, algo="implicit_gemm")
        dx, dw, _ = F.conv2d_backward(DY, X, W, **args, algo="implicit_gemm")
        for name, actual, want, sums in zip(("y", "dx", "dw"), (y, dx, dw), _tf32_references(g, X, W, B, DY),
                                            _tf32_sum_bounds(g, X, W, B, DY)[:3], strict=True):
            assert_sums_close(actual, want, *sums, np.float32, name)
        y64 = F.conv2d(x, w, b, **args, algo="implicit_gemm")
        dx64, dw64, _ = F.conv2d_backward(dy, x, w, **args, algo="implicit_gemm")
        for actual, want in zip((y64, dx64, dw64), exact, strict=True):
            assert_close(actual, want, np.float64)


def test_tf32_falls_back_to_fp32_with_one_warning_before_sm80(monkeypatch):
    monkeypatch.setattr(igemm, "_warned_tf32", False)
    gpu = object()  # an array module that is not NumPy: a GPU
    monkeypatch.setattr(igemm, "_device_capability", lambda: (7, 5))
    with gpuconv.flags(allow_tf32=True):
        with pytest.warns(RuntimeWarning, match=r"no TF32 tensor cores \(compute capability 7\.5 < 8\.0\)") as caught:
            assert igemm.use_tf32(gpu, np.float32) is False
            assert igemm.use_tf32(gpu, np.float32) is False
        assert len(caught) == 1
        assert igemm.use_tf32(gpu, np.float64) is False
        monkeypatch.setattr(igemm, "_device_capability", lambda: (9, 0))
        assert igemm.use_tf32(gpu, np.float32) is True
        assert igemm.use_tf32(np, np.float32) is True  # the emulated backend
    assert igemm.use_tf32(gpu, np.float32) is False  # the flag off


def test_tile_choice_follows_the_problem_size():
    assert igemm.pick_tile(256, 32 * 56 * 56, 1, 4) == "large"
    assert igemm.pick_tile(256, 32 * 56 * 56, 1, 8) == "medium"  # float64 has no large tile
    assert igemm.pick_tile(64, 32 * 56 * 56, 1, 4) == "medium"
    assert igemm.pick_tile(16, 200, 1, 4) == "small"
    g = conv_module.conv_geometry((32, 256, 14, 14), (256, 256, 3, 3), 1, 1, 1, 1)
    tile, splits, _ = igemm.backward_weight_plan(g, 4)
    assert tile == "large" and splits > 1  # 2 x 18 tiles of dw: K = 6272 is split to fill the GPU


def test_workspace_is_the_split_partial_sums():
    x_shape, w_shape = (8, 64, 28, 28), (64, 64, 3, 3)
    weight_bytes = 64 * 64 * 9 * 4
    g = conv_module.conv_geometry(x_shape, w_shape, 1, 1, 1, 1)
    splits = igemm.backward_weight_splits(g, 4)
    assert splits > 1
    args = (x_shape, w_shape, np.float32)
    for direction, expected in (("forward", 0), ("backward_data", 0), ("backward_weight", splits * weight_bytes)):
        assert F.conv2d_workspace_bytes(*args, padding=1, algo="implicit_gemm", direction=direction) == expected


def test_unsupported_sizes_raise_before_any_kernel(emulated_without_kernels):
    # 2^31 elements in one input image: the kernels' 32-bit offsets cannot address it.
    with pytest.raises(ValueError, match=r"algo='implicit_gemm' cannot run this convolution \(forward\): an input "
                                         r"image has 2147483648 elements"):
        F.conv2d_workspace_bytes((1, 2**15, 2**8, 2**8), (1, 2**15, 1, 1), np.float32, algo="implicit_gemm",
                                 direction="forward")
    g = conv_module.conv_geometry((1, 1, 40000, 2), (1, 1, 1, 1), 1, 0, 1, 1)
    assert "reaches 32768" in igemm.unsupported_reason(g)
    assert "implicit_gemm" not in conv_algo.candidates(g)
    x, w = np.ones((1, 2, 5, 5), np.float32), np.ones((3, 2, 3, 3), np.float32)
    gx = conv_module.conv_geometry(x.shape, w.shape, 1, 0, 1, 1)
    with pytest.raises(ValueError, match=r"tile must be one of \['large', 'medium', 'small', 'tc_large', "
                                         r"'tc_medium'\].* got 'huge'"):
        emulated_without_kernels.conv2d_implicit_gemm_forward(x, w, None, gx, tile="huge")
    with pytest.raises(ValueError, match=r"float64: \['medium', 'small'\]\), got 'large'"):
        emulated_without_kernels.conv2d_implicit_gemm_forward(x.astype(np.float64), w.astype(np.float64), None, gx,
                                                              tile="large")
