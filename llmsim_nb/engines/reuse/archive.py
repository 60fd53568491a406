"""The container of a reuse cache file: an uncompressed ``.npz`` of numeric arrays.

:func:`write_archive` writes arrays with :func:`numpy.savez` atomically;
:func:`read_archive` reads them back as data only: it checks the archive's
members and each member's ``.npy`` header (dtype, dimensions, size) before
it reads the member's data, and never unpickles anything (object arrays are
refused by their dtype). What it finds wrong it raises as :class:`InvalidFile`.
"""

from __future__ import annotations

import math
import os
import secrets
import zipfile
from pathlib import Path

import numpy as np


class InvalidFile(Exception):
    """What is wrong with a file (a reader turns it into a ValueError naming it)."""


def need(condition: bool, problem: str) -> None:
    """Raise :class:`InvalidFile` with ``problem`` unless ``condition``."""
    if not condition:
        raise InvalidFile(problem)


def write_archive(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` (numeric) as an uncompressed ``.npz`` at ``path``.

    The file is written beside its destination and renamed over it, so
    processes sharing a file (sweep workers) never read half a file; the
    last one to write wins. It is created with the umask's mode.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("wb") as f:  # created with the umask's mode
            np.savez(f, allow_pickle=False, **arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_archive(path: str | Path, members: dict[str, tuple[str, int]]) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` at ``path``, read-only.

    ``members`` maps each array's name to its dtype and number of
    dimensions; the archive must hold exactly those, uncompressed. Each
    member's header is checked before its data is read, so nothing bigger
    than the file is read or allocated. Raises :class:`InvalidFile`, or the
    error of a file that cannot be opened or is not a zip archive.
    """
    path = Path(path)
    size = path.stat().st_size
    with zipfile.ZipFile(path) as archive:
        found = sorted(info.filename for info in archive.infolist())
        need(found == sorted(f"{m}.npy" for m in members),
             f"its members are {found}, not {sorted(f'{m}.npy' for m in members)}")
        arrays = {}
        for member, (dtype, ndim) in members.items():
            info = archive.getinfo(f"{member}.npy")
            need(info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 1
                 and info.file_size == info.compress_size <= size,
                 f"member {member} is compressed, encrypted or bigger than the file")
            with archive.open(info) as f:
                version = np.lib.format.read_magic(f)
                need(version in ((1, 0), (2, 0)), f"member {member} has npy version {version}")
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, kind = read_header(f)
                need(kind == np.dtype(dtype) and not fortran and len(shape) == ndim,
                     f"member {member} is a {kind} array of shape {shape}, not a "
                     f"{ndim}-d {np.dtype(dtype)} array")
                nbytes = math.prod(shape) * kind.itemsize
                need(nbytes <= info.file_size, f"member {member} is truncated")
                data = f.read(nbytes + 1)  # to the member's end: zipfile checks its CRC
                need(len(data) == nbytes,
                     f"member {member} holds {len(data)} bytes, its shape {shape} needs {nbytes}")
            arrays[member] = np.frombuffer(data, dtype=kind).reshape(shape)
    return arrays
