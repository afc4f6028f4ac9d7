"""The quantization-readiness report (utils.readiness, utils.sensitivity, utils.allocation, utils.readiness_html,
utils.readiness_inputs): end to end on a tiny model, its estimators against exact answers, the integer program
against brute force, the HTML page self-contained, the command line, the model left untouched, bad inputs
rejected."""

import itertools
import re

import numpy as np
import pytest
import torch
from torch import nn

from tests.test_weights import exact_hessian, tiny_problem
from utils import allocation, readiness, readiness_html, readiness_inputs, rounding, sensitivity, weights
from utils.data import load_dataset
from utils.models import MLP, SmallCNN
from utils.quant import QuantSpec

FAST = dict(n_probes=4, eig_iters=3, n_random=2, n_draws=1, max_flips=3, budgets=(3, 4), progress=False)


class TinyNet(nn.Module):
    """Conv + batch-norm + linear on 8×8 digits: every kind of layer the report must handle, small."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2).flatten(1))


@pytest.fixture(scope="module")
def tiny():
    """A TinyNet trained for a few steps on the digits (batch-norm statistics updated), and 160 test images."""
    data = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    model = TinyNet()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(60):
        idx = torch.randint(len(data.x_train), (128,))
        opt.zero_grad()
        nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
        opt.step()
    return model.eval(), data.x_test[:160], data.y_test[:160]


def state_of(model: nn.Module) -> dict:
    """Everything the report must leave as it found it."""
    return {"modes": [m.training for m in model.modules()],
            "params": {n: (p.detach().clone(), p.requires_grad) for n, p in model.named_parameters()},
            "buffers": {n: b.clone() for n, b in model.named_buffers()}, "rng": torch.get_rng_state()}


def test_the_report_runs_end_to_end_and_leaves_the_model_untouched(tiny, tmp_path):
    model, x, y = tiny
    model.train()  # a model handed over in training mode, partly frozen: all of it must come back as it was
    model.conv.bias.requires_grad_(False)
    before = state_of(model)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True)
    report = readiness.report(model, loader, name="tiny", **FAST)
    after = state_of(model)
    assert after["modes"] == before["modes"] and torch.equal(after["rng"], before["rng"])
    for n, (p, grad) in before["params"].items():
        assert torch.equal(after["params"][n][0], p) and after["params"][n][1] == grad, n
    assert all(torch.equal(after["buffers"][n], b) for n, b in before["buffers"].items())
    model.eval()
    model.conv.bias.requires_grad_(True)
    # the tables: one row per layer, per layer and bit-width, per allocation
    assert list(report.layers.index) == ["conv.weight", "fc.weight"]
    assert len(report.sensitivity) == 2 * 5 and set(report.sensitivity["bits"]) == {8, 6, 4, 3, 2}
    assert report.summary["calibration samples"] == report.summary["evaluation samples"] == 80
    assert set(report.pareto["strategy"]) == {"Hessian-aware", "uniform", "random", "reversed"}
    assert (report.pareto["size (bits/weight)"] <= report.pareto["budget (bits/weight)"] + 1e-9).all()
    assert set(report.tables()) >= {"layers", "sensitivity", "spearman", "pareto", "bit flips"}
    hessian_aware = report.pareto.set_index(["budget (bits/weight)", "strategy"])["predicted"]
    assert hessian_aware[3, "Hessian-aware"] <= hessian_aware[3, "uniform"] + 1e-12  # optimal for its own objective
    path = report.write_html(tmp_path / "report.html")
    assert_self_contained(path.read_text())


def assert_self_contained(page: str) -> None:
    """No script, no external resource, every image a data: URI, every link into the book relative."""
    assert "<script" not in page.lower()
    images = re.findall(r"<img[^>]*src=\"([^\"]*)\"", page)
    assert len(images) == len(readiness_html.PANELS) and all(s.startswith("data:image/png;base64,") for s in images)
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "the page refers to something outside it"
    assert not re.search(r"url\(", page) and "@import" not in page
    links = re.findall(r"href=\"([^\"]*)\"", page)
    assert links and all(re.fullmatch(r"chapters/0[348]_[a-z_]+\.html#[a-z0-9-]+", h) for h in links)


def test_curvature_estimates_match_the_exact_hessian(monkeypatch):
    model, x, y = tiny_problem()
    h = exact_hessian(model, x, y).double()
    layers = sensitivity.quantizable_layers(model)
    grids = {4: QuantSpec.for_weights(4)}
    _, table = sensitivity.layer_curvature(model, x, y, layers, grids, n_probes=3000,
                                           generator=torch.Generator().manual_seed(0))
    theta = weights.parameters_of(model)
    where = np.cumsum([0] + [t.numel() for t in theta.values()])
    span = {n: slice(where[i], where[i + 1]) for i, n in enumerate(theta)}
    steps = weights.flatten(rounding.step_sizes(model, grids[4])).double()
    for _, row in table.iterrows():
        block = span[row["layer"]]
        exact_trace = h.diagonal()[block].sum().item()
        exact_prediction = (steps[block] ** 2 * h.diagonal()[block]).sum().item() / 24
        assert abs(row["trace"] - exact_trace) < 4 * row["trace se"] + 1e-9
        assert abs(row["predicted"] - exact_prediction) < 4 * row["predicted se"] + 1e-12
    for elements in (sensitivity.EIGEN_ELEMENTS, 1):  # all layers at once, and one layer at a time
        monkeypatch.setattr(sensitivity, "EIGEN_ELEMENTS", elements)
        top = sensitivity.layer_top_eigenvalues(model, x, y, layers, iters=500, tol=1e-10,
                                                generator=torch.Generator().manual_seed(1))
        for n in layers:
            eig = torch.linalg.eigvalsh(h[span[n], span[n]])
            assert top[n] == pytest.approx(eig[eig.abs().argmax()].item(), rel=1e-3)


def test_the_second_order_prediction_is_exact_on_a_quadratic_loss():
    """E[L(θ + e)] − L(θ) = ½ Σ Hᵢᵢ E[eᵢ²] = Σ Δᵢ²Hᵢᵢ/24 for L(θ) = gᵀθ + ½θᵀHθ and uniform noise of step Δ:
    rounding.predicted_increase against the mean over 20,000 noise draws."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(12, 12, generator=gen, dtype=torch.float64)
    h, g = a @ a.T, torch.randn(12, generator=gen, dtype=torch.float64)
    steps = 0.1 + torch.rand(12, generator=gen, dtype=torch.float64)
    noise = steps * (torch.rand(20_000, 12, generator=gen, dtype=torch.float64) - 0.5)
    change = noise @ g + 0.5 * ((noise @ h) * noise).sum(1)
    predicted = rounding.predicted_increase({"w": h.diagonal().clone()}, {"w": steps})
    assert abs(change.mean().item() - predicted) < 4 * change.std().item() / 20_000**0.5


def brute_force(costs, sizes, bits, budget, maximize=False, minimum=0.0):
    best = None
    for choice in itertools.product(range(len(bits)), repeat=len(sizes)):
        size = sum(s * bits[c] for s, c in zip(sizes, choice, strict=True))
        if minimum <= size <= budget:
            value = sum(costs[i, c] for i, c in enumerate(choice))
            if best is None or (value > best if maximize else value < best):
                best = value
    return best


@pytest.mark.parametrize("seed", range(5))
def test_the_integer_program_finds_the_brute_force_optimum(seed):
    rng = np.random.default_rng(seed)
    bits = [8, 4, 3, 2]
    sizes = rng.integers(10, 500, 5)
    costs = np.sort(rng.exponential(1.0, (5, 4)), axis=1)  # fewer bits cost more
    budget = float(rng.uniform(2.2, 6.0) * sizes.sum())
    for maximize, minimum in ((False, 0.0), (True, 0.9 * budget)):
        if brute_force(costs, sizes, bits, budget, maximize, minimum) is None:
            continue
        chosen = allocation.allocate(costs, sizes, bits, budget, minimum=minimum, maximize=maximize)
        value = costs[np.arange(5), [bits.index(b) for b in chosen]].sum()
        assert value == pytest.approx(brute_force(costs, sizes, bits, budget, maximize, minimum), abs=1e-9)
        assert minimum <= allocation.size_of(sizes, chosen) <= budget
    drawn = allocation.random_allocation(sizes, bits, budget, minimum=0.8 * budget,
                                         generator=torch.Generator().manual_seed(seed))
    assert 0.8 * budget <= allocation.size_of(sizes, drawn) <= budget


def test_bad_inputs_are_rejected_with_a_message_naming_them(tiny):
    model, x, y = tiny
    fast = {**FAST, "max_images": 40}
    with pytest.raises(ValueError, match="below the smallest allocation"):
        allocation.allocate(np.zeros((2, 2)), [10, 10], [4, 2], 30)
    with pytest.raises(ValueError, match=r"budgets\[0\] must be a finite number in \[2, 8\]"):  # before any work
        readiness.report(model, (x, y), **{**fast, "budgets": (1.5,)})
    with pytest.raises(TypeError, match="budgets must be a list or tuple"):
        readiness.report(model, (x, y), **{**fast, "budgets": 3})
    for option in ("n_draws", "eig_iters", "n_probes"):
        with pytest.raises(ValueError, match=f"{option} must be an integer"):
            readiness.report(model, (x, y), **{**fast, option: 0})
    with pytest.raises(TypeError, match="name must be a string"):
        readiness.report(model, (x, y), **{**fast, "name": 7})
    with pytest.raises(ValueError, match="no Linear or Conv"):
        readiness.report(nn.Sequential(nn.Flatten(), nn.BatchNorm1d(64)), (x, y), **fast)
    with pytest.raises(TypeError, match=r"rnn\.weight_ih_l0 \(GRU\)"):
        sensitivity.quantizable_layers(nn.ModuleDict({"rnn": nn.GRU(4, 4), "fc": nn.Linear(4, 2)}))
    broken = TinyNet()
    with torch.no_grad():
        broken.fc.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"fc\.weight.*NaN"):
        readiness.report(broken, (x, y), **fast)
    with pytest.raises(ValueError, match="shape"):
        readiness.report(model, (x.flatten(1), y), **fast)
    with pytest.raises(ValueError, match=r"outside the model's input range \[0, 1\]"):
        readiness.report(model, (255 * x, y), **fast)
    with pytest.raises(ValueError, match="labels"):
        readiness.report(model, (x, y + 10), **fast)
    with pytest.raises(TypeError, match="pair"):
        readiness.report(model, x, **fast)
    with pytest.raises(ValueError, match="bits"):
        readiness.report(model, (x, y), **{**fast, "bits": (8, 1)})


def test_the_command_line_writes_a_report_and_refuses_bad_files(tmp_path, capsys, monkeypatch):
    torch.manual_seed(0)
    model = SmallCNN(1, 10, 8, width=4, mean=torch.zeros(1, 1, 1), std=torch.ones(1, 1, 1))
    torch.save(model.state_dict(), tmp_path / "cnn.pt")
    out = tmp_path / "report.html"
    args = ["--arch", "cnn", "--weights", str(tmp_path / "cnn.pt"), "--dataset", "digits", "--out", str(out),
            "--n-images", "64", "--probes", "2", "--budgets", "4", "--bits", "8", "4", "2"]
    assert readiness.main(args) == 0
    assert_self_contained(out.read_text())
    torch.save({"model": MLP(3, 4, 3)}, tmp_path / "pickled.pt")  # a whole module: code, not tensors
    assert readiness.main(["--arch", "cnn", "--weights", str(tmp_path / "pickled.pt"), "--dataset", "digits",
                           "--out", str(out)]) == 2
    assert "cannot be read as tensors only" in capsys.readouterr().err
    assert readiness.main(["--arch", "mlp", "--weights", str(tmp_path / "cnn.pt"), "--dataset", "digits",
                           "--out", str(out)]) == 2
    assert "not those of the book's 'mlp'" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)  # paths on the command line are relative to the working directory
    assert readiness.main(["--arch", "cnn", "--weights", "cnn.pt", "--dataset", "digits", "--out", "again.html",
                           "--n-images", "64", "--probes", "2", "--budgets", "4", "--bits", "8", "4", "2"]) == 0
    assert (tmp_path / "again.html").is_file()
    assert readiness.main(["--arch", "cnn", "--weights", "cnn.pt", "--dataset", "digits", "--n-images", "64",
                           "--out", str(tmp_path / "no-such-folder" / "r.html")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_an_image_folder_is_read_safely(tmp_path):
    from PIL import Image

    for i, name in enumerate(("cats", "dogs")):
        (tmp_path / name).mkdir()
        for j in range(3):
            Image.fromarray(np.full((10, 12, 3), 40 * (i + j), dtype=np.uint8)).save(tmp_path / name / f"{j}.png")
    (tmp_path / "dogs" / "link.png").symlink_to(tmp_path / "cats" / "0.png")  # not followed
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")  # not an image suffix: skipped
    x, y, classes = readiness_inputs.image_folder(tmp_path, channels=3)
    assert classes == ["cats", "dogs"] and x.shape == (6, 3, 10, 12) and y.tolist() == [0, 0, 0, 1, 1, 1]
    assert x.min() >= 0 and x.max() <= 1
    x, _, _ = readiness_inputs.image_folder(tmp_path, channels=1, size=8, max_images=4)
    assert x.shape == (4, 1, 8, 8)
    (tmp_path / "cats" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"broken\.png cannot be read"):
        readiness_inputs.image_folder(tmp_path, channels=3)
    (tmp_path / "cats" / "broken.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n")
    with pytest.raises(ValueError, match=r"broken\.png cannot be read \(UnidentifiedImageError"):  # not as EPS
        readiness_inputs.image_folder(tmp_path, channels=3)


def test_hawqs_published_program_is_re_solved_to_its_published_allocations():
    from utils.chapters import ch08_your_own_model as ch8
    from utils.models import resnet18

    ref = ch8.hawq_reference()
    assert ref["source"]["repository"] == "https://github.com/Zhen-Dong/HAWQ" and "MIT" in ref["source"]["license"]
    table = ch8.hawq_table(ref)
    assert len(table) == 6 and (table["layers that differ"] == 0).all()
    assert np.allclose(table["objective, re-solved"], table["objective, HAWQ's"])
    names = {n for n, _ in resnet18(10, width=8).named_parameters()}
    assert all(ch8.book_name(layer) in names for layer in ref["layers"])


def test_torchvision_architectures_are_understood(tmp_path):
    import torchvision

    mobile = torchvision.models.mobilenet_v2(num_classes=3)  # depthwise convolutions, batch norm, a classifier
    layers = sensitivity.quantizable_layers(mobile)
    assert len(layers) == sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in mobile.modules())
    net = torchvision.models.resnet18(num_classes=3)
    torch.save(net.state_dict(), tmp_path / "resnet.pt")
    model = readiness_inputs.build("resnet18", readiness_inputs.load_weights(tmp_path / "resnet.pt"))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():  # the same network, behind ImageNet's input normalization
        mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in readiness_inputs.IMAGENET)
        assert torch.allclose(model(x), net.eval()((x - mean) / std), atol=1e-5)
    with pytest.raises(ValueError, match="one of"):
        readiness_inputs.build("no_such_net", {})


def test_data_come_as_tensors_or_batches_and_calibration_can_be_given(tiny):
    model, x, y = tiny
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    xs, ys = readiness_inputs.labelled_data(loader, max_images=40)
    assert torch.equal(xs, x[:40]) and torch.equal(ys, y[:40])
    report = readiness.report(model, (x[:60], y[:60]), calibration=loader, **FAST)
    assert report.summary["calibration samples"] == len(x) and report.summary["evaluation samples"] == 60
    with pytest.raises(TypeError, match="batch 0"):
        readiness_inputs.labelled_data([x, y, y])
    normalized = readiness.report(model, ((x - 0.5) / 0.2, y), input_range=None, **FAST)  # no range check
    assert normalized.summary["evaluation samples"] == 80


def test_the_module_runs_as_a_command():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "utils.readiness", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "--weights" in result.stdout
