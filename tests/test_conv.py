"""conv2d and conv2d_backward: every algorithm on every backend against the float64 reference."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from gpuconv.backend.kernel_stubs import stubbed_kernels
from gpuconv.functional import conv as conv_module
from gpuconv.functional import conv_algo
from tests.helpers import (assert_close, assert_schedule_independent, assert_sums_close, conv_sum_bounds,
                           finite_difference_check)

from tests import reference


def _random_configs(count: int, seed: int, pointwise: bool = False):
    """Random small convolutions covering the option space (kernel 1-5 incl. even, stride 1-3,
    padding 0-2 / 'same' / 'valid', dilation 1-3, groups incl. depthwise, H and W odd incl. 1)."""
    rng = np.random.default_rng(seed)
    configs = []
    while len(configs) < count:
        groups = int(rng.choice([1, 1, 2, 3]))
        cg, kg = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        if rng.random() < 0.2:
            cg, kg = 1, 1  # depthwise
        n = int(rng.integers(1, 4))
        if pointwise:
            kernel, stride, dilation = (1, 1), (1, 1), (1, 1)
            padding = "valid" if rng.random() < 0.5 else 0
        else:
            kernel = tuple(int(v) for v in rng.integers(1, 6, size=2))
            stride = tuple(int(v) for v in rng.integers(1, 4, size=2))
            dilation = tuple(int(v) for v in rng.integers(1, 4, size=2))
            choice = rng.random()
            if choice < 0.15 and stride == (1, 1):
                padding = "same"
            elif choice < 0.25:
                padding = "valid"
            elif choice < 0.6:
                padding = int(rng.integers(0, 3))
            else:
                padding = tuple(int(v) for v in rng.integers(0, 3, size=2))
        h, w = (int(v) for v in rng.choice([1, 2, 3, 5, 6, 7, 9, 11, 13], size=2))
        try:
            conv_module.conv_geometry((n, groups * cg, h, w), (groups * kg, cg) + kernel, stride, padding, dilation,
                                      groups)
        except ValueError:
            continue  # the kernel does not fit the padded input
        configs.append(dict(shape=(n, groups * cg, h, w), weight=(groups * kg, cg) + kernel, stride=stride,
                            padding=padding, dilation=dilation, groups=groups, bias=bool(rng.random() < 0.7)))
    return configs


# Larger hand-picked cases: several 16x8 output tiles and more than 8 output channels per group
# (several CONV_CO_BLOCK blocks in direct v2), "same" with even kernels, a single-pixel input.
EXPLICIT = [
    dict(shape=(2, 3, 19, 21), weight=(10, 3, 3, 3), stride=(1, 1), padding=1, dilation=(1, 1), groups=1, bias=True),
    dict(shape=(1, 4, 11, 18), weight=(18, 2, 4, 2), stride=(1, 1), padding="same", dilation=(2, 1), groups=2,
         bias=False),
    dict(shape=(3, 5, 9, 7), weight=(5, 1, 3, 3), stride=(1, 1), padding="same", dilation=(1, 1), groups=5, bias=True),
    dict(shape=(2, 2, 1, 1), weight=(3, 2, 1, 1), stride=(2, 3), padding=0, dilation=(1, 1), groups=1, bias=True),
    dict(shape=(1, 2, 1, 1), weight=(3, 2, 3, 3), stride=(1, 1), padding=1, dilation=(1, 1), groups=1, bias=True),
    # strided, several 16x16 tiles of dx and more than 8 input channels per group (direct backward v3)
    dict(shape=(1, 10, 21, 19), weight=(3, 10, 5, 5), stride=(2, 2), padding=2, dilation=(1, 1), groups=1, bias=True),
    dict(shape=(2, 18, 17, 18), weight=(4, 9, 3, 2), stride=(3, 2), padding=(1, 0), dilation=(1, 2), groups=2,
         bias=False),
]
CONFIGS = EXPLICIT + _random_configs(30, seed=3)
POINTWISE = _random_configs(4, seed=5, pointwise=True)


@functools.lru_cache(maxsize=None)
def _case(key: str, index: int):
    """Inputs and float64 reference results of one configuration (computed once per process)."""
    cfg = (CONFIGS if key == "general" else POINTWISE)[index]
    rng = np.random.default_rng(1000 + index + (0 if key == "general" else 500))
    x = rng.standard_normal(cfg["shape"])
    weight = rng.standard_normal(cfg["weight"])
    bias = rng.standard_normal(cfg["weight"][0]) if cfg["bias"] else None
    g = conv_module.conv_geometry(x.shape, weight.shape, cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"])
    y = reference.conv2d(x, weight, bias, g.stride, g.padding, g.dilation, g.groups)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = reference.conv2d_backward(dy, x, weight, g.stride, g.padding, g.dilation, g.groups)
    return cfg, x, weight, bias, dy, (y, dx, dw, db)


@functools.lru_cache(maxsize=None)
def _sum_bounds(key: str, index: int):
    """tests.helpers.conv_sum_bounds of one configuration (computed once per process)."""
    cfg, x, weight, bias, dy, _ = _case(key, index)
    return conv_sum_bounds(conv_module.conv_geometry(x.shape, weight.shape, **_args(cfg)), x, weight, dy, bias)


def _args(cfg):
    return dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"])


def _check_against_reference(key, index, algo, dtype):
    cfg, x, weight, bias, dy, expected = _case(key, index)
    X, W, DY = (gpuconv.asarray(a.astype(dtype)) for a in (x, weight, dy))
    B = gpuconv.asarray(bias.astype(dtype)) if bias is not None else None
    y = F.conv2d(X, W, B, **_args(cfg), algo=algo)
    dx, dw, db = F.conv2d_backward(DY, X, W, **_args(cfg), algo=algo)
    for name, actual, want, (length, magnitude) in zip(("y", "dx", "dweight", "dbias"), (y, dx, dw, db), expected,
                                                        _sum_bounds(key, index), strict=True):
        assert gpuconv.to_numpy(actual).dtype == dtype, name
        try:
            assert_sums_close(actual, want, length, magnitude, dtype, name)
        except AssertionError as exc:
            raise AssertionError(f"{name} differs for {cfg} (algo {algo})") from exc


# Per-direction choices: every algorithm runs in every direction somewhere in these.
MIXED = [
    {"forward": "direct", "backward_data": "im2col", "backward_weight": "direct"},
    {"forward": "im2col", "backward_data": "direct"},  # backward_weight: auto
]
POINTWISE_MIXED = [{"forward": "gemm", "backward_data": "gemm", "backward_weight": "direct"},
                   {"forward": "direct", "backward_data": "direct", "backward_weight": "gemm"}]


def _algo_id(algo):
    return algo if isinstance(algo, str) else "+".join(f"{k[0]}{k[-1]}={v}" for k, v in algo.items())


@pytest.mark.parametrize("algo", ["im2col", "direct", "auto"] + MIXED, ids=_algo_id)
@pytest.mark.parametrize("index", range(len(CONFIGS)))
def test_matches_reference(backend, dtype, algo, index):
    _check_against_reference("general", index, algo, dtype)


@pytest.mark.parametrize("algo", ["gemm", "im2col", "direct", "auto"] + POINTWISE_MIXED, ids=_algo_id)
@pytest.mark.parametrize("index", range(len(POINTWISE)))
def test_pointwise_matches_reference(backend, dtype, algo, index):
    _check_against_reference("pointwise", index, algo, dtype)


@pytest.mark.parametrize("index", range(len(CONFIGS)))
def test_direct_kernel_versions_match_reference(kernel_backend, dtype, index):
    """Both versions of every direct kernel, where each applies (v2 backward data needs stride 1,
    v2 backward weight a tile that fits)."""
    from gpuconv.backend.cuda.conv_direct import backward_weight_v2_splits
    cfg, x, weight, bias, dy, (y_ref, dx_ref, dw_ref, _) = _case("general", index)
    y_sum, dx_sum, dw_sum, _ = _sum_bounds("general", index)
    g = conv_module.conv_geometry(x.shape, weight.shape, **_args(cfg))
    X, W, DY = (gpuconv.asarray(a.astype(dtype)) for a in (x, weight, dy))
    B = gpuconv.asarray(bias.astype(dtype)) if bias is not None else None
    for version in (1, 2):
        assert_sums_close(kernel_backend.conv2d_direct_forward(X, W, B, g, version=version), y_ref, *y_sum, dtype,
                          f"y (v{version})")
    for version in (1, 2, 3) if g.stride == (1, 1) else (1, 3):
        assert_sums_close(kernel_backend.conv2d_direct_backward_data(DY, W, g, version=version), dx_ref, *dx_sum,
                          dtype, f"dx (v{version})")
    assert backward_weight_v2_splits(g) > 0
    for version in (1, 2):
        assert_sums_close(kernel_backend.conv2d_direct_backward_weight(DY, X, g, version=version), dw_ref, *dw_sum,
                          dtype, f"dweight (v{version})")


def test_direct_backward_weight_v2_lanes_and_splits(kernel_backend):
    """Cases that exercise each branch of the v2 kernel: 256 lanes per tap (1x1), 5 (7x7), one
    (12x11 taps), many splits, a partial channel block, and more splits than output rows fill."""
    from gpuconv.backend.cuda.conv_direct import backward_weight_v2_splits
    rng = np.random.default_rng(11)
    for x_shape, w_shape, stride, padding, dilation, groups in [
            ((3, 4, 9, 10), (6, 4, 1, 1), 1, 0, 1, 1), ((2, 3, 23, 21), (11, 3, 7, 7), 2, 3, 1, 1),
            ((1, 4, 6, 5), (10, 2, 3, 2), (1, 2), (2, 1), (2, 1), 2), ((5, 2, 3, 3), (3, 2, 3, 3), 1, 1, 1, 1),
            ((1, 2, 14, 13), (3, 2, 12, 11), 1, 1, 1, 1)]:
        x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
        g = conv_module.conv_geometry(x_shape, w_shape, stride, padding, dilation, groups)
        dy = rng.standard_normal((g.n, g.c_out) + g.out_size)
        assert backward_weight_v2_splits(g) >= 1
        _, dw_ref, _ = reference.conv2d_backward(dy, x, w, g.stride, g.padding, g.dilation, g.groups)
        assert_close(kernel_backend.conv2d_direct_backward_weight(gpuconv.asarray(dy), gpuconv.asarray(x), g,
                                                                  version=2), dw_ref)


def test_direct_v2_falls_back_to_v1_when_the_tile_is_too_large(kernel_backend):
    from gpuconv.backend.cuda.conv_direct import (MAX_SHARED_BYTES, backward_weight_v2_splits,
                                                      forward_v2_shared_bytes)
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((1, 1, 700, 9)), rng.standard_normal((1, 1, 40, 1))
    g = conv_module.conv_geometry(x.shape, w.shape, 30, 0, 17, 1)
    assert forward_v2_shared_bytes(g, 8) > MAX_SHARED_BYTES
    y = F.conv2d(gpuconv.asarray(x), gpuconv.asarray(w), stride=30, dilation=17, algo="direct")
    assert_close(y, reference.conv2d(x, w, None, (30, 30), (0, 0, 0, 0), (17, 17), 1))
    # a 40x40 kernel: 8 x 1600 elements of dw per block is more than the v2 backward weight holds
    x, w = rng.standard_normal((1, 1, 41, 42)), rng.standard_normal((1, 1, 40, 40))
    g = conv_module.conv_geometry(x.shape, w.shape)
    assert backward_weight_v2_splits(g) == 0
    assert F.conv2d_workspace_bytes(x.shape, w.shape, np.float64, algo="direct", direction="backward_weight") == 0
    dy = rng.standard_normal((1, 1) + g.out_size)
    _, dw, _ = F.conv2d_backward(gpuconv.asarray(dy), gpuconv.asarray(x), gpuconv.asarray(w), algo="direct")
    assert_close(dw, reference.conv2d_backward(dy, x, w, (1, 1), (0, 0, 0, 0), (1, 1), 1)[1])


@pytest.mark.parametrize("index", [0, 1, 2, 5, 10])
def test_direct_kernels_are_schedule_independent(index):
    cfg, x, weight, bias, dy, _ = _case("general", index)
    with gpuconv.backend("emulated") as be:
        g = conv_module.conv_geometry(x.shape, weight.shape, **_args(cfg))
        X, W, DY = (gpuconv.asarray(a.astype(np.float32)) for a in (x, weight, dy))
        B = gpuconv.asarray(bias.astype(np.float32)) if bias is not None else None
        assert_schedule_independent(lambda: (be.conv2d_direct_forward(X, W, B, g, version=2),
                                             be.conv2d_direct_forward(X, W, B, g, version=1),
                                             be.conv2d_direct_backward_data(DY, W, g),
                                             be.conv2d_direct_backward_data(DY, W, g, version=3),
                                             be.conv2d_direct_backward_weight(DY, X, g, version=1),
                                             be.conv2d_direct_backward_weight(DY, X, g, version=2)))


def test_bias_epilogue_adds_bias_and_applies_the_activation(kernel_backend, dtype):
    rng = np.random.default_rng(5)
    y, bias = rng.standard_normal((3, 5, 7, 9)).astype(dtype), rng.standard_normal(5).astype(dtype)
    for activation, expected in ((None, y + bias[:, None, None]), ("relu", np.maximum(y + bias[:, None, None], 0))):
        out = gpuconv.asarray(y.copy())  # the kernel works in place
        kernel_backend.conv2d_bias_epilogue(out, gpuconv.asarray(bias), activation)
        assert_close(out, expected, dtype)
    out = gpuconv.asarray(y.copy())
    kernel_backend.conv2d_bias_epilogue(out, None, "relu")
    assert_close(out, np.maximum(y, 0), dtype)


@pytest.fixture
def tiny_workspace():
    previous = F.get_workspace_limit()
    F.set_workspace_limit(1)  # every chunk is one image
    yield
    F.set_workspace_limit(previous)


@pytest.mark.parametrize("index", [i for i, c in enumerate(CONFIGS) if c["shape"][0] > 1][:3])
def test_chunking_does_not_change_results(backend, index, request):
    cfg, x, weight, bias, dy, _ = _case("general", index)
    X, W, DY = (gpuconv.asarray(a.astype(np.float32)) for a in (x, weight, dy))
    B = gpuconv.asarray(bias.astype(np.float32)) if bias is not None else None

    def run():
        y = F.conv2d(X, W, B, **_args(cfg), algo="im2col")
        return (y,) + F.conv2d_backward(DY, X, W, **_args(cfg), algo="im2col")

    whole = [gpuconv.to_numpy(a).copy() for a in run()]
    g = conv_module.conv_geometry(x.shape, weight.shape, **_args(cfg))
    assert g.images_per_chunk(4, F.get_workspace_limit()) == x.shape[0]
    request.getfixturevalue("tiny_workspace")
    assert g.images_per_chunk(4, F.get_workspace_limit()) == 1
    chunked = [gpuconv.to_numpy(a) for a in run()]
    # The GEMMs span a chunk, and BLAS may pick another kernel (another summation order) for another
    # width; dweight sums one GEMM per chunk. Each may differ by the rounding of a float32 sum.
    for name, a, b, (length, magnitude) in zip(("y", "dx", "dweight"), chunked, whole, _sum_bounds("general", index)):
        assert_sums_close(a, b, length, magnitude, np.float32, name)
    np.testing.assert_array_equal(chunked[3], whole[3])  # dbias


@pytest.mark.parametrize("algo", ["im2col", "direct"])
@pytest.mark.parametrize("index", [1, 4, 8])
def test_gradients_by_finite_differences(backend, algo, index):
    cfg, x, weight, bias, _, _ = _case("general", index)
    x, weight = x.copy(), weight.copy()
    bias = np.random.default_rng(index).standard_normal(weight.shape[0])
    out_shape = (x.shape[0], weight.shape[0]) + conv_module.conv_geometry(x.shape, weight.shape, **_args(cfg)).out_size
    probe = np.random.default_rng(index + 1).standard_normal(out_shape)

    def loss(x, weight, bias):
        y = F.conv2d(gpuconv.asarray(x), gpuconv.asarray(weight), gpuconv.asarray(bias), **_args(cfg), algo=algo)
        return float((gpuconv.to_numpy(y) * probe).sum())

    dx, dw, db = F.conv2d_backward(gpuconv.asarray(probe), gpuconv.asarray(x), gpuconv.asarray(weight), **_args(cfg),
                                   algo=algo)
    finite_difference_check(loss, dict(x=x, weight=weight, bias=bias),
                            dict(x=gpuconv.to_numpy(dx), weight=gpuconv.to_numpy(dw), bias=gpuconv.to_numpy(db)),
                            samples=6)


def test_needs_selects_the_gradients(backend):
    rng = np.random.default_rng(0)
    x, w = gpuconv.asarray(rng.standard_normal((2, 3, 5, 5))), gpuconv.asarray(rng.standard_normal((4, 3, 3, 3)))
    dy = gpuconv.asarray(rng.standard_normal((2, 4, 3, 3)))
    dx, dw, db = F.conv2d_backward(dy, x, w, needs=(False, True, False))
    assert dx is None and db is None and dw.shape == (4, 3, 3, 3)
    dx, dw, db = F.conv2d_backward(dy, x, w, needs=(True, False, True))
    assert dx.shape == (2, 3, 5, 5) and dw is None and db.shape == (4,)


def test_non_contiguous_inputs(backend):
    rng = np.random.default_rng(1)
    bases = [rng.standard_normal(s) for s in ((2, 6, 7, 9), (3, 4, 3, 2), (8,), (2, 4, 9, 7 * 2))]
    # The same strided views of the host data (for the references) and of the backend's own arrays
    # (gpuconv.asarray of a strided NumPy view gives a contiguous array on cupy).
    views = (lambda a: a.transpose(0, 1, 3, 2)[:, ::2],  # (2, 3, 9, 7), strided
             lambda a: a.transpose(1, 0, 3, 2),  # (4, 3, 2, 3)
             lambda a: a[::2],
             lambda a: a[..., ::2])  # (2, 4, 9, 7)
    x, w, b, dy = (view(a) for view, a in zip(views, bases, strict=True))
    expected_y = reference.conv2d(x, w, b, (1, 1), (0, 1, 1, 1), (1, 1), 1)
    expected = reference.conv2d_backward(dy, x, w, (1, 1), (0, 1, 1, 1), (1, 1), 1)
    X, W, B, DY = (view(gpuconv.asarray(a)) for view, a in zip(views, bases, strict=True))
    assert not X.flags.c_contiguous and not W.flags.c_contiguous
    for algo in ("im2col", "direct"):
        assert_close(F.conv2d(X, W, B, padding="same", algo=algo), expected_y)
        for actual, want in zip(F.conv2d_backward(DY, X, W, padding="same", algo=algo), expected, strict=True):
            assert_close(actual, want)


def test_same_padding_with_even_kernel_matches_pytorch_split(backend):
    # PyTorch pads an even total as left = total // 2, right = the rest.
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((1, 2, 6, 5)), rng.standard_normal((3, 2, 4, 2))
    y = F.conv2d(gpuconv.asarray(x), gpuconv.asarray(w), padding="same", dilation=(1, 3))
    assert y.shape == (1, 3, 6, 5)
    assert_close(y, reference.conv2d(x, w, None, (1, 1), (1, 2, 1, 2), (1, 3), 1))


@pytest.fixture
def gpu_heuristic(monkeypatch):
    """F.choose_algo answering with the GPU's rule whatever backend is current (the numpy backend
    has its own, tested in test_auto_on_numpy_follows_the_numpy_rule)."""
    monkeypatch.setattr(gpuconv.backend.get_backend(), "conv_heuristic", lambda g, direction: None)


def test_choose_algo_per_direction_follows_the_measured_tables(gpu_heuristic):
    stem = dict(x_shape=(32, 3, 224, 224), weight_shape=(64, 3, 7, 7), stride=2, padding=3)
    # r18 conv1: direct is the best forward; the direct backward was 43.5% + 5.7% of a step
    assert [F.choose_algo(**stem, direction=d) for d in F.DIRECTIONS] == ["direct", "im2col", "im2col"]
    assert F.choose_algo((8, 64, 56, 56), (128, 64, 1, 1)) == "gemm"
    assert F.choose_algo((8, 64, 56, 56), (128, 64, 1, 1), direction="backward_data") == "gemm"
    assert F.choose_algo((8, 64, 56, 56), (128, 64, 1, 1), direction="backward_weight") == "im2col"
    assert F.choose_algo((8, 64, 56, 56), (64, 1, 3, 3), padding=1, groups=64) == "direct"
    assert F.choose_algo((8, 64, 56, 56), (64, 1, 3, 3), padding=1, groups=64, direction="backward_weight") == "im2col"
    assert F.choose_algo((8, 64, 56, 56), (64, 64, 3, 3), padding=1) == "im2col"
    assert F.choose_algo((8, 64, 224, 224), (64, 64, 3, 3), padding=1) == "direct"  # vgg conv1_2
    assert F.choose_algo((8, 64, 224, 224), (64, 64, 3, 3), padding=1, direction="backward_data") == "im2col"
    assert F.choose_algo((8, 64, 56, 56), (128, 64, 1, 1), stride=2) == "im2col"
    with pytest.raises(ValueError, match="direction must be one of .* got 'backward'"):
        F.choose_algo((8, 64, 56, 56), (64, 64, 3, 3), direction="backward")


def test_workspace_bytes_per_direction():
    per_image = 64 * 9 * 56 * 56 * 4
    dy_image, weight = 64 * 56 * 56 * 4, 64 * 64 * 9 * 4
    args = ((8, 64, 56, 56), (64, 64, 3, 3), np.float32)
    assert F.conv2d_workspace_bytes(*args, padding=1, direction="forward") == 8 * per_image
    assert F.conv2d_workspace_bytes(*args, padding=1, direction="backward_data") == 8 * per_image + weight
    assert F.conv2d_workspace_bytes(*args, padding=1, direction="backward_weight") == 8 * (per_image + dy_image)
    assert F.conv2d_workspace_bytes(*args, padding=1) == 8 * (per_image + dy_image)  # the largest direction
    assert F.conv2d_workspace_bytes(*args, padding=1, algo="direct", direction="forward") == 0
    assert F.conv2d_workspace_bytes(*args, padding=1, algo={"backward_weight": "direct"},
                                    direction="backward_data") == 8 * per_image + weight
    assert F.conv2d_workspace_bytes((8, 64, 56, 56), (64, 64, 1, 1), np.float32, direction="forward") == 0
    # VGG conv1_2 at 224x224: 116 MB of columns per image, so two images per 256 MiB chunk.
    assert F.conv2d_workspace_bytes((8, 64, 224, 224), (64, 64, 3, 3), np.float32, padding=1, algo="im2col",
                                    direction="forward") == 2 * 64 * 9 * 224 * 224 * 4
    with gpuconv.flags(workspace_limit=per_image):
        assert F.conv2d_workspace_bytes(*args, padding=1, direction="forward") == per_image
        # one image per chunk, so each chunk's dweight goes through a temporary before it is added
        assert F.conv2d_workspace_bytes(*args, padding=1, direction="backward_weight") == \
            per_image + dy_image + weight


# Each (shape, arguments) makes every buffer an algorithm allocates larger than the slack left for
# Python objects and launch arguments (12 KiB) in float64, so a buffer counted but not allocated, or
# allocated but not counted, fails the test; only the depthwise case's weights (4.6 KiB) are smaller.
WORKSPACE_CASES = [
    ((3, 16, 8, 9), (32, 16, 3, 3), 1, 1, 1, 1),
    ((3, 16, 8, 9), (48, 8, 3, 3), 1, 1, 1, 2),
    ((2, 48, 6, 7), (64, 48, 1, 1), 1, 0, 1, 1),
    ((4, 64, 9, 10), (64, 1, 3, 3), 2, 1, 1, 64),
    ((2, 3, 16, 16), (96, 3, 7, 7), 2, 3, 1, 1),
]


@pytest.mark.measures_allocations
@pytest.mark.parametrize("limit", [None, 1], ids=["whole-batch", "one-image-chunks"])
@pytest.mark.parametrize("case", WORKSPACE_CASES, ids=lambda c: f"{c[0]}-{c[1]}-g{c[5]}")
def test_workspace_bytes_are_exact_on_the_emulated_backend(case, limit):
    """Peak of the memory allocated inside each direction (tracemalloc sees every NumPy buffer) minus
    its outputs, against conv2d_workspace_bytes, for every algorithm that applies. The kernels are
    stubbed while measuring: the launchers allocate the same buffers, and the emulator's own
    per-launch Python objects (a few KB each, more with more launches) stay out of the count."""
    import tracemalloc
    if gpuconv.backend.unavailable_reason("emulated"):
        pytest.skip("emulated backend unavailable")
    x_shape, w_shape, stride, padding, dilation, groups = case
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    g = conv_module.conv_geometry(x_shape, w_shape, **kwargs)
    dy = rng.standard_normal((g.n, g.c_out) + g.out_size)
    calls = {"forward": lambda a: F.conv2d(x, w, b, **kwargs, algo=a),
             "backward_data": lambda a: F.conv2d_backward(dy, x, w, **kwargs, algo=a, needs=(True, False, False)),
             "backward_weight": lambda a: F.conv2d_backward(dy, x, w, **kwargs, algo=a, needs=(False, True, False))}
    with gpuconv.backend("emulated"), gpuconv.flags(workspace_limit=limit or conv_module.DEFAULT_WORKSPACE_LIMIT):
        for algo in conv_algo.candidates(g):  # every registered algorithm that applies
            for direction, call in calls.items():
                expected = F.conv2d_workspace_bytes(x_shape, w_shape, np.float64, **kwargs, algo=algo,
                                                    direction=direction)
                call(algo)  # kernels compiled and loaded before measuring
                with stubbed_kernels(gpuconv.backend.get_backend()), np.errstate(invalid="ignore"):
                    call(algo)  # launch plans made before measuring
                    tracemalloc.start()
                    try:
                        start = tracemalloc.get_traced_memory()[0]
                        out = call(algo)
                        peak = tracemalloc.get_traced_memory()[1]
                    finally:
                        tracemalloc.stop()
                outputs = sum(a.nbytes for a in (out if isinstance(out, tuple) else (out,)) if a is not None)
                measured = peak - start - outputs
                assert 0 <= measured - expected < 12 * 1024, (algo, direction, measured, expected)


def test_workspace_limit_is_a_flag():
    with pytest.raises(ValueError, match=r"workspace_limit must be a positive int \(bytes\), got 0"):
        F.set_workspace_limit(0)
    assert F.get_workspace_limit() == conv_module.DEFAULT_WORKSPACE_LIMIT == gpuconv.flags.workspace_limit
    with gpuconv.flags(workspace_limit=1234):
        assert F.get_workspace_limit() == 1234


BAD = [
    (dict(x=(2, 3, 8, 8), w=(4, 2, 3, 3)), ValueError, r"weight: expected C_in/groups = 3/1 = 3 .* got 2"),
    (dict(x=(2, 4, 8, 8), w=(4, 2, 3, 3), groups=3), ValueError, r"groups=3 must divide the input channels.*C_in=4"),
    (dict(x=(2, 6, 8, 8), w=(4, 2, 3, 3), groups=3), ValueError, r"groups=3 must divide the output channels.*C_out=4"),
    (dict(x=(2, 3, 4, 4), w=(4, 3, 7, 3)), ValueError, r"weight: kernel 7x3 .* larger than the padded input 4x4"),
    (dict(x=(3, 8, 8), w=(4, 3, 3, 3)), ValueError, r"x must be 4-D .* got shape \(3, 8, 8\)"),
    (dict(x=(2, 3, 8, 8), w=(4, 3, 3)), ValueError, r"weight must be 4-D .* got shape \(4, 3, 3\)"),
    (dict(x=(2, 3, 8, 8), w=(4, 3, 3, 3), padding=-1), ValueError, r"padding must be non-negative, got -1"),
    (dict(x=(2, 3, 8, 8), w=(4, 3, 3, 3), padding="full"), ValueError, r"padding must be .* got 'full'"),
    (dict(x=(2, 3, 8, 8), w=(4, 3, 3, 3), stride=0), ValueError, r"stride must be positive, got 0"),
    (dict(x=(2, 3, 8, 8), w=(4, 3, 3, 3), stride=(1, 0)), ValueError, r"stride must be positive"),
    (dict(x=(2, 3, 8, 8), w=(4, 3, 3, 3), dilation=0), ValueError, r"dilation must be positive"),
    (dict(x=(2, 3, 8, 8), w=(4, 3, 3, 3), groups=0), ValueError, r"groups must be positive, got 0"),
    (dict(x=(2, 3, 8, 8), w=(4, 3, 3, 3), groups=1.5), TypeError, r"groups must be an int"),
    (dict(x=(2, 3, 8, 8), w=(4, 3, 3, 3), algo="winograd"), ValueError, r"algo must be one of .* got 'winograd'"),
    (dict(x=(2, 3, 8, 8), w=(4, 3, 3, 3), algo={"forwards": "im2col"}), ValueError,
     r"algo: unknown direction key\(s\) 'forwards'; the keys are 'forward', 'backward_data', 'backward_weight'"),
    (dict(x=(2, 3, 8, 8), w=(4, 3, 3, 3), algo={"backward_data": "fft"}), ValueError,
     r"algo\['backward_data'\] must be one of .* got 'fft'"),
    (dict(x=(2, 3, 8, 8), w=(4, 3, 3, 3), algo={"backward_weight": "gemm"}), ValueError,
     r"algo='gemm' needs a 1x1 kernel .*\(backward_weight\), got kernel \(3, 3\)"),
    (dict(x=(2, 3, 8, 8), w=(4, 3, 3, 3), algo=3), ValueError, r"algo must be one of .* got int 3"),
    (dict(x=(2, 3, 8, 8), w=(4, 3, 3, 3), padding="same", stride=2), ValueError,
     r"padding='same' requires stride 1.* got stride=\(2, 2\)"),
    (dict(x=(2, 3, 8, 8), w=(4, 3, 3, 3), algo="gemm"), ValueError, r"algo='gemm' needs a 1x1 kernel .* got kernel \(3, 3\)"),
    (dict(x=(2, 3, 8, 8), w=(4, 3, 1, 1), algo="gemm", stride=2), ValueError, r"algo='gemm' needs .* stride \(2, 2\)"),
    (dict(x=(2, 3, 8, 8), w=(4, 3, 1, 1), algo="gemm", padding=1), ValueError, r"algo='gemm' needs .* padding"),
    (dict(x=(2, 3, 8, 8), w=(4, 3, 3, 3), b=(5,)), ValueError, r"bias must have C_out = 4 elements .* got shape \(5,\)"),
    (dict(x=(2, 3, 8, 8), w=(4, 3, 3, 3), b=(4, 1)), ValueError, r"bias must be 1-D"),
    (dict(x=(2, 3, 8, 8), w=(4, 3, 3, 3), wdtype=np.float64), TypeError, r"weight has dtype float64 but x has dtype float32"),
    (dict(x=(2, 3, 8, 8), w=(4, 3, 3, 3), b=(4,), bdtype=np.float64), TypeError, r"bias has dtype float64 but x"),
    (dict(x=(2, 3, 8, 8), w=(4, 3, 3, 3), xdtype=np.int32), TypeError, r"x must be float32 or float64, got int32"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[2][:40] for c in BAD])
def test_bad_input(backend, case, monkeypatch):
    spec, error, match = case
    rng = np.random.default_rng(0)
    x = gpuconv.asarray(rng.standard_normal(spec["x"]).astype(spec.get("xdtype", np.float32)))
    w = gpuconv.asarray(rng.standard_normal(spec["w"]).astype(spec.get("wdtype", np.float32)))
    b = gpuconv.asarray(rng.standard_normal(spec["b"]).astype(spec.get("bdtype", np.float32))) if "b" in spec else None
    kwargs = {k: spec[k] for k in ("stride", "padding", "dilation", "groups") if k in spec}
    launched = []
    be = gpuconv.get_backend()
    for name in ("conv2d_im2col_forward", "conv2d_direct_forward", "conv2d_gemm_forward", "matmul", "im2col"):
        monkeypatch.setattr(be, name, lambda *a, _n=name, **k: launched.append(_n))
    with pytest.raises(error, match=match):
        F.conv2d(x, w, b, **kwargs, algo=spec.get("algo", "auto"))
    if "b" not in spec and "xdtype" not in spec:
        dy = gpuconv.asarray(rng.standard_normal((2, 4, 6, 6)).astype(np.float32))
        with pytest.raises(error, match=match):
            F.conv2d_backward(dy, x, w, **kwargs, algo=spec.get("algo", "auto"))
    assert not launched, f"a kernel ran before the error: {launched}"


def test_bad_backward_arguments(backend):
    rng = np.random.default_rng(0)
    x, w = gpuconv.asarray(rng.standard_normal((2, 3, 8, 8))), gpuconv.asarray(rng.standard_normal((4, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"dy must have the conv2d output shape \(2, 4, 6, 6\), got \(2, 4, 5, 6\)"):
        F.conv2d_backward(gpuconv.asarray(rng.standard_normal((2, 4, 5, 6))), x, w)
    with pytest.raises(TypeError, match="dy has dtype float32 but x has dtype float64"):
        F.conv2d_backward(gpuconv.asarray(rng.standard_normal((2, 4, 6, 6)).astype(np.float32)), x, w)
    with pytest.raises(ValueError, match="needs must be a tuple of 3 bools"):
        F.conv2d_backward(gpuconv.asarray(rng.standard_normal((2, 4, 6, 6))), x, w, needs=(True, True))


@pytest.mark.parametrize("index", [0, 1, 2, 7, 12])
def test_numpy_row_bands_and_cache_chunks(index, monkeypatch):
    """The numpy path's finer cuts (bands of output rows within an image, cache-sized chunks, wide
    GEMMs for small images) give the reference results; tiny thresholds force each of them."""
    from gpuconv.backend.numpy import conv as numpy_conv
    cfg, x, weight, bias, dy, expected = _case("general", index)
    for cache_bytes, wide in ((1, 1), (1, 10**6), (300, 2)):
        monkeypatch.setattr(numpy_conv, "CACHE_CHUNK_BYTES", cache_bytes)
        monkeypatch.setattr(numpy_conv, "WIDE_GEMM_BELOW", wide)
        with gpuconv.backend("numpy"):
            y = F.conv2d(x, weight, bias, **_args(cfg), algo="im2col")
            dx, dw, db = F.conv2d_backward(dy, x, weight, **_args(cfg), algo="im2col")
        for actual, want in zip((y, dx, dw, db), expected, strict=True):
            assert_close(actual, want)


def test_direct_forward_v2_row_stride_separates_the_banks_of_a_warps_two_rows():
    """The padded patch row of conv2d_direct_forward_v2: a warp's lanes (tx 0..15, ty and ty + 1) read
    words ty*sh*stride + tx*sw, at horizontal stride 2 ty*sh*stride + tx + const (a row's odd
    columns, then its even ones); for float32 at horizontal stride 1 or 2 no two distinct words
    share a bank, the stride is never below the patch width nor padded by 32 or more, and float64
    is not padded."""
    from gpuconv.backend.cuda.conv_direct import TILE_W, forward_v2_row_stride
    for kw, sh, sw, dw in itertools.product((1, 3, 7), (1, 2, 3), (1, 2, 3), (1, 2)):
        g = conv_module.conv_geometry((1, 1, 40, 40), (1, 1, kw, kw), (sh, sw), 0, (1, dw), 1)
        pw = (TILE_W - 1) * sw + (kw - 1) * dw + 1
        stride = forward_v2_row_stride(g, 4)
        assert pw <= stride < pw + 32
        assert forward_v2_row_stride(g, 8) == pw
        words = {ty * sh * stride + tx * (1 if sw == 2 else sw) for ty in (0, 1) for tx in range(TILE_W)}
        if sw in (1, 2):
            assert len({w % 32 for w in words}) == len(words), (kw, sh, sw, dw, stride)


def test_direct_forward_v2_row_staging_and_stride_2_layout_match_reference(backend, dtype):
    """conv2d_direct_forward_v2 stages its input patch a row per warp (rows of 16 to 48 columns,
    so one or two passes of the lanes) and, at horizontal stride 2, stores a row's odd columns
    before its even ones: random configurations at horizontal stride 1, 2 and 3 with kernels 1-7
    wide (patch widths odd and even), dilation, padding incl. "same" and "valid", vertical stride
    1-3, groups, several tiles across and down, forward and backward ("direct"; at stride 1 the
    backward data runs the same kernel on dy), against the float64 reference."""
    rng = np.random.default_rng(2026)
    for trial in range(10):
        sw = (2, 2, 1, 3)[trial % 4]
        kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 8))
        dh, dw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        sh = int(rng.integers(1, 4))
        padding = ("valid", (int(rng.integers(0, 3)), int(rng.integers(0, 4))))[trial % 2]
        if trial == 2:
            padding, sh = "same", 1
        groups = int(rng.choice([1, 2]))
        cg, kg = int(rng.integers(1, 4)), int(rng.integers(1, 10))
        h, w = int(rng.integers((kh - 1) * dh + 1, 36)), int(rng.integers((kw - 1) * dw + 1, 70))
        x = rng.standard_normal((int(rng.integers(1, 3)), groups * cg, h, w))
        weight = rng.standard_normal((groups * kg, cg, kh, kw))
        bias = rng.standard_normal(groups * kg)
        args = dict(stride=(sh, sw), padding=padding, dilation=(dh, dw), groups=groups)
        g = conv_module.conv_geometry(x.shape, weight.shape, **args)
        pads = g.padding
        want = reference.conv2d(x, weight, bias, (sh, sw), pads, (dh, dw), groups)
        X, W, B = (gpuconv.asarray(a.astype(dtype)) for a in (x, weight, bias))
        assert_close(F.conv2d(X, W, B, **args, algo="direct"), want, dtype)
        dy = rng.standard_normal(want.shape)
        dx_ref, dw_ref, _ = reference.conv2d_backward(dy, x, weight, (sh, sw), pads, (dh, dw), groups)
        dx, dw_, _ = F.conv2d_backward(gpuconv.asarray(dy.astype(dtype)), X, W, **args, algo="direct")
        assert_close(dx, dx_ref, dtype)
        assert_close(dw_, dw_ref, dtype)


def test_direct_forward_v2_stride_2_is_schedule_independent(rng):
    """The stride-2 patch layout and the row-per-warp staging under the emulator's schedule shuffles."""
    if gpuconv.backend.unavailable_reason("emulated"):
        pytest.skip("emulated backend unavailable")
    x = rng.standard_normal((1, 3, 21, 37)).astype(np.float32)
    weight = rng.standard_normal((9, 3, 3, 5)).astype(np.float32)
    with gpuconv.backend("emulated") as be:
        g = conv_module.conv_geometry(x.shape, weight.shape, (2, 2), (1, 2), (1, 1), 1)
        assert_schedule_independent(lambda: be.conv2d_direct_forward(x, weight, None, g, version=2))


def test_checked_geometries_are_remembered_without_hiding_the_checks():
    """conv_geometry remembers the geometries it checked, keyed by their arguments (host time per
    call); an argument equal to a remembered one but of another type (a bool, a float, a NumPy int,
    a list) must still meet the checks, not find the remembered geometry."""
    x_shape, w_shape = (2, 3, 8, 8), (4, 3, 3, 3)
    g = conv_module.conv_geometry(x_shape, w_shape, 1, 1, 1, 1)
    assert conv_module.conv_geometry(x_shape, w_shape, 1, 1, 1, 1) is g
    with pytest.raises(TypeError, match="stride must be an int or a pair of ints, got True"):
        conv_module.conv_geometry(x_shape, w_shape, True, 1, 1, 1)
    with pytest.raises(TypeError, match="groups must be an int, got True"):
        conv_module.conv_geometry(x_shape, w_shape, 1, 1, 1, True)
    with pytest.raises(TypeError, match="padding must be an int or a pair of ints, got 1.0"):
        conv_module.conv_geometry(x_shape, w_shape, 1, 1.0, 1, 1)
    with pytest.raises(TypeError, match=r"x_shape\[2\] must be an int"):
        conv_module.conv_geometry((2, 3, 8.0, 8), w_shape, 1, 1, 1, 1)
    assert conv_module.conv_geometry([2, 3, 8, 8], w_shape, np.int64(1), [1, 1], 1, 1) == g
    same = conv_module.conv_geometry(x_shape, w_shape, 1, "same", 1, 1)
    assert same.padding == (1, 1, 1, 1) and conv_module.conv_geometry(x_shape, w_shape, 1, "same", 1, 1) is same


def test_auto_on_numpy_follows_the_numpy_rule():
    """The numpy backend's own measured rule, not the GPU's: no tap-loop forward for the few-channel
    stem (the GPU heuristic's "direct"), direct backward data where C_out > C_in (LeNet-5's second
    conv), gemm for 1x1; and conv2d_backward runs what choose_algo names."""
    with gpuconv.backend("numpy"):
        assert F.choose_algo((8, 3, 64, 64), (64, 3, 7, 7), 2, 3, direction="forward") == "im2col"
        assert conv_module.heuristic(conv_module.conv_geometry((8, 3, 64, 64), (64, 3, 7, 7), 2, 3),
                                     "forward") == "direct"  # what the GPU would run
        assert F.choose_algo((64, 6, 14, 14), (16, 6, 5, 5), direction="backward_data") == "direct"
        assert F.choose_algo((64, 6, 14, 14), (16, 6, 5, 5), direction="forward") == "im2col"
        assert F.choose_algo((64, 16, 14, 14), (6, 16, 5, 5), direction="backward_data") == "im2col"
        assert F.choose_algo((8, 64, 8, 8), (256, 64, 1, 1), direction="forward") == "gemm"
        be = gpuconv.backend.get_backend()
        rng = np.random.default_rng(0)
        x = rng.standard_normal((4, 6, 14, 14)).astype(np.float32)
        w = rng.standard_normal((16, 6, 5, 5)).astype(np.float32)
        dy = rng.standard_normal((4, 16, 10, 10)).astype(np.float32)
        calls = []
        real = be.conv2d_direct_backward_data
        be.conv2d_direct_backward_data = lambda *a: calls.append("direct") or real(*a)
        try:
            dx, _, _ = F.conv2d_backward(dy, x, w, needs=(True, False, False))
        finally:
            del be.conv2d_direct_backward_data
        assert calls == ["direct"]
        want, _, _ = F.conv2d_backward(dy, x, w, algo="im2col", needs=(True, False, False))
        # Sums of 16*25 products of O(1) values in float32 (the two algorithms add them in other orders).
        np.testing.assert_allclose(dx, want, rtol=0, atol=400 * 2 * np.finfo(np.float32).eps * np.abs(want).max())
