"""Where the cupy loader gets a compiled kernel file: shipped in the wheel, cached, or compiled now.

Order, for one ``kernels/*.cu`` file, its ``#define`` values and the device's compute capability:

1. the wheel's ``gpuconv/_kernels/bin/`` (built by ``setup.py`` for the default defines): a CUBIN
   that runs on the device (:func:`gpuconv.backend.aot.pick_binary`), else PTX for a newer GPU;
   used only when ``manifest.json`` records the hash of today's sources;
2. gpuconv's kernel cache (:func:`cache_dir`): a CUBIN compiled earlier on this machine for the
   same program text and architecture (editable installs, other defines, other GPUs), used only
   when the folder and the file are the user's alone and its bytes match the digest recorded next
   to it (:mod:`.cache_trust`; an unusable folder is replaced by a private temporary one with one
   warning, a refused or damaged file is compiled again);
3. else NVRTC compiles a CUBIN for the device's exact architecture now (with one line on stderr
   when that takes over a second: compile_notice.py), and writes it to the cache atomically (a
   temporary file, then a rename; then its digest), so two processes compiling at once each write a
   complete file and the second rename wins.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Callable, Mapping

from .aot import MANIFEST, NVRTC_OPTIONS, arch_of, pick_binary, program_hash, with_defines
from .cache_folder import usable_cache_folder
from .cache_sweep import sweep_stale
from .cache_trust import binary_problem, record_digest, warn_once, write_atomically
from .compile_notice import compile_notice
from .disk_full import is_no_space, no_space
from .kernel_source import kernels_dir, read_source

#: Compiles ``(program_text, name, arch, options) -> bytes``; raises with the compiler's log on error.
Compiler = Callable[[str, str, str, tuple], bytes]


CACHE_ENV = "GPUCONV_KERNEL_CACHE"


def cache_dir() -> Path:
    """``$GPUCONV_KERNEL_CACHE``, else ``$XDG_CACHE_HOME/gpuconv/kernels``, else
    ``~/.cache/gpuconv/kernels``; a private temporary folder when that one is not usable."""
    return usable_cache_folder(CACHE_ENV, "kernels", "compiled CUDA kernels")


def shipped_dir() -> Path:
    """The folder of binaries built into the wheel (absent in a source checkout)."""
    return kernels_dir() / "bin"


@functools.lru_cache(maxsize=None)
def _manifest(folder: Path) -> dict:
    try:
        return json.loads((folder / MANIFEST).read_text())["kernels"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _headers() -> list[Path]:
    return sorted(kernels_dir().glob("*.cuh"))


def compile_options() -> tuple[str, ...]:
    return (*NVRTC_OPTIONS, f"-I{kernels_dir()}")


def binary_path(filename: str, defines: Mapping[str, object] | None, capability: tuple[int, int],
                compiler: Compiler) -> Path:
    """A CUBIN or PTX file of ``filename`` (with ``defines``) that runs on a GPU of ``capability``.

    Raises whatever ``compiler`` raises when the source does not compile.
    """
    name, text = read_source(filename)
    program = with_defines(name, text, defines)
    digest = program_hash(program, _headers())
    if not defines:
        entry = _manifest(shipped_dir()).get(name)
        if entry and entry.get("hash") == digest:
            arch = pick_binary(entry["binaries"], capability)
            if arch is not None:
                return shipped_dir() / entry["binaries"][arch]
    arch = arch_of(capability)
    folder = cache_dir()
    cached = folder / f"{Path(name).stem}-{digest[:24]}.{arch}.cubin"
    problem = binary_problem(cached)
    if problem is None:
        return cached
    if problem != "missing":
        warn_once(f"file:{cached}", f"{problem}; compiling it again instead of loading it")
    with compile_notice(f"compiling {name} for {arch} with NVRTC (once per source version and GPU type; "
                        f"cached in {folder})"):
        binary = compiler(program, name, arch, compile_options())
    sweep_stale(folder)
    try:
        write_atomically(cached, binary)
        record_digest(cached)
    except OSError as exc:
        if is_no_space(exc):
            raise no_space(folder, f"writing the compiled {name}",
                           f"free some space there or point ${CACHE_ENV} at another folder") from exc
        raise
    return cached
