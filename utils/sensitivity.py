"""Per-layer sensitivity to quantization: which weight tensors a quantizer acts on, their size and range, what
rounding one layer alone is *predicted* to cost (from the curvature) and what it costs (*measured*), and the
per-layer curvature that HAWQ ranks layers by.

For layer l rounded to b bits, with error e of independent entries of variance Δᵢ²/12 (chapter 4):

- predicted E[ΔL] ≈ ½ Σ_{i∈l} (Δᵢ²/12)·Hᵢᵢ = Σ_{i∈l} Δᵢ² Hᵢᵢ / 24 (:func:`rounding.predicted_increase`), from one
  set of Rademacher probes v for every layer and bit-width: each probe gives vᵢ(Hv)ᵢ, unbiased for Hᵢᵢ, so
  each probe gives one unbiased estimate of every layer's sum, and the spread over probes is its standard error;
- the trace Tr H_l = Σ_{i∈l} Hᵢᵢ from the same probes (HAWQ-V2's sensitivity), and the top eigenvalue of the
  layer's diagonal block H_ll by power iteration, every layer at once (HAWQ-V1's);
- measured: the change of the mean cross-entropy and of the accuracy when only that layer is rounded, with the
  standard error of a paired mean over the samples.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn
from tqdm.auto import tqdm

from . import checks, config, curvature, rounding, weights
from .outputs import logits_unchecked
from .ptq import check_layers, weight_names
from .quant import QuantSpec

QUANTIZABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
"""The layer types whose weights the report quantizes (grouped and depthwise convolutions included)."""


def quantizable_layers(model: nn.Module) -> list[str]:
    """The names of the weight tensors of ``model``'s Linear and Conv1d/2d/3d layers, in the model's order —
    or a ``ValueError`` for non-finite weights or buffers or a model without such a layer, and a ``TypeError``
    naming every other parameter of ≥ 2 dimensions (an embedding, an LSTM, attention's projections), which
    the report cannot quantize."""
    checks.model("model", model)
    for kind, items in (("parameter", model.named_parameters()), ("buffer", model.named_buffers())):
        bad = [n for n, t in items if t.is_floating_point() and not torch.isfinite(t).all()]
        if bad:
            raise ValueError(f"the model's {kind}s {bad[:5]} hold NaN or infinite values: a quantization report "
                             "needs a model with finite weights")
    supported, other, seen = set(), [], set()
    for prefix, module in model.named_modules():
        for local, p in module.named_parameters(recurse=False):
            if p.dim() < 2 or id(p) in seen:
                continue
            seen.add(id(p))
            full = f"{prefix}.{local}" if prefix else local
            if isinstance(module, QUANTIZABLE) and local == "weight":
                supported.add(full)
            else:
                other.append(f"{full} ({type(module).__name__})")
    if other:
        raise TypeError(f"the report quantizes the weights of Linear and Conv1d/2d/3d layers only; the model also "
                        f"has the weight tensors {other[:6]}{' …' if len(other) > 6 else ''}, which it cannot "
                        "quantize")
    names = [n for n in weight_names(model) if n in supported]
    if not names:
        raise ValueError("the model has no Linear or Conv1d/2d/3d layer: nothing to quantize")
    return names


def layer_statistics(model: nn.Module, layers: list[str]) -> pd.DataFrame:
    """Size and range of each weight tensor in ``layers``: its layer type, shape and number of weights; its
    range; the outlier ratio max|w|/std(w) (about 3–4 for bell-shaped weights: the larger, the coarser a
    min-max grid is for most weights); and the channel spread max_c r_c / median_c r_c of the output channels'
    ranges r_c = max|w_c| — what a per-tensor grid pays against a per-channel one (one Δ per tensor is set by
    the widest channel)."""
    params, modules, rows = dict(model.named_parameters()), dict(model.named_modules()), []
    for name in check_layers(checks.model("model", model), layers):
        w = params[name].detach().float()
        module = modules[name.rsplit(".", 1)[0] if "." in name else ""]
        kernel = "×".join(map(str, w.shape[2:]))
        ranges = w.flatten(1).abs().amax(1)
        median = ranges.median().item()
        rows.append({"layer": name, "type": type(module).__name__ + (f" {kernel}" if kernel else ""),
                     "shape": "×".join(map(str, w.shape)), "weights": w.numel(), "min": w.min().item(),
                     "max": w.max().item(), "outlier ratio max|w|/std": (w.abs().max() / w.std()).item(),
                     "channel spread": ranges.max().item() / median if median > 0 else math.inf})
    return pd.DataFrame(rows).set_index("layer")


@torch.no_grad()
def outcomes_unchecked(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample cross-entropy ℓᵢ = −log softmax(f(xᵢ))_{yᵢ} and correctness 1[argmax f(xᵢ) = yᵢ] in eval mode
    (a kernel: the caller has checked the arguments)."""
    z, y = logits_unchecked(model, x), y.to(x.device)
    return F.cross_entropy(z, y, reduction="none").double(), (z.argmax(1) == y).double()


def paired_change(before: torch.Tensor, after: torch.Tensor) -> tuple[float, float]:
    """The mean of the per-sample changes dᵢ = afterᵢ − beforeᵢ and its standard error sd(d)/√n."""
    d = checks.tensor("after", after, min_dim=1) - checks.tensor("before", before, shape=tuple(after.shape))
    se = (d.std() / math.sqrt(len(d))).item() if len(d) > 1 else math.nan
    return d.mean().item(), se


def _slices(theta: weights.Direction, layers: list[str]) -> dict[str, slice]:
    """Where each layer's entries lie in :func:`weights.flatten`'s order."""
    starts = dict(zip(theta, np.cumsum([0] + [t.numel() for t in theta.values()]).tolist(), strict=False))
    return {n: slice(starts[n], starts[n] + theta[n].numel()) for n in layers}


@config.full_precision()
def layer_curvature(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, layers: list[str], grids: dict[int, QuantSpec], *,
    n_probes: int = 64, generator: torch.Generator | None = None,
) -> tuple[weights.Direction, pd.DataFrame]:
    """Hutchinson's estimates, from ``n_probes`` Rademacher probes v shared by every layer and bit-width: the
    Hessian's diagonal diag(H) = E[v ⊙ Hv] (a direction) and a table with one row per layer and bit-width
    (``grids``: bits → spec) of the trace Tr H_l = Σ_{i∈l} Hᵢᵢ and the predicted loss increase
    Σ_{i∈l} Δᵢ² Hᵢᵢ / 24 of rounding only that layer, each with its standard error over the probes."""
    weights.check_data(model, x, y)
    layers, n_probes = check_layers(model, layers), checks.integer("n_probes", n_probes, minimum=2)
    theta, dev = weights.parameters_of(model), checks.model_device(model)
    dtype, size, where = weights.flatten(theta).dtype, weights.flatten(theta).numel(), _slices(theta, layers)
    squares = {b: weights.flatten(rounding.step_sizes(model, spec, layers=layers)).pow(2) for b, spec in grids.items()}
    squares = {n: torch.stack([s[where[n]] for s in squares.values()], 1) for n in layers}  # (n_l, B) per layer
    hvp = curvature.batched_hvp(model, x, y)
    total, traces, predicted = torch.zeros(size, device=dev, dtype=torch.float64), [], []
    for v in curvature.probes(model, n_probes, None, generator, None):
        d = (v * hvp(v)).double()
        total += d.sum(0)
        traces.append(torch.stack([d[:, where[n]].sum(1) for n in layers], 1))  # (k, L)
        predicted.append(torch.stack([d[:, where[n]] @ squares[n].double() / 24 for n in layers], 1))  # (k, L, B)
    traces, predicted = torch.cat(traces).cpu(), torch.cat(predicted).cpu()
    se = lambda t: t.std(0) / math.sqrt(len(t))  # noqa: E731
    rows = [{"layer": n, "bits": b, "trace": traces[:, i].mean().item(), "trace se": se(traces)[i].item(),
             "predicted": predicted[:, i, j].mean().item(), "predicted se": se(predicted)[i, j].item()}
            for i, n in enumerate(layers) for j, b in enumerate(grids)]
    diag = weights.unflatten((total / n_probes).to(dtype), theta)
    return diag, pd.DataFrame(rows)


EIGEN_ELEMENTS = 2**26
"""How many entries each (layers × parameters) matrix of the eigenvalue iteration may hold (256 MB in float32):
the layers are iterated in groups that fit, so that a ResNet-18's 21 layers take about 1 GB, not 4."""


@config.full_precision()
def layer_top_eigenvalues(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, layers: list[str], *, iters: int = 20, tol: float = 1e-3,
    generator: torch.Generator | None = None, progress: bool = False,
) -> dict[str, float]:
    """The eigenvalue of largest magnitude of each layer's diagonal Hessian block H_ll (HAWQ-V1's sensitivity),
    by power iteration on many layers at once: the rows of V are unit vectors each supported on one layer, and
    one batched Hessian-vector product per round gives every H_ll vₗ (HV restricted to the layer); λₗ = vₗᵀH_ll vₗ,
    for ``iters`` rounds or until every λ of the group changes by less than ``tol`` (relative). Layers go in
    groups of at most :data:`EIGEN_ELEMENTS` / P (P parameters), which bounds the memory."""
    weights.check_data(model, x, y)
    layers, iters, tol = check_layers(model, layers), checks.integer("iters", iters), checks.positive("tol", tol)
    theta, dev = weights.parameters_of(model), checks.model_device(model)
    dtype, size, where = weights.flatten(theta).dtype, weights.flatten(theta).numel(), _slices(theta, layers)
    gen, hvp, out = config.resolve_generator(generator, dev), curvature.batched_hvp(model, x, y), {}
    group = max(1, EIGEN_ELEMENTS // size)
    bar = tqdm(total=iters * math.ceil(len(layers) / group), desc="layer eigenvalues", leave=False,
               **config.progress_options(progress))
    for first in range(0, len(layers), group):
        chosen = layers[first: first + group]
        basis = torch.zeros(len(chosen), size, device=dev, dtype=dtype)
        for i, n in enumerate(chosen):
            basis[i, where[n]] = torch.randn(theta[n].numel(), generator=gen, device=gen.device).to(dev, dtype)
        basis /= basis.norm(dim=1, keepdim=True)
        previous = None
        for _ in range(iters):
            bar.update()
            block = hvp(basis)  # restricted to each row's layer in place: H_ll vₗ (memory: two (k, P) matrices)
            for i, n in enumerate(chosen):
                block[i, : where[n].start] = 0
                block[i, where[n].stop:] = 0
            values = torch.stack([basis[i, where[n]] @ block[i, where[n]] for i, n in enumerate(chosen)])
            basis = block.div_(block.norm(dim=1, keepdim=True).clamp_min(1e-30))
            if previous is not None and ((values - previous).abs() <= tol * values.abs().clamp_min(1e-12)).all():
                break
            previous = values
        out.update(zip(chosen, values.double().cpu().tolist(), strict=True))
    bar.close()
    return out


@config.full_precision()
def measure_layers(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, layers: list[str], grids: dict[int, QuantSpec], *,
    progress: bool = False, base: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> pd.DataFrame:
    """For every layer and bit-width (``grids``: bits → spec), round only that layer to nearest and measure on
    (x, y) the change of the mean loss and of the accuracy, each with the standard error of a paired mean
    (sd of the per-sample changes / √n). ``model`` is moved and restored bit for bit (pass a copy you own);
    ``base``: the float model's per-sample (loss, correctness) on (x, y), if the caller has them."""
    weights.check_data(model, x, y)
    layers, (base_loss, base_correct) = check_layers(model, layers), base or outcomes_unchecked(model, x, y)
    rows = []
    for n in tqdm(layers, desc="one layer rounded", leave=False, **config.progress_options(progress)):
        for b, spec in grids.items():
            with weights.perturbed(model, rounding.rounding_error(model, spec, layers=[n]), 1.0):
                loss, correct = outcomes_unchecked(model, x, y)
            dl, dl_se = paired_change(base_loss, loss)
            da, da_se = paired_change(base_correct, correct)
            rows.append({"layer": n, "bits": b, "measured": dl, "measured se": dl_se, "accuracy change": da,
                         "accuracy change se": da_se})
    return pd.DataFrame(rows)


def spearman(a: pd.Series | np.ndarray, b: pd.Series | np.ndarray) -> float:
    """Spearman's rank correlation ρ of two sequences (NaN with fewer than three pairs or a constant one)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be 1-D and of one length, got shapes {a.shape} and {b.shape}")
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(stats.spearmanr(a, b).statistic)


def rankings(per_layer: pd.DataFrame, metrics: dict[str, str], measured: str = "measured") -> pd.DataFrame:
    """Spearman's ρ of each sensitivity metric (``metrics``: label → column of ``per_layer``, one row per
    layer) against the ``measured`` column: 1 when the metric orders the layers exactly as measurement does."""
    if not isinstance(per_layer, pd.DataFrame) or measured not in per_layer:
        raise ValueError(f"per_layer must be a DataFrame with a {measured!r} column")
    rows = [{"ranking": label, "Spearman ρ vs measured": spearman(per_layer[col], per_layer[measured]),
             "layers": len(per_layer)} for label, col in metrics.items()]
    return pd.DataFrame(rows).set_index("ranking")
