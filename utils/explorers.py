"""Interactive explorers: the reader moves a parameter, the figure follows — live in Jupyter and on Colab,
and as a static figure in the rendered book.

An :class:`Explorer` is a figure redrawn from precomputed results (so a slider move costs only a redraw) with
controls from core ipywidgets (present in ipywidgets 7.7, what Colab ships, and in 8). Displayed, it offers
two representations: the live widget, which Jupyter and Colab show, and a PNG of its static counterpart —
the same grid drawn as small multiples — which the rendered book shows (the book's configuration leaves
widget views out of the HTML, so it needs no kernel and no network). Each chapter's explorer is built in the
chapter's module (:mod:`utils.chapters`) from the machinery here.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable

import matplotlib.pyplot as plt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

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
        if not isinstance(controls, dict) or not controls:
            raise ValueError(f"an explorer needs controls: controls must be a non-empty dict of name → ipywidget, "
                             f"got {controls!r}")
        for name, fn in (("draw", draw), ("static", static)):
            if not callable(fn):
                raise TypeError(f"{name} must be callable, got {fn!r}")
        self.controls, self._draw, self._static = controls, draw, static
        self.panels = checks.integer("panels", panels)
        self.size = _size(size)
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


def _size(size: tuple[float, float]) -> tuple[float, float]:
    """A panel size (width, height) in inches, both positive."""
    size = checks.sequence("size", size)
    if len(size) != 2:
        raise ValueError(f"size must be (width, height) in inches, got {size!r}")
    return checks.positive("size[0]", size[0]), checks.positive("size[1]", size[1])


def small_multiples(values: list, draw_one: Callable[[plt.Axes, object], None], *, title: str,
                    ncols: int = 4, size: tuple[float, float] = (3.4, 2.9)) -> plt.Figure:
    """One panel per value, drawn by ``draw_one(ax, value)``: a static counterpart of a slider."""
    values = checks.sequence("values", values, min_len=1)
    if not callable(draw_one):
        raise TypeError(f"draw_one must be callable, got {draw_one!r}")
    if not isinstance(title, str):
        raise TypeError(f"title must be a string, got {title!r}")
    ncols, size = checks.integer("ncols", ncols), _size(size)
    nrows, ncols = -(-len(values) // ncols), min(ncols, len(values))
    fig, axes = plotting.subplots(ncols, nrows, width=size[0], height=size[1], layout="constrained")
    for ax, value in zip(axes.flat, values, strict=False):
        draw_one(ax, value)
    for ax in list(axes.flat)[len(values):]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig


def slider(options: list, value: object, description: str) -> object:
    """A ``SelectionSlider`` over ``options`` (core ipywidgets, in 7.7 and 8) that updates when released."""
    import ipywidgets as widgets

    options = checks.sequence("options", options, min_len=1)
    checks.one_of("value", value, options)

    return widgets.SelectionSlider(options=options, value=value, description=description, continuous_update=False,
                                   style={"description_width": "initial"})
