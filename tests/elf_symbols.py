"""Reads the function symbols of an ELF file (a CUBIN), with the standard library only, no GPU."""

from __future__ import annotations

import struct

_SHT_SYMTAB = 2
_STT_FUNC = 2
_STB_GLOBAL = 1
_STO_CUDA_ENTRY = 0x10  # st_other bit of a __global__ function (the rest are device subroutines)


def _function_symbol_table(data: bytes) -> list[tuple[str, int, int]]:
    """(name, st_info, st_other) of every STT_FUNC symbol in a little-endian ELF64 file."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a little-endian ELF64 file")
    section_offset, = struct.unpack_from("<Q", data, 0x28)
    entry_size, count, _ = struct.unpack_from("<HHH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, section_offset + i * entry_size) for i in range(count)]
    symbols = []
    for _, kind, _, _, offset, size, link, _, _, symbol_size in sections:
        if kind != _SHT_SYMTAB:
            continue
        strings_offset = sections[link][4]
        for start in range(offset, offset + size, symbol_size):
            name_index, info, other = struct.unpack_from("<IBB", data, start)
            if info & 0xF == _STT_FUNC:
                end = data.index(b"\0", strings_offset + name_index)
                symbols.append((data[strings_offset + name_index:end].decode(), info, other))
    return symbols


def function_symbols(data: bytes) -> set[str]:
    """Names of the STT_FUNC symbols in a little-endian ELF64 file's symbol table."""
    return {name for name, _, _ in _function_symbol_table(data)}


def entry_symbols(data: bytes) -> set[str]:
    """Names of a CUBIN's kernel entry points: global functions marked as CUDA entries (not the
    device subroutines the compiler keeps out of line, such as a slow path of a division)."""
    return {name for name, info, other in _function_symbol_table(data)
            if info >> 4 == _STB_GLOBAL and other & _STO_CUDA_ENTRY}
