"""Sanitizer mode and the memory-access profile of the emulated backend.

``gpuconv.backend.emulated.sanitize()`` runs emulated launches in sanitizer mode (also set by
``GPUCONV_EMU_SANITIZE=1``): out-of-bounds and misaligned accesses, shared-memory races,
uninitialized reads and divergent barriers raise :class:`gpuconv.KernelLaunchError` naming the
check, the CUDA thread and block, the argument or shared array, and the kernel's file:line.

``gpuconv.backend.emulated.profile()`` records, per kernel, what its memory accesses would cost a
GPU: for each warp-level request (one instruction executed by the 32 lanes of a warp) the 32-byte
sectors of global memory it touches and the shared-memory wavefronts it needs (bank conflicts).
Ideal coalescing is 4 sectors per 32-lane float request, 16 per float4 request (a copy of a CUDA
vector type is one access of its width). Each kernel also gets a static count of its 32- and
64-bit integer divisions by run-time values. It is a proxy for speed that needs no GPU; it says
nothing about latency, occupancy or arithmetic::

    import gpuconv.backend.emulated as emulated
    with gpuconv.backend("emulated"), emulated.profile() as table:
        F.max_pool2d(x, 3, 2, 1)
    print(table.to_markdown())
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from .loader import PROFILE_FIELDS, PROFILE_KINDS, SANITIZE_ENV, compiler, recording, sanitizing

__all__ = ["AccessProfile", "KernelAccesses", "asan_runtime", "profile", "run_under_asan", "sanitize"]

# detect_leaks: CPython keeps objects alive at exit. detect_stack_use_after_return: its fake stacks
# would have to follow the emulator's fibers. abort_on_error: a report ends the child at once.
ASAN_OPTIONS = "detect_leaks=0:detect_stack_use_after_return=0:abort_on_error=1:print_summary=1"
UBSAN_OPTIONS = "print_stacktrace=1"


def sanitize(enabled: bool | str = True) -> contextlib.AbstractContextManager[None]:
    """Context manager: emulated launches inside run in sanitizer mode (``enabled=False``: they do
    not; ``"asan"``: on the AddressSanitizer build, in a process from :func:`run_under_asan`)."""
    return sanitizing(enabled)


def asan_runtime() -> Path | None:
    """The AddressSanitizer runtime of the emulator's compiler (``g++ -print-file-name=libasan.so``),
    or None when it has none."""
    cxx = compiler()
    if cxx is None:
        return None
    printed = subprocess.run([cxx, "-print-file-name=libasan.so"], capture_output=True, text=True,
                             check=False).stdout.strip()
    path = Path(printed)
    return path.resolve() if path.is_absolute() and path.exists() else None


def run_under_asan(command: Sequence[str], env: Mapping[str, str] | None = None,
                   **kwargs) -> subprocess.CompletedProcess:
    """Runs ``command`` (e.g. ``[sys.executable, "-m", "pytest", ...]``) in a child process that
    preloads the ASan runtime, with ``GPUCONV_EMU_SANITIZE=asan``: its emulated launches run on the
    modules' AddressSanitizer + UBSan builds. A report (with file:line and the CUDA thread and
    block) goes to the child's stderr and ends it. ``kwargs`` go to :func:`subprocess.run`.

    Raises RuntimeError when the compiler has no ASan runtime.
    """
    runtime = asan_runtime()
    if runtime is None:
        raise RuntimeError(f"the emulator's compiler ({compiler()}) has no AddressSanitizer runtime (libasan.so)")
    child = dict(os.environ if env is None else env)
    child["LD_PRELOAD"] = " ".join(filter(None, [str(runtime), child.get("LD_PRELOAD", "")]))
    child["ASAN_OPTIONS"] = ":".join(filter(None, [ASAN_OPTIONS, child.get("ASAN_OPTIONS", "")]))
    child["UBSAN_OPTIONS"] = ":".join(filter(None, [UBSAN_OPTIONS, child.get("UBSAN_OPTIONS", "")]))
    child[SANITIZE_ENV] = "asan"
    return subprocess.run(list(command), env=child, check=False, **kwargs)


@dataclass
class KernelAccesses:
    """The accumulated access counters of one kernel over its launches.

    ``counters[kind][field]``: kinds ``global_load``, ``global_store``, ``shared_load``,
    ``shared_store``; fields ``requests`` (warp-level requests), ``transactions`` (32-byte sectors
    for global, wavefronts for shared), ``ideal`` (the fewest transactions that could move the
    same distinct bytes) and ``bytes`` (bytes the lanes asked for). ``divisions_32`` and
    ``divisions_64``: integer divisions and modulos by run-time values in the kernel's code, 32-
    and 64-bit, counted statically (each instruction once, however often it runs).
    """

    kernel: str
    filename: str
    launches: int = 0
    divisions_32: int = 0
    divisions_64: int = 0
    counters: dict[str, dict[str, int]] = field(
        default_factory=lambda: {kind: dict.fromkeys(PROFILE_FIELDS, 0) for kind in PROFILE_KINDS})

    def per_request(self, kind: str) -> float:
        """Transactions per request (sectors for global kinds, wavefronts for shared); 0 without requests."""
        c = self.counters[kind]
        return c["transactions"] / c["requests"] if c["requests"] else 0.0

    def ideal_per_request(self, kind: str) -> float:
        c = self.counters[kind]
        return c["ideal"] / c["requests"] if c["requests"] else 0.0

    def efficiency(self, kind: str) -> float:
        """Ideal over actual transactions (1.0: perfectly coalesced / no bank conflicts); 1.0 without requests."""
        c = self.counters[kind]
        return c["ideal"] / c["transactions"] if c["transactions"] else 1.0

    def bank_conflicts(self) -> int:
        """Extra shared-memory wavefronts over the ideal, loads and stores together."""
        return sum(self.counters[k]["transactions"] - self.counters[k]["ideal"] for k in ("shared_load", "shared_store"))


class AccessProfile:
    """Per-kernel access counters collected by :func:`profile`; ``table[kernel_name]`` is a :class:`KernelAccesses`."""

    def __init__(self) -> None:
        self.kernels: dict[str, KernelAccesses] = {}

    def add(self, kernel: str, filename: str, counters: dict[str, dict[str, int]],
            divisions: tuple[int, int] = (0, 0)) -> None:
        """Adds one launch's counters; ``divisions``: the kernel's static (32-bit, 64-bit) division counts."""
        entry = self.kernels.setdefault(kernel, KernelAccesses(kernel, filename))
        entry.launches += 1
        entry.divisions_32, entry.divisions_64 = divisions
        for kind, fields in counters.items():
            for name, value in fields.items():
                entry.counters[kind][name] += value

    def __getitem__(self, kernel: str) -> KernelAccesses:
        if kernel not in self.kernels:
            raise KeyError(f"no launch of kernel {kernel!r} was profiled; profiled: {sorted(self.kernels)}")
        return self.kernels[kernel]

    def __contains__(self, kernel: str) -> bool:
        return kernel in self.kernels

    def __len__(self) -> int:
        return len(self.kernels)

    def to_markdown(self) -> str:
        """One row per kernel: requests, sectors per request (ideal), efficiency, bank conflicts, bytes,
        static integer divisions (32-bit / 64-bit)."""
        header = ("| kernel | file | launches | global load requests | sectors/request (ideal) | load efficiency "
                  "| global store requests | sectors/request (ideal) | store efficiency | shared requests "
                  "| wavefronts/request (ideal) | bank conflicts | MB loaded | MB stored "
                  "| int divisions 32/64-bit (static) |")
        lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
        for k in sorted(self.kernels.values(), key=lambda e: (e.filename, e.kernel)):
            c = k.counters
            shared_requests = c["shared_load"]["requests"] + c["shared_store"]["requests"]
            shared_tx = c["shared_load"]["transactions"] + c["shared_store"]["transactions"]
            shared_ideal = c["shared_load"]["ideal"] + c["shared_store"]["ideal"]
            shared = (f"{shared_tx / shared_requests:.2f} ({shared_ideal / shared_requests:.2f})"
                      if shared_requests else "-")
            lines.append(
                f"| {k.kernel} | {k.filename} | {k.launches} "
                f"| {c['global_load']['requests']} | {_ratio(k, 'global_load')} | {_percent(k, 'global_load')} "
                f"| {c['global_store']['requests']} | {_ratio(k, 'global_store')} | {_percent(k, 'global_store')} "
                f"| {shared_requests} | {shared} | {k.bank_conflicts() if shared_requests else '-'} "
                f"| {c['global_load']['bytes'] / 1e6:.3f} | {c['global_store']['bytes'] / 1e6:.3f} "
                f"| {k.divisions_32} / {k.divisions_64} |")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()


def _ratio(k: KernelAccesses, kind: str) -> str:
    if not k.counters[kind]["requests"]:
        return "-"
    return f"{k.per_request(kind):.2f} ({k.ideal_per_request(kind):.2f})"


def _percent(k: KernelAccesses, kind: str) -> str:
    return f"{100 * k.efficiency(kind):.0f}%" if k.counters[kind]["requests"] else "-"


@contextlib.contextmanager
def profile() -> Iterator[AccessProfile]:
    """Context manager that records the memory-access profile of every emulated launch inside it.

    Yields an :class:`AccessProfile`, filled as kernels run (launches use the module's
    instrumented build; results are unchanged, the launches are slower).
    """
    table = AccessProfile()
    with recording(table):
        yield table
