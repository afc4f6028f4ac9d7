"""Chapter 7, the synthesis: the model of its summary figure, the forum's candidate explanations in the words
a practitioner would use, and the replies and tables generated from the verdicts (:mod:`utils.evidence`)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from .. import records
from ..evidence import Verdict
from ..hypotheses import HYPOTHESES
from ..setups import Setup

SETUPS = {"small": (Setup("mlp", "digits"),), "full": (Setup("mlp", "mnist"),)}

FORUM = {
    "H1": "“Adversarial directions are rare, so a random change almost never hits one.”",
    "H2": "“Quantization only changes the predictions of inputs that sat near a decision boundary.”",
    "H3": "“Bigger networks shrug it off: wider layers tolerate weight noise better.”",
    "H4": "“The other weights compensate — that is why you retrain after quantizing.”",
    "H5": "“What matters is the distance to the boundary, in the direction of the perturbation.”",
    "H6": "“Random input noise of norm 0.1 to 1 changes (almost) no prediction” — a published measurement.",
    "H7a": "“Quantization error is just random noise.”",
    "H7b": "“…like the noise SGD already injects while training.”",
}
"""The candidate explanations of the discussion that prompted the book, one per hypothesis."""
REPLY = {"supported": "Yes.", "refuted": "No.", "mixed": "Partly.", "not tested at this scale": "Not tested here."}


def _number(verdict: Verdict, seed: int) -> str:
    """The first prediction's first test value at ``seed``, with its range over the replications."""
    if not verdict.predictions:
        return ""
    p = verdict.predictions[0]
    values = p.values.get(p.names[0], {})
    if seed not in values:
        return ""
    shown = f"{p.names[0]}: {values[seed]:.3g}"
    return shown + (f" ({min(values.values()):.3g}–{max(values.values()):.3g} over {len(values)} seeds)"
                    if len(values) > 1 else "")


def reply(verdict: Verdict, seed: int) -> str:
    """The answer to the forum's sentence for one hypothesis, in words: yes, no, partly (with where each part
    holds), not tested (and why), or that the records are not current — then the deciding number."""
    if verdict.verdict.startswith("unverified"):
        return f"Cannot say yet — {verdict.verdict}."
    head = REPLY[verdict.verdict]
    if verdict.verdict == "mixed":
        head += f" It {verdict.scope()}."
    elif verdict.verdict == "not tested at this scale":
        untested = [p.statement for p in verdict.predictions if p.outcome == "untested"]
        head += " The experiment had no power here" + (f" ({untested[0][0].lower() + untested[0][1:]})" if untested
                                                        else ": no prediction was recorded") + "."
    number = _number(verdict, seed)
    return f"{head} {number[0].upper() + number[1:]}." if number else head


def table(verdicts: Mapping[str, Verdict], seed: int) -> pd.DataFrame:
    """One row per hypothesis: its words, the verdict, what was tested and where each part holds, the deciding
    numbers (every prediction's first test value, its range over the replications and its outcome) and where
    in the book they are measured."""
    return pd.DataFrame([{
        "hypothesis": f"{h}: {HYPOTHESES[h]}", "verdict": v.verdict, "scope": v.scope(),
        "predictions (value at this seed, range over seeds, outcome)": "<br>".join(v.numbers(seed)),
        "where": ", ".join(v.where)} for h, v in verdicts.items()])


def value(entry_id: str, bound: str, fmt: str = "{:.3g}", *, kind: str = "claims") -> str:
    """One bound value of a recorded claim (or prediction), formatted — or a pointer to the chapter that records
    it, when its record is missing or not current."""
    entry = records.find(entry_id, kind=kind)
    bounds = [*entry.get("bounds", []), *entry.get("test", []), *entry.get("power", [])] if entry else []
    found = [b["value"] for b in bounds if b["name"] == bound]
    return fmt.format(float(found[0])) if found else f"(run chapter {int(records.chapter_of(entry_id)[:2])})"
