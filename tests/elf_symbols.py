"""Reads the function symbols of an ELF file (a CUBIN), with the standard library only, no GPU."""

from __future__ import annotations

import struct

_SHT_SYMTAB = 2
_STT_FUNC = 2


def function_symbols(data: bytes) -> set[str]:
    """Names of the STT_FUNC symbols in a little-endian ELF64 file's symbol table."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a little-endian ELF64 file")
    section_offset, = struct.unpack_from("<Q", data, 0x28)
    entry_size, count, _ = struct.unpack_from("<HHH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, section_offset + i * entry_size) for i in range(count)]
    names = set()
    for _, kind, _, _, offset, size, link, _, _, symbol_size in sections:
        if kind != _SHT_SYMTAB:
            continue
        strings_offset = sections[link][4]
        for start in range(offset, offset + size, symbol_size):
            name_index, info = struct.unpack_from("<IB", data, start)
            if info & 0xF == _STT_FUNC:
                end = data.index(b"\0", strings_offset + name_index)
                names.add(data[strings_offset + name_index:end].decode())
    return names
