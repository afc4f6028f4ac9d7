"""The full scale's code paths, executed on the CPU: every chapter runs top to bottom at BOOK_SCALE=full on
small real-format data files this test writes (MNIST and Fashion-MNIST as IDX files, CIFAR-10 as pickled
python batches), with its sizes and training recipes cut down by a cell injected after the parameters cell —
as papermill injects parameters — and a narrowed ResNet-18 of the same structure.

At these sizes the chapters' claims cannot be judged: the test sets ``BOOK_CLAIMS=record-only``, so a claim
that does not hold is printed as "not judged" and recorded instead of stopping the chapter, and the test
prints the list of such claims. The book itself never sets that variable.
"""

import os
import pickle
import shutil
import struct
from pathlib import Path

import nbclient
import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
SMOKE_SIZES = {  # per chapter: the full scale's sizes cut down to a few seconds each on the CPU
    "01": dict(dims=[2, 16, 32], n_points=16, n_directions=4),  # two dimensions of at least 16 for the tail fit
    "02": dict(n_eval=48, n_geometry=12, n_draws=2, n_lines=4, n_rare=8),
    "03": dict(n_eval=48, n_draws=2, n_probes=2, width_seeds=1, flips=[0, 1, 2], n_flip_fit=32, n_pairs=2),
    "04": dict(n_eval=48, replicas=1, n_noise=1, n_stochastic=3, n_h2=1, n_probes=2, n_pairs=2, top_k=2,
               onnx_batch=4),
    "05": dict(n_eval=48, replicas=1, qat_epochs=1, adaround_steps=5, n_stochastic=3, n_probes=2),
    "06": dict(n_eval=48, qat_epochs=1, replicas=1),
    "07": dict(n_eval=48),
    "08": dict(n_eval=48, replicas=1, n_probes=2, eig_iters=2, n_random=2, n_draws=1, max_flips=2),
}
SMOKE_CODE = {  # per chapter: further cuts that are not in its SIZES (module-level settings of its module)
    "03": """from utils.chapters import ch03_weight_perturbations as _ch3
_ch3.FAMILIES["full"] = {k: _ch3.Family(f.model, f.depth, f.widths[:2]) for k, f in _ch3.FAMILIES["full"].items()}
_ch3.WIDTH_RECIPE = _train.Recipe(epochs=2, lr=1e-3, batch_size=64, target_loss=0.01)
""",
}
INJECTED = """# injected by tests/test_full_scale.py: the full scale's code paths at smoke-test sizes
SCALE = "full"
SIZES["full"].update({sizes!r})
from utils import train as _train
_train.RECIPES.update({{key: _train.Recipe(epochs=1, lr=1e-3, batch_size=64, width=8 if key[0] == "resnet18" else None)
                        for key in list(_train.RECIPES) if key[1] in ("mnist", "fashion-mnist", "cifar10")}})
"""


def _write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file: magic (two zero bytes, 0x08 = uint8, the number of dimensions), big-endian sizes, bytes."""
    path.write_bytes(struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
                     + array.astype(np.uint8).tobytes())


def write_stand_in_data(root: Path, n_train: int = 400, n_test: int = 120) -> None:
    """Real-format MNIST, Fashion-MNIST and CIFAR-10 files made of upsampled 8×8 digits (so there is
    something to learn), in the folders torchvision uses."""
    digits = load_digits()
    images = torch.from_numpy(digits.images[: n_train + n_test] / 16.0).float()[:, None]
    labels = digits.target[: n_train + n_test]
    gray = (F.interpolate(images, size=28, mode="bilinear") * 255).round().clamp(0, 255).byte()[:, 0].numpy()
    color = (F.interpolate(images, size=32, mode="bilinear") * 255).round().clamp(0, 255).byte().repeat(1, 3, 1, 1)
    for folder in ("MNIST", "FashionMNIST"):
        raw = root / "data" / folder / "raw"
        raw.mkdir(parents=True)
        for prefix, part in (("train", slice(0, n_train)), ("t10k", slice(n_train, None))):
            _write_idx(raw / f"{prefix}-images-idx3-ubyte", gray[part])
            _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels[part])
    cifar = root / "data" / "cifar-10-batches-py"
    cifar.mkdir(parents=True)
    flat, per_batch = color.reshape(len(color), -1).numpy(), n_train // 5
    for i in range(5):
        part = slice(i * per_batch, (i + 1) * per_batch)
        batch = {b"data": flat[part], b"labels": labels[part].tolist(), b"batch_label": b"stand-in"}
        (cifar / f"data_batch_{i + 1}").write_bytes(pickle.dumps(batch, protocol=2))
    test = {b"data": flat[n_train:], b"labels": labels[n_train:].tolist(), b"batch_label": b"stand-in"}
    (cifar / "test_batch").write_bytes(pickle.dumps(test, protocol=2))


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory):
    """A copy of the book's chapters and claim records with stand-in data, as the full scale sees it."""
    root = tmp_path_factory.mktemp("full-scale")
    shutil.copy(ROOT / "_toc.yml", root)
    shutil.copytree(ROOT / "chapters", root / "chapters")
    write_stand_in_data(root)
    return root


def with_injected_sizes(path: Path) -> nbformat.NotebookNode:
    """The notebook with a cell after its parameters cell that switches to the full scale at smoke sizes."""
    nb = nbformat.read(path, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    source = INJECTED.format(sizes=SMOKE_SIZES[path.name[:2]]) + SMOKE_CODE.get(path.name[:2], "")
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    return nb


@pytest.mark.parametrize("chapter", [p.name for p in CHAPTERS], ids=[p.stem for p in CHAPTERS])
def test_every_chapter_runs_at_the_full_scale(smoke_root, chapter, monkeypatch, capsys):
    for name, value in {"BOOK_ROOT": str(smoke_root), "BOOK_CLAIMS": "record-only", "TQDM_DISABLE": "1",
                        "BOOK_CLAIMS_DIR": str(smoke_root / "claims"), "BOOK_SEED": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("BOOK_SCALE", raising=False)
    path = smoke_root / "chapters" / chapter
    nb = with_injected_sizes(path)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
                            ).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "scale: full" in text, "the injected cell did not switch the chapter to the full scale"
    if not torch.cuda.is_available():
        assert "expect hours per chapter" in text, "the full scale on a CPU must warn with the expected time"
    not_judged = [line for line in text.splitlines() if line.startswith("✘ not judged here")]
    with capsys.disabled():
        print(f"\n{chapter}: ran at the full scale; {len(not_judged)} claims not judged at smoke sizes"
              + "".join(f"\n    {line[:150]}" for line in not_judged))
    if os.environ.get("BOOK_SMOKE_KEEP"):
        nbformat.write(nb, Path(os.environ["BOOK_SMOKE_KEEP"]) / chapter)
