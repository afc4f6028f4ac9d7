"""Wrong answer to ch3 q2: drops the ½ of the second-order term (σ² Tr H), and measures the antithetic
*difference* ½[L(θ+σz) − L(θ−σz)] — the first-order part, which averages to zero — instead of the mean."""
from utils import directions, train, weights


def predicted_noise_increase(trace, sigma):
    return sigma**2 * trace


def measured_noise_increase(model, x, y, sigma, n_pairs, generator):
    total = 0.0
    for _ in range(n_pairs):
        z = directions.random_direction(model, normalization="none", generator=generator)
        with weights.perturbed(model, z, sigma):
            plus = train.mean_loss(model, x, y)
        with weights.perturbed(model, z, -sigma):
            minus = train.mean_loss(model, x, y)
        total += (plus - minus) / 2
    return total / n_pairs
