import pytest
import torch

from tests.test_weights import exact_hessian, tiny_problem
from utils import curvature, deploy, experiments, quant, rounding, train, weights
from utils.models import SmallCNN


def on_grid_within_one_step(model, other, bits=4):
    """Every weight of ``other`` is a grid point of ``model``'s 4-bit per-channel grid, at most one step away."""
    for w, a in zip(model.parameters(), other.parameters(), strict=True):
        if w.dim() < 2:
            assert torch.equal(a, w)
            continue
        scale, _ = quant.qparams(w.detach(), bits, per_channel=True)
        steps = a.detach() / scale
        assert torch.allclose(steps, steps.round(), atol=1e-4)
        assert ((a - w).abs() < scale + 1e-6).all()


def test_adversarial_and_random_rounding_stay_on_the_grid_and_the_adversary_hurts_more(digits_mlp):
    model, data = digits_mlp
    fit_x, fit_y = data.x_train[:300], data.y_train[:300]
    adv = rounding.adversarial_rounding(model, fit_x, fit_y, 4)
    coin = rounding.random_rounding(model, 4, generator=torch.Generator().manual_seed(0))
    rtn = quant.quantize_weights(model, 4)
    on_grid_within_one_step(model, adv)
    on_grid_within_one_step(model, coin)
    # scored on the test images, which the adversary never saw
    x, y = data.x_test, data.y_test
    loss = {name: train.mean_loss(m, x, y) for name, m in (("adversarial", adv), ("coin", coin), ("nearest", rtn))}
    assert loss["adversarial"] > loss["coin"] + 0.1 and loss["coin"] > loss["nearest"]
    # random up/down rounding: each weight at its lower or upper neighbour with probability ½
    w = model.layers[0].weight.detach()
    scale, _ = quant.qparams(w, 4, per_channel=True)
    up = (coin.layers[0].weight.detach() >= w).float().mean().item()
    assert up == pytest.approx(0.5, abs=0.02)
    noisy = quant.noisy_weights(model, 4, generator=torch.Generator().manual_seed(0))
    n = noisy.layers[0].weight.detach()
    assert ((n - w).abs() <= scale / 2).all()
    assert ((n - w) / scale).var().item() == pytest.approx(1 / 12, rel=0.05)


def test_rounding_error_and_step_sizes_are_directions_of_the_model(digits_mlp):
    model, _ = digits_mlp
    e, steps = rounding.rounding_error(model, 4), rounding.step_sizes(model, 4)
    q = quant.quantize_weights(model, 4)
    assert all(torch.allclose(e[n], d) for n, d in weights.difference(model, q).items())
    assert torch.count_nonzero(steps["layers.0.bias"]) == 0
    assert (e["layers.0.weight"].abs() <= steps["layers.0.weight"] / 2 + 1e-7).all()
    only_first = rounding.rounding_error(model, 4, layers=["layers.0.weight"])
    assert torch.count_nonzero(only_first["layers.2.weight"]) == 0


def test_hessian_diagonal_and_the_rounding_prediction_match_the_exact_hessian():
    model, x, y = tiny_problem()
    h = exact_hessian(model, x, y).diagonal()
    diag, se = curvature.hessian_diagonal(model, x, y, n_probes=3000, generator=torch.Generator().manual_seed(0))
    flat, flat_se = weights.flatten(diag), weights.flatten(se)
    # Hutchinson's diagonal is unbiased: every entry within 5 of its standard errors
    assert ((flat - h).abs() <= 5 * flat_se + 1e-6).all()
    steps = rounding.step_sizes(model, 4)
    exact = (weights.flatten(steps) ** 2 * h).sum().item() / 24
    assert rounding.predicted_increase(diag, steps) == pytest.approx(exact, rel=0.1)
    g = weights.gradient(model, x, y)
    r = experiments.rounding_analysis(model, x, y, 4, diag_h=diag, grad_at_theta=g, n_pairs=64,
                                      generator=torch.Generator().manual_seed(0))
    assert set(r) == {"bits", "predicted", "spread", "noise", "rtn", "rtn_first", "rtn_second"} and r["spread"] > 0
    assert r["predicted"] == pytest.approx(exact, rel=0.1)
    with pytest.raises(ValueError, match="layers names unknown weight tensors"):
        experiments.rounding_analysis(model, x, y, 4, diag_h=diag, grad_at_theta=g, layers=["nope"])


def test_direction_statistics_follow_their_null_laws():
    model, x, y = tiny_problem()
    g = weights.gradient(model, x, y)
    _, vecs = curvature.top_eigenvalues(model, x, y, k=3, iters=200, tol=1e-8, vectors=True,
                                        generator=torch.Generator().manual_seed(0))
    p = vecs.shape[0]
    aligned = curvature.direction_statistics(g, g, vecs)
    assert aligned["cos"] == pytest.approx(1.0) and aligned["k/P"] == pytest.approx(3 / p)
    along_top = weights.unflatten(vecs[:, 0], g)
    assert curvature.direction_statistics(along_top, g, vecs)["top-k share"] == pytest.approx(1.0, abs=1e-4)
    gen = torch.Generator().manual_seed(1)
    zs, shares = [], []
    for _ in range(400):
        d = weights.random_direction(model, normalization="none", generator=gen)
        stats = curvature.direction_statistics(d, g, vecs, variance={n: torch.ones_like(t) for n, t in d.items()})
        zs.append(stats["z"])
        shares.append(stats["top-k share"])
    zs = torch.tensor(zs)
    # z ≈ N(0, 1) for noise with the stated variance: mean within 4 s.e. (0.05), variance within 25%
    assert abs(zs.mean().item()) < 0.2 and zs.var().item() == pytest.approx(1.0, rel=0.25)
    assert torch.tensor(shares).mean().item() == pytest.approx(3 / p, rel=0.2)
    assert stats["share expected for such noise"] == pytest.approx(3 / p, rel=1e-4)


def test_onnx_runtime_int8_model_is_smaller_and_agrees(tmp_path):
    model = SmallCNN(1, 10, 8).eval()
    rows = deploy.onnx_benchmark(model, torch.rand(32, 1, 8, 8), tmp_path, repeats=3, budget_s=0.1, batch=8)
    assert [r["model"] for r in rows] == ["float32", "int8"]
    assert set(rows[0]) == {"model", "file size (kB)", "latency, 1 sample (ms)", "latency, 8 samples (ms)",
                            "agrees with float"}
    assert rows[1]["file size (kB)"] < rows[0]["file size (kB)"] and rows[1]["agrees with float"] >= 0.9


def test_onnx_export_works_for_the_resnet(tmp_path):
    from utils.models import resnet18

    rows = deploy.onnx_benchmark(resnet18(10, width=8).eval(), torch.rand(4, 3, 32, 32), tmp_path, repeats=3,
                                 budget_s=0.05, batch=2, n_agree=4)
    assert rows[1]["agrees with float"] >= 0.5
