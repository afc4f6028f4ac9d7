"""The readiness report's figures and its self-contained HTML page: one page a reader takes in at a glance, the
figures embedded as base64 PNG (``data:`` URIs), no script and no external resource, so it reads offline; each
panel links to the chapter that derives it. The panel functions draw on given axes, so that a notebook shows
the same figures (:func:`draw`)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from . import checks, config, plotting

CH3, CH4, CH8 = ("chapters/03_weight_perturbations.html", "chapters/04_post_training_quantization.html",
                 "chapters/08_your_own_model.html")


def _symlog(ax: Axes, values: np.ndarray, axis: str, threshold: float | None = None) -> None:
    """A symmetric log axis, linear within ± ``threshold`` (default: the 10th percentile of the nonzero |values|),
    with ticks at a few powers of ten on each side."""
    values = np.abs(np.asarray(values, dtype=float))
    values = values[np.isfinite(values) & (values > 0)]
    threshold = threshold or (float(np.quantile(values, 0.1)) if len(values) else 1e-6)
    low, high = int(np.floor(np.log10(threshold))), int(np.ceil(np.log10(max(values.max(initial=0), threshold))))
    decades = list(range(low, high + 1, max(1, (high - low + 3) // 4)))
    ticks = sorted({0.0, *(10.0**k for k in decades), *(-(10.0**k) for k in decades)})
    (ax.set_xscale if axis == "x" else ax.set_yscale)("symlog", linthresh=threshold)
    (ax.set_xticks if axis == "x" else ax.set_yticks)(ticks, ["0" if t == 0 else f"{t:.0e}" for t in ticks])


def draw_sensitivity(ax: Axes, report: Any) -> None:
    """Predicted Σ Δ²Hᵢᵢ/24 against the measured loss change, one point per layer and bit-width (bars: 2 standard
    errors of the measurement; grey: ± the first-order spread one rounding scatters by)."""
    t = report.sensitivity
    for i, (b, s) in enumerate(t.groupby("bits", sort=False)):
        ax.errorbar(s["predicted"], s["measured"], yerr=2 * s["measured se"], fmt="o", ms=4, capsize=2,
                    color=f"C{i}", label=f"{b} bits")
        ax.errorbar(s["predicted"], s["measured"], yerr=s["spread"], fmt="none", color="grey", alpha=0.3, lw=3)
    lim = np.array([t["predicted"].abs().min(), t["predicted"].abs().max()])
    ax.plot(lim, lim, "k--", lw=1, label="measured = predicted")
    if (t["predicted"] > 0).all():
        ax.set_xscale("log")
    else:  # a noisy estimate of a nearly flat layer can come out negative
        _symlog(ax, t["predicted"], "x")
    _symlog(ax, np.concatenate([t["measured"], t["predicted"]]), "y", float(t["measured se"].median()) or None)
    ax.tick_params(axis="x", labelrotation=30)
    ax.set(xlabel=r"predicted $\sum_i \Delta_i^2 H_{ii}/24$", ylabel="measured loss change",
           title="one layer rounded at a time")
    ax.legend(fontsize="x-small", ncol=2)


def draw_ranking(ax: Axes, report: Any) -> None:
    """Each layer's measured loss change at the reference bits (bars, ± 2 standard errors) beside the
    curvature's prediction (diamonds), in the model's order."""
    r = report.ranking
    pos = np.arange(len(r))
    ax.barh(pos, r["measured"], xerr=2 * r["measured se"], color="C0", alpha=0.7, label="measured")
    ax.plot(r["predicted"], pos, "D", color="C1", ms=5, label="predicted")
    ax.set_yticks(pos, [n.removesuffix(".weight") for n in r.index], fontsize="x-small" if len(r) > 8 else "small")
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=0.5)
    ax.set(xlabel="loss change, this layer alone", ylabel="layer",
           title=f"layers at {report.summary['reference bits']} bits")
    ax.legend(fontsize="x-small")


def draw_rounding(ax: Axes, report: Any) -> None:
    """Accuracy against bits: round-to-nearest, random up/down rounding (mean of its draws) and adversarial
    rounding on the same grid, with the float model's accuracy."""
    g = report.rounding.groupby(["method", "bits"], sort=False)["accuracy"].mean().unstack(0)
    for method, style in (("nearest", "o-"), ("random up/down", "s--"), ("adversarial", "v-")):
        ax.plot(g.index, g[method], style, label=method)
    ax.axhline(report.summary["float accuracy"], color="k", lw=1, ls=":", label="float")
    ax.set(xlabel="bits", ylabel="accuracy (evaluation data)", title="whole model, three roundings",
           ylim=(0, 1.02))
    ax.legend(fontsize="x-small")


def draw_inputs(ax: Axes, report: Any) -> None:
    """The evaluation inputs' logit margins (log scale) against each bit-width's reach: inputs left of a line
    are at risk at those bits."""
    m = report.margins[report.margins > 0]
    if len(m):
        ax.hist(np.log10(m), bins=40, color="lightgrey", label="margins")
    for i, row in report.inputs.iterrows():
        if row["reach"] > 0:
            ax.axvline(np.log10(row["reach"]), color=f"C{i}", lw=1.5,
                       label=f"{int(row['bits'])}-bit reach ({row['flipped']:.1%} flipped)")
    ax.set(xlabel=r"$\log_{10}$ logit margin (float model)", ylabel="inputs", title="which inputs will flip")
    ax.legend(fontsize="x-small")


def draw_bit_flips(ax: Axes, report: Any) -> None:
    """The int8 model's accuracy against the number of flipped bits: the gradient-guided attack (fit on the
    calibration data) and random flips, with half the int8 accuracy marked."""
    f = report.bit_flips
    ax.plot(f["flips"], f["targeted"], "o-", ms=3, label="targeted (fit on calibration data)")
    r = f.dropna(subset=["random"])
    ax.plot(r["flips"], r["random"], "s--", label="random")
    ax.axhline(report.summary["int8 accuracy"] / 2, color="k", ls=":", lw=1, label="half the int8 accuracy")
    ax.set(xlabel="bits flipped", ylabel="accuracy (evaluation data)", title="int8 model: bit flips", ylim=(0, 1.02))
    ax.legend(fontsize="x-small")


def draw_pareto(ax: Axes, report: Any) -> None:
    """Measured accuracy against model size (bits per weight) of every allocation: Hessian-aware, uniform,
    random and reversed, with the float model's accuracy."""
    p = report.pareto
    styles = {"random": dict(fmt=".", alpha=0.6), "reversed": dict(fmt="v"), "Hessian-aware": dict(fmt="o-"),
              "uniform": dict(fmt="s", ms=10, mfc="none", mew=1.5)}  # uniform drawn around a Hessian-aware twin
    for strategy, style in styles.items():
        s = p[p["strategy"] == strategy].sort_values("size (bits/weight)")
        fmt = style.pop("fmt")
        ax.plot(s["size (bits/weight)"], s["accuracy"], fmt, **{"ms": 5, **style}, label=strategy)
    ax.axhline(report.summary["float accuracy"], color="k", lw=1, ls=":", label="float")
    ax.set(xlabel="weight bits per weight", ylabel="accuracy (evaluation data)", title="mixed precision, measured")
    ax.legend(fontsize="x-small")


PANELS: dict[str, tuple[str, Callable[[Axes, Any], None], str, str]] = {  # key → title, drawer, page, anchor
    "sensitivity": ("Predicted against measured", draw_sensitivity, CH4, "predicting-the-damage-from-the-curvature"),
    "ranking": ("Which layers are sensitive", draw_ranking, CH8, "ranking-the-layers"),
    "rounding": ("How far from the worst rounding", draw_rounding, CH4,
                 "the-key-experiment-equal-budgets-different-directions"),
    "inputs": ("Which inputs will flip", draw_inputs, CH4, "which-inputs-change-their-prediction-h2"),
    "bit flips": ("Bit-flip exposure of the int8 model", draw_bit_flips, CH3, "bit-flips-in-an-int8-model"),
    "pareto": ("Mixed precision under a size budget", draw_pareto, CH8, "mixed-precision-under-a-size-budget"),
}


def draw(report: Any, key: str, *, width: float = 5.0, height: float = 3.8) -> Figure:
    """One panel (:data:`PANELS`) as a matplotlib Figure, drawn without pyplot (nothing is shown or kept)."""
    checks.one_of("key", key, tuple(PANELS))
    fig = Figure(figsize=(checks.positive("width", width), checks.positive("height", height)), layout="constrained")
    PANELS[key][1](fig.subplots(), report)
    return fig


def _png(fig: Figure) -> str:
    """A figure as a ``data:`` URI of a PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def allocations(pareto: pd.DataFrame) -> pd.DataFrame:
    """The allocations table in short: per budget and strategy, the mean size, predicted and measured loss change
    and accuracy over the draws (one draw except for random allocations), and the range of the accuracy."""
    g = pareto.assign(**{"budget (bits/weight)": pareto["budget (bits/weight)"].map("{:g}".format)}).groupby(
        ["budget (bits/weight)", "strategy"], sort=False)
    out = g[["size (bits/weight)", "predicted", "loss change", "accuracy"]].mean()
    out["lowest accuracy"], out["highest accuracy"], out["draws"] = g["accuracy"].min(), g["accuracy"].max(), g.size()
    out["bits per layer"] = g["allocation"].first().where(out["draws"] == 1, "(various)")
    return out


def headline(report: Any) -> list[str]:
    """The report's findings in a few sentences (plain text), from its tables."""
    s, ref = report.summary, report.summary["reference bits"]
    near = report.rounding[(report.rounding["method"] == "nearest") & (report.rounding["bits"] == ref)].iloc[0]
    worst = report.rounding[report.rounding["bits"] == ref].groupby("method")["accuracy"].mean()
    r = report.ranking
    rho, resolved = report.spearman[ref].iloc[:-1], report.spearman[ref].iloc[-1]  # the last row: the share resolved
    flips = report.bit_flips
    half = flips[flips["targeted"] <= s["int8 accuracy"] / 2]["flips"]
    lines = [f"Float accuracy {s['float accuracy']:.1%} on {s['evaluation samples']} evaluation samples; int8 "
             f"(per channel) {s['int8 accuracy']:.1%}.",
             f"All {s['layers']} layers at {ref} bits, round-to-nearest: accuracy {near['accuracy']:.1%}, loss change "
             f"{near['loss change']:.3g} ± {near['loss change se']:.1g}; adversarial rounding on the same grid "
             f"{worst['adversarial']:.1%}, random up/down {worst['random up/down']:.1%}.",
             f"Most sensitive layer at {ref} bits (measured): {r['measured'].idxmax()}; predicted: "
             f"{r['predicted'].idxmax()}. Spearman ρ against measurement: " + ", ".join(
                 f"{k.split(' (')[0]} {v:.2f}" for k, v in rho.items() if np.isfinite(v)) +
             f" ({resolved:.0%} of the layers measured beyond 2 standard errors).",
             (f"{int(half.iloc[0])} targeted bit flips halve the int8 accuracy" if len(half) else
              f"{int(flips['flips'].max())} targeted bit flips do not halve the int8 accuracy") +
             f"; {int(flips['flips'].max())} random flips leave {flips['random'].dropna().iloc[-1]:.1%}."]
    p = report.pareto.groupby(["budget (bits/weight)", "strategy"])["accuracy"].mean().unstack()
    for budget, row in p.iterrows():
        parts = [f"{k} {row[k]:.1%}" for k in ("Hessian-aware", "uniform", "random", "reversed")
                 if k in row and pd.notna(row[k])]
        lines.append(f"Mixed precision at {budget:g} bits per weight: " + ", ".join(parts) + " (random: mean).")
    return lines


STYLE = """body{font-family:system-ui,sans-serif;margin:1rem auto;max-width:1200px;padding:0 .8rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.05rem;margin:.2rem 0}ul{padding-left:1.2rem}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,480px),1fr));gap:1rem}
.wide{grid-column:1/-1}.panel{border:1px solid #ddd;border-radius:6px;padding:.6rem;overflow-x:auto}
img{max-width:100%;height:auto}
table{border-collapse:collapse;font-size:.78rem}td,th{padding:2px 6px;border-bottom:1px solid #eee}
.note{font-size:.8rem;color:#555}"""


def page(report: Any, *, book_url: str = "") -> str:
    """The report as one HTML page (a string): headline, the six panels with their links to the book, and the
    tables of sizes and ranges, of the rankings' agreement with measurement and of the allocations."""
    if not isinstance(book_url, str):
        raise TypeError(f"book_url must be a string (the rendered book's address, or '' for links relative to the "
                        f"page), got {type(book_url).__name__}")
    esc, blocks = html.escape, []
    with mpl.rc_context():
        plotting.set_style()
        for key, (title, drawer, chapter, anchor) in PANELS.items():
            src = _png(draw(report, key))
            blocks.append(f'<div class="panel"><h2>{esc(title)}</h2><img alt="{esc(title)}" src="{src}">'
                          f'<p class="note">{esc(drawer.__doc__.split(chr(10) + chr(10))[0].replace(chr(10), " "))} '
                          f'<a href="{esc(book_url + chapter)}#{anchor}">How to read it</a></p></div>')
    tables = [("Size and range of each layer", report.layers, CH4, "when-ptq-fails-an-outlier-channel", []),
              ("Rankings against measurement: Spearman ρ per bit-width", report.spearman, CH8,
               "ranking-the-layers", []),
              ("Allocations, measured (random: mean of the draws)", allocations(report.pareto), CH8,
               "mixed-precision-under-a-size-budget", ["accuracy", "lowest accuracy", "highest accuracy"])]
    for title, frame, chapter, anchor, percent in tables:
        blocks.append(f'<div class="panel wide"><h2>{esc(title)}</h2>{plotting.table(frame, percent=percent).to_html()}'
                      f'<p class="note"><a href="{esc(book_url + chapter)}#{anchor}">How to read it</a></p></div>')
    s = report.summary
    items = "".join(f"<li>{esc(line)}</li>" for line in headline(report))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>Quantization readiness: {esc(report.name)}</title>'
            f"<style>{STYLE}</style></head><body><h1>Quantization readiness: {esc(report.name)}</h1><ul>{items}</ul>"
            f'<p class="note">{s["layers"]} layers, {s["weights"]:,} weights; predictions fit on '
            f'{s["calibration samples"]} calibration samples, measured on {s["evaluation samples"]} others; '
            f'{s["probes"]} Hutchinson probes; seed {s["seed"]}; {s["seconds"]:.0f} s on {esc(s["device"])}.</p>'
            f'<div class="grid">{"".join(blocks)}</div></body></html>')


def write(report: Any, path: str | Path, *, book_url: str = "") -> Path:
    """Write :func:`page` to ``path`` (atomically; the folder must exist) and return the path."""
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a str or a pathlib.Path, got {type(path).__name__}")
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"the folder of {path} does not exist: create it first")
    config.write_atomically(path, page(report, book_url=book_url).encode("utf-8"))
    return path
