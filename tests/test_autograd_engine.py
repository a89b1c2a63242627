"""The autograd engine's semantics (docs/AUTOGRAD-NOTES): which tensors keep .grad, summing of
gradients, deep graphs, accumulation, errors, grad modes, autograd.grad, Function, hooks, and the
release of what the graph saved."""

from __future__ import annotations

import gc as garbage
import sys
import weakref

import numpy as np
import pytest

import gpuconv as gc
import gpuconv.functional as F
from gpuconv import nn

from tests.autograd_helpers import device_array, host, leaf


# ---- which tensors keep .grad ----------------------------------------------------------------------
def test_leaves_keep_grad_non_leaves_only_when_retained(backend, rng):
    xh = rng.standard_normal(3)
    x = leaf(xh)
    h = x * 2.0
    kept = h.exp()
    kept.retain_grad()
    loss = (kept * h).sum()
    assert x.is_leaf and not h.is_leaf and h.grad_fn is not None and x.grad_fn is None
    loss.backward()
    assert h.grad is None and loss.grad is None
    np.testing.assert_allclose(host(kept.grad), 2 * xh, rtol=1e-15)  # d loss / d kept = h
    np.testing.assert_allclose(host(x.grad), 2.0 * (np.exp(2 * xh) * 2 * xh + np.exp(2 * xh)), rtol=1e-14)


def test_retain_grad_follows_an_inplace_op(backend):
    """As in PyTorch: after h *= 3, h.grad is the gradient of h's new value; a hook registered before
    stays with the old value."""
    x = leaf(np.array([1.0, 2.0]))
    h = x * 2.0
    h.retain_grad()
    seen = []
    h.register_hook(lambda g: seen.append(host(g).copy()))
    h *= 3.0
    (h * h).sum().backward()
    np.testing.assert_array_equal(host(h.grad), [12.0, 24.0])  # 2 * (new h)
    np.testing.assert_array_equal(seen[0], [36.0, 72.0])  # d/d(old h) = 3 * 2 * (new h)
    np.testing.assert_array_equal(host(x.grad), [72.0, 144.0])


def test_a_constant_leaf_gets_no_grad(backend, rng):
    x = leaf(rng.standard_normal(3))
    c = leaf(rng.standard_normal(3), requires_grad=False)
    (x * c).sum().backward()
    assert c.grad is None and x.grad is not None
    np.testing.assert_array_equal(host(x.grad), host(c))


def test_output_requires_grad_only_when_an_input_does(backend, rng):
    a = leaf(rng.standard_normal(3), requires_grad=False)
    b = leaf(rng.standard_normal(3), requires_grad=False)
    assert not (a * b).requires_grad and (a * b).grad_fn is None
    b.requires_grad_()
    assert (a * b).requires_grad and (a * b).grad_fn is not None


# ---- gradients summed, deep graphs ---------------------------------------------------------------
def test_a_tensor_used_twice_sums_its_gradients(backend, rng):
    xh = rng.standard_normal(4)
    x = leaf(xh)
    a = x.exp()
    (a * a + a + x).sum().backward()
    np.testing.assert_allclose(host(x.grad), 2 * np.exp(2 * xh) + np.exp(xh) + 1, rtol=1e-14)


def test_each_node_runs_once_after_all_its_gradients_arrived(backend, rng, monkeypatch):
    """A diamond: the shared node's backward runs once, with the sum of both branches."""
    from gpuconv.autograd import ops

    calls = []
    real = ops.MulBackward.backward

    def counting(self, g):
        calls.append(host(g).copy())
        return real(self, g)
    monkeypatch.setattr(ops.MulBackward, "backward", counting)
    x = leaf(rng.standard_normal(3))
    shared = x * 3.0
    (shared.exp() + shared.sin()).sum().backward()
    assert len(calls) == 1
    s = 3.0 * host(x)
    np.testing.assert_allclose(calls[0], np.exp(s) + np.cos(s), rtol=1e-14)


def test_deep_graph_has_no_recursion_error():
    """The engine's order, on numpy only (on the emulator each of the 40000 adds is a kernel launch)."""
    depth = 20000
    assert depth > sys.getrecursionlimit()
    with gc.backend("numpy"):
        x = gc.Tensor(np.ones(2), requires_grad=True)
        y = x
        for _ in range(depth):
            y = y + x
        y.sum().backward()
        np.testing.assert_array_equal(host(x.grad), [depth + 1.0] * 2)
        del y  # freeing the chain is not recursive either


# ---- .grad accumulation -----------------------------------------------------------------------------
def test_grad_accumulates_in_place_across_backward_calls(backend, rng):
    xh = rng.standard_normal(3)
    x = leaf(xh)
    (x * x).sum().backward()
    first = x.grad
    first_array = first.data
    (x * 3.0).sum().backward()
    assert x.grad is first and x.grad.data is first_array, "the second backward must add into the same array"
    np.testing.assert_allclose(host(x.grad), 2 * xh + 3.0, rtol=1e-15)


def test_grad_has_the_leaf_dtype(backend, rng):
    x = leaf(rng.standard_normal(3).astype(np.float32))
    (x.double() * 2.0).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(host(x.grad), np.full(3, 2.0, np.float32))


def test_grad_does_not_alias_another_tensor(backend, rng):
    """x.grad is never the upstream gradient itself: changing it does not change the seed."""
    x = leaf(rng.standard_normal(3))
    seed = device_array(np.ones(3))
    (x + 0.0).backward(gradient=seed)
    x.grad.data[...] = 5.0
    np.testing.assert_array_equal(gc.to_numpy(seed), np.ones(3))


def test_zero_grad_sets_none_by_default(backend, rng):
    layer = nn.Linear(2, 3).double()
    layer(leaf(rng.standard_normal((4, 2)), requires_grad=False)).sum().backward()
    assert all(p.grad is not None for p in layer.parameters())
    layer.zero_grad()
    assert all(p.grad is None for p in layer.parameters())


# ---- errors -------------------------------------------------------------------------------------------
def test_backward_on_non_scalar_needs_gradient(backend, rng):
    x = leaf(rng.standard_normal(3))
    y = x * 2.0
    with pytest.raises(RuntimeError, match="gradient"):
        y.backward()
    y.backward(gradient=gc.Tensor(device_array(np.array([1.0, 2.0, 3.0]))))
    np.testing.assert_array_equal(host(x.grad), [2.0, 4.0, 6.0])


def test_backward_gradient_of_wrong_shape_is_refused(backend, rng):
    x = leaf(rng.standard_normal(3))
    with pytest.raises(RuntimeError, match="shape"):
        (x * 2.0).backward(gradient=device_array(np.ones(4)))


def test_backward_on_a_tensor_without_graph_is_an_error(backend, rng):
    x = leaf(rng.standard_normal(3), requires_grad=False)
    with pytest.raises(RuntimeError, match="does not require grad"):
        x.sum().backward()


def test_second_backward_without_retain_graph_names_retain_graph(backend, rng):
    x = leaf(rng.standard_normal(3))
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward(backend, rng):
    xh = rng.standard_normal(3)
    x = leaf(xh)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(host(x.grad), 2 * (np.exp(xh) * xh + np.exp(xh)), rtol=1e-14)


@pytest.mark.parametrize("call", ["backward", "grad", "autograd.backward"])
def test_create_graph_is_refused(backend, rng, call):
    x = leaf(rng.standard_normal(3))
    y = (x * x).sum()
    with pytest.raises(NotImplementedError, match="higher-order"):
        if call == "backward":
            y.backward(create_graph=True)
        elif call == "grad":
            gc.autograd.grad(y, x, create_graph=True)
        else:
            gc.autograd.backward(y, create_graph=True)


# ---- grad modes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "set_grad_enabled(False)"])
def test_grad_modes_record_nothing(backend, rng, mode):
    x = leaf(rng.standard_normal((1, 2, 3, 3)))
    w = leaf(rng.standard_normal((2, 2, 3, 3)))
    context = {"no_grad": gc.no_grad, "inference_mode": gc.inference_mode,
               "set_grad_enabled(False)": lambda: gc.set_grad_enabled(False)}[mode]
    with context():
        assert not gc.is_grad_enabled()
        a = F.conv2d(x, w, padding=1)
        b = F.relu(a) * x.exp().sum()
        outs = [a, b, x * 2.0, x[0], x.reshape(-1), F.max_pool2d(a, 2)]
    assert gc.is_grad_enabled()
    for out in outs:
        assert out.grad_fn is None and not out.requires_grad
    # The intermediate arrays are held by nobody: no node saved them.
    ref = weakref.ref(a.data)
    del a, outs
    garbage.collect()
    assert ref() is None


def test_enable_grad_inside_no_grad(backend, rng):
    x = leaf(rng.standard_normal(3))
    with gc.no_grad():
        with gc.enable_grad():
            y = x * 2.0
        z = x * 2.0
    assert y.grad_fn is not None and z.grad_fn is None


def test_no_grad_as_decorator(backend, rng):
    x = leaf(rng.standard_normal(3))

    @gc.no_grad()
    def infer(t):
        return t * 2.0
    assert infer(x).grad_fn is None


def test_no_grad_still_counts_versions(backend, rng):
    x = leaf(rng.standard_normal(3))
    y = x * 1.0
    w = y * y  # saves y
    with gc.no_grad():
        y += 1.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        w.sum().backward()


# ---- autograd.grad -----------------------------------------------------------------------------------
def test_grad_returns_gradients_and_leaves_grad_untouched(backend, rng):
    xh, yh = rng.standard_normal(3), rng.standard_normal(3)
    x, y = leaf(xh), leaf(yh)
    x.grad = gc.Tensor(device_array(np.full(3, 7.0)))
    gx, gy = gc.autograd.grad((x * y).sum(), [x, y])
    np.testing.assert_allclose(host(gx), yh, rtol=1e-15)
    np.testing.assert_allclose(host(gy), xh, rtol=1e-15)
    np.testing.assert_array_equal(host(x.grad), np.full(3, 7.0))
    assert y.grad is None


def test_grad_of_a_non_leaf_and_with_grad_outputs(backend, rng):
    x = leaf(rng.standard_normal(3))
    h = x * 2.0
    out = h.exp()
    seed = np.array([1.0, -2.0, 0.5])
    (gh,) = gc.autograd.grad(out, h, grad_outputs=gc.Tensor(device_array(seed)))
    np.testing.assert_allclose(host(gh), seed * np.exp(host(h)), rtol=1e-15)
    assert x.grad is None


def test_grad_allow_unused(backend, rng):
    x, unused = leaf(rng.standard_normal(3)), leaf(rng.standard_normal(3))
    with pytest.raises(RuntimeError, match="allow_unused=True"):
        gc.autograd.grad((x * 2.0).sum(), [x, unused], retain_graph=True)
    gx, gu = gc.autograd.grad((x * 2.0).sum(), [x, unused], allow_unused=True)
    assert gu is None
    np.testing.assert_array_equal(host(gx), np.full(3, 2.0))


def test_backward_inputs_accumulates_only_into_those(backend, rng):
    x, y = leaf(rng.standard_normal(3)), leaf(rng.standard_normal(3))
    (x * y).sum().backward(inputs=[x])
    assert x.grad is not None and y.grad is None


# ---- Function --------------------------------------------------------------------------------------
class CubeWithArgmax(gc.autograd.Function):
    """y = x^3 * scale and the index of the largest x (integer, not differentiable)."""

    calls = []

    @staticmethod
    def forward(ctx, x, scale):
        CubeWithArgmax.calls.append(ctx.needs_input_grad)
        ctx.save_for_backward(x, scale)
        index = gc.Tensor(x.data.argmax(keepdims=True))
        ctx.mark_non_differentiable(index)
        return x * x * x * scale, index

    @staticmethod
    def backward(ctx, grad_y, grad_index):
        x, scale = ctx.saved_tensors
        gx = grad_y * 3 * x * x * scale if ctx.needs_input_grad[0] else None
        gs = (grad_y * x * x * x).sum(0, keepdim=True) if ctx.needs_input_grad[1] else None
        return gx, gs


def test_function_forward_backward_and_gradcheck(backend, rng):
    xh, sh = rng.standard_normal(4), rng.standard_normal(1)
    x, s = leaf(xh), leaf(sh)
    y, index = CubeWithArgmax.apply(x, s)
    assert y.grad_fn is not None and "CubeWithArgmax" in y.grad_fn.name
    assert not index.requires_grad and index.grad_fn is None
    assert int(host(index)[0]) == int(np.argmax(xh))
    np.testing.assert_allclose(host(y), xh ** 3 * sh, rtol=1e-15)
    y.sum().backward()
    np.testing.assert_allclose(host(x.grad), 3 * xh ** 2 * sh, rtol=1e-14)
    np.testing.assert_allclose(host(s.grad), [np.sum(xh ** 3)], rtol=1e-14)
    assert gc.autograd.gradcheck(lambda a, b: CubeWithArgmax.apply(a, b)[0], [leaf(xh), leaf(sh)])


def test_function_needs_input_grad(backend, rng):
    CubeWithArgmax.calls.clear()
    x, s = leaf(rng.standard_normal(3)), leaf(rng.standard_normal(1), requires_grad=False)
    y, _ = CubeWithArgmax.apply(x, s)
    assert CubeWithArgmax.calls == [(True, False)]
    y.sum().backward()
    assert s.grad is None and x.grad is not None
    with gc.no_grad():
        y, _ = CubeWithArgmax.apply(x, s)
    assert y.grad_fn is None


def test_function_saved_tensor_modified_in_place_is_an_error(backend, rng):
    x = leaf(rng.standard_normal(3))
    h = x * 1.0
    y, _ = CubeWithArgmax.apply(h, leaf(np.ones(1)))
    h += 1.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_function_with_wrong_gradient_count_is_an_error(backend, rng):
    class Bad(gc.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * b

        @staticmethod
        def backward(ctx, g):
            return (g,)
    with pytest.raises(RuntimeError, match="incorrect number of gradients"):
        Bad.apply(leaf(rng.standard_normal(2)), leaf(rng.standard_normal(2))).sum().backward()


def test_function_returning_native_arrays(backend, rng):
    """A kernel-style Function: forward and backward work on .data and return arrays."""
    class Double(gc.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.data * 2.0

        @staticmethod
        def backward(ctx, g):
            return g.data * 2.0
    x = leaf(rng.standard_normal(3))
    y = Double.apply(x)
    assert isinstance(y, gc.Tensor) and y.grad_fn is not None
    y.sum().backward()
    np.testing.assert_array_equal(host(x.grad), np.full(3, 2.0))


def test_function_returning_a_saved_tensor_as_gradient_is_not_written_into(backend, rng):
    """A backward may return a tensor it saved: the engine must neither add the other contributions
    into it nor make .grad an alias of it (an optimizer changes .grad in place)."""
    class TimesConstant(gc.autograd.Function):
        @staticmethod
        def forward(ctx, w, c):
            ctx.save_for_backward(c)
            return w * c

        @staticmethod
        def backward(ctx, g):
            (c,) = ctx.saved_tensors
            return c, None  # the gradient of (w * c).sum() with respect to w
    ch = rng.standard_normal(3)
    for first_use_first in (True, False):
        c = leaf(ch, requires_grad=False)
        w = leaf(rng.standard_normal(3))
        parts = [lambda: (w * 10.0).sum(), lambda: TimesConstant.apply(w, c).sum()]
        a, b = (parts if first_use_first else parts[::-1])
        loss = a() + b()
        loss.backward()
        np.testing.assert_array_equal(host(c), ch)
        np.testing.assert_allclose(host(w.grad), ch + 10.0, rtol=1e-15)
    c = leaf(ch, requires_grad=False)
    w = leaf(rng.standard_normal(3))
    TimesConstant.apply(w, c).sum().backward()
    w.grad.data[...] = 0.0
    np.testing.assert_array_equal(host(c), ch)


class ReturnsInput(gc.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x

    @staticmethod
    def backward(ctx, g):
        return g


class FirstRow(gc.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return gc.Tensor(x.data[:1])

    @staticmethod
    def backward(ctx, g):
        out = gc.get_array_module(g.data).zeros(ctx.shape)
        out[:1] = g.data
        return out


@pytest.mark.parametrize("function", [ReturnsInput, FirstRow])
def test_function_output_on_its_input_memory_is_a_view(backend, rng, function):
    """A Function returning its input (or a view of it): changing that output in place would change a
    tensor another node saved; PyTorch refuses it, and so do we (it gave a silently wrong gradient)."""
    x = leaf(rng.standard_normal((2, 3)))
    h = x * 1.0
    y = h * h  # saves h
    z = function.apply(h)
    with pytest.raises(RuntimeError, match="view"):
        z += 1.0
    with gc.no_grad():
        z += 1.0  # allowed, but seen:
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


# ---- hooks ----------------------------------------------------------------------------------------------
def test_register_hook_sees_and_replaces_a_gradient(backend, rng):
    xh = rng.standard_normal(3)
    x = leaf(xh)
    h = x * 2.0
    seen = []
    handle = h.register_hook(lambda g: seen.append(host(g).copy()) or g * 10.0)
    (h * h).sum().backward()
    np.testing.assert_allclose(seen[0], 2 * (2 * xh), rtol=1e-15)
    np.testing.assert_allclose(host(x.grad), 10 * 2 * (2 * 2 * xh), rtol=1e-15)
    handle.remove()
    x.grad = None
    (x * 2.0 * 1.0).sum().backward()
    assert len(seen) == 1


def test_register_hook_on_a_leaf_runs_before_accumulation(backend, rng):
    x = leaf(rng.standard_normal(3))
    x.register_hook(lambda g: g * 0.5)
    (x * 4.0).sum().backward()
    np.testing.assert_array_equal(host(x.grad), np.full(3, 2.0))


def test_post_accumulate_grad_hook_fires_once_per_backward_with_the_complete_grad(backend, rng):
    """A parameter used three times: the hook fires once, after all three contributions were added,
    and again on the next backward (data-parallel training all-reduces there)."""
    layer = nn.Linear(3, 3).double()
    x = leaf(rng.standard_normal((2, 3)), requires_grad=False)
    fired = []
    layer.weight.register_post_accumulate_grad_hook(lambda p: fired.append(host(p.grad).copy()))
    out = layer(layer(layer(x)))
    out.sum().backward()
    assert len(fired) == 1
    np.testing.assert_array_equal(fired[0], host(layer.weight.grad))
    first = fired[0]
    layer(layer(layer(x))).sum().backward()
    assert len(fired) == 2
    np.testing.assert_allclose(fired[1], 2 * first, rtol=1e-14)
    # autograd.grad accumulates nothing: no hook
    gc.autograd.grad(layer(x).sum(), [layer.weight])
    assert len(fired) == 2


def test_post_accumulate_grad_hooks_fire_as_each_leaf_completes(backend, rng):
    """Each leaf's hook fires when its own gradient is final, before nodes that do not reach it have run:
    the first layer's hook fires after the last layer's (reverse order of use)."""
    layers = [nn.Linear(2, 2).double() for _ in range(3)]
    order = []
    for i, layer in enumerate(layers):
        layer.weight.register_post_accumulate_grad_hook(lambda p, i=i: order.append(i))
    h = leaf(rng.standard_normal((1, 2)), requires_grad=False)
    for layer in layers:
        h = layer(h)
    h.sum().backward()
    assert order == [2, 1, 0]


def test_post_accumulate_grad_hook_only_on_leaves(backend, rng):
    x = leaf(rng.standard_normal(2))
    with pytest.raises(RuntimeError, match="non-leaf"):
        (x * 2.0).register_post_accumulate_grad_hook(lambda p: None)


# ---- memory: what the graph holds ------------------------------------------------------------------------
def test_saved_arrays_are_released_by_backward(backend, rng):
    x = leaf(rng.standard_normal(3))
    a = x * 2.0
    b = a * a  # saves a's array (twice)
    ref = weakref.ref(a.data)
    node = b.grad_fn
    del a
    garbage.collect()
    assert ref() is not None, "the graph must hold what its backward needs"
    b.sum().backward()
    garbage.collect()
    assert node._saved is None
    assert ref() is None, "backward must release the saved arrays"


def test_retain_graph_keeps_saved_arrays(backend, rng):
    x = leaf(rng.standard_normal(3))
    a = x * 2.0
    b = a * a
    ref = weakref.ref(a.data)
    del a
    b.sum().backward(retain_graph=True)
    garbage.collect()
    assert ref() is not None


def test_module_forward_under_no_grad_keeps_no_node(backend, rng):
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(12, 2)).double()
    x = leaf(rng.standard_normal((2, 2, 4, 4)), requires_grad=False)
    with gc.no_grad():
        y = model(x)
    assert y.grad_fn is None and not y.requires_grad
    y_train = model(x)
    assert y_train.grad_fn is not None


def test_dropping_the_output_frees_the_graph(backend, rng):
    """Nothing outside the output holds the graph: no reference cycle keeps saved arrays alive."""
    x = leaf(rng.standard_normal((1, 2, 3, 3)))
    h = F.relu(x * 2.0)  # relu saves its own output
    out = (h * h).sum()
    ref = weakref.ref(h.data)
    node_ref = weakref.ref(out.grad_fn)
    del h, out
    assert ref() is None and node_ref() is None, "freed by reference counting, without the cycle collector"
