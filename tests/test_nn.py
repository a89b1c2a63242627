"""gpuconv.nn: every layer's forward against the functional op and its backward by finite
differences (float64, numpy), what forwards keep (and the byte reports), modes and no_grad,
parameters / state dicts / repr, the containers (Sequential, ModuleList, ModuleDict),
initialisation, fuse_conv_bn, a quick emulated-backend run, and layers of several op families
against torch.nn (state dicts load and give the same outputs and gradients).

A layer's own op family has its tests in the file named after it (nn.GroupNorm in
tests/test_group_norm.py, as gpuconv/functional/group_norm.py); ``check_layer`` here is what they use."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from gpuconv import nn
from gpuconv.backend import unavailable_reason
from tests.helpers import finite_difference_check

F64 = np.float64


@pytest.fixture(autouse=True)
def numpy_backend():
    with gpuconv.backend("numpy"):
        gpuconv.manual_seed(1234)
        yield


def check_layer(layer: nn.Module, x: np.ndarray, expected_forward=None, rng=None, samples: int = 6, seed=None):
    """Forward vs ``expected_forward(x)``, output_shape, and autograd's backward (input and every
    parameter) by central differences of sum(layer(x) * dy)."""
    rng = rng or np.random.default_rng(0)

    def run(x_in):
        if seed is not None:
            gpuconv.manual_seed(seed)
        return layer(x_in)

    xt = gpuconv.tensor(x, requires_grad=True)
    y = run(xt)
    assert layer.output_shape(x.shape) == tuple(y.shape)
    if expected_forward is not None:
        np.testing.assert_allclose(y.detach(), expected_forward(x), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    layer.zero_grad()
    y.backward(dy)
    dx = xt.grad.numpy()
    assert dx.shape == x.shape and dx.dtype == x.dtype
    params = dict(layer.named_parameters())
    grads = {name: p.grad.numpy().copy() for name, p in params.items() if p.requires_grad}
    assert set(grads) == {n for n, p in params.items() if p.requires_grad}, "a parameter got no gradient"

    inputs = {"x": x, **{name: params[name].data for name in grads}}

    def f(**_):
        with gpuconv.no_grad():
            return float(np.sum(np.asarray(run(x)) * dy))

    finite_difference_check(f, inputs, {"x": dx, **grads}, samples=samples, rng=rng, rtol=1e-6, atol=1e-8)
    return y


def randn(rng, *shape):
    return rng.standard_normal(shape)


# ---- every layer --------------------------------------------------------------------------------
def test_conv2d(rng):
    for kwargs, x_shape in [
        (dict(in_channels=3, out_channels=4, kernel_size=3, stride=2, padding=1), (2, 3, 7, 6)),
        (dict(in_channels=4, out_channels=6, kernel_size=(3, 2), dilation=2, groups=2, bias=False), (1, 4, 8, 7)),
        (dict(in_channels=2, out_channels=3, kernel_size=3, padding="same"), (2, 2, 5, 5)),
        (dict(in_channels=3, out_channels=5, kernel_size=1, algo="gemm"), (2, 3, 4, 3)),
    ]:
        layer = nn.Conv2d(**kwargs, dtype=F64)
        b = None if layer.bias is None else layer.bias.data
        x = randn(rng, *x_shape)
        check_layer(layer, x, lambda x: F.conv2d(x, layer.weight.data, b, layer.stride, layer.padding,
                                                  layer.dilation, layer.groups), rng)


def test_linear(rng):
    layer = nn.Linear(5, 3, dtype=F64)
    check_layer(layer, randn(rng, 4, 5), lambda x: x @ layer.weight.data.T + layer.bias.data, rng)
    layer = nn.Linear(4, 2, bias=False, dtype=F64)
    check_layer(layer, randn(rng, 2, 3, 4), lambda x: x @ layer.weight.data.T, rng)


def test_batchnorm2d_training(rng):
    for kwargs in [{}, dict(affine=False), dict(track_running_stats=False), dict(momentum=None)]:
        layer = nn.BatchNorm2d(3, dtype=F64, **kwargs)
        if layer.weight is not None:
            layer.weight.data[...] = rng.uniform(0.5, 1.5, 3)
            layer.bias.data[...] = rng.standard_normal(3)
        x = randn(rng, 4, 3, 3, 2) * 2 + 1
        w = None if layer.weight is None else layer.weight.data
        b = None if layer.bias is None else layer.bias.data
        check_layer(layer, x, lambda x: F.batch_norm(x, None, None, w, b, training=True), rng)


def test_batchnorm2d_running_stats_and_eval(rng):
    layer = nn.BatchNorm2d(2, dtype=F64)
    batches = [randn(rng, 3, 2, 2, 2) * (i + 1) + i for i in range(3)]
    mean, var = np.zeros(2), np.ones(2)
    for x in batches:
        layer(x)
        mean = 0.9 * mean + 0.1 * x.mean(axis=(0, 2, 3))
        var = 0.9 * var + 0.1 * x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(layer.running_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, var, rtol=1e-12)
    assert int(layer.num_batches_tracked) == 3 and layer.num_batches_tracked.dtype == np.int64

    cumulative = nn.BatchNorm2d(2, momentum=None, dtype=F64)
    for x in batches:
        cumulative(x)
    np.testing.assert_allclose(cumulative.running_mean, np.mean([x.mean(axis=(0, 2, 3)) for x in batches], axis=0),
                               rtol=1e-12)
    # eval: running statistics, nothing updated
    layer.eval()
    x = randn(rng, 2, 2, 3, 3)
    before = layer.running_mean.copy()
    y = layer(x)
    expected = (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(layer.running_mean, before)
    assert int(layer.num_batches_tracked) == 3


def test_layer_norm(rng):
    layer = nn.LayerNorm((4, 5), dtype=F64)
    layer.weight.data[...] = rng.uniform(0.5, 1.5, (4, 5))
    layer.bias.data[...] = rng.standard_normal((4, 5))
    check_layer(layer, randn(rng, 3, 4, 5), lambda x: F.layer_norm(x, (4, 5), layer.weight.data, layer.bias.data), rng)
    plain = nn.LayerNorm(6, elementwise_affine=False, dtype=F64)
    assert list(plain.parameters()) == []
    x = randn(rng, 2, 6)
    check_layer(plain, x, lambda x: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5), rng)


@pytest.mark.parametrize("make, x_shape, expected", [
    (lambda: nn.MaxPool2d(3, 2, 1), (2, 3, 7, 6), lambda x: F.max_pool2d(x, 3, 2, 1)),
    (lambda: nn.MaxPool2d(2, ceil_mode=True), (1, 2, 5, 5), lambda x: F.max_pool2d(x, 2, ceil_mode=True)),
    (lambda: nn.MaxPool2d(2, 1, dilation=2), (1, 2, 6, 5), lambda x: F.max_pool2d(x, 2, 1, dilation=2)),
    (lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False), (2, 2, 6, 7),
     lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)),
    (lambda: nn.AvgPool2d(2, ceil_mode=True, divisor_override=3), (1, 2, 5, 4),
     lambda x: F.avg_pool2d(x, 2, ceil_mode=True, divisor_override=3)),
    (lambda: nn.AdaptiveAvgPool2d((3, 2)), (2, 2, 7, 5), lambda x: F.adaptive_avg_pool2d(x, (3, 2))),
    (lambda: nn.AdaptiveAvgPool2d((None, 2)), (1, 2, 4, 5), lambda x: F.adaptive_avg_pool2d(x, (4, 2))),
    (lambda: nn.AdaptiveMaxPool2d(3), (2, 2, 7, 5), lambda x: F.adaptive_max_pool2d(x, 3)),
])
def test_pooling(make, x_shape, expected, rng):
    check_layer(make(), randn(rng, *x_shape), expected, rng)


def test_gem(rng):
    layer = nn.GeM(dtype=F64)
    assert layer.p.shape == (1,) and float(layer.p.data[0]) == 3.0
    assert [n for n, _ in layer.named_parameters()] == ["p"]
    x = rng.uniform(0.1, 2.0, (2, 3, 4, 5))
    check_layer(layer, x, lambda x: np.mean(x ** 3, axis=(2, 3), keepdims=True) ** (1 / 3), rng)
    windowed = nn.GeM(p=2.5, kernel_size=2, dtype=F64)
    check_layer(windowed, rng.uniform(0.1, 2.0, (1, 2, 5, 4)), lambda x: F.gem(x, 2.5, kernel_size=2), rng)


@pytest.mark.parametrize("make, expected", [
    (lambda: nn.ReLU(), lambda x: np.maximum(x, 0)),
    (lambda: nn.LeakyReLU(0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    (lambda: nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    (lambda: nn.Tanh(), np.tanh),
    (lambda: nn.Flatten(), lambda x: x.reshape(x.shape[0], -1)),
    (lambda: nn.Flatten(0, 2), lambda x: x.reshape(-1, x.shape[3])),
    (lambda: nn.Identity(), lambda x: x),
])
def test_elementwise_and_shape_layers(make, expected, rng):
    x = randn(rng, 2, 3, 2, 3)
    x[np.abs(x) < 1e-3] = 0.5  # keep finite differences away from the kinks
    check_layer(make(), x, expected, rng)


def test_dropout(rng):
    layer = nn.Dropout(0.3)
    x = randn(rng, 4, 50)
    gpuconv.manual_seed(5)
    expected = F.dropout(x, 0.3, training=True)
    check_layer(layer, x, lambda _: expected, rng, seed=5)
    y = layer(x)
    dropped = y == 0
    assert 0.15 < dropped.mean() < 0.45
    np.testing.assert_allclose(y[~dropped], x[~dropped] / 0.7, rtol=1e-12)
    layer.eval()
    assert layer(x) is x


def test_sequential_and_containers(rng):
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, dtype=F64), nn.BatchNorm2d(3, dtype=F64), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.0), nn.Linear(12, 4, dtype=F64), nn.Tanh())
    x = randn(rng, 3, 2, 4, 4)

    def expected(x):
        out = x
        for layer in model:
            out = layer(out)
        return out

    check_layer(model, x, None, rng, samples=4)
    model.eval()
    np.testing.assert_allclose(model(x), expected(x), rtol=1e-12)
    assert len(model) == 8 and isinstance(model[1], nn.BatchNorm2d) and model[-1] is list(model)[-1]
    head = model[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is model[0]
    assert [n for n, _ in head.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    with pytest.raises(IndexError):
        model[8]


def test_module_list_and_dict(numpy_f64):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(4, 4, dtype=np.float64) for _ in range(3)])
            self.heads = nn.ModuleDict({"cls": nn.Linear(4, 2, dtype=np.float64), "reg": nn.Linear(4, 1)})

    net = Net()
    names = [name for name, _ in net.named_parameters()]
    assert names == ["blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias", "blocks.2.weight",
                     "blocks.2.bias", "heads.cls.weight", "heads.cls.bias", "heads.reg.weight", "heads.reg.bias"]
    blocks = net.blocks
    assert len(blocks) == 3 and blocks[-1] is blocks[2] and list(blocks) == [blocks[0], blocks[1], blocks[2]]
    first = blocks[0]
    del blocks[0]
    assert len(blocks) == 2 and list(blocks._modules) == ["0", "1"] and blocks[0] is not first
    blocks.insert(0, first)
    assert blocks[0] is first and list(blocks._modules) == ["0", "1", "2"]
    blocks.append(nn.ReLU())
    blocks += [nn.Tanh()]
    assert isinstance(blocks[1:3], nn.ModuleList) and len(blocks[1:3]) == 2 and len(blocks) == 5
    blocks[4] = nn.Sigmoid()
    assert isinstance(blocks[4], nn.Sigmoid)
    with pytest.raises(IndexError, match="out of range for a ModuleList of 5"):
        blocks[5]
    with pytest.raises(TypeError, match="ModuleList entries must be Modules"):
        blocks.append(3)
    heads = net.heads
    assert list(heads) == ["cls", "reg"] and "cls" in heads and heads.cls is heads["cls"]
    heads.update([("aux", nn.Linear(4, 3))])
    assert list(heads.keys()) == ["cls", "reg", "aux"]
    assert isinstance(heads.pop("reg"), nn.Linear) and len(heads) == 2
    with pytest.raises(TypeError, match=r"ModuleDict\['x'\] must be a Module"):
        heads["x"] = 1
    with pytest.raises(KeyError, match="without '.'"):
        heads["a.b"] = nn.ReLU()
    assert "blocks.0.weight" in net.state_dict() and "heads.aux.weight" in net.state_dict()
    assert "(blocks): ModuleList(" in repr(net)



def test_residual_blocks(rng):
    ds = nn.Sequential(nn.Conv2d(3, 4, 1, stride=2, bias=False, dtype=F64), nn.BatchNorm2d(4, dtype=F64))
    block = nn.BasicBlock(3, 4, stride=2, downsample=ds, dtype=F64)
    check_layer(block, randn(rng, 2, 3, 5, 5), None, rng, samples=4)
    plain = nn.BasicBlock(4, 4, dtype=F64)
    check_layer(plain, randn(rng, 2, 4, 3, 3), None, rng, samples=4)
    ds = nn.Sequential(nn.Conv2d(4, 8, 1, bias=False, dtype=F64), nn.BatchNorm2d(8, dtype=F64))
    bottleneck = nn.Bottleneck(4, 2, downsample=ds, dtype=F64)
    check_layer(bottleneck, randn(rng, 2, 4, 4, 3), None, rng, samples=4)
    assert [n for n, _ in bottleneck.named_children()] == ["conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "relu",
                                                           "downsample"]


def test_basic_block_matches_functional_composition(rng):
    block = nn.BasicBlock(3, 3, dtype=F64).eval()
    for bn in (block.bn1, block.bn2):
        bn.running_mean[...] = rng.standard_normal(3)
        bn.running_var[...] = rng.uniform(0.5, 2, 3)
    x = randn(rng, 2, 3, 5, 4)

    def bn(m, v):
        return F.batch_norm(v, m.running_mean, m.running_var, m.weight.data, m.bias.data)

    out = F.relu(bn(block.bn1, F.conv2d(x, block.conv1.weight.data, padding=1)))
    out = bn(block.bn2, F.conv2d(out, block.conv2.weight.data, padding=1))
    np.testing.assert_allclose(block(x), np.maximum(out + x, 0), rtol=1e-12, atol=1e-12)


def test_an_input_without_requires_grad_gets_no_gradient(rng):
    model = nn.Sequential(nn.Conv2d(2, 3, 3, dtype=F64), nn.ReLU(), nn.Flatten(), nn.Linear(12, 2, dtype=F64))
    x = randn(rng, 2, 2, 4, 4)
    dy = randn(rng, 2, 2)
    xt = gpuconv.tensor(x, requires_grad=True)
    model(xt).backward(dy)
    grads = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    plain = gpuconv.tensor(x)
    model(plain).backward(dy)
    assert plain.grad is None
    for p, g in zip(model.parameters(), grads, strict=True):
        np.testing.assert_allclose(p.grad.numpy(), g, rtol=1e-12)
    assert xt.grad.shape == x.shape


def test_gradients_accumulate_and_frozen_parameters(rng):
    layer = nn.Linear(3, 2, dtype=F64)
    x, dy = randn(rng, 4, 3), randn(rng, 4, 2)
    layer(x).backward(dy)
    once = layer.weight.grad.numpy().copy()
    layer(x).backward(dy)
    np.testing.assert_allclose(layer.weight.grad.numpy(), 2 * once, rtol=1e-12)
    layer.zero_grad()
    assert layer.weight.grad is None
    layer.bias.requires_grad = False
    layer(x).backward(dy)
    assert layer.bias.grad is None and layer.weight.grad is not None
    layer.zero_grad(set_to_none=False)
    assert not layer.weight.grad.numpy().any()


# ---- what forwards keep ------------------------------------------------------------------------------
def _small_net():
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Dropout(0.5), nn.Flatten(), nn.Linear(16, 3), nn.Sigmoid())


def test_no_grad_records_nothing_and_backward_frees_the_graph(rng):
    x = rng.standard_normal((2, 2, 4, 4)).astype(np.float32)
    model = _small_net()
    assert gpuconv.is_grad_enabled()
    with gpuconv.no_grad():
        assert not gpuconv.is_grad_enabled()
        y = model(x)
    assert gpuconv.is_grad_enabled()
    assert y.grad_fn is None and not y.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()
    # a training forward records what backward needs; backward frees it
    y = model(x)
    node = y.grad_fn
    assert node._saved is not None
    y.sum().backward()
    assert node._saved is None
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.sum().backward()


def test_no_grad_as_decorator():
    @gpuconv.no_grad()
    def inside():
        return gpuconv.is_grad_enabled()

    assert inside() is False and gpuconv.is_grad_enabled()
    with gpuconv.no_grad():
        with gpuconv.enable_grad():
            assert gpuconv.is_grad_enabled()
        assert not gpuconv.is_grad_enabled()


def test_named_parameters_buffers_and_state_dict_order():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Linear(2, 2, bias=False))
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight"]
    assert [n for n, _ in model.named_buffers()] == ["1.running_mean", "1.running_var", "1.num_batches_tracked"]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                                        "1.running_var", "1.num_batches_tracked", "3.weight"]
    assert [n for n, _ in model.named_modules()] == ["", "0", "1", "2", "3"]
    assert len(list(model.children())) == 4
    visited = []
    model.apply(lambda m: visited.append(type(m).__name__))
    assert visited == ["Conv2d", "BatchNorm2d", "ReLU", "Linear", "Sequential"]
    assert all(p.dtype == np.float32 for p in model.parameters())


def test_register_buffer_non_persistent():
    m = nn.Module()
    m.register_buffer("a", np.ones(2))
    m.register_buffer("b", np.zeros(3), persistent=False)
    assert list(m.state_dict()) == ["a"] and [n for n, _ in m.named_buffers()] == ["a", "b"]
    m.a = np.full(2, 7.0)
    assert m.state_dict()["a"][0] == 7.0


def test_load_state_dict_round_trip_and_errors(rng):
    gpuconv.manual_seed(1)
    a = _small_net()
    gpuconv.manual_seed(2)
    b = _small_net()
    x = rng.standard_normal((2, 2, 4, 4)).astype(np.float32)
    a.eval(), b.eval()
    assert not np.allclose(a(x), b(x))
    result = b.load_state_dict({k: np.array(v) for k, v in a.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_array_equal(a(x), b(x))

    state = {k: np.array(v) for k, v in a.state_dict().items()}
    before = {k: np.array(v) for k, v in b.state_dict().items()}
    bad = dict(state)
    del bad["1.running_var"]
    bad["extra.weight"] = np.zeros(1, np.float32)
    bad["0.weight"] = np.zeros((4, 2, 3, 2), np.float32)
    bad["1.num_batches_tracked"] = state["1.num_batches_tracked"].astype(np.float64)  # float for an int slot
    bad["0.bias"] = state["0.bias"] + 1  # would be written if loading were not all-or-nothing
    with pytest.raises(RuntimeError) as info:
        b.load_state_dict(bad)
    message = str(info.value)
    for fragment in ["Missing key(s): '1.running_var'", "Unexpected key(s): 'extra.weight'",
                     "0.weight: shape (4, 2, 3, 2) in the state dict, (4, 2, 3, 3) in the model",
                     "1.num_batches_tracked: dtype float64 in the state dict, int64 in the model"]:
        assert fragment in message
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    # strict=False: missing and unexpected keys are reported, mismatches are still errors
    partial = {k: v for k, v in state.items() if k != "1.running_var"}
    partial["extra"] = np.zeros(1)
    result = b.load_state_dict(partial, strict=False)
    assert result.missing_keys == ["1.running_var"] and result.unexpected_keys == ["extra"]
    with pytest.raises(RuntimeError, match="0.weight: shape"):
        b.load_state_dict({"0.weight": np.zeros((1, 1, 1, 1), np.float32)}, strict=False)


def test_repr_like_pytorch():
    model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                          nn.MaxPool2d(2), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Dropout(),
                          nn.Linear(64, 10), nn.LeakyReLU(0.1))
    assert repr(model) == """Sequential(
  (0): Conv2d(3, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)
  (1): BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
  (2): ReLU(inplace=True)
  (3): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  (4): AdaptiveAvgPool2d(output_size=(1, 1))
  (5): Flatten(start_dim=1, end_dim=-1)
  (6): Dropout(p=0.5, inplace=False)
  (7): Linear(in_features=64, out_features=10, bias=True)
  (8): LeakyReLU(negative_slope=0.1)
)"""
    assert repr(nn.AvgPool2d(3, 2, 1)) == "AvgPool2d(kernel_size=3, stride=2, padding=1)"
    assert repr(nn.LayerNorm(8)) == "LayerNorm((8,), eps=1e-05, elementwise_affine=True)"
    assert repr(nn.GeM()) == "GeM(p=3.0000, eps=1e-06)"


def test_train_eval_flags_and_to_dtype(rng):
    model = _small_net()
    assert model.training and model.eval() is model and not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    model.double()
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model[1].num_batches_tracked.dtype == np.int64 and model[1].running_mean.dtype == np.float64
    x = rng.standard_normal((2, 2, 4, 4))
    assert model(x).dtype == np.float64


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(1, 1, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(0, 3)
    with pytest.raises(ValueError, match="num_features"):
        nn.BatchNorm2d(0)
    with pytest.raises(ValueError, match="p"):
        nn.Dropout(1.5)
    with pytest.raises(TypeError, match="dtype"):
        nn.Conv2d(1, 1, 3, dtype=np.int32)
    with pytest.raises(ValueError, match="padding='same' requires stride 1"):
        nn.Conv2d(1, 1, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding must be"):
        nn.Conv2d(1, 1, 3, padding="full")


# ---- initialisation ------------------------------------------------------------------------------------
def test_default_init_is_pytorchs_and_seeded():
    gpuconv.manual_seed(0)
    conv = nn.Conv2d(16, 32, 3)
    bound = 1 / math.sqrt(16 * 9)
    w = conv.weight.data
    assert w.dtype == np.float32 and conv.bias.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound
    assert np.abs(conv.bias.data).max() <= bound
    linear = nn.Linear(50, 40)
    assert np.abs(linear.weight.data).max() <= 1 / math.sqrt(50)
    gpuconv.manual_seed(0)
    again = nn.Conv2d(16, 32, 3)
    np.testing.assert_array_equal(again.weight.data, w)
    bn = nn.BatchNorm2d(4)
    assert (bn.weight.data == 1).all() and (bn.bias.data == 0).all() and (bn.running_var == 1).all()


# ---- fuse_conv_bn ------------------------------------------------------------------------------------------
def _randomize_bn(model, rng):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean[...] = rng.standard_normal(m.num_features) * 0.5
            m.running_var[...] = rng.uniform(0.5, 2.0, m.num_features)
            if m.weight is not None:
                m.weight.data[...] = rng.uniform(0.5, 1.5, m.num_features)
                m.bias.data[...] = rng.standard_normal(m.num_features) * 0.2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fuse_conv_bn(dtype, rng):
    from gpuconv.models import resnet50
    from gpuconv.models.resnet import ResNet
    models = [
        nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, dtype=dtype), nn.BatchNorm2d(4, dtype=dtype), nn.ReLU(),
                      nn.Conv2d(4, 4, 3, bias=False, dtype=dtype), nn.BatchNorm2d(4, affine=False, dtype=dtype)),
        ResNet(nn.BasicBlock, [1, 1, 1, 1], num_classes=5, dtype=dtype),
        ResNet(nn.Bottleneck, [1, 1, 1, 1], num_classes=5, cifar_stem=True, dtype=dtype),
    ]
    assert resnet50  # the zoo builds the same ResNet class
    x = rng.standard_normal((2, 3, 16, 16)).astype(dtype)
    for model in models:
        _randomize_bn(model, rng)
        model.train()
        fused = nn.fuse_conv_bn(model)
        assert model.training, "the original model must not change"
        assert not fused.training
        assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
        model.eval()
        expected = model(x)
        got = fused(x)
        scale = np.abs(expected).max()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * scale if dtype == np.float32 else 1e-12 * scale)
        assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


# ---- emulated backend --------------------------------------------------------------------------------------
@pytest.mark.skipif(unavailable_reason("emulated") is not None, reason=f"emulated: {unavailable_reason('emulated')}")
def test_layers_on_the_emulated_backend_match_numpy(rng):
    gpuconv.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, dtype=F64), nn.BatchNorm2d(3, dtype=F64), nn.ReLU(),
                          nn.MaxPool2d(2, ceil_mode=True), nn.AvgPool2d(2, 1, 1), nn.GeM(dtype=F64), nn.Flatten(),
                          nn.Linear(3, 2, dtype=F64))
    block = nn.BasicBlock(2, 2, dtype=F64)
    x = rng.standard_normal((2, 2, 5, 5))
    for net in (model, block):
        results = {}
        for name in ("numpy", "emulated"):
            with gpuconv.backend(name):
                net.zero_grad()
                xt = gpuconv.tensor(gpuconv.asarray(x), requires_grad=True)
                y = net(xt)
                y.backward(gpuconv.asarray(np.ones(y.shape)))
                results[name] = [gpuconv.to_numpy(y), gpuconv.to_numpy(xt.grad)] + [
                    gpuconv.to_numpy(p.grad) for p in net.parameters()]
        for a, b in zip(results["numpy"], results["emulated"], strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


def test_eval_reaches_modules_inside_nested_models():
    from gpuconv.models import lenet5
    outer = nn.Sequential(lenet5(), nn.Identity())
    outer.eval()
    assert not outer[0]._flatten.training
    outer.train()
    assert outer[0]._flatten.training


def test_reassigning_attributes_keeps_state_dict_order():
    conv = nn.Conv2d(2, 3, 3)
    conv.weight = nn.Parameter(np.zeros((3, 2, 3, 3), np.float32))
    assert list(conv.state_dict()) == ["weight", "bias"]
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    model.add_module("0", nn.Linear(2, 2, bias=False))
    assert [n for n, _ in model.named_parameters()] == ["0.weight"]
    conv.weight = None  # a plain attribute now: no longer a parameter
    assert [n for n, _ in conv.named_parameters()] == ["bias"] and conv.weight is None


# ---- PyTorch (only where installed) ----------------------------------------------------------------------------

def _torch_check(torch, ours, theirs, x, rng, rtol=1e-10):
    theirs = theirs.double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    t_x = torch.tensor(x, requires_grad=True)
    t_y = theirs(t_x)
    y = ours(x)
    np.testing.assert_allclose(y, t_y.detach().numpy(), rtol=rtol, atol=rtol)
    dy = rng.standard_normal(y.shape)
    t_y.backward(torch.tensor(dy))
    ours.zero_grad()
    xt = gpuconv.tensor(x, requires_grad=True)
    ours(xt).backward(dy)
    np.testing.assert_allclose(xt.grad.numpy(), t_x.grad.numpy(), rtol=rtol, atol=rtol)
    t_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), t_params[name].grad.numpy(), rtol=rtol, atol=rtol, err_msg=name)


def test_layers_against_torch(numpy_f64, rng):
    torch = pytest.importorskip("torch")
    tn = torch.nn
    cases = [
        (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, dtype=np.float64),
         tn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1), (2, 4, 3, 5)),
        (nn.ConvTranspose2d(4, 2, (2, 3), stride=(1, 2), groups=2, dilation=(2, 1), bias=False, dtype=np.float64),
         tn.ConvTranspose2d(4, 2, (2, 3), stride=(1, 2), groups=2, dilation=(2, 1), bias=False), (1, 4, 4, 3)),
        (nn.GroupNorm(3, 6, dtype=np.float64), tn.GroupNorm(3, 6), (2, 6, 3, 2)),
        (nn.BatchNorm1d(5, dtype=np.float64), tn.BatchNorm1d(5), (6, 5)),
        (nn.BatchNorm1d(5, dtype=np.float64), tn.BatchNorm1d(5), (3, 5, 4)),
        (nn.Upsample(scale_factor=2), tn.Upsample(scale_factor=2), (2, 3, 3, 4)),
        (nn.Upsample(size=(5, 9), mode="bilinear", align_corners=False),
         tn.Upsample(size=(5, 9), mode="bilinear", align_corners=False), (1, 2, 4, 3)),
        (nn.Upsample(scale_factor=(1.5, 2.5), mode="bilinear", align_corners=True),
         tn.Upsample(scale_factor=(1.5, 2.5), mode="bilinear", align_corners=True), (1, 2, 4, 3)),
        (nn.Upsample(size=(3, 7), mode="nearest"), tn.Upsample(size=(3, 7), mode="nearest"), (2, 1, 7, 4)),
    ]
    for ours, theirs, shape in cases:
        with torch.no_grad():
            for p in theirs.parameters():
                p.copy_(torch.randn(p.shape))
        _torch_check(torch, ours, theirs, rng.standard_normal(shape), rng)
    with torch.no_grad():
        for scale in (1.3, 0.7, 2.6, 1.05, 2.1, (1.2, 2.2)):
            x = rng.standard_normal((1, 1, 9, 11))
            for mode, corners in (("nearest", None), ("bilinear", False), ("bilinear", True)):
                expected = torch.nn.functional.interpolate(torch.tensor(x), scale_factor=scale, mode=mode,
                                                           align_corners=corners).numpy()
                np.testing.assert_allclose(F.interpolate(x, scale_factor=scale, mode=mode, align_corners=corners),
                                           expected, rtol=1e-12, atol=1e-12, err_msg=f"{mode} {scale}")


def test_containers_and_dropout2d_against_torch(numpy_f64, rng):
    torch = pytest.importorskip("torch")
    tn = torch.nn

    class Ours(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(3, 3, dtype=np.float64), nn.BatchNorm1d(3, dtype=np.float64)])
            self.heads = nn.ModuleDict({"b": nn.Linear(3, 2, dtype=np.float64), "a": nn.GroupNorm(1, 3)})

    class Theirs(tn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = tn.ModuleList([tn.Linear(3, 3), tn.BatchNorm1d(3)])
            self.heads = tn.ModuleDict({"b": tn.Linear(3, 2), "a": tn.GroupNorm(1, 3)})

    theirs = Theirs().double()
    ours = Ours()
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(state)
    ours.load_state_dict({k: v.astype(ours.state_dict()[k].dtype) for k, v in state.items()})
    # Dropout2d: whole channels, the same 1/(1-p) scaling as torch (masks differ: other generators).
    x = np.ones((20, 30, 2, 2))
    with torch.no_grad():
        t_y = tn.Dropout2d(0.25)(torch.tensor(x)).numpy()
    y = nn.Dropout2d(0.25)(x)
    for out in (y, t_y):
        assert set(np.unique(out)) == {0.0, 1 / 0.75}
        assert np.all(out.min(axis=(2, 3)) == out.max(axis=(2, 3)))
