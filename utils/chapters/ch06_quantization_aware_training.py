"""Chapter 6, quantization-aware training: the models it studies, and the measurements that take H4 apart —
which of QAT's changes do the work, which parameters compensate when retrained, and how much of the error a
closed-form re-fit of the next layer could remove."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .. import checks, config
from ..ptq import check_layers, map_weights, weight_names
from ..qat import latent_model
from ..quant import QuantSpec, as_spec, codes, qparams
from ..setups import WEIGHT_SPACE, Trained
from ..train import fit

SETUPS = WEIGHT_SPACE
def _module(name: str) -> str:
    """The module a parameter belongs to: "layers.0.weight" → "layers.0"."""
    return name.rsplit(".", 1)[0]


VARIANTS: dict[str, Callable[[str, torch.Tensor, set[str]], bool]] = {
    "other layers, weights and biases": lambda name, p, frozen: _module(name) not in {_module(f) for f in frozen},
    "other layers' weights only": lambda name, p, frozen: p.dim() >= 2 and name not in frozen,
    "biases only": lambda name, p, frozen: p.dim() < 2,
}
"""Which parameters a retraining may change, given the frozen (quantized) weight tensors: every parameter of the
layers left in floating point; only their weights (every bias frozen); or only the biases, all of them (the
quantized layers' too) — bias correction learned by gradient descent."""


def codes_only(model: nn.Module, qat_model: nn.Module, spec: QuantSpec | int) -> nn.Module:
    """The post-training quantized ``model`` (grid ``spec``, a number of bits: :meth:`QuantSpec.for_weights`,
    calibrated on the float weights; the float biases) with only its integer codes replaced by those QAT chose:
    w = Δ_float·q_QAT, where q_QAT are the codes of the QAT model's latent weights on its own grid. It isolates
    what the changed rounding decisions do, without QAT's trained biases or its slightly moved grid."""
    spec = as_spec(spec, "weights")
    latent = dict(latent_model(qat_model, model).named_parameters())

    def swap(name: str, w: torch.Tensor) -> torch.Tensor:
        scale, zero = qparams(w, spec)
        moved = latent[name].detach().to(w.device)
        q = codes(moved, *qparams(moved, spec), spec)
        return scale * (q - zero).to(w.dtype)

    return map_weights(model, swap)


def codes_changed(model: nn.Module, qat_model: nn.Module, spec: QuantSpec | int) -> float:
    """The fraction of weights whose integer code after QAT differs from round-to-nearest's of the float weights."""
    spec = as_spec(spec, "weights")
    latent, changed, total = dict(latent_model(qat_model, model).named_parameters()), 0, 0
    for name, w in ((n, p.detach()) for n, p in model.named_parameters() if n in weight_names(model)):
        moved = latent[name].detach()
        changed += int((codes(w, *qparams(w, spec), spec) != codes(moved, *qparams(moved, spec), spec)).sum())
        total += w.numel()
    return changed / total


def retrain(model: nn.Module, t: Trained, frozen: list[str], variant: str, *, epochs: int, lr: float,
            key: tuple) -> nn.Module:
    """A copy of ``model`` fine-tuned on ``t``'s training set (Adam at ``lr`` for ``epochs`` epochs) with only
    the parameters :data:`VARIANTS` [``variant``] allows given the ``frozen`` weight tensors."""
    checks.one_of("variant", variant, tuple(VARIANTS))
    frozen = set(check_layers(model, frozen))
    out = copy.deepcopy(model)
    for name, p in out.named_parameters():
        p.requires_grad_(VARIANTS[variant](name, p, frozen))
    fit(out, t.data, epochs=epochs, lr=lr, batch_size=64, progress=False, device=t.x.device,
        generator=config.generator("retrain", t.setup.key, variant, *key, device=t.x.device))
    for p in out.parameters():
        p.requires_grad_(True)
    return out.eval()


def _next_input(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The input of ``layer`` when ``model`` runs on x, as rows (convolutions: one row per output position)."""
    seen = []
    hook = layer.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].detach()))
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        hook.remove()
    h = seen[0]
    if isinstance(layer, nn.Conv2d):
        return F.unfold(h, layer.kernel_size, padding=layer.padding, stride=layer.stride).transpose(1, 2).flatten(0, 1)
    return h


def linear_refit(model: nn.Module, quantized: nn.Module, layer: str, x_fit: torch.Tensor,
                 x_eval: torch.Tensor) -> dict[str, float]:
    """How much of the quantization error a closed-form change of the layer after the quantized one can undo:
    the redundancy that lets the other weights compensate. With h the next layer's input in the float model and
    h_q in the ``quantized`` copy, the next layer's float output is z = W h + b; its weights re-fit by least
    squares on ``x_fit``, W*, b* = argmin ‖W' h_q + b' − z‖², leave on ``x_eval`` (inputs the fit did not see) the
    error ‖W* h_q + b* − z‖² instead of ‖W h_q + b − z‖². Returns the fraction of the error removed,
    1 − (re-fit error / error), and the two errors. ``layer`` names the quantized weight tensor; the next layer
    is the following linear or convolution layer."""
    checks.batch(x_fit, x_name="x_fit")
    checks.batch(x_eval, x_name="x_eval")
    names = weight_names(model)
    if layer not in names or names.index(layer) == len(names) - 1:
        raise ValueError(f"layer must name a weight tensor followed by another layer; got {layer!r}, the model has "
                         f"{names}")
    modules = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    nxt, nxt_q = (modules[names.index(layer) + 1],
                  [m for m in quantized.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][names.index(layer) + 1])
    w = nxt.weight.detach().flatten(1).double()
    b = nxt.bias.detach().double() if nxt.bias is not None else torch.zeros(len(w), dtype=w.dtype, device=w.device)

    def rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, h_q = _next_input(model, nxt, x).double(), _next_input(quantized, nxt_q, x).double()
        return torch.cat([h_q, torch.ones(len(h_q), 1, dtype=h_q.dtype, device=h_q.device)], dim=1), h @ w.T + b

    design, target = rows(x_fit)
    solution = torch.linalg.lstsq(design.cpu(), target.cpu(), driver="gelsd").solution.to(design.device)
    design, target = rows(x_eval)
    before = (design @ torch.cat([w, b[:, None]], dim=1).T - target).pow(2).sum().item()
    after = (design @ solution - target).pow(2).sum().item()
    return {"fraction of the error removed": 1 - after / max(before, 1e-30), "error before": before,
            "error after a linear re-fit": after}
