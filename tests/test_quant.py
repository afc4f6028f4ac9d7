import pytest
import torch

from utils import quant
from utils.models import SmallCNN


@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize("symmetric", [True, False])
def test_quantize_equals_torch_fake_quantize_bit_for_bit(bits, symmetric):
    x = torch.randn(16, 3, 3, 3, generator=torch.Generator().manual_seed(bits)) * 0.2 + (0 if symmetric else 0.1)
    q_min, q_max = quant.code_range(bits, symmetric)
    scale, zero = quant.qparams(x, bits, symmetric=symmetric)
    ours = quant.quantize(x, bits, symmetric=symmetric)
    ref = torch.fake_quantize_per_tensor_affine(x, scale.item(), int(zero.item()), q_min, q_max)
    assert torch.equal(ours, ref)
    scale, zero = quant.qparams(x, bits, symmetric=symmetric, per_channel=True, axis=0)
    ours = quant.quantize(x, bits, symmetric=symmetric, per_channel=True, axis=0)
    ref = torch.fake_quantize_per_channel_affine(x, scale.flatten(), zero.flatten().int(), 0, q_min, q_max)
    assert torch.equal(ours, ref)


def test_rounding_error_is_at_most_half_a_step_inside_the_range():
    x = torch.rand(1000) * 2 - 1
    for bits in (2, 4, 8):
        scale, _ = quant.qparams(x, bits)
        assert ((quant.quantize(x, bits) - x).abs() <= scale / 2 + 1e-7).all()


def test_quantize_weights_leaves_the_original_untouched():
    model = SmallCNN(1, 10, 8)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    q = quant.quantize_weights(model, 4)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    w = dict(q.named_parameters())["features.0.weight"].detach()
    assert len(torch.unique(w[0])) <= 15 and torch.equal(dict(q.named_parameters())["features.0.bias"],
                                                          before["features.0.bias"])


def test_bad_arguments_are_rejected_clearly():
    with pytest.raises(ValueError, match="bits must be an integer between 1 and 16"):
        quant.quantize(torch.ones(3), 0)
    with pytest.raises(ValueError, match="bits must be an integer"):
        quant.quantize(torch.ones(3), 4.5)
    with pytest.raises(TypeError, match="floating-point"):
        quant.qparams(torch.ones(3, dtype=torch.long), 8)
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        quant.quantize(torch.ones(2, 2), 8, per_channel=True, axis=3)


def test_rounding_modes_error_bounds_and_stochastic_rounding_is_unbiased():
    x = torch.rand(20000, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    scale, zero = quant.qparams(x, 4)
    err = {r: quant.fake_quantize(x, scale, zero, 4, rounding=r, generator=torch.Generator().manual_seed(1)) - x
           for r in quant.ROUNDINGS}
    assert (err["nearest"].abs() <= scale / 2 + 1e-7).all()
    assert (err["floor"] <= 1e-7).all() and (err["floor"] > -scale - 1e-7).all()
    assert (err["ceil"] >= -1e-7).all() and (err["ceil"] < scale + 1e-7).all()
    assert (err["stochastic"].abs() < scale + 1e-7).all()
    # E[error] = 0; its s.e. over 20,000 values of spread ≤ Δ/2 is below Δ/280: allow Δ/50
    assert abs(err["stochastic"].mean().item()) < scale.item() / 50
    assert abs(err["floor"].mean().item() + scale.item() / 2) < scale.item() / 50


def test_calibration_methods():
    x = torch.randn(10000, generator=torch.Generator().manual_seed(0))
    x[0] = 40.0  # one outlier stretches the min-max range
    errors = {m: (quant.quantize(x, 4, method=m) - x).pow(2).mean().item() for m in quant.METHODS}
    # the outlier itself costs ≈ 0.14 of the mean squared error whatever the clip; min-max costs ≈ 1
    assert errors["mse"] < errors["minmax"] / 5 and errors["percentile"] < errors["minmax"] / 5
    scale, _ = quant.qparams(x, 8, method="percentile", percentile=99.0)
    assert scale.item() == pytest.approx(torch.quantile(x.abs(), 0.99).item() / 127, rel=0.2)


def test_adversarial_rounding_stays_on_the_grid_within_one_step_and_hurts_more():
    from utils import config, train
    from utils.data import load_dataset
    from utils.models import build_model

    data = load_dataset("digits")
    config.set_seed(0)
    model = build_model("mlp", data, hidden=(32,))
    train.fit(model, data, epochs=10, lr=3e-3, batch_size=64, progress=False, device="cpu")
    x, y = data.x_test, data.y_test
    adv, rtn = quant.adversarial_rounding(model, x, y, 4), quant.quantize_weights(model, 4)
    for (name, a), r, w in zip(adv.named_parameters(), rtn.parameters(), model.parameters(), strict=True):
        if w.dim() < 2:
            assert torch.equal(a, w)
            continue
        scale, _ = quant.qparams(w.detach(), 4, per_channel=True)
        steps = a.detach() / scale
        assert torch.allclose(steps, steps.round(), atol=1e-4), name
        assert ((a - r).abs() <= scale + 1e-6).all() and ((a - w).abs() < scale + 1e-6).all()
    assert train.mean_loss(adv, x, y) > train.mean_loss(rtn, x, y) + 0.1
    noisy = quant.noisy_weights(model, 4, generator=torch.Generator().manual_seed(0))
    w, n = model.layers[0].weight, noisy.layers[0].weight
    scale, _ = quant.qparams(w.detach(), 4, per_channel=True)
    assert ((n - w).abs() <= scale / 2).all()
    assert ((n - w) / scale).var().item() == pytest.approx(1 / 12, rel=0.05)


def test_activation_quantization_calibrates_each_layer_input():
    model = SmallCNN(1, 10, 8).eval()
    x = torch.rand(64, 1, 8, 8)
    q = quant.quantize_activations(model, 8, x)
    assert (q(x) - model(x)).abs().max() < 0.05 * model(x).abs().max()
    assert not torch.equal(quant.quantize_activations(model, 2, x)(x), model(x))
    with pytest.raises(ValueError, match="'minmax' or 'percentile'"):
        quant.quantize_activations(model, 8, x, method="mse")


def test_unknown_rounding_and_method_are_rejected():
    with pytest.raises(ValueError, match="rounding must be one of"):
        quant.quantize(torch.ones(3), 4, rounding="up")
    with pytest.raises(ValueError, match="method must be one of"):
        quant.quantize(torch.ones(3), 4, method="kl")


def test_rounding_analysis_matches_the_exact_hessian_on_a_tiny_model():
    from tests.test_weights import exact_hessian, tiny_problem
    from utils import weights

    model, x, y = tiny_problem()
    r = quant.rounding_analysis(model, x, y, 4, n_probes=2000, n_pairs=64, generator=torch.Generator().manual_seed(0))
    h, theta = exact_hessian(model, x, y).diagonal(), weights.parameters_of(model)
    step = weights.flatten({n: quant.qparams(t, 4, per_channel=True)[0].expand_as(t) if t.dim() >= 2
                            else torch.zeros_like(t) for n, t in theta.items()})
    exact = (step**2 * h).sum().item() / 24
    # weighted Hutchinson with 2000 probes: a few percent; this is the estimator's own check
    assert r["predicted"] == pytest.approx(exact, rel=0.1)
    assert set(r) == {"bits", "predicted", "spread", "noise", "rtn", "rtn_first", "rtn_second"} and r["spread"] > 0
    with pytest.raises(ValueError, match="unknown weight tensors"):
        quant.rounding_analysis(model, x, y, 4, layers=["nope"])


def test_onnx_runtime_int8_model_is_smaller_and_agrees(tmp_path):
    model = SmallCNN(1, 10, 8).eval()
    rows = quant.onnx_benchmark(model, torch.rand(32, 1, 8, 8), tmp_path, repeats=2)
    assert [r["model"] for r in rows] == ["float32", "int8"]
    assert rows[1]["file size (kB)"] < rows[0]["file size (kB)"] and rows[1]["agrees with float"] >= 0.9


def test_true_rounding_masks_input_gradients_and_the_straight_through_version_does_not():
    model = SmallCNN(1, 10, 8).eval()
    x = torch.rand(16, 1, 8, 8)
    masked = quant.quantize_activations(model, 4, x)
    through = quant.quantize_activations(model, 4, x, straight_through=True)
    assert torch.equal(masked(x), through(x))  # the same function
    xr = x.clone().requires_grad_(True)
    # rounding (through integer codes) cuts the graph between the input and the output
    assert torch.autograd.grad(masked(xr).sum(), xr, allow_unused=True)[0] is None
    through(xr).sum().backward()
    assert xr.grad.abs().sum() > 0
