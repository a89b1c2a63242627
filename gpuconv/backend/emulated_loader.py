"""Compiles kernels/*.cu for the CPU with g++ and the kernels/emu/ shim, and launches them.

Kernel objects are called exactly like ``cupy.RawKernel``: ``kern(grid, block, args, shared_mem=0)``.
Compiled libraries are cached on disk by content hash in ``$GPUCONV_EMU_CACHE``, else
``$XDG_CACHE_HOME/gpuconv/emu``, else ``~/.cache/gpuconv/emu``; a library is written under a
temporary name and renamed into place, so concurrent test processes never see half a file.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Mapping

import numpy as np

from .errors import KernelLaunchError
from .kernel_source import compile_error, kernels_dir, read_source, with_defines
from .signature import Signature, check_arguments, parse_signatures

SCHEDULE_ENV = "GPUCONV_EMU_SCHEDULE"
_SCHEDULES = {"forward": 0, "reverse": 1, "shuffle": 2}
# -fno-ipa-reference*: GCC could otherwise prove that the opaque fiber switch never touches a
# static __shared__ variable and keep its value in a register across a barrier.
_CXX_FLAGS = ("-std=c++20", "-O2", "-g0", "-fPIC", "-shared", "-fvisibility=hidden", "-Wno-unknown-pragmas",
              "-fno-ipa-reference", "-fno-ipa-reference-addressable")

# `extern __shared__ T name[];` has no CPU equivalent; it becomes a pointer to the launch's
# dynamic shared buffer. The rewrite keeps the line count, so messages keep their line numbers.
_EXTERN_SHARED = re.compile(
    r"extern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s*)?(?P<type>[A-Za-z_][\w:<>, ]*?)\s*"
    r"(?:__align__\s*\(\s*\d+\s*\)\s*)?(?P<name>[A-Za-z_]\w*)\s*\[\s*\]\s*;"
)


class _LaunchConfig(ctypes.Structure):
    _fields_ = [
        ("grid", ctypes.c_uint * 3),
        ("block", ctypes.c_uint * 3),
        ("shared_mem", ctypes.c_ulonglong),
        ("schedule", ctypes.c_int),
        ("seed", ctypes.c_ulonglong),
    ]


def compiler() -> str | None:
    """Path of the C++ compiler the emulator uses ($CXX or g++), or None when there is none."""
    return shutil.which(os.environ.get("CXX", "g++"))


def cache_dir() -> Path:
    if os.environ.get("GPUCONV_EMU_CACHE"):
        return Path(os.environ["GPUCONV_EMU_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gpuconv" / "emu"


@functools.lru_cache(maxsize=None)
def _compiler_identity(cxx: str) -> str:
    return subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False).stdout


def _header_texts() -> str:
    root = kernels_dir()
    parts = sorted(root.glob("*.cuh")) + sorted((root / "emu").glob("*.h"))
    return "".join(f"{p.name}\n{p.read_text()}" for p in parts)


def current_schedule() -> tuple[int, int]:
    """The (mode, seed) that ``GPUCONV_EMU_SCHEDULE`` asks for: forward, reverse or shuffle[:seed]."""
    text = os.environ.get(SCHEDULE_ENV, "forward").strip().lower() or "forward"
    mode, _, seed = text.partition(":")
    if mode not in _SCHEDULES or (seed and not seed.isdigit()):
        raise ValueError(f"{SCHEDULE_ENV} must be forward, reverse, shuffle or shuffle:<seed>, got {text!r}")
    return _SCHEDULES[mode], int(seed or 0)


def _dims(value, what: str, kernel: str) -> tuple[int, int, int]:
    dims = (value,) if isinstance(value, (int, np.integer)) else tuple(value)
    if not 1 <= len(dims) <= 3 or not all(isinstance(d, (int, np.integer)) and d >= 0 for d in dims):
        raise TypeError(f"kernel {kernel}: {what} must be a non-negative int or a tuple of 1 to 3 of them, got {value!r}")
    return tuple(int(d) for d in dims) + (1,) * (3 - len(dims))


class EmulatedKernel:
    """One entry point of an emulated module; called like ``cupy.RawKernel``."""

    def __init__(self, module: EmulatedModule, signature: Signature):
        self.module = module
        self.signature = signature
        self.name = signature.name
        self._launch = getattr(module.library, f"emu_launch__{signature.name}")
        self._launch.restype = ctypes.c_int
        self._launch.argtypes = [ctypes.POINTER(_LaunchConfig), ctypes.c_void_p]

    def __call__(self, grid, block, args, shared_mem: int = 0) -> None:
        check_arguments(self.signature, args, (np.ndarray,), "numpy (emulated)")
        config = _LaunchConfig()
        config.grid[:] = _dims(grid, "grid", self.name)
        config.block[:] = _dims(block, "block", self.name)
        if not isinstance(shared_mem, (int, np.integer)) or shared_mem < 0:
            raise TypeError(f"kernel {self.name}: shared_mem must be a non-negative int, got {shared_mem!r}")
        config.shared_mem = int(shared_mem)
        config.schedule, config.seed = current_schedule()
        # Each argument lives in a buffer of its own; the kernel receives pointers to them.
        holders = [
            np.array([arg.ctypes.data], dtype=np.uintp) if param.pointer else np.array(arg, dtype=param.dtype)
            for param, arg in zip(self.signature.params, args)
        ]
        pointers = (ctypes.c_void_p * max(1, len(holders)))(*[h.ctypes.data for h in holders])
        with self.module.lock:
            status = self._launch(ctypes.byref(config), pointers)
            message = self.module.last_error() if status else ""
        if status:
            raise KernelLaunchError(f"kernel {self.name} ({self.module.filename}): {message}")


class EmulatedModule:
    """A .cu file compiled for the CPU; ``get_function(name)`` returns an :class:`EmulatedKernel`."""

    def __init__(self, filename: str | Path, defines: Mapping[str, object] | None = None, extra_flags: tuple = ()):
        cxx = compiler()
        if cxx is None:
            raise RuntimeError("the emulated backend needs a C++ compiler: none found as $CXX or g++")
        name, text = read_source(filename)
        self.filename = name
        self.signatures = parse_signatures(text, name)
        source = with_defines(name, _EXTERN_SHARED.sub(r"EMU_EXTERN_SHARED(\g<type>, \g<name>);", text), defines)
        source += '\n#line 1 "<emulator launch wrappers>"\n'
        source += "".join(f"EMU_LAUNCHER({n})\n" for n in self.signatures)
        flags = _CXX_FLAGS + tuple(extra_flags)
        digest = hashlib.sha256(
            "\0".join([source, _header_texts(), _compiler_identity(cxx), " ".join(flags)]).encode()
        ).hexdigest()[:32]
        library_path = cache_dir() / f"{Path(name).stem}-{digest}.so"
        if not library_path.is_file():
            self._compile(cxx, name, source, flags, library_path)
        self.library = ctypes.CDLL(str(library_path), mode=os.RTLD_LOCAL)
        self.library.emu_last_error.restype = ctypes.c_char_p
        self.lock = threading.Lock()
        self._kernels: dict[str, EmulatedKernel] = {}

    @staticmethod
    def _compile(cxx: str, name: str, source: str, flags: tuple, library_path: Path) -> None:
        library_path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=library_path.parent, prefix=".build-") as build:
            src = Path(build) / name
            src.write_text(source)
            out = Path(build) / "module.so"
            shim = kernels_dir() / "emu" / "cuda_emu.h"
            cmd = [cxx, *flags, "-include", str(shim), f"-I{kernels_dir()}", "-x", "c++", str(src), "-o", str(out)]
            result = subprocess.run(cmd, capture_output=True, text=True, cwd=build, check=False)
            if result.returncode != 0:
                raise compile_error(name, result.stderr, "g++ (emulated backend)")
            os.replace(out, library_path)

    def last_error(self) -> str:
        return self.library.emu_last_error().decode(errors="replace")

    def get_function(self, name: str) -> EmulatedKernel:
        if name not in self._kernels:
            if name not in self.signatures:
                raise AttributeError(f"{self.filename} has no extern \"C\" __global__ kernel named {name!r}; "
                                     f"it has {sorted(self.signatures)}")
            self._kernels[name] = EmulatedKernel(self, self.signatures[name])
        return self._kernels[name]
