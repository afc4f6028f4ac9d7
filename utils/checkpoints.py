"""A cache of trained weights that cannot poison a model.

A checkpoint file holds the configuration it was trained for (its *key*), the state dict, a SHA-256
checksum of every tensor's name, dtype, shape and bytes, and the model's test accuracy when it was saved.
:func:`read` verifies all of it — the file loads with ``weights_only=True`` (no code runs), the key
matches, the tensor names, shapes and dtypes are exactly the model's, every value is finite, the checksum
matches — *before* anything is copied into a model; a file that fails any check is reported with a warning
naming the file and the reason. :func:`save` writes atomically (temporary file,
then rename) and, when the cache cannot be written, warns and goes on: the trained model is never lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn


def checksum(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors in name order: each name, dtype, shape and raw bytes."""
    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def file_for(key: Mapping[str, Any], root: Path) -> Path:
    """``root/<model>-<dataset>-<sha256 of the key, 16 hex digits>.pt``."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(root) / f"{key['model']}-{key['dataset']}-{digest}.pt"


def _verified_state(path: Path, key: Mapping[str, Any], model: nn.Module) -> tuple[dict[str, torch.Tensor], Any]:
    """The state dict stored in ``path`` and the accuracy saved with it, if every check passes; else ValueError."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict) or not {"key", "state_dict", "checksum"} <= set(saved):
        raise ValueError("it is not a checkpoint of this book")
    if saved["key"] != dict(key):
        raise ValueError("it was saved for another configuration")
    state, expected = saved["state_dict"], model.state_dict()
    if not isinstance(state, dict) or set(state) != set(expected):
        missing, extra = set(expected) - set(state or {}), set(state or {}) - set(expected)
        raise ValueError(f"its tensors do not match the model (missing {sorted(missing)[:3]}, "
                         f"extra {sorted(extra)[:3]})")
    for name, t in state.items():
        if not isinstance(t, torch.Tensor) or t.shape != expected[name].shape or t.dtype != expected[name].dtype:
            raise ValueError(f"tensor {name!r} has the wrong type, shape or dtype")
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError(f"tensor {name!r} holds NaN or infinite values")
    if saved["checksum"] != checksum(state):
        raise ValueError("its checksum does not match its tensors (the file was altered or damaged)")
    return state, saved.get("test_accuracy")


def read(path: Path, key: Mapping[str, Any], model: nn.Module) -> tuple[dict[str, torch.Tensor], float | None] | None:
    """The verified state dict saved in ``path`` for ``key`` (checked against ``model``'s tensors, which are
    not touched) and the test accuracy stored with it; None if the file is absent, or — with a warning
    naming the file and the reason — unusable."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        if not path.is_file():
            raise ValueError("it is not a regular file")
        return _verified_state(path, key, model)
    except Exception as err:  # any unreadable, altered or mismatched file is retrained, never a crash
        reason = (str(err).strip().splitlines() or [""])[0][:200]
        warnings.warn(f"cached weights {path} are unusable ({type(err).__name__}: {reason}); retraining",
                      stacklevel=3)
        return None


def save(path: Path, key: Mapping[str, Any], model: nn.Module, *, test_accuracy: float | None = None) -> bool:
    """Write ``model``'s weights for ``key`` to ``path`` atomically; True on success. When the cache cannot
    be written (no permission, a folder in the way, a full disk) it warns and returns False, leaving no
    temporary file behind."""
    path = Path(path)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {"key": dict(key), "state_dict": state, "checksum": checksum(state), "test_accuracy": test_accuracy}
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)
        return True
    except OSError as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        warnings.warn(f"could not cache the trained weights in {path} ({type(err).__name__}: {err}); "
                      "the trained model is used without caching", stacklevel=3)
        return False
