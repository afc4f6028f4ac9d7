"""Time and floating-point work of the quantization-readiness report (chapter 8), stage by stage.

    python benchmarks/readiness.py          # the digits CNN: the whole report timed here; ResNet-18 estimated
    python benchmarks/readiness.py --time   # on a GPU: also run the report on ResNet-18 with 1,000 CIFAR-10 images

Every stage is a count of *units* of work — forward passes, gradients (a forward and a backward pass) and
Hessian-vector products — times the images each sees; the units' FLOPs per image are measured with PyTorch's FLOP
counter on synthetic inputs of the real size (``benchmarks/full_scale.py``'s ``units``). Estimated seconds divide by
an effective throughput (``--tflops``, default 40 TFLOP/s: the book's assumption for one H100 running fp32
curvature in small batches). Peak memory is the sum of the eigenvalue stage's matrices (about four k × P
float32 matrices for the k layers iterated together — ``sensitivity.EIGEN_ELEMENTS`` / P of them — and P
parameters: the vectors, their products, and the batched product's buffers) and
the activations of one Hessian-vector product on a batch of ``config.BATCHES["full"]["weights"]`` images.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from full_scale import units  # noqa: E402  (the book's FLOP counter of the four kinds of unit)

from utils import config, models, readiness, sensitivity, setups  # noqa: E402

SETTINGS = {  # the chapter's settings per scale (chapters/08_your_own_model.ipynb, SIZES)
    "small": dict(n_probes=128, eig_iters=30, n_random=16, n_draws=8, max_flips=32, budgets=(2.5, 3, 3.5, 4),
                  reference_bits=2),
    "full": dict(n_probes=32, eig_iters=15, n_random=8, n_draws=4, max_flips=32, budgets=(3, 4, 5, 6),
                 reference_bits=4),
}
WIDTHS = inspect.signature(readiness.report).parameters["bits"].default  # the report's default widths
BITS = len(WIDTHS)


def stages(n_layers: int, n_cal: int, n_eval: int, s: dict) -> list[tuple[str, str, float]]:
    """(stage, unit, images processed) of one report: the counts of its code (utils.readiness and the modules it
    calls) for ``n_layers`` layers, ``n_cal`` calibration and ``n_eval`` evaluation images and settings ``s``."""
    ks = {2**i for i in range(s["max_flips"].bit_length())} | {s["max_flips"]}  # random flips: k = 1, 2, 4, …, max
    uniform = sum(float(b).is_integer() and int(b) in WIDTHS for b in s["budgets"])  # budgets that are a width
    return [
        ("curvature: Hutchinson probes", "Hessian-vector product", s["n_probes"] * n_cal),
        ("curvature: gradient", "training step", n_cal),
        ("eigenvalues: power iteration, all layers at once", "Hessian-vector product",
         s["eig_iters"] * n_layers * n_cal),
        ("one layer at a time", "forward", (n_layers * BITS + 1) * n_eval),
        ("rounding gap: evaluations", "forward", BITS * (2 + s["n_draws"]) * n_eval),
        ("rounding gap: adversarial rounding's gradient", "training step", BITS * n_cal),
        ("inputs at risk", "forward", (1 + BITS) * (n_cal + n_eval)),
        ("bit flips: attack (gradient + one trial per layer, per flip)", "training step", s["max_flips"] * n_cal),
        ("bit flips: attack trials", "forward", s["max_flips"] * n_layers * n_cal),
        ("bit flips: evaluations", "forward", (s["max_flips"] + 2 + len(ks) * s["n_draws"]) * n_eval),
        ("mixed precision", "forward", (len(s["budgets"]) * (s["n_random"] + 2) + uniform) * n_eval),
    ]


def estimate(model: torch.nn.Module, shape: tuple[int, ...], n_cal: int, n_eval: int, s: dict,
             tflops: float) -> tuple[list[dict], float]:
    """Per-stage PFLOP and seconds at ``tflops``, and the estimated peak memory in GB."""
    cost = units(model, shape)
    n_layers = len(sensitivity.quantizable_layers(model))
    rows = [{"stage": name, "PFLOP": cost[unit].flops * count / 1e15,
             "seconds": cost[unit].flops * count / (tflops * 1e12)} for name, unit, count in stages(
                 n_layers, n_cal, n_eval, s)]
    size = sum(p.numel() for p in model.parameters())
    activations = cost["Hessian-vector product"].saved_bytes * config.BATCHES["full"]["weights"]
    group = min(n_layers, max(1, sensitivity.EIGEN_ELEMENTS // size))  # layers iterated together
    memory = 4 * group * size * 4 + activations  # held together while the eigenvalues are iterated
    return rows, memory / 1e9


def show(title: str, rows: list[dict], memory: float) -> None:
    """Print one model's estimate."""
    total = sum(r["seconds"] for r in rows)
    print(f"\n{title}: {sum(r['PFLOP'] for r in rows) * 1e3:.3g} TFLOP, about {total:.3g} s; peak memory about "
          f"{memory:.3g} GB")
    for r in rows:
        print(f"  {r['seconds']:8.3g} s  {r['PFLOP'] * 1e6:10.4g} GFLOP  {r['stage']}")


def small(tflops: float) -> None:
    """The whole report on the digits CNN, timed here, beside its FLOP estimate."""
    from utils.chapters import ch08_your_own_model as here

    config.use("small", 0)
    t = setups.load(here.SETUPS, progress=False)["cnn on digits"]
    start = time.perf_counter()
    report = readiness.report(t.model, (t.x, t.y), progress=False, **SETTINGS["small"])
    seconds = time.perf_counter() - start
    print(f"digits CNN, {len(t.x)} test images, {torch.get_num_threads()} threads: report in {seconds:.1f} s")
    for stage, s in report.seconds.items():
        print(f"  {s:6.2f} s  {stage}")
    rows, memory = estimate(t.model, tuple(t.x.shape[1:]), len(t.x) // 2, len(t.x) - len(t.x) // 2,
                            SETTINGS["small"], tflops)
    show("digits CNN (estimate at the GPU's throughput; a CPU reaches far less)", rows, memory)


def resnet(tflops: float, run: bool) -> None:
    """ResNet-18 with 1,000 CIFAR-10 images (500 to calibrate, 500 to evaluate): estimated, and timed on a GPU."""
    config.use("full", 0)
    show("ResNet-18, 1,000 CIFAR-10 images (estimate)", *estimate(models.resnet18(10), (3, 32, 32), 500, 500,
                                                                  SETTINGS["full"], tflops))
    if not (run and torch.cuda.is_available()):
        print("\n(no GPU: the ResNet-18 numbers above are estimates; run with --time on a GPU to measure them)")
        return
    device = torch.device("cuda")
    model = models.resnet18(10).to(device).eval()
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(1000, 3, 32, 32, generator=gen, device=device)
    y = torch.randint(0, 10, (1000,), generator=gen, device=device)
    torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    report = readiness.report(model, (x, y), progress=False, **SETTINGS["full"])
    torch.cuda.synchronize(device)
    print(f"\nResNet-18 on {torch.cuda.get_device_name(device)}: report in {time.perf_counter() - start:.1f} s, "
          f"peak memory {torch.cuda.max_memory_allocated(device) / 1e9:.2f} GB")
    for stage, s in report.seconds.items():
        print(f"  {s:6.2f} s  {stage}")


def main() -> None:
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflops", type=float, default=40.0, help="effective throughput assumed for estimates")
    parser.add_argument("--time", action="store_true", help="on a GPU: run the report on ResNet-18 and time it")
    args = parser.parse_args()
    small(args.tflops)
    resnet(args.tflops, args.time)


if __name__ == "__main__":
    main()
