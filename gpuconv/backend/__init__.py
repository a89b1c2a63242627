"""Backend selection: which array module and which kernels gpuconv computes with.

``gpuconv.use(name)`` sets the backend, ``with gpuconv.backend(name):`` sets it for a block, and
``GPUCONV_BACKEND`` sets the default. Names: ``numpy``, ``cupy``, ``emulated`` and ``auto`` (cupy
when a GPU is usable, else numpy with one warning that says why).

Only this package imports cupy, and only when the cupy backend is asked for or probed.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import types
import warnings
from typing import Any, Iterator

import numpy as np

from .base import Backend, Capabilities, array_kind
from .errors import BackendUnavailableError, KernelCompileError, KernelLaunchError

NAMES = ("auto", "numpy", "cupy", "emulated")
ENV_VAR = "GPUCONV_BACKEND"

_current: Backend | None = None
_instances: dict[tuple[str, int | None], Backend] = {}
_auto_warned = False


def _check_name(name: str) -> str:
    if not isinstance(name, str) or name.strip().lower() not in NAMES:
        raise ValueError(f"backend must be one of {', '.join(NAMES)}; got {name!r}")
    return name.strip().lower()


def unavailable_reason(name: str) -> str | None:
    """Why backend ``name`` cannot run on this machine, or None when it can."""
    name = _check_name(name)
    if name == "cupy":
        from .cuda.cupy_backend import unavailable_reason as reason
        return reason()
    if name == "emulated":
        from .emulated.backend import unavailable_reason as reason
        return reason()
    return None


def backend_class(name: str) -> type[Backend]:
    """The class of backend ``name`` (not ``auto``), imported but not created: its capability flags
    and class-level facts hold on any machine (the memory estimator stands in for it with them)."""
    name = _check_name(name)
    if name == "auto":
        raise ValueError("backend_class needs a backend name, not 'auto'")
    if name == "numpy":
        from .numpy.backend import NumpyBackend as cls
    elif name == "emulated":
        from .emulated.backend import EmulatedBackend as cls
    else:
        from .cuda.cupy_backend import CupyBackend as cls
    return cls


def capabilities_of(name: str) -> Capabilities:
    """The capability flags of backend ``name`` (not ``auto``) without creating it."""
    return backend_class(name).capabilities


def _auto_fallback_message(reason: str) -> str:
    """auto's one warning when it cannot use cupy: what happens in words, then why."""
    from .cuda.cupy_backend import NO_GPU

    if reason.startswith(NO_GPU):
        return f"gpuconv: {reason}: computing on the CPU with numpy (backend 'auto')"
    return f"gpuconv: computing on the CPU with numpy (backend 'auto') because {reason}"


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning raised in the caller of this function point at the
    first frame outside the gpuconv package: the user's line, however deep inside gpuconv the
    backend was first asked for."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    frame, level = sys._getframe(2), 2  # the function that warns is level 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def create(name: str, device: int | None = None) -> Backend:
    """The backend instance for ``name`` (one per name and device), resolving ``auto``."""
    global _auto_warned
    name = _check_name(name)
    if name == "auto":
        reason = unavailable_reason("cupy")
        if reason is None:
            name = "cupy"
        else:
            if not _auto_warned:
                warnings.warn(_auto_fallback_message(reason), RuntimeWarning, stacklevel=_caller_stacklevel())
                _auto_warned = True
            name = "numpy"
    if device is not None and name != "cupy":
        raise ValueError(f"device= applies to the cupy backend only; got device={device!r} for {name!r}")
    key = (name, device)
    if key not in _instances:
        reason = unavailable_reason(name)
        if reason is not None:
            raise BackendUnavailableError(f"backend {name!r} is unavailable: {reason}")
        if name == "numpy":
            from .numpy.backend import NumpyBackend
            _instances[key] = NumpyBackend()
        elif name == "emulated":
            from .emulated.backend import EmulatedBackend
            _instances[key] = EmulatedBackend()
        else:
            from .cuda.cupy_backend import CupyBackend
            _instances[key] = CupyBackend(device)
    return _instances[key]


def use(name: str = "auto", device: int | None = None) -> Backend:
    """Makes ``name`` the current backend (for cupy, ``device`` picks the GPU) and returns it."""
    global _current
    new = create(name, device)
    new.activate()
    _current = new
    return new


@contextlib.contextmanager
def backend(name: str, device: int | None = None) -> Iterator[Backend]:
    """``with gpuconv.backend("emulated"):`` runs the block on that backend, then restores the previous one."""
    global _current
    previous = _current
    new = create(name, device)
    restore_device = new.activate()
    _current = new
    try:
        yield new
    finally:
        _current = previous
        new.restore(restore_device)


@contextlib.contextmanager
def installed(instance: Backend) -> Iterator[Backend]:
    """Makes the backend object ``instance`` current for the block (internal: the memory estimator's
    shape-only backend, which ``create`` does not make)."""
    global _current
    previous, _current = _current, instance
    try:
        yield instance
    finally:
        _current = previous


def get_backend() -> Backend:
    """The current backend; on first use, the one ``GPUCONV_BACKEND`` names (default ``auto``)."""
    global _current
    if _current is None:
        _current = create(os.environ.get(ENV_VAR, "auto") or "auto")
    return _current


_DEVICE = re.compile(r"(cuda|gpu)(?::(\d+))?|cpu|numpy|cupy|emulated")


def parse_device(device: Any) -> tuple[str, int | None]:
    """PyTorch's device strings as gpuconv backends: ``"cuda"``/``"cuda:N"`` -> ``("cupy", N)``,
    ``"cpu"`` -> ``("numpy", None)``; backend names pass through."""
    text = str(device) if not isinstance(device, str) else device
    match = _DEVICE.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or a backend name ('numpy', 'cupy', "
                         f"'emulated'), got {device!r}")
    if match.group(1):
        return "cupy", None if match.group(2) is None else int(match.group(2))
    return {"cpu": "numpy"}.get(match.group(0), match.group(0)), None


def for_device(device: Any) -> Backend:
    """The backend a ``device=`` argument names (None: the current one; the current one also when it
    is the backend named without a device index)."""
    current = get_backend()
    if device is None:
        return current
    name, index = parse_device(device)
    if current.name == name and index is None:
        return current
    return create(name, index)


def on_device(a: Any, device: Any) -> bool:
    """Whether array ``a`` already lives where ``device`` names: host memory for ``cpu`` and the CPU
    backends, the GPU (and the given index, when one is) for ``cuda``."""
    name, index = parse_device(device)
    kind = array_kind(a)
    if name != "cupy":
        return kind == "numpy"
    return kind == "cupy" and (index is None or a.device.id == index)


def home_of(a: Any) -> Backend:
    """A backend that holds ``a`` natively: numpy for a NumPy array, cupy on ``a``'s device for a CuPy
    array (where a gradient goes back to after a move)."""
    if array_kind(a) == "cupy":
        return create("cupy", a.device.id)
    return create("numpy")


def asarray(a: Any, dtype: Any = None) -> Any:
    """``a`` as an array of the current backend (copying between host and device if needed)."""
    return get_backend().asarray(a, dtype=dtype)


def to_numpy(a: Any) -> np.ndarray:
    """``a`` (an array or a ``gpuconv.Tensor``) as a NumPy array (copied from the device for a CuPy array)."""
    data = getattr(a, "data", None)
    if data is not None and array_kind(data) is not None and array_kind(a) is None:
        a = data
    if array_kind(a) == "cupy":
        return a.get()
    return np.asarray(a)


def get_array_module(*arrays: Any) -> types.ModuleType:
    """``numpy`` or ``cupy``, from the arrays given; TypeError when they mix the two."""
    kinds = {array_kind(a) for a in arrays} - {None}
    if len(kinds) > 1:
        raise TypeError("arrays of different backends (numpy and cupy) cannot be mixed; move them with "
                        "gpuconv.asarray first")
    if kinds == {"cupy"}:
        import cupy
        return cupy
    return np


class _CallableModule(types.ModuleType):
    """Lets ``gpuconv.backend`` be this package and the ``gpuconv.backend(name)`` context manager."""

    def __call__(self, name: str, device: int | None = None):
        return backend(name, device)


sys.modules[__name__].__class__ = _CallableModule

__all__ = [
    "Backend", "BackendUnavailableError", "Capabilities", "KernelCompileError", "KernelLaunchError", "NAMES",
    "asarray", "backend", "backend_class", "capabilities_of", "create", "for_device", "get_array_module", "get_backend", "home_of",
    "on_device", "parse_device", "to_numpy", "unavailable_reason", "use",
]
