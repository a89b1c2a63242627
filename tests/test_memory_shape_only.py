"""The memory estimator's fallback for a primitive its shape-only backend has no method for: the target
backend's own code runs on meta arrays (gpuconv.backend.shape_only), within 5% of the measured step;
a primitive whose code cannot run on shapes is reported by name."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import gpuconv as gc
import gpuconv.memory as M
from gpuconv import nn
from gpuconv.backend import shape_only
from gpuconv.backend.meta_array import Ledger, MetaArray, set_ledger
from gpuconv.memory import _meta
from gpuconv.memory._meta import MetaBackend

# Primitives whose real code runs on shapes on every target, with their methods in _meta removed.
FALLBACK = ("adaptive_avg_pool2d", "adaptive_avg_pool2d_backward", "bias_add_", "sum_except_channel")


@pytest.fixture(params=["numpy", "emulated"])
def host_backend(request):
    """The backends whose arrays tracemalloc sees."""
    reason = gc.backend.unavailable_reason(request.param)
    if reason:
        pytest.skip(reason)
    with gc.backend(request.param) as be:
        yield be


def _model():
    gc.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1),
                         nn.AvgPool2d(2, ceil_mode=True), nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(72, 10))


def _without_methods(monkeypatch, names):
    """Removes ``names`` from the shape-only backend and returns the primitives the fallback ran."""
    for name in names:
        monkeypatch.delattr(MetaBackend, name)
    asked = []
    real = _meta.shape_only_primitive

    def spy(target, name):
        asked.append(name)
        return real(target, name)
    monkeypatch.setattr(_meta, "shape_only_primitive", spy)
    return asked


@pytest.mark.measures_allocations
def test_a_primitive_without_a_method_runs_its_own_code(host_backend, monkeypatch):
    model = _model()
    with gc.backend(host_backend.name):
        model.to()
        with_methods = M.estimate(model, (16, 3, 32, 32), optimizer="sgd")
        asked = _without_methods(monkeypatch, FALLBACK)
        result = M.compare(model, (16, 3, 32, 32), optimizer=gc.optim.SGD(model.parameters(), lr=0.1), verbose=False)
    assert set(FALLBACK) <= set(asked), asked
    est, got = result.estimate, result.measured
    assert abs(est.peak - got["peak"]) <= 0.05 * got["peak"], str(result)
    # These primitives' temporaries are the methods' formulas, so the peaks agree to a few hundred bytes.
    assert abs(est.peak - with_methods.peak) <= 1024, (est.peak, with_methods.peak)


def test_a_primitive_whose_code_reads_values_is_reported(host_backend, monkeypatch):
    """Cross entropy's target check reads the first bad target back (one number, a sync on the GPU):
    its real code cannot run on shapes."""
    _without_methods(monkeypatch, ["first_bad_target"])
    model = _model()
    with gc.backend(host_backend.name):
        model.to()
        with pytest.raises(NotImplementedError, match=rf"cannot run the {host_backend.name} backend's primitive "
                                                      r"first_bad_target on shapes: .*needs a method"):
            M.estimate(model, (2, 3, 16, 16), optimizer="sgd")


def test_a_primitive_the_target_lacks_is_an_attribute_error():
    meta = MetaBackend("numpy", Ledger(elide=True))
    assert not hasattr(meta, "multi_tensor_step")  # the numpy backend has no fused optimizer step
    assert not hasattr(meta, "launch_1d")  # launch machinery is no primitive
    with pytest.raises(AttributeError, match="no primitive 'no_such_op'"):
        meta.no_such_op


@pytest.mark.parametrize("target", ["numpy", "emulated"])
def test_the_fallback_counts_results_and_temporaries(target):
    """numpy's adaptive average pooling backward with uneven bins adds each bin's share through a
    temporary; the kernel launcher allocates only dx. The ledger sees both."""
    ledger = Ledger(elide=target == "numpy")
    previous = set_ledger(ledger)
    try:
        meta = MetaBackend(target, ledger)
        dy = MetaArray.new((4, 8, 3, 3), np.float64)
        before = ledger.current
        dx = meta.__getattr__("adaptive_avg_pool2d_backward")(dy, (4, 8, 10, 10))
        assert isinstance(dx, MetaArray) and dx.shape == (4, 8, 10, 10) and dx.dtype == np.float64
        assert ledger.current - before == dx.nbytes
        temporaries = ledger.largest_spike - meta.launch_bytes
        # numpy: the (N, C) share of one bin, and its broadcast through the iterator at most.
        assert (0 < temporaries <= 4 * 8 * 8 * 2 + 8192 * 8) if target == "numpy" else temporaries == 0
    finally:
        set_ledger(previous)


def test_numpy_code_on_shapes_makes_meta_arrays_with_its_module_np():
    """np.zeros inside the numpy backend's module makes a meta array; the module itself is untouched."""
    previous = set_ledger(Ledger(elide=True))
    try:
        out = shape_only.numpy_on_shapes("adaptive_avg_pool2d_backward")(MetaArray.new((1, 2, 2, 2), np.float32),
                                                                          (1, 2, 5, 5))
        assert isinstance(out, MetaArray)
    finally:
        set_ledger(previous)
    from gpuconv.backend.numpy import pool as numpy_pool

    assert numpy_pool.np is np


def test_the_estimator_imports_no_backend_implementation():
    """memory/_meta.py reaches backend code through gpuconv.backend.shape_only only (the numpy
    convolution's chunking, owned by the convolution registry's work, is the one exception left)."""
    source = Path(_meta.__file__).read_text()
    imports = re.findall(r"^\s*from \.\.backend\.(cuda|numpy)\S* import (.*)$", source, flags=re.MULTILINE)
    assert all(package == "numpy" and ("conv" in names or "numpy_heuristic" in names) for package, names in imports), \
        imports
