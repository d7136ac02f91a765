"""Reading what a student's process wrote, within limits checked before anything is inflated
(issue 17, G2): an export, or a sandbox's output, is at most a few files of plain data.

* A file must be a regular file with one link (no symlink, no hard link into the grader's files or a
  classmate's) and at most ``MAX_FILE_BYTES``.
* An ``.npz`` is read only if every member is *stored* (``numpy.savez`` stores; a deflated member can
  inflate a thousandfold), its ``.npy`` header parses, its dtype holds no objects, and
  shape × itemsize fits in the bytes actually stored. So the memory a read takes is bounded by the
  size of the file, itself capped, and a notebook's reads together by ``MAX_NOTEBOOK_BYTES``.
"""
from __future__ import annotations

import io
import math
import os
import stat
import zipfile

import numpy as np

MAX_FILE_BYTES = 64 * 2**20  # one export or output (json + npz)
MAX_NOTEBOOK_BYTES = 256 * 2**20  # everything read for one notebook
MAX_MEMBERS = 10_000


class LimitError(ValueError):
    """Data refused by a limit (what was refused and why is in the message)."""


def checked_size(path, cap: int = MAX_FILE_BYTES) -> int:
    """The size of ``path`` if it is a regular file with one link and at most ``cap`` bytes."""
    st = os.lstat(path)
    name = os.path.basename(path)
    if not stat.S_ISREG(st.st_mode):
        raise LimitError(f"{name} is not a regular file")
    if st.st_nlink != 1:
        raise LimitError(f"{name} has {st.st_nlink} hard links")
    if st.st_size > cap:
        raise LimitError(f"{name}: {st.st_size} bytes, over the limit of {cap}")
    return st.st_size


def read_bytes(path, cap: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of ``path`` (checked by ``checked_size``; never more than ``cap`` read)."""
    checked_size(path, cap)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        data = f.read(cap + 1)
    if len(data) > cap:
        raise LimitError(f"{os.path.basename(path)} grew past {cap} bytes while read")
    return data


def _header(f, name: str):
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise LimitError(f"{name}: .npy format {version} not accepted")
    if dtype.hasobject:
        raise LimitError(f"{name}: an object array")
    return shape, fortran, dtype


def load_npz(data: bytes) -> dict:
    """name -> ndarray from the bytes of an ``.npz``, checking every size before reading a member."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as err:
        raise LimitError(f"not an .npz ({err})") from err
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise LimitError(f"{len(infos)} members, over the limit of {MAX_MEMBERS}")
        total = 0
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
                raise LimitError(f"{info.filename}: a compressed member (only stored ones are read)")
            if info.flag_bits & 0x1:
                raise LimitError(f"{info.filename}: encrypted")
            total += info.file_size
        if total > len(data):
            raise LimitError(f"members claim {total} bytes in a file of {len(data)}")
        arrays = {}
        for info in infos:
            name = info.filename.removesuffix(".npy")
            with zf.open(info) as f:
                shape, fortran, dtype = _header(f, info.filename)
                nbytes = math.prod(shape) * dtype.itemsize
                if nbytes > info.file_size - f.tell():
                    raise LimitError(f"{info.filename}: header claims {nbytes} bytes, "
                                     f"{info.file_size - f.tell()} stored")
                flat = np.frombuffer(f.read(nbytes), dtype=dtype, count=math.prod(shape))
            arrays[name] = flat.reshape(shape, order="F" if fortran else "C").copy()
        return arrays


class Budget:
    """Bytes left to read for one notebook (``MAX_NOTEBOOK_BYTES``)."""

    def __init__(self, cap: int = MAX_NOTEBOOK_BYTES):
        self.left = int(cap)

    def take(self, n: int, what: str) -> None:
        if n > self.left:
            raise LimitError(f"{what}: the notebook's read limit ({MAX_NOTEBOOK_BYTES} bytes) is spent")
        self.left -= n
