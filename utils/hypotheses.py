"""The book's hypotheses: the candidate explanations of why quantization does little harm, each tested by
predictions (:mod:`utils.predictions`) and judged in the synthesis (:mod:`utils.evidence`). The
introduction states each in full; here they have a key and a few words."""

from __future__ import annotations

HYPOTHESES: dict[str, str] = {
    "H1": "adversarial directions are rare",
    "H2": "quantization flips only inputs near a decision boundary",
    "H3": "wider networks tolerate weight noise and rounding better",
    "H4": "the other weights compensate, so retraining recovers",
    "H5": "distance to the boundary, in the perturbation's direction, decides",
    "H6": "random input noise of norm 0.1–1 leaves predictions unchanged (published)",
    "H7a": "rounding error is random with respect to the gradient and the curvature",
    "H7b": "rounding error resembles the noise SGD injects",
}
"""Key → the hypothesis in a few words. H7 of the book's design is two statements, judged apart."""

OUTCOMES = ("confirmed", "refuted", "untested")
"""A prediction's outcome: its test held (``confirmed``) or did not (``refuted``) — or the experiment had
no power to decide it (``untested``: the control that shows an effect of the same size can be seen did not
show one)."""
