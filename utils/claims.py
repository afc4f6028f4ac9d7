"""Verified claims: every statement a chapter makes about its results is checked in code.

A chapter calls :func:`begin_chapter` once, then :func:`claim` for each statement. A claim that holds is
printed with its evidence and recorded in ``data/claims/<chapter>.json``; one that does not raises
:class:`ClaimFailed`, so a chapter cannot silently say something its numbers do not show. The synthesis
chapter reads the records back with :func:`read_claims`, which also says when a record is stale (the
chapter's code changed since it was recorded, or it was recorded at another scale).
"""

from __future__ import annotations

import hashlib
import json
import numbers
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import config

HYPOTHESES = tuple(f"H{i}" for i in range(1, 8))
HYPOTHESES_TEXT = {  # the book's hypotheses, in a few words (the introduction states them in full)
    "H1": "adversarial directions are rare",
    "H2": "quantization flips only inputs near a decision boundary",
    "H3": "wider networks tolerate random weight noise better",
    "H4": "other weights compensate, so retraining recovers",
    "H5": "distance to the boundary, in the perturbation's direction, decides",
    "H6": "random input noise of norm 0.1–1 leaves predictions unchanged (published)",
    "H7": "quantization error behaves like random noise",
}
CLAIMS_DIR = "data/claims"
_state: dict[str, Any] = {"chapter": None, "root": None}


class ClaimFailed(AssertionError):
    """A chapter stated something that its own numbers do not support."""


def _format(value: Any) -> str:
    """Numbers to 4 significant digits, everything else as ``str``."""
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return f"{float(value):.4g}"
    return str(value)


def _plain(value: Any) -> Any:
    """A JSON-friendly copy: NumPy/torch scalars become Python numbers, sequences lists."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, bool, type(None))) else str(value)


def notebook_digest(chapter: str, *, folder: str | Path = "chapters") -> str | None:
    """SHA-256 of the code cells of ``chapters/<chapter>.ipynb`` (outputs excluded), or None if absent."""
    path = config.resolve(folder) / f"{chapter}.ipynb"
    if not path.is_file():
        return None
    cells = json.loads(path.read_text())["cells"]
    code = "\n\0".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return hashlib.sha256(code.encode()).hexdigest()


def begin_chapter(chapter: str, *, root: str | Path = CLAIMS_DIR) -> Path:
    """Start recording the claims of ``chapter`` (e.g. ``"01_decision_boundaries"``), replacing its old
    record. Returns the record file's path."""
    if not isinstance(chapter, str) or not re.fullmatch(r"[A-Za-z0-9_\-]+", chapter):
        raise ValueError(f"chapter must be a name of letters, digits, '_' or '-', got {chapter!r}")
    path = config.resolve(root) / f"{chapter}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"chapter": chapter, "scale": config.SCALE, "digest": notebook_digest(chapter), "claims": []}
    path.write_text(json.dumps(record, indent=1))
    _state.update(chapter=chapter, root=path)
    return path


def claim(
    statement: str,
    holds: bool,
    evidence: Mapping[str, Any] | str,
    *,
    hypotheses: Sequence[str] = (),
) -> None:
    """Check, print and record one claim; raise :class:`ClaimFailed` if ``holds`` is false.

    ``evidence`` holds the numbers behind the statement (a mapping name → value, or a sentence);
    ``hypotheses`` names the hypotheses it bears on (``"H1"`` … ``"H7"``).
    """
    if not isinstance(statement, str) or not statement.strip():
        raise ValueError("statement must be a non-empty string")
    if not isinstance(evidence, (str, Mapping)):
        raise TypeError(f"evidence must be a mapping or a string, got {type(evidence).__name__}")
    try:
        holds = bool(holds)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"holds must be a single truth value, got {holds!r}") from err
    hypotheses = [hypotheses] if isinstance(hypotheses, str) else list(hypotheses)
    unknown = [h for h in hypotheses if h not in HYPOTHESES]
    if unknown:
        raise ValueError(f"unknown hypotheses {unknown}; allowed: {', '.join(HYPOTHESES)}")
    shown = evidence if isinstance(evidence, str) else "; ".join(f"{k} = {_format(v)}" for k, v in evidence.items())
    entry = {"statement": statement, "holds": holds, "evidence": _plain(evidence), "hypotheses": hypotheses}
    if _state["root"] is not None:
        record = json.loads(_state["root"].read_text())
        record["claims"].append(entry)
        _state["root"].write_text(json.dumps(record, indent=1))
    tags = f"[{', '.join(hypotheses)}] " if hypotheses else ""
    if not holds:
        raise ClaimFailed(f"{tags}{statement} — does NOT hold; evidence: {shown}")
    print(f"✔ verified {tags}{statement}\n    evidence: {shown}")


def read_claims(chapter: str | None = None, *, root: str | Path = CLAIMS_DIR) -> list[dict[str, Any]]:
    """The recorded claims of one chapter (or of all), each with its chapter and a ``stale`` flag: true
    when the chapter's code changed since the record was made or the record is of another scale."""
    folder = config.resolve(root)
    files = [folder / f"{chapter}.json"] if chapter else sorted(folder.glob("*.json"))
    out = []
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"no claims recorded for chapter {f.stem!r}: run chapters/{f.stem}.ipynb first")
        record = json.loads(f.read_text())
        stale = record["scale"] != config.SCALE or record["digest"] != notebook_digest(record["chapter"])
        out += [{**c, "chapter": record["chapter"], "stale": stale} for c in record["claims"]]
    return out


def status(chapters: Sequence[str], *, root: str | Path = CLAIMS_DIR) -> list[dict[str, Any]]:
    """For each chapter: whether its claims are recorded, how many, whether they are stale, and what to do
    (``"run chapters/<chapter>.ipynb"`` when they are missing or stale, else ``"ok"``)."""
    rows = []
    for chapter in chapters:
        try:
            records = read_claims(chapter, root=root)
        except FileNotFoundError:
            records = None
        stale = records is None or any(r["stale"] for r in records)
        rows.append({"chapter": chapter, "recorded": records is not None, "claims": len(records or []),
                     "stale": records is not None and stale,
                     "action": f"run chapters/{chapter}.ipynb" if stale else "ok"})
    return rows


def find(chapter: str, prefix: str, *, root: str | Path = CLAIMS_DIR) -> dict[str, Any] | None:
    """The first claim recorded by ``chapter`` whose statement starts with ``prefix``, if it is recorded,
    fresh (not stale) and holds; else None."""
    try:
        records = read_claims(chapter, root=root)
    except FileNotFoundError:
        return None
    for record in records:
        if record["statement"].startswith(prefix):
            return record if record["holds"] and not record["stale"] else None
    return None
