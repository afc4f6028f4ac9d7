"""The record format: what a chapter's record holds, and checking a record as a whole.

A record (:mod:`utils.records`) is a JSON object: ``format`` (:data:`FORMAT`), ``chapter``, ``scale``,
``seed``, ``digest`` (a fingerprint of the chapter's code), ``status`` and two lists of entries, ``claims``
(each an ``id``, a ``statement``, ``holds`` true or false, ``bounds`` and ``evidence``) and ``predictions``
(each an ``id``, a ``hypothesis``, a ``statement``, an ``outcome``, a ``scope``, ``test`` and ``power``
bounds and ``evidence``). A bound is a ``name``, a numeric ``value``, an ``op`` (:data:`OPS`), a ``limit``
(a pair for ``between``) and a ``basis`` "<kind>: <reason>" with kind one of :data:`BASES`.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

from . import config, contents
from .hypotheses import HYPOTHESES, OUTCOMES

FORMAT = 2
KINDS = ("claims", "predictions")
OPS = ("<", "<=", ">", ">=", "between")
BASES = ("theory", "literature", "seeds", "design")
ID = re.compile(r"ch\d+\.[a-z0-9][a-z0-9\-]*")


def _check_bound(b: Any, where: str) -> None:
    if not isinstance(b, dict):
        raise ValueError(f"{where} is not a bound")
    if not isinstance(b.get("name"), str) or b.get("op") not in OPS or not isinstance(b.get("basis"), str):
        raise ValueError(f"{where} lacks a name, an operator in {OPS} or a basis")
    if b["basis"].split(":", 1)[0] not in BASES:
        raise ValueError(f"{where} has a basis that is not one of {BASES}")
    value = b.get("value")
    if isinstance(value, str):
        value = float(value) if value in ("nan", "inf", "-inf") else None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{where} has no numeric value")
    limits = b.get("limit") if b["op"] == "between" else [b.get("limit")]
    if not isinstance(limits, list) or len(limits) != (2 if b["op"] == "between" else 1) or not all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in limits):
        raise ValueError(f"{where} has no valid limit")


def _check_entry(e: Any, kind: str, i: int) -> None:
    where = f"{kind}[{i}]"
    if not isinstance(e, dict) or not isinstance(e.get("id"), str) or not ID.fullmatch(e["id"]):
        raise ValueError(f"{where} has no valid id")
    if not isinstance(e.get("statement"), str) or not e["statement"].strip():
        raise ValueError(f"{where} ({e['id']}) has no statement")
    if kind == "claims":
        if not isinstance(e.get("holds"), bool):
            raise ValueError(f"{where} ({e['id']}): holds must be true or false, got {e.get('holds')!r}")
        groups = {"bounds": e.get("bounds")}
    else:
        if e.get("hypothesis") not in HYPOTHESES or e.get("outcome") not in OUTCOMES:
            raise ValueError(f"{where} ({e['id']}) has no valid hypothesis or outcome")
        groups = {"test": e.get("test"), "power": e.get("power")}
    for group, bounds in groups.items():
        if not isinstance(bounds, list):
            raise ValueError(f"{where} ({e['id']}) has no list of {group}")
        for j, b in enumerate(bounds):
            _check_bound(b, f"{where} ({e['id']}) {group}[{j}]")


def validate(record: Any) -> dict[str, Any]:
    """``record`` if it is a complete record of the current format — every field, every claim and prediction
    with an id, a statement, a truth value or outcome and well-formed bounds — else a ``ValueError`` saying
    what is wrong."""
    if not isinstance(record, dict):
        raise ValueError("it is not a record (a JSON object)")
    if record.get("format") != FORMAT:
        raise ValueError(f"it is in record format {record.get('format', 1)!r}, not {FORMAT} (written by an older "
                         "version of the book)")
    if record.get("chapter") not in contents.names() or record.get("scale") not in config.SCALES:
        raise ValueError("its chapter or scale is not one of the book's")
    if isinstance(record.get("seed"), bool) or not isinstance(record.get("seed"), int) or record["seed"] < 0:
        raise ValueError("its seed is not a non-negative integer")
    if record.get("status") not in ("running", "complete", "failed"):
        raise ValueError(f"its status {record.get('status')!r} is not running, complete or failed")
    if not isinstance(record.get("digest"), (str, type(None))):
        raise ValueError("its code digest is not a string")
    for kind in KINDS:
        if not isinstance(record.get(kind), list):
            raise ValueError(f"it has no list of {kind}")
        for i, e in enumerate(record[kind]):
            _check_entry(e, kind, i)
    return record


