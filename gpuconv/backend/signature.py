"""Parsing ``extern "C" __global__`` signatures and checking launch arguments against them.

CuPy's RawKernel does not convert arguments: a float64 array passed to a ``float*`` parameter, or a
Python number where the kernel expects a specific width, silently computes garbage. The cupy and
emulated backends both run :func:`check_arguments` before every launch, with the same code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .entry_points import expand_entry_points
from .kernel_source import strip_comments

# C type spelling (after removing const/volatile/__restrict__) -> NumPy dtype.
_C_TYPES = {
    "float": np.float32,
    "double": np.float64,
    "int": np.int32,
    "signed int": np.int32,
    "int32_t": np.int32,
    "unsigned": np.uint32,
    "unsigned int": np.uint32,
    "uint32_t": np.uint32,
    "long long": np.int64,
    "long long int": np.int64,
    "int64_t": np.int64,
    "unsigned long long": np.uint64,
    "unsigned long long int": np.uint64,
    "uint64_t": np.uint64,
    "size_t": np.uint64,
    "short": np.int16,
    "int16_t": np.int16,
    "unsigned short": np.uint16,
    "uint16_t": np.uint16,
    "char": np.int8,
    "signed char": np.int8,
    "int8_t": np.int8,
    "unsigned char": np.uint8,
    "uint8_t": np.uint8,
    "bool": np.bool_,
}

_QUALIFIERS = re.compile(r"\b(const|volatile|__restrict__|__restrict|restrict)\b")
_ENTRY = re.compile(
    r'extern\s+"C"\s+__global__\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?void\s+'
    r"(?:__launch_bounds__\s*\([^)]*\)\s*)?(?P<name>[A-Za-z_]\w*)\s*\((?P<params>[^)]*)\)"
)


@dataclass(frozen=True)
class Param:
    """One kernel parameter: its name, element dtype and whether it is a pointer."""

    name: str
    dtype: np.dtype
    pointer: bool

    def describe(self) -> str:
        return f"{self.dtype.name}{'*' if self.pointer else ''} {self.name}"


@dataclass(frozen=True)
class Signature:
    name: str
    params: tuple[Param, ...]


def parse_signatures(source: str, filename: str = "<source>") -> dict[str, Signature]:
    """Every ``extern "C" __global__`` entry point of a .cu source, by name: those written out and
    those its GC_ENTRY* invocations generate (kernels/entry_points.cuh)."""
    signatures = {}
    for match in _ENTRY.finditer(expand_entry_points(strip_comments(source), filename)):
        name = match["name"]
        params_text = match["params"].strip()
        params = []
        if params_text and params_text != "void":
            for index, raw in enumerate(params_text.split(",")):
                params.append(_parse_param(raw, name, index, filename))
        signatures[name] = Signature(name, tuple(params))
    return signatures


def _parse_param(raw: str, kernel: str, index: int, filename: str) -> Param:
    text = " ".join(_QUALIFIERS.sub(" ", raw).split())
    pointer = "*" in text
    if text.count("*") > 1 or "&" in text or "[" in text:
        raise ValueError(f"{filename}: kernel {kernel} parameter {index} ({raw.strip()!r}): only scalars and "
                         "single pointers are supported at a kernel entry point")
    text = text.replace("*", " ")
    words = text.split()
    if len(words) < 2:
        raise ValueError(f"{filename}: kernel {kernel} parameter {index} ({raw.strip()!r}) needs a type and a name")
    ctype, pname = " ".join(words[:-1]), words[-1]
    if ctype not in _C_TYPES:
        raise ValueError(f"{filename}: kernel {kernel} parameter {pname}: unsupported type {ctype!r}")
    return Param(pname, np.dtype(_C_TYPES[ctype]), pointer)


def check_arguments(sig: Signature, args: tuple, array_types: tuple[type, ...], backend: str) -> None:
    """Raises TypeError naming the kernel and parameter when an argument does not match exactly.

    Pointers take C-contiguous arrays of ``array_types`` with the parameter's dtype; scalars take
    NumPy scalars of exactly the parameter's dtype (``np.int32(n)``, not ``n``).
    """
    if not isinstance(args, tuple):
        raise TypeError(f"kernel {sig.name}: args must be a tuple, got {type(args).__name__}")
    if len(args) != len(sig.params):
        raise TypeError(f"kernel {sig.name} takes {len(sig.params)} arguments "
                        f"({', '.join(p.describe() for p in sig.params)}), got {len(args)}")
    for param, arg in zip(sig.params, args):
        if param.pointer:
            if not isinstance(arg, array_types):
                raise TypeError(f"kernel {sig.name}, parameter {param.describe()}: expected a {backend} array, "
                                f"got {type(arg).__module__}.{type(arg).__name__}")
            if arg.dtype != param.dtype:
                raise TypeError(f"kernel {sig.name}, parameter {param.describe()}: expected dtype "
                                f"{param.dtype.name}, got {arg.dtype.name}")
            if not arg.flags.c_contiguous:
                raise TypeError(f"kernel {sig.name}, parameter {param.describe()}: the array must be "
                                f"C-contiguous (got strides {arg.strides} for shape {arg.shape})")
        else:
            if not isinstance(arg, np.generic) or arg.dtype != param.dtype:
                got = arg.dtype.name if isinstance(arg, np.generic) else f"Python {type(arg).__name__}"
                raise TypeError(f"kernel {sig.name}, parameter {param.describe()}: expected a NumPy "
                                f"{param.dtype.name} scalar (np.{param.dtype.name}(value)), got {got}")
