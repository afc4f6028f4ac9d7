"""Wrong answer to ch6 q1: the "identity" straight-through estimator, x + (Q(x) − x).detach(), whose gradient is 1
everywhere — also where the weight is clipped and moving it does not move the output. The forward values
are right."""
import torch


def ste_quantize(x, scale, bits):
    q_max = 2 ** (bits - 1) - 1
    q = scale * torch.round(x / scale).clamp(-q_max, q_max)
    return x + (q - x).detach()
