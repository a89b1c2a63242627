"""Ahead-of-time kernel binaries: what is compiled for which GPU, and NVRTC reached through ctypes.

A wheel ships every ``kernels/*.cu`` file compiled to CUBIN for each architecture in
:data:`CUBIN_ARCHITECTURES`, plus PTX for :data:`PTX_ARCHITECTURE` (the driver JIT-compiles PTX for
newer GPUs), in ``gpuconv/_kernels/bin/`` with a ``manifest.json`` naming each file's source hash.
The cupy loader picks a binary with :func:`pick_binary`; see ``kernel_binaries.py``.

NOTE: this module imports only the standard library. ``setup.py`` loads it by file path at build
time, in a build environment that has neither NumPy nor CuPy (only the NVRTC wheel), so nothing here
may import gpuconv or a third-party package.
"""

from __future__ import annotations

import ctypes
import glob
import hashlib
import importlib.util
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

# CUBIN runs on the same major architecture with an equal or higher minor version (sm_86 code runs
# on sm_87), so these five cover every GPU from Turing to Hopper; PTX covers newer ones.
CUBIN_ARCHITECTURES = ("sm_75", "sm_80", "sm_86", "sm_89", "sm_90")
PTX_ARCHITECTURE = "compute_90"
NVRTC_OPTIONS = ("-std=c++17",)
MANIFEST = "manifest.json"


def with_defines(name: str, text: str, defines: Mapping[str, object] | None) -> str:
    """Prepends ``#define`` lines, then a ``#line`` directive so compiler messages keep the
    file's own line numbers. This is the exact program text every loader compiles."""
    lines = [f"#define {key} {_define_value(key, value)}" for key, value in sorted((defines or {}).items())]
    lines.append(f'#line 1 "{name}"')
    return "\n".join(lines) + "\n" + text


def _define_value(key: str, value: object) -> str:
    if not re.fullmatch(r"[A-Za-z_]\w*", key):
        raise ValueError(f"kernel define name must be a C identifier, got {key!r}")
    if isinstance(value, bool):
        return "1" if value else "0"
    text = str(value)
    if "\n" in text:
        raise ValueError(f"kernel define {key} must be a single line, got {text!r}")
    return text


def program_hash(program_text: str, headers: Iterable[Path]) -> str:
    """sha256 over a program's text (defines included) and every header it may include: a binary
    built from other sources or other defines is never loaded."""
    digest = hashlib.sha256(program_text.encode())
    for path in sorted(Path(h) for h in headers):
        digest.update(b"\0" + path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def arch_of(capability: tuple[int, int]) -> str:
    """``(8, 6)`` -> ``"sm_86"``."""
    major, minor = capability
    return f"sm_{major}{minor}"


def pick_binary(available: Iterable[str], capability: tuple[int, int]) -> str | None:
    """The architecture among ``available`` (``"sm_XY"`` CUBINs, ``"compute_XY"`` PTX) that runs on a
    device of compute ``capability``: the exact CUBIN, else a CUBIN of the same major version with the
    highest minor version not above the device's, else the newest PTX not above the device; ``None``
    when nothing fits (an older GPU than every binary)."""
    major, minor = capability
    cubins, ptx = [], []
    for arch in available:
        kind, _, number = arch.partition("_")
        if not number.isdigit() or len(number) < 2:
            continue
        arch_major, arch_minor = int(number[:-1]), int(number[-1])
        if kind == "sm" and arch_major == major and arch_minor <= minor:
            cubins.append((arch_minor, arch))
        elif kind == "compute" and (arch_major, arch_minor) <= (major, minor):
            ptx.append(((arch_major, arch_minor), arch))
    if cubins:
        return max(cubins)[1]
    if ptx:
        return max(ptx)[1]
    return None


class NvrtcError(RuntimeError):
    """NVRTC rejected a program; ``log`` holds its message."""

    def __init__(self, message: str, log: str = ""):
        super().__init__(message + (f"\n{log.strip()}" if log.strip() else ""))
        self.log = log


class Nvrtc:
    """The NVRTC shared library through ctypes: compiles CUDA C++ to CUBIN or PTX without a GPU."""

    def __init__(self, library_path: str):
        self.path = library_path
        lib = ctypes.CDLL(library_path)
        self._lib = lib
        for name, args in {
            "nvrtcVersion": [ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)],
            "nvrtcCreateProgram": [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int,
                                   ctypes.c_void_p, ctypes.c_void_p],
            "nvrtcCompileProgram": [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)],
            "nvrtcDestroyProgram": [ctypes.POINTER(ctypes.c_void_p)],
            "nvrtcGetProgramLogSize": [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)],
            "nvrtcGetProgramLog": [ctypes.c_void_p, ctypes.c_char_p],
            "nvrtcGetCUBINSize": [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)],
            "nvrtcGetCUBIN": [ctypes.c_void_p, ctypes.c_char_p],
            "nvrtcGetPTXSize": [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)],
            "nvrtcGetPTX": [ctypes.c_void_p, ctypes.c_char_p],
            "nvrtcGetErrorString": [ctypes.c_int],
        }.items():
            getattr(lib, name).argtypes = args
            getattr(lib, name).restype = ctypes.c_char_p if name == "nvrtcGetErrorString" else ctypes.c_int

    def version(self) -> tuple[int, int]:
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._check(self._lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
        return major.value, minor.value

    def _check(self, status: int, call: str) -> None:
        if status != 0:
            raise NvrtcError(f"{call} failed: {self._lib.nvrtcGetErrorString(status).decode()}")

    def compile(self, text: str, name: str, arch: str, options: Sequence[str] = ()) -> bytes:
        """CUBIN bytes for ``arch="sm_XY"``, PTX bytes (NUL-terminated text) for ``arch="compute_XY"``.

        Raises:
            NvrtcError: the compile failed; ``.log`` is NVRTC's message (file:line diagnostics).
        """
        program = ctypes.c_void_p()
        self._check(self._lib.nvrtcCreateProgram(ctypes.byref(program), text.encode(), name.encode(), 0, None, None),
                    "nvrtcCreateProgram")
        try:
            argv = [f"-arch={arch}", *options]
            c_options = (ctypes.c_char_p * len(argv))(*(o.encode() for o in argv))
            status = self._lib.nvrtcCompileProgram(program, len(argv), c_options)
            if status != 0:
                raise NvrtcError(f"NVRTC ({arch}) failed to compile {name}", self._log(program))
            get_size, get = ((self._lib.nvrtcGetCUBINSize, self._lib.nvrtcGetCUBIN) if arch.startswith("sm_")
                             else (self._lib.nvrtcGetPTXSize, self._lib.nvrtcGetPTX))
            size = ctypes.c_size_t()
            self._check(get_size(program, ctypes.byref(size)), "nvrtcGet*Size")
            buffer = ctypes.create_string_buffer(size.value)
            self._check(get(program, buffer), "nvrtcGet*")
            return buffer.raw
        finally:
            self._lib.nvrtcDestroyProgram(ctypes.byref(program))

    def _log(self, program: ctypes.c_void_p) -> str:
        size = ctypes.c_size_t()
        if self._lib.nvrtcGetProgramLogSize(program, ctypes.byref(size)) != 0:
            return ""
        buffer = ctypes.create_string_buffer(size.value)
        self._lib.nvrtcGetProgramLog(program, buffer)
        return buffer.value.decode(errors="replace")


def find_nvrtc() -> str | None:
    """Path of an NVRTC library: ``$GPUCONV_NVRTC``, else the one in the ``nvidia-cuda-nvrtc-cu12``
    (or CUDA 13 ``nvidia-cuda-nvrtc``) wheel, else ``$CUDA_HOME``/``$CUDA_PATH``/``/usr/local/cuda``."""
    if os.environ.get("GPUCONV_NVRTC"):
        return os.environ["GPUCONV_NVRTC"]
    folders = []
    for package in ("nvidia.cuda_nvrtc", "nvidia.cu13"):
        try:
            spec = importlib.util.find_spec(package)
        except ModuleNotFoundError:
            spec = None
        if spec is not None and spec.submodule_search_locations:
            folders += [os.path.join(p, "lib") for p in spec.submodule_search_locations]
    for variable in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(variable):
            folders += [os.path.join(os.environ[variable], "lib64"), os.path.join(os.environ[variable], "lib")]
    folders.append("/usr/local/cuda/lib64")
    for folder in folders:
        # libnvrtc.so.12 / .so.13; not the ".alt" build (a variant without the C++ standard-library headers).
        matches = sorted(p for p in glob.glob(os.path.join(folder, "libnvrtc.so*")) if ".alt." not in p)
        if matches:
            return matches[0]
    return None


def build_binaries(source_dir: Path, out_dir: Path, log: Callable[[str], None] = print) -> dict:
    """Compiles every ``*.cu`` in ``source_dir`` for :data:`CUBIN_ARCHITECTURES` and PTX for
    :data:`PTX_ARCHITECTURE` into ``out_dir``, with ``manifest.json``; returns the manifest.

    Raises:
        RuntimeError: no NVRTC library was found (the message says how to get one).
        NvrtcError: a file failed to compile.
    """
    library = find_nvrtc()
    if library is None:
        raise RuntimeError(
            "gpuconv's wheel ships its CUDA kernels precompiled, which needs NVRTC at build time: install "
            "nvidia-cuda-nvrtc-cu12 in the build environment (pip's isolated build does), point "
            "$GPUCONV_NVRTC at libnvrtc.so, or set GPUCONV_AOT=0 to build without binaries (each kernel file "
            "is then compiled on its first use on a GPU)")
    nvrtc = Nvrtc(library)
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    headers = sorted(source_dir.glob("*.cuh"))
    options = (*NVRTC_OPTIONS, f"-I{source_dir}")
    jobs = []
    manifest = {}
    for cu_file in sorted(source_dir.glob("*.cu")):
        program = with_defines(cu_file.name, cu_file.read_text(), None)
        binaries = {}
        for arch in (*CUBIN_ARCHITECTURES, PTX_ARCHITECTURE):
            binaries[arch] = f"{cu_file.stem}.{arch}.{'cubin' if arch.startswith('sm_') else 'ptx'}"
            jobs.append((program, cu_file.name, arch, out_dir / binaries[arch]))
        manifest[cu_file.name] = {"hash": program_hash(program, headers), "binaries": binaries}

    def build(job) -> None:
        program, name, arch, path = job
        binary = nvrtc.compile(program, name, arch, options)
        path.write_bytes(binary.rstrip(b"\0") if arch.startswith("compute_") else binary)

    log(f"gpuconv: compiling {len(manifest)} kernel files for {', '.join(CUBIN_ARCHITECTURES)} and "
        f"{PTX_ARCHITECTURE} with NVRTC {'.'.join(map(str, nvrtc.version()))} ({library})")
    # NVRTC compiles independent programs concurrently, and ctypes releases the GIL during the call.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(build, jobs))
    document = {"nvrtc": ".".join(map(str, nvrtc.version())), "options": list(NVRTC_OPTIONS), "kernels": manifest}
    (out_dir / MANIFEST).write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    return document
