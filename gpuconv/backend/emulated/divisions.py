"""Static counts of integer divisions per kernel, read from an emulated module's x86-64 object code.

A GPU has no integer divide instruction: a division or modulo by a value known only at run time
costs a sequence of some 20 instructions (32-bit) or a slow subroutine (64-bit). g++ turns a
division by a constant into a multiplication, as nvcc does, so the ``div``/``idiv`` instructions
left in the plain build's code are the divisions by run-time values. They are counted in the
kernel's function and every function of the module it calls (directly, transitively), outside
the emulator's own code; each instruction counts once, however often it runs (a static count).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path

_FUNCTION = re.compile(r"^[0-9a-f]+ <(?P<name>[^>]+)>:$")
# "  29aa:\tidivl  -0x4c(%rsp)": mnemonic, then operands.
_INSTRUCTION = re.compile(r"^\s+[0-9a-f]+:\s+(?P<mnemonic>\S+)\s*(?P<operands>.*)$")
# A call or jump to another function (its .cold part included); jumps inside one are "<f+0x..>".
_CALL_TARGET = re.compile(r"<(?P<name>[^>+]+)(?:\+0x[0-9a-f]+)?>$")
_REGISTER_64 = re.compile(r"^%r(?:[a-d]x|[sd]i|[sb]p|\d+)$")
# The emulator's own functions (namespace emu, the sanitizer hooks) are not the kernel's code.
_EMULATOR = ("_ZN3emu", "_ZNK3emu", "__tsan_", "emu_")


def _width(mnemonic: str, operands: str) -> int | None:
    """32 or 64 for an integer division instruction, None for anything else."""
    base = mnemonic.rstrip("lqwb")
    if base not in ("div", "idiv") or mnemonic not in (base, base + "l", base + "q"):
        return None
    if mnemonic.endswith("q"):
        return 64
    if mnemonic.endswith("l"):
        return 32
    return 64 if _REGISTER_64.match(operands.strip()) else 32


@functools.lru_cache(maxsize=64)
def division_counts(library: Path, kernels: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """kernel name -> (32-bit, 64-bit) integer division instructions in its code and callees.

    Empty when objdump is not installed.
    """
    objdump = shutil.which("objdump")
    if objdump is None:
        return {}
    listing = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True,
                             check=False).stdout
    own: dict[str, list[int]] = {}
    calls: dict[str, set[str]] = {}
    current = None
    for line in listing.splitlines():
        header = _FUNCTION.match(line)
        if header:
            current = header["name"]
            own[current], calls[current] = [0, 0], set()
            continue
        instruction = _INSTRUCTION.match(line)
        if current is None or instruction is None:
            continue
        mnemonic, operands = instruction["mnemonic"], instruction["operands"]
        width = _width(mnemonic, operands)
        if width is not None:
            own[current][width == 64] += 1
        elif mnemonic in ("call", "jmp") or mnemonic.startswith("j"):
            target = _CALL_TARGET.search(operands)
            if target and target["name"] != current and not target["name"].endswith("@plt"):
                calls[current].add(target["name"])
    result = {}
    for kernel in kernels:
        seen, todo = set(), [kernel]
        while todo:
            name = todo.pop()
            if name in seen or name not in own or name.startswith(_EMULATOR):
                continue
            seen.add(name)
            todo.extend(calls[name])
        result[kernel] = (sum(own[n][0] for n in seen), sum(own[n][1] for n in seen))
    return result
