"""Names for the temporary files and folders writers leave in a cache folder while they work, and the
removal of those a killed writer left behind.

Each name carries the writer's host (a short hash of its name) and process id:
``.<kind>-<host>-<pid>-<random>``. A later compile removes an entry whose process is gone (same
host only: a shared folder may hold another machine's work in progress) and any entry older than
:data:`STALE_AFTER_SECONDS`, whoever left it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shutil
import socket
import time
from pathlib import Path

#: An entry this old is stale even when its process seems alive (a reused process id).
STALE_AFTER_SECONDS = 24 * 3600
_KINDS = ("build", "tmp")
_NAME = re.compile(r"^\.(?:build|tmp)-(?:(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-)?")


@functools.lru_cache(maxsize=None)
def host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def temp_prefix(kind: str) -> str:
    """The name prefix of a temporary ``kind`` ("build" folder or "tmp" file) of this process."""
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    return f".{kind}-{host_tag()}-{os.getpid()}-"


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: it exists, another user's
        return False
    return False


def is_stale(entry: Path, now: float | None = None) -> bool:
    """Whether ``entry`` (a writer's temporary file or folder) was left by a writer that is gone."""
    match = _NAME.match(entry.name)
    if match is None:
        return False
    try:
        age = (time.time() if now is None else now) - entry.lstat().st_mtime
    except OSError:
        return False
    if age > STALE_AFTER_SECONDS:
        return True
    return match["pid"] is not None and match["host"] == host_tag() and _process_gone(int(match["pid"]))


def sweep_stale(folder: Path) -> list[Path]:
    """Removes the stale temporary entries of ``folder``; returns what it removed."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            if is_stale(entry):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        entry.unlink()
                if not os.path.lexists(entry):
                    removed.append(entry)
    return removed
