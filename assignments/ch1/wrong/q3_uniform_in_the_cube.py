"""Wrong answer to ch1 q3: normalizes a point drawn uniformly from the cube [-1, 1]^d, which is not uniform on
the sphere (it favours the cube's diagonals); in high dimension |u₁|·√d then follows √3·U(0, 1) instead of
|N(0, 1)|, and the median ratio comes out about 22% too small."""
import torch


def random_distance_ratios(d, n, generator):
    c = torch.rand(n, d, generator=generator, dtype=torch.float64) * 2 - 1
    u = c / c.norm(dim=1, keepdim=True)
    return 1 / u[:, 0].abs()
