"""The convolution autotuner: PyTorch's ``torch.backends.cudnn.benchmark`` for gpuconv.

With ``gpuconv.flags.conv_benchmark`` on, the first ``algo="auto"`` call per key (device name,
dtype, input and weight shapes, stride, padding, dilation, groups, direction, TF32 setting) times
every algorithm that applies and fits ``gpuconv.flags.workspace_limit`` (CUDA events: one warm-up
run, then the median of 3) and keeps the fastest, in memory and in a JSON file that later
processes reuse.

Only a GPU backend (``capabilities.gpu``: cupy) times anything: on numpy and emulated there is no
device to measure, so the flag changes nothing there (``auto`` runs the heuristic). Tests drive the
logic on those backends with :func:`inject_timer`, a fake device name and timer.

The cache file is ``conv-algos-<gpuconv version>-<hash of kernels/*.cu and *.cuh>.json`` in
``$GPUCONV_TUNE_CACHE``, else ``$XDG_CACHE_HOME/gpuconv/tune``, else ``~/.cache/gpuconv/tune``
(the same scheme as the emulated backend's ``$GPUCONV_EMU_CACHE``), so new kernels or a new
version start from scratch. Entries are keyed by device name. Writers merge with what is on disk
under a lock file and replace the file atomically (a temporary file, then a rename), so
concurrent processes neither tear the file nor drop each other's winners. A file that cannot be
used (corrupt, nested too deep, not the user's own, group- or world-writable) is ignored with one
warning and rewritten on the next store; an unusable folder is replaced by a private temporary one
with one warning (:mod:`gpuconv.backend.cache_folder`). The lock file is opened without following
links and must be a regular file of the user's.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import stat
import statistics
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .. import flags
from ..backend import get_backend
from ..backend.cache_folder import usable_cache_folder
from ..backend.cache_trust import file_problem
from ..backend.kernel_source import kernels_dir
from .conv_geometry import ConvGeometry

try:
    import fcntl
except ImportError:  # Windows: no advisory lock; the atomic rename still keeps the file whole
    fcntl = None

CACHE_ENV = "GPUCONV_TUNE_CACHE"
FORMAT = 1
TIMED_RUNS = 3

# timer(run, label) -> milliseconds: calls run() as often as it needs; label names the algorithm.
Timer = Callable[[Callable[[], Any], str], float]

_injected: tuple[str, Timer] | None = None
_memory: dict[Path, dict[str, str]] = {}
_warned: set[Path] = set()


def cache_dir() -> Path:
    """The folder of the autotuner's cache file (see the module docstring)."""
    return usable_cache_folder(CACHE_ENV, "tune", "conv autotuner results")


@functools.lru_cache(maxsize=None)
def kernel_hash() -> str:
    """A hash of the kernel sources: tuned winners are only valid for the kernels that were timed."""
    digest = hashlib.sha256()
    root = kernels_dir()
    for path in sorted(root.glob("*.cu")) + sorted(root.glob("*.cuh")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cache_path() -> Path:
    import gpuconv  # the package is fully imported by the time anything is tuned

    return cache_dir() / f"conv-algos-{gpuconv.__version__}-{kernel_hash()}.json"


@contextlib.contextmanager
def inject_timer(device_name: str, timer: Timer) -> Iterator[None]:
    """Makes every backend tunable with ``timer`` under ``device_name`` for the block (for tests)."""
    global _injected
    previous, _injected = _injected, (device_name, timer)
    try:
        yield
    finally:
        _injected = previous


def forget() -> None:
    """Drops the in-memory cache (the next lookup reads the file again)."""
    _memory.clear()


def cuda_event_timer(xp) -> Timer:
    """Times ``run`` on the current stream with CUDA events: one warm-up, the median of 3 runs."""
    def timer(run: Callable[[], Any], label: str) -> float:
        run()
        times = []
        for _ in range(TIMED_RUNS):
            start, end = xp.cuda.Event(), xp.cuda.Event()
            start.record()
            run()
            end.record()
            end.synchronize()
            times.append(xp.cuda.get_elapsed_time(start, end))
        return statistics.median(times)
    return timer


@functools.lru_cache(maxsize=None)
def _device_name(xp, device_id: int) -> str:
    name = xp.cuda.runtime.getDeviceProperties(device_id)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def _timing() -> tuple[str, Timer] | None:
    if _injected is not None:
        return _injected
    be = get_backend()
    if not be.capabilities.gpu:
        return None
    return _device_name(be.xp, be.xp.cuda.Device().id), cuda_event_timer(be.xp)


def _key(device: str, g: ConvGeometry, direction: str, dtype) -> str:
    kh, kw = g.kernel_size
    parts = [device, np.dtype(dtype).name, (g.n, g.c_in, g.h, g.w), (g.c_out, g.c_in // g.groups, kh, kw),
             g.stride, g.padding, g.dilation, g.groups, direction, "tf32" if flags.allow_tf32 else "fp32"]
    return json.dumps(parts, separators=(",", ":"))


def _warn_once(path: Path, message: str) -> None:
    if path not in _warned:
        _warned.add(path)
        warnings.warn(f"gpuconv: {message}", RuntimeWarning, stacklevel=4)


def _read(path: Path) -> dict[str, str]:
    try:
        problem = file_problem(path)
        if problem:
            _warn_once(path, f"{problem}; the conv autotuner ignores it and replaces it with its own")
            return {}
        text = path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as exc:
        _warn_once(path, f"cannot read the conv autotuner cache {path} ({exc}); the autotuner ignores it")
        return {}
    try:
        data = json.loads(text)
        entries = data["entries"]
        if data.get("format") != FORMAT or not isinstance(entries, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in entries.items()):
            raise ValueError("unexpected structure")
    # RecursionError: JSON nested deeper than the parser's recursion limit.
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        _warn_once(path, f"corrupt conv autotuner cache {path} ({type(exc).__name__}: {exc}); the autotuner "
                         "ignores it and rewrites it")
        return {}
    return entries


def _entries(path: Path) -> dict[str, str]:
    if path not in _memory:
        _memory[path] = _read(path)
    return _memory[path]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    lock_path = path.with_name(path.name + ".lock")
    # O_NOFOLLOW: a link planted under the lock's name must not make us create or touch its target.
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        problem = file_problem(lock_path) if stat.S_ISREG(os.fstat(fd).st_mode) else f"{lock_path} is not a regular file"
        if problem:
            raise PermissionError(f"refusing the autotuner's lock file: {problem}")
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _store(path: Path, key: str, winner: str) -> None:
    entries = _entries(path)
    entries[key] = winner
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            merged = _read(path)  # what other processes stored meanwhile
            merged.update(entries)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".conv-algos-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump({"format": FORMAT, "entries": merged}, f, indent=0, sort_keys=True)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        entries.update(merged)
    except OSError as exc:
        _warn_once(path, f"cannot write the conv autotuner cache {path} ({exc}); tuned winners stay in memory "
                         "for this process only")


def cached(g: ConvGeometry, direction: str, dtype) -> str | None:
    """The tuned winner for this key on the current device, or None (none tuned, or no device)."""
    timing = _timing()
    if timing is None:
        return None
    return _entries(cache_path()).get(_key(timing[0], g, direction, dtype))


def tuned(g: ConvGeometry, direction: str, dtype, names: list[str], run: Callable[[str], Any]) -> str | None:
    """The fastest of ``names`` for this key: cached, or measured now with ``run(name)``; None when
    the current backend cannot be timed (numpy, emulated)."""
    timing = _timing()
    if timing is None:
        return None
    device, timer = timing
    path = cache_path()
    key = _key(device, g, direction, dtype)
    hit = _entries(path).get(key)
    if hit in names:
        return hit
    if len(names) == 1:
        return names[0]
    times = {name: timer(functools.partial(run, name), name) for name in names}
    winner = min(names, key=lambda name: times[name])  # ties: the earlier name
    _store(path, key, winner)
    return winner
