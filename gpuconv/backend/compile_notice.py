"""One line on stderr when a kernel compile takes a while, so a first run never sits silent."""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Iterator

#: Seconds a compile may take before its line is printed.
NOTICE_AFTER_SECONDS = 1.0


@contextlib.contextmanager
def compile_notice(message: str, after: float | None = None) -> Iterator[None]:
    """Prints ``gpuconv: <message>`` to stderr if the block is still running after ``after`` seconds
    (default :data:`NOTICE_AFTER_SECONDS`); a quick compile prints nothing."""
    timer = threading.Timer(NOTICE_AFTER_SECONDS if after is None else after,
                            lambda: print(f"gpuconv: {message}", file=sys.stderr, flush=True))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
