"""The backend contract (gpuconv/backend/base.py): every backend implements every primitives
Protocol it must, parameter by parameter, and nothing outside ``backend/`` probes a backend, checks
its name or imports its implementations."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import numpy as np
import pytest

import gpuconv
import gpuconv.functional
import gpuconv.optim
from gpuconv.backend import NAMES, backend_class, capabilities_of
from gpuconv.backend.base import OPTIONAL_PROTOCOLS, Backend, Capabilities
from gpuconv.backend.cuda.backend import CudaBackend
from gpuconv.backend.meta_array import Ledger
from gpuconv.memory._meta import meta_backend

PACKAGE = Path(gpuconv.__file__).resolve().parent
# Public methods of the op mixins that are launch machinery, not primitives: the GEMM every
# convolution algorithm of the kernel backends calls (tests stub it to count launches).
LAUNCH_HELPERS = {"conv_gemm"}


def primitive_protocols() -> list[type]:
    """Every ``*Primitives`` Protocol declared in gpuconv.functional and gpuconv.optim."""
    found = []
    for package in (gpuconv.functional, gpuconv.optim):
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if (name.endswith("Primitives") and inspect.isclass(value) and value.__module__ == module.__name__
                        and getattr(value, "_is_protocol", False)):
                    found.append(value)
    return found


def declared_methods(protocol: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(value) for name, value in vars(protocol).items()
            if not name.startswith("_") and inspect.isfunction(value)}


def _backends() -> list[tuple[str, object]]:
    """(label, class or instance): the classes of the three backends (their methods and flags are
    class-level; creating the cupy one needs a GPU) and the estimator's shape-only stand-ins."""
    out = [(name, backend_class(name)) for name in NAMES if name != "auto"]
    out += [(f"meta-{name}", meta_backend(name, Ledger(elide=True))) for name in NAMES if name != "auto"]
    return out


BACKENDS = _backends()
PROTOCOLS = primitive_protocols()


def test_the_protocols_are_found():
    names = {p.__name__ for p in PROTOCOLS}
    assert {"ArithPrimitives", "PoolPrimitives", "ConvPrimitives", "OptimizerPrimitives"} <= names, names
    assert set(OPTIONAL_PROTOCOLS) <= set(PROTOCOLS)


def _check_signature(where: str, declared: inspect.Signature, implemented: inspect.Signature) -> None:
    """The implementation takes the declared parameters, in order and by the same names; it may add
    parameters after them only with defaults (a kernel version or tile chosen by tests and benches)."""
    want = [p for p in declared.parameters.values() if p.name != "self"]
    have = [p for p in implemented.parameters.values() if p.name != "self"]
    if any(p.kind is p.VAR_KEYWORD for p in have) and len(have) <= len(want) + 1:
        have = [p for p in have if p.kind is not p.VAR_KEYWORD]  # a stand-in that ignores the extras
    assert [p.name for p in have[:len(want)]] == [p.name for p in want], \
        f"{where}: parameters {[p.name for p in have]}, the contract declares {[p.name for p in want]}"
    for d, h in zip(want, have):
        assert (d.default is d.empty) == (h.default is h.empty), f"{where}: {h.name}'s default differs"
    extra = [p.name for p in have[len(want):] if p.default is p.empty and p.kind not in (p.VAR_KEYWORD,)]
    assert not extra, f"{where}: extra parameters without a default: {extra}"


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.__name__)
@pytest.mark.parametrize("label, backend", BACKENDS, ids=[b[0] for b in BACKENDS])
def test_backend_implements_the_protocol(label, backend, protocol):
    flag = OPTIONAL_PROTOCOLS.get(protocol)
    required = flag is None or getattr(backend.capabilities, flag)
    for name, declared in declared_methods(protocol).items():
        method = getattr(backend, name, None)
        if not required:
            assert method is None, f"{label} has {name} but capabilities.{flag} is False"
            continue
        assert callable(method), f"{label} lacks {protocol.__name__}.{name}"
        implemented = inspect.signature(method)
        if not inspect.isclass(backend):
            implemented = implemented.replace(parameters=[inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY),
                                                          *implemented.parameters.values()])
        _check_signature(f"{label}.{name}", declared, implemented)


def test_every_primitive_is_declared():
    """What the op mixins of backend/numpy and backend/cuda offer is exactly the declared surface:
    an op added to a backend but to no Protocol fails here."""
    declared = set().union(*(declared_methods(p) for p in PROTOCOLS))
    offered = set()
    for backend in (backend_class("numpy"), CudaBackend):
        for mixin in backend.__mro__:
            if mixin not in (backend, Backend, object) and mixin.__module__.startswith("gpuconv.backend."):
                offered |= {n for n, v in vars(mixin).items()
                            if not n.startswith("_") and (inspect.isfunction(v) or isinstance(v, staticmethod))}
    undeclared = offered - declared - LAUNCH_HELPERS - set(vars(Backend))
    assert not undeclared, f"backend primitives in no *Primitives Protocol: {sorted(undeclared)}"
    unimplemented = declared - offered
    assert not unimplemented, f"declared but implemented by no backend: {sorted(unimplemented)}"


def test_capabilities_are_class_facts():
    assert capabilities_of("numpy") == Capabilities()
    assert capabilities_of("emulated").kernels and not capabilities_of("emulated").timed
    assert capabilities_of("cupy").gpu and capabilities_of("cupy").kernels
    assert CudaBackend.capabilities.fused_optimizer
    with pytest.raises(ValueError, match="backend must be one of"):
        capabilities_of("tpu")


def test_a_flag_decides_the_path(monkeypatch):
    """The optimizers read the flag, not the method: a backend whose flag is off takes the
    per-parameter path even though it has the fused method."""
    from gpuconv import nn, optim

    with gpuconv.backend("emulated") as be:
        calls = []
        monkeypatch.setattr(type(be), "multi_tensor_step", lambda self, *a: calls.append(a), raising=True)
        layer = nn.Linear(3, 2)
        layer.weight.grad = gpuconv.tensor(np.ones((2, 3), np.float32))
        layer.bias.grad = gpuconv.tensor(np.ones(2, np.float32))
        optim.SGD(layer.parameters(), lr=0.1).step()
        assert calls, "the fused step did not run where capabilities.fused_optimizer is True"
        calls.clear()
        monkeypatch.setattr(type(be), "capabilities", Capabilities(kernels=True))
        optim.SGD(layer.parameters(), lr=0.1).step()
        assert not calls, "the fused step ran although capabilities.fused_optimizer is False"


# ---- nothing outside backend/ looks inside a backend -------------------------------------------------
def _sources_outside_backend() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if PACKAGE / "backend" not in p.parents]


_PROBE = re.compile(r"hasattr\(\s*(be|backend|self\.backend|get_backend\(\))\s*,")
_NAME_CHECK = re.compile(r"""(\.name|backend|target)\s*(==|!=|in)\s*\(?\s*["'](numpy|cupy|emulated)["']"""
                         r"""|["'](numpy|cupy|emulated)["']\s*(==|!=)""")
_IMPLEMENTATION_IMPORT = re.compile(
    r"^\s*(from|import)\s+(gpuconv\.backend\.|\.+backend\.)(numpy|cuda|numpy_ops|cuda_ops)\b", re.MULTILINE)


@pytest.mark.parametrize("pattern, what", [(_PROBE, "hasattr probe of a backend"),
                                           (_NAME_CHECK, "check of a backend's name"),
                                           (_IMPLEMENTATION_IMPORT, "import of a backend's implementation")],
                         ids=["hasattr", "name", "import"])
def test_nothing_outside_backend_looks_inside_one(pattern, what):
    found = []
    for path in _sources_outside_backend():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    assert not found, f"{what} outside gpuconv/backend/:\n" + "\n".join(found)


@pytest.mark.parametrize("pattern, line", [
    (_PROBE, '    if hasattr(be, "dropout_device"):'),
    (_NAME_CHECK, '    if get_backend().name == "cupy":'),
    (_NAME_CHECK, '    if backend != "numpy":'),
    (_IMPLEMENTATION_IMPORT, "from ..backend.cuda import conv_implicit_gemm"),
    (_IMPLEMENTATION_IMPORT, "from gpuconv.backend.numpy.conv import im2col_forward"),
])
def test_the_greps_catch_what_they_name(pattern, line):
    assert pattern.search(line)
