"""The synthesis's verdicts, computed from the recorded predictions — never typed.

Every prediction (:mod:`utils.predictions`) names its hypothesis. For one hypothesis, :func:`judge` reads
the predictions recorded at a scale over the replications (seeds) and decides:

- each prediction is **confirmed** (confirmed at every seed where it had power), **refuted** (refuted at every
  such seed), **split** (confirmed at some seeds, refuted at others) or **untested** (no power at any seed);
- the hypothesis is **supported** when every tested prediction is confirmed, **refuted** when every tested
  one is refuted, **mixed** otherwise — with the scope where each part holds — and **not tested at this
  scale** when no prediction had power (or none was recorded);
- every verdict is **unverified** while a chapter's record at the current seed is missing, stale, incomplete
  or unreadable: nothing can be said until the chapter is run.

:func:`section_of` finds where in the book a prediction or claim is made.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import checks, config, records
from .hypotheses import HYPOTHESES

VERDICTS = ("supported", "refuted", "mixed", "not tested at this scale")


@dataclass(frozen=True)
class Judged:
    """One prediction across the replications: its ``outcome`` over them (confirmed, refuted, split or
    untested), per seed what it was, and its test bounds' values (``values[name][seed]``)."""

    id: str
    statement: str
    scope: str
    outcome: str
    per_seed: dict[int, str]
    values: dict[str, dict[int, float]]
    names: tuple[str, ...]


@dataclass(frozen=True)
class Verdict:
    """A hypothesis's verdict, the predictions it rests on, and where they are made."""

    hypothesis: str
    verdict: str
    predictions: tuple[Judged, ...]
    where: tuple[str, ...]

    def scope(self) -> str:
        """For a mixed verdict, where each part holds; otherwise what was tested."""
        parts = {o: [p.scope for p in self.predictions if p.outcome == o and p.scope] for o in
                 ("confirmed", "refuted", "split", "untested")}
        if self.verdict == "mixed":
            text = [f"holds: {'; '.join(parts['confirmed'])}" if parts["confirmed"] else "",
                    f"fails: {'; '.join(parts['refuted'])}" if parts["refuted"] else "",
                    f"depends on the replication: {'; '.join(parts['split'])}" if parts["split"] else ""]
            return " — ".join(t for t in text if t)
        return "; ".join(dict.fromkeys(p.scope for p in self.predictions if p.scope))

    def numbers(self, seed: int, fmt: str = "{:.3g}") -> list[str]:
        """Each prediction's first test value at ``seed``, its range over the replications and its outcome."""
        out = []
        for p in self.predictions:
            name = p.names[0]
            values = p.values.get(name, {})
            shown = fmt.format(values[seed]) if seed in values else "—"
            if len(values) > 1:
                shown += f" ({fmt.format(min(values.values()))}–{fmt.format(max(values.values()))} over " \
                         f"{len(values)} seeds)"
            tally = {o: sum(v == o for v in p.per_seed.values()) for o in ("confirmed", "refuted", "untested")}
            out.append(f"{name}: {shown} — {p.outcome}"
                       + (f" ({tally['confirmed']} confirmed, {tally['refuted']} refuted of {len(p.per_seed)})"
                          if p.outcome == "split" else ""))
        return out


def _judged(entry: dict[str, Any]) -> Judged:
    """One prediction's outcome over the seeds it was recorded at."""
    decided = [o for o in entry["held"].values() if o != "untested"]
    if not decided:
        outcome = "untested"
    elif all(o == "confirmed" for o in decided):
        outcome = "confirmed"
    elif all(o == "refuted" for o in decided):
        outcome = "refuted"
    else:
        outcome = "split"
    names = tuple(b["name"] for b in entry["bounds"])
    return Judged(entry["id"], entry["statement"], entry["scope"], outcome, dict(entry["held"]), entry["values"], names)


def _decide(predictions: Sequence[Judged]) -> str:
    """The verdict from the predictions' outcomes (see the module's docstring)."""
    tested = [p.outcome for p in predictions if p.outcome != "untested"]
    if not tested:
        return "not tested at this scale"
    if all(o == "confirmed" for o in tested):
        return "supported"
    if all(o == "refuted" for o in tested):
        return "refuted"
    return "mixed"


def judge(hypothesis: str, *, seeds: Sequence[int] = tuple(range(10)), scale: str | None = None,
          seed: int | None = None, root: str | None = None, chapters: Sequence[str] | None = None) -> Verdict:
    """The verdict on ``hypothesis`` from the predictions recorded at ``scale`` (default: the current one)
    over ``seeds``; ``unverified`` unless every chapter of ``chapters`` (default: every chapter but the
    synthesis and those after it) has a current, complete record at ``seed`` (default: the current one)."""
    checks.one_of("hypothesis", hypothesis, tuple(HYPOTHESES))
    scale = config.read_scale(scale) if scale is not None else config.SCALE
    seed = config.read_seed(seed) if seed is not None else config.SEED
    chapters = list(chapters) if chapters is not None else evidence_chapters()
    states = records.status(chapters, scale=scale, seed=seed, root=root)
    found = records.across_seeds(sorted({*seeds, seed}), kind="predictions", scale=scale, root=root)
    judged = tuple(_judged(e) for e in found.values() if e["hypothesis"] == hypothesis and e["chapter"] in chapters)
    not_ok = [row["chapter"] for row in states if row["state"] != "ok"]
    verdict = f"unverified: run {', '.join(f'chapters/{c}.ipynb' for c in not_ok)}" if not_ok else _decide(judged)
    where = tuple(sorted({section_of(p.id) for p in judged}, key=_section_key))
    return Verdict(hypothesis, verdict, judged, where)


def evidence_chapters() -> list[str]:
    """The chapters whose predictions the synthesis judges: those before the synthesis chapter."""
    synthesis = next((c for c in records.CHAPTERS if c.endswith("_synthesis")), None)
    return list(records.CHAPTERS[:records.CHAPTERS.index(synthesis)] if synthesis else records.CHAPTERS)


def section_of(entry_id: str) -> str:
    """"§x.y" of the chapter section whose code makes the claim or prediction (from the notebook's headings)."""
    chapter = records.chapter_of(entry_id)
    path = config.resolve("chapters") / f"{chapter}.ipynb"
    section = f"ch. {int(chapter[:2])}"
    if not path.is_file():
        return section
    for cell in json.loads(path.read_text())["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            found = re.findall(r"^## (\d+\.\d+)", text, flags=re.M)
            section = f"§{found[-1]}" if found else section
        elif any(_id_pattern(written).fullmatch(entry_id) for written in re.findall(r'id=f?"([^"]+)"', text)):
            return section
    return f"ch. {int(chapter[:2])}"


def _id_pattern(written: str) -> re.Pattern:
    """The ids an ``id="…"`` or ``id=f"…"`` argument can produce: an f-string's fields match any text."""
    return re.compile(".+".join(re.escape(part) for part in re.split(r"\{[^}]*\}", written)))


def _section_key(section: str) -> tuple[int, int]:
    """Sort "§2.10" after "§2.9"."""
    parts = [int(p) for p in re.findall(r"\d+", section)] + [0, 0]
    return parts[0], parts[1]
