"""Claims across seeds: each bound's values over independent replications, the margin its limit keeps, and
whether the limit survives replications it was not chosen on; predictions' outcomes across seeds.

A limit whose basis is ``seeds`` must lie outside the range of values observed over the replications it was
chosen on (seeds 0–9, :data:`CHOSEN`) by at least one full range (the largest minus the smallest value) and
at least 5% of the limit itself: for roughly normal values, ten seeds span about 3.1 standard deviations, so
one more range puts the limit some 4.5 standard deviations from the mean, while the 5% floor covers values
that did not vary at all. Limits from theory, the literature or the method's design need no margin: they
are what is being tested. Then every limit is frozen and the book replicated at seeds it was not chosen on
(10–19, :data:`FRESH`): a claim whose value there breaks its limit is a finding to report, not a threshold
to move.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from . import checks, records
from .recordformat import OPS

CHOSEN = tuple(range(10))
FRESH = tuple(range(10, 20))
MARGIN_RULE = ("a seeds-based limit lies beyond the range observed at seeds 0–9 by at least that range, and at "
               "least 5% of the limit")


def headroom(op: str, limit: float | Sequence[float], values: Sequence[float]) -> tuple[float, float]:
    """(gap, required): how far the worst observed value lies inside the limit, and the margin the rule asks
    for, max(range of the values, 5% of |limit|). For ``between`` the nearer side counts."""
    if not values:
        raise ValueError("values must hold at least one observation")
    low, high, spread = min(values), max(values), max(values) - min(values)
    if op in ("<", "<="):
        return limit - high, max(spread, 0.05 * abs(limit))
    if op in (">", ">="):
        return low - limit, max(spread, 0.05 * abs(limit))
    if op == "between":
        gaps = [(low - limit[0], abs(limit[0])), (limit[1] - high, abs(limit[1]))]
        gap, size = min(gaps)
        return gap, max(spread, 0.05 * size)
    raise ValueError(f"op must be one of {OPS}, got {op!r}")


def _limit_text(op: str, limit: float | Sequence[float]) -> str:
    if op == "between":
        return f"in [{limit[0]:.4g}, {limit[1]:.4g}]"
    return f"{op} {limit:.4g}"


def _meets(op: str, limit: float | Sequence[float], value: float) -> bool:
    if math.isnan(value):
        return False
    return {"<": lambda: value < limit, "<=": lambda: value <= limit, ">": lambda: value > limit,
            ">=": lambda: value >= limit, "between": lambda: limit[0] <= value <= limit[1]}[op]()


def _observed(values: Sequence[float]) -> str:
    return f"{min(values):.4g} … {max(values):.4g}" if values else ""


def _seeds(name: str, seeds: Sequence[int]) -> list[int]:
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
        raise TypeError(f"{name} must be a list of seeds (integers), got {seeds!r}")
    return [checks.integer(f"{name}[{i}]", s, minimum=0) for i, s in enumerate(seeds)]


def table(seeds: Sequence[int] = CHOSEN, fresh: Sequence[int] = FRESH, *, scale: str = "small",
          root: str | Path | None = None) -> pd.DataFrame:
    """One row per recorded bound (or per exact claim): the claim, the bound, its limit and basis, the values
    observed over ``seeds`` (those the limits were chosen on) with the seeds at which the claim held, whether
    the margin rule (:data:`MARGIN_RULE`) is met there, and the values over ``fresh`` seeds, with whether the
    frozen limit held at every one of them (``None`` where none is recorded)."""
    seeds, fresh = _seeds("seeds", seeds), _seeds("fresh", fresh)
    chosen = records.across_seeds(seeds, scale=scale, root=root)
    later = records.across_seeds(fresh, scale=scale, root=root) if fresh else {}
    rows = []
    for claim_id, c in chosen.items():
        new = later.get(claim_id, {"held": {}, "values": {}})
        common = {"claim": claim_id, "statement": c["statement"], "held at seeds": f"{sum(c['held'].values())} of "
                  f"{len(c['held'])}", "stale": any(c["stale"].values()),
                  "held at fresh seeds": f"{sum(new['held'].values())} of {len(new['held'])}" if new["held"] else ""}
        if not c["bounds"]:
            rows.append({**common, "bound": "(exact check)", "limit": "true", "basis": "exact", "reason": "",
                         "observed": "", "gap / required margin": math.nan, "margin met": all(c["held"].values()),
                         "fresh observed": "", "limit holds at fresh seeds": all(new["held"].values())
                         if new["held"] else None})
        for b in c["bounds"]:
            values = list(c["values"].get(b["name"], {}).values())
            fresh_values = list(new["values"].get(b["name"], {}).values())
            kind, reason = b["basis"].split(":", 1)
            gap, required = headroom(b["op"], b["limit"], values)
            rows.append({**common, "bound": b["name"], "limit": _limit_text(b["op"], b["limit"]), "basis": kind,
                         "reason": reason.strip(), "observed": _observed(values),
                         "gap / required margin": gap / required if required > 0 else math.inf,
                         "margin met": gap > 0 and (kind != "seeds" or gap >= required),
                         "fresh observed": _observed(fresh_values),
                         "limit holds at fresh seeds": all(_meets(b["op"], b["limit"], v) for v in fresh_values)
                         if fresh_values else None})
    return pd.DataFrame(rows)


def predictions_table(seeds: Sequence[int] = CHOSEN + FRESH, *, scale: str = "small",
                      root: str | Path | None = None) -> pd.DataFrame:
    """One row per recorded prediction: its hypothesis, statement and scope, and how often it was confirmed,
    refuted or untested over ``seeds``."""
    seeds = _seeds("seeds", seeds)
    rows = []
    for pid, p in records.across_seeds(seeds, kind="predictions", scale=scale, root=root).items():
        outcomes = list(p["held"].values())
        rows.append({"prediction": pid, "hypothesis": p["hypothesis"], "statement": p["statement"],
                     "scope": p["scope"], "seeds": len(outcomes),
                     **{o: sum(v == o for v in outcomes) for o in ("confirmed", "refuted", "untested")}})
    return pd.DataFrame(rows)
