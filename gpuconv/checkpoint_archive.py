"""Reading a checkpoint's zip archive without trusting it: every member's ``.npy`` header is parsed
(name, dtype, shape, declared size) before any array is read, so that a caller can check them all
first, and an array is then read up to its declared size and no further.

gpuconv.save writes members uncompressed (``np.savez``), so the bytes of an array are in the file
and memory use is bounded by the file's size. A compressed or encrypted member, a member whose
header does not match its size in the zip directory, one that claims more bytes than the file
holds, a duplicate, an array of Python objects or of a structured dtype: each is a ``ValueError``
naming the file and the member.
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass

import numpy as np
from numpy.lib import format as npy

#: Largest ``.npy`` header accepted (NumPy's own default limit).
MAX_HEADER_BYTES = 10_000


class ArchiveError(ValueError):
    """A member of a checkpoint archive that cannot be used; the message names file and member."""


@dataclass(frozen=True)
class Member:
    """One array of the archive, known from its header only.

    Attributes:
        key: the array's name (the member's name without ``.npy``).
        dtype, shape: as its header declares them.
        fortran_order: whether its bytes are in column-major order.
        header_bytes: length of the ``.npy`` header before the array's bytes.
    """

    key: str
    info: zipfile.ZipInfo
    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool
    header_bytes: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _error(path: str, name: str, why: str) -> ArchiveError:
    return ArchiveError(f"{path}: member {name!r} {why}")


def members(path: str, archive: zipfile.ZipFile) -> dict[str, Member]:
    """key -> :class:`Member` of every member of ``archive`` (opened from ``path``), reading headers only."""
    size = os.path.getsize(path)
    found: dict[str, Member] = {}
    for info in archive.infolist():
        name = info.filename
        if not name.endswith(".npy"):
            raise _error(path, name, "is not a .npy array (gpuconv.save writes nothing else)")
        key = name[:-len(".npy")]
        if key in found:
            raise _error(path, name, "appears twice in the archive")
        if info.flag_bits & 0x1:
            raise _error(path, name, "is encrypted")
        if info.compress_type != zipfile.ZIP_STORED:
            raise _error(path, name, "is compressed; gpuconv.save stores arrays uncompressed, and a compressed "
                                     "member could expand far beyond the file's size")
        if info.header_offset + info.file_size > size:
            raise _error(path, name, f"claims {info.file_size} bytes, more than the whole file's {size}")
        found[key] = _header(path, archive, info, key)
    return found


def _header(path: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str) -> Member:
    name = info.filename
    with archive.open(info) as f:
        try:
            version = npy.read_magic(f)
            if version == (1, 0):
                shape, fortran_order, dtype = npy.read_array_header_1_0(f, max_header_size=MAX_HEADER_BYTES)
            elif version == (2, 0):
                shape, fortran_order, dtype = npy.read_array_header_2_0(f, max_header_size=MAX_HEADER_BYTES)
            else:
                raise ValueError(f".npy format version {version} is not one gpuconv.save writes")
        except zipfile.BadZipFile as exc:  # a short member is read whole, its CRC checked here
            raise _error(path, name, f"is unreadable (corrupt or truncated?): {exc}") from None
        except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
            raise _error(path, name, f"has an unreadable .npy header ({exc})") from None
        header_bytes = f.tell()
    if dtype.hasobject:
        raise _error(path, name, "holds Python objects (pickled data); a checkpoint holds numbers only")
    if dtype.fields is not None or dtype.subdtype is not None:
        raise _error(path, name, f"has a structured dtype {dtype}; a checkpoint holds plain arrays")
    member = Member(key, info, dtype, tuple(int(d) for d in shape), bool(fortran_order), header_bytes)
    if info.file_size != header_bytes + member.nbytes:
        raise _error(path, name, f"declares shape {member.shape} of {dtype} ({member.nbytes} bytes) in its header but "
                                 f"holds {info.file_size - header_bytes} bytes of data")
    return member


def read(path: str, archive: zipfile.ZipFile, member: Member) -> np.ndarray:
    """The array of ``member``, reading exactly its declared bytes (a CRC error is an ArchiveError)."""
    flat = np.empty(member.nbytes, dtype=np.uint8)
    view = memoryview(flat)
    try:
        with archive.open(member.info) as f:
            if len(f.read(member.header_bytes)) != member.header_bytes:
                raise EOFError("the header ends early")
            done = 0
            while done < member.nbytes:
                got = f.readinto(view[done:])
                if not got:
                    raise EOFError(f"the data ends after {done} of {member.nbytes} bytes")
                done += got
            if f.read(1):
                raise ValueError("more data than its header declares")
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        raise _error(path, member.info.filename, f"is unreadable (corrupt or truncated?): {exc}") from None
    order = "F" if member.fortran_order else "C"
    return flat.view(member.dtype).reshape(member.shape, order=order)

