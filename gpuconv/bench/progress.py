"""Progress bars on stderr for the subcommands that take a while (tqdm): shown only when stderr is
a terminal, and never with ``--quiet``, so that files and pipes get the report alone."""

from __future__ import annotations

import sys

from tqdm import tqdm


def bar(total: int, desc: str, unit: str, quiet: bool) -> tqdm:
    """A tqdm bar of ``total`` steps on the current ``sys.stderr``; ``set_postfix_str`` says what
    runs now (shown at once: a first compile on the emulator can take a minute)."""
    # disable=None: tqdm shows the bar only when the stream is a terminal.
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=True if quiet else None, leave=False,
                dynamic_ncols=True)
