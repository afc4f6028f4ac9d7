"""Wrong answer to ch2 q3: uses Gaussian vectors u ~ N(0, I) without normalizing them, so uᵀĝ ~ N(0, 1) instead
of N(0, 1/D) — and answers E|cos θ| with the standard deviation 1/√D instead of the mean absolute value."""
import math

import torch


def random_cosines(g, n_draws, generator):
    flat = g.flatten(1)
    u = torch.randn(len(flat), n_draws, flat.shape[1], generator=generator)
    return torch.einsum("nkd,nd->nk", u, flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12))


mean_abs_cos_64 = 1 / math.sqrt(64)
