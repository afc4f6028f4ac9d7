"""The book's table of contents, as the package knows it: the chapters, in order, read from the chapter modules.

Chapter N is the notebook ``chapters/NN_<name>.ipynb`` and the module ``utils.chapters.chNN_<name>``, which
holds what that chapter needs and no other does: the models it studies (``SETUPS``), its measurement drivers
and its explorer. The chapter list is the list of these modules, read from their file names without
importing them, so adding a chapter means its notebook, its module and its line in ``_toc.yml`` (a test
checks that the table of contents and the modules agree). Claim ids start with ``ch<N>.``, for any N.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType

_MODULE = re.compile(r"ch(\d{2,})_([a-z0-9_]+)\.py")


def names() -> tuple[str, ...]:
    """The chapters' notebook names in order, e.g. ``("01_decision_boundaries", …)``."""
    found = [_MODULE.fullmatch(p.name) for p in (Path(__file__).parent / "chapters").iterdir()]
    return tuple(f"{m.group(1)}_{m.group(2)}" for m in sorted(filter(None, found), key=lambda m: int(m.group(1))))


def number(name: str) -> int:
    """The number of the chapter ``name``: ``number("04_post_training_quantization") == 4``."""
    return int(name.split("_", 1)[0])


def module(name: str) -> ModuleType:
    """The module of the chapter ``name`` (imported on first use)."""
    return importlib.import_module(f"{__package__}.chapters.ch{name}")
