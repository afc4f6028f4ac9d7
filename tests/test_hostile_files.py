"""Hostile files and folders: crafted data files are rejected naming the file; every kind of damaged cache
entry is reported with one warning and repaired; the cache key covers the data's contents; files the book
writes get a normal file's permissions; every folder the book writes has one setting, named when the
folder cannot be written (the permission checks that need a second account are tests/test_shared_machine.py)."""

import os
import re
import struct
import warnings

import numpy as np
import pytest
import torch

from utils import checkpoints, config, data, train
from utils.data import DatasetUnavailableError, load_dataset

RECIPE = train.Recipe(epochs=2, lr=1e-2, batch_size=100)


def write_idx(path, array: np.ndarray, type_code: int = 0x08, shape=None) -> None:
    shape = array.shape if shape is None else shape
    path.write_bytes(bytes([0, 0, type_code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + array.tobytes())


@pytest.fixture
def mnist(tmp_path):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", np.zeros((10, 28, 28), np.uint8))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(10, dtype=np.uint8))
    return raw


CRAFTED = {  # file → (content, what the error must say)
    "int32 labels -1 … -10": ("t10k-labels-idx1-ubyte", lambda p: write_idx(p, -np.arange(1, 11, dtype=">i4"), 0x0C),
                              "holds >i4 values, uint8 were expected"),
    "a header whose size product overflows int64": (
        "train-images-idx3-ubyte", lambda p: write_idx(p, np.zeros(8, np.uint8), shape=(2**32 - 1,) * 3),
        "its header announces shape"),
    "labels past 9": ("train-labels-idx1-ubyte", lambda p: write_idx(p, np.full(10, 12, np.uint8)),
                      "its labels run up to 12"),
    "float images": ("t10k-images-idx3-ubyte", lambda p: write_idx(p, np.zeros((10, 28, 28), ">f4"), 0x0D),
                     "holds >f4 values"),
    "fewer labels than images": ("t10k-labels-idx1-ubyte", lambda p: write_idx(p, np.arange(9, dtype=np.uint8)),
                                 "10 images and 9 labels"),
    "an empty file": ("train-labels-idx1-ubyte", lambda p: p.write_bytes(b""), "does not start with an IDX magic"),
    "a folder in the file's place": ("train-labels-idx1-ubyte", lambda p: (p.unlink(), p.mkdir()), ""),  # missing
}


@pytest.mark.parametrize("name", list(CRAFTED))
def test_a_crafted_mnist_file_is_rejected_naming_the_file(mnist, name):
    file, craft, why = CRAFTED[name]
    craft(mnist / file)
    with pytest.raises(DatasetUnavailableError, match=f"{mnist / file}.*{why}"):
        load_dataset("mnist", download=False)


def test_data_files_are_read_from_the_data_setting(mnist, tmp_path, monkeypatch):
    moved = tmp_path / "elsewhere"
    (tmp_path / "data").rename(moved)
    monkeypatch.setenv("BOOK_DATA", str(moved))
    assert load_dataset("mnist", download=False).x_train.shape == (10, 1, 28, 28)
    assert config.output_dir("data") == moved


def test_an_unwritable_data_folder_names_its_setting_before_downloading(tmp_path, monkeypatch):
    (tmp_path / "blocked").write_text("a file where the data folder should be")
    monkeypatch.setenv("BOOK_DATA", str(tmp_path / "blocked"))
    with pytest.raises(DatasetUnavailableError, match="cannot be written: set BOOK_DATA to a folder you can write"):
        load_dataset("fashion-mnist")


@pytest.mark.parametrize("kind", list(config.OUTPUTS))
def test_every_output_folder_has_one_setting_named_when_it_cannot_be_written(kind, tmp_path, monkeypatch):
    setting = config.OUTPUTS[kind][0]
    monkeypatch.setenv(setting, str(tmp_path / "mine"))
    assert config.output_dir(kind, writable=True) == tmp_path / "mine" and (tmp_path / "mine").is_dir()
    monkeypatch.setenv(setting, "")
    assert config.output_dir(kind) == tmp_path / config.OUTPUTS[kind][1]  # the default, under the root
    (tmp_path / "file").write_text("in the way")
    monkeypatch.setenv(setting, str(tmp_path / "file" / "sub"))
    with pytest.raises(PermissionError, match=f"cannot be written .*set {setting} to a folder you can write"):
        config.output_dir(kind, writable=True)


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_get_a_normal_files_permissions(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        config.write_atomically(tmp_path / "f", b"x")
        model = torch.nn.Linear(2, 2)
        assert checkpoints.save(tmp_path / "c.pt", {"model": "m", "dataset": "d"}, model)
    finally:
        os.umask(previous)
    assert (tmp_path / "f").stat().st_mode & 0o777 == mode and (tmp_path / "c.pt").stat().st_mode & 0o777 == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt", "f"]  # no temporary file left


def entry(root):
    (path,) = (root / "data" / "checkpoints").glob("*.pt")
    return path


def alter(path, change):
    saved = torch.load(path, weights_only=True)
    change(saved)
    torch.save(saved, path)


DAMAGE = {
    "a string accuracy": (lambda s: s.update(test_accuracy="0.9"), "its test accuracy is '0.9'"),
    "a tensor accuracy": (lambda s: s.update(test_accuracy=torch.tensor(0.9)), "its test accuracy is tensor"),
    "a NaN accuracy": (lambda s: s.update(test_accuracy=float("nan")), "its test accuracy is nan"),
    "an accuracy of 5": (lambda s: s.update(test_accuracy=5.0), "not a number in \\[0, 1\\]"),
    "a tensor key": (lambda s: s.update(key=torch.ones(2)), "another configuration"),
    "a tensor checksum": (lambda s: s.update(checksum=torch.ones(2)), "checksum does not match"),
    "a list of tensors": (lambda s: s.update(state_dict=list(s["state_dict"].values())), "do not match the model"),
    "a bad checksum": (lambda s: s.update(checksum="0" * 64), "checksum does not match"),
    "integer weights": (lambda s: s["state_dict"].update({k: v.long() for k, v in s["state_dict"].items()}),
                        "wrong type, shape or dtype"),
}


@pytest.mark.parametrize("name", list(DAMAGE))
def test_a_damaged_cache_entry_is_reported_once_and_repaired(isolated_root, name, monkeypatch):
    change, why = DAMAGE[name]
    calls = []
    real = train.fit
    monkeypatch.setattr(train, "fit", lambda *a, **k: calls.append(1) or real(*a, **k))
    train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
    alter(entry(isolated_root), change)
    with pytest.warns(UserWarning) as record:
        train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
    assert len(record) == 1, [str(w.message) for w in record]
    assert str(entry(isolated_root)) in str(record[0].message) and "replacing them in the cache" in str(
        record[0].message)
    assert re.search(why, str(record[0].message)), str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)  # repaired: loads without a word
    assert len(calls) == 2


def test_the_cache_key_covers_the_datas_contents(isolated_root, monkeypatch):
    calls = []
    real = train.fit
    monkeypatch.setattr(train, "fit", lambda *a, **k: calls.append(1) or real(*a, **k))
    moons = load_dataset("moons")
    shifted = data.Dataset(moons.x_train.flip(0), moons.y_train.flip(0), moons.x_test, moons.y_test, 2, "moons")
    relabelled = data.Dataset(moons.x_train, 1 - moons.y_train, moons.x_test, moons.y_test, 2, "moons")
    assert len({moons.fingerprint, shifted.fingerprint, relabelled.fingerprint}) == 3
    assert moons.fingerprint == load_dataset("moons").fingerprint  # the same contents, the same fingerprint
    models = [train.pretrained("mlp", "moons", recipe=RECIPE, progress=False, data=d)
              for d in (moons, relabelled, moons)]
    assert len(calls) == 2 and len(list((isolated_root / "data" / "checkpoints").glob("*.pt"))) == 2
    x = moons.x_test
    assert (models[1](x).argmax(1) != models[0](x).argmax(1)).float().mean() > 0.5  # not the other data's model
    assert torch.equal(models[0](x), models[2](x))


def test_the_fingerprint_is_computed_once_per_dataset(monkeypatch):
    digits = load_dataset("digits")
    first = digits.fingerprint
    monkeypatch.setattr(digits.x_train, "contiguous", lambda: pytest.fail("hashed twice"), raising=False)
    assert digits.fingerprint == first and len(first) == 64
