"""Batch normalization forward (training and eval) and backward, on every backend, against the float64
references in tests/reference.py; finite differences in float64; race checks on the emulator;
nn.BatchNorm1d by ``check_layer`` of test_nn (forward, output_shape, backward by finite differences)."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from gpuconv import nn
from gpuconv.backend.cuda import batchnorm as bn_launch

from tests import reference
from tests.helpers import assert_close, assert_schedule_independent, finite_difference_check
from tests.test_nn import check_layer


def random_shape(rng):
    while True:
        shape = tuple(int(v) for v in (rng.integers(1, 4), rng.integers(1, 5), rng.integers(1, 8), rng.integers(1, 8)))
        if shape[0] * shape[2] * shape[3] >= 2:
            return shape


def channel_vector(rng, c, dtype, low=-1.0, high=1.0):
    return rng.uniform(low, high, c).astype(dtype)


def maybe(rng, value):
    return value if rng.integers(0, 3) else None


# "split": MIN_PER_BLOCK lowered so that even tiny tensors cut each channel among several reduction
# blocks (the two-level path the GPU takes for large tensors).
@pytest.mark.parametrize("split", [False, True], ids=["one-block", "split"])
def test_training_forward_random_configs(backend, dtype, rng, split, monkeypatch):
    if split:
        monkeypatch.setattr(bn_launch, "MIN_PER_BLOCK", 7)
    for _ in range(20):
        shape = random_shape(rng)
        c = shape[1]
        x = (rng.standard_normal(shape) * rng.uniform(0.5, 3) + rng.uniform(-2, 2)).astype(dtype)
        weight, bias = maybe(rng, channel_vector(rng, c, dtype)), maybe(rng, channel_vector(rng, c, dtype))
        track = bool(rng.integers(0, 3))
        rm0, rv0 = channel_vector(rng, c, dtype), channel_vector(rng, c, dtype, 0.5, 2.0)
        cumulative = rng.integers(0, 3) == 0
        momentum, tracked = (None, int(rng.integers(1, 5))) if cumulative else (float(rng.uniform(0, 1)), None)
        rm = gpuconv.asarray(rm0.copy()) if track else None
        rv = gpuconv.asarray(rv0.copy()) if track else None
        y, save_mean, save_invstd = F.batch_norm(
            gpuconv.asarray(x), rm, rv, None if weight is None else gpuconv.asarray(weight),
            None if bias is None else gpuconv.asarray(bias), training=True, momentum=momentum, eps=1e-5,
            num_batches_tracked=tracked, return_stats=True)
        ref_y, mean, var, unbiased = reference.batch_norm_train(x, weight, bias, 1e-5)
        tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else {}
        assert_close(y, ref_y, dtype, **tol)
        assert_close(save_mean, mean, dtype, **tol)
        assert_close(save_invstd, 1 / np.sqrt(var + 1e-5), dtype, **tol)
        if track:
            factor = 1.0 / tracked if cumulative else momentum
            assert_close(rm, (1 - factor) * rm0 + factor * mean, dtype, **tol)
            assert_close(rv, (1 - factor) * rv0 + factor * unbiased, dtype, **tol)


def test_eval_forward_uses_running_stats(backend, dtype, rng):
    for _ in range(8):
        shape = random_shape(rng)
        c = shape[1]
        x = rng.standard_normal(shape).astype(dtype)
        rm, rv = channel_vector(rng, c, dtype), channel_vector(rng, c, dtype, 0.5, 2.0)
        weight, bias = maybe(rng, channel_vector(rng, c, dtype)), maybe(rng, channel_vector(rng, c, dtype))
        rm_a, rv_a = gpuconv.asarray(rm.copy()), gpuconv.asarray(rv.copy())
        y, save_mean, save_invstd = F.batch_norm(
            gpuconv.asarray(x), rm_a, rv_a, None if weight is None else gpuconv.asarray(weight),
            None if bias is None else gpuconv.asarray(bias), training=False, return_stats=True)
        assert_close(y, reference.batch_norm_eval(x, rm, rv, weight, bias, 1e-5), dtype)
        assert_close(save_mean, rm, dtype)
        assert_close(save_invstd, 1 / np.sqrt(rv.astype(np.float64) + 1e-5), dtype)
        # Eval never touches the running statistics.
        np.testing.assert_array_equal(gpuconv.to_numpy(rm_a), rm)
        np.testing.assert_array_equal(gpuconv.to_numpy(rv_a), rv)


def test_eval_without_running_stats_uses_batch_stats(backend, rng):
    x = rng.standard_normal((3, 2, 4, 5))
    y = F.batch_norm(gpuconv.asarray(x), None, None, training=False)
    assert_close(y, reference.batch_norm_train(x, None, None, 1e-5)[0])


@pytest.mark.parametrize("split", [False, True], ids=["one-block", "split"])
def test_training_backward_random_configs(backend, dtype, rng, split, monkeypatch):
    if split:
        monkeypatch.setattr(bn_launch, "MIN_PER_BLOCK", 7)
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else {}
    for _ in range(20):
        shape = random_shape(rng)
        c = shape[1]
        x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        weight = maybe(rng, channel_vector(rng, c, dtype))
        w_arg = None if weight is None else gpuconv.asarray(weight)
        _, save_mean, save_invstd = F.batch_norm(gpuconv.asarray(x), None, None, w_arg, training=True,
                                                 return_stats=True)
        dx, dweight, dbias = F.batch_norm_backward(gpuconv.asarray(dy), gpuconv.asarray(x), w_arg, save_mean,
                                                   save_invstd, training=True)
        ref_dx, ref_dw, ref_db = reference.batch_norm_train_backward(dy, x, weight, 1e-5)
        assert_close(dx, ref_dx, dtype, **tol)
        assert_close(dweight, ref_dw, dtype, **tol)
        assert_close(dbias, ref_db, dtype, **tol)


def test_eval_backward(backend, dtype, rng):
    shape = (2, 3, 4, 5)
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    rm, rv, weight = channel_vector(rng, 3, dtype), channel_vector(rng, 3, dtype, 0.5, 2), channel_vector(rng, 3, dtype)
    _, save_mean, save_invstd = F.batch_norm(gpuconv.asarray(x), gpuconv.asarray(rm), gpuconv.asarray(rv),
                                             gpuconv.asarray(weight), training=False, return_stats=True)
    dx, dweight, dbias = F.batch_norm_backward(gpuconv.asarray(dy), gpuconv.asarray(x), gpuconv.asarray(weight),
                                               save_mean, save_invstd, training=False)
    invstd = 1 / np.sqrt(rv.astype(np.float64) + 1e-5)
    xhat = (x - rm.reshape(1, -1, 1, 1)) * invstd.reshape(1, -1, 1, 1)
    assert_close(dx, dy * (weight * invstd).reshape(1, -1, 1, 1), dtype)
    assert_close(dweight, (dy * xhat).sum(axis=(0, 2, 3)), dtype, rtol=1e-4, atol=1e-4)
    assert_close(dbias, dy.astype(np.float64).sum(axis=(0, 2, 3)), dtype, rtol=1e-4, atol=1e-4)


def test_backward_needs(backend, rng):
    x = gpuconv.asarray(rng.standard_normal((2, 3, 3, 3)))
    dy = gpuconv.asarray(rng.standard_normal((2, 3, 3, 3)))
    _, mean, invstd = F.batch_norm(x, None, None, training=True, return_stats=True)
    full = F.batch_norm_backward(dy, x, None, mean, invstd)
    for needs in ((True, False, False), (False, True, False), (False, False, True), (False, False, False)):
        part = F.batch_norm_backward(dy, x, None, mean, invstd, needs=needs)
        for wanted, got, reference_value in zip(needs, part, full, strict=True):
            if wanted:
                np.testing.assert_array_equal(gpuconv.to_numpy(got), gpuconv.to_numpy(reference_value))
            else:
                assert got is None


def test_training_finite_differences(backend, rng):
    shape = (3, 2, 3, 4)
    x = rng.standard_normal(shape) * 1.5 + 0.5
    weight, bias = rng.uniform(0.5, 1.5, 2), rng.standard_normal(2)
    weights = rng.standard_normal(shape)

    def loss(x, weight, bias):
        y = F.batch_norm(gpuconv.asarray(x), None, None, gpuconv.asarray(weight), gpuconv.asarray(bias),
                         training=True)
        return float(np.sum(gpuconv.to_numpy(y) * weights))

    _, mean, invstd = F.batch_norm(gpuconv.asarray(x), None, None, gpuconv.asarray(weight), gpuconv.asarray(bias),
                                   training=True, return_stats=True)
    dx, dweight, dbias = F.batch_norm_backward(gpuconv.asarray(weights), gpuconv.asarray(x), gpuconv.asarray(weight),
                                               mean, invstd)
    finite_difference_check(loss, {"x": x, "weight": weight, "bias": bias},
                            {"x": gpuconv.to_numpy(dx), "weight": gpuconv.to_numpy(dweight),
                             "bias": gpuconv.to_numpy(dbias)}, rng=rng, samples=16)


@pytest.mark.parametrize("split", [False, True], ids=["one-block", "split"])
def test_float32_large_mean_normalizes_accurately(backend, rng, split, monkeypatch):
    if split:
        monkeypatch.setattr(bn_launch, "MIN_PER_BLOCK", 300)
    x = (1e4 + rng.standard_normal((8, 2, 16, 16))).astype(np.float32)
    ref_y, mean, var, _ = reference.batch_norm_train(x, None, None, 1e-5)
    y = gpuconv.to_numpy(F.batch_norm(gpuconv.asarray(x), None, None, training=True))
    assert np.abs(y - ref_y).max() < 1e-3
    # The naive one-pass formula in float32 fails this badly: E[x^2] ~ 1e8 has a spacing of 8.
    naive_mean = x.mean(axis=(0, 2, 3), dtype=np.float32)
    naive_var = (x * x).mean(axis=(0, 2, 3), dtype=np.float32) - naive_mean * naive_mean
    naive_y = (x - naive_mean.reshape(1, -1, 1, 1)) / np.sqrt(np.maximum(naive_var, 0) + 1e-5).reshape(1, -1, 1, 1)
    assert not np.abs(naive_y - ref_y).max() < 1e-3


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_vectorized_and_scalar_elementwise_paths(rng, dtype):
    """16-byte accesses for planes of whole vectors on aligned arrays, element by element otherwise
    (odd planes, or a contiguous view that starts off a 16-byte boundary)."""
    with gpuconv.backend("emulated"):
        aligned = rng.standard_normal((3, 3, 4, 4)).astype(dtype)
        odd = rng.standard_normal((2, 3, 3, 5)).astype(dtype)
        # A C-contiguous view one element into its buffer: never on a 16-byte boundary.
        base = rng.standard_normal(1 + 2 * 3 * 2 * 4).astype(dtype)
        misaligned = base[1:].reshape(2, 3, 2, 4)
        assert aligned.ctypes.data % 16 == 0 and misaligned.flags.c_contiguous
        cases = ((aligned, True), (odd, False), (aligned[1:], True), (misaligned, False))
        for x, vec in cases:
            assert bn_launch.vectorizable(x.shape[2] * x.shape[3], x) == vec
        for x, _ in cases:
            dy = rng.standard_normal(x.shape).astype(dtype)
            weight = channel_vector(rng, x.shape[1], dtype)
            y, mean, invstd = F.batch_norm(x, None, None, weight, training=True, return_stats=True)
            tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else {}
            assert_close(y, reference.batch_norm_train(x, weight, None, 1e-5)[0], dtype, **tol)
            rm, rv = channel_vector(rng, x.shape[1], dtype), channel_vector(rng, x.shape[1], dtype, 0.5, 2)
            assert_close(F.batch_norm(x, rm, rv, weight), reference.batch_norm_eval(x, rm, rv, weight, None, 1e-5),
                         dtype)
            dx = F.batch_norm_backward(dy, x, weight, mean, invstd, needs=(True, False, False))[0]
            assert_close(dx, reference.batch_norm_train_backward(dy, x, weight, 1e-5)[0], dtype, **tol)
            dx = F.batch_norm_backward(dy, x, weight, mean, invstd, training=False, needs=(True, False, False))[0]
            assert_close(dx, dy * (weight * invstd).reshape(1, -1, 1, 1), dtype)


def test_reductions_are_schedule_independent(rng, monkeypatch):
    # Several blocks per channel and several elements per thread, so every level of both trees runs.
    monkeypatch.setattr(bn_launch, "MIN_PER_BLOCK", 600)
    with gpuconv.backend("emulated"):
        x = gpuconv.asarray((rng.standard_normal((4, 3, 19, 17)) * 3 + 5).astype(np.float32))
        dy = gpuconv.asarray(rng.standard_normal((4, 3, 19, 17)).astype(np.float32))
        assert bn_launch.reduction_split(4 * 19 * 17, 3)[0] > 1
        rm, rv = gpuconv.asarray(np.zeros(3, np.float32)), gpuconv.asarray(np.ones(3, np.float32))

        def forward():
            rm[:], rv[:] = 0, 1
            y, mean, invstd = F.batch_norm(x, rm, rv, training=True, return_stats=True)
            return y, mean, invstd, rm.copy(), rv.copy()

        _, mean, invstd, _, _ = assert_schedule_independent(forward)
        mean, invstd = gpuconv.asarray(mean), gpuconv.asarray(invstd)
        assert_schedule_independent(lambda: F.batch_norm_backward(dy, x, None, mean, invstd))


def test_one_by_one_planes(backend, dtype, rng):
    x = rng.standard_normal((5, 3, 1, 1)).astype(dtype)
    dy = rng.standard_normal((5, 3, 1, 1)).astype(dtype)
    y, mean, invstd = F.batch_norm(gpuconv.asarray(x), None, None, training=True, return_stats=True)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else {}
    assert_close(y, reference.batch_norm_train(x, None, None, 1e-5)[0], dtype, **tol)
    dx, dweight, dbias = F.batch_norm_backward(gpuconv.asarray(dy), gpuconv.asarray(x), None, mean, invstd)
    for got, expected in zip((dx, dweight, dbias), reference.batch_norm_train_backward(dy, x, None, 1e-5), strict=True):
        assert_close(got, expected, dtype, **tol)


def test_non_contiguous_input(backend, rng):
    x = rng.standard_normal((3, 4, 5, 6))
    view = gpuconv.asarray(x)[:, ::2, :, ::-1]
    expected = x[:, ::2, :, ::-1]
    y, mean, invstd = F.batch_norm(view, None, None, training=True, return_stats=True)
    assert_close(y, reference.batch_norm_train(expected, None, None, 1e-5)[0])
    dy = rng.standard_normal(expected.shape)
    dx, _, _ = F.batch_norm_backward(gpuconv.asarray(np.asfortranarray(dy)), view, None, mean, invstd)
    assert_close(dx, reference.batch_norm_train_backward(dy, expected, None, 1e-5)[0])


# ---- (N, C) and (N, C, L), as PyTorch's F.batch_norm takes them -----------------------------------
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (1, 2, 7)])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_two_and_three_dimensional_input_matches_torch(backend, shape, training, rng):
    torch = pytest.importorskip("torch")
    c = shape[1]
    x, dy = rng.standard_normal(shape), rng.standard_normal(shape)
    weight, bias = rng.uniform(0.5, 1.5, c), rng.uniform(-1, 1, c)
    mean, var = rng.uniform(-1, 1, c), rng.uniform(0.5, 2, c)
    running = [gpuconv.asarray(mean.copy()), gpuconv.asarray(var.copy())]
    y, save_mean, save_invstd = F.batch_norm(gpuconv.asarray(x), *running, gpuconv.asarray(weight),
                                             gpuconv.asarray(bias), training=training, momentum=0.1,
                                             return_stats=True)
    t_x, t_w, t_b = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
    t_running = [torch.tensor(mean.copy()), torch.tensor(var.copy())]
    t_y = torch.nn.functional.batch_norm(t_x, *t_running, t_w, t_b, training=training, momentum=0.1)
    t_y.backward(torch.tensor(dy))
    assert tuple(y.shape) == shape
    assert_close(y, t_y.detach().numpy())
    assert_close(running[0], t_running[0].numpy())
    assert_close(running[1], t_running[1].numpy())
    dx, dweight, dbias = F.batch_norm_backward(gpuconv.asarray(dy), gpuconv.asarray(x), gpuconv.asarray(weight),
                                               save_mean, save_invstd, training=training)
    assert tuple(dx.shape) == shape
    assert_close(dx, t_x.grad.numpy())
    assert_close(dweight, t_w.grad.numpy())
    assert_close(dbias, t_b.grad.numpy())


def test_batchnorm1d(numpy_f64, rng):
    for shape in ((5, 3), (4, 3, 6)):
        layer = nn.BatchNorm1d(3, dtype=np.float64)
        layer.weight.data[...] = rng.standard_normal(3)
        layer.bias.data[...] = rng.standard_normal(3)
        x = rng.standard_normal(shape) * 2 + 1

        def expected(x):
            view = x.reshape(x.shape + (1,) * (4 - x.ndim))
            return reference.batch_norm_train(view, layer.weight.data, layer.bias.data, 1e-5)[0].reshape(x.shape)

        check_layer(layer, x, expected, rng=rng)
        layer.eval()
        y = layer(x)
        view = x.reshape(x.shape + (1,) * (4 - x.ndim))
        expected = reference.batch_norm_eval(view, layer.running_mean, layer.running_var, layer.weight.data,
                                             layer.bias.data, 1e-5)
        np.testing.assert_allclose(y, expected.reshape(shape), rtol=1e-12)
        assert list(layer.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    with pytest.raises(ValueError, match=r"BatchNorm1d expects input shape \(N, 3\) or \(N, 3, L\)"):
        nn.BatchNorm1d(3)(np.ones((2, 3, 4, 5), np.float32))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(np.ones((1, 3), np.float32))


# ---- bad input -----------------------------------------------------------------------------------
def test_bad_input(backend, rng):
    x = gpuconv.asarray(rng.standard_normal((2, 3, 4, 4)).astype(np.float32))
    v3 = gpuconv.asarray(np.ones(3, np.float32))
    v4 = gpuconv.asarray(np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"x must be 2-D or 3-D or 4-D \(N, C\), \(N, C, L\) or \(N, C, H, W\)"):
        F.batch_norm(gpuconv.asarray(np.ones((2, 3, 4, 4, 4), np.float32)), v3, v3)
    with pytest.raises(ValueError, match="more than 1 value per channel, got x of shape \\(1, 3\\)"):
        F.batch_norm(gpuconv.asarray(np.ones((1, 3), np.float32)), v3, v3, training=True)
    with pytest.raises(ValueError, match=r"running_mean must have shape \(3,\)"):
        F.batch_norm(x, v4, v3)
    with pytest.raises(ValueError, match=r"running_var must have shape \(3,\)"):
        F.batch_norm(x, v3, v4)
    with pytest.raises(ValueError, match=r"running_var must be 1-D"):
        F.batch_norm(x, v3, gpuconv.asarray(np.ones((3, 1), np.float32)))
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        F.batch_norm(x, v3, v3, weight=v4)
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\)"):
        F.batch_norm(x, None, None, bias=v4, training=True)
    with pytest.raises(TypeError, match="running_mean has dtype float64 but x has dtype float32"):
        F.batch_norm(x, gpuconv.asarray(np.ones(3)), v3)
    with pytest.raises(ValueError, match="running_mean and running_var must both be"):
        F.batch_norm(x, v3, None, training=True)
    with pytest.raises(ValueError, match="momentum must be"):
        F.batch_norm(x, v3, v3, training=True, momentum=1.5)
    with pytest.raises(ValueError, match="num_batches_tracked"):
        F.batch_norm(x, v3, v3, training=True, momentum=None)
    with pytest.raises(ValueError, match="eps must be"):
        F.batch_norm(x, v3, v3, eps=-1.0)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(gpuconv.asarray(np.ones((1, 3, 1, 1), np.float32)), v3, v3, training=True)
    with pytest.raises(ValueError, match=r"save_invstd must have shape \(3,\)"):
        F.batch_norm_backward(x, x, None, v3, v4)
    with pytest.raises(ValueError, match="dy must have x's shape"):
        F.batch_norm_backward(gpuconv.asarray(np.ones((2, 3, 4, 5), np.float32)), x, None, v3, v3)
    with pytest.raises(TypeError, match="save_mean must be"):
        F.batch_norm_backward(x, x, None, None, v3)


def test_bad_input_raises_before_any_kernel(emulated_without_kernels, rng):
    x = gpuconv.asarray(rng.standard_normal((2, 3, 4, 4)).astype(np.float32))
    rm = gpuconv.asarray(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="running_var"):
        F.batch_norm(x, rm, gpuconv.asarray(np.ones(2, np.float32)), training=True)
    np.testing.assert_array_equal(rm, 0)


# Plane layouts of the elementwise kernels and vector widths of the reductions: planes that share a
# block (7x7, 5x3), a plane per block (40x40, 33x35: odd, scalar) and planes spread over grid.y
# (64x72: more than one block of vectors); several reduction blocks per channel (MIN_PER_BLOCK low).
@pytest.mark.parametrize("shape", [(5, 3, 7, 7), (3, 5, 5, 3), (2, 3, 40, 40), (2, 2, 33, 35), (1, 2, 64, 72)])
def test_plane_layouts_and_split_reductions(kernel_backend, dtype, rng, shape, monkeypatch):
    monkeypatch.setattr(bn_launch, "MIN_PER_BLOCK", 100)
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 - 3).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    weight, bias = channel_vector(rng, c, dtype), channel_vector(rng, c, dtype)
    rm0, rv0 = channel_vector(rng, c, dtype), channel_vector(rng, c, dtype, 0.5, 2.0)
    rm, rv = gpuconv.asarray(rm0.copy()), gpuconv.asarray(rv0.copy())
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else {}
    for _ in range(2):  # the second call reuses the per-channel tickets the first one reset
        rm[...], rv[...] = gpuconv.asarray(rm0), gpuconv.asarray(rv0)
        y, mean, invstd = F.batch_norm(gpuconv.asarray(x), rm, rv, gpuconv.asarray(weight), gpuconv.asarray(bias),
                                       training=True, momentum=0.25, return_stats=True)
        ref_y, ref_mean, var, unbiased = reference.batch_norm_train(x, weight, bias, 1e-5)
        assert_close(y, ref_y, dtype, **tol)
        assert_close(rm, 0.75 * rm0 + 0.25 * ref_mean, dtype, **tol)
        assert_close(rv, 0.75 * rv0 + 0.25 * unbiased, dtype, **tol)
        dx, dweight, dbias = F.batch_norm_backward(gpuconv.asarray(dy), gpuconv.asarray(x), gpuconv.asarray(weight),
                                                   mean, invstd)
        for got, expected in zip((dx, dweight, dbias), reference.batch_norm_train_backward(dy, x, weight, 1e-5),
                                 strict=True):
            assert_close(got, expected, dtype, **tol)
    assert_close(F.batch_norm(gpuconv.asarray(x), gpuconv.asarray(rm0), gpuconv.asarray(rv0), gpuconv.asarray(weight),
                              gpuconv.asarray(bias)),
                 reference.batch_norm_eval(x, rm0, rv0, weight, bias, 1e-5), dtype)
    dx = F.batch_norm_backward(gpuconv.asarray(dy), gpuconv.asarray(x), gpuconv.asarray(weight), mean, invstd,
                               training=False, needs=(True, False, False))[0]
    assert_close(dx, dy * (weight * gpuconv.to_numpy(invstd)).reshape(1, -1, 1, 1), dtype)


@pytest.mark.parametrize("shape", [(4, 3, 19, 17), (2, 3, 8, 8)], ids=["scalar", "vector"])
def test_single_launch_paths_match_two_launch_paths_and_are_schedule_independent(rng, shape):
    """Small tensors (one reduction block per channel) take one fused launch per forward and per
    backward; it computes the same bits as the statistics + affine and reduce + dx launches, under
    every emulator schedule."""
    with gpuconv.backend("emulated") as be:
        c = shape[1]
        assert bn_launch.reduction_split(shape[0] * shape[2] * shape[3], c)[0] == 1
        x = gpuconv.asarray((rng.standard_normal(shape) * 3 + 5).astype(np.float32))
        dy = gpuconv.asarray(rng.standard_normal(shape).astype(np.float32))
        weight, bias = channel_vector(rng, c, np.float32), channel_vector(rng, c, np.float32)
        rm, rv = np.zeros(c, np.float32), np.ones(c, np.float32)

        def forward():
            rm[:], rv[:] = 0, 1
            y, mean, invstd = be.batch_norm_train(x, 1e-5, rm, rv, 0.1, weight, bias)
            return y, mean, invstd, rm.copy(), rv.copy()

        y, mean, invstd, rm1, rv1 = assert_schedule_independent(forward)
        rm[:], rv[:] = 0, 1
        mean2, invstd2 = be._batch_norm_stats(x, 1e-5, rm, rv, 0.1)
        y2 = be.batch_norm_affine(x, mean2, invstd2, False, weight, bias, 1e-5)
        for a, b in ((y, y2), (mean, mean2), (invstd, invstd2), (rm1, rm), (rv1, rv)):
            np.testing.assert_array_equal(a, b)
        dx, sum_dy, sum_dy_xhat = assert_schedule_independent(
            lambda: (lambda dx, sums: (dx, *sums))(*be.batch_norm_backward(dy, x, mean, invstd, weight, True, True,
                                                                           True)))
        sums2 = be._batch_norm_backward_sums(dy, x, mean, invstd)
        dx2 = be._batch_norm_backward_dx(dy, x, mean, invstd, weight, sums2, True)
        for a, b in ((dx, dx2), (sum_dy, sums2[0]), (sum_dy_xhat, sums2[1])):
            np.testing.assert_array_equal(a, b)
