"""Shared by the autograd tests: leaves made from host arrays on the current backend (contiguous or
not), their torch twins, and the comparison of a forward and every input gradient against torch."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pytest

import gpuconv as gc

# Relative tolerances of a gpuconv result against torch's: float64 sums agree to a few ulps of the
# largest term; float32 ones to K * eps for the short sums of these tiny shapes.
RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}


def torch_or_skip():
    return pytest.importorskip("torch", reason="torch is not installed: no second oracle for the gradients")


def device_array(host: np.ndarray, contiguous: bool = True) -> Any:
    """``host`` on the current backend; with ``contiguous=False`` the same values in a strided layout
    (every other element of a buffer twice as long in the last dim, dims reversed in memory), which is
    not C-contiguous unless every dim has size 1."""
    be = gc.get_backend()
    if contiguous or host.ndim == 0:
        return be.asarray(np.array(host, order="C"))
    buffer = np.zeros(host.shape[::-1][:-1] + (2 * host.shape[0],)) if host.ndim > 1 else np.zeros(2 * host.shape[0])
    stored = be.asarray(buffer.astype(host.dtype))
    out = stored[..., ::2].transpose(tuple(reversed(range(host.ndim))))
    out[...] = be.asarray(host)
    assert out.flags.c_contiguous == (max(host.shape, default=1) <= 1)
    return out


def leaf(host: np.ndarray, requires_grad: bool = True, contiguous: bool = True) -> gc.Tensor:
    return gc.Tensor(device_array(host, contiguous), requires_grad=requires_grad)


def torch_leaf(host: np.ndarray, requires_grad: bool = True):
    torch = torch_or_skip()
    return torch.tensor(np.array(host), requires_grad=requires_grad)


def host(t: Any) -> np.ndarray:
    return gc.to_numpy(t.data if isinstance(t, gc.Tensor) else t)


def assert_matches(actual: Any, expected: Any, dtype: Any, what: str, rtol: float | None = None,
                   scale: float = 0.0) -> None:
    """``actual`` (Tensor or array) against ``expected`` (torch tensor or array): shape, then values
    relative to the largest magnitude of ``expected`` or ``scale``, whichever is larger (an elementwise
    rtol fails on cancellation; ``scale`` is the size of the terms a small result was summed from)."""
    a = host(actual)
    e = expected.detach().numpy() if hasattr(expected, "detach") else np.asarray(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape}, expected {e.shape}"
    rtol = RTOL[np.dtype(dtype)] if rtol is None else rtol
    scale = max(float(np.abs(e).max()) if e.size else 0.0, scale, 1e-300)
    np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * scale, err_msg=what)


def compare_with_torch(fn: Callable, hosts: Sequence[np.ndarray], dtype: Any = np.float64,
                       contiguous: bool = True, seed: np.ndarray | None = None, what: str = "") -> None:
    """``fn(lib, *tensors)`` run with lib=gpuconv and lib=torch on the same float leaves: the output,
    then the gradient of ``(out * seed).sum()`` with respect to every input."""
    torch = torch_or_skip()
    hosts = [np.asarray(h, dtype=dtype) for h in hosts]
    ours = [leaf(h, contiguous=contiguous) for h in hosts]
    theirs = [torch_leaf(h) for h in hosts]
    out = fn(gc, *ours)
    ref = fn(torch, *theirs)
    assert_matches(out, ref, dtype, f"{what} forward")
    assert out.requires_grad and out.grad_fn is not None, f"{what}: the output recorded no graph"
    if seed is None:
        seed = np.random.default_rng(0).standard_normal(ref.shape)
    seed = np.asarray(seed, dtype=dtype)
    (out * gc.Tensor(device_array(seed))).sum().backward()
    (ref * torch.tensor(seed)).sum().backward()
    for i, (o, t) in enumerate(zip(ours, theirs)):
        if t.grad is None:
            assert o.grad is None or not host(o.grad).any(), f"{what}: input {i} got a gradient torch does not give"
            continue
        assert o.grad is not None, f"{what}: input {i} got no gradient"
        assert o.grad.dtype == o.dtype, f"{what}: input {i}'s gradient has dtype {o.grad.dtype}, not {o.dtype}"
        assert_matches(o.grad, t.grad, dtype, f"{what} gradient of input {i}")


def gradcheck_on(fn: Callable, hosts: Sequence[np.ndarray], contiguous: bool = True) -> None:
    """``gc.autograd.gradcheck`` of ``fn(gc, *tensors)`` in float64 on leaves made from ``hosts``."""
    inputs = [leaf(np.asarray(h, dtype=np.float64), contiguous=contiguous) for h in hosts]
    assert gc.autograd.gradcheck(lambda *ts: fn(gc, *ts), inputs, eps=1e-6, atol=1e-7, rtol=1e-5)
