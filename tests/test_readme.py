"""The README's Python examples run as written (on whatever backend `auto` picks here)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_python_examples():
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index):
    import gpuconv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # auto's "no GPU" warning
        previous = gpuconv.get_backend()
        try:
            exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {})
        finally:
            gpuconv.use(previous.name)
