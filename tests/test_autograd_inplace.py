"""In-place operations: modifying a tensor some node saved raises at backward (a test per op), an
in-place op on a leaf that requires grad raises at once, views share their base's version counter,
and where PyTorch's gradient after an in-place op is right, ours equals it."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv as gc
import gpuconv.functional as F
from gpuconv import nn

from tests.autograd_helpers import compare_with_torch, device_array, host, leaf


def F_of(L):
    if L is gc:
        return F
    import torch.nn.functional as TF
    return TF


def const(L, array):
    array = np.asarray(array, dtype=np.float64)
    return gc.Tensor(device_array(array)) if L is gc else L.tensor(array)


# name -> the in-place op on a (2, 3) float64 tensor ``t`` (a Tensor, or a torch tensor for lib=torch)
INPLACE = {
    "iadd": lambda L, t: t.__iadd__(1.5),
    "isub": lambda L, t: t.__isub__(const(L, [0.5, 1.0, 2.0])),
    "imul": lambda L, t: t.__imul__(2.0),
    "itruediv": lambda L, t: t.__itruediv__(4.0),
    "add_": lambda L, t: t.add_(const(L, [[1.0], [2.0]]), alpha=3),
    "sub_": lambda L, t: t.sub_(1.0),
    "mul_": lambda L, t: t.mul_(const(L, [1.0, -1.0, 2.0])),
    "div_": lambda L, t: t.div_(3.0),
    "clamp_": lambda L, t: t.clamp_(-0.5, 0.5),
    "zero_": lambda L, t: t.zero_(),
    "fill_": lambda L, t: t.fill_(0.25),
    "copy_": lambda L, t: t.copy_(const(L, [[1.0, 2.0, 3.0]])),
    "setitem": lambda L, t: t.__setitem__((0, slice(1, 3)), 7.0),
    "setitem_array_index": lambda L, t: t.__setitem__(([1, 0], [2, 2]), const(L, [1.0, 2.0])),
    "relu_": lambda L, t: t.relu_(),
    "F.relu_inplace": lambda L, t: F_of(L).relu(t, inplace=True),
    "nn.ReLU_inplace": lambda L, t: L.nn.ReLU(inplace=True)(t),
    "F.leaky_relu_inplace": lambda L, t: F_of(L).leaky_relu(t, 0.1, inplace=True),
    "F.dropout_inplace": lambda L, t: F_of(L).dropout(t, 0.5, training=True, inplace=True),
}


@pytest.mark.parametrize("op", sorted(INPLACE))
def test_modifying_a_saved_tensor_raises_at_backward(backend, op, rng):
    x = leaf(rng.standard_normal((2, 3)))
    h = x * 1.0
    y = h * h  # saves h at version 0
    INPLACE[op](gc, h)
    assert h._version[0] >= 1
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation.*version \d+, expected 0"):
        y.sum().backward()


@pytest.mark.parametrize("op", sorted(INPLACE))
def test_inplace_on_a_leaf_that_requires_grad_raises_at_once(backend, op, rng):
    xh = rng.standard_normal((2, 3))
    x = leaf(xh)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        INPLACE[op](gc, x)
    np.testing.assert_array_equal(host(x), xh)  # nothing written
    with gc.no_grad():  # how an optimizer updates a parameter
        INPLACE[op](gc, x)
    assert x.is_leaf and x.requires_grad


@pytest.mark.parametrize("op", sorted(INPLACE))
def test_inplace_on_a_tensor_without_grad_bumps_its_version(backend, op, rng):
    t = leaf(rng.standard_normal((2, 3)), requires_grad=False)
    INPLACE[op](gc, t)
    assert t._version[0] >= 1 and t.grad_fn is None and not t.requires_grad


def test_inplace_dropout2d_checks_like_the_others(backend, rng):
    """dropout2d takes (N, C, H, W): the two checks above on a 4-D tensor."""
    x = leaf(rng.standard_normal((1, 2, 3, 1)))
    h = x * 1.0
    y = h * h
    F.dropout2d(h, 0.5, training=True, inplace=True)
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation.*version 1, expected 0"):
        y.sum().backward()
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        F.dropout2d(x, 0.5, training=True, inplace=True)


@pytest.mark.parametrize("op", ["relu_", "F.relu_inplace", "nn.ReLU_inplace", "F.leaky_relu_inplace"])
def test_an_inplace_activation_saves_its_result(backend, op, rng):
    """relu_ keeps its output for backward: changing that output afterwards is an error."""
    x = leaf(rng.standard_normal((2, 3)))
    h = x * 1.0
    out = INPLACE[op](gc, h)
    assert out is h
    out += 1.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


# ---- views share the version counter ----------------------------------------------------------------
VIEWS = {
    "index": lambda t: t[0],
    "slice": lambda t: t[:, 1:],
    "reshape": lambda t: t.reshape(-1),
    "view": lambda t: t.view(3, 2),
    "transpose": lambda t: t.transpose(0, 1),
    "permute": lambda t: t.permute(1, 0),
    "T": lambda t: t.T,
    "unsqueeze": lambda t: t.unsqueeze(0),
    "squeeze": lambda t: t.unsqueeze(0).squeeze(0),
    "flatten": lambda t: t.flatten(),
    "ellipsis_none": lambda t: t[..., None, 1],
    "split": lambda t: t.split(1, 0)[1],
    "chunk": lambda t: t.chunk(3, 1)[2],
    "detach": lambda t: t.detach(),
    "view_of_view": lambda t: t[1].reshape(3, 1)[1:],
}


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_views_share_the_version_counter(backend, view, rng):
    base = leaf(rng.standard_normal((2, 3)), requires_grad=False)
    v = VIEWS[view](base)
    before = base._version[0]
    v += 1.0
    assert base._version[0] == before + 1, "an in-place op on a view must bump its base's version"
    w = VIEWS[view](base)
    before = w._version[0]
    base.mul_(2.0)
    assert w._version[0] == before + 1, "an in-place op on the base must bump its views' version"


def test_results_that_copy_do_not_share_the_version_counter(backend, rng):
    base = leaf(rng.standard_normal((2, 3)), requires_grad=False)
    copies = [base[[0, 1]], base.contiguous().clone(), base * 1.0, base.transpose(0, 1).contiguous()]
    for c in copies:
        c += 1.0
    assert base._version[0] == 0


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_modifying_a_saved_tensor_through_a_view_raises(backend, view, rng):
    """x[0] += 1 changes x: when a node saved x, its backward must refuse."""
    w = leaf(rng.standard_normal((2, 3)))
    c = leaf(rng.standard_normal((2, 3)), requires_grad=False)
    y = w * c  # saves c for w's gradient
    v = VIEWS[view](c)
    v += 1.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_modifying_the_base_of_a_saved_view_raises(backend, rng):
    w = leaf(rng.standard_normal(3))
    c = leaf(rng.standard_normal((2, 3)), requires_grad=False)
    y = w * c[1]  # saves the view c[1]
    c.zero_()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_inplace_on_a_view_of_a_graph_tensor_is_refused_at_once(backend, rng):
    """gpuconv does not rebase views (PyTorch's CopySlices): it refuses rather than give a wrong gradient."""
    x = leaf(rng.standard_normal((2, 3)))
    h = x * 2.0
    with pytest.raises(RuntimeError, match="view"):
        h[0] += 1.0


# ---- gradients after in-place ops equal torch's --------------------------------------------------------
GRADIENT_CASES = {
    "iadd_tensor": lambda L, x, y: _chain(x, lambda h: h.__iadd__(y)),
    "iadd_broadcast": lambda L, x, y: _chain(x, lambda h: h.__iadd__(y[0])),
    "iadd_self": lambda L, x, y: _chain(x, lambda h: h.__iadd__(h)),
    "isub": lambda L, x, y: _chain(x, lambda h: h.__isub__(y * y)),
    "imul_tensor": lambda L, x, y: _chain(x, lambda h: h.__imul__(y)),
    "imul_broadcast": lambda L, x, y: _chain(x, lambda h: h.__imul__(y[:, :1])),
    "itruediv_tensor": lambda L, x, y: _chain(x, lambda h: h.__itruediv__(y.exp())),
    "add_alpha": lambda L, x, y: _chain(x, lambda h: h.add_(y, alpha=-2.0)),
    "sub_alpha": lambda L, x, y: _chain(x, lambda h: h.sub_(y, alpha=0.5)),
    "mul_": lambda L, x, y: _chain(x, lambda h: h.mul_(y.sigmoid())),
    "div_": lambda L, x, y: _chain(x, lambda h: h.div_(2.0)),
    "clamp_": lambda L, x, y: _chain(x, lambda h: h.clamp_(-0.3, 0.4)) * y,
    "zero_": lambda L, x, y: _chain(x, lambda h: h.zero_()) + y,
    "fill_": lambda L, x, y: _chain(x, lambda h: h.fill_(3.0)) * y,
    "copy_": lambda L, x, y: _chain(x, lambda h: h.copy_(y[1] * 3.0)) * y,
    "setitem": lambda L, x, y: _chain(x, lambda h: h.__setitem__((slice(None), 1), y[:, 2] * 2.0)) * y,
    "setitem_number": lambda L, x, y: _chain(x, lambda h: h.__setitem__(0, 5.0)) * y,
    "relu_": lambda L, x, y: _chain(x, lambda h: h.relu_()) * y,
    "F.relu_inplace": lambda L, x, y: F_of(L).relu(x * y, inplace=True) * 2.0,
    "nn.ReLU_inplace": lambda L, x, y: L.nn.ReLU(inplace=True)(x + y) * y,
    "F.leaky_relu_inplace": lambda L, x, y: F_of(L).leaky_relu(x - y, 0.2, inplace=True) * x,
    "residual_then_relu": lambda L, x, y: _residual(L, x, y),
    "two_inplace_in_a_row": lambda L, x, y: _chain(x, lambda h: h.mul_(y).add_(y).div_(1.5)),
}


def _chain(x, op):
    h = x * 1.0  # a non-leaf, as in a network
    op(h)
    return h


def _residual(L, x, y):
    out = x * y + 0.5  # nothing saves this sum (tanh would save it: then out += x is an error, as in torch)
    out += x
    F_of(L).relu(out, inplace=True)
    return out


def _away_from_kinks(rng, shape):
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 1.5, shape)


@pytest.mark.parametrize("case", sorted(GRADIENT_CASES))
def test_gradient_after_inplace_matches_torch(backend, case, rng):
    hosts = [_away_from_kinks(rng, (2, 3)), _away_from_kinks(rng, (2, 3))]
    compare_with_torch(GRADIENT_CASES[case], hosts, np.float64, what=case)


@pytest.mark.parametrize("case", ["iadd_tensor", "imul_broadcast", "setitem", "residual_then_relu"])
def test_gradient_after_inplace_gradcheck(backend, case, rng):
    from tests.autograd_helpers import gradcheck_on
    gradcheck_on(GRADIENT_CASES[case], [_away_from_kinks(rng, (2, 3)), _away_from_kinks(rng, (2, 3))])


@pytest.mark.parametrize("op", ["dropout", "dropout2d"])
def test_inplace_dropout_gradient_is_the_mask(backend, op, rng):
    xh = rng.standard_normal((2, 3, 2, 2))
    x = leaf(xh)
    h = x * 1.0
    out = getattr(F, op)(h, 0.5, training=True, inplace=True, generator=np.random.default_rng(5))
    assert out is h
    reference, mask = getattr(F, op)(gc.Tensor(device_array(xh)), 0.5, training=True,
                                     generator=np.random.default_rng(5), return_mask=True)
    np.testing.assert_array_equal(host(h), host(reference))
    seed = rng.standard_normal(xh.shape)
    (h * gc.Tensor(device_array(seed))).sum().backward()
    m = host(mask)
    keep = np.broadcast_to(m.reshape(m.shape + (1,) * (4 - m.ndim)), xh.shape)
    np.testing.assert_allclose(host(x.grad), np.where(keep, 2.0 * seed, 0.0), rtol=1e-15)


def test_inplace_module_in_a_sequential(backend, rng):
    """nn.Sequential(conv, ReLU(inplace=True), conv): the in-place ReLU's input is the first conv's
    output, which nothing saved; gradients equal the out-of-place model's."""
    gc.manual_seed(0)
    inplace = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(3, 2, 1)).double()
    plain = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 2, 1)).double()
    plain.load_state_dict(inplace.state_dict())
    xh = rng.standard_normal((2, 2, 4, 4))
    x_grads = []
    for model in (inplace, plain):
        x = leaf(xh)
        (model(x) ** 2).sum().backward()
        x_grads.append(host(x.grad))
    np.testing.assert_array_equal(x_grads[0], x_grads[1])
    for (name, a), b in zip(inplace.named_parameters(), plain.parameters()):
        np.testing.assert_array_equal(host(a.grad), host(b.grad), err_msg=name)


def test_clamp_in_place_refuses_bounds_that_require_grad():
    """Their gradient would be lost without a word: the in-place form refuses them; out of place they get it."""
    with gc.backend("numpy"):
        x = gc.tensor(np.array([-2.0, 0.5, 3.0]), requires_grad=True)
        low = gc.tensor(np.array([0.0, 0.0, 0.0]), requires_grad=True)
        h = x * 1.0
        with pytest.raises(RuntimeError, match=r"clamp_ with bounds that require grad .* x\.clamp\(min, max\)"):
            h.clamp_(low, 1.0)
        h.clamp(low, 1.0).sum().backward()
        np.testing.assert_array_equal(low.grad.numpy(), [1.0, 0.0, 0.0])
        with gc.no_grad():
            h.clamp_(low, 1.0)
        np.testing.assert_array_equal(h.detach().numpy(), [0.0, 0.5, 1.0])
