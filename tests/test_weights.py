import copy
import math

import pytest
import torch

from utils import bitflips, config, curvature, directions, ptq, train, weights
from utils.models import MLP, SmallCNN


def tiny_problem(seed: int = 0):
    """A model small enough to form its Hessian (31 parameters) and a batch to differentiate on."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = MLP(3, 4, 3).eval()
    x = torch.rand(64, 3, generator=gen)
    return model, x, torch.randint(0, 3, (64,), generator=gen)


def exact_hessian(model, x, y) -> torch.Tensor:
    """The full P × P Hessian of the mean cross-entropy, formed by autograd (independent of utils.weights)."""
    theta = weights.parameters_of(model)

    def loss(v: torch.Tensor) -> torch.Tensor:
        z = torch.func.functional_call(model, weights.unflatten(v, theta), (x,))
        return torch.nn.functional.cross_entropy(z, y)

    return torch.autograd.functional.hessian(loss, weights.flatten(theta))


def test_hvp_trace_and_eigenvalues_match_the_exact_hessian():
    model, x, y = tiny_problem()
    h = exact_hessian(model, x, y)
    v = directions.random_direction(model, normalization="none", generator=torch.Generator().manual_seed(1))
    hv = weights.flatten(curvature.hessian_vector_product(model, x, y, v))
    assert torch.allclose(hv, h @ weights.flatten(v), atol=1e-5)
    trace, se = curvature.hessian_trace(model, x, y, n_probes=4000, generator=torch.Generator().manual_seed(2))
    # Hutchinson is unbiased; 4000 probes: the estimate is within 4 of its own standard errors
    assert abs(trace - h.trace().item()) < 4 * se and se < 0.05 * abs(h.trace().item())
    eig = torch.linalg.eigvalsh(h.double())
    expected = eig[eig.abs().argsort(descending=True)[:3]].sort(descending=True).values
    top = curvature.top_eigenvalues(model, x, y, k=3, iters=1000, tol=1e-9, generator=torch.Generator().manual_seed(3))
    assert top.double().tolist() == pytest.approx(expected.tolist(), rel=1e-3, abs=1e-6)


def test_perturbed_restores_the_weights_bit_for_bit():
    model = SmallCNN(1, 10, 8)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    d = directions.random_direction(model, normalization="filter", generator=torch.Generator().manual_seed(0))
    with weights.perturbed(model, d, 0.37):
        moved = model.features[0].weight.detach().clone()
    assert not torch.equal(moved, before["features.0.weight"])
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    with pytest.raises(RuntimeError, match="boom"), weights.perturbed(model, d, 1.0):
        raise RuntimeError("boom")
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_direction_normalizations():
    model = SmallCNN(1, 10, 8)
    theta = weights.parameters_of(model)
    filt = directions.random_direction(model, normalization="filter")
    w = theta["features.0.weight"]
    assert torch.allclose(filt["features.0.weight"].flatten(1).norm(dim=1), w.flatten(1).norm(dim=1))
    assert torch.count_nonzero(filt["features.0.bias"]) == 0
    layer = directions.random_direction(model, normalization="layer")
    assert torch.allclose(layer["head.1.weight"].norm(), theta["head.1.weight"].norm())
    with pytest.raises(ValueError, match="normalization must be one of"):
        directions.random_direction(model, normalization="batch")


def test_adversarial_direction_hurts_more_than_random_of_equal_norm(digits_mlp):
    model, data = digits_mlp
    x, y = data.x_test, data.y_test
    adv = directions.adversarial_direction(model, x, y, eps=0.2, relative=True)
    rnd = directions.random_direction(model, normalization="layer", generator=torch.Generator().manual_seed(0))
    for name, t in adv.items():
        assert t.norm().item() == pytest.approx(rnd[name].norm().item(), rel=1e-4, abs=1e-12)
    base = train.mean_loss(model, x, y)
    with weights.perturbed(model, adv, 0.2):
        adv_loss = train.mean_loss(model, x, y)
    with weights.perturbed(model, rnd, 0.2):
        rnd_loss = train.mean_loss(model, x, y)
    assert adv_loss - base > 5 * abs(rnd_loss - base)
    glob = directions.adversarial_direction(model, x, y, eps=0.5, relative=False)
    assert weights.flatten(glob).norm().item() == pytest.approx(1.0, rel=1e-5)


def test_loss_surface_matches_perturbed_evaluation(digits_mlp):
    model, data = digits_mlp
    x, y = data.x_test, data.y_test
    d1, d2 = (directions.random_direction(model, generator=torch.Generator().manual_seed(s)) for s in (1, 2))
    coords = torch.tensor([[0.0, 0.0], [0.3, -0.2], [-0.5, 0.1]])
    loss, acc = weights.loss_surface(model, x, y, [d1, d2], coords, chunk=2)
    assert loss[0].item() == pytest.approx(train.mean_loss(model, x, y), rel=1e-5)
    with weights.perturbed(model, {n: 0.3 * d1[n] - 0.2 * d2[n] for n in d1}, 1.0):
        assert loss[1].item() == pytest.approx(train.mean_loss(model, x, y), rel=1e-4)
        assert acc[1].item() == pytest.approx(train.evaluate(model, x, y), abs=1e-6)
    with pytest.raises(ValueError, match="coords must be shaped"):
        weights.loss_surface(model, x, y, [d1], coords)


def count_flipped_bits(model, flips) -> int:
    """Bits that differ between the int8 codes of a model and of the int8 model with ``flips`` applied (a
    direction from the float weights; same scales)."""
    state, params = bitflips.int8_codes(model), dict(weights.applied(model, flips).named_parameters())
    total = 0
    for name, (q, scale) in state.items():
        q2 = torch.round(params[name].detach() / scale).long()
        total += sum(bin(v).count("1") for v in ((q & 0xFF) ^ (q2 & 0xFF)).flatten().tolist())
    return total


def test_bit_flips_flip_exactly_the_number_of_bits_asked(digits_mlp):
    model, data = digits_mlp
    x, y = data.x_test, data.y_test
    before = weights.flatten(weights.parameters_of(model)).clone()
    for n in (0, 1, 7):
        flipped = bitflips.random_bit_flips(model, n, generator=torch.Generator().manual_seed(n))
        assert count_flipped_bits(model, flipped) == n
    attacked, history, flips = bitflips.bit_flip_attack(model, x[:200], y[:200], 5)
    assert count_flipped_bits(model, attacked) == 5 and len(history) == 5 and len(flips) == 5
    after_three = bitflips.flip_direction(model, flips[:3])
    assert count_flipped_bits(model, after_three) == 3
    assert train.mean_loss(weights.applied(model, after_three), x[:200], y[:200]) == pytest.approx(history[2], rel=1e-4)
    assert count_flipped_bits(model, bitflips.flip_direction(model, [])) == 0
    with pytest.raises(ValueError, match="flips\\[0\\] tensor name must be one of"):
        bitflips.flip_direction(model, [("nope", 0, 1)])
    with pytest.raises(ValueError, match="flips\\[0\\] index must be an integer in \\[0, "):
        bitflips.flip_direction(model, [("layers.0.weight", 10**6, 1)])
    assert history[-1] > train.mean_loss(weights_int8(model), x[:200], y[:200])
    assert torch.equal(weights.flatten(weights.parameters_of(model)), before)
    assert bitflips.flip_bits(torch.tensor([5, -1, 0]), torch.tensor([7, 7, 0])).tolist() == [-123, 127, 1]
    with pytest.raises(ValueError, match="n_flips must be an integer in \\[0, "):
        bitflips.random_bit_flips(model, -1)
    tiny = MLP(2, (), 2)  # 4 weights: 32 bits
    with pytest.raises(ValueError, match="n_flips must be at most the number of bits, 32"):
        bitflips.bit_flip_attack(tiny, torch.rand(4, 2), torch.tensor([0, 1, 0, 1]), 40)
    with pytest.raises(ValueError, match="bit must be an integer .* in \\[0, 7\\]"):
        bitflips.flip_bits(torch.tensor([5]), 8)
    with pytest.raises(ValueError, match="q must be int64 codes in the int8 range"):
        bitflips.flip_bits(torch.tensor([200]), 1)


def weights_int8(model):
    return ptq.quantize_weights(model, 8)


def test_bad_arguments_are_rejected_clearly():
    model, x, y = tiny_problem()
    with pytest.raises(ValueError, match="n_probes must be an integer in \\[2, inf\\]"):
        curvature.hessian_trace(model, x, y, n_probes=1)
    with pytest.raises(ValueError, match="chunk must be an integer in \\[1, inf\\], got 0"):
        curvature.hessian_trace(model, x, y, chunk=0)
    with pytest.raises(ValueError, match="iters must be an integer in \\[1, inf\\], got 0"):
        curvature.top_eigenvalues(model, x, y, iters=0)
    with pytest.raises(ValueError, match="exceeds the number of parameters"):
        curvature.top_eigenvalues(model, x, y, k=100)
    for bad in (-1.0, float("inf")):
        with pytest.raises(ValueError, match="eps must be a finite number in"):
            directions.adversarial_direction(model, x, y, eps=bad)
    with pytest.raises(ValueError, match="one tensor per trainable parameter"), weights.perturbed(model, {}, 1.0):
        pass
    d = directions.random_direction(model)
    with pytest.raises(ValueError, match="scale must be a finite number"), weights.perturbed(model, d, float("nan")):
        pass
    with pytest.raises(ValueError, match="y must be a 1-D tensor with one label per sample"):
        curvature.hessian_trace(model, x, y[:3])
    with pytest.raises(ValueError, match="y must be class indices in \\[0, 3\\)"):
        weights.gradient(model, x, y + 3)
    with pytest.raises(ValueError, match="model must have at least one trainable parameter"):
        weights.gradient(torch.nn.Identity(), x, y)
    assert math.isfinite(curvature.hessian_trace(model, x, y, n_probes=2)[0])


def test_weighted_trace_and_difference():
    model, x, y = tiny_problem()
    h = exact_hessian(model, x, y)
    s = directions.random_direction(model, normalization="none", generator=torch.Generator().manual_seed(4))
    s_flat = weights.flatten(s)
    trace, se = curvature.hessian_trace(model, x, y, n_probes=4000, scale=s, generator=torch.Generator().manual_seed(5))
    # Σ sᵢ² Hᵢᵢ exactly in expectation; 4 standard errors of the estimate
    assert abs(trace - (s_flat**2 * h.diagonal()).sum().item()) < 4 * se
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.layers[0].weight.add_(1.0)
    diff = weights.difference(model, other)
    assert torch.allclose(diff["layers.0.weight"], torch.ones_like(diff["layers.0.weight"]))
    assert torch.count_nonzero(diff["layers.2.weight"]) == 0
    with pytest.raises(ValueError, match="model and other must have the same parameters"):
        weights.difference(model, MLP(3, 5, 3))


def test_gradients_and_the_quadratic_terms_match_autograd_and_the_exact_hessian():
    model, x, y = tiny_problem()
    g = weights.flatten(weights.gradient(model, x, y))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    expected = torch.cat([t.flatten() for t in torch.autograd.grad(loss, list(model.parameters()))])
    assert torch.allclose(g, expected, atol=1e-6)
    # one "minibatch" holding every sample is the full gradient, whatever the order
    full = weights.minibatch_gradients(model, x, y, batch_size=len(x), n_batches=2)
    assert full.shape == (2, len(g)) and torch.allclose(full, g.expand_as(full), atol=1e-6)
    delta = directions.random_direction(model, normalization="none", generator=torch.Generator().manual_seed(6))
    first, second = curvature.quadratic_terms(model, x, y, delta)
    d = weights.flatten(delta)
    assert first == pytest.approx((g @ d).item(), rel=1e-5)
    assert second == pytest.approx(0.5 * (d @ exact_hessian(model, x, y) @ d).item(), rel=1e-4)
    with pytest.raises(ValueError, match="batch_size must be an integer in \\[1, 64\\], got 0"):
        weights.minibatch_gradients(model, x, y, batch_size=0, n_batches=1)


def test_curvature_computed_in_data_batches_equals_the_one_batch_result(monkeypatch):
    model, x, y = tiny_problem()
    v = directions.random_direction(model, normalization="none", generator=torch.Generator().manual_seed(7))
    whole = (weights.flatten(weights.gradient(model, x, y)),
             weights.flatten(curvature.hessian_vector_product(model, x, y, v)),
             weights.loss_surface(model, x, y, [v], torch.tensor([[0.0], [0.3]]))[0])
    monkeypatch.setitem(config.BATCHES["small"], "weights", 10)  # 64 samples in batches of 10, 10, …, 4
    batched = (weights.flatten(weights.gradient(model, x, y)),
               weights.flatten(curvature.hessian_vector_product(model, x, y, v)),
               weights.loss_surface(model, x, y, [v], torch.tensor([[0.0], [0.3]]))[0])
    for a, b in zip(whole, batched, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def batchnorm_problem():
    """A small CNN with batch-norm, its running statistics trained, left in training mode."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3))
    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 3, (32,))
    with torch.no_grad():
        for _ in range(5):
            net(x + torch.randn_like(x))  # running statistics that differ from this batch's
    return net.train(), x, y


@pytest.mark.parametrize("compute", [
    lambda m, x, y: weights.flatten(weights.gradient(m, x, y)),
    lambda m, x, y: weights.flatten(curvature.hessian_vector_product(m, x, y, directions.random_direction(
        m, normalization="none", generator=torch.Generator().manual_seed(0)))),
    lambda m, x, y: torch.tensor(curvature.hessian_trace(m, x, y, n_probes=4, generator=torch.Generator())),
    lambda m, x, y: curvature.top_eigenvalues(m, x, y, k=2, iters=5, generator=torch.Generator().manual_seed(0)),
    lambda m, x, y: weights.minibatch_gradients(m, x, y, batch_size=8, n_batches=2,
                                                generator=torch.Generator().manual_seed(0)),
    lambda m, x, y: weights.flatten(directions.adversarial_direction(m, x, y, eps=0.1)),
    lambda m, x, y: weights.loss_surface(m, x, y, [directions.random_direction(
        m, generator=torch.Generator().manual_seed(0))], torch.tensor([[0.5]]))[0],
    lambda m, x, y: torch.tensor(bitflips.bit_flip_attack(m, x, y, 2)[1]),
], ids=["gradient", "hvp", "trace", "eigenvalues", "minibatch", "adversarial", "surface", "bit flips"])
def test_weight_space_functions_use_eval_mode_and_restore_a_batchnorm_models_mode(compute):
    net, x, y = batchnorm_problem()
    stats = net[1].running_mean.clone()
    in_train_mode = compute(net, x, y)
    assert net.training and net[1].training and torch.equal(net[1].running_mean, stats)
    assert torch.allclose(in_train_mode, compute(net.eval(), x, y), atol=1e-5)


def test_the_second_order_expansion_holds_for_small_steps_on_a_smooth_loss():
    """Chapter 3's checks of Taylor's theorem, as tests of the code (they were claims before issue 20): on a loss
    that is smooth in the weights (a linear classifier's cross-entropy), the antithetic loss change along the top
    Hessian eigenvector is ½ε²λ_max, and the change along the adversary's direction is gᵀδ + ½δᵀHδ, to third order."""
    torch.manual_seed(0)
    model = MLP(3, (), 3).double().eval()
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 3, generator=gen, dtype=torch.float64), torch.randint(0, 3, (64,), generator=gen)
    top, vecs = curvature.top_eigenvalues(model, x, y, k=1, iters=500, tol=1e-10, vectors=True,
                                          generator=torch.Generator().manual_seed(1))
    u1 = weights.unflatten(vecs[:, 0].double(), weights.parameters_of(model))
    base = train.mean_loss(model, x, y)
    for eps in (1e-2, 3e-2):
        loss = weights.loss_surface(model, x, y, [u1], torch.tensor([[eps], [-eps]], dtype=torch.float64))[0]
        assert (loss.mean().item() - base) == pytest.approx(0.5 * eps**2 * top[0].item(), rel=0.02)
    d = directions.adversarial_direction(model, x, y, eps=0.03, relative=False)
    delta = {n: 0.03 * v for n, v in d.items()}
    first, second = curvature.quadratic_terms(model, x, y, delta)
    with weights.perturbed(model, d, 0.03):
        measured = train.mean_loss(model, x, y) - base
    assert measured == pytest.approx(first + second, rel=0.05)
