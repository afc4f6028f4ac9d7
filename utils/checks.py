"""Argument validators shared by every public function of the package.

Each validator takes the argument's *name* and value, returns the value in canonical form, and raises a
``ValueError`` or ``TypeError`` whose message names the argument, says what was wrong and what is allowed.
:func:`eval_mode` switches a model to evaluation mode for a computation and restores its mode after it.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

T = TypeVar("T")


def _shown(value: Any) -> str:
    """A short description of a bad value for an error message."""
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def integer(name: str, value: Any, *, minimum: int | None = 1, maximum: int | None = None) -> int:
    """``value`` as an ``int`` in [minimum, maximum] (default: a positive integer); bools are rejected."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {_shown(value)}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        low = "-inf" if minimum is None else minimum
        high = "inf" if maximum is None else maximum
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value}")
    return value


def number(
    name: str, value: Any, *, low: float | None = None, high: float | None = None, low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite ``float`` in the interval from ``low`` to ``high`` (closed unless ``*_open``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype.is_complex:
            value = value.item()
        else:
            raise TypeError(f"{name} must be a real number, got {_shown(value)}")
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None:
        bad = bad or value < low or (low_open and value == low)
    if high is not None:
        bad = bad or value > high or (high_open and value == high)
    if bad:
        left = "(" if low_open or low is None else "["
        right = ")" if high_open or high is None else "]"
        interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value}")
    return value


def positive(name: str, value: Any) -> float:
    """A finite number > 0."""
    return number(name, value, low=0.0, low_open=True)


def non_negative(name: str, value: Any) -> float:
    """A finite number ≥ 0."""
    return number(name, value, low=0.0)


def probability(name: str, value: Any) -> float:
    """A number in [0, 1]."""
    return number(name, value, low=0.0, high=1.0)


def one_of(name: str, value: T, allowed: Collection[T]) -> T:
    """``value`` if it is one of ``allowed``."""
    try:
        ok = value in allowed
    except TypeError:  # an unhashable value cannot be a name
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {_shown(value)}")
    return value


def flag(name: str, value: Any) -> bool:
    """A real truth value: ``True`` or ``False`` (NumPy's booleans included)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {_shown(value)}")
    return bool(value)


def generator(name: str, value: Any) -> torch.Generator | None:
    """``None`` or a ``torch.Generator``."""
    if value is not None and not isinstance(value, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {_shown(value)}")
    return value


def device(name: str, value: Any) -> torch.device:
    """A ``torch.device`` (or its name: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``) that exists here."""
    if not isinstance(value, (str, torch.device)):
        raise TypeError(f"{name} must be a torch.device or a device name such as 'cpu' or 'cuda', got {_shown(value)}")
    try:
        dev = torch.device(value)
    except (RuntimeError, ValueError):
        dev = None
    count = {"cpu": 1, "cuda": torch.cuda.device_count() if torch.cuda.is_available() else 0,
             "mps": int(torch.backends.mps.is_available())}
    if dev is None or count.get(dev.type, 0) == 0 or (dev.index or 0) >= count[dev.type]:
        here = ["'cpu'"] + (["'cuda'", f"'cuda:0'…'cuda:{count['cuda'] - 1}'"] if count["cuda"] else []) + (
            ["'mps'"] if count["mps"] else [])
        raise ValueError(f"{name} must be a device available on this machine ({', '.join(here)}); got {value!r}")
    return dev


def sequence(name: str, value: Any, *, min_len: int = 0) -> list:
    """A list or tuple (a string is not taken for a sequence of its characters) of at least ``min_len``
    items, returned as a list."""
    if not isinstance(value, (list, tuple)):
        kind = "a string" if isinstance(value, (str, bytes)) else _shown(value)
        raise TypeError(f"{name} must be a list or tuple, got {kind}")
    if len(value) < min_len:
        raise ValueError(f"{name} must hold at least {min_len} item{'s' * (min_len > 1)}, got {len(value)}")
    return list(value)


PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def plain_name(name: str, value: Any) -> str:
    """A name that is safe as part of a file name: letters, digits, ``_ . + -``, not starting with a dot
    (so it cannot leave the folder it is put in)."""
    if not isinstance(value, str) or not PLAIN_NAME.fullmatch(value) or ".." in value:
        raise ValueError(f"{name} must be a plain name (letters, digits, '_', '.', '+', '-'; no path), "
                         f"got {_shown(value)}")
    return value


def tensor(
    name: str, value: Any, *, floating: bool = True, finite: bool = True, min_dim: int = 0,
    shape: tuple[int, ...] | None = None,
) -> torch.Tensor:
    """A ``torch.Tensor`` (floating-point and free of NaN/inf unless told otherwise), of at least ``min_dim``
    dimensions or of exactly ``shape``."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {_shown(value)}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    if value.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimensions, got shape {tuple(value.shape)}")
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(value.shape)}")
    if finite and value.is_floating_point() and not torch.isfinite(value).all():
        raise ValueError(f"{name} must not contain NaN or infinite values")
    return value


def batch(
    x: Any, y: Any = None, *, num_classes: int | None = None, unit_box: bool = False, x_name: str = "x",
    y_name: str = "y",
) -> None:
    """A non-empty batch of finite floating-point inputs ``(N, ...)`` and, if given, its labels: a 1-D
    integer (int64) tensor of the same length with values in [0, num_classes). ``unit_box`` also asks for
    inputs in [0, 1], the box that perturbation budgets are measured in (up to 10⁻⁶, so that x + δ of an
    attack whose x' lies in the box passes although x + (x' − x) can round one ulp past it)."""
    tensor(x_name, x, min_dim=2)
    if len(x) == 0:
        raise ValueError(f"{x_name} must hold at least one sample, got shape {tuple(x.shape)}")
    if unit_box and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
        raise ValueError(f"{x_name} must lie in [0, 1] (budgets are in pixel units of images in [0, 1]); "
                         f"got values in [{x.min().item():.3g}, {x.max().item():.3g}]")
    if y is not None:
        labels(y_name, y, len(x), num_classes)


def labels(name: str, y: Any, n: int, num_classes: int | None = None) -> torch.Tensor:
    """Integer class labels: a 1-D int64 tensor of length ``n`` with values in [0, num_classes)."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of integer labels, got {_shown(y)}")
    if y.dtype != torch.int64:
        raise TypeError(f"{name} must hold int64 class labels (torch.long), got dtype {y.dtype}")
    if y.dim() != 1 or len(y) != n:
        raise ValueError(f"{name} must be a 1-D tensor with one label per sample ({n}), got shape {tuple(y.shape)}")
    if n and (y.min() < 0 or (num_classes is not None and y.max() >= num_classes)):
        allowed = f"[0, {num_classes})" if num_classes is not None else "[0, ∞)"
        raise ValueError(f"{name} must be class indices in {allowed}, got values from {y.min().item()} "
                         f"to {y.max().item()}")
    return y


def model(name: str, value: Any, *, trainable: bool = False) -> nn.Module:
    """A ``torch.nn.Module`` (with at least one trainable parameter when ``trainable``)."""
    if not isinstance(value, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {_shown(value)}")
    if trainable and not any(p.requires_grad for p in value.parameters()):
        raise ValueError(f"{name} must have at least one trainable parameter")
    return value


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for a model with neither."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def accepts(model: nn.Module, x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """The model's output for the first sample of ``x`` — or a ``ValueError`` naming ``x`` when the model
    cannot take inputs of that shape."""
    try:
        with torch.no_grad(), eval_mode(model):
            return model(x[:1].to(model_device(model)))
    except RuntimeError as err:
        dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
        if x.is_floating_point() and dtypes and x.dtype not in dtypes:
            raise TypeError(f"{name} has dtype {x.dtype}, but the model computes in {', '.join(map(str, dtypes))}: "
                            f"convert one to the other (e.g. {name}.to(torch.float32), or model.double())") from None
        raise ValueError(f"{name} has inputs of shape {tuple(x.shape[1:])}, which the model cannot take "
                         f"({str(err).splitlines()[0]})") from None


def classes(model: nn.Module, x: torch.Tensor) -> int:
    """The number of classes a model outputs, from one forward pass on the first sample."""
    return int(accepts(model, x).shape[-1])


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Inside, ``model`` (and every submodule) is in evaluation mode — batch-norm uses its running
    statistics and dropout is off, so the model is a fixed function of its weights; afterwards each
    submodule's own mode is restored."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode
