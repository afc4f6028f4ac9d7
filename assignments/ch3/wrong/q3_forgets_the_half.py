"""Wrong answer to ch3 q3: sets ε‖g‖ = ε²λ_max (forgetting the ½ of the quadratic term): ε* = ‖g‖/λ_max,
half the right value."""
from utils import config, curvature, weights

grad_norm = weights.flatten(weights.gradient(cnn, x, y)).norm().item()  # noqa: F821 (the notebook's cnn, x, y)
lam_max = curvature.top_eigenvalues(cnn, x, y, 1, tol=1e-3, generator=config.generator("a3 q3"))[0].item()  # noqa: F821
eps_star = grad_norm / lam_max
