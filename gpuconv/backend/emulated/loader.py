"""Compiles kernels/*.cu for the CPU with g++ and the kernels/emu/ shim, and launches them.

Kernel objects are called exactly like ``cupy.RawKernel``: ``kern(grid, block, args, shared_mem=0)``.
Compiled libraries are cached on disk by content hash in ``$GPUCONV_EMU_CACHE``, else
``$XDG_CACHE_HOME/gpuconv/emu``, else ``~/.cache/gpuconv/emu``; a library is written under a
temporary name and renamed into place, so concurrent test processes never see half a file. A
cached library is loaded only from a folder and file that are the user's alone and when its bytes
match the digest recorded next to it (:mod:`.cache_trust`); otherwise it is compiled again.

Each module has up to three builds, made on first use: the plain one; an instrumented one
(``-fsanitize=thread`` with the shim's own hooks, no libtsan) that launches use in sanitizer mode
(``GPUCONV_EMU_SANITIZE=1`` or :func:`gpuconv.backend.emulated.sanitize`: memcheck, racecheck,
initcheck) and while an access profile is recorded (:func:`gpuconv.backend.emulated.profile`);
and an AddressSanitizer + UBSan one for ``GPUCONV_EMU_SANITIZE=asan``, which loads only in a
process that preloads the ASan runtime (:func:`gpuconv.backend.emulated.run_under_asan`).
Settings read at every launch: ``GPUCONV_EMU_SCHEDULE`` (thread order), ``GPUCONV_EMU_SANITIZE``,
``GPUCONV_EMU_STACK_KB`` (per-thread stack: local memory plus the emulator's frames; default
576 = the GPU's 512 KiB local-memory limit + 64) and ``GPUCONV_EMU_WATCHDOG_S`` (a launch whose
threads neither start, exit nor reach a barrier for that long fails; default 60, 0 turns it off).
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Protocol, Sequence

import numpy as np

from ..aot import with_defines
from ..cache_folder import usable_cache_folder
from ..cache_sweep import sweep_stale, temp_prefix
from ..cache_trust import binary_problem, record_digest, warn_once
from ..compile_notice import compile_notice
from ..disk_full import NoSpaceError, folder_out_of_space, is_no_space, no_space
from .divisions import division_counts
from .guard import guarded
from .unwritten import shadow_address
from ..errors import KernelLaunchError
from ..kernel_source import compile_error, kernels_dir, read_source
from ..signature import Signature, check_arguments, parse_signatures

SCHEDULE_ENV = "GPUCONV_EMU_SCHEDULE"
SANITIZE_ENV = "GPUCONV_EMU_SANITIZE"
STACK_ENV = "GPUCONV_EMU_STACK_KB"
WATCHDOG_ENV = "GPUCONV_EMU_WATCHDOG_S"
_SCHEDULES = {"forward": 0, "reverse": 1, "shuffle": 2}
_SANITIZE, _PROFILE = 1, 2
# -fno-ipa-reference*: GCC could otherwise prove that the opaque fiber switch never touches a
# static __shared__ variable and keep its value in a register across a barrier. -g1: line tables,
# so that crash reports name file:line. -fstack-clash-protection: a frame larger than the fiber
# stack touches its guard page instead of jumping over it.
# -fno-threadsafe-statics: launches run one at a time (_launch_lock), so a function-local static needs
# no atomic guard, which the instrumented build would turn into __tsan_atomic* calls the shim lacks.
_CXX_FLAGS = ("-std=c++20", "-O2", "-g1", "-fPIC", "-fvisibility=hidden", "-Wno-unknown-pragmas",
              "-fno-ipa-reference", "-fno-ipa-reference-addressable", "-fstack-clash-protection",
              "-fno-threadsafe-statics")
# The instrumented build: every load and store calls the shim's __tsan_* hooks (kernels/emu/sanitizer.h),
# and UndefinedBehaviorSanitizer's checks (signed overflow, shifts, division by zero,
# null pointers, ...) trap, without its runtime library; the shim reports the trap (signals.h).
# Alignment and array bounds are left to the shim's own checks, whose messages name the array. Without
# the block merging GCC does at -O2, each trap keeps the line of its own check.
_SANITIZER_FLAGS = ("-DEMU_SANITIZER", "-fsanitize=thread", "--param", "tsan-distinguish-volatile=1",
                    "--param", "tsan-instrument-func-entry-exit=0",
                    "-fsanitize=undefined", "-fsanitize-undefined-trap-on-error", "-fno-sanitize=vptr,alignment,bounds",
                    "-fno-crossjumping", "-fno-tree-tail-merge", "-fno-reorder-blocks")

# The ASan build: AddressSanitizer (heap, stack and global redzones) and UBSan with its runtime, so
# reports carry file:line; the first report ends the process (a child process: run_under_asan).
# -fsanitize=bounds (in undefined) checks local arrays of known size. Linked with the same flags,
# so the library needs libasan and libubsan; libasan must be preloaded to come first.
_ASAN_FLAGS = ("-DEMU_ASAN", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-sanitize=vptr",
               "-fno-omit-frame-pointer")
# Compile flags and extra link flags of each build.
_FLAVORS = {"plain": ((), ()), "sanitizer": (_SANITIZER_FLAGS, ()),
            "asan": (_ASAN_FLAGS, ("-fsanitize=address,undefined",))}

# Poison that the emulated backend's empty() writes; the sanitizer's initcheck reports a kernel
# reading it. Signalling NaNs: no arithmetic produces these bits (kernels/emu/sanitizer.h).
POISON_F32 = np.uint32(0x7FBADBAD).view(np.float32)
POISON_F64 = np.uint64(0x7FF4DEADBADDBADD).view(np.float64)

# `extern __shared__ T name[];` has no CPU equivalent; it becomes a pointer to the launch's
# dynamic shared buffer. The rewrite keeps the line count, so messages keep their line numbers.
_EXTERN_SHARED = re.compile(
    r"extern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s*)?(?P<type>[A-Za-z_][\w:<>, ]*?)\s*"
    r"(?:__align__\s*\(\s*\d+\s*\)\s*)?(?P<name>[A-Za-z_]\w*)\s*\[\s*\]\s*;"
)
# `__shared__ T name[N]...;` becomes EMU_SHARED(...) (kernels/emu/keywords.h): registered at run
# time, poisoned per block, counted per kernel, followed by a redzone.
_STATIC_SHARED = re.compile(
    r"(?<![\w#])__shared__\s+(?P<attrs>(?:__align__\s*\(\s*\d+\s*\)\s*)?)(?P<type>[A-Za-z_][\w:<>, ]*?)\s+"
    r"(?P<name>[A-Za-z_]\w*)\s*(?P<dims>(?:\[[^\];]*\]\s*)*);"
)
_PC_TOKEN = re.compile(r"@\{pc:([0-9a-f]+)\}")


class _ArgInfo(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("bytes", ctypes.c_ulonglong), ("name", ctypes.c_char_p),
                ("elem_size", ctypes.c_int), ("is_float", ctypes.c_int), ("written", ctypes.c_void_p)]


class _LaunchConfig(ctypes.Structure):
    _fields_ = [
        ("grid", ctypes.c_uint * 3),
        ("block", ctypes.c_uint * 3),
        ("shared_mem", ctypes.c_ulonglong),
        ("schedule", ctypes.c_int),
        ("seed", ctypes.c_ulonglong),
        ("stack_bytes", ctypes.c_ulonglong),
        ("watchdog_seconds", ctypes.c_double),
        ("flags", ctypes.c_int),
        ("n_args", ctypes.c_int),
        ("args", ctypes.POINTER(_ArgInfo)),
    ]


PROFILE_KINDS = ("global_load", "global_store", "shared_load", "shared_store")
PROFILE_FIELDS = ("requests", "transactions", "ideal", "bytes")


class ProfileSink(Protocol):
    """What :func:`recording` accepts: gets each launch's counters (kind -> field -> count)."""

    def add(self, kernel: str, filename: str, counters: dict[str, dict[str, int]],
            divisions: tuple[int, int]) -> None: ...


_sanitize_override: contextvars.ContextVar[str | None] = contextvars.ContextVar("gpuconv_emu_sanitize", default=None)
_profilers: list[ProfileSink] = []
_profilers_lock = threading.Lock()
# One launch at a time in the process: a launch installs process-wide signal handlers (crash
# reports, watchdog) that refer to its module's state.
_launch_lock = threading.Lock()


def compiler() -> str | None:
    """Path of the C++ compiler the emulator uses ($CXX or g++), or None when there is none."""
    return shutil.which(os.environ.get("CXX", "g++"))


def asan_loaded() -> bool:
    """Whether this process runs with the AddressSanitizer runtime (preloaded)."""
    return hasattr(ctypes.CDLL(None), "__asan_init")


CACHE_ENV = "GPUCONV_EMU_CACHE"


def cache_dir() -> Path:
    """The folder compiled libraries are cached in: ``$GPUCONV_EMU_CACHE`` or the default, or a
    private temporary folder when that one is not usable (:func:`.cache_folder.usable_cache_folder`)."""
    return usable_cache_folder(CACHE_ENV, "emu", "compiled emulator libraries")


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


def sanitize_mode() -> str:
    """The sanitizer emulated launches use now (:func:`sanitizing`, else ``GPUCONV_EMU_SANITIZE``):
    ``""`` (none), ``"hooks"`` (the emulator's own memcheck/racecheck/initcheck) or ``"asan"``."""
    override = _sanitize_override.get()
    if override is not None:
        return override
    text = os.environ.get(SANITIZE_ENV, "0").strip().lower()
    if text == "asan":
        return "asan"
    if text not in ("", "0", "1", "true", "false", "yes", "no", "on", "off"):
        raise ValueError(f"{SANITIZE_ENV} must be 0, 1 or asan, got {text!r}")
    return "hooks" if text in ("1", "true", "yes", "on") else ""


def sanitize_enabled() -> bool:
    """Whether emulated launches run under a sanitizer now (either mode of :func:`sanitize_mode`)."""
    return sanitize_mode() != ""


def instrumented() -> bool:
    """Whether emulated launches run on the instrumented build now (sanitizer mode or a profile)."""
    return sanitize_mode() == "hooks" or bool(_profilers)


@contextlib.contextmanager
def sanitizing(enabled: bool | str = True) -> Iterator[None]:
    """Sets sanitizer mode for emulated launches in this context (overrides ``GPUCONV_EMU_SANITIZE``):
    True (the emulator's own checks), ``"asan"`` or False."""
    if enabled not in (True, False, "asan"):
        raise ValueError(f"sanitizing() takes True, False or 'asan', got {enabled!r}")
    token = _sanitize_override.set("asan" if enabled == "asan" else "hooks" if enabled else "")
    try:
        yield
    finally:
        _sanitize_override.reset(token)


@contextlib.contextmanager
def recording(sink: ProfileSink) -> Iterator[ProfileSink]:
    """Sends the access counters of every emulated launch in this context to ``sink``."""
    with _profilers_lock:
        _profilers.append(sink)
    try:
        yield sink
    finally:
        with _profilers_lock:
            _profilers.remove(sink)


def _number_setting(name: str, default: float, minimum: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= minimum:
        raise ValueError(f"{name} must be a number >= {minimum:g}, got {text!r}")
    return value


def stack_bytes() -> int:
    """Per-thread fiber stack in bytes (``GPUCONV_EMU_STACK_KB``, default 576 KiB)."""
    return int(_number_setting(STACK_ENV, 576, 64) * 1024)


def watchdog_seconds() -> float:
    """Seconds a launch may go without progress (``GPUCONV_EMU_WATCHDOG_S``, default 60; 0: off)."""
    return _number_setting(WATCHDOG_ENV, 60.0, 0.0)


def _dims(value, what: str, kernel: str) -> tuple[int, int, int]:
    dims = (value,) if isinstance(value, (int, np.integer)) else tuple(value)
    if not 1 <= len(dims) <= 3 or not all(isinstance(d, (int, np.integer)) and d >= 0 for d in dims):
        raise TypeError(f"kernel {kernel}: {what} must be a non-negative int or a tuple of 1 to 3 of them, got {value!r}")
    return tuple(int(d) for d in dims) + (1,) * (3 - len(dims))


@dataclass
class _Build:
    """One compiled library of a module: its plain, sanitizer or ASan build."""

    path: Path
    library: ctypes.CDLL


@functools.lru_cache(maxsize=None)
def _array_type(item: type, length: int) -> type:
    """``item * length``, made once: ctypes does not keep array types alive, and each new one is a
    cyclic type object that lingers until the next garbage collection (noise in memory measurements)."""
    return item * length


class EmulatedKernel:
    """One entry point of an emulated module; called like ``cupy.RawKernel``."""

    def __init__(self, module: EmulatedModule, signature: Signature):
        self.module = module
        self.signature = signature
        self.name = signature.name

    def __call__(self, grid, block, args, shared_mem: int = 0,
                 reachable: Sequence[tuple[str, np.ndarray]] = ()) -> None:
        """Launches the kernel. ``reachable``: (name, array) pairs the kernel reaches through
        addresses stored in its array arguments (a table of pointers); the sanitizer checks their
        accesses as it checks an argument's, and the profile counts them. They stay in place (no
        guarded copy: the table holds their addresses)."""
        check_arguments(self.signature, args, (np.ndarray,), "numpy (emulated)")
        config = _LaunchConfig()
        config.grid[:] = _dims(grid, "grid", self.name)
        config.block[:] = _dims(block, "block", self.name)
        if not isinstance(shared_mem, (int, np.integer)) or shared_mem < 0:
            raise TypeError(f"kernel {self.name}: shared_mem must be a non-negative int, got {shared_mem!r}")
        config.shared_mem = int(shared_mem)
        config.schedule, config.seed = current_schedule()
        config.stack_bytes = stack_bytes()
        config.watchdog_seconds = watchdog_seconds()
        profilers = list(_profilers)
        mode = sanitize_mode()
        config.flags = (_SANITIZE if mode == "hooks" else 0) | (_PROFILE if profilers else 0)
        build = self.module.build("sanitizer" if config.flags else "asan" if mode == "asan" else "plain")
        arrays = [(param, arg) for param, arg in zip(self.signature.params, args) if param.pointer]
        # In sanitizer mode the arrays move to guarded copies for the launch (emulated_guard).
        indirect = [array for _, array in reachable]
        place = guarded if mode == "hooks" else _in_place
        with place([arg for _, arg in arrays], pinned=indirect) as addresses:
            address = dict(zip((id(arg) for _, arg in arrays), addresses))
            # Each argument lives in a buffer of its own; the kernel receives pointers to them.
            holders = [
                np.array([address[id(arg)]], dtype=np.uintp) if param.pointer else np.array(arg, dtype=param.dtype)
                for param, arg in zip(self.signature.params, args)
            ]
            pointers = _array_type(ctypes.c_void_p, max(1, len(holders)))(*[h.ctypes.data for h in holders])
            regions = [(address[id(arg)], f"'{param.name}' ({arg.dtype.name}, shape {arg.shape})", arg)
                       for param, arg in arrays]
            regions += [(array.ctypes.data, f"'{name}' ({array.dtype.name}, shape {array.shape}, reached through "
                         "an address stored in an argument)", array) for name, array in reachable]
            extents = _array_type(_ArgInfo, max(1, len(regions)))()
            for info, (base, name, arg) in zip(extents, regions):
                info.base, info.bytes, info.name = base, arg.nbytes, name.encode()
                info.elem_size, info.is_float = arg.dtype.itemsize, int(arg.dtype.kind == "f")
                if mode == "hooks" and arg.dtype.kind in "iu":
                    info.written = shadow_address(arg)
            config.n_args, config.args = len(regions), extents
            launch = getattr(build.library, f"emu_launch__{self.name}")
            with _launch_lock:
                status = launch(ctypes.byref(config), pointers)
                message = build.library.emu_last_error().decode(errors="replace") if status else ""
                counters = self._take_profile(build) if profilers else None
        if counters is not None:
            divisions = self.module.division_counts().get(self.name, (0, 0))
            for sink in profilers:
                sink.add(self.name, self.module.filename, counters, divisions)
        if status:
            raise KernelLaunchError(f"kernel {self.name} ({self.module.filename}): {_locate(message, build.path)}")

    @staticmethod
    def _take_profile(build: _Build) -> dict[str, dict[str, int]]:
        raw = (ctypes.c_ulonglong * (len(PROFILE_KINDS) * len(PROFILE_FIELDS)))()
        build.library.emu_profile_take(raw)
        values = list(raw)
        n = len(PROFILE_FIELDS)
        return {kind: dict(zip(PROFILE_FIELDS, values[i * n:(i + 1) * n])) for i, kind in enumerate(PROFILE_KINDS)}


@contextlib.contextmanager
def _in_place(arrays: list[np.ndarray], pinned: Sequence[np.ndarray] = ()) -> Iterator[list[int]]:
    """The arrays' own addresses (what :func:`guarded` yields outside sanitizer mode; ``pinned``
    stay in place either way)."""
    yield [a.ctypes.data for a in arrays]


def _locate(message: str, library: Path) -> str:
    """Replaces the code-address tokens of a report with file:line from the library's line table."""
    def where(match: re.Match) -> str:
        address = int(match.group(1), 16)
        result = subprocess.run(["addr2line", "-e", str(library), "-i", "-f", "-C", hex(address)],
                                capture_output=True, text=True, check=False)
        lines = result.stdout.splitlines()
        frames = [(lines[i], lines[i + 1]) for i in range(0, len(lines) - 1, 2)]
        emu_dir = str(kernels_dir() / "emu")
        for function, place in frames:  # innermost first: the first frame outside the shim
            if not place.startswith(emu_dir) and not place.startswith("??"):
                file, _, line = place.partition(":")
                return f"{Path(file).name}:{line.split()[0]} (in {function})"
        if frames and not frames[0][1].startswith("??"):
            file, _, line = frames[0][1].partition(":")
            return f"{Path(file).name}:{line.split()[0]} (emulator code, in {frames[0][0]})"
        return f"<code address {address:#x}>"
    return _PC_TOKEN.sub(where, message) if _PC_TOKEN.search(message) else message


class EmulatedModule:
    """A .cu file compiled for the CPU; ``get_function(name)`` returns an :class:`EmulatedKernel`."""

    def __init__(self, filename: str | Path, defines: Mapping[str, object] | None = None, extra_flags: tuple = ()):
        cxx = compiler()
        if cxx is None:
            raise RuntimeError("the emulated backend needs a C++ compiler: none found as $CXX or g++")
        self._cxx = cxx
        name, text = read_source(filename)
        self.filename = name
        self.signatures = parse_signatures(text, name)
        text = _EXTERN_SHARED.sub(r"EMU_EXTERN_SHARED(\g<type>, \g<name>);", text)
        self._text = _STATIC_SHARED.sub(
            lambda m: f"EMU_SHARED({m['attrs'].strip()}, {m['type'].strip()}, {m['name']}, {m['dims']});", text)
        self._defines = defines
        self._extra_flags = tuple(extra_flags)
        self.lock = threading.Lock()  # guards building
        self._builds: dict[bool, _Build] = {}
        self._kernels: dict[str, EmulatedKernel] = {}
        # Compiled now, so that a compile error surfaces at load time: the build the launches of
        # this moment use (the instrumented one inside a profile or sanitizer mode), not both.
        self.build("sanitizer" if instrumented() else "plain")

    def build(self, flavor: str) -> _Build:
        """The ``"plain"``, ``"sanitizer"`` or ``"asan"`` build of this module, compiled (or taken
        from the cache) once."""
        if flavor not in _FLAVORS:
            raise ValueError(f"build flavor must be one of {sorted(_FLAVORS)}, got {flavor!r}")
        if flavor == "asan" and not asan_loaded():
            raise RuntimeError(f"{SANITIZE_ENV}=asan: the ASan build of {self.filename} loads only in a process "
                               "that preloads the AddressSanitizer runtime; run it through "
                               "gpuconv.backend.emulated.run_under_asan(...) or `pytest --emu-asan`")
        with self.lock:
            if flavor not in self._builds:
                self._builds[flavor] = self._load(flavor)
            return self._builds[flavor]

    def _load(self, flavor: str) -> _Build:
        source = with_defines(self.filename, self._text, self._defines)
        source += '\n#line 1 "<emulator launch wrappers>"\n'
        source += "".join(f"EMU_LAUNCHER({n})\n" for n in self.signatures)
        compile_flags, link_flags = _FLAVORS[flavor]
        flags = _CXX_FLAGS + compile_flags + self._extra_flags
        digest = hashlib.sha256(
            "\0".join([source, _header_texts(), _compiler_identity(self._cxx), " ".join(flags + link_flags)]).encode()
        ).hexdigest()[:32]
        suffix = {"plain": "", "sanitizer": "-san", "asan": "-asan"}[flavor]
        folder = cache_dir()
        path = folder / f"{Path(self.filename).stem}{suffix}-{digest}.so"
        problem = binary_problem(path)
        if problem is not None:
            if problem != "missing":
                warn_once(f"file:{path}", f"{problem}; compiling it again instead of loading it")
            kind = "" if flavor == "plain" else f"the {flavor} build of "
            with compile_notice(f"compiling {kind}{self.filename} for the emulated backend with g++ (once per "
                                f"source version; cached in {folder})"):
                self._compile(self._cxx, self.filename, source, flags, link_flags, path)
        library = ctypes.CDLL(str(path), mode=os.RTLD_LOCAL)
        library.emu_last_error.restype = ctypes.c_char_p
        for n in self.signatures:
            launch = getattr(library, f"emu_launch__{n}")
            launch.restype = ctypes.c_int
            launch.argtypes = [ctypes.POINTER(_LaunchConfig), ctypes.c_void_p]
        return _Build(path, library)

    @staticmethod
    def _compile(cxx: str, name: str, source: str, flags: tuple, link_flags: tuple, library_path: Path) -> None:
        """Compiles into a ``.build-*`` folder beside the cache (removed after; one a killed compile
        left behind is removed by a later compile: :mod:`.cache_sweep`), then moves the library
        into place and records its digest."""
        folder = library_path.parent
        sweep_stale(folder)
        doing = f"compiling {name} for the emulated backend"
        hint = f"free some space there or point ${CACHE_ENV} (or $TMPDIR) at another folder"
        try:
            with tempfile.TemporaryDirectory(dir=folder, prefix=temp_prefix("build")) as build:
                src = Path(build) / name
                src.write_text(source)
                obj, out = Path(build) / "module.o", Path(build) / "module.so"
                shim = kernels_dir() / "emu" / "cuda_emu.h"
                # Compiled and linked in two steps: linking with -fsanitize=thread would pull in libtsan,
                # whose hooks the shim provides itself.
                steps = [[cxx, *flags, "-c", "-include", str(shim), f"-I{kernels_dir()}", "-x", "c++", str(src), "-o", str(obj)],
                         [cxx, "-shared", *link_flags, str(obj), "-o", str(out)]]
                for cmd in steps:
                    result = subprocess.run(cmd, capture_output=True, text=True, cwd=build, check=False)
                    if result.returncode != 0:
                        full = folder_out_of_space(result.stderr, folder)
                        if full is not None:
                            raise no_space(full, doing, hint)
                        raise compile_error(name, result.stderr, "g++ (emulated backend)")
                os.replace(out, library_path)
                record_digest(library_path)
        except NoSpaceError:
            raise
        except OSError as exc:
            if is_no_space(exc):
                where = Path(exc.filename).parent if exc.filename else folder
                raise no_space(where, doing, hint) from exc
            raise

    def division_counts(self) -> dict[str, tuple[int, int]]:
        """kernel -> (32-bit, 64-bit) integer divisions by run-time values in its plain build's code
        (a static count: :mod:`gpuconv.backend.emulated.divisions`)."""
        return division_counts(self.build("plain").path, tuple(self.signatures))

    def get_function(self, name: str) -> EmulatedKernel:
        if name not in self._kernels:
            if name not in self.signatures:
                raise AttributeError(f"{self.filename} has no extern \"C\" __global__ kernel named {name!r}; "
                                     f"it has {sorted(self.signatures)}")
            self._kernels[name] = EmulatedKernel(self, self.signatures[name])
        return self._kernels[name]

