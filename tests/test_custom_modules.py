"""User modules: a container with only ``forward`` trains (its recorded calls are replayed backward),
a leaf with ``forward`` + ``backward(dy)`` works in Sequential and fit, an unreplayable forward is a
clear error, and the memory estimator reports models that contain them."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

import gpuconv
from gpuconv import nn, optim
from gpuconv.memory import estimate
from gpuconv.train import fit


class ConvBnRelu(nn.Module):
    """conv - bn - relu - conv, written as a forward only."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 5, 3, padding=1)

    def forward(self, x):
        return self.conv2(self.relu(self.bn(self.conv1(x))))


class Residual(nn.Module):
    """torchvision's BasicBlock (with a downsample), forward only; ``self.relu`` is called twice and
    the sum is written with ``nn.add`` or with ``+``."""

    def __init__(self, helper: bool):
        super().__init__()
        self.helper = helper
        self.conv1 = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(4)
        self.downsample = nn.Sequential(nn.Conv2d(3, 4, 1, stride=2, bias=False), nn.BatchNorm2d(4))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = self.downsample(x)
        return self.relu(nn.add(out, identity) if self.helper else out + identity)


class Scale(nn.Module):
    """y = w * x with one learnable scalar: a leaf with its own forward and backward."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(np.full(1, 1.5))

    def forward(self, x):
        self._save(x)
        return x * self.w.data

    def backward(self, dy):
        (x,) = self._take_saved()
        self.w.accumulate_grad((dy * x).sum().reshape(1))
        return dy * self.w.data


def _grads(model, x, dy):
    model.zero_grad()
    y = model(x)
    dx = model.backward(dy)
    return np.asarray(y), np.asarray(dx), {name: np.asarray(p.grad) for name, p in model.named_parameters()}


def _assert_same(a, b):
    np.testing.assert_allclose(a[0], b[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-10, atol=1e-12)
    for name, grad in b[2].items():
        np.testing.assert_allclose(a[2][name], grad, rtol=1e-10, atol=1e-12, err_msg=name)


def test_sequence_container_matches_sequential(backend, rng):
    custom = ConvBnRelu().double()
    reference = nn.Sequential(custom.conv1, custom.bn, custom.relu, custom.conv2)
    x = backend.asarray(rng.standard_normal((2, 3, 6, 6)))
    dy = backend.asarray(rng.standard_normal((2, 5, 6, 6)))
    got = _grads(custom, x, dy)
    y, dx, grads = _grads(reference, x, dy)
    names = {"0": "conv1", "1": "bn", "3": "conv2"}
    renamed = {names[k.split(".")[0]] + "." + k.split(".")[1]: v for k, v in grads.items()}
    assert set(got[2]) == set(renamed) and len(renamed) == 6
    _assert_same(got, (y, dx, renamed))


@pytest.mark.parametrize("helper", [True, False], ids=["nn.add", "plus"])
def test_residual_container_matches_basic_block(backend, rng, helper):
    custom = Residual(helper).double()
    block = nn.BasicBlock(3, 4, stride=2, downsample=nn.Sequential(nn.Conv2d(3, 4, 1, stride=2, bias=False),
                                                                    nn.BatchNorm2d(4))).double()
    block.load_state_dict(custom.state_dict())
    x = backend.asarray(rng.standard_normal((2, 3, 6, 6)))
    dy = backend.asarray(rng.standard_normal((2, 4, 3, 3)))
    _assert_same(_grads(custom, x, dy), _grads(block, x, dy))
    # input_grad=False still fills the parameters' gradients and returns None.
    custom.zero_grad()
    custom(x)
    assert custom.backward(dy, input_grad=False) is None
    np.testing.assert_allclose(np.asarray(custom.conv1.weight.grad), _grads(block, x, dy)[2]["conv1.weight"],
                               rtol=1e-10)


def test_custom_container_finite_differences(rng):
    model = nn.Sequential(Residual(helper=False), Scale()).double()
    x = rng.standard_normal((2, 3, 6, 6))
    dy = rng.standard_normal((2, 4, 3, 3))
    model.zero_grad()
    model(x)
    dx = model.backward(dy)

    def loss(xv):
        # Training mode (batch statistics: the function that backward differentiates), kept nothing.
        with gpuconv.no_grad():
            return float((model(xv) * dy).sum())

    eps = 1e-6
    for index in [(0, 0, 0, 0), (1, 2, 3, 5), (0, 1, 4, 2)]:
        e = np.zeros_like(x)
        e[index] = eps
        np.testing.assert_allclose(dx[index], (loss(x + e) - loss(x - e)) / (2 * eps), rtol=1e-6, atol=1e-8)
    w = model[0].conv1.weight
    for index in [(0, 0, 0, 0), (3, 2, 1, 2)]:
        old = w.data[index]
        w.data[index] = old + eps
        up = loss(x)
        w.data[index] = old - eps
        down = loss(x)
        w.data[index] = old
        np.testing.assert_allclose(w.grad[index], (up - down) / (2 * eps), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(model[1].w.grad[0], float((model[0](x) * dy).sum()), rtol=1e-10)


class LinearScale(nn.Module):
    """A forward-only container around a leaf with its own backward."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 1)
        self.scale = Scale()

    def forward(self, x):
        return self.scale(self.linear(x))


def test_leaf_module_in_sequential_and_fit(rng):
    gpuconv.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 1), Scale()).double()
    x = rng.standard_normal((40, 3))
    target = x @ np.array([[1.0], [-2.0], [0.5]])
    y = model(x)
    assert model.backward(np.ones_like(y), input_grad=False) is None
    np.testing.assert_allclose(model[1].w.grad, [float(model[0](x).sum())], rtol=1e-10)
    model.zero_grad()
    batches = [(x[i:i + 8], target[i:i + 8]) for i in range(0, 40, 8)]
    history = fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.05), batches, epochs=40, progress=False)
    assert history[-1]["loss"] < 1e-3 < history[0]["loss"]
    assert model.output_shape((5, 3)) == (5, 1)
    # The same as a forward-only container, trained by fit.
    container = LinearScale().double()
    history = fit(container, nn.MSELoss(), optim.SGD(container.parameters(), lr=0.05), batches, epochs=40,
                  progress=False)
    assert history[-1]["loss"] < 1e-3 < history[0]["loss"]
    np.testing.assert_allclose(container.linear.weight.data * container.scale.w.data, [[1.0, -2.0, 0.5]], atol=0.05)


@pytest.mark.parametrize("make", [ConvBnRelu, lambda: Residual(True), lambda: Residual(False)],
                         ids=["sequence", "nn.add", "plus"])
def test_default_saved_bytes_match_what_a_forward_keeps(make, rng):
    with gpuconv.backend("numpy"):
        model = make().double()
        x = rng.standard_normal((8, 3, 16, 16))
        model(x)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            y = model(x)  # the previous forward's record is released as this one is kept
            gc.collect()
            kept = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert y.shape == model.output_shape(x.shape)
        # The arrays (the input existed before) exactly; the record's Python objects are not counted.
        expected = model.saved_bytes(x.shape, np.float64) - x.nbytes
        assert expected > 0.5 * x.nbytes and 0 <= kept - expected < 8192


def test_leaf_backward_keeps_the_error_context():
    class Broken(nn.Module):
        def forward(self, x):
            return x

        def backward(self, dy):
            raise ValueError("bad gradient")

    model = nn.Sequential(nn.Identity(), Broken())
    model(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"^in 1 \(Broken\(\)\): bad gradient"):
        model.backward(np.ones((2, 3)))


def test_unreplayable_forward_is_a_clear_error(rng):
    class Doubled(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(self.conv(x) * 3.0)  # (x * 2.0 would be recognised as x + x)

    model = Doubled()
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    y = model(x)
    with pytest.raises(RuntimeError, match=r"Doubled\.backward: cannot replay Doubled\.forward: the input of ReLU "
                                           r".*implement Doubled\.backward\(dy\)"):
        model.backward(np.ones_like(y))
    assert model.conv.weight.grad is None  # nothing ran before the error


def test_shared_input_gradients_are_summed(rng):
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 2)
            self.b = nn.Linear(3, 2)

        def forward(self, x):
            return nn.add(self.a(x), self.b(x))

    model = TwoHeads().double()
    x = rng.standard_normal((4, 3))
    model(x)
    dx = model.backward(np.ones((4, 2)))
    expected = np.ones((4, 2)) @ (model.a.weight.data + model.b.weight.data)
    np.testing.assert_allclose(dx, expected, rtol=1e-12)


def test_memory_estimate_with_custom_modules():
    custom = nn.Sequential(ConvBnRelu(), Scale(), nn.Flatten(), nn.Linear(5 * 6 * 6, 3)).double()
    plain = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 5, 3, padding=1), nn.Flatten(), nn.Linear(5 * 6 * 6, 3)).double()
    report = estimate(custom, (8, 3, 6, 6), optimizer=optim.SGD(custom.parameters(), lr=0.1, momentum=0.9))
    reference = estimate(plain, (8, 3, 6, 6), optimizer=optim.SGD(plain.parameters(), lr=0.1, momentum=0.9))
    # Exact: parameters, gradients, state and the children's rows (the custom container is replayed
    # through them); the leaf with its own backward is marked as an estimate.
    assert report.params == reference.params + 8 and report.grads == reference.grads + 8
    names = [row.name for row in report.rows]
    assert names[:4] == ["0.conv1", "0.bn", "0.relu", "0.conv2"]
    assert names[4] == "1 (estimated: custom module)"
    assert [r.saved_bytes for r in report.rows[:4]] == [r.saved_bytes for r in reference.rows[:4]]
    assert report.peak >= reference.peak
    assert estimate(custom, (8, 3, 6, 6), training=False).peak > 0
