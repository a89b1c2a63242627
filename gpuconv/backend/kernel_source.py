"""Finding and preparing kernels/*.cu sources, shared by the cupy and emulated loaders."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from .errors import KernelCompileError

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=None)
def kernels_dir() -> Path:
    """The folder holding the .cu files: ``gpuconv/_kernels`` in a wheel, ``kernels/`` in a checkout."""
    for candidate in (_PACKAGE_DIR / "_kernels", _PACKAGE_DIR.parent / "kernels"):
        if (candidate / "common.cuh").is_file():
            return candidate
    raise FileNotFoundError(
        f"gpuconv's CUDA kernels were found neither in {_PACKAGE_DIR / '_kernels'} (installed package) "
        f"nor in {_PACKAGE_DIR.parent / 'kernels'} (source checkout); reinstall gpuconv"
    )


def kernel_files() -> list[Path]:
    """Every kernels/*.cu file, sorted by name."""
    return sorted(kernels_dir().glob("*.cu"))


def read_source(filename: str | Path) -> tuple[str, str]:
    """Returns ``(display_name, text)`` of a .cu file given by name (in kernels/) or by path."""
    path = Path(filename)
    if not path.is_absolute() and not path.exists():
        path = kernels_dir() / path
    if not path.is_file():
        raise FileNotFoundError(f"kernel source {filename!s} not found (looked in {path.parent})")
    return path.name, path.read_text()


def strip_comments(text: str) -> str:
    """Removes // and /* */ comments, keeping newlines so positions stay meaningful."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.DOTALL)
    return re.sub(r"//[^\n]*", "", text)


_DIAGNOSTIC = re.compile(r"^(?P<file>[^\s:()]+\.cuh?)(?::(?P<line>\d+)|\((?P<line2>\d+)\))", re.MULTILINE)


def compile_error(name: str, log: str, compiler: str) -> KernelCompileError:
    """Builds the exception for a failed compile, naming the first file:line the log blames."""
    line = None
    for match in _DIAGNOSTIC.finditer(log):
        if Path(match["file"]).name == name or line is None:
            line = int(match["line"] or match["line2"])
            if Path(match["file"]).name == name:
                break
    return KernelCompileError(name, line, log, compiler)
