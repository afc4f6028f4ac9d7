"""Verified claims: every statement a chapter makes about its results is checked in code.

A chapter's first cell starts its record (``setups.start``, :func:`utils.records.begin`), each claim cell
calls :func:`claim`, and its last cell :func:`end_chapter`. A claim is a *finding*, which must hold at any
seed and on any machine; a hypothesis's *prediction*, which may come out either way, is recorded by
:func:`utils.predictions.predict` instead. A claim has a stable ``id`` and is checked by one or more
:class:`Bound` objects — a measured value, a limit and where the limit comes from (``theory: …``,
``literature: …``, ``design: …`` or ``seeds: …``, the latter for limits set outside the range observed over
seeds 0–9 and then frozen) — or, for exact checks, by a plain ``bool``. A claim that holds is printed with
its evidence; one that does not raises :class:`ClaimFailed`. Both are written to the chapter's record
(:mod:`utils.records`), so that a chapter stopped by a failed claim or an error shows as such; a claim cell
run twice replaces its own entry.

With ``BOOK_CLAIMS=record-only`` (set by the full-scale smoke test, which runs chapters on sizes too small
to judge them) a claim that does not hold is printed as not judged and recorded, instead of raising.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from . import checks, records
from .recordformat import BASES, ID, OPS


class ClaimFailed(AssertionError):
    """A chapter stated something that its own numbers do not support."""


@dataclass(frozen=True)
class Bound:
    """A measured ``value`` and the limit a claim puts on it: ``value op limit`` (``between``: limit is
    (low, high), both included). ``basis`` says where the limit comes from: ``"theory: …"``,
    ``"literature: …"``, ``"design: …"`` (a property the method guarantees) or ``"seeds: …"`` (outside the
    range observed over seeds 0–9, with the reason for the margin)."""

    name: str
    value: float
    op: str
    limit: float | tuple[float, float]
    basis: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("a bound's name must be a non-empty string")
        checks.one_of("op", self.op, OPS)
        kind = self.basis.split(":", 1)[0] if isinstance(self.basis, str) else None
        if kind not in BASES or not self.basis.split(":", 1)[1:] or not self.basis.split(":", 1)[1].strip():
            raise ValueError(f"basis must read '<kind>: <reason>' with kind one of {BASES}; got {self.basis!r}")
        value = float(self.value) if isinstance(self.value, numbers.Real) and not isinstance(self.value, bool) else None
        if value is None:
            raise TypeError(f"the value of bound {self.name!r} must be a real number, got {self.value!r}")
        object.__setattr__(self, "value", value)
        limits = self.limit if self.op == "between" else (self.limit,)
        if self.op == "between" and (not isinstance(self.limit, (tuple, list)) or len(self.limit) != 2):
            raise ValueError(f"bound {self.name!r}: 'between' needs limit = (low, high)")
        for v in limits:
            checks.number(f"limit of bound {self.name!r}", v)
        if self.op == "between" and self.limit[0] > self.limit[1]:
            raise ValueError(f"bound {self.name!r}: 'between' needs low <= high, got {tuple(self.limit)} (a range "
                             "no value can meet)")

    @property
    def holds(self) -> bool:
        """Whether the value satisfies the limit (a NaN value never does)."""
        v, lim = self.value, self.limit
        if math.isnan(v):
            return False
        return {"<": lambda: v < lim, "<=": lambda: v <= lim, ">": lambda: v > lim, ">=": lambda: v >= lim,
                "between": lambda: lim[0] <= v <= lim[1]}[self.op]()

    def __bool__(self) -> bool:
        return self.holds

    def text(self) -> str:
        """E.g. ``"ratio = 0.065 < 0.1"``."""
        if self.op == "between":
            return f"{self.name} = {_format(self.value)} in [{_format(self.limit[0])}, {_format(self.limit[1])}]"
        return f"{self.name} = {_format(self.value)} {self.op} {_format(self.limit)}"


def below(name: str, value: float, limit: float, basis: str, *, strict: bool = True) -> Bound:
    """The bound value < limit (≤ when not ``strict``)."""
    return Bound(name, value, "<" if strict else "<=", limit, basis)


def above(name: str, value: float, limit: float, basis: str, *, strict: bool = True) -> Bound:
    """The bound value > limit (≥ when not ``strict``)."""
    return Bound(name, value, ">" if strict else ">=", limit, basis)


def between(name: str, value: float, low: float, high: float, basis: str) -> Bound:
    """The bound low ≤ value ≤ high."""
    return Bound(name, value, "between", (low, high), basis)


def _format(value: Any) -> str:
    """Numbers to 4 significant digits, everything else as ``str``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{float(value):.4g}"
    return str(value)


def jsonable(value: Any) -> Any:
    """A JSON-friendly copy: NumPy/torch scalars become Python numbers (NaN and inf as strings)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value) if math.isfinite(value) else str(float(value))
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value if isinstance(value, (str, type(None))) else str(value)


def _bounds(holds: Any) -> tuple[bool, list[Bound]]:
    """The truth value of ``holds`` and its bounds: a bool (exact check), a :class:`Bound`, or a sequence of
    bounds that must all hold."""
    if isinstance(holds, Bound):
        return holds.holds, [holds]
    if isinstance(holds, (list, tuple)) and holds and all(isinstance(b, Bound) for b in holds):
        return all(b.holds for b in holds), list(holds)
    if isinstance(holds, (bool, np.bool_)):
        return bool(holds), []
    raise TypeError(f"holds must be True/False, a claims.Bound or a non-empty sequence of Bounds, got {holds!r}")


def checked_id(id: str) -> str:  # noqa: A002
    """``id`` if it is a claim or prediction id of one of the book's chapters (``ch<N>.<words-with-dashes>``)."""
    if not isinstance(id, str) or not ID.fullmatch(id):
        raise ValueError(f"id must look like 'ch<chapter>.<words-with-dashes>', got {id!r}")
    records.chapter_of(id)
    return id


def evidence_line(bounds: Sequence[Bound], evidence: Mapping[str, Any] | str) -> str:
    """The bounds and the further evidence, as one line."""
    parts = [b.text() for b in bounds]
    parts += [evidence] if isinstance(evidence, str) else [f"{k} = {_format(v)}" for k, v in evidence.items()]
    return "; ".join(parts)


def checked_evidence(evidence: Mapping[str, Any] | str | None) -> Mapping[str, Any] | str:
    """Further evidence: a mapping name → value or a sentence (None: nothing further)."""
    if evidence is not None and not isinstance(evidence, (str, Mapping)):
        raise TypeError(f"evidence must be a mapping, a string or None, got {type(evidence).__name__}")
    return {} if evidence is None else evidence


def claim(
    statement: str,
    holds: bool | Bound | Sequence[Bound],
    evidence: Mapping[str, Any] | str | None = None,
    *,
    id: str,  # noqa: A002 (the claim's identifier, the name a reader expects)
) -> None:
    """Check, print and record one claim; raise :class:`ClaimFailed` if it does not hold.

    ``id`` is the claim's stable identifier (e.g. ``"ch2.noise-vs-pgd"``); ``holds`` is a real truth
    value, a :class:`Bound` or a sequence of them (all must hold); ``evidence`` holds further numbers
    (a mapping name → value, or a sentence). The chapter must have been started (``setups.start``).
    """
    if not isinstance(statement, str) or not statement.strip():
        raise ValueError("statement must be a non-empty string")
    checked_id(id)
    evidence = checked_evidence(evidence)
    ok, bounds = _bounds(holds)
    shown = evidence_line(bounds, evidence)
    records.add("claims", {"id": id, "statement": statement, "holds": ok,
                           "bounds": [jsonable(asdict(b)) for b in bounds], "evidence": jsonable(evidence)})
    if not ok:
        if os.environ.get("BOOK_CLAIMS") == "record-only":
            print(f"✘ not judged here [{id}] {statement}\n    evidence: {shown}")
            return
        raise ClaimFailed(f"[{id}] {statement} — does NOT hold; evidence: {shown}")
    print(f"✔ verified: {statement}\n    evidence: {shown}")
