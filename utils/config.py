"""Run-time configuration: the book's scale and seed, the device, random generators and the project's folders.

The **scale** (``small``: every chapter on a 2-core CPU; ``full``: the real image data sets, for a GPU) and
the **seed** (``BOOK_SEED``, default 0: it shifts every random choice of the book — data splits,
initial weights, training order, noise, directions, attack starts, Hutchinson probes) are read from the
environment when the package is imported, and each chapter may choose them again with :func:`use`
(its parameters cell), without restarting the kernel. ``config.SCALE`` and ``config.SEED`` always hold
the current choice.

Randomness never touches the caller's global random state: functions take a ``generator``, and
:func:`generator` makes one from the book's seed and a key, so that ``generator("flip curves")`` draws
the same numbers in every run with the same seed and different ones with another seed.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import checks

SCALES = ("small", "full")


@dataclass(frozen=True)
class Settings:
    """What a run of the book is: its ``scale`` (one of :data:`SCALES`) and its ``seed`` (≥ 0)."""

    scale: str
    seed: int


def on_colab() -> bool:
    """Whether this kernel runs on Google Colab."""
    return "google.colab" in sys.modules


def default_scale() -> str:
    """``$BOOK_SCALE`` if set, else ``full`` on a Colab GPU runtime and ``small`` everywhere else."""
    if os.environ.get("BOOK_SCALE", "").strip():
        return os.environ["BOOK_SCALE"]
    return "full" if on_colab() and torch.cuda.is_available() else "small"


def read_scale(value: str | None = None) -> str:
    """The scale named by ``value`` (default: :func:`default_scale`), validated."""
    value = default_scale() if value is None else value
    if not isinstance(value, str):
        raise TypeError(f"scale must be a string, one of {SCALES}; got {value!r}")
    return checks.one_of("scale (BOOK_SCALE)", value.strip().lower(), SCALES)


def read_seed(value: int | str | None = None) -> int:
    """The seed given by ``value`` (default: ``$BOOK_SEED``, else 0): a non-negative integer."""
    if value is None:
        value = os.environ.get("BOOK_SEED", "").strip() or 0
    if isinstance(value, str):
        if not value.strip().isdigit():
            raise ValueError(f"seed (BOOK_SEED) must be a non-negative integer, got {value!r}")
        value = int(value)
    return checks.integer("seed (BOOK_SEED)", value, minimum=0)


_current = Settings(scale=read_scale(), seed=read_seed())
_streams: dict[str, torch.Generator] = {}


def use(scale: str | None = None, seed: int | None = None) -> Settings:
    """Choose the scale and seed for everything that follows in this kernel (``None``: from the
    environment, as at import) and return them. Chapters call it from their first cell, so that editing
    the parameters cell and re-running switches the scale without a restart."""
    global _current
    _current = Settings(scale=read_scale(scale), seed=read_seed(seed))
    _streams.clear()
    return _current


def current() -> Settings:
    """The scale and seed in use."""
    return _current


def __getattr__(name: str):
    """``config.SCALE`` and ``config.SEED``: the current choice (see :func:`use`)."""
    if name == "SCALE":
        return _current.scale
    if name == "SEED":
        return _current.seed
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


BATCHES: dict[str, dict[str, int]] = {
    "small": {"inference": 4096, "rays": 8192, "attack": 512, "deepfool": 256, "weights": 2048, "probes": 10,
              "surface": 16},
    "full": {"inference": 512, "rays": 1024, "attack": 256, "deepfool": 64, "weights": 64, "probes": 1,
             "surface": 4},
}
"""How many samples (or probes, or grid points) each kind of computation holds at once, by scale: sums over
batches are exact, so the batch only bounds memory. The full scale's keep a ResNet-18 within a 16-GB GPU
(``benchmarks/full_scale.py`` measures the memory per image): ``inference`` forward passes, ``rays`` points
walked along lines, ``attack`` and ``deepfool`` images attacked, ``weights`` images in a loss, gradient or
Hessian-vector product, ``probes`` Hessian-vector products vectorized together, ``surface`` weight-space grid
points evaluated together."""


def batch(kind: str) -> int:
    """The batch of :data:`BATCHES` for ``kind`` at the current scale (read at every call, so a chapter that
    switches scale gets the matching sizes)."""
    return BATCHES[_current.scale][checks.one_of("kind", kind, tuple(BATCHES["small"]))]


def device() -> torch.device:
    """The device chapters compute on: the first CUDA GPU when there is one, else Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def derived_seed(*key: object, seed: int | None = None) -> int:
    """A 63-bit seed derived from the book's seed (or ``seed``) and ``key``: sha256("seed/key…")."""
    base = _current.seed if seed is None else checks.integer("seed", seed, minimum=0)
    text = "/".join([str(base), *map(str, key)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def generator(*key: object, device: torch.device | str | None = None, seed: int | None = None) -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` (default: the CPU) seeded by :func:`derived_seed` of the
    book's seed and ``key``: the same draws for the same seed and key, independent ones otherwise."""
    gen = torch.Generator(device=checks.device("device", device) if device is not None else "cpu")
    return gen.manual_seed(derived_seed(*key, seed=seed))


def stream(device: torch.device | str | None = None) -> torch.Generator:
    """The book's own random stream on ``device``, for calls that pass no generator: seeded from the book's
    seed when first used (and again after :func:`use`), never the caller's global generator."""
    dev = checks.device("device", device) if device is not None else torch.device("cpu")
    name = str(dev)
    if name not in _streams:
        _streams[name] = generator("default stream", device=dev)
    return _streams[name]


def resolve_generator(value: torch.Generator | None, device: torch.device | str | None = None) -> torch.Generator:
    """``value`` if given (validated), else :func:`stream` on ``device``."""
    return checks.generator("generator", value) or stream(device)


def set_seed(seed: int, *, deterministic: bool = False) -> torch.Generator:
    """Seed Python's, NumPy's and torch's *global* random streams with ``seed`` — a step for a notebook or
    script to take, never taken by library code — and, if ``deterministic``, ask torch for deterministic
    algorithms (slower on a GPU). Returns a fresh CPU generator seeded with ``seed``."""
    seed = checks.integer("seed", seed, minimum=0)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the legacy global stream is what seed-less code uses)
    torch.manual_seed(seed)
    if checks.flag("deterministic", deterministic):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


def project_root() -> Path:
    """The book's root folder: ``$BOOK_ROOT`` if set, else the nearest folder at or above the working
    directory that holds ``_toc.yml``, else the working directory.

    Chapters run with their own folder as working directory; this lets them share ``data/`` at the root.
    """
    if os.environ.get("BOOK_ROOT"):
        return Path(os.environ["BOOK_ROOT"]).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    return here


def resolve(path: str | os.PathLike[str]) -> Path:
    """``path`` itself if absolute, else relative to :func:`project_root`."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    return path if path.is_absolute() else project_root() / path


OUTPUTS = {  # every folder the book writes to: kind → (the setting that moves it, its default under the root)
    "checkpoints": ("BOOK_CHECKPOINTS", "data/checkpoints"), "data": ("BOOK_DATA", "data"),
    "onnx": ("BOOK_ONNX", "data/onnx"), "claims": ("BOOK_CLAIMS_DIR", "data/claims"),
}


def output_dir(kind: str, *, writable: bool = False) -> Path:
    """The folder for ``kind`` (one of :data:`OUTPUTS`): its setting (an environment variable, e.g.
    ``BOOK_CHECKPOINTS``) if set, else its default under :func:`project_root`. With ``writable`` the folder is
    created if needed, and a folder that cannot be written raises a ``PermissionError`` naming the setting."""
    setting, default = OUTPUTS[checks.one_of("kind", kind, tuple(OUTPUTS))]
    folder = resolve(os.environ.get(setting) or default)
    if checks.flag("writable", writable):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not os.access(folder, os.W_OK | os.X_OK):
                raise PermissionError(13, "permission denied")
        except OSError as err:
            raise PermissionError(cannot_write(kind, folder, err)) from None
    return folder


def cannot_write(kind: str, folder: Path, err: OSError | None = None) -> str:
    """The message for a folder of ``kind`` that cannot be written: which folder, why, and the setting that
    moves it (e.g. ``BOOK_CHECKPOINTS``)."""
    setting = OUTPUTS[checks.one_of("kind", kind, tuple(OUTPUTS))][0]
    why = f" ({err.strerror or type(err).__name__})" if err is not None else ""
    return (f"the {kind} folder {folder} cannot be written{why}: set {setting} to a folder you can write, e.g. "
            f"os.environ[{setting!r}] = '/tmp/book-{kind}' before the chapter's first cell, or "
            f"`export {setting}=~/book-{kind}` in the shell")


def can_write(path: str | os.PathLike[str]) -> bool:
    """Whether a file could be created at ``path``: the nearest existing folder on its way is writable."""
    folder = Path(path).parent
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    return os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)


def write_atomically(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, renamed over ``path``: readers
    see the old file or the new one, never half of one. The file gets a normal file's permissions (0666
    minus the umask, so that a group or everyone can read a shared cache), not a temporary file's 0600."""
    path = Path(path)
    for attempt in range(100):
        tmp = path.parent / f".{path.name}.{os.getpid()}.{attempt}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"no free temporary name next to {path}")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def checkpoints_dir() -> Path:
    """Where trained models are cached: ``$BOOK_CHECKPOINTS`` (e.g. a folder on a mounted Google Drive,
    so that Colab runtimes share them, or a course's shared folder), else ``data/checkpoints`` under the
    project root (:func:`output_dir`)."""
    return output_dir("checkpoints")


def progress_options(progress: bool) -> dict:
    """Keywords for a ``tqdm.auto`` bar: off when ``progress`` is false; otherwise left to tqdm, so that the
    ``TQDM_DISABLE=1`` environment variable (set when the book's outputs are executed for committing)
    switches every bar off and no widget state ends up in a notebook."""
    return {} if progress else {"disable": True}


@contextmanager
def full_precision() -> Iterator[None]:
    """Inside (or around a decorated function), float32 matrix products and convolutions on a GPU run in full
    float32 — TF32, which rounds their inputs to 10 mantissa bits, is switched off — so that small loss
    differences are measured, not rounding; the previous settings are restored afterwards."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def warn_if_slow() -> None:
    """Warn, with the expected time, when the full scale is about to run without a GPU."""
    if _current.scale == "full" and device().type == "cpu":
        warnings.warn("the full scale runs on the CPU here: expect hours per chapter instead of about 5 "
                      "minutes on a GPU (on Colab: Runtime → Change runtime type → GPU)", stacklevel=2)
