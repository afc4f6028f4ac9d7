"""Claims across seeds: each bound's values over independent replications, and the margin its limit keeps.

A limit whose basis is ``seeds`` must lie outside the range of values observed over the replications by
at least one full range (the largest minus the smallest value) and at least 5% of the limit itself: for
roughly normal values, ten seeds span about 3.1 standard deviations, so one more range puts the limit some
4.5 standard deviations from the mean, while the 5% floor covers values that did not vary at all. Many
claims are about a worst case (the largest drop over models and replications), whose tails are heavier than
a normal law's; the margin is what keeps a new seed or another machine inside the limit. Limits from
theory, the literature or the method's design need no margin: they are what is being tested.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from . import checks, claims, records

MARGIN_RULE = ("a seeds-based limit lies beyond the observed range by at least that range, and at least 5% of "
               "the limit")


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
    raise ValueError(f"op must be one of {claims.OPS}, got {op!r}")


def _limit_text(op: str, limit: float | Sequence[float]) -> str:
    if op == "between":
        return f"in [{limit[0]:.4g}, {limit[1]:.4g}]"
    return f"{op} {limit:.4g}"


def table(seeds: Sequence[int] = tuple(range(10)), *, scale: str = "small", root: str | Path | None = None
          ) -> pd.DataFrame:
    """One row per recorded bound (or per exact claim): the claim, the bound, its limit and basis, the values
    observed over ``seeds`` (with the seeds at which the claim held), and for seeds-based limits whether
    the margin rule (:data:`MARGIN_RULE`) is met."""
    seeds = [checks.integer(f"seeds[{i}]", s, minimum=0) for i, s in enumerate(seeds)]
    rows = []
    for claim_id, c in records.across_seeds(seeds, scale=scale, root=root).items():
        common = {"claim": claim_id, "statement": c["statement"], "held at seeds": f"{sum(c['held'].values())} of "
                  f"{len(c['held'])}", "stale": any(c["stale"].values())}
        if not c["bounds"]:
            rows.append({**common, "bound": "(exact check)", "limit": "true", "basis": "exact", "reason": "",
                         "observed": "", "gap / required margin": math.nan, "margin met": all(c["held"].values())})
        for b in c["bounds"]:
            values = list(c["values"].get(b["name"], {}).values())
            kind, reason = b["basis"].split(":", 1)
            gap, required = headroom(b["op"], b["limit"], values)
            rows.append({**common, "bound": b["name"], "limit": _limit_text(b["op"], b["limit"]), "basis": kind,
                         "reason": reason.strip(), "observed": f"{min(values):.4g} … {max(values):.4g}",
                         "gap / required margin": gap / required if required > 0 else math.inf,
                         "margin met": gap > 0 and (kind != "seeds" or gap >= required)})
    return pd.DataFrame(rows)
