"""Hypothesis tests: a prediction, stated with its threshold before the numbers come in and recorded as
confirmed or refuted — without stopping the chapter.

A prediction belongs to one hypothesis (:data:`utils.hypotheses.HYPOTHESES`) and has

- a **test**: one or more :class:`~utils.claims.Bound` objects whose limits are fixed in the code with their
  basis; the prediction is *confirmed* when all of them hold and *refuted* when one does not;
- **power**: bounds showing that the experiment could have seen the effect in question — where a
  hypothesis predicts that nothing happens, that something of the same size (an adversary, a coarser grid)
  does happen. If a power bound fails, the outcome is *untested*, whatever the test says;
- a **scope**: what was tested, in a few words ("weight rounding at 4 and 3 bits, two models").

The outcome is printed and recorded (:mod:`utils.records`); the synthesis computes each hypothesis's verdict
from the outcomes (:mod:`utils.evidence`). Prose that depends on an outcome is generated from it with
:meth:`Prediction.says` and glued into the text, so that the text cannot contradict the record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from . import checks, records
from .claims import Bound, checked_evidence, checked_id, evidence_line, jsonable
from .hypotheses import HYPOTHESES

MARK = {"confirmed": "▲ prediction confirmed", "refuted": "▼ prediction refuted",
        "untested": "◆ not tested (no power)"}


@dataclass(frozen=True)
class Prediction:
    """A recorded prediction and its outcome (``confirmed``, ``refuted`` or ``untested``)."""

    id: str
    hypothesis: str
    statement: str
    outcome: str
    test: tuple[Bound, ...]
    power: tuple[Bound, ...]
    scope: str

    def says(self, *, confirmed: str, refuted: str, untested: str | None = None) -> str:
        """The sentence for this outcome (``untested`` defaults to saying that the test had no power)."""
        texts = {"confirmed": confirmed, "refuted": refuted,
                 "untested": untested or "the experiment had no power to decide this at this scale"}
        return texts[self.outcome]

    def value(self, name: str) -> float:
        """The measured value of the test or power bound called ``name``."""
        for b in (*self.test, *self.power):
            if b.name == name:
                return b.value
        raise KeyError(f"prediction {self.id} has no bound {name!r}; it has "
                       f"{[b.name for b in (*self.test, *self.power)]}")


def _bound_list(name: str, value: Bound | Sequence[Bound], *, empty: bool) -> tuple[Bound, ...]:
    """``value`` as a tuple of bounds (one bound, or a sequence of them; empty only if ``empty``)."""
    bounds = (value,) if isinstance(value, Bound) else value
    if isinstance(bounds, (str, bytes)) or not isinstance(bounds, Sequence) or (not bounds and not empty) or not all(
            isinstance(b, Bound) for b in bounds):
        raise TypeError(f"{name} must be a claims.Bound or a {'' if empty else 'non-empty '}sequence of them, "
                        f"got {value!r}")
    return tuple(bounds)


def predict(
    statement: str,
    test: Bound | Sequence[Bound],
    *,
    id: str,  # noqa: A002 (the prediction's identifier)
    hypothesis: str,
    power: Bound | Sequence[Bound] = (),
    scope: str = "",
    evidence: Mapping[str, Any] | str | None = None,
) -> Prediction:
    """Evaluate, print and record one prediction of ``hypothesis``; never raises for a refuted prediction.

    ``statement`` says what the hypothesis predicts, in the positive ("adversarial rounding costs more than
    …"); ``test`` decides it; ``power`` (optional) shows the experiment could see the effect; ``scope`` says
    what was tested. Returns the :class:`Prediction`, whose :meth:`~Prediction.says` picks the prose."""
    if not isinstance(statement, str) or not statement.strip():
        raise ValueError("statement must be a non-empty string")
    checked_id(id)
    checks.one_of("hypothesis", hypothesis, tuple(HYPOTHESES))
    if not isinstance(scope, str):
        raise TypeError(f"scope must be a string, got {scope!r}")
    test, power = _bound_list("test", test, empty=False), _bound_list("power", power, empty=True)
    evidence = checked_evidence(evidence)
    outcome = "untested" if not all(b.holds for b in power) else "confirmed" if all(b.holds for b in test) \
        else "refuted"
    records.add("predictions", {
        "id": id, "hypothesis": hypothesis, "statement": statement, "outcome": outcome, "scope": scope,
        "test": [jsonable(asdict(b)) for b in test], "power": [jsonable(asdict(b)) for b in power],
        "evidence": jsonable(evidence)})
    shown = evidence_line(test, evidence)
    if power:
        shown += "; power: " + "; ".join(b.text() for b in power)
    print(f"{MARK[outcome]} [{hypothesis}] {statement}\n    evidence: {shown}")
    return Prediction(id, hypothesis, statement, outcome, test, power, scope)
