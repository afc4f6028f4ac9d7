"""One representative bad call per kind of mistake, across the package: each is rejected with a ValueError
or TypeError whose message names the argument (the cases a hostile pass found obscure or silent)."""

import numpy as np
import pytest
import torch

from utils import (
    attacks,
    bitflips,
    budgets,
    curvature,
    directions,
    geometry,
    models,
    noise,
    plotting,
    ptq,
    quant,
    stats,
    train,
    weights,
)


def mlp():
    torch.manual_seed(0)
    return models.MLP(4, 8, 3).eval()


X, Y = torch.rand(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
NAN = torch.full((6, 4), float("nan"))

CASES = [
    ("types: zero batch size", lambda: train.logits(mlp(), X, batch_size=0), ValueError, "batch_size"),
    ("types: fractional size", lambda: budgets.sample_sphere(2.5, (3,)), TypeError, "n must be an integer"),
    ("types: zero chunk", lambda: weights.loss_surface(mlp(), X, Y, [directions.random_direction(mlp())],
                                                       torch.ones(1, 1), chunk=0), ValueError, "chunk"),
    ("types: wrong generator", lambda: noise.random_perturbation(X, 0.1, generator=np.random.default_rng(0)),
     TypeError, "generator"),
    ("types: model without parameters", lambda: curvature.hessian_trace(torch.nn.Identity(), X, Y), ValueError,
     "model must have at least one trainable parameter"),
    ("non-finite: NaN inputs to DeepFool", lambda: attacks.deepfool(mlp(), NAN), ValueError, "x must not contain"),
    ("non-finite: NaN inputs to FGSM", lambda: attacks.fgsm(mlp(), NAN, None, 0.1), ValueError, "x must not contain"),
    ("shapes: projecting onto a ball around another shape", lambda: attacks.project(X, torch.rand(6, 5), 0.1),
     ValueError, "x must be shaped like x0"),
    ("budgets: negative projection radius", lambda: attacks.project(X, X, -0.1), ValueError, "eps must be finite"),
    ("non-finite: infinite tolerance", lambda: curvature.top_eigenvalues(mlp(), X, Y, tol=float("inf")), ValueError,
     "tol"),
    ("non-finite: NaN image", lambda: plotting.show_image(None, np.full((1, 2, 2), np.nan)), ValueError, "image"),
    ("labels: out of range for the margin", lambda: geometry.logit_margin(torch.zeros(2, 3), torch.tensor([0, 3])),
     ValueError, "y must be class indices"),
    ("labels: float labels for the gradient", lambda: weights.gradient(mlp(), X, Y.float()), TypeError,
     "y must hold int64"),
    ("budgets: more flips than bits", lambda: bitflips.random_bit_flips(models.MLP(2, (), 2), 33), ValueError,
     "n_flips"),
    ("shapes: wrong feature count", lambda: train.logits(mlp(), torch.rand(6, 5)), ValueError,
     "x has inputs of shape \\(5,\\), which the model cannot take"),
    ("shapes: a scale that does not broadcast", lambda: quant.codes(torch.ones(4, 4), torch.ones(5), torch.zeros(1), 8),
     ValueError, "scale of shape \\(5,\\) does not broadcast"),
    ("shapes: a perturbation of the wrong shape",
     lambda: curvature.quadratic_terms(mlp(), X, Y, {n: torch.zeros(1) for n in weights.parameters_of(mlp())}),
     ValueError, "delta\\["),
    ("names: a model with nothing to quantize", lambda: ptq.quantize_activations(torch.nn.Identity(), 8, X),
     ValueError, "no linear or convolution layer"),
    ("degenerate: constant x in a power-law fit", lambda: stats.power_law_fit([2, 2, 2], [1, 2, 3]), ValueError,
     "x must take at least two different values"),
]


@pytest.mark.parametrize("call,error,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_calls_are_rejected_with_a_message_that_names_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()
