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


def test_subset_and_bad_arguments():
    ds = load_dataset("moons")
    small = ds.subset(10, 5)
    assert len(small.y_train) == 10 and len(small.x_test) == 5
    with pytest.raises(ValueError, match="n_train must be between 1 and"):
        ds.subset(0)
    with pytest.raises(ValueError, match="unknown data set 'imagenet'; choose one of"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="seed must be"):
        load_dataset("moons", seed=-2)
    with pytest.raises(ValueError, match="noise must be >= 0"):
        load_dataset("moons", noise=-0.1)
    with pytest.raises(ValueError, match="n_samples must be an integer"):
        load_dataset("moons", n_samples=2)


def test_embed_keeps_distances_within_the_plane():
    ds = load_dataset("moons", n_samples=100)
    emb = data.embed(ds, 64, seed=3)
    assert emb.x_train.shape == (50, 64)
    d2 = torch.cdist(ds.x_train, ds.x_train, compute_mode="donot_use_mm_for_euclid_dist")
    d64 = torch.cdist(emb.x_train, emb.x_train, compute_mode="donot_use_mm_for_euclid_dist")
    assert torch.allclose(d2, d64, atol=1e-5)
    with pytest.raises(ValueError, match="dim must be an integer >= 2"):
        data.embed(ds, 1)
    with pytest.raises(ValueError, match="embed needs 2-D points"):
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


def test_cifar10_reads_python_batches(tmp_path):
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8), "labels": [1, 2, 3]}
        (folder / name).write_bytes(pickle.dumps(batch))
    ds = load_dataset("cifar10", download=False)
    assert ds.x_train.shape == (15, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert ds.y_train.tolist() == [1, 2, 3] * 5 and ds.num_classes == 10


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
