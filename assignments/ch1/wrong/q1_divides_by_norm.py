"""Wrong answer to ch1 q1: steps by (wᵀx + b)/‖w‖ instead of (wᵀx + b)/‖w‖² along w, so the point lands on
the hyperplane only when ‖w‖ = 1 (it mixes the distance with the unit normal and the raw normal)."""


def closest_point(x, w, b):
    return x - ((x @ w + b) / w.norm())[:, None] * w
