"""Wrong answer to ch1 q2: walks x + t·u with the raw direction u, so t is measured in units of ‖u‖ rather than
as a Euclidean length (right only for unit directions, which is all the public test uses)."""
import math

import torch

from utils import train


def distance_by_bisection(model, x, u, t_max=2.0, n_scan=64, n_bisect=30):
    label = train.predict(model, x)
    lo, hi = torch.zeros(len(x)), torch.full((len(x),), math.inf)
    for k in range(1, n_scan + 1):
        todo = torch.isinf(hi).nonzero().squeeze(1)
        if len(todo) == 0:
            break
        t = k * t_max / n_scan
        changed = todo[train.predict(model, x[todo] + t * u[todo]) != label[todo]]
        lo[changed], hi[changed] = (k - 1) * t_max / n_scan, t
    found = torch.isfinite(hi).nonzero().squeeze(1)
    a, b = lo[found], hi[found]
    for _ in range(n_bisect):
        mid = (a + b) / 2
        changed = train.predict(model, x[found] + mid[:, None] * u[found]) != label[found]
        a, b = torch.where(changed, a, mid), torch.where(changed, mid, b)
    hi[found] = b
    return hi
