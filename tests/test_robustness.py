"""Bad input gets a clear error on every backend; checkpoints load all or nothing; divergence is caught.

One test (or a few) per point of the robustness sweep (issue 15); each failed before the fix.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from gpuconv import nn, optim
from gpuconv.train import NonFiniteLossError, fit


def _g(a):
    return gpuconv.asarray(np.asarray(a))


def _np(a):
    return gpuconv.to_numpy(a)


# ---- 1. shapes must be ints ----------------------------------------------------------------------
@pytest.mark.parametrize("bad", [8.9, True, np.float32(8.0), "8"])
def test_shape_arguments_must_be_ints(backend, bad):
    dy = _g(np.ones((1, 1, 4, 4), np.float32))
    shape = (1, 1, bad, 8)
    with pytest.raises(TypeError, match=r"x_shape\[2\] must be an int"):
        F.avg_pool2d_backward(dy, shape, 2)
    with pytest.raises(TypeError, match=r"x_shape\[2\] must be an int"):
        F.adaptive_avg_pool2d_backward(dy, shape, 4)
    with pytest.raises(TypeError, match=r"input_shape\[2\] must be an int"):
        F.interpolate_backward(dy, shape, size=4)
    with pytest.raises(TypeError, match=r"x_shape\[2\] must be an int"):
        F.im2col_backward(_g(np.ones((1, 4, 16), np.float32)), shape, 2)
    with pytest.raises(TypeError, match=r"x_shape\[2\] must be an int"):
        F.conv2d_workspace_bytes(shape, (1, 1, 3, 3), np.float32)
    with pytest.raises(TypeError, match=r"weight_shape\[0\] must be an int"):
        F.conv_transpose2d_output_shape((1, 1, 4, 4), (bad, 1, 3, 3))


def test_numpy_integer_shapes_are_accepted(backend):
    dy = _g(np.ones((1, 1, 4, 4), np.float32))
    shape = tuple(np.int64(v) for v in (1, 1, 8, 8))
    dx = F.avg_pool2d_backward(dy, shape, 2)
    assert dx.shape == (1, 1, 8, 8)
    np.testing.assert_allclose(_np(dx), 0.25)
    assert F.adaptive_avg_pool2d_backward(dy, [np.int32(1), 1, 8, 8], 4).shape == (1, 1, 8, 8)


@pytest.mark.parametrize("name", ["kernel_size", "stride", "dilation", "padding"])
def test_window_arguments_must_be_ints(backend, name):
    x = _g(np.ones((1, 1, 8, 8), np.float32))
    args = {"kernel_size": 2, name: 2.0} if name != "kernel_size" else {"kernel_size": 2.0}
    with pytest.raises(TypeError, match=f"{name} must be an int or a pair of ints"):
        F.max_pool2d(x, **args)


def test_size_arguments_must_be_ints(backend):
    x = _g(np.ones((1, 2, 4, 4), np.float32))
    with pytest.raises(TypeError, match="groups must be an int, got 1.0"):
        F.conv2d(x, _g(np.ones((2, 2, 1, 1), np.float32)), groups=1.0)
    with pytest.raises(TypeError, match="num_groups must be an int, got 2.0"):
        F.group_norm(x, 2.0)
    with pytest.raises(TypeError, match="divisor_override must be an int, got 2.5"):
        F.avg_pool2d(x, 2, divisor_override=2.5)
    with pytest.raises(TypeError, match=r"normalized_shape\[1\] must be an int, got 4.0"):
        F.layer_norm(x, (4, 4.0))
    with pytest.raises(ValueError, match=r"normalized_shape must have sizes >= 1, got \(0,\)"):
        F.layer_norm(_g(np.ones((2, 0), np.float32)), 0)
    with pytest.raises(TypeError, match="size must be an int or a pair of ints"):
        F.interpolate(x, size=8.0)


# ---- 2. empty planes -----------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["adaptive_avg_pool2d", "adaptive_max_pool2d", "gem", "gem_backward",
                                "adaptive_max_pool2d_backward"])
def test_empty_spatial_dimensions_are_an_error(backend, op):
    x = _g(np.ones((1, 1, 0, 8), np.float32))
    calls = {
        "adaptive_avg_pool2d": lambda: F.adaptive_avg_pool2d(x, 2),
        "adaptive_max_pool2d": lambda: F.adaptive_max_pool2d(x, 2, return_indices=True),
        "gem": lambda: F.gem(x),
        "gem_backward": lambda: F.gem_backward(_g(np.ones((1, 1, 1, 1), np.float32)), x, 3.0),
        "adaptive_max_pool2d_backward": lambda: F.adaptive_max_pool2d_backward(
            _g(np.ones((1, 1, 2, 2), np.float32)), x, _g(np.zeros((1, 1, 2, 2), np.int64)), 2),
    }
    with pytest.raises(ValueError, match=r"x must have non-empty spatial dimensions .* got shape \(1, 1, 0, 8\)"):
        calls[op]()


# ---- 3. non-finite eps ---------------------------------------------------------------------------
@pytest.mark.parametrize("eps", [float("nan"), float("inf")])
def test_normalization_rejects_non_finite_eps(backend, eps):
    x = _g(np.ones((2, 8), np.float32))
    with pytest.raises(ValueError, match="eps must be finite"):
        F.layer_norm(x, 8, eps=eps)
    with pytest.raises(ValueError, match="eps must be finite"):
        F.group_norm(_g(np.ones((2, 4, 3), np.float32)), 2, eps=eps)
    with pytest.raises(ValueError, match="eps must be a finite number"):
        F.batch_norm(_g(np.ones((2, 3, 2, 2), np.float32)), None, None, training=True, eps=eps)
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        F.gem(_g(np.ones((2, 3, 2, 2), np.float32)), eps=eps)


# ---- 4. out-of-range pooling indices --------------------------------------------------------------
@pytest.mark.parametrize("index_dtype", [np.int64, np.int32])
def test_max_pool_backward_rejects_indices_outside_their_window(backend, index_dtype):
    rng = np.random.default_rng(4)
    x = _g(rng.standard_normal((2, 3, 9, 9)).astype(np.float32))
    args = dict(kernel_size=3, stride=2, padding=1, dilation=2)
    y, idx = F.max_pool2d(x, **args, return_indices=True, index_dtype=index_dtype)
    dy = _g(np.ones(y.shape, np.float32))
    F.max_pool2d_backward(dy, x, idx, **args)  # the forward's indices pass
    good = _np(idx)
    chosen = int(good[1, 2, 1, 1])
    huge = 10**12 if index_dtype == np.int64 else 2**31 - 1
    for value in (huge, chosen + 1, chosen - 1, -1):  # far out, next column, previous, negative
        bad = good.copy()
        bad[1, 2, 1, 1] = value  # one corrupt index is enough
        with pytest.raises(ValueError, match="indices: an index does not name an element of its window"):
            F.max_pool2d_backward(dy, x, _g(bad), **args)


@pytest.mark.parametrize("index_dtype", [np.int64, np.int32])
def test_adaptive_max_pool_backward_rejects_indices_outside_their_bin(backend, index_dtype):
    rng = np.random.default_rng(5)
    x = _g(rng.standard_normal((2, 2, 7, 6)).astype(np.float32))
    y, idx = F.adaptive_max_pool2d(x, (3, 2), return_indices=True, index_dtype=index_dtype)
    dy = _g(np.ones(y.shape, np.float32))
    F.adaptive_max_pool2d_backward(dy, x, idx, (3, 2))
    good = _np(idx)
    for delta in (10**6, 6 * 3, -6 * 3):  # out of the plane, three rows down / up: inside the plane
        bad = good.copy()
        bad[0, 1, 0 if delta > 0 else 2, 1] += delta
        with pytest.raises(ValueError, match="indices: an index does not name an element of its window"):
            F.adaptive_max_pool2d_backward(dy, x, _g(bad), (3, 2))


def test_max_pool_backward_does_not_check_windows_without_elements(backend):
    # dilation over padding: the middle window of this row has no input element; its index (from
    # PyTorch's rule) lies outside it, and such a window passes nothing on.
    x = _g(np.arange(9, dtype=np.float32).reshape(1, 1, 1, 9))
    args = dict(kernel_size=(1, 2), stride=(1, 1), padding=(0, 1), dilation=(1, 10))
    y, idx = F.max_pool2d(x, **args, return_indices=True)
    dx = F.max_pool2d_backward(_g(np.ones(y.shape, np.float32)), x, idx, **args)
    assert dx.shape == x.shape


# ---- 7. sizes past the kernels' 32-bit ints --------------------------------------------------------
BIG = 2**31


@pytest.mark.parametrize("op", ["conv2d", "conv2d_backward", "max_pool2d", "avg_pool2d", "unfold", "gem",
                                "max_pool2d_dilation"])
def test_arguments_past_int32_are_a_value_error_on_every_backend(backend, op):
    x = _g(np.ones((1, 1, 5, 5), np.float32))
    w = _g(np.ones((1, 1, 1, 1), np.float32))
    calls = {
        "conv2d": lambda: F.conv2d(x, w, stride=BIG),
        "conv2d_backward": lambda: F.conv2d_backward(_g(np.ones((1, 1, 1, 1), np.float32)), x, w, dilation=BIG),
        "max_pool2d": lambda: F.max_pool2d(x, 1, stride=(1, BIG)),
        "avg_pool2d": lambda: F.avg_pool2d(x, 1, stride=BIG),
        "unfold": lambda: F.unfold(x, 1, stride=BIG),
        "gem": lambda: F.gem(x, kernel_size=1, stride=BIG),
        "max_pool2d_dilation": lambda: F.max_pool2d(x, 1, dilation=BIG),
    }
    with pytest.raises(ValueError, match=r"must be at most 2147483647 \(the kernels take 32-bit ints\)"):
        calls[op]()


def test_the_largest_int32_stride_works_on_every_backend(backend):
    x = _g(np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5))
    assert float(_np(F.max_pool2d(x, 1, stride=BIG - 1)).ravel()[0]) == 0.0
    np.testing.assert_array_equal(_np(F.unfold(x, 1, stride=BIG - 1)), [[[0.0]]])
    with pytest.raises(ValueError, match="the windows reach position .* more than the kernels' 32-bit ints hold"):
        F.conv2d(x, _g(np.ones((1, 1, 1, 1), np.float32)), padding=2**30)


# ---- 15. GeM in float32 with a large p -----------------------------------------------------------
def _gem_float64_formula(x, p, eps, k):
    """PyTorch's formula in float64 (windows k x k, stride k), forward and backward by hand."""
    n, c, h, w = x.shape
    cl = np.maximum(x, eps).reshape(n, c, h // k, k, w // k, k)
    m = (cl ** p).mean(axis=(3, 5))
    y = m ** (1 / p)
    dx = (cl ** (p - 1) * (y / (m * k * k))[:, :, :, None, :, None]).reshape(x.shape) * (x >= eps)
    dp = np.sum(y * (((cl ** p) * np.log(cl)).sum(axis=(3, 5)) / (k * k * p * m) - np.log(m) / p**2))
    return y, dx, dp


@pytest.mark.parametrize("kernel_size", [None, 2])
def test_gem_float32_with_a_large_p_matches_float64(backend, kernel_size):
    rng = np.random.default_rng(15)
    x = rng.uniform(0, 10, (2, 3, 4, 4))
    k = 4 if kernel_size is None else kernel_size
    y_ref, dx_ref, dp_ref = _gem_float64_formula(x, 50.0, 1e-6, k)
    x32 = _g(x.astype(np.float32))
    y = _np(F.gem(x32, 50.0, kernel_size=kernel_size))
    dx, dp = F.gem_backward(_g(np.ones(y.shape, np.float32)), x32, 50.0, kernel_size=kernel_size)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5)
    np.testing.assert_allclose(_np(dx), dx_ref, rtol=1e-4, atol=1e-6 * np.abs(dx_ref).max())
    np.testing.assert_allclose(_np(dp)[0], dp_ref, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gem_of_zeros_with_a_large_p_is_defined_and_the_same_everywhere(backend, dtype):
    x = _g(np.zeros((1, 2, 3, 3), dtype))
    y = F.gem(x, 50.0)
    dx, dp = F.gem_backward(_g(np.ones((1, 2, 1, 1), dtype)), x, 50.0)
    np.testing.assert_allclose(_np(y), 1e-6, rtol=1e-6)  # eps: PyTorch's float64 result
    np.testing.assert_array_equal(_np(dx), 0.0)
    np.testing.assert_array_equal(_np(dp), [0.0])


# ---- 5. dloss: real numbers and one-element arrays -----------------------------------------------
def _loss_backwards():
    logits = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    target = np.array([0, 2, 1, 2])
    prob = 1 / (1 + np.exp(-logits))
    return {
        "cross_entropy": lambda d: F.cross_entropy_backward(d, _g(logits), _g(target)),
        "nll": lambda d: F.nll_loss_backward(d, _g(logits), _g(target)),
        "mse": lambda d: F.mse_loss_backward(d, _g(logits), _g(prob)),
        "bce": lambda d: F.binary_cross_entropy_backward(d, _g(prob), _g(prob)),
        "smooth_l1": lambda d: F.smooth_l1_loss_backward(d, _g(logits), _g(prob)),
    }


@pytest.mark.parametrize("loss", list(_loss_backwards()))
def test_dloss_accepts_reals_and_one_element_arrays_only(backend, loss):
    run = _loss_backwards()[loss]
    expected = _np(run(2.0))
    for dloss in (2, np.float32(2), np.float64(2), _g(np.array(2.0, np.float32)), _g(np.array([2.0]))):
        np.testing.assert_allclose(_np(run(dloss)), expected, rtol=1e-6)
    for bad in ("1", True, None, [1.0], np.bool_(True)):
        with pytest.raises(TypeError, match="dloss must be a real number or a one-element array"):
            run(bad)
    with pytest.raises(ValueError, match="dloss must be a scalar"):
        run(_g(np.ones(2, np.float32)))


# ---- 6. argument errors instead of NumPy-internal ones -------------------------------------------
def test_linear_with_zero_features(backend):
    x, w, b = np.ones((2, 0), np.float32), np.ones((3, 0), np.float32), np.arange(3, dtype=np.float32)
    np.testing.assert_array_equal(_np(F.linear(_g(x), _g(w), _g(b))), np.broadcast_to(b, (2, 3)))
    dx, dw, db = F.linear_backward(_g(np.ones((2, 3), np.float32)), _g(x), _g(w))
    assert dx.shape == (2, 0) and dw.shape == (3, 0)
    np.testing.assert_array_equal(_np(db), [2, 2, 2])
    assert F.linear(_g(np.ones((2, 4), np.float32)), _g(np.ones((0, 4), np.float32))).shape == (2, 0)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_without_channels_is_an_error(backend, training):
    x = _g(np.ones((2, 0, 3, 3), np.float32))
    empty = _g(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match=r"x must have at least one channel .* got shape \(2, 0, 3, 3\)"):
        F.batch_norm(x, empty, empty, training=training)
    with pytest.raises(ValueError, match="at least one channel"):
        F.batch_norm_backward(x, x, None, empty, empty)


def test_adaptive_max_pool_of_an_empty_batch(backend):
    y, idx = F.adaptive_max_pool2d(_g(np.ones((0, 2, 5, 5), np.float32)), 2, return_indices=True)
    assert y.shape == idx.shape == (0, 2, 2, 2)


def test_group_norm_of_an_empty_batch_and_of_empty_groups(backend):
    y = F.group_norm(_g(np.ones((0, 4, 3, 3), np.float32)), 2)
    assert y.shape == (0, 4, 3, 3)
    with pytest.raises(ValueError, match=r"at least one element per group .* got shape \(2, 4, 0, 3\)"):
        F.group_norm(_g(np.ones((2, 4, 0, 3), np.float32)), 2)


def test_cross_entropy_without_classes_is_an_error(backend):
    with pytest.raises(ValueError, match=r"logits must have at least one class \(C >= 1\), got shape \(2, 0\)"):
        F.cross_entropy(_g(np.ones((2, 0), np.float32)), _g(np.zeros(2, np.int64)))


# ---- 8. unfold returns a fresh array -------------------------------------------------------------
def test_unfold_with_a_1x1_window_returns_a_fresh_writable_array(backend):
    x = _g(np.arange(12, dtype=np.float32).reshape(1, 3, 2, 2))
    u = F.unfold(x, 1)
    u += 1
    np.testing.assert_array_equal(_np(x), np.arange(12).reshape(1, 3, 2, 2))
    np.testing.assert_array_equal(_np(u), np.arange(12).reshape(1, 3, 4) + 1)


# ---- 9. no padded copy ---------------------------------------------------------------------------
def test_pooling_with_huge_padding_does_not_materialize_it(backend):
    x = _g(np.full((1, 2, 1, 1), 3.0, np.float32))
    start = time.perf_counter()
    y, idx = F.max_pool2d(x, 200001, padding=100000, return_indices=True)
    np.testing.assert_array_equal(_np(y), 3.0)
    np.testing.assert_array_equal(_np(idx), 0)
    dx = F.max_pool2d_backward(_g(np.full((1, 2, 1, 1), 5.0, np.float32)), x, idx, 200001, padding=100000)
    np.testing.assert_array_equal(_np(dx), 5.0)
    avg = F.avg_pool2d(x, 200001, padding=100000)
    np.testing.assert_allclose(_np(avg), 3.0 / 200001**2, rtol=1e-6)
    davg = F.avg_pool2d_backward(_g(np.ones((1, 2, 1, 1), np.float32)), (1, 2, 1, 1), 200001, padding=100000)
    np.testing.assert_allclose(_np(davg), 1.0 / 200001**2, rtol=1e-6)
    np.testing.assert_allclose(_np(F.avg_pool2d(x, 200001, padding=100000, count_include_pad=False)), 3.0)
    assert time.perf_counter() - start < 5  # the padded copy alone was 149 GiB


# ---- 11-14. checkpoints --------------------------------------------------------------------------
def _trained(seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3) if hasattr(nn, "BatchNorm1d") else nn.ReLU(),
                          nn.Linear(3, 2)).to(dtype)
    opt = optim.Adam(model.parameters(), lr=0.01)
    y = model(_g(rng.standard_normal((5, 4)).astype(dtype)))
    y.backward(_g(np.ones(y.shape, dtype)))
    opt.step()
    return model, opt


def _snapshot(model, opt):
    return ({k: _np(v).copy() for k, v in model.state_dict().items()},
            {k: {n: _np(a).copy() for n, a in s.items() if hasattr(a, "shape")} for k, s in opt.state_dict()["state"].items()},
            [dict((k, v) for k, v in g.items() if k != "params") for g in opt.param_groups])


def _assert_unchanged(before, model, opt):
    after = _snapshot(model, opt)
    for k, v in before[0].items():
        np.testing.assert_array_equal(after[0][k], v, err_msg=k)
    assert before[1].keys() == after[1].keys()
    for k in before[1]:
        for n in before[1][k]:
            np.testing.assert_array_equal(after[1][k][n], before[1][k][n])
    assert before[2] == after[2]


def _rewrite(src, dst, edit):
    """Copies checkpoint ``src`` to ``dst`` with ``edit(arrays, manifest)`` applied."""
    import json
    with np.load(src) as archive:
        arrays = {k: archive[k] for k in archive.files}
    manifest = json.loads(arrays["__gpuconv__"].tobytes())
    edit(arrays, manifest)
    arrays["__gpuconv__"] = np.frombuffer(json.dumps(manifest).encode(), np.uint8)
    np.savez(dst, **arrays)


@pytest.mark.parametrize("damage", ["exp_avg_shape", "no_param_groups", "missing_state"])
def test_a_failed_load_changes_nothing(backend, tmp_path, damage):
    source, source_opt = _trained(1)
    gpuconv.save(tmp_path / "good.npz", source, source_opt)

    def edit(arrays, manifest):
        opt = manifest["optimizer"]["__dict__"]
        if damage == "exp_avg_shape":
            key = next(k for k in arrays if k.endswith("exp_avg"))
            arrays[key] = np.ones((7, 7), arrays[key].dtype)
        elif damage == "no_param_groups":
            for entry in opt:
                if entry[0] == "param_groups":
                    entry[1] = []
        else:
            for entry in opt:
                if entry[0] == "state":
                    entry[1] = {"__dict__": [[0, {"__dict__": []}], [99, {"__dict__": []}]]}
            for key in [k for k in arrays if k.startswith("optimizer/state/")]:
                del arrays[key]  # no longer named by the manifest: an unnamed member is an error of its own

    _rewrite(tmp_path / "good.npz", tmp_path / "bad.npz", edit)
    model, opt = _trained(2)
    before = _snapshot(model, opt)
    with pytest.raises(ValueError, match="bad.npz: optimizer state does not match"):
        gpuconv.load(tmp_path / "bad.npz", model, opt)
    _assert_unchanged(before, model, opt)
    gpuconv.load(tmp_path / "good.npz", model, opt)  # the same objects still load a good file
    np.testing.assert_array_equal(_np(model[0].weight.data), _np(source[0].weight.data))


def test_a_model_failure_after_the_optimizer_loaded_restores_it(backend, tmp_path, monkeypatch):
    source, source_opt = _trained(1)
    gpuconv.save(tmp_path / "ck.npz", source, source_opt)
    model, opt = _trained(2)
    before = _snapshot(model, opt)

    def failing(*args, **kwargs):
        raise RuntimeError("simulated failure while assigning")

    monkeypatch.setattr(model, "load_state_dict", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        gpuconv.load(tmp_path / "ck.npz", model, opt)
    _assert_unchanged(before, model, opt)


def test_a_checkpoint_of_another_float_dtype_is_cast(backend, tmp_path):
    source, _ = _trained(1, np.float64)
    gpuconv.save(tmp_path / "f64.npz", source)
    model, _ = _trained(2, np.float32)
    gpuconv.load(tmp_path / "f64.npz", model)
    assert model[0].weight.data.dtype == np.float32
    np.testing.assert_allclose(_np(model[0].weight.data), _np(source[0].weight.data).astype(np.float32))


def test_a_float_checkpoint_entry_for_an_integer_one_names_the_path(tmp_path):
    model = nn.Sequential(nn.BatchNorm2d(2))
    gpuconv.save(tmp_path / "ck.npz", model)
    _rewrite(tmp_path / "ck.npz", tmp_path / "bad.npz",
             lambda arrays, manifest: arrays.update({"model/0.num_batches_tracked": np.array(1.5)}))
    with pytest.raises(ValueError, match=r"bad.npz: checkpoint does not match the model: .*num_batches_tracked: "
                                         r"checkpoint dtype float64 vs model int64"):
        gpuconv.load(tmp_path / "bad.npz", model)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_save_removes_stale_temporaries_of_dead_writers_only(tmp_path):
    model = nn.Sequential(nn.Linear(2, 2))
    stale = tmp_path / f".ck.npz.{_dead_pid()}.abc_123.tmp"
    live = tmp_path / f".ck.npz.{os.getpid()}.xyz.tmp"  # a concurrent save of this process
    other = tmp_path / f".other.npz.{_dead_pid()}.abc.tmp"  # another target's: not this save's business
    for f in (stale, live, other):
        f.write_bytes(b"partial")
    gpuconv.save(tmp_path / "ck.npz", model)
    assert not stale.exists()
    assert live.exists() and other.exists()
    gpuconv.load(tmp_path / "ck.npz", model)


def test_a_failed_save_removes_its_temporary_and_keeps_the_old_file(tmp_path, monkeypatch):
    model = nn.Sequential(nn.Linear(2, 2))
    gpuconv.save(tmp_path / "ck.npz", model)
    old = (tmp_path / "ck.npz").read_bytes()

    def failing(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing)
    with pytest.raises(OSError, match="disk full"):
        gpuconv.save(tmp_path / "ck.npz", model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz"]
    assert (tmp_path / "ck.npz").read_bytes() == old


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_save_honours_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        gpuconv.save(tmp_path / "ck.npz", nn.Sequential(nn.Linear(2, 2)))
        np.savez(tmp_path / "ref.npz", a=np.ones(1))
    finally:
        os.umask(previous)
    mode = os.stat(tmp_path / "ck.npz").st_mode & 0o777
    assert mode == 0o666 & ~umask == os.stat(tmp_path / "ref.npz").st_mode & 0o777


# ---- 16. divergence ------------------------------------------------------------------------------
def _classifier():
    gpuconv.manual_seed(0) if hasattr(gpuconv, "manual_seed") else None
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))


def _batches(n=6):
    rng = np.random.default_rng(0)
    return [(_g(rng.standard_normal((8, 4)).astype(np.float32)), _g(rng.integers(0, 3, 8))) for _ in range(n)]


def test_fit_stops_at_the_first_non_finite_loss(backend):
    model = _classifier()
    batches = _batches()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(NonFiniteLossError, match=r"loss is not finite at epoch 1, batch \d+: loss = (nan|inf)"):
            fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=1e30), batches, epochs=3,
                progress=False)


def test_fit_can_only_warn(backend):
    model = _classifier()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=1e30), _batches(), epochs=2,
                      progress=False, on_nonfinite="warn")
    assert len(history) == 2
    messages = [str(w.message) for w in caught if "loss is not finite" in str(w.message)]
    assert len(messages) == 2 and "epoch 1" in messages[0] and "epoch 2" in messages[1]
    with pytest.raises(ValueError, match="on_nonfinite must be 'raise' or 'warn'"):
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), _batches(), epochs=1,
            progress=False, on_nonfinite="ignore")


def test_fit_with_a_finite_loss_is_unaffected(backend):
    model = _classifier()
    history = fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), _batches(), epochs=2,
                  progress=False)
    assert all(np.isfinite(r["loss"]) for r in history)


@pytest.mark.filterwarnings("ignore:invalid value encountered in matmul:RuntimeWarning")  # the NaN it plants
def test_detect_anomaly_names_the_first_module_with_a_non_finite_output(backend):
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), nn.Linear(4, 3)), nn.ReLU())
    model[1][1].weight.data[0, 0] = np.inf
    x = _g(np.ones((2, 4), np.float32))
    model(x)  # off by default: nothing checked
    with gpuconv.flags(detect_anomaly=True):
        with pytest.raises(RuntimeError, match=r"in 1\.1 \(Linear\(.*\)\): detect_anomaly: Linear produced a "
                                               r"non-finite forward output"):
            model(x)


def test_detect_anomaly_names_the_first_op_with_a_non_finite_gradient(backend):
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3))
    x = _g(np.ones((2, 4), np.float32))
    with gpuconv.flags(detect_anomaly=True):
        y = model(x)
        dy = np.ones((2, 3), np.float32)
        dy[0, 0] = np.nan
        with pytest.raises(RuntimeError, match=r"detect_anomaly: AddmmBackward returned non-finite values in its "
                                               r"gradient 0 \(4 NaN"):
            y.backward(_g(dy))


def test_detect_anomaly_in_a_diverging_fit_names_the_layer(backend):
    model = _classifier()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with gpuconv.flags(detect_anomaly=True), pytest.raises(RuntimeError, match=r"in \d \(Linear\(.*detect_anomaly"):
            fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=1e30), _batches(), epochs=3,
                progress=False)


def test_save_warns_about_non_finite_parameters(tmp_path):
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gpuconv.save(tmp_path / "fine.npz", model)
    model[1].bias.data[1] = np.nan
    with pytest.warns(RuntimeWarning, match=r"NaN or infinite values in 1\.bias"):
        gpuconv.save(tmp_path / "nan.npz", model)
    with pytest.warns(RuntimeWarning, match=r"nan.npz.*NaN or infinite values in 1\.bias"):
        gpuconv.load(tmp_path / "nan.npz", model)  # still written and loadable, with the same warning


# ---- 17. unfold / fold name their parameter ------------------------------------------------------
def test_unfold_and_fold_errors_name_input(backend):
    with pytest.raises(ValueError, match=r"input must be 4-D"):
        F.unfold(_g(np.ones((2, 2), np.float32)), 1)
    with pytest.raises(ValueError, match=r"input: dimension 1 must be a multiple of"):
        F.fold(_g(np.ones((1, 5, 4), np.float32)), (3, 3), 2)
    with pytest.raises(ValueError, match=r"input must be 3-D"):
        F.fold(_g(np.ones((1, 1, 4, 4), np.float32)), (3, 3), 2)


def _normalized_classifier():
    gpuconv.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 5 * 5, 3))


def _image_batches(n=4, scale=1.0):
    rng = np.random.default_rng(1)
    return [(_g((rng.standard_normal((6, 2, 5, 5)) * scale).astype(np.float32)), _g(rng.integers(0, 3, 6)))
            for _ in range(n)]


def test_a_non_finite_running_statistic_stops_fit_as_a_non_finite_loss_does(backend):
    """Inputs of 1e20: finite activations whose variance (1e40) is beyond float32. On numpy batch
    norm keeps its outputs, and the loss, finite while running_var becomes inf; the kernels give
    NaN outputs. Either way fit stops at that batch, on every backend."""
    model = _normalized_classifier()
    loss = nn.CrossEntropyLoss()
    x, t = _image_batches(1, scale=1e20)[0]
    finite_loss = bool(np.isfinite(_np(loss(model(x), t))))
    assert finite_loss or backend.name != "numpy"  # numpy: the loss alone would not tell
    assert not np.isfinite(_np(model[1].running_var)).all()
    model = _normalized_classifier()
    before = {k: _np(v).copy() for k, v in model.state_dict().items()}
    expected = (r"a running statistic is not finite at epoch 1, batch 1: 1\.running_var holds NaN or infinity "
                r"\(loss = [\d.e+-]+\)" if finite_loss else r"the loss is not finite at epoch 1, batch 1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(NonFiniteLossError, match=expected):
            fit(model, loss, optim.SGD(model.parameters(), lr=0.1), _image_batches(3, scale=1e20), epochs=1,
                progress=False)
    after = model.state_dict()
    parameters = [k for k in before if k.endswith(("weight", "bias"))]
    assert all(np.array_equal(_np(after[k]), before[k]) for k in parameters)  # no step was applied


def test_a_running_statistic_check_warns_once_per_epoch_when_asked(backend):
    model = _normalized_classifier()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), _image_batches(3, scale=1e20),
            epochs=2, progress=False, on_nonfinite="warn")
    messages = [str(w.message) for w in caught if "is not finite at epoch" in str(w.message)]
    assert len(messages) == 2 and "epoch 1" in messages[0] and "epoch 2" in messages[1]


def test_finite_running_statistics_do_not_stop_fit(backend):
    model = _normalized_classifier()
    history = fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.01), _image_batches(3), epochs=1,
                  progress=False)
    assert len(history) == 1 and np.isfinite(history[0]["loss"])
