"""The README's and the docs/ pages' Python examples run as written (on whatever backend `auto`
picks here), and every page in docs/ is linked from the README."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [(page.relative_to(ROOT).as_posix(), index, code) for page in PAGES
          for index, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.DOTALL))]


def test_readme_and_docs_have_python_examples():
    assert any(name == "README.md" for name, _, _ in BLOCKS)
    assert len({name for name, _, _ in BLOCKS}) >= 3


def test_every_docs_page_is_linked_from_the_readme_and_every_link_resolves():
    readme = (ROOT / "README.md").read_text()
    links = set(re.findall(r"\]\((docs/[^)#]+)\)", readme))
    assert links == {page.relative_to(ROOT).as_posix() for page in PAGES[1:]}
    for link in links:
        assert (ROOT / link).is_file(), link


@pytest.mark.parametrize("name, index, code", BLOCKS, ids=[f"{name}-{index}" for name, index, _ in BLOCKS])
def test_example_runs(name, index, code):
    import gpuconv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # auto's "no GPU" warning
        previous = gpuconv.get_backend()
        try:
            exec(compile(code, f"{name} block {index}", "exec"), {})
        finally:
            gpuconv.use(previous.name)
