"""Records: where each run of a chapter keeps its claims and predictions, writing them, and reading them back.

A record is ``<records dir>/<scale>/seed-<seed>/<chapter>.json`` (the records dir is ``$BOOK_CLAIMS_DIR``,
else ``data/claims`` under the book's root): the record format, the chapter, scale, seed, a fingerprint of the
chapter's code, its status (``running`` until the chapter's last cell, ``complete``, or ``failed`` when a claim
did not hold), the claims (:mod:`utils.claims`: statements that must hold) and the predictions
(:mod:`utils.predictions`: hypothesis tests, confirmed or refuted). A chapter's first cell starts its record
(:func:`begin`), each claim or prediction cell adds or — when the cell is run again — replaces its entry
(:func:`add`), and its last cell completes it (:func:`end`); every write is atomic.

Every record is checked as a whole when it is read (:func:`read_record`): a file that is not a valid record
of the current format raises :class:`ClaimRecordError` naming the file and the chapter to re-run.
:func:`status` and :func:`find` tell the synthesis what is recorded and whether it can be trusted;
:func:`across_seeds` gathers the values of every bound over several seeds for the reproducibility appendix.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import checks, config, contents
from .recordformat import FORMAT, KINDS, validate

CHAPTERS = contents.names()
COMMITTED_DIR = "data/claims"
_state: dict[str, Any] = {"path": None, "record": None}


class ClaimRecordError(RuntimeError):
    """A record on disk cannot be read, or a claim was made outside a started chapter."""


def claims_dir() -> Path:
    """Where records are written and read: ``$BOOK_CLAIMS_DIR``, else ``data/claims`` under the root."""
    return config.output_dir("claims")


def records_folder(*, scale: str | None = None, seed: int | None = None, root: str | Path | None = None) -> Path:
    """``<root>/<scale>/seed-<seed>``: where one run's records are (default: the current scale and seed)."""
    folder = config.resolve(root) if root is not None else claims_dir()
    scale = config.read_scale(scale) if scale is not None else config.SCALE
    seed = config.read_seed(seed) if seed is not None else config.SEED
    return folder / scale / f"seed-{seed}"


def record_path(
    chapter: str, *, scale: str | None = None, seed: int | None = None, root: str | Path | None = None
) -> Path:
    """``<root>/<scale>/seed-<seed>/<chapter>.json`` (default: the current scale and seed, :func:`claims_dir`)."""
    return records_folder(scale=scale, seed=seed, root=root) / f"{chapter_name(chapter)}.json"


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


# ----------------------------------------------------------------------------------------------- writing


def _write(path: Path, record: dict) -> None:
    """Write a record atomically (:func:`config.write_atomically`: the old file or the new one, never half of
    one, with a normal file's permissions, so a shared records folder is readable by the group). A folder that
    cannot be written gets an error naming it and the setting that moves the records (``BOOK_CLAIMS_DIR``)."""
    text = json.dumps(record, indent=1, ensure_ascii=False) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        config.write_atomically(path, text.encode())
    except OSError as err:
        raise PermissionError(config.cannot_write("claims", path.parent, err)) from None


def begin(chapter: str) -> Path:
    """Start recording ``chapter`` (e.g. ``"01_decision_boundaries"``) at the current scale and seed,
    replacing its old record; the record says ``running`` until :func:`end`."""
    path = record_path(chapter)
    record = {"format": FORMAT, "chapter": chapter, "scale": config.SCALE, "seed": config.SEED,
              "digest": notebook_digest(chapter), "status": "running", "claims": [], "predictions": []}
    _write(path, record)
    _state.update(path=path, record=record)
    return path


def add(kind: str, entry: dict[str, Any]) -> None:
    """Add a claim or prediction (``kind``) to the record being written, replacing an entry with the same id
    (a cell run twice records once). Outside a started chapter this is an error: nothing would be recorded."""
    checks.one_of("kind", kind, KINDS)
    record = _state["record"]
    if record is None:
        raise ClaimRecordError(f"this cell records a {kind[:-1]} ({entry['id']}), but no chapter is being recorded: "
                               "run the chapter from its first cells (setups.start) before its claims")
    chapter = chapter_of(entry["id"])
    if chapter != record["chapter"]:
        raise ClaimRecordError(f"{entry['id']} belongs to {chapter}, but the chapter being recorded is "
                               f"{record['chapter']}: run {chapter}'s first cells (setups.start) first")
    entries = record[kind]
    record[kind] = [e for e in entries if e["id"] != entry["id"]] + [entry]
    failed = any(not c["holds"] for c in record["claims"])
    record["status"] = "failed" if failed else ("running" if record["status"] == "failed" else record["status"])
    _write(_state["path"], record)


def end() -> None:
    """Mark the current chapter's record complete (its last cell calls this); a failed record stays failed."""
    if _state["record"] is None:
        raise ClaimRecordError("end() needs a started chapter: run the chapter from its first cells")
    if _state["record"]["status"] == "running":
        _state["record"]["status"] = "complete"
    _write(_state["path"], _state["record"])


# ----------------------------------------------------------------------------------------------- reading


def read_record(path: Path) -> dict[str, Any]:
    """One chapter's record, checked as a whole (:func:`validate`), or a :class:`ClaimRecordError` naming the
    file, what is wrong and the chapter to re-run."""
    try:
        return validate(json.loads(Path(path).read_text()))
    except (OSError, ValueError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise ClaimRecordError(f"the record {path} is unreadable ({reason}); re-run chapters/{Path(path).stem}.ipynb "
                               "to write it again") from None


def _read_if_present(path: Path) -> dict[str, Any] | None:
    return read_record(path) if path.is_file() else None


def read_claims(chapter: str | None = None, *, kind: str = "claims", scale: str | None = None,
                seed: int | None = None, root: str | Path | None = None) -> list[dict[str, Any]]:
    """The recorded claims (or, with ``kind="predictions"``, predictions) of one chapter (or of every chapter
    recorded) at a scale and seed (default: the current ones), each with its ``chapter``, ``status`` and a
    ``stale`` flag (the chapter's code changed since)."""
    checks.one_of("kind", kind, KINDS)
    if chapter is not None:
        files = [record_path(chapter, scale=scale, seed=seed, root=root)]
    else:
        folder = records_folder(scale=scale, seed=seed, root=root)
        files = [folder / f"{c}.json" for c in CHAPTERS if (folder / f"{c}.json").is_file()]
    out = []
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"nothing recorded for chapter {f.stem!r} at this scale and seed ({f}): run "
                                    f"chapters/{f.stem}.ipynb first")
        record = read_record(f)
        stale = record["digest"] != notebook_digest(record["chapter"])
        out += [{**e, "chapter": record["chapter"], "status": record["status"], "stale": stale} for e in record[kind]]
    return out


def _state_of(chapter: str, path: Path) -> tuple[str, str, dict[str, Any] | None]:
    """A record's state, what to do about it, and the record (None if missing or unreadable)."""
    if not path.is_file():
        return "missing", f"run chapters/{chapter}.ipynb", None
    try:
        record = read_record(path)
    except ClaimRecordError as err:
        return "unreadable", str(err), None
    if record["status"] == "failed":
        failed = ", ".join(c["id"] for c in record["claims"] if not c["holds"])
        return "failed", f"claim {failed} did not hold: see chapters/{chapter}.ipynb", record
    if record["digest"] != notebook_digest(chapter):
        return "stale", f"run chapters/{chapter}.ipynb (its code changed since the record)", record
    if record["status"] != "complete":
        return "incomplete", f"chapters/{chapter}.ipynb stopped before its end: run it again", record
    return "ok", "ok", record


def status(chapters: Sequence[str], **where: Any) -> list[dict[str, Any]]:
    """For each chapter: its record's state — ``missing``, ``unreadable``, ``failed`` (a claim did not hold),
    ``stale`` (its code changed since), ``incomplete`` (stopped before its end) or ``ok`` — the numbers of
    claims recorded and holding and of predictions, and what to do. ``where`` selects scale, seed and root
    as in :func:`read_claims`."""
    if isinstance(chapters, str) or not isinstance(chapters, Sequence):
        raise TypeError(f"chapters must be a list of chapter names, got {chapters!r}")
    rows = []
    for chapter in chapters:
        state, action, record = _state_of(chapter, record_path(chapter, **where))
        claims = record["claims"] if record else []
        rows.append({"chapter": chapter, "state": state, "claims": len(claims),
                     "holding": sum(c["holds"] for c in claims),
                     "predictions": len(record["predictions"]) if record else 0, "action": action})
    return rows


def find(entry_id: str, *, kind: str = "claims", **where: Any) -> dict[str, Any] | None:
    """The claim (or prediction) recorded under ``entry_id`` if its chapter's record is complete and fresh
    (and, for a claim, the claim holds); else None. ``where`` selects scale, seed and root."""
    chapter = chapter_of(entry_id)
    state, _, record = _state_of(chapter, record_path(chapter, **where))
    if state != "ok":
        return None
    return next(({**e, "chapter": chapter} for e in record[checks.one_of("kind", kind, KINDS)]
                 if e["id"] == entry_id and e.get("holds", True)), None)


def chapter_of(entry_id: str) -> str:
    """The chapter a claim or prediction id belongs to: ``"ch2.…"`` → ``"02_input_perturbations"``."""
    match = re.fullmatch(r"ch(\d+)\..+", entry_id) if isinstance(entry_id, str) else None
    by_number = {contents.number(c): c for c in CHAPTERS}
    if not match or int(match.group(1)) not in by_number:
        raise ValueError(f"an id must look like 'ch<N>.<name>' with N one of the chapters' numbers "
                         f"{sorted(by_number)}, got {entry_id!r}")
    return by_number[int(match.group(1))]


def across_seeds(seeds: Sequence[int], *, kind: str = "claims", scale: str = "small",
                 root: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Every claim (or prediction) recorded at ``scale`` for each of ``seeds``, by id: its statement and bounds
    as recorded at the first seed (for a prediction also its hypothesis and scope), and per seed whether it
    held (a prediction: its outcome), its bound values (``values[name][seed]``) and whether the record was
    stale. Chapters whose record is missing at a seed are absent there."""
    checks.one_of("kind", kind, KINDS)
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
        raise TypeError(f"seeds must be a list of integers, got {seeds!r}")
    seeds = [checks.integer(f"seeds[{i}]", s, minimum=0) for i, s in enumerate(seeds)]
    out: dict[str, dict[str, Any]] = {}
    for seed in seeds:
        for chapter in CHAPTERS:
            record = _read_if_present(record_path(chapter, scale=scale, seed=seed, root=root))
            if record is None:
                continue
            stale = record["digest"] != notebook_digest(chapter)
            for e in record[kind]:
                bounds = e["bounds"] if kind == "claims" else e["test"] + e["power"]
                entry = out.setdefault(e["id"], {
                    "id": e["id"], "chapter": chapter, "statement": e["statement"], "bounds": bounds,
                    "hypothesis": e.get("hypothesis"), "scope": e.get("scope", ""), "held": {}, "values": {},
                    "stale": {}})
                entry["held"][seed] = e["holds"] if kind == "claims" else e["outcome"]
                entry["stale"][seed] = stale
                for b in bounds:
                    entry["values"].setdefault(b["name"], {})[seed] = float(b["value"])
    return out
