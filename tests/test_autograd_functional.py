"""Every op of gpuconv.functional.DIFFERENTIABLE on Tensors: gradcheck in float64 on tiny shapes, and
the forward and every input gradient (x, weight, bias, GeM's p, a regression target) against torch's
autograd, on every backend. Convolutions run with every algorithm that applies; batch norm's running
statistics, max pooling's indices, dropout's mask and every loss reduction are checked too."""

from __future__ import annotations

import dataclasses
import importlib

import numpy as np
import pytest

import gpuconv as gc
import gpuconv.functional as F
from gpuconv.functional.conv_algo import candidates

from tests.autograd_helpers import (assert_matches, compare_with_torch, device_array, gradcheck_on, host, leaf,
                                    torch_leaf, torch_or_skip)


def F_of(L):
    """gpuconv.functional for lib=gpuconv, torch.nn.functional for lib=torch."""
    if L is gc:
        return F
    import torch.nn.functional as TF
    return TF


def const(L, array, like=None):
    """A constant (targets, indices, class weights) of lib ``L`` from a host array, in ``like``'s dtype
    when given."""
    array = np.asarray(array)
    if L is gc:
        return gc.Tensor(device_array(array if like is None else array.astype(like.dtype)))
    return L.tensor(array) if like is None else L.tensor(array).to(like.dtype)


def ours(L, **kwargs):
    """Keyword arguments only gpuconv takes (``algo=``): dropped for torch."""
    return kwargs if L is gc else {}


def gem_reference(L, x, p, eps, kernel_size):
    """GeM written with torch ops (PyTorch has no GeM): mean over the window of clamp(x, eps)^p, ^(1/p)."""
    TF = F_of(L)
    powered = x.clamp(min=eps).pow(p.reshape(1, 1, 1, 1) if p.ndim else p)
    pooled = TF.adaptive_avg_pool2d(powered, 1) if kernel_size is None else TF.avg_pool2d(powered, kernel_size)
    return pooled.pow(1.0 / p)


def probabilities(rng, shape):
    return rng.uniform(0.05, 0.95, shape)


def normal(rng, shape):
    return rng.standard_normal(shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


def distinct(rng, shape):
    """Values without ties and at least 1/8 apart (max pooling's choice is stable under eps)."""
    size = int(np.prod(shape))
    return ((rng.permutation(size) - size / 2) / 8).reshape(shape)


def away_from_zero(rng, shape):
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 1.5, shape)


CLASSES = np.array([2, 0, 1, 2])
SOFT_TARGET = np.random.default_rng(7).uniform(0.0, 1.0, (4, 3))
SMOOTH_L1_TARGET = np.random.default_rng(8).standard_normal((2, 3))
CLASS_WEIGHT = np.array([0.5, 2.0, 1.25])


def _logits(rng, shape):
    return rng.standard_normal(shape)


# name -> (fn(lib, *tensors), [(shape, domain), ...])
CASES = {
    "linear": (lambda L, x, w, b: F_of(L).linear(x, w, b), [((3, 4), normal), ((2, 4), normal), ((2,), normal)]),
    "linear_batched_no_bias": (lambda L, x, w: F_of(L).linear(x, w), [((2, 2, 3), normal), ((2, 3), normal)]),
    "conv_transpose2d": (lambda L, x, w, b: F_of(L).conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1,
                                                                      groups=2),
                         [((1, 4, 2, 3), normal), ((4, 1, 3, 2), normal), ((2,), normal)]),
    "conv_transpose2d_dilated": (lambda L, x, w: F_of(L).conv_transpose2d(x, w, None, 1, 0, 0, 1, 2),
                                 [((2, 2, 3, 2), normal), ((2, 2, 2, 2), normal)]),
    "relu": (lambda L, x: F_of(L).relu(x), [((2, 3, 2), away_from_zero)]),
    "leaky_relu": (lambda L, x: F_of(L).leaky_relu(x, 0.2), [((2, 3, 2), away_from_zero)]),
    "sigmoid": (lambda L, x: F_of(L).sigmoid(x) if L is gc else L.sigmoid(x), [((2, 3), normal)]),
    "tanh": (lambda L, x: F_of(L).tanh(x) if L is gc else L.tanh(x), [((2, 3), normal)]),
    "softmax": (lambda L, x: F_of(L).softmax(x, dim=1), [((2, 3, 2), normal)]),
    "softmax_last": (lambda L, x: F_of(L).softmax(x, dim=-1), [((3, 4), normal)]),
    "log_softmax": (lambda L, x: F_of(L).log_softmax(x, dim=-1), [((2, 4), normal)]),
    "log_softmax_dim0": (lambda L, x: F_of(L).log_softmax(x, dim=0), [((3, 2, 2), normal)]),
    "add": (lambda L, a, b: F.add(a, b) if L is gc else a + b, [((2, 3, 2), normal), ((2, 3, 2), normal)]),
    "layer_norm": (lambda L, x, w, b: F_of(L).layer_norm(x, (3, 2), w, b), [((2, 3, 2), normal), ((3, 2), normal),
                                                                             ((3, 2), normal)]),
    "layer_norm_no_affine": (lambda L, x: F_of(L).layer_norm(x, (4,), eps=1e-3), [((3, 4), normal)]),
    "group_norm": (lambda L, x, w, b: F_of(L).group_norm(x, 2, w, b), [((2, 4, 2, 2), normal), ((4,), normal),
                                                                        ((4,), normal)]),
    "group_norm_no_affine": (lambda L, x: F_of(L).group_norm(x, 1, eps=1e-3), [((1, 3, 2, 2), normal)]),
    "batch_norm_train": (lambda L, x, w, b: F_of(L).batch_norm(x, None, None, w, b, training=True),
                         [((3, 2, 2, 2), normal), ((2,), normal), ((2,), normal)]),
    "batch_norm_eval": (lambda L, x, w, b: F_of(L).batch_norm(x, const(L, [0.5, -0.25], x), const(L, [2.0, 0.75], x), w, b,
                                                              training=False, eps=1e-3),
                        [((2, 2, 2, 3), normal), ((2,), normal), ((2,), normal)]),
    "batch_norm_train_no_affine": (lambda L, x: F_of(L).batch_norm(x, None, None, training=True, eps=1e-3),
                                   [((2, 3, 2, 1), normal)]),
    "max_pool2d": (lambda L, x: F_of(L).max_pool2d(x, 2), [((1, 2, 4, 5), distinct)]),
    "max_pool2d_padded_dilated_ceil": (lambda L, x: F_of(L).max_pool2d(x, 3, 2, 1, 2, ceil_mode=True),
                                       [((2, 1, 5, 6), distinct)]),
    "avg_pool2d": (lambda L, x: F_of(L).avg_pool2d(x, 2, 1), [((1, 2, 3, 4), normal)]),
    "avg_pool2d_padded_ceil": (lambda L, x: F_of(L).avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
                               [((1, 2, 5, 4), normal)]),
    "avg_pool2d_divisor": (lambda L, x: F_of(L).avg_pool2d(x, (2, 3), padding=1, divisor_override=4),
                           [((1, 1, 4, 5), normal)]),
    "adaptive_avg_pool2d": (lambda L, x: F_of(L).adaptive_avg_pool2d(x, (2, 3)), [((1, 2, 5, 4), normal)]),
    "adaptive_max_pool2d": (lambda L, x: F_of(L).adaptive_max_pool2d(x, 2), [((2, 1, 5, 3), distinct)]),
    "gem_global": (lambda L, x, p: F.gem(x, p) if L is gc else gem_reference(L, x, p, 1e-6, None),
                   [((2, 2, 3, 3), positive), ((1,), lambda rng, s: rng.uniform(2.0, 4.0, s))]),
    "gem_windowed": (lambda L, x, p: F.gem(x, p, 1e-6, 2) if L is gc else gem_reference(L, x, p, 1e-6, 2),
                     [((1, 2, 4, 4), positive), ((1,), lambda rng, s: rng.uniform(1.5, 3.0, s))]),
    "interpolate_nearest": (lambda L, x: F_of(L).interpolate(x, size=(3, 5)), [((1, 2, 2, 3), normal)]),
    "pad_constant": (lambda L, x: F_of(L).pad(x, (1, 2, 0, 1), value=0.5), [((1, 2, 2, 3), normal)]),
    "pad_reflect": (lambda L, x: F_of(L).pad(x, (2, 1, 1, 1), mode="reflect"), [((1, 2, 3, 4), normal)]),
    "pad_replicate": (lambda L, x: F_of(L).pad(x, (1, 1, 2, 0), mode="replicate"), [((2, 1, 2, 3), normal)]),
    "pad_circular": (lambda L, x: F_of(L).pad(x, (1, 2, 1, 1), mode="circular"), [((1, 2, 3, 3), normal)]),
    "interpolate_nearest_scale": (lambda L, x: F_of(L).interpolate(x, scale_factor=2), [((1, 1, 2, 3), normal)]),
    "interpolate_bilinear": (lambda L, x: F_of(L).interpolate(x, size=(4, 3), mode="bilinear"),
                             [((1, 2, 3, 2), normal)]),
    "interpolate_bilinear_corners": (lambda L, x: F_of(L).interpolate(x, scale_factor=1.5, mode="bilinear",
                                                                      align_corners=True),
                                     [((2, 1, 2, 3), normal)]),
    "unfold": (lambda L, x: F_of(L).unfold(x, 2, dilation=1, padding=1, stride=2), [((1, 2, 3, 4), normal)]),
    "fold": (lambda L, c: F_of(L).fold(c, (3, 4), 2, padding=1, stride=(1, 2)), [((1, 8, 12), normal)]),
    "im2col": (lambda L, x: F.im2col(x, 2, 2, 1) if L is gc else F_of(L).unfold(x, 2, padding=1, stride=2),
               [((1, 2, 3, 4), normal)]),
    "im2col_knl": (lambda L, x: F.im2col(x, (2, 1), 1, 0, layout="knl") if L is gc else
                   F_of(L).unfold(x, (2, 1)).permute(1, 0, 2).reshape(2 * 2 * 1, -1), [((2, 2, 3, 2), normal)]),
    "col2im": (lambda L, c: F.col2im(c, (3, 4), 2, (1, 2), 1) if L is gc else F_of(L).fold(c, (3, 4), 2, padding=1,
                                                                                           stride=(1, 2)),
               [((1, 8, 12), normal)]),
}

REDUCTIONS = ("none", "mean", "sum")
for _r in REDUCTIONS:
    CASES[f"cross_entropy_{_r}"] = (
        lambda L, x, r=_r: F_of(L).cross_entropy(x, const(L, CLASSES), reduction=r), [((4, 3), _logits)])
    CASES[f"cross_entropy_weighted_ignore_smoothing_{_r}"] = (
        lambda L, x, r=_r: F_of(L).cross_entropy(x, const(L, [2, -100, 1, 0]), weight=const(L, CLASS_WEIGHT, x),
                                                 ignore_index=-100, reduction=r, label_smoothing=0.2),
        [((4, 3), _logits)])
    CASES[f"cross_entropy_spatial_{_r}"] = (
        lambda L, x, r=_r: F_of(L).cross_entropy(x, const(L, [[[0, 2], [1, 1]]]), reduction=r),
        [((1, 3, 2, 2), _logits)])
    CASES[f"nll_loss_{_r}"] = (
        lambda L, x, r=_r: F_of(L).nll_loss(x, const(L, CLASSES), weight=const(L, CLASS_WEIGHT, x), ignore_index=1,
                                            reduction=r), [((4, 3), _logits)])
    CASES[f"mse_loss_{_r}"] = (lambda L, x, t, r=_r: F_of(L).mse_loss(x, t, reduction=r),
                               [((2, 3), normal), ((2, 3), normal)])
    CASES[f"smooth_l1_loss_{_r}"] = (
        lambda L, x, t, r=_r: F_of(L).smooth_l1_loss(x, t, reduction=r, beta=0.5),
        [((2, 3), lambda rng, s: SMOOTH_L1_TARGET + away_from_zero(rng, s)), ((2, 3), lambda rng, s: SMOOTH_L1_TARGET)])
    CASES[f"binary_cross_entropy_{_r}"] = (
        lambda L, x, r=_r: F_of(L).binary_cross_entropy(x, const(L, SOFT_TARGET, x), weight=const(L, CLASS_WEIGHT, x),
                                                        reduction=r), [((4, 3), probabilities)])
    CASES[f"binary_cross_entropy_with_logits_{_r}"] = (
        lambda L, x, r=_r: F_of(L).binary_cross_entropy_with_logits(x, const(L, SOFT_TARGET, x), reduction=r,
                                                                    pos_weight=const(L, CLASS_WEIGHT, x)),
        [((4, 3), normal)])


def hosts_for(case, rng):
    fn, specs = CASES[case]
    return fn, [domain(rng, shape) for shape, domain in specs]


def _family_autograd_tests(op: str) -> list[str]:
    """The tests of ``op``'s family file (tests/test_<family>.py, the family module named after it) whose
    names start with ``test_<op>_autograd``: an op's autograd tests may live with its family's."""
    family = F.__dict__[op].__wrapped_array_op__.__module__.rsplit(".", 1)[-1]
    try:
        tests = importlib.import_module(f"tests.test_{family}")
    except ModuleNotFoundError:
        return []
    return [name for name in vars(tests) if name.startswith(f"test_{op}_autograd")]


def test_every_differentiable_op_is_covered():
    """A new op in DIFFERENTIABLE needs its cases here or tests named test_<op>_autograd* in its family's
    test file (conv2d, dropout and dropout2d have their own tests here)."""
    own_tests = {"conv2d", "dropout", "dropout2d"}
    missing = [op for op in F.DIFFERENTIABLE
               if op not in own_tests and not any(name == op or name.startswith(op + "_") for name in CASES)
               and not _family_autograd_tests(op)]
    assert not missing, f"no autograd test for {missing}"


def test_family_autograd_tests_are_found_by_name():
    """The coverage test's second place: max_pool2d's family file has no test_max_pool2d_autograd*, a
    made-up name in the same module would count."""
    import tests.test_pool as pool_tests

    assert _family_autograd_tests("max_pool2d") == []
    pool_tests.test_max_pool2d_autograd_probe = lambda: None
    try:
        assert _family_autograd_tests("max_pool2d") == ["test_max_pool2d_autograd_probe"]
    finally:
        del pool_tests.test_max_pool2d_autograd_probe


# ---- declared autograd forms (_dispatch.autograd_form) -----------------------------------------------
def _cube(x, scale=1.0):
    """A toy array op: scale * x^3."""
    return x * x * x * scale


def _cube_backward(dy, x, y, scale=1.0):
    """d(scale * x^3)/dx = 3 * y / x (from the saved output), times dy."""
    return dy * 3.0 * scale * x * x


@pytest.fixture
def declared_cube(monkeypatch):
    """``_cube`` declared in a private copy of the registry (saves the input and the output; ``scale``
    is passed by name), with a spy on its backward."""
    from gpuconv.functional import _dispatch

    monkeypatch.setattr(_dispatch, "FORMS", dict(_dispatch.FORMS))
    calls = []

    def backward(dy, x, y, scale=1.0):
        calls.append((x.shape, y.shape, scale))
        return _cube_backward(dy, x, y, scale)

    backward.__name__ = "_cube_backward"
    form = _dispatch.autograd_form(_cube, backward, saves=("x", "output"), label="CubeBackward")
    return _dispatch.differentiable(_cube, "_cube"), form, calls


def test_a_declared_op_records_its_declared_node(backend, rng, declared_cube):
    op, form, calls = declared_cube
    assert form.passed == ("scale",) and form.inputs == ("x",)
    x = leaf(rng.standard_normal((2, 3)))
    y = op(x, scale=2.0)
    assert isinstance(y, gc.Tensor) and y.grad_fn.name == "CubeBackward"
    y.sum().backward()
    assert calls == [((2, 3), (2, 3), 2.0)]
    np.testing.assert_allclose(host(x.grad), 6.0 * host(x) ** 2, rtol=1e-12)
    plain = op(device_array(np.ones((2,))), 3.0)
    assert not isinstance(plain, gc.Tensor)  # arrays in, arrays out
    gradcheck_on(lambda L, t: op(t, scale=0.5), [rng.standard_normal((3, 2))])


def test_a_declared_op_saves_the_input_with_its_version(backend, rng, declared_cube):
    op, _, _ = declared_cube
    x = leaf(rng.standard_normal((2, 2)))
    base = x * 1.0
    y = op(base)
    base.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_a_declaration_names_parameters_the_forward_has(declared_cube):
    from gpuconv.functional import _dispatch

    with pytest.raises(ValueError, match="'w' is not a parameter of the forward"):
        _dispatch.autograd_form(_cube, _cube_backward, saves=("w",), label="CubeBackward")
    with pytest.raises(ValueError, match=r"must take the forward's parameters \['scale'\] by name"):
        _dispatch.autograd_form(_cube, lambda dy, x, y: dy, saves=("x", "output"), label="CubeBackward")


def test_declared_pool_ops_record_through_their_declaration(backend, rng):
    """avg_pool2d is declared in functional/pool.py: F.avg_pool2d on a Tensor records its node, whose
    backward gets the input's shape and the forward's other arguments by name."""
    from gpuconv.autograd.functional_ops import record_declared

    form = F._dispatch.FORMS["avg_pool2d"]
    assert F.avg_pool2d(leaf(rng.standard_normal((1, 1, 2, 2))), 2).grad_fn.name == "AvgPool2DBackward"
    seen = []

    def spy(dy, x_shape, **kwargs):
        seen.append((x_shape, kwargs))
        return form.backward(dy, x_shape, **kwargs)
    x = leaf(rng.standard_normal((1, 2, 5, 4)))
    record_declared(dataclasses.replace(form, backward=spy), x, 2, ceil_mode=True).sum().backward()
    assert seen == [((1, 2, 5, 4), dict(kernel_size=2, stride=None, padding=0, ceil_mode=True, count_include_pad=True,
                                        divisor_override=None))]
    assert x.grad is not None and host(x.grad).shape == (1, 2, 5, 4)


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradcheck(backend, case, rng):
    fn, hosts = hosts_for(case, rng)
    gradcheck_on(fn, hosts)


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_torch(backend, case, rng):
    fn, hosts = hosts_for(case, rng)
    compare_with_torch(fn, hosts, np.float64, what=case)
    compare_with_torch(fn, hosts, np.float64, contiguous=False, what=f"{case} (strided inputs)")


@pytest.mark.parametrize("case", ["linear", "conv_transpose2d", "softmax", "layer_norm", "group_norm",
                                  "batch_norm_train", "max_pool2d", "gem_windowed", "interpolate_bilinear",
                                  "cross_entropy_mean", "binary_cross_entropy_with_logits_sum"])
def test_matches_torch_float32(backend, case, rng):
    fn, hosts = hosts_for(case, rng)
    compare_with_torch(fn, hosts, np.float32, what=case)


# ---- conv2d: every algorithm that applies, per direction ---------------------------------------------
CONV_CONFIGS = {
    "3x3_pad": dict(x=(2, 2, 4, 4), w=(3, 2, 3, 3), bias=True, stride=1, padding=1, dilation=1, groups=1),
    "grouped_strided": dict(x=(1, 4, 5, 5), w=(4, 2, 3, 2), bias=True, stride=(2, 1), padding=(1, 0), dilation=1,
                            groups=2),
    "dilated_no_bias": dict(x=(2, 1, 5, 6), w=(2, 1, 2, 2), bias=False, stride=1, padding=(0, 1), dilation=2,
                            groups=1),
    "pointwise": dict(x=(2, 3, 3, 2), w=(4, 3, 1, 1), bias=True, stride=1, padding=0, dilation=1, groups=1),
    "depthwise": dict(x=(1, 3, 4, 4), w=(3, 1, 3, 3), bias=False, stride=2, padding=1, dilation=1, groups=3),
}


def conv_cases():
    for name, cfg in CONV_CONFIGS.items():
        g = F.conv_geometry(cfg["x"], cfg["w"], cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"])
        for algo in candidates(g):
            yield pytest.param(name, algo, id=f"{name}-{algo}")


def conv_fn(cfg, algo):
    kwargs = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"])
    if cfg["bias"]:
        return lambda L, x, w, b: F_of(L).conv2d(x, w, b, **kwargs, **ours(L, algo=algo))
    return lambda L, x, w: F_of(L).conv2d(x, w, **kwargs, **ours(L, algo=algo))


def conv_hosts(cfg, rng):
    hosts = [rng.standard_normal(cfg["x"]), rng.standard_normal(cfg["w"])]
    return hosts + ([rng.standard_normal(cfg["w"][0])] if cfg["bias"] else [])


def test_conv_algorithms_cover_every_algorithm():
    used = {p.values[1] for p in conv_cases()}
    assert used == set(F.ALGOS) - {"auto"}, used


@pytest.mark.parametrize("config, algo", list(conv_cases()))
def test_conv2d_matches_torch(backend, config, algo, rng):
    cfg = CONV_CONFIGS[config]
    compare_with_torch(conv_fn(cfg, algo), conv_hosts(cfg, rng), np.float64, what=f"conv2d {config} {algo}")
    compare_with_torch(conv_fn(cfg, algo), conv_hosts(cfg, rng), np.float32, what=f"conv2d {config} {algo} f32")


@pytest.mark.parametrize("algo", ["im2col", "direct", "implicit_gemm", {"forward": "direct",
                                                                        "backward_data": "implicit_gemm",
                                                                        "backward_weight": "im2col"}],
                         ids=["im2col", "direct", "implicit_gemm", "mixed"])
def test_conv2d_gradcheck(backend, algo, rng):
    cfg = dict(x=(1, 2, 3, 4), w=(2, 1, 2, 3), bias=True, stride=(1, 2), padding=1, dilation=1, groups=2)
    gradcheck_on(conv_fn(cfg, algo), conv_hosts(cfg, rng))


def test_conv2d_gradcheck_gemm(backend, rng):
    cfg = CONV_CONFIGS["pointwise"] | dict(x=(1, 2, 2, 2), w=(2, 2, 1, 1))
    gradcheck_on(conv_fn(cfg, "gemm"), conv_hosts(cfg, rng))


def test_conv2d_runs_the_algorithm_asked_for_in_each_direction(backend, monkeypatch, rng):
    """algo= reaches the backward: the per-direction mapping is what conv2d_backward is called with."""
    from gpuconv.functional import conv as conv_module

    seen = []
    real = conv_module.conv2d_backward

    def spy(*args, **kwargs):
        seen.append(kwargs.get("algo"))
        return real(*args, **kwargs)
    monkeypatch.setattr(conv_module, "conv2d_backward", spy)
    algo = {"forward": "direct", "backward_data": "im2col", "backward_weight": "direct"}
    x, w = leaf(rng.standard_normal((1, 2, 3, 3))), leaf(rng.standard_normal((2, 2, 3, 3)))
    F.conv2d(x, w, padding=1, algo=algo).sum().backward()
    assert seen == [algo]


# ---- batch norm's running statistics -----------------------------------------------------------------
@pytest.mark.parametrize("momentum", [0.1, 0.7])
def test_batch_norm_training_updates_running_statistics_as_torch(backend, momentum, rng):
    torch = torch_or_skip()
    TF = F_of(torch)
    xh, wh, bh = rng.standard_normal((3, 2, 2, 3)), rng.standard_normal(2), rng.standard_normal(2)
    mean_h, var_h = rng.standard_normal(2), rng.uniform(0.5, 2.0, 2)
    x, w, b = leaf(xh), leaf(wh), leaf(bh)
    rm, rv = gc.Tensor(device_array(mean_h)), gc.Tensor(device_array(var_h))
    tx, tw, tb = torch_leaf(xh), torch_leaf(wh), torch_leaf(bh)
    trm, trv = torch.tensor(mean_h), torch.tensor(var_h)
    for step in range(2):  # the second forward starts from the first one's running statistics
        y = F.batch_norm(x, rm, rv, w, b, training=True, momentum=momentum)
        ty = TF.batch_norm(tx, trm, trv, tw, tb, training=True, momentum=momentum)
        assert_matches(y, ty, np.float64, f"step {step} forward")
        assert_matches(rm, trm, np.float64, f"step {step} running_mean")
        assert_matches(rv, trv, np.float64, f"step {step} running_var")
        seed = rng.standard_normal(ty.shape)
        (y * gc.Tensor(device_array(seed))).sum().backward()
        (ty * torch.tensor(seed)).sum().backward()
        # backward leaves the running statistics alone
        assert_matches(rm, trm, np.float64, f"step {step} running_mean after backward")
        assert_matches(rv, trv, np.float64, f"step {step} running_var after backward")
    for name, ours_t, theirs in (("x", x, tx), ("weight", w, tw), ("bias", b, tb)):
        assert_matches(ours_t.grad, theirs.grad, np.float64, f"accumulated gradient of {name}")
    assert not np.allclose(host(rm), mean_h), "running_mean was not updated"


def test_batch_norm_eval_uses_running_statistics_and_leaves_them(backend, rng):
    mean_h, var_h = rng.standard_normal(2), rng.uniform(0.5, 2.0, 2)
    rm, rv = gc.Tensor(device_array(mean_h)), gc.Tensor(device_array(var_h))
    x = leaf(rng.standard_normal((2, 2, 2, 2)))
    F.batch_norm(x, rm, rv, training=False).sum().backward()
    np.testing.assert_array_equal(host(rm), mean_h)
    np.testing.assert_array_equal(host(rv), var_h)


# ---- max pooling's indices ---------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["max_pool2d", "adaptive_max_pool2d"])
def test_max_pool_indices_match_torch_and_are_not_differentiable(backend, op, rng):
    torch = torch_or_skip()
    TF = F_of(torch)
    xh = distinct(rng, (2, 2, 5, 4))
    args = (3, 2, 1) if op == "max_pool2d" else (2,)
    x, tx = leaf(xh), torch_leaf(xh)
    y, indices = getattr(F, op)(x, *args, return_indices=True)
    ty, tindices = getattr(TF, op)(tx, *args, return_indices=True)
    np.testing.assert_array_equal(host(indices), tindices.numpy())
    assert indices.dtype == np.int64
    assert not indices.requires_grad and indices.grad_fn is None
    assert y.grad_fn is not None
    seed = rng.standard_normal(ty.shape)
    (y * gc.Tensor(device_array(seed))).sum().backward()
    (ty * torch.tensor(seed)).sum().backward()
    assert_matches(x.grad, tx.grad, np.float64, "dx")


# ---- dropout with a fixed generator ----------------------------------------------------------------
@pytest.mark.parametrize("op", ["dropout", "dropout2d"])
@pytest.mark.parametrize("p", [0.3, 0.75])
def test_dropout_gradient_is_the_mask_scaled(backend, op, p, rng):
    xh = rng.standard_normal((2, 3, 2, 2))
    x = leaf(xh)
    y, mask = getattr(F, op)(x, p, training=True, generator=np.random.default_rng(3), return_mask=True)
    assert not mask.requires_grad and mask.grad_fn is None
    m = host(mask)
    keep = np.broadcast_to(m.reshape(m.shape + (1,) * (4 - m.ndim)), xh.shape)
    assert 0 < keep.sum() < keep.size, "the mask must keep some elements and drop some for this test to mean anything"
    scale = 1.0 / (1.0 - p)
    np.testing.assert_allclose(host(y), np.where(keep, xh * scale, 0.0), rtol=1e-15)
    # The same generator state gives the same mask without return_mask.
    y2 = getattr(F, op)(x, p, training=True, generator=np.random.default_rng(3))
    np.testing.assert_array_equal(host(y2), host(y))
    seed = rng.standard_normal(xh.shape)
    (y * gc.Tensor(device_array(seed))).sum().backward()
    np.testing.assert_allclose(host(x.grad), np.where(keep, seed * scale, 0.0), rtol=1e-15)


@pytest.mark.parametrize("op", ["dropout", "dropout2d"])
def test_dropout_eval_is_identity_and_passes_the_gradient(backend, op, rng):
    xh = rng.standard_normal((1, 2, 2, 2))
    x = leaf(xh)
    y = getattr(F, op)(x, 0.5, training=False)
    (y * 3.0).sum().backward()
    np.testing.assert_array_equal(host(x.grad), np.full(xh.shape, 3.0))


# ---- losses: the gradient of a probability target is refused, as in PyTorch -----------------------
def test_binary_cross_entropy_refuses_a_target_that_requires_grad(backend, rng):
    x = leaf(probabilities(rng, (2, 3)))
    target = leaf(probabilities(rng, (2, 3)))
    with pytest.raises(RuntimeError, match="target"):
        F.binary_cross_entropy(x, target)


# ---- conv_transpose2d: it runs the conv2d algorithms with the directions swapped ----------------------
@pytest.mark.parametrize("algo", ["im2col", "direct", "implicit_gemm", "gemm"])
def test_conv_transpose2d_algorithms_match_torch(backend, algo, rng):
    if algo == "gemm":  # a 1x1 kernel, stride 1, no padding
        shapes, kwargs = [(2, 3, 2, 3), (3, 2, 1, 1), (2,)], dict(stride=1, padding=0)
    else:
        shapes, kwargs = [(1, 4, 2, 3), (4, 1, 3, 2), (2,)], dict(stride=2, padding=1, output_padding=1, groups=2)

    def fn(L, x, w, b):
        return F_of(L).conv_transpose2d(x, w, b, **kwargs, **ours(L, algo=algo))
    compare_with_torch(fn, [rng.standard_normal(s) for s in shapes], np.float64, what=f"conv_transpose2d {algo}")
