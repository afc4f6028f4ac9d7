"""The synthesis's evidence: each hypothesis's verdict and deciding numbers, computed from claim records.

A :class:`Test` says which recorded claims a hypothesis rests on (``supports``), which claims mark where it
stops holding (``limits``, each with a short label shown only when the claim is recorded and holds), and
which bound values decide it (``numbers``). :func:`judge` turns the records into a verdict — never typed —
and :func:`section_of` finds where in the book a claim is made.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from . import checks, config, records


@dataclass(frozen=True)
class Number:
    """One deciding number: the bound ``bound`` of claim ``claim``, shown as ``label`` with ``fmt``."""

    claim: str
    bound: str
    label: str
    fmt: str = "{:.3g}"


@dataclass(frozen=True)
class Test:
    """How a hypothesis is decided: the claims it rests on, its deciding numbers, the claims that limit it
    (id → label) and its ``scope``, a short description of what was tested (the design, not a result)."""

    supports: tuple[str, ...]
    numbers: tuple[Number, ...]
    limits: dict[str, str] = field(default_factory=dict)
    scope: str = ""


def section_of(claim_id: str) -> str:
    """"§x.y" of the chapter section whose code makes the claim (from the chapter notebook's headings)."""
    chapter = records.chapter_of(claim_id)
    path = config.resolve("chapters") / f"{chapter}.ipynb"
    section = f"ch. {int(chapter[:2])}"
    if not path.is_file():
        return section
    for cell in json.loads(path.read_text())["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            found = re.findall(r"^## (\d+\.\d+)", text, flags=re.M)
            section = f"§{found[-1]}" if found else section
        elif f'id="{claim_id}"' in text:
            return section
    return section


def _bound(claim: dict[str, Any] | None, name: str) -> float | None:
    """The value of the bound ``name`` in a recorded claim (None if absent)."""
    for b in (claim or {}).get("bounds", []):
        if b["name"] == name:
            return float(b["value"])
    return None


def judge(test: Test, *, seeds: tuple[int, ...] = tuple(range(10)), scale: str | None = None,
          seed: int | None = None) -> dict[str, Any]:
    """The verdict, its limits and its deciding numbers for one hypothesis, from the records of ``scale`` and
    ``seed`` (default: the current ones) and, for the spread, of every seed in ``seeds`` that is recorded.

    Verdicts: ``unverified`` (a supporting claim is missing, stale or its chapter did not complete),
    ``not supported`` (a supporting claim failed), ``supported at this seed only`` (it failed at another
    recorded seed), else ``supported`` — ``with limits`` when limiting claims hold."""
    if not isinstance(test, Test):
        raise TypeError(f"test must be an evidence.Test, got {type(test).__name__}")
    scale = config.read_scale(scale) if scale is not None else config.SCALE
    seed = config.read_seed(seed) if seed is not None else config.SEED
    seeds = tuple(checks.integer("seeds[]", s, minimum=0) for s in seeds)
    ids = {*test.supports, *test.limits, *(n.claim for n in test.numbers)}
    chapters = {records.chapter_of(i) for i in ids}
    states = {row["chapter"]: row["state"] for row in records.status(sorted(chapters), scale=scale, seed=seed)}
    recorded = {c["id"]: c for ch in chapters if states[ch] != "missing"
                for c in records.read_claims(ch, scale=scale, seed=seed)}
    found = {i: recorded[i] if i in recorded and recorded[i]["holds"] else None for i in ids}
    others = records.across_seeds(seeds, scale=scale)
    unverified = sorted({records.chapter_of(i) for i in test.supports} & {c for c, s in states.items()
                                                                         if s in ("missing", "stale", "incomplete")})
    if unverified:
        verdict = f"unverified: run {', '.join(f'chapters/{c}.ipynb' for c in unverified)}"
    elif any(found[i] is None for i in test.supports):
        verdict = "not supported"
    elif any(not all(others[i]["held"].values()) for i in test.supports if i in others):
        verdict = "supported at this seed only"
    else:
        verdict = "supported with limits" if any(found[i] for i in test.limits) else "supported"
    numbers = []
    for n in test.numbers:
        value = _bound(found[n.claim], n.bound)
        spread = list(others.get(n.claim, {}).get("values", {}).get(n.bound, {}).values())
        shown = "—" if value is None else n.fmt.format(value)
        if len(spread) > 1:
            shown += f" ({n.fmt.format(min(spread))}–{n.fmt.format(max(spread))} over {len(spread)} seeds)"
        numbers.append(f"{n.label}: {shown}")
    return {"verdict": verdict, "limits": [label for i, label in test.limits.items() if found[i]],
            "numbers": numbers, "where": sorted({section_of(i) for i in test.supports}, key=_section_key)}


def _section_key(section: str) -> tuple[int, int]:
    """Sort "§2.10" after "§2.9"."""
    parts = [int(p) for p in re.findall(r"\d+", section)] + [0, 0]
    return parts[0], parts[1]
