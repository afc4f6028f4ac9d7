import pickle
import struct
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from utils import data
from utils.data import DatasetUnavailableError, load_dataset


@pytest.mark.parametrize("name,k", [("moons", 2), ("circles", 2), ("spirals", 2), ("blobs", 3)])
def test_toy_sets_are_2d_in_the_unit_box_and_repeatable(name, k):
    ds = load_dataset(name, n_samples=400)
    assert ds.x_train.shape == (200, 2) and ds.x_test.shape == (200, 2)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    x = torch.cat([ds.x_train, ds.x_test])
    assert x.min() >= 0 and x.max() <= 1
    assert ds.num_classes == k and set(ds.y_train.tolist()) == set(range(k))
    again = load_dataset(name, n_samples=400)
    assert torch.equal(ds.x_train, again.x_train)
    assert not torch.equal(ds.x_train, load_dataset(name, n_samples=400, seed=1).x_train)


def test_digits_are_real_8x8_scans_split_70_30():
    ds = load_dataset("digits")
    assert ds.x_train.shape == (1257, 1, 8, 8) and ds.x_test.shape == (540, 1, 8, 8)
    assert ds.x_train.min() == 0 and ds.x_train.max() == 1
    assert ds.num_classes == 10 and torch.bincount(ds.y_test).min() >= 50
    assert ds.input_shape == (1, 8, 8)


def test_the_book_seed_shifts_the_data(monkeypatch):
    from utils import config

    first = load_dataset("digits")
    config.use(seed=1)
    assert not torch.equal(first.y_test, load_dataset("digits").y_test)
    assert torch.equal(first.y_test, load_dataset("digits", seed=0).y_test)


def test_subset_and_bad_arguments():
    ds = load_dataset("moons")
    small = ds.subset(10, 5)
    assert len(small.y_train) == 10 and len(small.x_test) == 5
    picked = ds.subset(n_test=7, generator=torch.Generator().manual_seed(0))
    assert len(picked.y_test) == 7 and not torch.equal(picked.x_test, ds.x_test[:7])
    with pytest.raises(ValueError, match="n_train must be an integer in \\[1, 1000\\]"):
        ds.subset(0)
    with pytest.raises(ValueError, match="name must be one of .*got 'imagenet'"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="seed must be"):
        load_dataset("moons", seed=-2)
    with pytest.raises(ValueError, match="noise must be a finite number"):
        load_dataset("moons", noise=-0.1)
    with pytest.raises(ValueError, match="n_samples must be an integer"):
        load_dataset("moons", n_samples=2)


def test_a_dataset_checks_its_own_consistency():
    x, y = torch.rand(6, 2), torch.tensor([0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match="y_train must be a 1-D tensor with one label per sample \\(6\\)"):
        data.Dataset(x, y[:3], x, y, 2, "toy")
    with pytest.raises(ValueError, match="y_test must be class indices in \\[0, 2\\)"):
        data.Dataset(x, y, x, y + 1, 2, "toy")
    with pytest.raises(TypeError, match="y_train must hold int64 class labels"):
        data.Dataset(x, y.float(), x, y, 2, "toy")
    with pytest.raises(ValueError, match="num_classes must be an integer in \\[2, inf\\]"):
        data.Dataset(x, y, x, y, 1, "toy")
    with pytest.raises(ValueError, match="x_train and x_test must have inputs of one shape"):
        data.Dataset(x, y, torch.rand(6, 3), y, 2, "toy")


def test_embed_keeps_distances_within_the_plane():
    ds = load_dataset("moons", n_samples=100)
    emb = data.embed(ds, 64, seed=3)
    assert emb.x_train.shape == (50, 64)
    d2 = torch.cdist(ds.x_train, ds.x_train, compute_mode="donot_use_mm_for_euclid_dist")
    d64 = torch.cdist(emb.x_train, emb.x_train, compute_mode="donot_use_mm_for_euclid_dist")
    assert torch.allclose(d2, d64, atol=1e-5)
    with pytest.raises(ValueError, match="dim must be an integer in \\[2, inf\\]"):
        data.embed(ds, 1)
    with pytest.raises(ValueError, match="data must be a Dataset of 2-D points"):
        data.embed(load_dataset("digits"), 8)


def _write_idx(path, array: np.ndarray) -> None:
    """Write an IDX (MNIST) file: magic (0x08 = uint8, number of dims), big-endian sizes, raw bytes."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_like_sets_read_idx_files(tmp_path, name, folder):
    raw = tmp_path / "data" / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 6), ("t10k", 4)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    ds = load_dataset(name, download=False)
    assert ds.x_train.shape == (6, 1, 28, 28) and ds.x_test.shape == (4, 1, 28, 28)
    assert ds.y_test.tolist() == [0, 1, 2, 3] and ds.name == name
    assert ds.x_train.min() >= 0 and ds.x_train.max() <= 1
    expected = torch.from_numpy(np.fromfile(raw / "t10k-images-idx3-ubyte", np.uint8)[16:].reshape(4, 1, 28, 28))
    assert torch.equal(ds.x_test, expected.float() / 255)


CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def write_cifar(tmp_path, protocol=2):
    """Real-format CIFAR-10 batches: pickled dicts with bytes keys, as the originals (Python 2 pickles)."""
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in CIFAR_FILES:
        batch = {b"batch_label": b"x", b"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8),
                 b"labels": [1, 2, 3], b"filenames": [b"a.png", b"b.png", b"c.png"]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    return folder


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_reads_python_batches(tmp_path, protocol):
    write_cifar(tmp_path, protocol)
    ds = load_dataset("cifar10", download=False)
    assert ds.x_train.shape == (15, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert ds.y_train.tolist() == [1, 2, 3] * 5 and ds.num_classes == 10


class Exploit:
    """An object whose unpickling runs a command (what a crafted data file would do)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_crafted_cifar10_pickle_cannot_run_code(tmp_path):
    folder = write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    (folder / "data_batch_1").write_bytes(pickle.dumps({"data": Exploit(marker), "labels": [1]}, protocol=2))
    with pytest.raises(DatasetUnavailableError, match="data_batch_1 is not a valid data file: .*posix.system"):
        load_dataset("cifar10", download=False)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "wrong labels", "not a dict"])
def test_corrupt_cifar10_files_raise_a_clear_error_naming_the_file(tmp_path, damage):
    folder = write_cifar(tmp_path)
    path = folder / "test_batch"
    content = {"truncated": path.read_bytes()[:100], "garbage": b"\x00\x01 not a pickle",
               "wrong labels": pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [1, 12]}),
               "not a dict": pickle.dumps([1, 2, 3])}[damage]
    path.write_bytes(content)
    with pytest.raises(DatasetUnavailableError, match="test_batch is not a valid data file: .*download the data set"):
        load_dataset("cifar10", download=False)


@pytest.mark.parametrize("damage", ["bad magic", "short", "wrong dims"])
def test_corrupt_idx_files_raise_a_clear_error_naming_the_file(tmp_path, damage):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", np.zeros((2, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(2))
    path = raw / "train-images-idx3-ubyte"
    content = path.read_bytes()
    path.write_bytes({"bad magic": b"\x12\x34" + content[2:], "short": content[:-5],
                      "wrong dims": content[:3] + b"\x02" + content[4:]}[damage])
    with pytest.raises(DatasetUnavailableError, match="train-images-idx3-ubyte is not a valid data file"):
        load_dataset("mnist", download=False)


def test_missing_files_without_download_say_what_and_where(tmp_path):
    with pytest.raises(DatasetUnavailableError) as err:
        load_dataset("cifar10", download=False)
    text = str(err.value)
    assert "download=False" in text and "data_batch_1" in text and "cifar-10-python.tar.gz" in text


def test_offline_download_fails_fast_with_one_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    start = time.monotonic()
    with pytest.raises(DatasetUnavailableError) as err:
        load_dataset("mnist")
    assert time.monotonic() - start < 10
    text = str(err.value)
    assert "the download failed" in text and "train-images-idx3-ubyte" in text
    assert err.value.__cause__ is None and err.value.__suppress_context__
