import math

import matplotlib
import numpy as np
import pytest
import torch

from utils import budgets, geometry
from utils.chapters import ch01_decision_boundaries as ch1
from utils.data import load_dataset
from utils.models import MLP

matplotlib.use("Agg")


def half_plane(threshold: float = 0.5) -> MLP:
    """A linear two-class model that predicts class 1 exactly where x₁ > threshold."""
    model = MLP(2, (), 2)
    with torch.no_grad():
        model.layers[0].weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0]]))
        model.layers[0].bias.copy_(torch.tensor([0.0, -threshold]))
    return model.eval()


def test_distance_along_matches_the_geometry_of_a_half_plane():
    model, x = half_plane(), torch.tensor([[0.2, 0.0], [0.9, 0.3]])
    along_x = geometry.distance_along(model, x, torch.tensor([[1.0, 0.0], [-2.0, 0.0]]))
    assert along_x.tolist() == pytest.approx([0.3, 0.4], rel=1e-5)
    diagonal = geometry.distance_along(model, x[:1], torch.tensor([[1.0, 1.0]]))
    assert diagonal.item() == pytest.approx(0.3 * math.sqrt(2), rel=1e-5)
    away = geometry.distance_along(model, x[:1], torch.tensor([[-1.0, 0.0]]))
    assert math.isinf(away.item())


def test_distance_along_many_directions_per_point_and_lines():
    model, x = half_plane(), torch.tensor([[0.2, 0.0]])
    dirs = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]])
    d = geometry.distance_along(model, x, dirs)
    assert d.shape == (1, 3) and d[0, 0].item() == pytest.approx(0.3, rel=1e-5) and torch.isinf(d[0, 1:]).all()
    line = geometry.line_distance(model, x, dirs)
    assert line[0, 2].item() == pytest.approx(0.3, rel=1e-5)


def test_distance_along_rejects_bad_shapes_and_zero_directions():
    model, x = half_plane(), torch.zeros(2, 2)
    with pytest.raises(ValueError, match="directions must be shaped like x"):
        geometry.distance_along(model, x, torch.ones(3, 2))
    with pytest.raises(ValueError, match="directions must be non-zero vectors"):
        geometry.distance_along(model, x, torch.zeros(2, 2))
    with pytest.raises(ValueError, match="max_radius must be a finite number in \\(0.0, inf\\)"):
        geometry.distance_along(model, x, torch.ones(2, 2), max_radius=-1)
    with pytest.raises(ValueError, match="max_radius must be a finite number"):
        geometry.distance_along(model, x, torch.ones(2, 2), max_radius=float("inf"))
    with pytest.raises(ValueError, match="min_radius must be a finite number in \\(0.0, 10.0\\)"):
        geometry.distance_along(model, x, torch.ones(2, 2), min_radius=20.0)
    with pytest.raises(TypeError, match="n_scan must be an integer, got 2.5"):
        geometry.distance_along(model, x, torch.ones(2, 2), n_scan=2.5)
    with pytest.raises(ValueError, match="directions must not contain NaN"):
        geometry.distance_along(model, x, torch.full((2, 2), float("nan")))


def test_hyperplane_distance_and_linear_boundary_with_normalization():
    model = MLP(2, (), 2, mean=torch.tensor([0.3, 0.6]), std=torch.tensor([0.5, 2.0]))
    w, b = geometry.linear_boundary(model)
    x = torch.rand(50, 2)
    z = model(x).detach()
    assert torch.allclose(x @ w + b, z[:, 1] - z[:, 0], atol=1e-5)
    walked = geometry.line_distance(model, x, w.expand_as(x))
    assert torch.allclose(walked, geometry.hyperplane_distance(x, w, b), rtol=1e-4)
    with pytest.raises(ValueError, match="two-class linear MLP"):
        geometry.linear_boundary(MLP(2, 8, 2))
    with pytest.raises(ValueError, match="need x shaped"):
        geometry.hyperplane_distance(x, torch.ones(3), 0.0)


def test_walking_a_linear_models_lines_finds_the_analytic_distances_in_double_precision():
    """Chapter 1's §1.2 exactness check, as a test of the code (a claim of the chapter until issue 20): along the
    normal the boundary is |wᵀx + b|/‖w‖ away, along a direction at angle θ to it r/|cos θ|, to 10⁻⁶."""
    torch.manual_seed(0)
    model = MLP(2, (), 2, mean=torch.tensor([0.3, 0.6]), std=torch.tensor([0.5, 2.0])).double()
    w, b = geometry.linear_boundary(model)
    x = torch.rand(200, 2, dtype=torch.float64)
    r = geometry.hyperplane_distance(x, w, b)
    walked = geometry.line_distance(model, x, w.expand_as(x), min_radius=1e-8)
    assert ((walked - r).abs() / r).max() < 1e-6
    u = budgets.sample_sphere(len(x), (2,), generator=torch.Generator().manual_seed(1)).double()
    cos = (u @ w / w.norm()).abs()
    oblique = geometry.line_distance(model, x, u, max_radius=1e3, min_radius=1e-8)
    reached = torch.isfinite(oblique)
    assert reached.float().mean() > 0.9
    assert ((oblique - r / cos).abs() / (r / cos))[reached].max() < 1e-6


def test_margin_with_and_without_labels():
    model = half_plane()
    x = torch.tensor([[0.9, 0.0], [0.1, 0.0]])
    assert geometry.margin(model, x).tolist() == pytest.approx([0.4, 0.4])
    assert geometry.margin(model, x, torch.tensor([0, 0])).tolist() == pytest.approx([-0.4, 0.4])


def test_margin_gradient_is_the_normal_of_a_linear_boundary():
    g = geometry.margin_gradient(half_plane(), torch.tensor([[0.9, 0.0], [0.1, 0.5]]))
    assert torch.allclose(g, torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))


def test_sample_sphere_is_unit_norm_with_cosine_variance_one_over_d():
    d = 4096
    u = budgets.sample_sphere(20000, (d,), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(u.norm(dim=1), torch.ones(len(u)), atol=1e-5)
    cos = u[:, 0].double()
    # var(cos) = 1/d exactly; the sample variance of 20,000 draws has relative s.e. sqrt(2/20000) = 1%
    assert cos.var().item() * d == pytest.approx(1.0, abs=0.05)


def test_flat_boundary_ratio_formula():
    assert geometry.flat_boundary_ratio(2) == pytest.approx(math.sqrt(2))
    d = 10_000
    assert geometry.flat_boundary_ratio(d) == pytest.approx(math.sqrt(d) / 0.67449, rel=1e-3)
    u = budgets.sample_sphere(40000, (100,), generator=torch.Generator().manual_seed(1))
    measured = np.median(1 / u[:, 0].abs().numpy())
    assert measured == pytest.approx(geometry.flat_boundary_ratio(100), rel=0.03)
    with pytest.raises(ValueError, match="dim must be an integer in \\[2, inf\\]"):
        geometry.flat_boundary_ratio(1)


def test_plot_decision_boundary_labels_its_axes():
    ds = load_dataset("moons", n_samples=100)
    ax = ch1.plot_decision_boundary(half_plane(), ds.x_test, ds.y_test, shade="margin", resolution=20)
    assert ax.get_xlabel() and ax.get_ylabel()
    with pytest.raises(ValueError, match="x must hold 2-D points"):
        ch1.plot_decision_boundary(half_plane(), torch.zeros(3, 4), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="shade must be"):
        ch1.plot_decision_boundary(half_plane(), ds.x_test, ds.y_test, shade="loss")


def test_flat_boundary_flip_probability():
    # in the plane a step of twice the distance crosses when the angle to the normal is below 60°: 1/3
    assert geometry.flat_boundary_flip_probability(2, [0.5, 1.0, 2.0]).tolist() == pytest.approx([0, 0, 1 / 3])
    u = budgets.sample_sphere(40000, (50,), generator=torch.Generator().manual_seed(2))
    # s.e. of a fraction near 0.09 over 40,000 draws is 0.0014
    assert (u[:, 0] >= 1 / 3).float().mean().item() == pytest.approx(
        geometry.flat_boundary_flip_probability(50, 3.0).item(), abs=0.006)
    with pytest.raises(ValueError, match="dim must be an integer in \\[2, inf\\]"):
        geometry.flat_boundary_flip_probability(1, 2.0)
    with pytest.raises(ValueError, match="t must be finite and >= 0"):
        geometry.flat_boundary_flip_probability(4, float("nan"))
