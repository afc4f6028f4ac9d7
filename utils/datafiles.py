"""Readers for the image data sets' file formats that cannot run code and reject corrupt files clearly.

- MNIST and Fashion-MNIST ship as IDX files: a 4-byte magic number (two zero bytes, a type code, the
  number of dimensions), one big-endian 32-bit size per dimension, then the raw values. :func:`read_idx`
  checks every part of that layout against the file's length before reading.
- CIFAR-10's "python version" is pickled dicts. Unpickling can call any importable function, so
  :func:`read_cifar_batch` uses an unpickler that builds nothing but what the format holds — NumPy arrays,
  dtypes, lists, dicts, strings and numbers — and refuses everything else before it is called.

No checksum is enforced: the book must also read the real-format stand-in files its tests write, and the
format checks plus the restricted unpickler are what make a file harmless. Every failure raises
:class:`DatasetUnavailableError` naming the file and how to get a good copy.
"""

from __future__ import annotations

import io
import math
import os
import pickle
from pathlib import Path

import numpy as np

IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
             0x0E: np.dtype(">f8")}
CIFAR_ALLOWED = {  # the only globals a CIFAR-10 batch refers to (NumPy 1 and NumPy 2 module names)
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),  # arrays, protocol 2
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # arrays, protocol 5
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("_codecs", "encode"),  # bytes written by Python 3 with protocol 2 (text → bytes, nothing else)
}


class DatasetUnavailableError(RuntimeError):
    """A data set's files are missing, corrupt or not in the expected format, and could not be downloaded."""


def _fail(path: Path, why: str) -> DatasetUnavailableError:
    """The error for a data file that fails validation: the file, why, and how to get a good copy."""
    return DatasetUnavailableError(f"{path} is not a valid data file: {why}. Delete it and download the data set "
                            "again (load_dataset(..., download=True)), or copy a good file in its place.")


def read_idx(path: Path, *, dims: int, dtype: np.dtype | type | None = None) -> np.ndarray:
    """The array stored in the IDX file ``path``, which must have ``dims`` dimensions (and hold values of
    ``dtype``, if given: MNIST's images and labels are unsigned bytes)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= 255:
        raise ValueError(f"dims must be an integer in [1, 255], got {dims!r}")
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise _fail(path, f"it cannot be read ({err.strerror})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise _fail(path, "it does not start with an IDX magic number")
    if raw[3] != dims:
        raise _fail(path, f"it holds {raw[3]}-dimensional data, {dims} dimensions were expected")
    header = 4 + 4 * dims
    if len(raw) < header:
        raise _fail(path, "its header is cut short")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    stored = np.dtype(IDX_TYPES[raw[2]])
    if dtype is not None and stored != np.dtype(dtype):
        raise _fail(path, f"it holds {stored} values, {np.dtype(dtype)} were expected")
    expected = header + math.prod(shape) * stored.itemsize  # Python integers: a huge header cannot overflow
    if len(raw) != expected:
        raise _fail(path, f"its header announces shape {shape} ({expected} bytes) but the file has {len(raw)}")
    return np.frombuffer(raw, dtype=stored, offset=header).reshape(shape)


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that refuses every global except NumPy's array reconstruction."""

    def find_class(self, module: str, name: str):
        if (module, name) not in CIFAR_ALLOWED:
            raise pickle.UnpicklingError(f"it asks to build {module}.{name}, which a CIFAR-10 batch never holds")
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` int64 from one CIFAR-10 python batch file."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    try:
        with open(path, "rb") as f:
            entry = _ArraysOnly(io.BytesIO(f.read()), encoding="latin1").load()
    except OSError as err:
        raise _fail(path, f"it cannot be read ({err.strerror})") from None
    except Exception as err:  # any failure of unpickling: corrupt, truncated or not allowed
        raise _fail(path, f"it is not a CIFAR-10 batch ({type(err).__name__}: {err})") from None
    if not isinstance(entry, dict):
        raise _fail(path, f"it holds a {type(entry).__name__}, not a dict")
    entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
    data, labels = entry.get("data"), entry.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise _fail(path, "its 'data' is not a uint8 array of rows of 3,072 pixel values")
    if not isinstance(labels, list) or len(labels) != len(data) or not all(isinstance(v, int) for v in labels):
        raise _fail(path, "its 'labels' are not a list of integers, one per image")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except OverflowError:
        raise _fail(path, "its labels include integers far outside the ten classes 0–9") from None
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise _fail(path, f"its labels run from {y.min()} to {y.max()}, outside the ten classes 0–9")
    return data.reshape(-1, 3, 32, 32), y
