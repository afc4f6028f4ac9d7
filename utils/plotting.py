"""One figure style for the whole book, and the plot helpers chapters share."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from pandas.io.formats.style import Styler

from . import checks

PALETTE = "colorblind"


def set_style() -> None:
    """The book's figure style: seaborn's whitegrid theme, the colour-blind palette, readable sizes."""
    sns.set_theme(style="whitegrid", palette=PALETTE, context="notebook")
    mpl.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": 150, "figure.figsize": (6.4, 4.0), "axes.titlesize": "medium",
        "figure.constrained_layout.use": True, "legend.frameon": False,
    })


def class_colors(k: int) -> list[tuple[float, float, float]]:
    """``k`` distinguishable colours, one per class, the same in every figure."""
    k = checks.integer("k", k)
    return sns.color_palette(PALETTE, max(k, 2))[:k]


def subplots(
    ncols: int = 1, nrows: int = 1, *, width: float = 4.2, height: float = 3.6, **kwargs
) -> tuple[plt.Figure, np.ndarray]:
    """``plt.subplots`` with panels of ``width`` × ``height`` inches each (the book's style is set once per
    chapter by :func:`set_style`, through :func:`setups.start`)."""
    ncols, nrows = checks.integer("ncols", ncols), checks.integer("nrows", nrows)
    width, height = checks.positive("width", width), checks.positive("height", height)
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kwargs)


def loglog_with_fit(
    ax: plt.Axes,
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    slope: float,
    intercept: float,
    *,
    label: str,
    fit_label: str | None = None,
) -> None:
    """Plot points (x, y) on log-log axes with the fitted line log y = intercept + slope · log x."""
    try:
        x, y = np.asarray(x, float), np.asarray(y, float)
    except (TypeError, ValueError):
        raise TypeError("x and y must be numbers") from None
    if x.shape != y.shape or x.ndim != 1 or not len(x):
        raise ValueError(f"x and y must be 1-D arrays of equal length, got shapes {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()) or (x <= 0).any() or (y <= 0).any():
        raise ValueError("x and y must be finite and positive on log-log axes")
    slope, intercept = checks.number("slope", slope), checks.number("intercept", intercept)
    ax.loglog(x, y, "o", label=label)
    xs = np.geomspace(x.min(), x.max(), 100)
    ax.loglog(xs, np.exp(intercept) * xs**slope, "-", alpha=0.8,
              label=fit_label or f"fit: slope {slope:.2f}")


def show_image(ax: plt.Axes, image: np.ndarray | Sequence, *, title: str = "", diverging: bool = False) -> None:
    """Draw one image shaped (C, H, W) with C = 1 (grey) or 3 (RGB), values in [0, 1]; ``diverging`` draws
    a perturbation instead (channels summed, blue < 0 < red, colour scale symmetric about 0)."""
    img = np.asarray(image, dtype=float)
    if img.ndim != 3 or img.shape[0] not in (1, 3):
        raise ValueError(f"image must be shaped (C, H, W) with C = 1 or 3, got {img.shape}")
    if not np.isfinite(img).all():
        raise ValueError("image must not contain NaN or infinite values")
    if diverging:
        v = img.sum(axis=0)
        lim = max(float(np.abs(v).max()), 1e-12)
        ax.imshow(v, cmap="RdBu_r", vmin=-lim, vmax=lim)
    elif img.shape[0] == 1:
        ax.imshow(img[0], cmap="gray_r", vmin=0, vmax=1)
    else:
        ax.imshow(np.clip(img.transpose(1, 2, 0), 0, 1))
    ax.set(title=title, xticks=[], yticks=[])
    ax.grid(False)


def table(frame: pd.DataFrame, *, digits: int = 3, percent: Sequence[str] = (), index: bool = True,
          caption: str | None = None) -> Styler:
    """A DataFrame styled for reading: numbers to ``digits`` significant digits, the ``percent`` columns as
    percentages, NaN shown as an empty cell, and optionally no index column."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    digits, index = checks.integer("digits", digits), checks.flag("index", index)
    percent = checks.sequence("percent", percent)
    if caption is not None and not isinstance(caption, str):
        raise TypeError(f"caption must be a string or None, got {type(caption).__name__}")
    formats = {c: (lambda v: "" if pd.isna(v) else f"{v:.1%}") for c in percent}
    uuid = hashlib.sha256(frame.to_csv().encode()).hexdigest()[:8]  # stable HTML ids: outputs do not change
    style = frame.style.set_uuid(uuid).format(
        lambda v: v if not isinstance(v, float) else ("" if np.isnan(v) else f"{v:.{digits}g}"))
    style = style.format(formats, subset=[c for c in percent if c in frame.columns])
    if not index:
        style = style.hide(axis="index")
    return style.set_caption(caption) if caption else style
