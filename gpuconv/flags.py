"""Library-wide settings, read by ``gpuconv.functional`` and the backends at call time.

``gpuconv.flags`` is this module; its settings are attributes that validate on assignment, and
calling it gives a context manager that restores the previous values on exit (also on an
exception)::

    gpuconv.flags.conv_benchmark = True
    with gpuconv.flags(allow_tf32=True, workspace_limit=64 * 2**20):
        ...

Settings:
    conv_benchmark (bool, default False): PyTorch's ``torch.backends.cudnn.benchmark``. When on,
        ``F.conv2d`` / ``F.conv2d_backward`` with ``algo="auto"`` time every algorithm that
        applies to a shape the first time they see it (on the cupy backend only; on numpy and
        emulated it changes nothing) and reuse the fastest (see ``gpuconv.functional.conv_tune``).
    allow_tf32 (bool, default False): lets the GEMMs of the ``im2col`` and ``gemm`` convolution
        algorithms use TF32 tensor cores on the cupy backend (inputs rounded to 10 mantissa bits;
        the emulated backend rounds the same way so the tolerances are tested without a GPU; the
        numpy backend ignores it). Off by default because float32 results then match float32
        references to about 1e-5 instead of about 1e-3.
    workspace_limit (int, bytes, default 256 MiB): the most transient workspace one convolution
        may allocate; im2col-based algorithms process the batch in chunks to fit (one image is
        never split).
    detect_anomaly (bool, default False): PyTorch's ``torch.autograd.set_detect_anomaly``. When on,
        every module call checks its output, and every module backward its input gradient and its
        parameters' gradients, for NaN and infinity; the first module to produce one raises a
        RuntimeError that names it by its qualified name in the model (``in layer1.0.conv1
        (Conv2d(...)): ...``). Each check reads a flag back from the device: slow, for debugging.
"""

from __future__ import annotations

import contextlib
import numbers
import sys
import types
from typing import Any, Iterator

DEFAULT_WORKSPACE_LIMIT = 256 * 2**20


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"gpuconv.flags.{name} must be a bool (True or False), got {value!r}")
    return value


def _positive_bytes(name: str, value: Any) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"gpuconv.flags.{name} must be a positive int (bytes), got {value!r}")
    if value < 1:
        raise ValueError(f"gpuconv.flags.{name} must be a positive int (bytes), got {value!r}")
    return int(value)


_VALIDATORS = {"conv_benchmark": _bool, "allow_tf32": _bool, "workspace_limit": _positive_bytes,
               "detect_anomaly": _bool}
DEFAULTS = {"conv_benchmark": False, "allow_tf32": False, "workspace_limit": DEFAULT_WORKSPACE_LIMIT,
            "detect_anomaly": False}
_values: dict[str, Any] = dict(DEFAULTS)


def _validated(settings: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(settings) - set(_VALIDATORS))
    if unknown:
        raise AttributeError(f"gpuconv.flags has no setting {', '.join(map(repr, unknown))}; "
                             f"the settings are {', '.join(sorted(_VALIDATORS))}")
    return {name: _VALIDATORS[name](name, value) for name, value in settings.items()}


def as_dict() -> dict[str, Any]:
    """The current settings, as a new dict."""
    return dict(_values)


@contextlib.contextmanager
def _overridden(new: dict[str, Any]) -> Iterator[None]:
    previous = {name: _values[name] for name in new}
    _values.update(new)
    try:
        yield
    finally:
        _values.update(previous)


class _FlagsModule(types.ModuleType):
    """Makes the settings validated attributes of this module, and the module callable."""

    def __getattr__(self, name: str) -> Any:
        if name in _VALIDATORS:
            return _values[name]
        raise AttributeError(f"module 'gpuconv.flags' has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _VALIDATORS:
            _values.update(_validated({name: value}))
        elif name.startswith("__"):
            super().__setattr__(name, value)
        else:
            _validated({name: value})  # raises the AttributeError that names the settings

    def __call__(self, **settings: Any) -> contextlib.AbstractContextManager:
        """``with gpuconv.flags(conv_benchmark=True): ...`` sets the given settings for the block."""
        return _overridden(_validated(settings))  # all or nothing: a bad value changes no setting

    def __repr__(self) -> str:
        return "gpuconv.flags(" + ", ".join(f"{k}={v!r}" for k, v in sorted(_values.items())) + ")"


sys.modules[__name__].__class__ = _FlagsModule
