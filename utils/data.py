"""Data sets of the book, all as in-memory float tensors with inputs in [0, 1].

``small`` scale: 2-D toy problems (``moons``, ``circles``, ``spirals``, ``blobs``) and scikit-learn's 8×8
handwritten ``digits`` (real scans that ship inside the package). ``full`` scale: ``mnist``,
``fashion-mnist`` and ``cifar10``, downloaded by torchvision into ``root`` once and read from there with
the safe readers of :mod:`utils.datafiles`. Images are ``(N, C, H, W)``; toy points are ``(N, 2)``.
Labels are ``int64``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import socket
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from sklearn import datasets as skdata
from sklearn.model_selection import train_test_split

from . import checks, config
from .datafiles import DatasetUnavailableError, read_cifar_batch, read_idx

TOY = ("moons", "circles", "spirals", "blobs")
TORCHVISION = ("mnist", "fashion-mnist", "cifar10")
NAMES = (*TOY, "digits", *TORCHVISION)
DOWNLOAD_TIMEOUT_S = 10.0
__all__ = ["NAMES", "Dataset", "DatasetUnavailableError", "embed", "load_dataset"]


@dataclass(frozen=True)
class Dataset:
    """A train/test split held in memory: inputs in [0, 1], integer labels ``0 … num_classes-1``."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    name: str

    def __post_init__(self) -> None:
        checks.integer("num_classes", self.num_classes, minimum=2)
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            checks.batch(x, y, num_classes=self.num_classes, x_name=f"x_{split}", y_name=f"y_{split}")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(f"x_train and x_test must have inputs of one shape, got {tuple(self.x_train.shape[1:])} "
                             f"and {tuple(self.x_test.shape[1:])}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. ``(2,)`` for toy points or ``(1, 8, 8)`` for digits."""
        return tuple(self.x_train.shape[1:])

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the four tensors (dtype, shape and bytes) and the number of classes, computed once: what
        a cached model trained on this data is filed under (two data sets that share a name and size but
        not their contents get different models)."""
        digest = hashlib.sha256(str(self.num_classes).encode())
        for t in (self.x_train, self.y_train, self.x_test, self.y_test):
            t = t.detach().cpu().contiguous()
            digest.update(f"|{t.dtype}|{tuple(t.shape)}|".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().data)
        return digest.hexdigest()

    def to(self, device: torch.device | str) -> Dataset:
        """The same data on ``device``."""
        device = checks.device("device", device)
        return replace(self, **{f: getattr(self, f).to(device) for f in ("x_train", "y_train", "x_test", "y_test")})

    def subset(self, n_train: int | None = None, n_test: int | None = None, *,
               generator: torch.Generator | None = None) -> Dataset:
        """``n_train`` training and ``n_test`` test examples (``None`` keeps all): the first ones, or a random
        choice drawn with ``generator``."""
        parts, generator = {}, checks.generator("generator", generator)
        for split, n in (("train", n_train), ("test", n_test)):
            if n is None:
                continue
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            n = checks.integer(f"n_{split}", n, minimum=1, maximum=len(y))
            idx = torch.arange(n) if generator is None else torch.randperm(len(y), generator=generator)[:n]
            parts |= {f"x_{split}": x[idx.to(x.device)], f"y_{split}": y[idx.to(y.device)]}
        return replace(self, **parts)


def load_dataset(
    name: str,
    *,
    root: str | Path | None = None,
    download: bool = True,
    seed: int | None = None,
    n_samples: int = 2000,
    noise: float | None = None,
) -> Dataset:
    """Load the data set ``name`` (one of :data:`NAMES`).

    ``seed`` (default: the book's seed, :data:`config.SEED`) draws the toy points and the digits
    train/test split (70/30, stratified); the torchvision data sets use their official split.
    ``n_samples`` (toy sets only) is split half/half into train and test, and ``noise`` overrides the toy
    set's default noise level. Downloaded files go to ``root`` (default: ``$BOOK_DATA``, else ``data`` under
    the book's root folder; a relative ``root`` is taken from the book's root folder). Raises
    :class:`DatasetUnavailableError` when files are missing and cannot be downloaded (a folder that cannot be
    written says which setting moves it), or are corrupt (naming the file).
    """
    checks.one_of("name", name, NAMES)
    seed = config.SEED if seed is None else checks.integer("seed", seed, minimum=0)
    if name in TOY:
        return _toy(name, seed=seed, n_samples=n_samples, noise=noise)
    if name == "digits":
        return _digits(seed)
    root = config.output_dir("data") if root is None else config.resolve(root)
    download = checks.flag("download", download)
    if name == "cifar10":
        return _cifar10(root, download)
    return _mnist_like(name, root, download)


def _to_unit_box(x: np.ndarray, pad: float = 0.05) -> np.ndarray:
    """Affine map of each coordinate onto [pad, 1 - pad]: x' = pad + (1 - 2 pad)(x - min)/(max - min)."""
    lo, hi = x.min(axis=0), x.max(axis=0)
    return pad + (1 - 2 * pad) * (x - lo) / (hi - lo)


def _spirals(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals: r = t, angle t for t ~ U(π/2, 3π); the second class is rotated by π."""
    y = rng.integers(0, 2, n)
    t = rng.uniform(np.pi / 2, 3 * np.pi, n)
    x = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) * np.where(y == 0, 1, -1)[:, None]
    return x + noise * rng.standard_normal(x.shape), y


def _toy(name: str, *, seed: int, n_samples: int, noise: float | None) -> Dataset:
    """Generate a 2-D toy problem, scaled into the unit square and split half/half."""
    n_samples = checks.integer("n_samples", n_samples, minimum=4)
    defaults = {"moons": 0.15, "circles": 0.08, "spirals": 0.5, "blobs": 1.5}
    noise = defaults[name] if noise is None else checks.non_negative("noise", noise)
    rng = np.random.default_rng(seed)
    if name == "moons":
        x, y = skdata.make_moons(n_samples, noise=noise, random_state=seed)
    elif name == "circles":
        x, y = skdata.make_circles(n_samples, noise=noise, factor=0.5, random_state=seed)
    elif name == "spirals":
        x, y = _spirals(n_samples, noise, rng)
    else:
        x, y = skdata.make_blobs(n_samples, centers=3, cluster_std=noise, random_state=seed)
    x = torch.tensor(_to_unit_box(x), dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.int64)
    half = n_samples // 2
    return Dataset(x[:half], y[:half], x[half:], y[half:], int(y.max()) + 1, name)


def _digits(seed: int) -> Dataset:
    """scikit-learn's 1,797 8×8 digit scans (grey levels 0–16, scaled to [0, 1]), split 70/30 stratified."""
    bunch = skdata.load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, bunch.target, test_size=0.3, random_state=seed % 2**32, stratify=bunch.target
    )
    x_tr, x_te = torch.from_numpy(x_tr), torch.from_numpy(x_te)
    return Dataset(x_tr, torch.from_numpy(y_tr).long(), x_te, torch.from_numpy(y_te).long(), 10, "digits")


def _unavailable(name: str, folder: Path, missing: list[str], urls: list[str], why: str) -> DatasetUnavailableError:
    """The error raised when files of ``name`` are missing: what is missing, where it goes, how to get it."""
    listing = "\n".join(f"  - {folder / m}" for m in missing)
    sources = "\n".join(f"  - {u}" for u in urls)
    return DatasetUnavailableError(
        f"data set {name!r} is not available: {why}.\nMissing files:\n{listing}\n"
        f"Download them (on a machine with internet access) from\n{sources}\n"
        f"and place them, unpacked, in {folder}; or run load_dataset({name!r}, download=True) where the "
        "internet is reachable (for instance on Colab)."
    )


@contextlib.contextmanager
def _bounded_download():
    """Limit every socket operation to DOWNLOAD_TIMEOUT_S seconds and keep torchvision's chatter quiet."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        socket.setdefaulttimeout(previous)


def _fetch(name: str, folder: Path, expected: list[str], urls: list[str], download: bool, get) -> None:
    """Make sure every file of ``expected`` is in ``folder``, calling ``get()`` to download them if allowed."""
    missing = [f for f in expected if not (folder / f).is_file()]
    if not missing:
        return
    if not download:
        raise _unavailable(name, folder, missing, urls, "the files are not on disk and download=False")
    if not config.can_write(folder / "x"):
        raise _unavailable(name, folder, missing, urls, config.cannot_write("data", folder))
    try:
        with _bounded_download():
            get()
    except Exception as err:  # every network or archive failure becomes one clear error
        raise _unavailable(name, folder, missing, urls, f"the download failed ({type(err).__name__}: {err})") from None
    missing = [f for f in expected if not (folder / f).is_file()]
    if missing:
        raise _unavailable(name, folder, missing, urls, "the download did not produce every file")


def _mnist_like(name: str, root: Path, download: bool) -> Dataset:
    """MNIST or Fashion-MNIST from the IDX files in ``root/<MNIST|FashionMNIST>/raw``."""
    from torchvision import datasets as tv

    cls = tv.MNIST if name == "mnist" else tv.FashionMNIST
    folder = root / cls.__name__ / "raw"
    expected = [Path(url).stem for url, _ in cls.resources]
    urls = [f"{cls.mirrors[0]}{url}" for url, _ in cls.resources]
    _fetch(name, folder, expected, urls, download, lambda: cls(str(root), train=True, download=True))
    parts = []
    for prefix in ("train", "t10k"):
        image_file, label_file = folder / f"{prefix}-images-idx3-ubyte", folder / f"{prefix}-labels-idx1-ubyte"
        images, labels = read_idx(image_file, dims=3, dtype=np.uint8), read_idx(label_file, dims=1, dtype=np.uint8)
        if len(labels) and labels.max() > 9:
            raise DatasetUnavailableError(f"{label_file} is not a valid data file: its labels run up to "
                                          f"{labels.max()}, outside the ten classes 0–9; download it again")
        if len(images) != len(labels):
            raise DatasetUnavailableError(f"{image_file} and {label_file} do not match: {len(images)} images and "
                                          f"{len(labels)} labels; download them again")
        parts += [torch.from_numpy(images.copy()).float()[:, None] / 255.0, torch.from_numpy(labels.astype(np.int64))]
    return Dataset(*parts, num_classes=10, name=name)


def _cifar10(root: Path, download: bool) -> Dataset:
    """CIFAR-10 from the python batches in ``root/cifar-10-batches-py``."""
    from torchvision import datasets as tv

    folder = root / tv.CIFAR10.base_folder
    train_files = [n for n, _ in tv.CIFAR10.train_list]
    test_files = [n for n, _ in tv.CIFAR10.test_list]
    _fetch("cifar10", folder, train_files + test_files, [tv.CIFAR10.url], download,
           lambda: tv.CIFAR10(str(root), train=True, download=True))
    parts = []
    for files in (train_files, test_files):
        batches = [read_cifar_batch(folder / f) for f in files]
        parts += [torch.from_numpy(np.concatenate([x for x, _ in batches])).float() / 255.0,
                  torch.from_numpy(np.concatenate([y for _, y in batches]))]
    return Dataset(*parts, num_classes=10, name="cifar10")


def embed(data: Dataset, dim: int, *, seed: int | None = None) -> Dataset:
    """The 2-D toy set ``data`` placed on a random plane of ℝ^dim: x ↦ Q(x − ½·1), with Q ∈ ℝ^{dim×2} having
    orthonormal columns (QR of a Gaussian matrix drawn from ``seed``, default the book's seed). Distances
    within the plane are preserved, so the classification problem is the same in every dimension; the
    points are centred at the origin and no longer confined to [0, 1]."""
    if not isinstance(data, Dataset) or data.input_shape != (2,):
        raise ValueError(f"data must be a Dataset of 2-D points, got {getattr(data, 'input_shape', type(data))}")
    dim = checks.integer("dim", dim, minimum=2)
    gen = config.generator("embed", dim, seed=seed)
    q, _ = torch.linalg.qr(torch.randn(dim, 2, generator=gen))
    return replace(data, x_train=(data.x_train - 0.5) @ q.T, x_test=(data.x_test - 0.5) @ q.T,
                   name=f"{data.name} in R^{dim}")
