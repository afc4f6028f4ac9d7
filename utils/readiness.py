"""A quantization-readiness report for any PyTorch classifier: per layer and bit-width the predicted and the
measured cost of rounding, the sensitivity rankings and how well each matches measurement, the gap to the worst
rounding on the same grid, the inputs at risk, the int8 model's exposure to bit flips, and mixed precision
under a size budget measured against uniform, random and reversed allocations (chapter 8).

    python -m utils.readiness --arch resnet18 --weights model.pt --dataset cifar10 --out report.html

Predictions are fit on *calibration* data and measurements made on *evaluation* data the fit never saw (by
default a random half of the data each). The model given is never changed: the report works on a copy in eval
mode (batch-norm layers use their running statistics), with every parameter trainable.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from . import (
    allocation,
    checks,
    config,
    exposure,
    readiness_html,
    readiness_inputs,
    rounding,
    sensitivity,
    weights,
)
from .quant import PerTensor, QuantSpec

RANKINGS = {  # label → column of Report.ranking: the sensitivity metrics compared with measurement
    "diagonal Σ Δ²Hᵢᵢ/24 (this book)": "predicted",
    "trace Tr H/n · ‖Q(W) − W‖² (HAWQ-V2)": "trace metric",
    "top eigenvalue λ·‖Q(W) − W‖² (HAWQ-V1)": "eigenvalue metric",
    "top eigenvalue per weight λ/n (HAWQ-V1's order)": "eigenvalue per weight",
    "rounding error ‖Q(W) − W‖² alone (no curvature)": "error norm²",
}


@dataclass
class Report:
    """What :func:`report` found, as tables (pandas) a notebook shows and :meth:`write_html` renders."""

    name: str
    summary: dict[str, Any]
    layers: pd.DataFrame
    sensitivity: pd.DataFrame
    ranking: pd.DataFrame
    spearman: pd.DataFrame
    rounding: pd.DataFrame
    inputs: pd.DataFrame
    margins: np.ndarray
    bit_flips: pd.DataFrame
    pareto: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table by name: layers, sensitivity, ranking, spearman, rounding, inputs, bit flips, pareto."""
        return {"layers": self.layers, "sensitivity": self.sensitivity, "ranking": self.ranking,
                "spearman": self.spearman, "rounding": self.rounding, "inputs": self.inputs,
                "bit flips": self.bit_flips, "pareto": self.pareto}

    def write_html(self, path: str | Path, *, book_url: str = "") -> Path:
        """Write the self-contained HTML page (:func:`readiness_html.write`); returns its path."""
        return readiness_html.write(self, path, book_url=book_url)


@contextmanager
def _stage(seconds: dict[str, float], name: str, bar: tqdm) -> Iterator[None]:
    """Time one stage of the report and advance the progress bar."""
    bar.set_description(f"readiness: {name}")
    start = time.perf_counter()
    yield
    seconds[name] = time.perf_counter() - start
    bar.update()


def split_halves(x: torch.Tensor, y: torch.Tensor, seed: int) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """((x, y) for calibration, (x, y) for evaluation): a random half each, the permutation drawn from ``seed``
    (the report's split, so that a caller can measure more on the same evaluation half)."""
    checks.batch(x, y)
    if len(x) < 8:
        raise ValueError(f"data must hold at least 8 samples to split into calibration and evaluation, got {len(x)}")
    order = torch.randperm(len(x), generator=config.generator("readiness", "split", seed=seed)).to(x.device)
    first, rest = order[: len(x) // 2], order[len(x) // 2:]
    return (x[first], y[first]), (x[rest], y[rest])


def _predictions(work: nn.Module, fit: tuple[torch.Tensor, torch.Tensor], layers: list[str],
                 grids: dict[int, QuantSpec], stats: pd.DataFrame, reference_bits: int, n_probes: int,
                 generator: torch.Generator) -> pd.DataFrame:
    """Per layer and bit-width, fit on ``fit``: the curvature's prediction and trace (with standard errors), the
    first-order spread, the adversary's first-order gain and ‖Q(W) − W‖²; adds to ``stats`` what a per-tensor
    grid is predicted to cost against a per-channel one at ``reference_bits``."""
    diag, curv = sensitivity.layer_curvature(work, *fit, layers, grids, n_probes=n_probes, generator=generator)
    g, rows = weights.gradient(work, *fit), []
    for n in layers:
        for b, spec in grids.items():
            steps, error = rounding.step_sizes(work, spec, layers=[n]), rounding.rounding_error(work, spec, layers=[n])
            rows.append({"layer": n, "bits": b, "weights": stats.loc[n, "weights"],
                         "spread": rounding.first_order_spread(g, steps), "error norm²": error[n].pow(2).sum().item(),
                         "adversarial gain": rounding.adversarial_gain(g, steps)})
    per_tensor = grids[reference_bits].but(granularity=PerTensor())  # one Δ per tensor, against the grid asked for
    stats[f"per-tensor / per-channel cost at {reference_bits} bits"] = [
        rounding.predicted_increase(diag, rounding.step_sizes(work, per_tensor, layers=[n]))
        / max(rounding.predicted_increase(diag, rounding.step_sizes(work, grids[reference_bits], layers=[n])), 1e-30)
        for n in layers]
    return pd.DataFrame(rows).merge(curv, on=["layer", "bits"])


def _spearman(table: pd.DataFrame, bits: list[int]) -> pd.DataFrame:
    """Spearman's ρ of every ranking (:data:`RANKINGS`) against the measured loss change, across the layers at
    each bit-width and across all (layer, bit-width) cells — what the integer program relies on — with the share
    of layers whose measured change is beyond 2 standard errors (below that, ranking by measurement is noise)."""
    rho = lambda t: sensitivity.rankings(t, RANKINGS)["Spearman ρ vs measured"]  # noqa: E731
    out = pd.concat({**{b: rho(t.set_index("layer")) for b, t in table.groupby("bits")},
                     "all (layer, bits)": rho(table)}, axis=1)[[*bits, "all (layer, bits)"]]
    resolved = (table["measured"].abs() > 2 * table["measured se"]).groupby(table["bits"]).mean()
    out.loc["share of layers measured beyond 2 s.e."] = [*resolved[bits], resolved.mean()]
    return out


def report(
    model: nn.Module, data: Any, *, calibration: Any = None, bits: Sequence[int] = (8, 6, 4, 3, 2),
    reference_bits: int = 4, budgets: Sequence[float] = (2.5, 3, 3.5, 4), spec: QuantSpec | None = None,
    n_probes: int = 64, eig_iters: int = 20, n_random: int = 8, n_draws: int = 4, max_flips: int = 32,
    max_images: int | None = None, input_range: tuple[float, float] | None = (0.0, 1.0), name: str = "model",
    seed: int | None = None, progress: bool = True,
) -> Report:
    """The quantization-readiness report of ``model`` (any classifier of Linear and Conv layers, with or without
    batch-norm) on labelled ``data`` (tensors (x, y) or a DataLoader): predictions (curvature, adversaries, the
    rounding's reach) are fit on ``calibration`` (default: a random half of ``data``) and measured on the rest.
    ``bits``: the widths studied; ``reference_bits``: where layers are ranked; ``budgets``: average bits per
    weight for mixed precision; ``spec``: the weight grid (default :meth:`QuantSpec.for_weights`, per channel).
    Bad inputs are a ``ValueError`` or ``TypeError`` naming what is wrong; ``model`` is never changed."""
    layers = sensitivity.quantizable_layers(model)
    bits = sorted({checks.integer(f"bits[{i}]", b, minimum=2, maximum=8) for i, b in enumerate(
        checks.sequence("bits", bits, min_len=1))}, reverse=True)
    reference_bits = checks.one_of("reference_bits", reference_bits, tuple(bits))
    template = QuantSpec.for_weights(8) if spec is None else spec
    if not isinstance(template, QuantSpec):
        raise TypeError(f"spec must be a quant.QuantSpec (its bits are replaced by each width), got {spec!r}")
    seed = config.SEED if seed is None else checks.integer("seed", seed, minimum=0)
    max_flips, progress = checks.integer("max_flips", max_flips), checks.flag("progress", progress)
    n_probes, eig_iters = checks.integer("n_probes", n_probes, minimum=2), checks.integer("eig_iters", eig_iters)
    n_random, n_draws = checks.integer("n_random", n_random, minimum=0), checks.integer("n_draws", n_draws)
    budgets = [checks.number(f"budgets[{i}]", b, low=min(bits), high=max(bits))
               for i, b in enumerate(checks.sequence("budgets", budgets, min_len=1))]
    if not isinstance(name, str):
        raise TypeError(f"name must be a string (the report's title), got {type(name).__name__}")
    work = copy.deepcopy(model).eval().requires_grad_(True)
    x, y = readiness_inputs.checked_data(work, *readiness_inputs.labelled_data(data, max_images=max_images), "data",
                                         input_range)
    if calibration is None:
        (xc, yc), (x, y) = split_halves(x, y, seed)
    else:
        xc, yc = readiness_inputs.checked_data(work, *readiness_inputs.labelled_data(calibration, "calibration"),
                                               "calibration", input_range)
    dev, grids, seconds = checks.model_device(work), {b: template.but(bits=b) for b in bits}, {}
    gen = lambda *key: config.generator("readiness", *key, seed=seed, device=dev)  # noqa: E731
    with config.full_precision():
        base_loss, base_correct = sensitivity.outcomes_unchecked(work, x, y)
    with tqdm(total=7, **config.progress_options(progress)) as bar:
        with _stage(seconds, "curvature", bar):
            stats = sensitivity.layer_statistics(work, layers)
            table = _predictions(work, (xc, yc), layers, grids, stats, reference_bits, n_probes, gen("hutchinson"))
        with _stage(seconds, "eigenvalues", bar):
            top = sensitivity.layer_top_eigenvalues(work, xc, yc, layers, iters=eig_iters, generator=gen("eig"),
                                                    progress=progress)
        with _stage(seconds, "one layer at a time", bar):
            table = table.merge(sensitivity.measure_layers(work, x, y, layers, grids, progress=progress,
                                                           base=(base_loss, base_correct)), on=["layer", "bits"])
        table["trace metric"] = table["trace"] / table["weights"] * table["error norm²"]
        table["top eigenvalue"] = table["layer"].map(top)
        table["eigenvalue metric"] = table["top eigenvalue"] * table["error norm²"]
        table["eigenvalue per weight"] = table["top eigenvalue"] / table["weights"]
        spearman = _spearman(table, bits)
        with _stage(seconds, "rounding gap", bar):
            gap = exposure.rounding_gap(work, (xc, yc), x, y, grids, n_draws, seed, base=(base_loss, base_correct))
        with _stage(seconds, "inputs at risk", bar):
            inputs, margins = exposure.inputs_at_risk(work, xc, x, grids)
        with _stage(seconds, "bit flips", bar):
            flips = exposure.bit_flips(work, (xc, yc), x, y, max_flips, n_draws, seed)
        with _stage(seconds, "mixed precision", bar):
            front = allocation.pareto(work, x, y, table, budgets, template, n_random=n_random,
                                      generator=config.generator("readiness", "alloc", seed=seed),
                                      base=(base_loss, base_correct))
    halved = flips[flips["targeted"] <= flips.loc[0, "targeted"] / 2]["flips"]
    summary = {"model": name, "layers": len(layers), "weights": int(stats["weights"].sum()),
               "calibration samples": len(xc), "evaluation samples": len(x), "device": str(dev),
               "float accuracy": base_correct.mean().item(), "float loss": base_loss.mean().item(),
               "int8 accuracy": flips.loc[0, "targeted"],
               "flips to halve": int(halved.iloc[0]) if len(halved) else None,
               "reference bits": reference_bits, "seed": seed, "probes": n_probes, "seconds": sum(seconds.values())}
    return Report(name, summary, stats, table, table[table["bits"] == reference_bits].set_index("layer"), spearman,
                  gap, inputs, margins, flips, front, seconds)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: build the model, read its weights and data, write the HTML report (see the module's
    docstring). Returns the exit status (2 for bad arguments, with a message naming what was wrong)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m utils.readiness", description=__doc__.splitlines()[0])
    parser.add_argument("--arch", required=True, help="the book's mlp, cnn or resnet18 (with --dataset), or a "
                        "torchvision classification architecture (e.g. resnet18, mobilenet_v2)")
    parser.add_argument("--weights", required=True, help="a state dict saved with torch.save (read weights_only)")
    parser.add_argument("--out", required=True, help="the HTML file to write")
    parser.add_argument("--dataset", choices=tuple(readiness_inputs.SHAPES),
                        help="the book's data set the model was built for (its test images unless --data is given)")
    parser.add_argument("--data", help="a folder with one sub-folder of images per class (sorted names = labels)")
    parser.add_argument("--image-size", type=int, help="resize the folder's images to this square size")
    parser.add_argument("--n-images", type=int, default=1000, help="images to use, half to calibrate (default 1000)")
    parser.add_argument("--bits", type=int, nargs="+", default=[8, 6, 4, 3, 2])
    parser.add_argument("--reference-bits", type=int, default=4)
    parser.add_argument("--budgets", type=float, nargs="+", default=[2.5, 3, 3.5, 4], help="bits per weight")
    parser.add_argument("--probes", type=int, default=32, help="Hutchinson probes (default 32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--book-url", default="", help="the rendered book's address, for the panels' links")
    args = parser.parse_args(argv)
    try:
        if args.dataset is None and args.data is None:
            raise ValueError("give the data: --data FOLDER, or --dataset NAME for one of the book's data sets")
        model = readiness_inputs.build(args.arch, readiness_inputs.load_weights(args.weights), dataset=args.dataset)
        model = model.to(config.device())
        if args.data is not None:
            channels = readiness_inputs.SHAPES[args.dataset][0] if args.dataset else 3
            x, y, _ = readiness_inputs.image_folder(args.data, channels=channels, size=args.image_size,
                                                    max_images=args.n_images, seed=args.seed)
        else:
            x, y = readiness_inputs.book_data(args.dataset, max_images=args.n_images, seed=args.seed)
        result = report(model, (x, y), bits=args.bits, reference_bits=args.reference_bits, budgets=args.budgets,
                        n_probes=args.probes, seed=args.seed, name=f"{args.arch} ({Path(args.weights).name})")
        path = result.write_html(args.out, book_url=args.book_url)
    except (ValueError, TypeError, RuntimeError, OSError) as err:  # bad arguments, missing data, unwritable --out
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}\n" + "\n".join(f"- {line}" for line in readiness_html.headline(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
