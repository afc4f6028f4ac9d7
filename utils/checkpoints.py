"""A cache of trained weights that cannot poison a model, and that a course can share.

A checkpoint file holds the configuration it was trained for (its *key*, which covers a fingerprint of the
training data), the state dict, a SHA-256 checksum of every tensor's name, dtype, shape and bytes, and the
model's test accuracy when it was saved. :func:`read` verifies all of it — the file loads with
``weights_only=True`` (no code runs), the key matches, the tensor names, shapes and dtypes are exactly the
model's, every value is finite, the checksum matches, the accuracy is a number in [0, 1] — *before*
anything is copied into a model; a file that fails any check is reported with one warning naming the file,
the reason and what happens next (it is replaced when the cache can be written; otherwise the warning says
how to move the cache, ``BOOK_CHECKPOINTS``). :func:`save` writes atomically (temporary file, then rename)
with a normal file's permissions (0666 minus the umask: a cache an instructor filled is readable by the
students), and, when the cache cannot be written, warns once and goes on: the trained model is never lost.
A read-only cache is used as it is.
"""

from __future__ import annotations

import hashlib
import io
import json
import numbers
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import checks, config

_told: set[str] = set()  # entries and folders already reported as not writable in this process (one warning each)


def checksum(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors in name order: each name, dtype, shape and raw bytes."""
    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def file_for(key: Mapping[str, Any], root: str | os.PathLike[str]) -> Path:
    """``root/<model>-<dataset>-<sha256 of the key, 16 hex digits>.pt``; the model and data set names must be
    plain names (:func:`checks.plain_name`), so the file is always inside ``root``."""
    if not isinstance(key, Mapping):
        raise TypeError(f"key must be a mapping (the configuration a model was trained for), got {key!r}")
    model, dataset = (checks.plain_name(f"key[{k!r}]", key.get(k)) for k in ("model", "dataset"))
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a str or os.PathLike, got {type(root).__name__}")
    try:
        text = json.dumps(key, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"key must hold only JSON values (strings, finite numbers, lists, dicts): {err}") from None
    return Path(root) / f"{model}-{dataset}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.pt"


def _accuracy(value: Any) -> float | None:
    """``value`` if it is None or a plain number in [0, 1]; else ValueError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= float(value) <= 1:
        raise ValueError(f"its test accuracy is {value!r}"[:80] + ", not a number in [0, 1]")
    return float(value)


def _verified_state(path: Path, key: Mapping[str, Any], model: nn.Module) -> tuple[dict[str, torch.Tensor], Any]:
    """The state dict stored in ``path`` and the accuracy saved with it, if every check passes; else ValueError."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict) or not {"key", "state_dict", "checksum"} <= set(saved):
        raise ValueError("it is not a checkpoint of this book")
    if not isinstance(saved["key"], dict) or saved["key"] != dict(key):
        raise ValueError("it was saved for another configuration")
    state, expected = saved["state_dict"], model.state_dict()
    if not isinstance(state, dict) or set(state) != set(expected):
        state = state if isinstance(state, dict) else {}
        missing, extra = set(expected) - set(state), set(state) - set(expected)
        raise ValueError(f"its tensors do not match the model (missing {sorted(missing)[:3]}, "
                         f"extra {sorted(map(str, extra))[:3]})")
    for name, t in state.items():
        if not isinstance(t, torch.Tensor) or t.shape != expected[name].shape or t.dtype != expected[name].dtype:
            raise ValueError(f"tensor {name!r} has the wrong type, shape or dtype")
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError(f"tensor {name!r} holds NaN or infinite values")
    if not isinstance(saved["checksum"], str) or saved["checksum"] != checksum(state):
        raise ValueError("its checksum does not match its tensors (the file was altered or damaged)")
    return state, _accuracy(saved.get("test_accuracy"))


def _blocked(path: Path) -> str | None:
    """Why nothing can be written at ``path`` (None if it can): a folder in the way, or a folder without
    write permission."""
    try:
        if os.path.isdir(path) and os.listdir(path):
            return f"a folder that is not empty is in its place: remove {path}"
    except OSError:
        return f"a folder that cannot be read is in its place: remove {path}"
    if not config.can_write(path):
        return config.cannot_write("checkpoints", path.parent)
    return None


def report(path: Path, reason: str) -> bool:
    """Warn (one warning) that the cached weights at ``path`` are unusable for ``reason`` and say what happens next:
    retrained and replaced when the cache can be written, else retrained and left as they are, with what to
    do. Returns whether the entry can be replaced (:func:`save` will then repair it)."""
    path = Path(path)
    blocked = _blocked(path)
    if blocked is None:
        then = "retraining, and replacing them in the cache"
    else:
        _told.add(str(path))
        then = f"retraining on every call, since the cache cannot be repaired: {blocked}"
    warnings.warn(f"cached weights {path} are unusable ({reason}); {then}", stacklevel=3)
    return blocked is None


def read(path: Path, key: Mapping[str, Any], model: nn.Module) -> tuple[dict[str, torch.Tensor], float | None] | None:
    """The verified state dict saved in ``path`` for ``key`` (checked against ``model``'s tensors, which are
    not touched) and the test accuracy stored with it; None if the file is absent, or — with one warning
    naming the file, the reason and what to do (:func:`report`) — unusable. A read-only cache is read as is."""
    path = Path(path)
    checks.model("model", model)
    if not os.path.lexists(path):  # False also when the folder cannot be searched: then nothing is cached
        return None
    try:
        if not path.is_file():
            raise ValueError("it is a folder, not a checkpoint file" if path.is_dir() else "it is not a regular file")
        return _verified_state(path, key, model)
    except PermissionError:
        reason = ("PermissionError: this account may not read it; ask the cache's owner to make it readable, "
                  "e.g. chmod -R a+rX on the folder")
    except Exception as err:  # any unreadable, altered or mismatched file is retrained, never a crash
        reason = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:200]}"
    report(path, reason)
    return None


def save(path: Path, key: Mapping[str, Any], model: nn.Module, *, test_accuracy: float | None = None) -> bool:
    """Write ``model``'s weights (which must be finite) for ``key`` to ``path`` atomically, readable as the
    umask allows (0666 minus the umask); True on success. An empty folder in the file's place is replaced.
    When the cache cannot be written (no permission, a folder in the way, a full disk) it warns — once per
    folder, naming ``BOOK_CHECKPOINTS``, the setting that moves the cache — and returns False, leaving no
    temporary file behind."""
    path = Path(path)
    checks.model("model", model)
    try:
        test_accuracy = _accuracy(test_accuracy)
    except ValueError:
        raise ValueError(f"test_accuracy must be None or a number in [0, 1], got {test_accuracy!r}") from None
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"model holds NaN or infinite values in {bad[:3]}: a checkpoint must hold finite weights")
    payload = {"key": dict(key), "state_dict": state, "checksum": checksum(state), "test_accuracy": test_accuracy}
    file_for(key, path.parent)  # the key must be valid (plain names, JSON values)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if os.path.isdir(path) and not os.listdir(path):
            path.rmdir()  # an empty folder in the way: repaired
        config.write_atomically(path, buffer.getvalue())
        return True
    except OSError as err:
        if not {str(path), str(path.parent)} & _told:
            _told.add(str(path.parent))
            why = _blocked(path) or (f"{type(err).__name__}: {err.strerror or err}; set BOOK_CHECKPOINTS to a "
                                     "folder you can write to keep trained models")
            warnings.warn(f"could not cache the trained weights in {path}, so the trained model is used without "
                          f"caching: {why}", stacklevel=3)
        return False

