"""User modules, written as PyTorch users write them: a forward only (autograd derives the backward),
with arbitrary tensor math between child calls; an op with its own backward is a
``gpuconv.autograd.Function``; both train in Sequential and fit; an error in a backward names the op."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
from gpuconv import nn, optim
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
    the sum is written with ``+`` or, as torchvision does, ``+=``."""

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
        if self.helper:
            out += identity
            return self.relu(out)
        return self.relu(out + identity)


class ScaleFunction(gpuconv.autograd.Function):
    """y = w * x for a one-element w, with a hand-written backward (the way to add an op with its own
    kernel)."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x.data * w.data

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        return dy * w, (dy * x).sum().reshape(1)


class Scale(nn.Module):
    """y = w * x with one learnable scalar, through :class:`ScaleFunction`."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(np.full(1, 1.5))

    def forward(self, x):
        return ScaleFunction.apply(x, self.w)


def _grads(model, x, dy):
    model.zero_grad()
    xt = gpuconv.tensor(x, requires_grad=True)
    y = model(xt)
    y.backward(dy)
    return (gpuconv.to_numpy(y), gpuconv.to_numpy(xt.grad),
            {name: gpuconv.to_numpy(p.grad) for name, p in model.named_parameters()})


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


@pytest.mark.parametrize("helper", [True, False], ids=["+=", "plus"])
def test_residual_container_matches_basic_block(backend, rng, helper):
    custom = Residual(helper).double()
    block = nn.BasicBlock(3, 4, stride=2, downsample=nn.Sequential(nn.Conv2d(3, 4, 1, stride=2, bias=False),
                                                                    nn.BatchNorm2d(4))).double()
    block.load_state_dict(custom.state_dict())
    x = backend.asarray(rng.standard_normal((2, 3, 6, 6)))
    dy = backend.asarray(rng.standard_normal((2, 4, 3, 3)))
    _assert_same(_grads(custom, x, dy), _grads(block, x, dy))
    # An input that does not require grad: the parameters' gradients are the same.
    custom.zero_grad()
    custom(x).backward(dy)
    np.testing.assert_allclose(gpuconv.to_numpy(custom.conv1.weight.grad), _grads(block, x, dy)[2]["conv1.weight"],
                               rtol=1e-10)


def test_custom_container_finite_differences(rng):
    model = nn.Sequential(Residual(helper=False), Scale()).double()
    x = rng.standard_normal((2, 3, 6, 6))
    dy = rng.standard_normal((2, 4, 3, 3))
    model.zero_grad()
    xt = gpuconv.tensor(x, requires_grad=True)
    model(xt).backward(dy)
    dx = xt.grad.numpy()

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
        np.testing.assert_allclose(w.grad.numpy()[index], (up - down) / (2 * eps), rtol=1e-6, atol=1e-8)
    with gpuconv.no_grad():
        expected = float((model[0](x) * dy).sum())
    np.testing.assert_allclose(model[1].w.grad.numpy()[0], expected, rtol=1e-10)


class LinearScale(nn.Module):
    """A forward-only container around a module whose op has its own backward."""

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
    model(x).sum().backward()
    with gpuconv.no_grad():
        expected = float(model[0](x).sum())
    np.testing.assert_allclose(model[1].w.grad.numpy(), [expected], rtol=1e-10)
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


def test_an_error_in_a_function_backward_names_it():
    class Broken(gpuconv.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.data * 1.0

        @staticmethod
        def backward(ctx, dy):
            raise ValueError("bad gradient")

    x = gpuconv.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError, match=r"in the backward of BrokenBackward: bad gradient"):
        Broken.apply(x).sum().backward()
    assert x.grad is None


def test_any_tensor_math_in_forward_trains(rng):
    """What a replay of child calls could never differentiate (a product with a number, F calls,
    slicing, a Python loop of residual sums) gets exact gradients."""
    import gpuconv.functional as F

    class Doubled(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.layers = nn.ModuleList([nn.Conv2d(4, 4, 3, padding=1) for _ in range(2)])

        def forward(self, x):
            h = F.relu(self.conv(x) * 3.0)
            for layer in self.layers:
                h = h + layer(h)
            return h[:, :2].mean(dim=(2, 3))

    model = Doubled().double()
    x = rng.standard_normal((2, 3, 5, 5))
    xt = gpuconv.tensor(x, requires_grad=True)
    model(xt).sum().backward()
    eps = 1e-6
    w = model.layers[1].weight
    for index in [(0, 0, 0, 0), (3, 2, 1, 2)]:
        old = w.data[index]
        with gpuconv.no_grad():
            w.data[index] = old + eps
            up = float(model(x).sum())
            w.data[index] = old - eps
            down = float(model(x).sum())
            w.data[index] = old
        np.testing.assert_allclose(w.grad.numpy()[index], (up - down) / (2 * eps), rtol=1e-6, atol=1e-9)
    for index in [(0, 0, 0, 0), (1, 2, 3, 4)]:
        e = np.zeros_like(x)
        e[index] = eps
        with gpuconv.no_grad():
            numerical = (float(model(x + e).sum()) - float(model(x - e).sum())) / (2 * eps)
        np.testing.assert_allclose(xt.grad.numpy()[index], numerical, rtol=1e-6, atol=1e-9)


def test_shared_input_gradients_are_summed(rng):
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 2)
            self.b = nn.Linear(3, 2)

        def forward(self, x):
            return self.a(x) + self.b(x)

    model = TwoHeads().double()
    x = gpuconv.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    model(x).backward(np.ones((4, 2)))
    expected = np.ones((4, 2)) @ (model.a.weight.data + model.b.weight.data)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)
