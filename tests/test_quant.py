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
