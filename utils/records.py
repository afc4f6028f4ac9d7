"""Claim records: where each run of a chapter keeps its verified claims, and reading them back.

A record is ``<claims dir>/<scale>/seed-<seed>/<chapter>.json`` (the claims dir is ``$BOOK_CLAIMS_DIR``,
else ``data/claims`` under the book's root): the chapter, scale, seed, a fingerprint of the chapter's code,
its status (``running`` until the chapter's last cell, ``complete``, or ``failed`` when a claim did not
hold) and the claims, each with its stable id, bounds and evidence (written by :mod:`utils.claims`).
:func:`status` and :func:`find` tell the synthesis what is recorded and whether it can be trusted;
:func:`across_seeds` gathers one claim's values over several seeds for the reproducibility appendix.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import checks, config

CHAPTERS = ("01_decision_boundaries", "02_input_perturbations", "03_weight_perturbations",
            "04_post_training_quantization", "05_quantization_aware_training", "06_synthesis")
COMMITTED_DIR = "data/claims"


class ClaimRecordError(RuntimeError):
    """A claim record on disk cannot be read."""


def claims_dir() -> Path:
    """Where records are written and read: ``$BOOK_CLAIMS_DIR``, else ``data/claims`` under the root."""
    return config.resolve(os.environ.get("BOOK_CLAIMS_DIR") or COMMITTED_DIR)


def record_path(
    chapter: str, *, scale: str | None = None, seed: int | None = None, root: str | Path | None = None
) -> Path:
    """``<root>/<scale>/seed-<seed>/<chapter>.json`` (default: the current scale and seed, :func:`claims_dir`)."""
    folder = config.resolve(root) if root is not None else claims_dir()
    scale = config.read_scale(scale) if scale is not None else config.SCALE
    seed = config.read_seed(seed) if seed is not None else config.SEED
    return folder / scale / f"seed-{seed}" / f"{chapter_name(chapter)}.json"


def chapter_name(chapter: str) -> str:
    """``chapter`` if it is one of the book's chapters (:data:`CHAPTERS`), so a typo cannot pass unnoticed
    and a name cannot leave the records' folder."""
    return checks.one_of("chapter", chapter, CHAPTERS)


def notebook_digest(chapter: str, *, folder: str | Path = "chapters") -> str | None:
    """SHA-256 of the code that ``chapters/<chapter>.ipynb`` runs — its code cells' non-blank lines, trailing
    spaces stripped — or None if absent. Outputs, blank lines and where one cell ends and the next begins do not
    count: splitting a cell leaves its records current, changing a line does not."""
    path = config.resolve(folder) / f"{chapter_name(chapter)}.ipynb"
    if not path.is_file():
        return None
    cells = json.loads(path.read_text())["cells"]
    lines = (line.rstrip() for c in cells if c["cell_type"] == "code" for line in "".join(c["source"]).splitlines())
    return hashlib.sha256("\n".join(line for line in lines if line).encode()).hexdigest()


def read_record(path: Path) -> dict[str, Any]:
    """One chapter's record, with a clear error naming the file and the chapter to re-run if unreadable."""
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or not isinstance(record.get("claims"), list):
            raise ValueError("it is not a claim record")
        for key in ("chapter", "scale", "seed", "status", "digest"):
            record[key]  # noqa: B018 (a missing key is a corrupt record)
    except (OSError, ValueError, KeyError) as err:
        raise ClaimRecordError(f"the claim record {path} is unreadable ({type(err).__name__}: {err}); "
                               f"re-run chapters/{path.stem}.ipynb to write it again") from None
    return record


def read_claims(chapter: str | None = None, *, scale: str | None = None, seed: int | None = None,
                root: str | Path | None = None) -> list[dict[str, Any]]:
    """The recorded claims of one chapter (or of all) at a scale and seed (default: the current ones), each
    with its ``chapter``, ``status`` and a ``stale`` flag (the chapter's code changed since)."""
    if chapter is not None:
        files = [record_path(chapter, scale=scale, seed=seed, root=root)]
    else:
        files = sorted(record_path("x", scale=scale, seed=seed, root=root).parent.glob("*.json"))
    out = []
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"no claims recorded for chapter {f.stem!r} at this scale and seed "
                                    f"({f}): run chapters/{f.stem}.ipynb first")
        record = read_record(f)
        stale = record["digest"] != notebook_digest(record["chapter"])
        out += [{**c, "chapter": record["chapter"], "status": record["status"], "stale": stale}
                for c in record["claims"]]
    return out


def _state_of(chapter: str, record: dict[str, Any] | None) -> tuple[str, str]:
    """A record's state and what to do about it (see :func:`status`)."""
    if record is None:
        return "missing", f"run chapters/{chapter}.ipynb"
    if record["status"] == "failed":
        failed = ", ".join(c["id"] for c in record["claims"] if not c["holds"])
        return "failed", f"claim {failed} did not hold: see chapters/{chapter}.ipynb"
    if record["digest"] != notebook_digest(chapter):
        return "stale", f"run chapters/{chapter}.ipynb (its code changed since the record)"
    if record["status"] != "complete":
        return "incomplete", f"chapters/{chapter}.ipynb stopped before its end: run it again"
    return "ok", "ok"


def status(chapters: Sequence[str], **where: Any) -> list[dict[str, Any]]:
    """For each chapter: its record's state — ``missing``, ``failed`` (a claim did not hold), ``stale``
    (its code changed since), ``incomplete`` (stopped before its end) or ``ok`` — the number of claims
    recorded and holding, and what to do. ``where`` selects scale, seed and root as in :func:`read_claims`."""
    if isinstance(chapters, str) or not isinstance(chapters, Sequence):
        raise TypeError(f"chapters must be a list of chapter names, got {chapters!r}")
    rows = []
    for chapter in chapters:
        path = record_path(chapter, **where)
        record = read_record(path) if path.is_file() else None
        state, action = _state_of(chapter, record)
        claims = record["claims"] if record else []
        rows.append({"chapter": chapter, "state": state, "claims": len(claims),
                     "holding": sum(c["holds"] for c in claims), "action": action})
    return rows


def find(claim_id: str, **where: Any) -> dict[str, Any] | None:
    """The claim recorded under ``claim_id`` if its chapter's record is complete, fresh and the claim
    holds; else None. ``where`` selects scale, seed and root as in :func:`read_claims`."""
    chapter = chapter_of(claim_id)
    path = record_path(chapter, **where)
    record = read_record(path) if path.is_file() else None
    if _state_of(chapter, record)[0] != "ok":
        return None
    return next(({**c, "chapter": chapter} for c in record["claims"] if c["id"] == claim_id and c["holds"]), None)


def chapter_of(claim_id: str) -> str:
    """The chapter a claim id belongs to: ``"ch2.…"`` → ``"02_input_perturbations"``."""
    match = re.fullmatch(r"ch(\d)\..+", claim_id) if isinstance(claim_id, str) else None
    if not match or not 1 <= int(match.group(1)) <= len(CHAPTERS):
        raise ValueError(f"claim id must look like 'ch<1-{len(CHAPTERS)}>.<name>', got {claim_id!r}")
    return CHAPTERS[int(match.group(1)) - 1]


def across_seeds(seeds: Sequence[int], *, scale: str = "small", root: str | Path | None = None
                 ) -> dict[str, dict[str, Any]]:
    """Every claim recorded at ``scale`` for each of ``seeds``, by id: its statement, hypotheses and bounds
    (name, op, limit, basis) as recorded at the first seed, and per seed whether it held and its bound
    values (``values[name][seed]``). Chapters whose record is missing at a seed are absent there."""
    out: dict[str, dict[str, Any]] = {}
    for seed in seeds:
        for chapter in CHAPTERS:
            path = record_path(chapter, scale=scale, seed=seed, root=root)
            if not path.is_file():
                continue
            record = read_record(path)
            for c in record["claims"]:
                entry = out.setdefault(c["id"], {"id": c["id"], "chapter": chapter, "statement": c["statement"],
                                                 "hypotheses": c["hypotheses"], "bounds": c["bounds"],
                                                 "held": {}, "values": {}, "stale": {}})
                entry["held"][seed] = c["holds"]
                entry["stale"][seed] = record["digest"] != notebook_digest(chapter)
                for b in c["bounds"]:
                    entry["values"].setdefault(b["name"], {})[seed] = b["value"]
    return out
