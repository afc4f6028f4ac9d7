"""Wrong answer to ch2 q2: steps against the gradient (x - α·g/‖g‖), which makes the model more confident
instead of attacking it. Shapes and the budget are right, so the public test passes."""
import torch
import torch.nn.functional as F


def pgd_l2(model, x, y, eps, steps=10, alpha=None):
    alpha = 2.5 * eps / steps if alpha is None else alpha
    xt = x.clone()
    for _ in range(steps):
        xt.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(xt), y, reduction="sum"), xt)
        norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
        xt = project_l2(x, xt.detach() - alpha * grad / norm, eps)  # noqa: F821 (the notebook's project_l2)
    return xt.detach()
