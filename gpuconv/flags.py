"""Library-wide settings, read by ``gpuconv.functional`` and the backends at call time.

``gpuconv.flags`` is this module; its settings are attributes that validate on assignment, and
calling it gives a context manager that restores the previous values on exit (also on an
exception)::

    gpuconv.flags.conv_benchmark = True
    with gpuconv.flags(allow_tf32=True, workspace_limit=64 * 2**20):
        ...

Assignment sets the process-wide default. A ``with gpuconv.flags(...)`` block overrides settings
for the thread (and asyncio task: a ``contextvars`` context) that runs it only: two threads in
overlapping blocks each see their own values, and a thread started inside a block sees the
defaults. Assigning a setting that the current block overrides changes the default and this
block's value; leaving the block then restores the thread's previous view. One
``gpuconv.flags(...)`` object may be entered again while it is active (nested or in several
threads) and works as a decorator too.

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
import contextvars
import numbers
import sys
import threading
import types
from typing import Any, Mapping

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
_values: dict[str, Any] = dict(DEFAULTS)  # the process-wide defaults
# This thread's (or task's) overrides, from its innermost active ``with gpuconv.flags(...)`` block.
_overrides: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("gpuconv_flags", default={})


def _validated(settings: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(settings) - set(_VALIDATORS))
    if unknown:
        raise AttributeError(f"gpuconv.flags has no setting {', '.join(map(repr, unknown))}; "
                             f"the settings are {', '.join(sorted(_VALIDATORS))}")
    return {name: _VALIDATORS[name](name, value) for name, value in settings.items()}


def _get(name: str) -> Any:
    overrides = _overrides.get()
    return overrides[name] if name in overrides else _values[name]


def as_dict() -> dict[str, Any]:
    """The settings this thread sees now, as a new dict."""
    return {name: _get(name) for name in _values}


class _Override(contextlib.ContextDecorator):
    """``with gpuconv.flags(...)``: overrides the settings for the running thread (or task) in the
    block. Re-entrant: each entry keeps its own token, in a stack per thread."""

    def __init__(self, settings: dict[str, Any]):
        self.settings = settings
        self._tokens = threading.local()

    def __enter__(self) -> None:
        stack = self._tokens.__dict__.setdefault("stack", [])
        stack.append(_overrides.set({**_overrides.get(), **self.settings}))

    def __exit__(self, *exc_info: Any) -> None:
        _overrides.reset(self._tokens.stack.pop())

    def __repr__(self) -> str:
        return "gpuconv.flags(" + ", ".join(f"{k}={v!r}" for k, v in sorted(self.settings.items())) + ")"


class _FlagsModule(types.ModuleType):
    """Makes the settings validated attributes of this module, and the module callable."""

    def __getattr__(self, name: str) -> Any:
        if name in _VALIDATORS:
            return _get(name)
        raise AttributeError(f"module 'gpuconv.flags' has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _VALIDATORS:
            setting = _validated({name: value})
            _values.update(setting)
            overrides = _overrides.get()
            if name in overrides:  # this thread reads back what it assigned, until its block ends
                _overrides.set({**overrides, **setting})
        elif name.startswith("__"):
            super().__setattr__(name, value)
        else:
            _validated({name: value})  # raises the AttributeError that names the settings

    def __call__(self, **settings: Any) -> _Override:
        """``with gpuconv.flags(conv_benchmark=True): ...`` sets the given settings for the block,
        in the running thread only."""
        return _Override(_validated(settings))  # all or nothing: a bad value changes no setting

    def __repr__(self) -> str:
        return "gpuconv.flags(" + ", ".join(f"{k}={v!r}" for k, v in sorted(as_dict().items())) + ")"


sys.modules[__name__].__class__ = _FlagsModule
