"""Chapter 8, your own model: the models the readiness report runs on, its replications, and HAWQ-V3's published
ResNet-18 integer program — its per-layer traces and rounding errors from the authors' repository
(``data/reference/hawq_resnet18.json``, with source, commit and license), re-solved here and set beside the
allocation the same program gives for the book's own ResNet-18."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import allocation, checks, config, readiness
from ..quant import QuantSpec
from ..setups import DIGITS, Setup, Trained, load

SETUPS = {"small": DIGITS, "full": (Setup("resnet18", "cifar10"),)}
REFERENCE = Path("data/reference/hawq_resnet18.json")
HAWQ_BITS = (8, 4)
"""HAWQ-V3 allocates 4 or 8 bits per layer (what integer hardware runs)."""


def hawq_reference() -> dict:
    """HAWQ-V3's published ResNet-18 program (:data:`REFERENCE`): under the book's root, else next to the package
    (a smoke test or a copied chapter runs with another root)."""
    for path in (config.resolve(REFERENCE), Path(__file__).resolve().parents[2] / REFERENCE):
        if path.is_file():
            return json.loads(path.read_text())
    raise FileNotFoundError(f"{REFERENCE} is missing from the book's root and the package's repository")


def _groups(ref: dict) -> list[list[int]]:
    """The layers the program decides together: each tied pair (a block's first convolution and its shortcut's
    1×1 convolution get the same bits) is one variable."""
    groups = [[i] for i in range(len(ref["layers"]))]
    for a, b in ref["tied"]:
        groups[a], groups[b] = groups[a] + [b], []
    return [g for g in groups if g]


def hawq_problem(ref: dict, trace_per_weight: Sequence[float] | None = None,
                 delta_square: tuple[Sequence[float], Sequence[float]] | None = None) -> dict[str, np.ndarray]:
    """HAWQ-V3's program for ResNet-18: costs Ω_{l,b} = (Tr H_l / n_l)·‖Q_b(W_l) − W_l‖² for b ∈ {8, 4}, the weights
    n_l, the traces and the bit operations of each choice (bops/16 at 8 bits, bops/64 at 4), from HAWQ's numbers
    or from other traces and squared errors (the 19 layers in HAWQ's order)."""
    trace = np.asarray(ref["trace_per_weight"] if trace_per_weight is None else trace_per_weight, dtype=float)
    d8, d4 = (np.asarray(v, dtype=float) for v in (
        (ref["delta_square_8bit"], ref["delta_square_4bit"]) if delta_square is None else delta_square))
    if not trace.shape == d8.shape == d4.shape == (len(ref["layers"]),):
        raise ValueError(f"traces and squared errors must have one entry per layer ({len(ref['layers'])})")
    bops = np.asarray(ref["bops"], dtype=float)
    return {"costs": np.stack([trace * d8, trace * d4], 1), "trace": trace,
            "weights": np.asarray(ref["weights"], dtype=np.int64), "bops": np.stack([bops / 16, bops / 64], 1)}


def solve_hawq(ref: dict, kind: str, limit: float, problem: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The bits per layer (19, HAWQ's order) that minimize Σ Ω subject to HAWQ's limit: ``kind`` "modelsize"
    (weight bits ≤ 4-bit size + limit·(8-bit size − 4-bit size)) or "bops" (the same for bit operations), with
    the tied layers decided together, by :func:`allocation.allocate`."""
    checks.one_of("kind", kind, ("modelsize", "bops"))
    limit = checks.number("limit", limit, low=0.0, high=1.0)
    p = hawq_problem(ref) if problem is None else problem
    used = np.outer(p["weights"], HAWQ_BITS).astype(float) if kind == "modelsize" else p["bops"]
    groups = _groups(ref)
    merged = lambda a: np.stack([a[g].sum(0) for g in groups])  # noqa: E731
    budget = used[:, 1].sum() + limit * (used[:, 0].sum() - used[:, 1].sum())
    chosen = allocation.allocate(merged(p["costs"]), merged(p["weights"]), HAWQ_BITS, budget, resource=merged(used))
    out = np.zeros(len(ref["layers"]), dtype=int)
    for g, b in zip(groups, chosen, strict=True):
        out[g] = b
    return out


def hawq_table(ref: dict, problem: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """For each of HAWQ's six published mixed-precision settings: HAWQ's allocation, the one re-solved here, the
    layers where they differ, both objectives, and the model zoo's ImageNet top-1 (after quantization-aware
    training, activations quantized too)."""
    p, rows = hawq_problem(ref) if problem is None else problem, []
    for kind in ("modelsize", "bops"):
        for limit in (0.75, 0.5, 0.25):
            name = f"{kind}_{limit}"
            ours, theirs = solve_hawq(ref, kind, limit, p), np.asarray(ref["published_allocations"][name])
            value = lambda a: float(p["costs"][np.arange(len(a)), (a == 4).astype(int)].sum())  # noqa: E731
            rows.append({"setting": name, "HAWQ's 4-bit layers": " ".join(map(str, np.flatnonzero(theirs == 4))),
                         "re-solved 4-bit layers": " ".join(map(str, np.flatnonzero(ours == 4))),
                         "layers that differ": int((ours != theirs).sum()), "objective, re-solved": value(ours),
                         "objective, HAWQ's": value(theirs), "top-1 (HAWQ, ImageNet)": ref["model_zoo_top1"][name]})
    return pd.DataFrame(rows).set_index("setting")


def book_name(hawq_layer: str) -> str:
    """The book's ResNet-18 weight tensor for one of HAWQ's layer names: ``stage2.unit1.conv1`` →
    ``1.layer2.0.conv1.weight``, ``stage2.unit1.identity`` → ``1.layer2.0.downsample.0.weight``."""
    stage, unit, kind = hawq_layer.split(".")
    block = f"1.layer{stage.removeprefix('stage')}.{int(unit.removeprefix('unit')) - 1}"
    return f"{block}.downsample.0.weight" if kind == "identity" else f"{block}.{kind}.weight"


def own_problem(ref: dict, report: readiness.Report) -> dict[str, np.ndarray]:
    """HAWQ's program with the book's own ResNet-18 in it: each of the 19 layers' Tr H/n and ‖Q(W) − W‖² at 8
    and 4 bits from the readiness ``report`` (HAWQ's bit operations, which depend on the input size, are kept)."""
    t = report.sensitivity.set_index(["layer", "bits"])
    names = [book_name(n) for n in ref["layers"]]
    missing = [n for n in names if (n, 8) not in t.index or (n, 4) not in t.index]
    if missing:
        raise ValueError(f"the report lacks 8- and 4-bit rows for {missing[:3]}: run it on the book's ResNet-18 with "
                         "bits including 8 and 4")
    trace = [t.loc[(n, 8), "trace"] / t.loc[(n, 8), "weights"] for n in names]
    return hawq_problem(ref, trace, ([t.loc[(n, 8), "error norm²"] for n in names],
                                     [t.loc[(n, 4), "error norm²"] for n in names]))


def two_widths(t: Trained, report: readiness.Report, *, limit: float = 0.5) -> float:
    """HAWQ-V3's size program on the book's model: each layer at 4 or 8 bits, minimizing the report's predicted
    cost Σ Δ²Hᵢᵢ/24 with the weight bits at most the 4-bit size + ``limit``·(8-bit − 4-bit size); returns that
    allocation's accuracy, rounded to nearest, on the report's evaluation half."""
    costs = report.sensitivity.pivot_table(index="layer", columns="bits", values="predicted", sort=False)
    if not {8, 4} <= set(costs.columns):
        raise ValueError("the report must cover 8 and 4 bits")
    n = report.layers["weights"].loc[costs.index].to_numpy()
    limit = checks.number("limit", limit, low=0.0, high=1.0)
    chosen = allocation.allocate(costs[list(HAWQ_BITS)].to_numpy(), n, HAWQ_BITS, (4 + 4 * limit) * n.sum())
    _, (x, y) = readiness.split_halves(t.x, t.y, report.summary["seed"])
    work = copy.deepcopy(t.model).eval().requires_grad_(True)
    return allocation.measure(work, x, y, dict(zip(costs.index, chosen.tolist(), strict=True)),
                              QuantSpec.for_weights(8))["accuracy"]


def replicate(seeds: Sequence[int], *, n_eval: int | None, **settings) -> dict[tuple[int, str], readiness.Report]:
    """The readiness report of every model of :data:`SETUPS` at each seed of ``seeds`` (an independent
    replication: its own data split, training and draws), with the report's ``settings``."""
    out = {}
    for seed in seeds:
        for key, t in load(SETUPS, n_eval=n_eval, seed=seed, progress=False).items():
            out[seed, key] = readiness.report(t.model, (t.x, t.y), name=key, seed=seed, progress=False, **settings)
    return out


KEYS = ["seed", "model", "budget (bits/weight)"]


@dataclass(frozen=True)
class Allocations:
    """The Hessian-aware allocation against the others of the same size (:func:`compare_allocations`)."""

    cases: int
    wins: dict[str, str]
    z_uniform: pd.Series
    z_reversed: pd.Series
    lost: list[tuple]
    lost_with_two: str
    lost_by_noise: str
    with_two_bits: str


def compare_allocations(front: pd.DataFrame) -> Allocations:
    """``front``: :func:`allocation.pareto`'s tables with columns seed and model. Per case (seed, model,
    budget): wins — in how many cases the Hessian-aware allocation's loss is below uniform's, below the mean
    random one's and below the reversed one's; z — (Hessian-aware − uniform) and (reversed − Hessian-aware)
    loss in paired standard errors (0 where the two are one allocation); the cases it lost to uniform, those
    where it had put a layer at 2 bits and how far the others were from a tie."""
    table = front.groupby([*KEYS, "strategy"])["loss change"].mean().unstack("strategy")
    wins = {other: (table["Hessian-aware"] < table[other]).where(table[other].notna())
            for other in ("uniform", "random", "reversed")}
    h, u, r = (front[front["strategy"] == k].set_index(KEYS) for k in ("Hessian-aware", "uniform", "reversed"))
    z = lambda t, sign: (sign * t["loss over Hessian-aware"] / t["loss over Hessian-aware se"]).fillna(0.0)  # noqa: E731
    lost = [i for i in u.index if h.loc[i, "loss change"] > u.loc[i, "loss change"]]
    two = [i for i in lost if "2" in h.loc[i, "allocation"].split()]
    noise = [abs(u.loc[i, "loss over Hessian-aware"]) / u.loc[i, "loss over Hessian-aware se"]
             for i in lost if i not in two]
    aware = front[front["strategy"] == "Hessian-aware"]
    return Allocations(
        cases=len(table), wins={k: f"{int(v.sum())} of {int(v.notna().sum())}" for k, v in wins.items()},
        z_uniform=z(u, -1), z_reversed=z(r, 1), lost=lost,
        lost_with_two="; ".join(f"{m} at {b:g} bits per weight (seed {sd}): a loss increase of "
                                f"{h.loc[(sd, m, b), 'loss change']:.3f} against {u.loc[(sd, m, b), 'loss change']:.3f}"
                                for sd, m, b in two) or "none",
        lost_by_noise=(f"in the other {len(noise)} the two differ by at most {max(noise):.1f} paired standard errors"
                       + (", a tie within what the evaluation half can measure" if max(noise) <= 2 else ""))
        if noise else "there were no others",
        with_two_bits=f"{int(aware['allocation'].str.split().apply(lambda b: '2' in b).sum())} of {len(aware)}")
