"""Wrong answer to ch2 q1: clips every coordinate of the perturbation to [-eps, eps] — the L∞ projection. The
result is a valid image, but its L2 norm can reach eps·√D (8·eps for 8×8 digits)."""


def project_l2(x0, x, eps):
    return (x0 + (x - x0).clamp(-eps, eps)).clamp(0.0, 1.0)
