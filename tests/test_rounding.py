import pytest
import torch

from tests.test_weights import exact_hessian, tiny_problem
from utils import curvature, deploy, directions, perturbations, ptq, quant, rounding, train, weights
from utils.chapters import ch04_post_training_quantization as ch4
from utils.models import SmallCNN


def on_grid_within_one_step(model, other, bits=4):
    """Every weight of ``other`` is a grid point of ``model``'s 4-bit per-channel grid, at most one step away."""
    for w, a in zip(model.parameters(), other.parameters(), strict=True):
        if w.dim() < 2:
            assert torch.equal(a, w)
            continue
        scale, _ = quant.qparams(w.detach(), quant.QuantSpec.for_weights(bits))
        steps = a.detach() / scale
        assert torch.allclose(steps, steps.round(), atol=1e-4)
        assert ((a - w).abs() < scale + 1e-6).all()


def test_adversarial_and_random_rounding_stay_on_the_grid_and_the_adversary_hurts_more(digits_mlp):
    model, data = digits_mlp
    fit_x, fit_y = data.x_train[:300], data.y_train[:300]
    adv = weights.applied(model, rounding.adversarial_rounding(model, fit_x, fit_y, 4))
    coin = weights.applied(model, rounding.random_rounding(model, 4, generator=torch.Generator().manual_seed(0)))
    rtn = ptq.quantize_weights(model, 4)
    on_grid_within_one_step(model, adv)
    on_grid_within_one_step(model, coin)
    # scored on the test images, which the adversary never saw
    x, y = data.x_test, data.y_test
    loss = {name: train.mean_loss(m, x, y) for name, m in (("adversarial", adv), ("coin", coin), ("nearest", rtn))}
    assert loss["adversarial"] > loss["coin"] + 0.1 and loss["coin"] > loss["nearest"]
    # random up/down rounding: each weight at its lower or upper neighbour with probability ½
    w = model.layers[0].weight.detach()
    scale, _ = quant.qparams(w, quant.QuantSpec.for_weights(4))
    up = (coin.layers[0].weight.detach() >= w).float().mean().item()
    assert up == pytest.approx(0.5, abs=0.02)
    noise = rounding.uniform_noise(model, 4, generator=torch.Generator().manual_seed(0))["layers.0.weight"]
    assert (noise.abs() <= scale / 2).all()
    assert (noise / scale).var().item() == pytest.approx(1 / 12, rel=0.05)


def test_every_registered_rounding_method_returns_a_direction_with_its_stated_variance(digits_mlp):
    model, data = digits_mlp
    steps = rounding.step_sizes(model, 6)["layers.0.weight"]
    for method in perturbations.ROUNDING_METHODS.values():
        d = method.fn(model, quant.QuantSpec.for_weights(6), fit=(data.x_train[:100], data.y_train[:100]),
                      generator=torch.Generator().manual_seed(0))
        weights.check_direction(model, d)
        if method.variance is not None:  # E[e²]/Δ² for weights spread over many steps: within 10%
            ratio = (d["layers.0.weight"] / steps).pow(2).mean().item()
            assert ratio == pytest.approx(method.variance, rel=0.1), method.name
    with pytest.raises(ValueError, match="adversarial rounding needs fit"):
        perturbations.ROUNDING_METHODS["adversarial"].fn(model, quant.QuantSpec.for_weights(4))


def test_adversarial_gain_is_about_root_p_times_the_random_spread(digits_mlp):
    model, data = digits_mlp
    g = weights.gradient(model, data.x_test, data.y_test)
    steps = rounding.step_sizes(model, 4)
    # (Δ/2)‖g‖₁ against √(Σ g²Δ²/12): for one Δ the ratio is √3·‖g‖₁/‖g‖₂, between √3 and √(3P)
    ratio = rounding.adversarial_gain(g, steps) / rounding.first_order_spread(g, steps)
    p = sum(int(torch.count_nonzero(s)) for s in steps.values())
    assert 3**0.5 < ratio < (3 * p) ** 0.5
    # the measured first-order term of the adversarial rounding, fit on the same data, is close to its expectation
    adv = rounding.adversarial_rounding(model, data.x_test, data.y_test, 4)
    first = sum((g[n] * adv[n]).sum().item() for n in g)
    assert first == pytest.approx(rounding.adversarial_gain(g, steps), rel=0.1)


def test_rounding_error_and_step_sizes_are_directions_of_the_model(digits_mlp):
    model, _ = digits_mlp
    e, steps = rounding.rounding_error(model, 4), rounding.step_sizes(model, 4)
    q = ptq.quantize_weights(model, 4)
    assert all(torch.allclose(e[n], d) for n, d in weights.difference(model, q).items())
    assert all(torch.allclose(a, b) for a, b in zip(weights.applied(model, e).parameters(), q.parameters(),
                                                     strict=True))
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
    r = ch4.rounding_analysis(model, x, y, 4, diag_h=diag, grad_at_theta=g, n_pairs=64,
                                      generator=torch.Generator().manual_seed(0))
    assert set(r) == {"bits", "predicted", "spread", "adversarial gain", "weights", "noise", "noise sd", "rtn", "rtn z",
                      "rtn_first", "rtn_second"} and r["spread"] > 0 and r["noise sd"] > 0
    assert r["weights"] == sum(p.numel() for p in model.parameters() if p.dim() >= 2)
    assert r["predicted"] == pytest.approx(exact, rel=0.1)
    with pytest.raises(ValueError, match="layers names unknown weight tensors"):
        ch4.rounding_analysis(model, x, y, 4, diag_h=diag, grad_at_theta=g, layers=["nope"])


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
        d = directions.random_direction(model, normalization="none", generator=gen)
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
