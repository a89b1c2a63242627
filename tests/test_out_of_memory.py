"""Out-of-memory errors: CuPy's error inside a functional op becomes gpuconv.OutOfMemoryError naming
the op (issue 10 point 7), and the ops refuse a request the backend cannot give before allocating
anything (issue 15 point 10)."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from gpuconv.backend import capabilities_of
from gpuconv.functional import _memory
from gpuconv.functional.loss import cross_entropy_transient_bytes
from gpuconv.memory import get_host_limit, set_host_limit

# A stand-in for cupy.cuda.memory.OutOfMemoryError (no GPU needed): the same name and module, so
# that gpuconv.backend.memory_hooks.is_out_of_memory recognises it.
FakeCupyOOM = type("OutOfMemoryError", (Exception,), {"__module__": "cupy.cuda.memory"})


@pytest.fixture
def host_limit():
    """Sets a host limit for the test (call it with the bytes); removed afterwards, whatever happens."""
    assert get_host_limit() is None
    yield set_host_limit
    set_host_limit(None)


def _g(a):
    return gpuconv.asarray(np.asarray(a))


def get_xp():
    """The current backend's array module."""
    return gpuconv.get_backend().xp


def _huge(shape):
    """A float32 array of ``shape`` that takes 4 bytes: every element is one broadcast zero."""
    return get_xp().broadcast_to(get_xp().zeros((), np.float32), shape)


def _skip_unless_beyond_memory(request):
    physical = _memory.physical_memory_bytes()
    if physical is None or physical >= request:
        pytest.skip(f"this machine's physical memory ({physical} bytes) does not tell it apart from {request:,} bytes")


# ---- up-front size checks without a limit: the machine's physical memory -------------------------
def test_cross_entropy_on_a_huge_broadcast_input_fails_at_once(backend):
    if backend.name != "numpy":
        pytest.skip("the cross-entropy kernels keep two values per row, not log-probabilities of the logits' size")
    logits, target = _huge((200000, 200000)), get_xp().zeros(200000, np.int64)
    expected = 200000 * 200000 * 4 + cross_entropy_transient_bytes((200000, 200000), np.float32, "forward")
    _skip_unless_beyond_memory(expected)
    start = time.perf_counter()
    with pytest.raises(gpuconv.OutOfMemoryError, match=rf"^cross_entropy: needs {expected:,} bytes") as info:
        F.cross_entropy(logits, target)
    assert time.perf_counter() - start < 1.0  # it computed for 16-18 s before NumPy failed to allocate
    assert isinstance(info.value, MemoryError) and info.value.op == "cross_entropy"
    assert info.value.requested == expected and "physical memory" in str(info.value)
    with pytest.raises(gpuconv.OutOfMemoryError, match=r"^cross_entropy_backward: needs [\d,]+ bytes"):
        F.cross_entropy_backward(np.float32(1), logits, target)


def test_layer_norm_on_a_huge_broadcast_input_fails_at_once(backend):
    x = _huge((200000, 200000))
    _skip_unless_beyond_memory(2 * x.size * 4)
    start = time.perf_counter()
    with pytest.raises(gpuconv.OutOfMemoryError, match=rf"^layer_norm: needs {2 * x.size * 4:,} bytes"):
        F.layer_norm(x, 200000)
    assert time.perf_counter() - start < 1.0  # 6.6 s before


# ---- the host limit, per request ------------------------------------------------------------------
def test_host_limit_refuses_a_small_conv2d_before_allocating(backend, host_limit, rng):
    x = _g(rng.standard_normal((8, 3, 32, 32), dtype=np.float32))
    w = _g(rng.standard_normal((16, 3, 3, 3), dtype=np.float32))
    reference = gpuconv.to_numpy(F.conv2d(x, w))  # also warms the backend up: later allocations are the op's
    output = 8 * 16 * 30 * 30 * 4
    host_limit(output // 4)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        with pytest.raises(gpuconv.OutOfMemoryError, match=r"^conv2d: needs [\d,]+ bytes .* more than the host "
                                                           rf"limit .*: {output // 4:,} bytes") as info:
            F.conv2d(x, w)
        grown = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    # the exception, its message and traceback take a few KiB; the output alone would be 450 KiB
    assert grown < output // 10, f"{grown:,} bytes were allocated before the refusal"
    assert info.value.op == "conv2d" and info.value.requested >= output
    # a limit of exactly the request lets it through: the check refuses only what exceeds it
    host_limit(info.value.requested)
    np.testing.assert_array_equal(gpuconv.to_numpy(F.conv2d(x, w)), reference)
    set_host_limit(None)
    np.testing.assert_array_equal(gpuconv.to_numpy(F.conv2d(x, w)), reference)


def _ops(xp):
    x4 = xp.ones((2, 3, 8, 8), np.float32)
    y4 = xp.ones((2, 3, 4, 4), np.float32)
    return {
        "conv2d_backward": lambda: F.conv2d_backward(xp.ones((2, 4, 6, 6), np.float32), x4,
                                                     xp.ones((4, 3, 3, 3), np.float32)),
        "max_pool2d": lambda: F.max_pool2d(x4, 2),
        "avg_pool2d": lambda: F.avg_pool2d(x4, 2),
        "avg_pool2d_backward": lambda: F.avg_pool2d_backward(y4, (2, 3, 8, 8), 2),
        "adaptive_avg_pool2d": lambda: F.adaptive_avg_pool2d(x4, 4),
        "adaptive_max_pool2d": lambda: F.adaptive_max_pool2d(x4, 4),
        "gem": lambda: F.gem(x4, kernel_size=2),
        "batch_norm": lambda: F.batch_norm(x4, None, None, training=True),
        "linear": lambda: F.linear(xp.ones((64, 8), np.float32), xp.ones((16, 8), np.float32)),
        "interpolate": lambda: F.interpolate(x4, scale_factor=2),
        "unfold": lambda: F.unfold(x4, 3),
        "fold": lambda: F.fold(xp.ones((2, 27, 36), np.float32), (8, 8), 3),
        "layer_norm": lambda: F.layer_norm(x4, 8),
        "cross_entropy": lambda: F.cross_entropy(xp.ones((64, 10), np.float32), xp.zeros(64, np.int64)),
        "conv_transpose2d": lambda: F.conv_transpose2d(x4, xp.ones((3, 4, 2, 2), np.float32), stride=2),
        "group_norm": lambda: F.group_norm(x4, 3),
        "group_norm_backward": lambda: F.group_norm_backward(x4, x4, 3, None, xp.zeros((2, 3), np.float32),
                                                             xp.ones((2, 3), np.float32)),
        "dropout": lambda: F.dropout(x4, 0.5),
        "dropout_backward": lambda: F.dropout_backward(x4, xp.ones(x4.shape, bool), 0.5),
        "dropout2d": lambda: F.dropout2d(x4, 0.5),
        "dropout2d_backward": lambda: F.dropout2d_backward(x4, xp.ones((2, 3, 1, 1), bool), 0.5),
        **{name: (lambda f=getattr(F, name): f(x4)) for name in ("relu", "sigmoid", "tanh", "softmax",
                                                                 "log_softmax", "leaky_relu")},
        **{f"{name}_backward": (lambda f=getattr(F, f"{name}_backward"): f(x4, x4))
           for name in ("relu", "sigmoid", "tanh", "softmax", "log_softmax", "leaky_relu")},
        "mse_loss": lambda: F.mse_loss(x4, x4),
        "mse_loss_backward": lambda: F.mse_loss_backward(1.0, x4, x4),
        "nll_loss_backward": lambda: F.nll_loss_backward(1.0, xp.ones((64, 10), np.float32), xp.zeros(64, np.int64)),
        "binary_cross_entropy": lambda: F.binary_cross_entropy(x4 * 0.5, x4),
        "binary_cross_entropy_backward": lambda: F.binary_cross_entropy_backward(1.0, x4 * 0.5, x4),
        "binary_cross_entropy_with_logits": lambda: F.binary_cross_entropy_with_logits(x4, x4),
        "binary_cross_entropy_with_logits_backward": lambda: F.binary_cross_entropy_with_logits_backward(1.0, x4, x4),
        "smooth_l1_loss": lambda: F.smooth_l1_loss(x4, x4),
        "smooth_l1_loss_backward": lambda: F.smooth_l1_loss_backward(1.0, x4, x4),
    }


@pytest.mark.parametrize("op", sorted(_ops(np)))
def test_every_large_allocator_honours_the_host_limit(backend, host_limit, op):
    call = _ops(get_xp())[op]
    call()  # fits without a limit
    host_limit(256)  # below each op's output
    with pytest.raises(gpuconv.OutOfMemoryError, match=rf"^{op}: needs [\d,]+ bytes .*: 256 bytes") as info:
        call()
    assert info.value.op == op and info.value.requested > 256


def test_set_host_limit_is_validated():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="limit_bytes must be a positive int or None"):
            set_host_limit(bad)
    assert get_host_limit() is None


def test_cupy_budget_is_the_free_device_memory(monkeypatch):
    # Stands in for the cupy backend without a GPU: the budget is the driver's free memory plus the
    # pool's free blocks (device_free_bytes), and small requests do not query the driver at all.
    class FakeCupy:
        name = "cupy"
        checks_requests = True
        capabilities = capabilities_of("cupy")

    monkeypatch.setattr(_memory, "get_backend", lambda: FakeCupy())
    monkeypatch.setattr(_memory, "device_free_bytes", lambda: 2**30)
    _memory.check_request("conv2d", 2**30, "the output")
    with pytest.raises(gpuconv.OutOfMemoryError, match=r"^conv2d: needs 1,073,741,825 bytes .*device's free memory"):
        _memory.check_request("conv2d", 2**30 + 1, "the output")

    def no_query():
        raise AssertionError("a small request queried the driver")

    monkeypatch.setattr(_memory, "device_free_bytes", no_query)
    _memory.check_request("relu", 2**20, "the output")


# ---- CuPy's out-of-memory error, for a direct functional call -------------------------------------
def _raise_cupy_oom(*args, **kwargs):
    raise FakeCupyOOM("Out of memory allocating 1,073,741,824 bytes (allocated so far: 2,048 bytes).")


def test_cupy_out_of_memory_in_a_functional_op_names_the_op(backend, monkeypatch):
    monkeypatch.setattr(backend, "matmul", _raise_cupy_oom)
    with pytest.raises(gpuconv.OutOfMemoryError, match=r"^out of device memory in linear: it requested "
                                                       r"1,073,741,824 bytes") as info:
        F.linear(_g(np.ones((2, 3), np.float32)), _g(np.ones((4, 3), np.float32)))
    assert info.value.op == "linear" and info.value.requested == 2**30
    assert isinstance(info.value.__cause__, FakeCupyOOM)


def test_cupy_out_of_memory_in_a_kernel_op_allocation(kernel_backend, monkeypatch):
    monkeypatch.setattr(kernel_backend, "empty", _raise_cupy_oom)
    with pytest.raises(gpuconv.OutOfMemoryError, match=r"^out of device memory in max_pool2d: .*1,073,741,824"):
        F.max_pool2d(_g(np.ones((1, 1, 4, 4), np.float32)), 2)


def test_other_errors_pass_through_the_translation(backend, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("not about memory")

    monkeypatch.setattr(backend, "matmul", broken)
    with pytest.raises(RuntimeError, match="not about memory"):
        F.linear(_g(np.ones((2, 3), np.float32)), _g(np.ones((4, 3), np.float32)))


def test_every_public_op_translates_out_of_memory():
    from gpuconv.functional import _NOT_OPS

    ops = [name for name in F.__all__ if name not in _NOT_OPS]
    assert {"conv2d", "cross_entropy", "layer_norm", "linear", "max_pool2d", "unfold"} <= set(ops)
    for name in ops:
        op = getattr(F, name)
        # The translation wraps once, outermost; inside it a differentiable op's Tensor dispatch.
        inner = op.__wrapped__.__wrapped_array_op__ if name in F.DIFFERENTIABLE else op.__wrapped__
        assert op.__name__ == name and not hasattr(inner, "__wrapped__"), name
        assert op.__doc__ == op.__wrapped__.__doc__
