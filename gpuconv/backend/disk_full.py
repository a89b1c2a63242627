"""Telling a full disk apart from a compiler failure: "no space left on device in <folder>"."""

from __future__ import annotations

import errno
import re
from pathlib import Path

_MESSAGE = "No space left on device"
# g++ and as name the file they failed to write: "error writing to /tmp/ccX.s: No space left on device".
_FILE_BEFORE = re.compile(r"(/[^\s:]+):\s*" + _MESSAGE)


class NoSpaceError(OSError):
    """A compile or cache write ran out of disk space; the message names the folder."""


def no_space(folder: Path, doing: str, hint: str = "") -> NoSpaceError:
    """The error for running out of space in ``folder`` while ``doing`` something."""
    return NoSpaceError(errno.ENOSPC, f"no space left on device in {folder} while {doing}"
                                      f"{'; ' + hint if hint else ''}")


def folder_out_of_space(log: str, default: Path) -> Path | None:
    """The folder a compiler log says ran out of space (``default`` when it names no file), or None
    when the log does not say the disk was full."""
    if _MESSAGE not in log:
        return None
    match = _FILE_BEFORE.search(log)
    return Path(match.group(1)).parent if match else default


def is_no_space(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC
