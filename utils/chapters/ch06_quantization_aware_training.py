"""Chapter 6, quantization-aware training: the models it studies."""

from __future__ import annotations

from ..setups import WEIGHT_SPACE

SETUPS = WEIGHT_SPACE
