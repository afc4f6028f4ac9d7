"""Interactive explorers: the reader moves a parameter, the figure follows — live in Jupyter and on Colab,
and as a static figure in the rendered book.

An :class:`Explorer` is a figure redrawn from precomputed results (so a slider move costs only a redraw) with
controls from core ipywidgets (present in ipywidgets 7.7, what Colab ships, and in 8). Displayed, it offers
two representations: the live widget, which Jupyter and Colab show, and a PNG of its static counterpart —
the same grid drawn as small multiples — which the rendered book shows (the book's configuration leaves
widget views out of the HTML, so it needs no kernel and no network). The four explorers:

- :func:`dimension` (chapter 1): the dimension d → random-line distances against the shortest one.
- :func:`budget` (chapter 2): an image, a budget and a norm → the image with noise and with PGD.
- :func:`weight_slice` (chapter 3): a zoom → loss slices along random and adversarial weight directions.
- :func:`rounding` (chapter 4): bits, grid and rounding → a layer on the grid, its error, the loss change.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats

from . import checks, plotting

DPI = 100  # of the live frames and the static figures


class Explorer:
    """A figure of ``panels`` subplots redrawn by ``draw(axes, **values)`` whenever one of ``controls`` (a
    dict name → ipywidget) changes, and a static counterpart drawn by ``static()`` (a new figure).

    The live figure is one :class:`matplotlib.figure.Figure`, outside pyplot (so Jupyter never shows it on its
    own): each frame clears its axes, redraws them and encodes them once as PNG into an image widget. Its
    layout is found for the first frame and then kept, so a frame costs one rendering and no layout search."""

    def __init__(self, controls: dict, draw: Callable[..., None], static: Callable[[], plt.Figure], *,
                 panels: int = 2, size: tuple[float, float] = (4.6, 3.4)) -> None:
        if not controls or not callable(draw) or not callable(static):
            raise ValueError("an explorer needs controls, a draw function and a static figure")
        self.controls, self._draw, self._static = controls, draw, static
        self.panels = checks.integer("panels", panels)
        self.size = size
        self._widget = self._image = self._figure = self._canvas = self._axes = None

    def values(self) -> dict:
        """The controls' current values."""
        return {name: c.value for name, c in self.controls.items()}

    def frame(self) -> bytes:
        """The live figure for the controls' current values, as PNG bytes."""
        first = self._figure is None
        if first:
            self._figure = Figure(figsize=(self.size[0] * self.panels, self.size[1]), dpi=DPI, layout="constrained")
            self._axes = self._figure.subplots(1, self.panels, squeeze=False)[0]
            self._canvas = FigureCanvasAgg(self._figure)
        for ax in self._axes:
            ax.clear()
        self._draw(self._axes, **self.values())
        if first:
            self._figure.draw_without_rendering()  # lay the panels out once, then keep that layout
            self._figure.set_layout_engine("none")
        buffer = io.BytesIO()
        self._canvas.print_png(buffer)  # one rendering, at the figure's own dpi
        return buffer.getvalue()

    def update(self) -> float:
        """Redraw the live figure for the controls' current values; returns the seconds it took."""
        start = time.perf_counter()
        self._image.value = self.frame()
        return time.perf_counter() - start

    def widget(self):
        """The live explorer: the controls above the figure."""
        import ipywidgets as widgets

        if self._widget is None:
            self._image = widgets.Image(format="png")
            for c in self.controls.values():
                c.observe(lambda _: self.update(), names="value")
            self._widget = widgets.VBox([widgets.HBox(list(self.controls.values())), self._image])
            self.update()
        return self._widget

    def static_png(self) -> bytes:
        """The static counterpart as PNG bytes."""
        fig = self._static()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
        plt.close(fig)
        return buffer.getvalue()

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        w = self.widget()
        if hasattr(w, "_repr_mimebundle_"):  # ipywidgets 8
            bundle = dict(w._repr_mimebundle_())
        else:  # ipywidgets 7 (Colab)
            bundle = {"application/vnd.jupyter.widget-view+json": {
                "version_major": 2, "version_minor": 0, "model_id": w._model_id}}
        bundle["image/png"] = base64.b64encode(self.static_png()).decode()
        bundle["text/plain"] = "Explorer (live in Jupyter; a static figure in the rendered book)"
        return bundle


def small_multiples(values: list, draw_one: Callable[[plt.Axes, object], None], *, title: str,
                    ncols: int = 4, size: tuple[float, float] = (3.4, 2.9)) -> plt.Figure:
    """One panel per value, drawn by ``draw_one(ax, value)``: a static counterpart of a slider."""
    nrows, ncols = -(-len(values) // ncols), min(ncols, len(values))
    fig, axes = plotting.subplots(ncols, nrows, width=size[0], height=size[1], layout="constrained")
    for ax, value in zip(axes.flat, values, strict=False):
        draw_one(ax, value)
    for ax in list(axes.flat)[len(values):]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig


def _slider(options: list, value, description: str):
    import ipywidgets as widgets

    return widgets.SelectionSlider(options=options, value=value, description=description, continuous_update=False,
                                   style={"description_width": "initial"})


def dimension(sweep: pd.DataFrame, eps: float) -> Explorer:
    """Chapter 1: choose the dimension d; see the distances along random lines in units of the shortest one
    (:func:`experiments.dimension_sweep`'s ``ratios``) against the flat-boundary law, and the flip rates of a
    step of ``eps`` along the normal and in random directions."""
    dims = [int(d) for d in sweep["dim"]]
    rows = {int(r["dim"]): r for _, r in sweep.iterrows()}

    def histogram(ax: plt.Axes, d: int) -> None:
        ratios = rows[d]["ratios"]
        ratios = np.log10(ratios[np.isfinite(ratios)])  # lines that never met a boundary are left out
        ax.hist(ratios, bins=40, density=True, alpha=0.6, label="measured", histtype="stepfilled")
        grid = np.linspace(0, max(ratios.max(), 0.5), 200)  # log10 ratio; the law of 1/|cos θ|, cos²θ ~ Beta
        b = 10 ** (-2 * grid)
        ax.plot(grid, stats.beta.pdf(b, 0.5, (d - 1) / 2) * 2 * np.log(10) * b, "k--", label="flat boundary")
        ax.axvline(np.log10(rows[d]["median_ratio"]), color="C0", lw=1)
        ax.set(xlabel=r"$\log_{10}(r_{random} / r_{min})$", ylabel="density", title=f"d = {d}")
        ax.legend(fontsize="small")

    def draw(axes, d: int) -> None:
        histogram(axes[0], d)
        axes[1].semilogx(dims, sweep["flip_rate_normal"], "o-", label=f"step of {eps} along the normal")
        axes[1].semilogx(dims, sweep["flip_rate_random"], "s-", label=f"random step of {eps}")
        axes[1].axvline(d, color="k", lw=1, ls=":")
        axes[1].set(xlabel="input dimension $d$", ylabel="fraction of points flipped", ylim=(-0.02, 1))
        axes[1].legend(fontsize="small")

    picks = sorted({dims[0], dims[len(dims) // 3], dims[2 * len(dims) // 3], dims[-1]})
    return Explorer({"d": _slider(dims, dims[-1], "dimension d")}, draw,
                    lambda: small_multiples(picks, histogram, title="random-line distance / shortest distance"))


def budget(grid: dict, curves: pd.DataFrame, eps_values: dict[str, list[float]], key: str) -> Explorer:
    """Chapter 2: choose an image, a norm and a budget ε; see the image with random noise and with PGD of
    that budget, their predictions and margins (from :func:`experiments.budget_grid`), and where ε sits on
    the model's flip-rate curves (``curves`` of :func:`experiments.flip_curves`, model ``key``)."""
    import ipywidgets as widgets

    n = len(grid["x"])
    controls = {"image": widgets.IntSlider(0, 0, n - 1, description="image", continuous_update=False),
                "norm": widgets.ToggleButtons(options=list(eps_values), value="l2", description="norm"),
                "step": widgets.IntSlider(len(eps_values["l2"]) // 2, 0, min(map(len, eps_values.values())) - 1,
                                          description="budget step", continuous_update=False)}

    def images(axes, image: int, norm: str, step: int) -> None:
        eps = eps_values[norm][step]
        plotting.show_image(axes[0], grid["x"][image].numpy(),
                            title=f"image: {grid['pred'][image]} (margin {grid['margin'][image]:.1f})")
        for ax, name in zip(axes[1:3], ("noise", "pgd"), strict=True):
            x, pred, margin = grid[norm, step, name]
            plotting.show_image(ax, x[image].clamp(0, 1).numpy(), title=f"+ {'noise' if name == 'noise' else 'PGD'}, "
                                f"ε = {eps:g}: {pred[image]} ({margin[image]:.1f})")

    def draw(axes, image: int, norm: str, step: int) -> None:
        images(axes, image, norm, step)
        sub = curves[(curves["model"] == key) & (curves["norm"] == norm)]
        for method, s in sub[sub["method"].isin(["pgd", "sphere"])].groupby("method"):
            axes[3].semilogx(s["eps"], s["flip_rate"], "o-", label="PGD" if method == "pgd" else "noise")
        axes[3].axvline(eps_values[norm][step], color="k", ls=":")
        axes[3].set(xlabel=f"budget ε ({norm})", ylabel="fraction flipped", title=key)
        axes[3].legend(fontsize="small")

    def static() -> plt.Figure:
        steps = range(0, len(eps_values["l2"]), max(1, len(eps_values["l2"]) // 4))
        fig, axes = plotting.subplots(3, len(steps), width=2.5, height=2.6, layout="constrained")
        for row, step in zip(axes, steps, strict=True):
            images(row, 0, "l2", step)
        fig.suptitle("the same L2 budget: random noise and PGD")
        return fig

    return Explorer(controls, draw, static, panels=4, size=(3.0, 3.0))


def weight_slice(grid: dict, key: str) -> Explorer:
    """Chapter 3: choose a zoom; see the loss along random and adversarial weight directions within it, and
    the second-order prediction (from :func:`experiments.slice_grid`)."""
    alpha, names = grid["alpha"], [k for k in grid if k != "alpha"]
    zooms = [1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01]

    def panel(ax: plt.Axes, zoom: float) -> None:
        inside = np.abs(alpha) <= zoom
        for i, name in enumerate(names):
            measured, quadratic = grid[name]
            ax.plot(alpha[inside], measured[inside], "-", color=f"C{i}", label=f"{name}: measured")
            ax.plot(alpha[inside], quadratic[inside], "--", color=f"C{i}", label=f"{name}: second order")
        ax.set(xlabel=r"step $\alpha$ along the direction", ylabel="test loss", title=f"{key}: |α| ≤ {zoom:g}")
        ax.legend(fontsize="x-small")

    def draw(axes, zoom: float) -> None:
        panel(axes[0], zoom)
        inside = np.abs(alpha) <= zoom
        for i, name in enumerate(names):
            measured, quadratic = grid[name]
            axes[1].plot(alpha[inside], measured[inside] - quadratic[inside], color=f"C{i}", label=name)
        axes[1].set(xlabel=r"step $\alpha$", ylabel="measured − second order", title="what the quadratic misses")
        axes[1].legend(fontsize="small")

    return Explorer({"zoom": _slider(zooms, 1.0, "zoom: |α| ≤")}, draw,
                    lambda: small_multiples([1.0, 0.1, 0.01], panel, title="loss along two weight directions", ncols=3))


def rounding(grid: dict, layer: str) -> Explorer:
    """Chapter 4: choose the bits, the grid (per channel or per tensor) and the rounding; see one layer's
    weights on the grid, its rounding error against U(−Δ/2, Δ/2), and the network's loss change beside the
    curvature's prediction (from :func:`experiments.rounding_grid`)."""
    import ipywidgets as widgets

    bits = sorted({b for b, _, _ in grid}, reverse=True)
    kinds = list(dict.fromkeys(k for _, _, k in grid))
    controls = {"bits": _slider(bits, 4, "bits"),
                "scales": widgets.ToggleButtons(options=["per channel", "per tensor"], description="scales"),
                "kind": widgets.Dropdown(options=kinds, description="rounding")}

    def error(ax: plt.Axes, b: int, scales: str = "per channel", kind: str = "nearest") -> None:
        g = grid[b, scales == "per channel", kind]
        e = ((g["q"] - g["w"]) / g["step"]).flatten().numpy()
        ax.hist(e, bins=41, range=(-1.1, 1.1), density=True, alpha=0.7, histtype="stepfilled")
        ax.plot([-0.5, -0.5, 0.5, 0.5], [0, 1, 1, 0], "k--", lw=1, label=r"$U(-\frac{1}{2}, \frac{1}{2})$")
        ax.set(xlabel="rounding error / Δ", ylabel="density", title=f"{b} bits: accuracy {g['accuracy']:.1%}")
        ax.legend(fontsize="small")

    def draw(axes, bits: int, scales: str, kind: str) -> None:
        g = grid[bits, scales == "per channel", kind]
        w, step = g["w"][0].flatten().numpy(), g["step"][0].flatten()[0].item()
        axes[0].hist(w, bins=60, color="lightgrey", histtype="stepfilled")
        levels = np.arange(np.floor(w.min() / step), np.ceil(w.max() / step) + 1) * step
        axes[0].vlines(levels, 0, 1, transform=axes[0].get_xaxis_transform(), color="k", lw=0.5, alpha=0.5)
        axes[0].set(xlabel="weight value (first output channel)", ylabel="count", title=f"{layer}: the grid")
        error(axes[1], bits, scales, kind)
        bars = {"measured": g["loss change"], "predicted": g["predicted"] or 0.0}
        axes[2].bar(list(bars), list(bars.values()), color=["C0", "C1"])
        axes[2].set(ylabel="test loss change", title="whole network" + ("" if g["predicted"] else
                                                                        " (no prediction for the adversary)"))

    shown = [b for b in (8, 6, 4, 3, 2) if b in bits]
    return Explorer(controls, draw, lambda: small_multiples(shown, error, ncols=3,
                                                            title=f"{layer}: round-to-nearest error, per channel"),
                    panels=3, size=(3.8, 3.2))
