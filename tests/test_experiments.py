import pytest
import torch

from utils import config, perturbations, records, setups
from utils.chapters import ch01_decision_boundaries as ch1
from utils.chapters import ch02_input_perturbations as ch2
from utils.chapters import ch07_synthesis as ch7
from utils.data import load_dataset


def test_dimension_sweep_reports_a_growing_ratio():
    rows = ch1.dimension_sweep(load_dataset("moons", n_samples=400), [2, 64], n_points=30, n_directions=8)
    assert [r["dim"] for r in rows] == [2, 64]
    assert rows[1]["median_ratio"] > 3 * rows[0]["median_ratio"]
    assert rows[1]["flip_rate_random"] <= rows[0]["flip_rate_random"]
    with pytest.raises(ValueError, match="dims must be a non-empty list"):
        ch1.dimension_sweep(load_dataset("moons"), [])
    with pytest.raises(ValueError, match="dims\\[1\\] must be an integer in \\[2, inf\\]"):
        ch1.dimension_sweep(load_dataset("moons"), [2, 1])


def test_flip_curves_rows(digits_mlp):
    model, data = digits_mlp
    x = data.x_test
    rows = perturbations.flip_curves(model, x[:100], [0.0, 0.2], norm="linf", n_draws=2, progress=False)
    methods = ("fgsm", "pgd", "sphere", "gaussian", "sign")
    assert [(r["method"], r["eps"]) for r in rows[:5]] == [(m, 0.0) for m in methods]
    assert all(r["flip_rate"] == 0 for r in rows[:5])
    rate = {r["method"]: r["flip_rate"] for r in rows[5:]}
    assert rate["pgd"] >= rate["fgsm"] > rate["sign"]
    with pytest.raises(ValueError, match="eps_values must be a non-empty list"):
        perturbations.flip_curves(model, x, [], progress=False)
    with pytest.raises(ValueError, match="eps_values\\[0\\] must be a finite number"):
        perturbations.flip_curves(model, x, [float("nan")], progress=False)
    with pytest.raises(ValueError, match="methods\\[0\\] must be one of"):
        perturbations.flip_curves(model, x, [0.1], methods=("deepfool",), progress=False)


def test_a_new_input_method_is_one_function_and_one_registration(digits_mlp):
    model, data = digits_mlp

    @perturbations.input_method("test: zero", random=False)
    def zero(model, x, y, eps, *, norm, generator=None):
        return torch.zeros_like(x)

    try:
        rows = perturbations.flip_curves(model, data.x_test[:50], [0.5], methods=("test: zero", "pgd"), progress=False)
        assert rows[0]["flip_rate"] == 0 and rows[1]["flip_rate"] > 0
    finally:
        del perturbations.INPUT_METHODS["test: zero"]


def test_setups_follow_the_scale_and_load_models_with_held_out_fitting_data():
    assert [s.key for s in setups.setups(setups.WEIGHT_SPACE)] == ["mlp on digits", "cnn on digits"]
    config.use("full")
    assert [s.key for s in setups.setups(ch2.SETUPS)] == ["mlp on mnist", "mlp on fashion-mnist", "resnet18 on cifar10"]
    config.use("small")
    trained = setups.load(ch7.SETUPS, n_eval=100, n_fit=50, progress=False)["mlp on digits"]
    assert trained.x.shape == (100, 1, 8, 8) and trained.x_fit.shape == (50, 1, 8, 8)
    test_rows = {tuple(r) for r in trained.data.x_test.flatten(1).tolist()}
    assert not test_rows & {tuple(r) for r in trained.x_fit.flatten(1).tolist()}  # fit and scored apart
    with pytest.raises(ValueError, match="one tuple of Setup per scale"):
        setups.setups("everything")


def test_start_applies_scale_and_seed_and_begins_the_record(capsys):
    settings = setups.start("02_input_perturbations", scale="small", seed=4)
    assert (settings.seed, config.SEED) == (4, 4) and "scale: small · seed: 4 · device:" in capsys.readouterr().out
    assert records.record_path("02_input_perturbations").parent.name == "seed-4"
    sizes = {"small": {"n": 1}, "full": {"n": 2}}
    assert setups.pick(sizes).n == 1
    with pytest.raises(ValueError, match="one entry per scale"):
        setups.pick({"small": {}})
