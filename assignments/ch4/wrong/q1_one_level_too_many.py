"""Wrong answer to ch4 q1: takes q_max = 2^(b−1), the magnitude of the most negative two's-complement code, so
the grid has 2^b + 1 levels (one more than b bits can hold) and a step Δ that is too small."""
import torch


def quantize_per_channel(w, bits):
    q_max = 2 ** (bits - 1)
    delta = (w.abs().flatten(1).amax(dim=1).clamp_min(1e-12) / q_max).view(-1, *[1] * (w.dim() - 1))
    return delta * torch.round(w / delta).clamp(-q_max, q_max)
