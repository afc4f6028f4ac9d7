"""Time and memory of the full scale, stage by stage: measured on the hardware at hand, estimated for a GPU.

    python benchmarks/full_scale.py            # measure unit costs here, print per-chapter stage estimates
    python benchmarks/full_scale.py --time     # on a GPU: also time every unit and report peak memory

Every stage of a chapter at the full scale is a number of *units* of work on one model — a forward pass, a
forward and backward pass (an input gradient or a training step), a Hessian-vector product — times the
images it sees. The script measures each unit's floating-point operations with PyTorch's FLOP counter
(``torch.utils.flop_counter``) and the memory its backward pass keeps per image (the tensors saved for
backward), on synthetic inputs of the real sizes (MNIST 1×28×28, CIFAR-10 3×32×32; no download), and
multiplies by the stage counts taken from the chapters' code and full-scale ``SIZES``. Time estimates divide
by an effective throughput (``--tflops``, default 40 TFLOP/s: what the book's mix of small batches, fp32
curvature and bf16 training reaches on one H100, a third to a quarter of its dense peak); peak memory is the
largest batch of any stage times its per-image memory, plus the model and optimizer state.
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, jvp
from torch.utils.flop_counter import FlopCounterMode

from utils import config, models, weights

TRAIN_BATCH = {"mlp": 128, "resnet": 256, "sweep": 100}  # the recipes' training batches


@dataclass(frozen=True)
class Unit:
    """The cost of one unit of work on one image: FLOPs and bytes of activations kept for backward."""

    flops: float
    saved_bytes: float


def _saved_bytes(fn) -> float:
    """Bytes of the tensors autograd saves for backward while ``fn`` runs (activation memory)."""
    total = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return float(total[0])


def _live_forward_bytes(model: torch.nn.Module, x: torch.Tensor) -> float:
    """The most memory a forward pass without gradients holds at once: the largest input plus output of any
    layer (earlier activations are freed as the pass goes on)."""
    peak = [0]

    def hook(module, inputs, output):
        if isinstance(output, torch.Tensor) and inputs and isinstance(inputs[0], torch.Tensor):
            peak[0] = max(peak[0], (inputs[0].numel() + output.numel()) * output.element_size())

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return float(peak[0])


def _flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def units(model: torch.nn.Module, shape: tuple[int, ...], n: int = 2) -> dict[str, Unit]:
    """Per-image costs of the four kinds of unit, measured on ``n`` synthetic images of ``shape``."""
    model = model.eval()
    x = torch.rand(n, *shape)
    y = torch.randint(0, int(model(x[:1]).shape[1]), (n,))
    theta = weights.parameters_of(model)
    buffers = {k: b for k, b in model.named_buffers()}

    def loss(p, xb):
        return F.cross_entropy(functional_call(model, {**buffers, **p}, (xb,)), y)

    def forward():
        with torch.no_grad():
            model(x)

    def input_gradient():  # what attacks compute: the gradient with respect to the input only
        xr = x.clone().requires_grad_(True)
        for p in model.parameters():
            p.requires_grad_(False)
        F.cross_entropy(model(xr), y).backward()
        for p in model.parameters():
            p.requires_grad_(True)

    def train_step():
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()

    def hvp():
        jvp(grad(lambda p: loss(p, x)), (theta,), ({k: torch.randn_like(v) for k, v in theta.items()},))

    out = {"forward": Unit(_flops(forward) / n, _live_forward_bytes(model, x) / n)}
    for name, fn in (("input gradient", input_gradient), ("training step", train_step)):
        out[name] = Unit(_flops(fn) / n, _saved_bytes(fn) / n)
    # torch.func cannot report saved tensors: forward-over-reverse keeps primal and tangent activations and the
    # backward's, about three times a training step's
    out["Hessian-vector product"] = Unit(_flops(hvp) / n, 3 * out["training step"].saved_bytes)
    return out


# (chapter, stage, model, unit, images processed = count of units, batch kind: config.BATCHES["full"] or
# "train" for a training batch of the recipe)
STAGES = [
    ("2", "train MNIST + Fashion MLPs (10 + 15 epochs × 60k)", "mlp", "training step", 25 * 60_000, "train"),
    ("2", "train ResNet-18 (15 epochs × 50k, bf16)", "resnet", "training step", 15 * 50_000, "train"),
    ("2", "flip curves: FGSM + 20-step PGD at 16 budgets, 1,000 images", "resnet", "input gradient", 16 * 22_000,
     "attack"),
    ("2", "flip curves: noise, 3 kinds × 10 draws × 16 budgets, 1,000 images", "resnet", "forward", 480_000,
     "inference"),
    ("2", "DeepFool (≤ 50 steps × 10 classes) + PGD radius (11 × 20 steps), 200 images", "resnet", "input gradient",
     200 * (50 * 10 + 11 * 21), "deepfool"),
    ("2", "random lines (32 × 2 directions, 64 scan + 12 bisection steps), 200 images", "resnet", "forward",
     200 * 64 * 76, "rays"),
    ("2", "rarity and smoothing: 256 draws × 7 steps, 200 images", "resnet", "forward", 200 * 256 * 7, "inference"),
    ("3", "weight directions: 4 draws × 2 kinds × 11 sizes + 11 adversarial (5 steps), 1,000 images", "resnet",
     "forward", 1_000 * (88 + 11), "weights"),
    ("3", "adversarial weight directions: 11 × 5 gradient steps on 512 images", "resnet", "training step",
     11 * 5 * 512, "weights"),
    ("3", "Hessian trace (20 probes) + top-5 eigenvalues (≤ 100 rounds × 5), 1,000 images", "resnet",
     "Hessian-vector product", 1_000 * (20 + 500), "weights"),
    ("3", "second-order checks: 16 pairs × 9 σ + 7 + 7 × 5 steps, 1,000 images", "resnet", "forward",
     1_000 * (288 + 14), "weights"),
    ("3", "bit-flip attack: 20 flips × 62 tensors, 256 images", "resnet", "forward", 20 * 62 * 256, "weights"),
    ("3", "width sweep: 7 MLPs (1 and 2 hidden layers, up to 4,096 wide) trained to loss 0.01, ≈ 10 epochs × 60k",
     "mlp", "training step", 7 * 10 * 60_000, "train"),
    ("3", "width sweep: 4 CNN widths, ≈ 10 epochs × 60k (costed as the 1,024-wide MLP's step)", "mlp",
     "training step", 4 * 10 * 60_000, "train"),
    ("4", "PTQ table, same-budget comparison, H2 draws: ~150 quantized models × 1,000 images", "resnet", "forward",
     150 * 1_000, "inference"),
    ("4", "Hessian diagonal (30 probes) + top-5 eigenvectors, 1,000 images", "resnet", "Hessian-vector product",
     1_000 * (30 + 500), "weights"),
    ("4", "stochastic roundings: 20 × (loss + one HVP), 1,000 images", "resnet", "Hessian-vector product",
     20 * 1_000, "weights"),
    ("5", "QAT reference: 3 bit-widths × 2 epochs × 50k (bf16)", "resnet", "training step", 3 * 2 * 50_000,
     "train"),
    ("5", "6 methods × 3 bit-widths + first layer (2 × 20 draws) + grids (2 × 5), 1,000 test images", "resnet",
     "forward", (18 + 40 + 10) * 1_000, "inference"),
    ("5", "calibration passes: bias correction, GPTQ, AdaRound inputs, 3 × 3 bit-widths × 512 images", "resnet",
     "forward", 9 * 512, "inference"),
    ("5", "Hessian diagonal (16 probes) + quadratic terms (6 HVPs), 1,000 images", "resnet",
     "Hessian-vector product", 1_000 * 22, "weights"),
    # AdaRound's steps work on the layers' Gram matrices, not on images: Σ_layers out·d² multiply-adds per step,
    # 38 G for ResNet-18, × 2 (forward and backward) × 1,000 steps × 3 bit-widths ≈ 0.23 PFLOP; GPTQ's Cholesky
    # factorizations are Σ d³/3 ≈ 0.1 TFLOP. Neither is counted in the stages.
    ("6", "QAT: 3 bit-widths + noise × 2 + W4A4 ≈ 6 runs × 2 epochs × 50k (bf16)", "resnet",
     "training step", 6 * 2 * 50_000, "train"),
    ("6", "who compensates: 2 experiments × (3 retrainings + 1 float reference) × 2 epochs × 50k (bf16)", "resnet",
     "training step", 8 * 2 * 50_000, "train"),
    ("6", "attacks: 4 budgets × 6 victims × 21 PGD steps, 1,000 images", "resnet", "input gradient",
     4 * 6 * 21 * 1_000, "attack"),
    ("7", "summary figure (MNIST MLP): flip curves, directions, bisection", "mlp", "input gradient", 200_000, "attack"),
    ("1", "dimension sweep, d up to 4,096: 12 MLPs × 100 epochs × 1,000 points, 500 points × 256 lines", "sweep",
     "training step", 12 * 100 * 1_000, "train"),
]
OTHER_MEMORY_GB = {  # memory that is not activations: the largest tensors a chapter holds at once
    "1": 500 * 256 * 4096 * 4 * 2 / 1e9,  # the rays' origins and directions in d = 4,096
}


def estimate(tflops: float) -> list[dict]:
    """Per-stage FLOPs, estimated seconds at ``tflops`` and activation memory of its largest batch."""
    costs = {"mlp": units(models.MLP(784, (256, 256), 10), (1, 28, 28)),
             "resnet": units(models.resnet18(10), (3, 32, 32)), "sweep": units(models.MLP(4096, (64, 64), 2), (4096,))}
    rows = []
    for chapter, stage, model, unit, count, kind in STAGES:
        u = costs[model][unit]
        batch = TRAIN_BATCH[model] if kind == "train" else config.BATCHES["full"][kind]
        if unit == "Hessian-vector product":
            batch *= config.BATCHES["full"]["probes"]  # that many products vectorized together
        rows.append({"chapter": chapter, "stage": stage, "PFLOP": u.flops * count / 1e15,
                     "seconds": u.flops * count / (tflops * 1e12), "activation GB": u.saved_bytes * batch / 1e9})
    return rows, costs


def time_units(costs: dict, device: torch.device) -> None:
    """On a GPU: the measured time and peak memory of each unit at the stages' batch sizes."""
    for name, (model, shape, batch) in {"resnet": (models.resnet18(10), (3, 32, 32), 256),
                                        "mlp": (models.MLP(784, (256, 256), 10), (1, 28, 28), 1024)}.items():
        model = model.to(device)
        x, y = torch.rand(batch, *shape, device=device), torch.randint(0, 10, (batch,), device=device)
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(10):
            F.cross_entropy(model(x), y).backward()
        torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - start) / 10
        flops = costs[name]["training step"].flops * batch
        print(f"{name}: training step on {batch} images {seconds * 1e3:.1f} ms = {flops / seconds / 1e12:.1f} TFLOP/s, "
              f"peak {torch.cuda.max_memory_allocated(device) / 1e9:.2f} GB")


def main() -> None:
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflops", type=float, default=40.0, help="effective throughput assumed for estimates")
    parser.add_argument("--time", action="store_true", help="time the units on this machine's GPU")
    args = parser.parse_args()
    rows, costs = estimate(args.tflops)
    for model, table in costs.items():
        print(f"{model}: " + "; ".join(f"{k} {u.flops / 1e9:.3g} GFLOP, {u.saved_bytes / 1e6:.3g} MB kept per image"
                                       for k, u in table.items()))
    by_chapter: dict[str, list[dict]] = {}
    for r in rows:
        by_chapter.setdefault(r["chapter"], []).append(r)
    for chapter, stages in by_chapter.items():
        total = sum(r["seconds"] for r in stages)
        peak = max(r["activation GB"] for r in stages) + OTHER_MEMORY_GB.get(chapter, 0.0)
        print(f"\nchapter {chapter}: {sum(r['PFLOP'] for r in stages):.2f} PFLOP, about {total / 60:.1f} min at "
              f"{args.tflops:g} TFLOP/s; peak memory of data and activations about {peak:.1f} GB")
        for r in stages:
            print(f"  {r['seconds']:7.1f} s  {r['activation GB']:5.2f} GB  {r['stage']}")
    if args.time and torch.cuda.is_available():
        time_units(costs, torch.device("cuda"))


if __name__ == "__main__":
    main()
