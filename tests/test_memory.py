"""The memory estimator against the allocator: per-op transients and whole steps, on every backend."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

import gpuconv as gc
import gpuconv.functional as F
import gpuconv.memory as M
from gpuconv import nn, optim
from gpuconv.backend.memory_hooks import round_to_block
from gpuconv.functional.activation import relu_transient_bytes
from gpuconv.functional.batchnorm import batch_norm_transient_bytes
from gpuconv.functional.dropout import dropout_transient_bytes
from gpuconv.functional.linear import linear_transient_bytes
from gpuconv.functional.loss import cross_entropy_transient_bytes
from gpuconv.functional.pool import max_pool2d_transient_bytes
from gpuconv.memory._conv import conv_transient_bytes
from gpuconv.models import lenet5
from gpuconv.models.vgg import CONFIGS, VGG, make_layers
from gpuconv.models.resnet import ResNet
from gpuconv.nn import BasicBlock, Bottleneck
from tests import memory_user_models as user

# Not modelled: Python objects the op creates and NumPy's ufunc buffers (at most 8192 elements per
# operand, np.getbufsize()), so an op's transient is compared to within this many bytes. Shapes
# below are chosen so that every modelled term is far larger.
OP_SLACK = 8 * 1024 + 2 * 8192 * 8


def _transient(fn, *args, **kwargs):
    """Bytes ``fn`` had in use at its peak above what it left allocated (its results)."""
    fn(*args, **kwargs)  # warm: kernels load, caches fill
    was = tracemalloc.is_tracing()
    if not was:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        out = fn(*args, **kwargs)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        if not was:
            tracemalloc.stop()
    del out
    return peak - current


@pytest.fixture(params=["numpy", "emulated"])
def host_backend(request):
    """The backends whose arrays tracemalloc sees."""
    if request.param == "emulated":
        from gpuconv.backend import unavailable_reason
        reason = unavailable_reason("emulated")
        if reason:
            pytest.skip(reason)
    with gc.backend(request.param) as be:
        yield be


def _rand(rng, shape, dtype=np.float32):
    return gc.asarray(rng.standard_normal(shape).astype(dtype))


# ---- per-op transients ----------------------------------------------------------------------------
CONV_CASES = [
    ((8, 16, 16, 16), (32, 16, 3, 3), 1, 1, 1),   # im2col, wide GEMM (small images)
    ((8, 16, 16, 16), (32, 16, 3, 3), 2, 1, 1),   # stride 2: col2im backward on numpy
    ((1, 16, 40, 40), (8, 16, 3, 3), 1, 1, 1),    # one GEMM per image
    ((8, 3, 32, 32), (64, 3, 7, 7), 2, 3, 1),     # few channels: "direct"
    ((8, 64, 8, 8), (256, 64, 1, 1), 1, 0, 1),    # 1x1: "gemm"
    ((2, 8, 64, 64), (8, 4, 3, 3), 1, 1, 2),      # groups
    ((3, 16, 70, 70), (16, 16, 3, 3), 1, 1, 1),   # large image
]


@pytest.mark.parametrize("case", CONV_CASES, ids=[f"{c[0]}-{c[1]}-s{c[2]}" for c in CONV_CASES])
def test_conv_transient_matches_measurement(host_backend, rng, case):
    x_shape, w_shape, stride, padding, groups = case
    x, w, b = _rand(rng, x_shape), _rand(rng, w_shape), _rand(rng, (w_shape[0],))
    y = F.conv2d(x, w, None, stride, padding, 1, groups)
    name = host_backend.name
    with_bias = _transient(F.conv2d, x, w, b, stride, padding, 1, groups)
    expected = conv_transient_bytes(x_shape, w_shape, np.float32, stride, padding, 1, groups, direction="forward",
                                    backend=name, bias=True)
    assert abs(with_bias - expected) <= OP_SLACK, ("forward with bias", with_bias, expected)
    for direction, run in (
            ("forward", lambda: F.conv2d(x, w, None, stride, padding, 1, groups)),
            ("backward_data", lambda: F.conv2d_backward(y, x, w, stride, padding, 1, groups, needs=(True, False, False))),
            ("backward_weight", lambda: F.conv2d_backward(y, x, w, stride, padding, 1, groups,
                                                          needs=(False, True, False)))):
        expected = conv_transient_bytes(x_shape, w_shape, np.float32, stride, padding, 1, groups,
                                        direction=direction, backend=name)
        assert abs(_transient(run) - expected) <= OP_SLACK, (direction, _transient(run), expected)


@pytest.mark.parametrize("case", [((8, 16, 24, 24), (32, 16, 3, 3), 1, 1, 1), ((7, 16, 40, 40), (16, 16, 3, 3), 2, 1, 1)],
                         ids=["wide", "per-image"])
def test_conv_transient_in_chunks_matches_measurement(host_backend, rng, case):
    # A workspace limit of about three images' columns: the batch runs in several chunks.
    x_shape, w_shape, stride, padding, groups = case
    x, w = _rand(rng, x_shape), _rand(rng, w_shape)
    g = F.conv_geometry(x_shape, w_shape, stride, padding, 1, groups)
    previous = F.get_workspace_limit()
    F.set_workspace_limit(3 * g.column_bytes_per_image(4) + 100)
    try:
        y = F.conv2d(x, w, None, stride, padding, 1, groups, algo="im2col")
        for direction, run in (
                ("forward", lambda: F.conv2d(x, w, None, stride, padding, 1, groups, algo="im2col")),
                ("backward_data", lambda: F.conv2d_backward(y, x, w, stride, padding, 1, groups, algo="im2col",
                                                            needs=(True, False, False))),
                ("backward_weight", lambda: F.conv2d_backward(y, x, w, stride, padding, 1, groups, algo="im2col",
                                                              needs=(False, True, False)))):
            expected = conv_transient_bytes(x_shape, w_shape, np.float32, stride, padding, 1, groups, "im2col",
                                            direction=direction, backend=host_backend.name)
            measured = _transient(run)
            assert abs(measured - expected) <= OP_SLACK, (direction, measured, expected)
    finally:
        F.set_workspace_limit(previous)


def test_conv_transient_is_large_enough_to_test():
    # The cases above would not catch a model that returns 0 unless some transients are large.
    sizes = [conv_transient_bytes(c[0], c[1], np.float32, c[2], c[3], 1, c[4], direction="forward",
                                  backend="numpy") for c in CONV_CASES]
    assert max(sizes) > 20 * OP_SLACK


@pytest.mark.parametrize("shape", [(8, 64, 32, 32), (4, 32, 33, 31)])
def test_elementwise_and_norm_transients_match_measurement(host_backend, rng, shape):
    name = host_backend.name
    x, dy = _rand(rng, shape), _rand(rng, shape)
    c = shape[1]
    assert abs(_transient(F.relu, x) - relu_transient_bytes(shape, np.float32, "forward", name)) <= OP_SLACK
    assert abs(_transient(F.relu_backward, dy, x) - relu_transient_bytes(shape, np.float32, "backward", name)) <= OP_SLACK
    rm, rv = gc.asarray(np.zeros(c, np.float32)), gc.asarray(np.ones(c, np.float32))
    w, b = gc.asarray(np.ones(c, np.float32)), gc.asarray(np.zeros(c, np.float32))
    _, mean, invstd = F.batch_norm(x, rm, rv, w, b, training=True, return_stats=True)
    assert abs(_transient(F.batch_norm, x, rm, rv, w, b, training=True, return_stats=True)
               - batch_norm_transient_bytes(shape, np.float32, "forward", name)) <= OP_SLACK
    for needs_dx in (True, False):
        measured = _transient(F.batch_norm_backward, dy, x, w, mean, invstd, needs=(needs_dx, True, True))
        assert abs(measured - batch_norm_transient_bytes(shape, np.float32, "backward", name, needs_dx)) <= OP_SLACK
    for k, s, p in ((2, 2, 0), (3, 2, 1)):
        for index_dtype in (np.int64, np.int32):
            y, idx = F.max_pool2d(x, k, s, p, return_indices=True, index_dtype=index_dtype)
            fwd = _transient(F.max_pool2d, x, k, s, p, return_indices=True, index_dtype=index_dtype)
            bwd = _transient(F.max_pool2d_backward, y, x, idx, k, s, p)
            assert abs(fwd - max_pool2d_transient_bytes(shape, np.float32, "forward", name, k, s, p,
                                                        index_dtype=index_dtype)) <= OP_SLACK
            assert abs(bwd - max_pool2d_transient_bytes(shape, np.float32, "backward", name, k, s, p)) <= OP_SLACK
        assert abs(_transient(F.max_pool2d, x, k, s, p)
                   - max_pool2d_transient_bytes(shape, np.float32, "forward", name, k, s, p,
                                                with_indices=False)) <= OP_SLACK
    mask = F.dropout(x, 0.5, return_mask=True)[1]
    assert abs(_transient(F.dropout, x, 0.5, return_mask=True)
               - dropout_transient_bytes(shape, np.float32, "forward", name)) <= OP_SLACK
    assert abs(_transient(F.dropout_backward, dy, mask, 0.5)
               - dropout_transient_bytes(shape, np.float32, "backward", name)) <= OP_SLACK


@pytest.mark.parametrize("shape", [(2, 300), (64, 1000)])
def test_linear_transient_matches_measurement(host_backend, rng, shape):
    x, w, b = _rand(rng, shape), _rand(rng, (500, shape[1])), _rand(rng, (500,))
    y = F.linear(x, w, b)
    for bias in (None, b):
        expected = linear_transient_bytes(shape, 500, np.float32, "forward", host_backend.name, bias is not None)
        assert abs(_transient(F.linear, x, w, bias) - expected) <= 8 * 1024
    assert _transient(F.linear_backward, y, x, w) <= 8 * 1024
    assert linear_transient_bytes(shape, 500, np.float32, "forward", "numpy") == min(shape[0] * 500, 8192) * 4


def test_cross_entropy_transient_matches_measurement(host_backend, rng):
    logits = _rand(rng, (256, 1000))
    target = gc.asarray(rng.integers(0, 1000, 256))
    one = gc.asarray(np.ones((), np.float32))
    for direction, run in (("forward", lambda: F.cross_entropy(logits, target)),
                           ("backward", lambda: F.cross_entropy_backward(one, logits, target))):
        expected = cross_entropy_transient_bytes((256, 1000), np.float32, direction, host_backend.name)
        assert abs(_transient(run) - expected) <= OP_SLACK, (direction, _transient(run), expected)


# ---- whole steps ----------------------------------------------------------------------------------
def _vgg11_bn_small():
    # VGG-11-BN's features (configuration "A"), but a narrow classifier of the same structure instead
    # of the 4096-wide one (120M parameters, seconds to initialize).
    model = VGG.__new__(VGG)
    nn.Chain.__init__(model)
    model.features = make_layers(CONFIGS["A"], batch_norm=True)
    model.avgpool = nn.AdaptiveAvgPool2d((7, 7))
    model._flatten = nn.Flatten(1)
    model.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 32), nn.ReLU(True), nn.Dropout(),
                                     nn.Linear(32, 32), nn.ReLU(True), nn.Dropout(), nn.Linear(32, 10))
    return model


def _downsample(inplanes, planes, stride):
    return nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))


def _small_resnet(block):
    """ResNet's stem and stages with few channels: two blocks, the second with a strided shortcut."""
    e = block.expansion
    p1, p2 = (8, 16) if e == 1 else (4, 8)  # planes of the two blocks (outputs: planes * expansion)
    return nn.Sequential(
        nn.Conv2d(3, 8, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(8), nn.ReLU(True),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Sequential(block(8, p1, 1, None if p1 * e == 8 else _downsample(8, p1 * e, 1)),
                      block(p1 * e, p2, 2, _downsample(p1 * e, p2 * e, 2))),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(1), nn.Linear(p2 * e, 10))


MODELS = {
    "lenet5": (lenet5, (1, 32, 32)),
    "resnet_basic": (lambda: _small_resnet(BasicBlock), (3, 128, 128)),
    "resnet_bottleneck": (lambda: _small_resnet(Bottleneck), (3, 128, 128)),
    "vgg11_bn": (_vgg11_bn_small, (3, 32, 32)),
    # The model zoo's ResNet class itself (numpy only: its full widths are slow to emulate).
    "resnet18_stages": (lambda: ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10), (3, 64, 64)),
}
_built: dict = {}


def _model(name):
    # Built once per process: memory does not depend on the values, and building VGG is slow.
    if name not in _built:
        gc.manual_seed(0)
        _built[name] = MODELS[name][0]()
    model = _built[name]
    model.zero_grad()
    return model


def _optimizer(name, model):
    if name == "sgd":
        return gc.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    return gc.optim.Adam(model.parameters(), lr=1e-4)


def _check(result, exact=True):
    est, got = result.estimate, result.measured
    if exact:
        assert est.params == got["params"]
        assert est.grads == got["grads"]
        assert est.optimizer_state == got["optimizer_state"]
    assert abs(est.peak - got["peak"]) <= 0.05 * got["peak"], str(result)


def _skip_on_emulated(backend_name, model_name, batch, opt, mode):
    if backend_name != "emulated":
        return
    if (model_name, batch) == ("lenet5", 1):
        # Each emulated launch holds 5-10 KB of Python objects (ctypes argument records) while it
        # runs, which the estimate counts as 6 KiB per primitive, and the loader keeps a few hundred
        # bytes per launch after it (context managers, address ints), which it does not: about 30 KB
        # over a step, over 5% of this 0.35 MB inference step (measured 0.95) and 0.9 MB training
        # step (0.94 with SGD). numpy covers LeNet at batch 1 within 3.2%.
        pytest.skip("emulated: the launches' Python objects exceed 5% of this LeNet batch-1 step")
    if model_name == "resnet18_stages":
        pytest.skip("emulated: the full-width ResNet is covered on numpy (the emulator is slow)")
    if model_name == "vgg11_bn" and (batch > 1 or opt == "adam"):
        pytest.skip("emulated: VGG (9M parameters) runs at batch 1 with SGD only (the emulator is slow)")


@pytest.mark.measures_allocations
@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("model_name", list(MODELS))
def test_training_step_peak_within_5_percent(host_backend, model_name, opt, batch):
    _skip_on_emulated(host_backend.name, model_name, batch, opt, "training")
    model = _model(model_name)
    with gc.backend(host_backend.name):
        model.to()
        result = M.compare(model, (batch,) + MODELS[model_name][1], optimizer=_optimizer(opt, model), verbose=False)
    _check(result)
    assert result.estimate.step == "later" and result.estimate.grads > 0 and result.estimate.optimizer_state > 0


INFERENCE_CASES = [(name, batch) for name in MODELS for batch in (1, 8)]


@pytest.mark.measures_allocations
@pytest.mark.parametrize("model_name, batch", INFERENCE_CASES)
def test_inference_peak_within_5_percent(host_backend, model_name, batch):
    _skip_on_emulated(host_backend.name, model_name, batch, "sgd", "inference")
    model = _model(model_name)
    model.to()
    result = M.compare(model, (batch,) + MODELS[model_name][1], training=False, verbose=False)
    _check(result)
    assert result.estimate.grads == 0 and result.estimate.optimizer_state == 0


@pytest.mark.measures_allocations
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_first_step_report(host_backend, opt):
    model = _model("lenet5")
    model.to()
    optimizer = _optimizer(opt, model)
    result = M.compare(model, (8, 1, 32, 32), optimizer=optimizer, steps=1, verbose=False)
    _check(result)
    est = result.estimate
    assert est.step == "first"
    later = M.estimate(model, (8, 1, 32, 32), optimizer=optimizer)
    # The state is created during the first step; a later step starts with it and last step's grads.
    assert est.optimizer_state == later.optimizer_state == optimizer.state_bytes()
    assert "first training step" in str(est)


# ---- models as a user writes them ------------------------------------------------------------------
USER_MODELS = {
    "torchvision_basic_block": (user.basic_net, (3, 32, 32), "cross_entropy"),
    "squeeze_excitation": (user.se_net, (3, 32, 32), "cross_entropy"),
    "unet": (user.TinyUNet, (3, 32, 32), "mse"),
    "attention": (user.attention_net, (3, 32, 32), "cross_entropy"),
}


@pytest.mark.measures_allocations
@pytest.mark.parametrize("opt", ["sgd", "adam", None], ids=["sgd", "adam", "inference"])
@pytest.mark.parametrize("model_name", list(USER_MODELS))
def test_user_written_model_peak_within_5_percent(host_backend, model_name, opt):
    """Forward code the estimator has never seen (``out += identity``, ``x * gate``, ``gc.cat`` and
    ``F.interpolate``, ``matmul``/``softmax``) runs on shapes: the peak is within 5% of the measured
    one, parameters, gradients and optimizer state exact."""
    if host_backend.name == "emulated" and opt != "sgd":
        pytest.skip("emulated: an SGD step covers these models (numpy runs all three; the emulator is slow)")
    make, sample, loss = USER_MODELS[model_name]
    gc.manual_seed(0)
    model = make()
    optimizer = None if opt is None else _optimizer(opt, model)
    result = M.compare(model, (8,) + sample, optimizer=optimizer, training=opt is not None, loss=loss, verbose=False)
    _check(result)
    est = result.estimate
    assert est.grads == (0 if opt is None else est.params) and (est.optimizer_state > 0) == (opt is not None)


def test_estimate_follows_what_autograd_keeps():
    """``h * conv2(h)`` keeps conv2's output for the product's backward, ``h + conv2(h)`` frees it at
    once: the estimate's activations differ by exactly that array (they come from the graph the real
    forward records, not from a table of layers)."""
    class Block(nn.Module):
        def __init__(self, multiply: bool):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1)
            self.multiply = multiply

        def forward(self, x):
            h = self.conv1(x)
            g = self.conv2(h)
            return h * g if self.multiply else h + g

    gated, added = (M.estimate(Block(multiply), (8, 4, 16, 16)) for multiply in (True, False))
    assert gated.activations - added.activations == 8 * 4 * 16 * 16 * 4
    assert gated.peak > added.peak


def test_estimate_leaves_model_and_optimizer_untouched():
    model = user.basic_net()
    opt = gc.optim.Adam(model.parameters())
    x = gc.asarray(np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32))
    M.train_step(model, nn.CrossEntropyLoss(), opt, x, gc.asarray(np.array([1, 2])))
    model.eval()
    before = {name: (p.data, p.grad) for name, p in model.named_parameters()}
    buffers = {name: b for name, b in model.named_buffers()}
    state = opt.state
    copies = {name: gc.to_numpy(p.data).copy() for name, p in model.named_parameters()}
    for step in ("later", "first"):
        M.estimate(model, (4, 3, 16, 16), optimizer=opt, step=step)
    M.estimate(model, (4, 3, 16, 16), training=False)
    assert not model.training and opt.state is state
    assert all(before[name][0] is p.data and before[name][1] is p.grad for name, p in model.named_parameters())
    assert all(buffers[name] is b for name, b in model.named_buffers())
    assert all(np.array_equal(copies[name], gc.to_numpy(p.data)) for name, p in model.named_parameters())
    assert all("forward" not in m.__dict__ for m in model.modules()) and "step" not in opt.__dict__


def test_estimate_computes_nothing():
    """ResNet-50 at a batch of a million 224x224 images: tens of terabytes, from shapes alone (the
    run allocates nothing of the model's size, and its conv replays do not loop over the batch)."""
    from gpuconv.models import resnet50

    model = resnet50()
    opt = gc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    tracemalloc.start()
    try:
        huge = M.estimate(model, (2**20, 3, 224, 224), optimizer=opt)
        _, traced = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    small = M.estimate(model, (1, 3, 224, 224), optimizer=opt)
    assert huge.peak > 2**20 * 0.9 * (small.peak - small.params - small.grads - small.optimizer_state)
    assert huge.peak > 2**45 and traced < 64 * 2**20
    assert huge.params == small.params == 25557032 * 4 and huge.optimizer_state == small.optimizer_state


def test_a_forward_that_reads_values_cannot_be_estimated():
    class DataDependent(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            y = self.fc(x)
            return y * 2 if float(y.sum()) > 0 else y

    with pytest.raises(TypeError, match="shape-only run.*no values"):
        M.estimate(DataDependent(), (2, 4))


# ---- report, sizes ----------------------------------------------------------------------------------
def test_parameter_nbytes_and_num_parameters():
    model = lenet5()
    assert model.num_parameters() == 61706
    assert sum(p.nbytes for p in model.parameters()) == 61706 * 4
    model.classifier[4].weight.requires_grad = False
    assert model.num_parameters(trainable_only=True) == 61706 - 840


@pytest.mark.parametrize("make, per_param", [
    (lambda p: gc.optim.SGD(p, lr=0.1), 0), (lambda p: gc.optim.SGD(p, lr=0.1, momentum=0.9), 1),
    (lambda p: gc.optim.Adam(p), 2), (lambda p: gc.optim.Adam(p, amsgrad=True), 3),
    (lambda p: gc.optim.RMSprop(p, momentum=0.9, centered=True), 3), (lambda p: gc.optim.Adagrad(p), 1)])
def test_optimizer_state_bytes(make, per_param):
    model = lenet5()
    opt = make(model.parameters())
    assert opt.expected_state_bytes() == per_param * 61706 * 4
    x = gc.asarray(np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32))
    M.train_step(model, nn.CrossEntropyLoss(), opt, x, gc.asarray(np.array([1, 2])))
    assert opt.state_bytes() == opt.expected_state_bytes()


def test_report_table_and_dict():
    model = lenet5()
    report = M.estimate(model, (8, 1, 32, 32), optimizer=gc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    text = str(report)
    for word in ("features.0", "Conv2d", "params", "grads", "optimizer_state", "activations", "workspace", "peak",
                 "KiB"):
        assert word in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["params"] == 61706 * 4 and data["peak"] == report.peak
    assert [r["name"] for r in data["rows"]][:3] == ["features.0", "features.1", "features.2"]
    conv = report.rows[0]
    assert conv.flops == 2 * 8 * 6 * 28 * 28 * 25 and conv.params == 156
    assert report.peak >= report.params + report.grads + report.optimizer_state + report.inputs


def test_estimate_rejects_bad_arguments():
    model = lenet5()
    with pytest.raises(ValueError, match="input_shape"):
        M.estimate(model, (0, 1, 32, 32))
    with pytest.raises(ValueError, match="loss"):
        M.estimate(model, (1, 1, 32, 32), loss="hinge")
    with pytest.raises(TypeError, match="model"):
        M.estimate("lenet", (1, 1, 32, 32))
    with pytest.raises(ValueError, match="step"):
        M.estimate(model, (1, 1, 32, 32), step="third")


def test_peak_grows_with_batch_and_inference_is_smaller():
    model = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10)
    small, large = (M.estimate(model, (b, 3, 64, 64)) for b in (2, 16))
    assert large.activations > 4 * small.activations and large.peak > small.peak
    assert M.estimate(model, (16, 3, 64, 64), training=False).peak < large.peak


def test_pool_rounding():
    assert [round_to_block(n) for n in (0, 1, 512, 513, 1000)] == [0, 512, 512, 1024, 1024]
    with pytest.raises(ValueError):
        round_to_block(-1)
    model = lenet5()
    report = M.estimate(model, (3, 1, 32, 32), backend="cupy")
    assert report.pool_peak >= report.peak
    assert M.estimate(model, (3, 1, 32, 32), backend="numpy").pool_peak is None


def test_suggest_batch_size_is_the_largest_that_fits():
    model = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10)
    opt = gc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    budget = M.estimate(model, (37, 3, 64, 64), optimizer=opt).peak
    batch, report = M.suggest_batch_size(model, (3, 64, 64), budget, optimizer=opt)
    assert batch >= 37 and report.peak <= budget
    assert M.estimate(model, (batch + 1, 3, 64, 64), optimizer=opt).peak > budget
    with pytest.raises(ValueError, match="batch of 1"):
        M.suggest_batch_size(model, (3, 64, 64), 1000, optimizer=opt)
    with pytest.raises(ValueError, match="budget_bytes"):
        M.suggest_batch_size(model, (3, 64, 64), -5)


def test_summary_prints_the_table_and_returns_a_report(capsys):
    model = lenet5()
    result = gc.summary(model, (1, 1, 32, 32))
    printed = capsys.readouterr().out
    text = str(result)
    assert printed == text + "\n"
    assert "features.0" in text and "Total params: 61,706" in text
    assert "Estimated peak, training step" in text and "Estimated peak, inference" in text
    assert f"{6 * 28 * 28 * 25:,}" in text  # conv1's MACs
    assert result.total_params == 61706 and result.rows[0].name == "features.0"
    assert result.rows[0].macs == 6 * 28 * 28 * 25 and result.training.peak > result.inference.peak > 0
    assert "\n" not in repr(result) and repr(result).startswith("ModelSummary(LeNet5 on (1, 1, 32, 32): 61,706 params")
    quiet = gc.summary(model, (1, 1, 32, 32), verbose=False)
    assert capsys.readouterr().out == "" and str(quiet) == text


def test_memory_report_repr_is_one_line_and_str_the_table():
    report = M.estimate(lenet5(), (2, 1, 32, 32))
    assert "\n" not in repr(report) and len(repr(report)) < 200, repr(report)
    assert repr(report).startswith("MemoryReport(LeNet5 on (2, 1, 32, 32)")
    assert str(report) == report.table() and "features.0" in str(report)


def test_suggest_batch_size_and_summary_take_backend():
    model = lenet5()
    opt = gc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    budget = 64 * 2**20
    for name in ("numpy", "cupy"):
        batch, report = M.suggest_batch_size(model, (1, 32, 32), budget, optimizer=opt, backend=name)
        assert report.backend == name and report.peak <= budget
        assert M.estimate(model, (batch + 1, 1, 32, 32), optimizer=opt, backend=name).peak > budget
    assert gc.summary(model, (1, 1, 32, 32), backend="cupy", verbose=False).training.backend == "cupy"


def test_cupy_out_of_memory_becomes_gpuconv_error():
    # A stand-in for cupy.cuda.memory.OutOfMemoryError (no GPU here): same name and module.
    fake = type("OutOfMemoryError", (Exception,), {"__module__": "cupy.cuda.memory"})

    class Greedy(nn.Module):
        def forward(self, x):
            raise fake("Out of memory allocating 1,073,741,824 bytes (allocated so far: 2,048 bytes).")

    model = nn.Sequential(nn.ReLU(), Greedy())
    with pytest.raises(gc.OutOfMemoryError, match="Greedy.forward.*1,073,741,824 bytes") as info:
        model(gc.asarray(np.ones((2, 3), np.float32)))
    assert isinstance(info.value, MemoryError) and info.value.requested == 2**30 and info.value.op == "Greedy.forward"


def test_fit_refuses_a_step_above_the_host_limit():
    from gpuconv.train import fit

    model = lenet5()
    opt = gc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    batches = [(gc.asarray(rng.standard_normal((64, 1, 32, 32)).astype(np.float32)),
                gc.asarray(rng.integers(0, 10, 64)))]
    limit = M.estimate(model, (16, 1, 32, 32), optimizer=opt).peak
    M.set_host_limit(limit)
    try:
        with pytest.raises(gc.OutOfMemoryError, match="Suggested batch size: (1[6-9]|[2-5][0-9])") as info:
            fit(model, nn.CrossEntropyLoss(), opt, batches, epochs=1, progress=False)
        assert "optimizer_state" in str(info.value) and info.value.requested > limit
        assert opt.state_bytes() == 0  # nothing ran
        M.set_host_limit(None)
        fit(model, nn.CrossEntropyLoss(), opt, batches, epochs=1, progress=False)
    finally:
        M.set_host_limit(None)
    with pytest.raises(ValueError, match="limit_bytes"):
        M.set_host_limit(0)


def test_max_pool_keeps_int32_indices(backend, rng):
    """The graph keeps max pooling's input and int32 indices (half of PyTorch's int64), and the
    estimate's row says so; returned indices stay int64."""
    pool = nn.MaxPool2d(3, stride=2, padding=1)
    x = gc.tensor(gc.to_numpy(_rand(rng, (2, 3, 9, 8))), requires_grad=True)
    y = pool(x)
    x_kept, indices = y.grad_fn.saved()
    assert indices.dtype == np.int32 and x_kept is x.data
    y.sum().backward()
    _, wide = F.max_pool2d(x.data, 3, 2, 1, return_indices=True)
    assert wide.dtype == np.int64
    expected = F.max_pool2d_backward(gc.asarray(np.ones(y.shape, np.float32)), x.data, wide, 3, 2, 1)
    np.testing.assert_array_equal(gc.to_numpy(x.grad), gc.to_numpy(expected))
    conv, row = M.estimate(nn.Sequential(nn.Conv2d(3, 3, 1), pool), (2, 3, 9, 8), backend=backend.name).rows
    assert row.saved_bytes == x.nbytes + 4 * y.numel() and row.output_shape == tuple(y.shape)
    assert conv.saved_bytes == x.nbytes  # its input (its weight is a parameter, not counted)


def test_docs_memory_table_is_what_the_code_prints(capsys):
    import re
    from pathlib import Path

    section = (Path(__file__).resolve().parent.parent / "docs" / "memory.md").read_text()
    code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)
    printed = re.search(r"prints \(numpy backend\):\n\n```\n(.*?)```", section, flags=re.DOTALL).group(1)
    with gc.backend("numpy"):
        exec(compile(code, "docs/memory.md example", "exec"), {})
    assert capsys.readouterr().out == printed


def test_measure_sees_temporaries_and_returns_the_result(host_backend):
    def work():
        a = gc.asarray(np.ones(1 << 18))  # 2 MiB
        b = a * 2  # 2 MiB more while both live
        return float(b[0])

    m = M.measure(work)
    assert m.result == 2.0 and m.backend == host_backend.name and m.reserved is None
    assert 4 * 2**20 <= m.peak - m.start <= 4 * 2**20 + OP_SLACK


@pytest.mark.measures_allocations
def test_every_layer_runs_its_own_code(host_backend):
    """GroupNorm, Dropout2d, ConvTranspose2d, Upsample, AvgPool2d, LeakyReLU: no layer has a rule in
    the estimator; each runs its own forward and autograd's backward on shapes, so the step is within
    5% of the measurement with states exact."""
    gc.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.LeakyReLU(0.1), nn.Dropout2d(0.1),
                          nn.MaxPool2d(2), nn.ConvTranspose2d(8, 8, 2, stride=2), nn.AvgPool2d(2),
                          nn.Upsample(scale_factor=2, mode="bilinear"), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 10))
    opt = gc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    result = M.compare(model, (16, 3, 32, 32), optimizer=opt, steps=2, verbose=False)
    _check(result)
    assert [row.type for row in result.estimate.rows][:4] == ["Conv2d", "GroupNorm", "LeakyReLU", "Dropout2d"]


# ---- estimate's argument handling: sizes no backend can index, optimizer names ---------------------
def _small_net():
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 10))


@pytest.mark.parametrize("shape, message", [
    ((2**40, 1, 8, 8), r"input_shape\[0\] = 1099511627776 is more than 2147483647, the largest size the kernels index"),
    ((8, 2**31, 8, 8), r"input_shape\[1\] = 2147483648 is more than 2147483647"),
    ((2**31 - 1, 2**31 - 1, 2**31 - 1, 8), r"bytes, more than an array can index"),
])
def test_estimate_refuses_sizes_no_backend_can_index_before_replaying(monkeypatch, shape, message):
    import importlib

    estimate_module = importlib.import_module("gpuconv.memory.estimate")  # the package exports the function
    def replay(*args, **kwargs):
        raise AssertionError("replayed a step that cannot run")

    monkeypatch.setattr(estimate_module, "_Run", replay)
    with pytest.raises(ValueError, match=message):
        M.estimate(_small_net(), shape)


@pytest.mark.parametrize("name, cls", [("sgd", "SGD"), ("adam", "Adam"), ("ADAM", "Adam"), ("adamw", "AdamW"),
                                       ("rmsprop", "RMSprop"), ("adagrad", "Adagrad")])
@pytest.mark.parametrize("step", ["first", "later"])
def test_estimate_takes_an_optimizer_by_name_with_pytorchs_defaults(name, cls, step):
    model = _small_net()
    by_name = M.estimate(model, (4, 1, 8, 8), optimizer=name, step=step)
    by_object = M.estimate(model, (4, 1, 8, 8), optimizer=getattr(optim, cls)(model.parameters()),
                                        step=step)
    assert by_name.optimizer == cls
    assert (by_name.peak, by_name.optimizer_state) == (by_object.peak, by_object.optimizer_state)


def test_an_optimizer_named_is_made_without_state():
    from gpuconv.memory.estimate_args import resolve_optimizer

    model = _small_net()
    adagrad = resolve_optimizer(model, "adagrad")  # Adagrad's constructor would fill an accumulator per parameter
    assert isinstance(adagrad, optim.Adagrad) and adagrad.state == {}
    assert adagrad.param_groups[0]["lr"] == 1e-2 and adagrad.param_groups[0]["initial_accumulator_value"] == 0.0
    assert [id(p) for p in adagrad.param_groups[0]["params"]] == [id(p) for p in model.parameters()]


def test_estimate_refuses_an_unknown_name_another_type_and_another_models_optimizer():
    model, other = _small_net(), _small_net()
    with pytest.raises(ValueError, match=r"optimizer must be an optimizer object or one of \['adagrad', 'adam', "
                                         r"'adamw', 'rmsprop', 'sgd'\], got 'lbfgs'"):
        M.estimate(model, (4, 1, 8, 8), optimizer="lbfgs")
    with pytest.raises(TypeError, match="optimizer must be a gpuconv.optim optimizer, .* got dict"):
        M.estimate(model, (4, 1, 8, 8), optimizer={"lr": 0.1})
    with pytest.raises(ValueError, match=r"optimizer holds 4 parameter\(s\) that are not the model's .*another model"):
        M.estimate(model, (4, 1, 8, 8), optimizer=optim.Adam(other.parameters()))
    head_only = optim.Adam(model[3].parameters())  # fine-tuning part of the model is fine
    report = M.estimate(model, (4, 1, 8, 8), optimizer=head_only)
    assert report.optimizer_state == 2 * sum(p.data.nbytes for p in model[3].parameters())
