"""Where gpuconv keeps what it computes once per machine (compiled kernels, autotuner results).

:func:`cache_folder` is the folder asked for; :func:`usable_cache_folder` is the one actually used:
the folder asked for, created 0700 when missing, if it is trusted (:mod:`.cache_trust`) and
writable, else a private temporary folder of this process (made 0700, removed at exit) with one
warning that says why, so an unusable cache never makes gpuconv unusable.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from .cache_sweep import temp_prefix
from .cache_trust import folder_problem, warn_once

_decided: dict[tuple[str, str], Path] = {}


def cache_folder(env: str, name: str) -> Path:
    """``$<env>`` when set, else ``$XDG_CACHE_HOME/gpuconv/<name>``, else ``~/.cache/gpuconv/<name>``."""
    if os.environ.get(env):
        return Path(os.environ[env])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gpuconv" / name


def usable_cache_folder(env: str, name: str, what: str) -> Path:
    """The folder the cache ``name`` (holding ``what``, for the warning) reads and writes now (see
    the module docstring). Decided once per process and requested folder; each cached file is
    still checked when it is used."""
    wanted = cache_folder(env, name)
    key = (name, str(wanted))
    if key not in _decided:
        problem = _unusable(wanted)
        if problem is None:
            _decided[key] = wanted
        else:
            private = Path(tempfile.mkdtemp(prefix=f"gpuconv-{name}-"))
            atexit.register(shutil.rmtree, private, ignore_errors=True)
            warn_once(f"folder:{key}", f"{problem}; ${env} or the default location must be a folder owned by "
                                       f"you and writable by you only. This process keeps its {what} in the "
                                       f"private folder {private} instead (removed at exit)")
            _decided[key] = private
    return _decided[key]


def forget_decisions() -> None:
    """Forgets which folders were found usable (the next use checks again; for tests)."""
    _decided.clear()


def _unusable(folder: Path) -> str | None:
    """Why ``folder`` cannot serve as a cache folder (after creating it 0700 when missing), or None."""
    try:
        if not folder.is_dir():
            folder.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(folder, 0o700)
    except OSError as exc:
        return f"cannot create cache folder {folder} ({type(exc).__name__}: {exc.strerror or exc})"
    problem = folder_problem(folder)
    if problem:
        return problem
    try:  # a read-only file system or folder shows only when writing
        fd, probe = tempfile.mkstemp(dir=folder, prefix=temp_prefix("tmp"), suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"cannot write in cache folder {folder} ({type(exc).__name__}: {exc.strerror or exc})"
    return None
