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
    with pytest.raises(ValueError, match="bits must be an integer in \\[1, 16\\], got 0"):
        quant.quantize(torch.ones(3), 0)
    with pytest.raises(TypeError, match="bits must be an integer, got 4.5"):
        quant.quantize(torch.ones(3), 4.5)
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        quant.qparams(torch.ones(3, dtype=torch.long), 8)
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        quant.quantize(torch.ones(2, 2), 8, per_channel=True, axis=3)
    with pytest.raises(ValueError, match="x must not contain NaN or infinite values"):
        quant.quantize(torch.tensor([1.0, float("inf")]), 8)
    with pytest.raises(ValueError, match="scale must be positive everywhere"):
        quant.codes(torch.ones(3), torch.tensor(0.0), torch.tensor(0.0), 8)
    with pytest.raises(TypeError, match="symmetric must be True or False, got 'no'"):
        quant.qparams(torch.ones(3), 8, symmetric="no")
    with pytest.raises(TypeError, match="unknown quantization settings \\['bit'\\]"):
        quant.quantize(torch.ones(3), 8, bit=4)
    with pytest.raises(TypeError, match="not both"):
        quant.quantize(torch.ones(3), quant.QuantSpec(4), per_channel=True)
    with pytest.raises(ValueError, match="layers names unknown weight tensors \\['nope'\\]"):
        quant.quantize_weights(SmallCNN(1, 10, 8), 4, layers=["nope"])


def test_a_quant_spec_carries_the_settings():
    spec = quant.QuantSpec(4, per_channel=True, method="mse")
    x = torch.randn(8, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(quant.quantize(x, spec), quant.quantize(x, 4, per_channel=True, method="mse"))
    assert spec.but(rounding="floor").rounding == "floor" and spec.rounding == "nearest"
    model = SmallCNN(1, 10, 8)
    by_spec = quant.quantize_weights(model, quant.QuantSpec(3, per_channel=True))
    by_bits = quant.quantize_weights(model, 3)  # weights default to per-channel
    assert all(torch.equal(a, b) for a, b in zip(by_spec.parameters(), by_bits.parameters(), strict=True))


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
    errors = {m: (quant.quantize(x, 4, method=m) - x).pow(2).mean().item() for m in quant.CALIBRATIONS}
    # the outlier itself costs ≈ 0.14 of the mean squared error whatever the clip; min-max costs ≈ 1
    assert errors["mse"] < errors["minmax"] / 5 and errors["percentile"] < errors["minmax"] / 5
    scale, _ = quant.qparams(x, 8, method="percentile", percentile=99.0)
    assert scale.item() == pytest.approx(torch.quantile(x.abs(), 0.99).item() / 127, rel=0.2)


def test_activation_quantization_calibrates_each_layer_input():
    model = SmallCNN(1, 10, 8).eval()
    x = torch.rand(64, 1, 8, 8)
    q = quant.quantize_activations(model, 8, x)
    assert (q(x) - model(x)).abs().max() < 0.05 * model(x).abs().max()
    assert not torch.equal(quant.quantize_activations(model, 2, x)(x), model(x))
    with pytest.raises(ValueError, match="method must be one of 'minmax', 'percentile'; got 'mse'"):
        quant.quantize_activations(model, 8, x, method="mse")
    with pytest.raises(ValueError, match="calibration must not contain NaN"):
        quant.quantize_activations(model, 8, torch.full((2, 1, 8, 8), float("nan")))


def test_unknown_rounding_and_method_are_rejected():
    with pytest.raises(ValueError, match="rounding must be one of"):
        quant.quantize(torch.ones(3), 4, rounding="up")
    with pytest.raises(ValueError, match="method must be one of"):
        quant.quantize(torch.ones(3), 4, method="kl")


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
