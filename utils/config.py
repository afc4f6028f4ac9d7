"""Run-time configuration: the book's scale, the device, seeding and the project's folders.

The scale is read once from the environment variable ``BOOK_SCALE`` (``small``, the default, runs every
chapter on a 2-core CPU; ``full`` uses the real image data sets and wants a GPU).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

SCALES = ("small", "full")


def read_scale(value: str | None = None) -> str:
    """Return the scale named by ``value`` (default: ``$BOOK_SCALE``, else ``"small"``), validated."""
    value = os.environ.get("BOOK_SCALE", "small") if value is None else value
    scale = value.strip().lower()
    if scale not in SCALES:
        raise ValueError(f"BOOK_SCALE must be one of {SCALES}, got {value!r}")
    return scale


SCALE: str = read_scale()


def device() -> torch.device:
    """The device chapters compute on: the first CUDA GPU when there is one, else Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA) and ask torch for deterministic algorithms.

    Returns a fresh CPU ``torch.Generator`` seeded with ``seed`` for code that wants its own stream.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the legacy global stream is what seed-less code uses)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


def project_root() -> Path:
    """The book's root folder: ``$BOOK_ROOT`` if set, else the nearest folder at or above the working
    directory that holds ``_toc.yml``, else the working directory.

    Chapters run with their own folder as working directory; this lets them share ``data/`` at the root.
    """
    if "BOOK_ROOT" in os.environ:
        return Path(os.environ["BOOK_ROOT"]).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    return here


def resolve(path: str | os.PathLike[str]) -> Path:
    """``path`` itself if absolute, else relative to :func:`project_root`."""
    path = Path(path)
    return path if path.is_absolute() else project_root() / path
