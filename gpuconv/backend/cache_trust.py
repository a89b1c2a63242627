"""Which cache folders and cached files gpuconv trusts, checked the way ssh checks its key files.

A cache folder is used only when it and every folder above it are owned by the current user (or
root for the folders above) and writable by nobody else (a folder above may be world-writable when
its sticky bit is set, as ``/tmp`` is: others cannot rename or delete what is ours in it). A cached
file is used only when it is a regular file (not a link) owned by the current user and not
writable by group or others, and, for binaries that get loaded, when its bytes match the SHA-256
digest recorded next to it (``<file>.sha256``) when it was written. Anything else is refused: an
unusable folder with one warning and a private temporary folder instead, a refused or damaged file
with a rebuild.

Ownership is compared with :func:`current_uid`; tests patch it to play "another user", since the
test machine may run as root, which owns everything it creates.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import warnings
from pathlib import Path

from .cache_sweep import temp_prefix

DIGEST_SUFFIX = ".sha256"
_LOOSE = stat.S_IWGRP | stat.S_IWOTH


def current_uid() -> int:
    """The user whose files the caches may hold (the effective user of this process)."""
    return os.geteuid()


def _mode_problem(what: str, path: Path, st: os.stat_result, may_be_root: bool, sticky_ok: bool) -> str | None:
    uid = current_uid()
    if st.st_uid != uid and not (may_be_root and st.st_uid == 0):
        return f"{what} {path} is owned by uid {st.st_uid}, not by this user (uid {uid})"
    if st.st_mode & _LOOSE and not (sticky_ok and st.st_mode & stat.S_ISVTX):
        return f"{what} {path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def folder_problem(folder: Path) -> str | None:
    """Why ``folder`` (an existing directory) cannot be trusted as a cache folder, or None."""
    real = Path(os.path.realpath(folder))
    try:
        st = os.stat(real)
    except OSError as exc:
        return f"cannot inspect cache folder {folder} ({exc})"
    if not stat.S_ISDIR(st.st_mode):
        return f"cache folder {folder} is not a folder"
    problem = _mode_problem("cache folder", real, st, may_be_root=False, sticky_ok=False)
    if problem:
        return problem
    for parent in real.parents:
        try:
            st = os.stat(parent)
        except OSError as exc:
            return f"cannot inspect {parent}, a folder above cache folder {folder} ({exc})"
        problem = _mode_problem(f"{parent}, a folder above cache folder", folder, st, may_be_root=True, sticky_ok=True)
        if problem:
            return problem
    return None


def file_problem(path: Path) -> str | None:
    """Why an existing cached file cannot be trusted (a link, not a regular file, another owner,
    group- or world-writable), or None. A missing file raises ``FileNotFoundError``."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        return f"cached file {path} is not a regular file"
    return _mode_problem("cached file", path, st, may_be_root=False, sticky_ok=False)


def digest_path(path: Path) -> Path:
    return path.with_name(path.name + DIGEST_SUFFIX)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", opener=_no_follow) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0))


def binary_problem(path: Path) -> str | None:
    """Why the cached binary ``path`` must not be loaded, or None when it is ours and intact.

    Missing file or missing digest: ``"missing"`` (a first build, or a cache written before digests
    were recorded: rebuilt without a word). Otherwise the reason, for a warning.
    """
    try:
        problem = file_problem(path) or file_problem(digest_path(path))
        if problem:
            return problem
        recorded = digest_path(path).read_text().strip()
        actual = _sha256(path)
    except FileNotFoundError:
        return "missing"
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot read cached file {path} ({exc})"
    if recorded != actual:
        return f"cached file {path} does not match its recorded digest (damaged or replaced)"
    return None


def write_atomically(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file in the same folder and a rename, so
    nobody sees half a file; the file is private to the user (0600 before the umask)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix("tmp"), suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def record_digest(path: Path) -> None:
    """Records the SHA-256 of the binary just written at ``path`` next to it."""
    write_atomically(digest_path(path), (_sha256(path) + "\n").encode())


_warned: set[str] = set()


def warn_once(key: str, message: str) -> None:
    """One ``RuntimeWarning`` per ``key`` and process."""
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"gpuconv: {message}", RuntimeWarning, stacklevel=3)
