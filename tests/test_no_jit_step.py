"""A standard training step runs only our precompiled kernels (and cuBLAS GEMMs): on the emulated
backend, with tests/jit_recorder.py watching, nothing that the cupy backend would hand to one of
CuPy's own (NVRTC-compiled, "JIT") kernels happens in a step of the model zoo's ResNets (BasicBlock
and Bottleneck), of VGG-11-BN's features and of examples/train_digits.py's network, with cross entropy, SGD (momentum,
Nesterov, weight decay), Adam / AdamW, zero_grad (both kinds) and fit() with a validation pass.
Dropout's uniform numbers come from the array module's generator (``xp.random``), which the
recorder does not count (CuPy's generator is its own library code, see docs/backends.md).

``ALLOWED`` is exactly what docs/backends.md's "What still uses CuPy's own kernels" lists for the
standard step: nothing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import gpuconv
from gpuconv import nn, optim
from gpuconv.backend import unavailable_reason
from gpuconv.models.resnet import ResNet
from gpuconv.models.vgg import CONFIGS, VGG, make_layers
from gpuconv.nn.resnet_blocks import BasicBlock, Bottleneck
from gpuconv.train import fit
from tests.jit_recorder import Recorder

ALLOWED: set[str] = set()  # operations a standard step may still hand to CuPy's JIT kernels

pytestmark = pytest.mark.skipif(unavailable_reason("emulated") is not None,
                                reason=f"emulated backend unavailable: {unavailable_reason('emulated')}")


def _lenet():
    path = Path(__file__).resolve().parents[1] / "examples" / "train_digits.py"
    spec = importlib.util.spec_from_file_location("train_digits_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lenet_digits(10)


def _steps(be, model, optimizer, shape, classes, rng, steps=2, **loss_options):
    """Records ``steps`` training steps, then one epoch of fit() (one batch, and a validation pass);
    returns the records."""
    x = be.asarray(rng.standard_normal(shape).astype(np.float32))
    y = be.asarray(rng.integers(0, classes, shape[0]))
    crit = nn.CrossEntropyLoss(**loss_options)
    before = [np.array(p.data, copy=True) for p in model.parameters()]
    losses = []
    with Recorder(be) as recorder:
        recorder.track_module(model)
        x, y = recorder.track(x), recorder.track(y)
        for step in range(steps):
            # set_to_none=False on the later steps: the gradients are zero-filled, then accumulated into.
            optimizer.zero_grad(set_to_none=step == 0)
            loss = crit(model(x), y)
            losses.append(float(loss))
            loss.backward()
            optimizer.step()
        history = fit(model, crit, optimizer, [(x, y)], 1, val_loader=[(x, y)], progress=False)
    assert np.all(np.isfinite(losses)) and np.isfinite(history[0]["loss"]) and history[0]["accuracy"] is not None
    assert np.isfinite(history[0]["val_loss"]) and history[0]["val_accuracy"] is not None
    assert any(not np.array_equal(b, p.data) for b, p in zip(before, model.parameters())), "nothing was trained"
    return recorder.records


def _assert_no_jit(records):
    unexpected = sorted({(name, where) for name, where in records if name not in ALLOWED})
    assert not unexpected, "CuPy JIT kernels in a standard step:\n" + "\n".join(f"  {n} at {w}" for n, w in unexpected)


def test_lenet_digits_with_adam_and_fit():
    with gpuconv.backend("emulated") as be:
        model = _lenet()
        _assert_no_jit(_steps(be, model, optim.Adam(model.parameters(), lr=1e-3), (4, 1, 8, 8), 10,
                              np.random.default_rng(0)))


def test_resnet_basic_blocks_with_sgd_nesterov_and_label_smoothing():
    with gpuconv.backend("emulated") as be:
        model = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=5, cifar_stem=True)
        optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
        _assert_no_jit(_steps(be, model, optimizer, (2, 3, 4, 4), 5, np.random.default_rng(1), label_smoothing=0.1))


def test_resnet_bottleneck_blocks_with_adamw():
    with gpuconv.backend("emulated") as be:
        model = ResNet(Bottleneck, [1, 1, 1, 1], num_classes=4, cifar_stem=True)
        # fit()'s one step only: the emulated AdamW update of 15M parameters is the slow part.
        _assert_no_jit(_steps(be, model, optim.AdamW(model.parameters(), lr=1e-3), (2, 3, 4, 4), 4,
                              np.random.default_rng(2), steps=0))


def test_vgg11_bn_with_dropout_and_sgd():
    # VGG-11-BN's features with a narrow classifier of the same structure (the 4096-wide one has
    # 120M parameters): conv, batch norm, ReLU, max pooling, adaptive average pooling, dropout.
    with gpuconv.backend("emulated") as be:
        model = VGG.__new__(VGG)
        nn.Chain.__init__(model)
        model.features = make_layers(CONFIGS["A"], batch_norm=True)
        model.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        model._flatten = nn.Flatten(1)
        model.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 16), nn.ReLU(True), nn.Dropout(),
                                         nn.Linear(16, 16), nn.ReLU(True), nn.Dropout(), nn.Linear(16, 10))
        optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        _assert_no_jit(_steps(be, model, optimizer, (2, 3, 32, 32), 10, np.random.default_rng(3), steps=1))


def test_the_recorder_sees_what_cupy_would_compile():
    # Operations written in this file count (roots), as they would in gpuconv's own code.
    with gpuconv.backend("emulated") as be:
        with Recorder(be, roots=(Path(__file__),)) as recorder:
            a = be.zeros((4, 3), np.float32)
            b = be.zeros((4, 3), np.float32)
            be.xp.add(a, b)
            _ = a + b
            a.sum()
            a.astype(np.float64)
            a[np.array([0, 2])]
            a[...] = 0
            be.xp.ones((2,), np.float32)
            be.xp.ascontiguousarray(a.T)
            a.T.reshape(-1)
            a.argmax(axis=1)
            # Not kernels: views, contiguous no-op conversions, same-dtype astype without a copy,
            # allocation, a 2-D GEMM with a transposed operand (cuBLAS), reading a value back.
            a.T.reshape(3, 4, order="F")
            be.xp.ascontiguousarray(a)
            a.astype(np.float32, copy=False)
            be.xp.matmul(a, b.T)
            float(a[0, 0])
    names = [name for name, _ in recorder.records]
    assert names == ["add", "add", "add.reduce", "astype", "fancy __getitem__", "__setitem__", "ones",
                     "ascontiguousarray", "reshape (copy of a non-contiguous array)", "argmax"], names
