import pytest
import torch

from utils import ptq, quant
from utils.models import SmallCNN
from utils.quant import MSE, MinMax, PerAxis, Percentile, PerTensor, QuantSpec


@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize("symmetric", [True, False])
def test_quantize_equals_torch_fake_quantize_bit_for_bit(bits, symmetric):
    x = torch.randn(16, 3, 3, 3, generator=torch.Generator().manual_seed(bits)) * 0.2 + (0 if symmetric else 0.1)
    spec = QuantSpec(bits, symmetric=symmetric)
    q_min, q_max = quant.code_range(spec)
    scale, zero = quant.qparams(x, spec)
    ref = torch.fake_quantize_per_tensor_affine(x, scale.item(), int(zero.item()), q_min, q_max)
    assert torch.equal(quant.quantize(x, spec), ref)
    spec = spec.but(granularity=PerAxis(0))
    scale, zero = quant.qparams(x, spec)
    ref = torch.fake_quantize_per_channel_affine(x, scale.flatten(), zero.flatten().int(), 0, q_min, q_max)
    assert torch.equal(quant.quantize(x, spec), ref)


def test_rounding_error_is_at_most_half_a_step_inside_the_range():
    x = torch.rand(1000) * 2 - 1
    for bits in (2, 4, 8):
        scale, _ = quant.qparams(x, bits)
        assert ((quant.quantize(x, bits) - x).abs() <= scale / 2 + 1e-7).all()


def test_quantize_weights_leaves_the_original_untouched():
    model = SmallCNN(1, 10, 8)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    q = ptq.quantize_weights(model, 4)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    w = dict(q.named_parameters())["features.0.weight"].detach()
    assert len(torch.unique(w[0])) <= 15 and torch.equal(dict(q.named_parameters())["features.0.bias"],
                                                          before["features.0.bias"])


def test_bad_arguments_are_rejected_clearly():
    with pytest.raises(ValueError, match="bits must be an integer in \\[1, 16\\], got 0"):
        quant.quantize(torch.ones(3), 0)
    with pytest.raises(TypeError, match="spec must be a quant.QuantSpec or a number of bits, got 4.5"):
        quant.quantize(torch.ones(3), 4.5)
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        quant.qparams(torch.ones(3, dtype=torch.long), 8)
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        quant.quantize(torch.ones(2, 2), QuantSpec(8, granularity=PerAxis(3)))
    with pytest.raises(ValueError, match="x must not contain NaN or infinite values"):
        quant.quantize(torch.tensor([1.0, float("inf")]), 8)
    with pytest.raises(ValueError, match="scale must be positive everywhere"):
        quant.codes(torch.ones(3), torch.tensor(0.0), torch.tensor(0.0), 8)
    with pytest.raises(TypeError, match="symmetric must be True or False, got 'no'"):
        QuantSpec(8, symmetric="no")
    with pytest.raises(TypeError, match="granularity must be quant.PerTensor\\(\\) or quant.PerAxis"):
        QuantSpec(8, granularity="per channel")
    with pytest.raises(TypeError, match="calibration must be quant.MinMax"):
        QuantSpec(8, calibration="mse")
    with pytest.raises(TypeError):  # loose keyword settings are not a second vocabulary
        quant.quantize(torch.ones(3), 8, per_channel=True)
    with pytest.raises(ValueError, match="layers names unknown weight tensors \\['nope'\\]"):
        ptq.quantize_weights(SmallCNN(1, 10, 8), 4, layers=["nope"])
    with pytest.raises(ValueError, match="x must hold at least one value"):
        quant.qparams(torch.ones(0), 8)
    with pytest.raises(ValueError, match="lo must not exceed hi"):
        quant.from_range(torch.tensor(1.0), torch.tensor(-1.0), 8)
    with pytest.raises(ValueError, match="lo must not contain NaN"):
        quant.from_range(torch.tensor(float("nan")), torch.tensor(1.0), 8)


def test_a_number_of_bits_stands_for_the_workflows_standard_spec():
    x = torch.randn(8, 5, generator=torch.Generator().manual_seed(0))
    assert quant.as_spec(4) == QuantSpec(4, granularity=PerTensor())
    assert quant.as_spec(4, "weights") == QuantSpec.for_weights(4) == QuantSpec(4, granularity=PerAxis(0))
    assert quant.as_spec(4, "activations") == QuantSpec(4, symmetric=False)
    spec = QuantSpec.for_weights(4, calibration=MSE())
    assert spec.but(rounding="floor").rounding == "floor" and spec.rounding == "nearest" and spec.per_channel
    assert not torch.equal(quant.quantize(x, spec), quant.quantize(x, 4))
    model = SmallCNN(1, 10, 8)
    by_spec = ptq.quantize_weights(model, QuantSpec(3, granularity=PerAxis(0)))
    by_bits = ptq.quantize_weights(model, 3)  # weights default to per-channel
    assert all(torch.equal(a, b) for a, b in zip(by_spec.parameters(), by_bits.parameters(), strict=True))


def test_rounding_modes_error_bounds_and_stochastic_rounding_is_unbiased():
    x = torch.rand(20000, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    scale, zero = quant.qparams(x, 4)
    err = {r: quant.fake_quantize(x, scale, zero, QuantSpec(4, rounding=r),
                                  generator=torch.Generator().manual_seed(1)) - x for r in quant.ROUNDINGS}
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
    errors = {type(c).__name__: (quant.quantize(x, QuantSpec(4, calibration=c)) - x).pow(2).mean().item()
              for c in (MinMax(), Percentile(), MSE())}
    # the outlier itself costs ≈ 0.14 of the mean squared error whatever the clip; min-max costs ≈ 1
    assert errors["MSE"] < errors["MinMax"] / 5 and errors["Percentile"] < errors["MinMax"] / 5
    scale, _ = quant.qparams(x, QuantSpec(8, calibration=Percentile(99.0)))
    assert scale.item() == pytest.approx(torch.quantile(x.abs(), 0.99).item() / 127, rel=0.2)
    with pytest.raises(ValueError, match="percentile must be a finite number in \\(50.0, 100.0\\]"):
        Percentile(30.0)


def test_activation_quantization_calibrates_each_layer_input():
    model = SmallCNN(1, 10, 8).eval()
    x = torch.rand(64, 1, 8, 8)
    q = ptq.quantize_activations(model, 8, x)
    assert (q(x) - model(x)).abs().max() < 0.05 * model(x).abs().max()
    assert not torch.equal(ptq.quantize_activations(model, 2, x)(x), model(x))
    with pytest.raises(ValueError, match="activations are quantized per tensor"):
        ptq.quantize_activations(model, QuantSpec.for_activations(8, calibration=MSE()), x)
    with pytest.raises(ValueError, match="calibration must not contain NaN"):
        ptq.quantize_activations(model, 8, torch.full((2, 1, 8, 8), float("nan")))


def test_unknown_rounding_is_rejected():
    with pytest.raises(ValueError, match="rounding must be one of"):
        QuantSpec(4, rounding="up")


def test_map_weights_rejects_a_function_that_changes_the_shape():
    model = SmallCNN(1, 10, 8)
    with pytest.raises(ValueError, match="fn must return a tensor shaped like features.0.weight"):
        ptq.map_weights(model, lambda _, w: w[:1])


def test_true_rounding_masks_input_gradients_and_the_straight_through_version_does_not():
    model = SmallCNN(1, 10, 8).eval()
    x = torch.rand(16, 1, 8, 8)
    masked = ptq.quantize_activations(model, 4, x)
    through = ptq.quantize_activations(model, 4, x, straight_through=True)
    assert torch.equal(masked(x), through(x))  # the same function
    xr = x.clone().requires_grad_(True)
    # rounding (through integer codes) cuts the graph between the input and the output
    assert torch.autograd.grad(masked(xr).sum(), xr, allow_unused=True)[0] is None
    through(xr).sum().backward()
    assert xr.grad.abs().sum() > 0
