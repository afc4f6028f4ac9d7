"""Chapter 7, the synthesis: the model of its summary figure."""

from __future__ import annotations

from ..setups import Setup

SETUPS = {"small": (Setup("mlp", "digits"),), "full": (Setup("mlp", "mnist"),)}
