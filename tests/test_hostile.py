"""A hostile pass over every public function: bad calls of each class — device strings, label ranges against
the model, dtypes, empty tensors, zero or inverted ranges, NaN at every entry, paths that leave their root,
strings where sequences are meant — each rejected with a ValueError or TypeError whose message names the
argument (the regular expression after each call). :data:`CASES` is grouped by module; ``python
tests/test_hostile.py`` prints how many bad calls each module gets (the property-based ones are in
``tests/test_hostile_numeric.py``, bad files in ``tests/test_hostile_files.py``)."""

from collections import Counter

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from utils import (
    attacks,
    bitflips,
    budgets,
    checkpoints,
    checks,
    config,
    curvature,
    data,
    deploy,
    directions,
    explorers,
    geometry,
    models,
    noise,
    outputs,
    perturbations,
    plotting,
    ptq,
    qat,
    quant,
    rounding,
    stats,
    train,
    weights,
)

matplotlib.use("Agg")
torch.manual_seed(0)
X, Y = torch.rand(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
NAN = X.clone().index_put_((torch.tensor([5]), torch.tensor([3])), torch.tensor(float("nan")))  # one bad entry
MOONS = data.load_dataset("moons", n_samples=40)
DIGITS10 = data.load_dataset("digits").subset(40, 20)
RECIPE = train.Recipe(epochs=1, lr=1e-2)


def mlp(classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return models.MLP(4, 8, classes).eval()


def direction(**changes) -> dict:
    return {**{n: torch.zeros_like(p) for n, p in mlp().named_parameters()}, **changes}


W = "layers.0.weight"
M = mlp()
INT8 = quant.QuantSpec(8)


def fit(model, dataset, **kwargs):
    return train.fit(model, dataset, epochs=1, lr=1e-2, **{"progress": False, **kwargs})


CASES = {
    "checks": [
        ("device name", lambda: checks.device("device", "tpu"), ValueError, "device must be a device available"),
        ("device index past the count", lambda: checks.device("device", "cpu:1"), ValueError, "device must be"),
        ("device of a wrong type", lambda: checks.device("device", 0), TypeError, "device must be a torch.device"),
        ("string for a sequence", lambda: checks.sequence("layers", "w"), TypeError, "layers must be a list or tuple"),
        ("short sequence", lambda: checks.sequence("values", [], min_len=1), ValueError, "values must hold at least 1"),
        ("path in a name", lambda: checks.plain_name("name", "../x"), ValueError, "name must be a plain name"),
        ("hidden file name", lambda: checks.plain_name("name", ".x"), ValueError, "name must be a plain name"),
        ("empty name", lambda: checks.plain_name("name", ""), ValueError, "name must be a plain name"),
        ("integer for a tensor", lambda: checks.tensor("x", 3), TypeError, "x must be a torch.Tensor"),
        ("NaN in a probability", lambda: checks.probability("p", float("nan")), ValueError, "p must be a finite"),
    ],
    "config": [
        ("generator on a TPU", lambda: config.generator("k", device="tpu"), ValueError, "device must be a device"),
        ("generator on a missing GPU", lambda: config.generator("k", device="cuda:99"), ValueError, "device must be"),
        ("stream on an unknown device", lambda: config.stream("xla"), ValueError, "device must be"),
        ("resolve_generator on a number", lambda: config.resolve_generator(None, 3), TypeError, "device must be"),
        ("unknown scale", lambda: config.use("medium"), ValueError, "scale \\(BOOK_SCALE\\) must be one of"),
        ("negative seed", lambda: config.use(seed=-1), ValueError, "seed \\(BOOK_SEED\\) must be"),
        ("text seed", lambda: config.read_seed("one"), ValueError, "seed \\(BOOK_SEED\\) must be a non-negative"),
        ("unknown batch kind", lambda: config.batch("train"), ValueError, "kind must be one of"),
        ("number for a path", lambda: config.resolve(3), TypeError, "path must be a str"),
        ("unknown output folder", lambda: config.output_dir("logs"), ValueError, "kind must be one of"),
        ("text flag", lambda: config.output_dir("onnx", writable="yes"), TypeError, "writable must be True or False"),
        ("fractional seed", lambda: config.set_seed(1.5), TypeError, "seed must be an integer"),
        ("negative derived seed", lambda: config.derived_seed("k", seed=-1), ValueError, "seed must be an integer"),
    ],
    "data": [
        ("unknown name", lambda: data.load_dataset("imagenet"), ValueError, "name must be one of"),
        ("number for a name", lambda: data.load_dataset(3), ValueError, "name must be one of"),
        ("NaN noise", lambda: data.load_dataset("moons", noise=float("nan")), ValueError, "noise must be a finite"),
        ("too few samples", lambda: data.load_dataset("moons", n_samples=3), ValueError, "n_samples must be"),
        ("text download flag", lambda: data.load_dataset("mnist", download="no"), TypeError, "download must be"),
        ("number for a root", lambda: data.load_dataset("mnist", root=3), TypeError, "path must be a str"),
        ("data on a TPU", lambda: MOONS.to("tpu"), ValueError, "device must be a device available"),
        ("data on a missing GPU", lambda: MOONS.to("cuda:99"), ValueError, "device must be a device available"),
        ("empty subset", lambda: MOONS.subset(0), ValueError, "n_train must be an integer in \\[1, 20\\]"),
        ("subset past the end", lambda: MOONS.subset(n_test=21), ValueError, "n_test must be an integer in"),
        ("numpy generator", lambda: MOONS.subset(5, generator=np.random.default_rng(0)), TypeError, "generator must"),
        ("NaN input", lambda: data.Dataset(NAN, Y, X, Y, 3, "toy"), ValueError, "x_train must not contain NaN"),
        ("labels past the classes", lambda: data.Dataset(X, Y, X, Y, 2, "toy"), ValueError, "y_train must be class"),
        ("empty name", lambda: data.Dataset(X, Y, X, Y, 3, ""), ValueError, "name must be a non-empty string"),
        ("no samples", lambda: data.Dataset(X[:0], Y[:0], X, Y, 3, "toy"), ValueError, "x_train must hold at least"),
        ("embedding in 1-D", lambda: data.embed(MOONS, 1), ValueError, "dim must be an integer in \\[2, inf\\]"),
        ("embedding images", lambda: data.embed(DIGITS10, 8), ValueError, "data must be a Dataset of 2-D points"),
    ],
    "models": [
        ("no input features", lambda: models.MLP(0, 8, 3), ValueError, "in_features must be an integer"),
        ("string widths", lambda: models.MLP(4, "64", 3), TypeError, "hidden must be an integer or a sequence"),
        ("zero width", lambda: models.MLP(4, [8, 0], 3), ValueError, "hidden\\[1\\] must be an integer"),
        ("one class", lambda: models.MLP(4, 8, 1), ValueError, "num_classes must be an integer in \\[2, inf\\]"),
        ("zero std", lambda: models.MLP(4, 8, 3, std=0.0), ValueError, "std must be finite and positive"),
        ("text mean", lambda: models.MLP(4, 8, 3, mean="0"), TypeError, "mean must be a number or a tensor"),
        ("image size not a multiple of 4", lambda: models.SmallCNN(1, 10, 10), ValueError, "image_size must be"),
        ("zero-width ResNet", lambda: models.resnet18(10, width=0), ValueError, "width must be an integer"),
        ("one sample's std", lambda: models.channel_stats(X[:1]), ValueError, "x must hold at least 2 values per"),
        ("3-D input stats", lambda: models.channel_stats(torch.rand(4, 2, 2)), ValueError, "x must be shaped"),
        ("unknown model", lambda: models.build_model("vgg", MOONS), ValueError, "name must be one of"),
        ("CNN on points", lambda: models.build_model("cnn", MOONS), ValueError, "'cnn' needs square images"),
        ("name for a data set", lambda: models.build_model("mlp", "moons"), TypeError, "dataset must be a utils"),
        ("zero rescaling", lambda: models.rescale_hidden_unit(M, 0, 0, 0.0), ValueError, "factor must be"),
        ("unit past the layer", lambda: models.rescale_hidden_unit(M, 0, 8, 2.0), ValueError, "unit must be"),
    ],
    "outputs": [
        ("double input, float model", lambda: outputs.logits(M, X.double()), TypeError, "x has dtype torch.float64"),
        ("integer input", lambda: outputs.logits(M, torch.ones(2, 4, dtype=torch.long)), TypeError, "x must be a fl"),
        ("empty batch", lambda: outputs.logits(M, X[:0]), ValueError, "x must hold at least one sample"),
        ("NaN entry", lambda: outputs.predict(M, NAN), ValueError, "x must not contain NaN"),
        ("zero batch size", lambda: outputs.logits(M, X, batch_size=0), ValueError, "batch_size must be"),
        ("labels past the model's classes", lambda: outputs.evaluate(M, X, Y + 1), ValueError, "y must be class"),
        ("float labels", lambda: outputs.mean_loss(M, X, Y.float()), TypeError, "y must hold int64"),
        ("list input", lambda: outputs.predict(M, X.tolist()), TypeError, "x must be a torch.Tensor"),
        ("string model", lambda: outputs.logits("mlp", X), TypeError, "model must be a torch.nn.Module"),
        ("wrong feature count", lambda: outputs.logits(M, torch.rand(2, 5)), ValueError, "x has inputs of shape"),
    ],
    "train": [
        ("TPU", lambda: fit(models.build_model("mlp", MOONS), MOONS, device="tpu"), ValueError, "device must be a"),
        ("GPU", lambda: fit(models.build_model("mlp", MOONS), MOONS, device="cuda:99"), ValueError, "device must be"),
        ("labels outside the model's classes", lambda: fit(models.MLP(64, 8, 3), DIGITS10), ValueError,
         "data has labels up to 9 but the model outputs 3 logits"),
        ("data the model cannot take", lambda: fit(mlp(2), MOONS), ValueError, "x has inputs of shape \\(2,\\)"),
        ("tuple for data", lambda: fit(mlp(2), (X, Y)), TypeError, "data must be a utils.data.Dataset"),
        ("text progress flag", lambda: fit(models.build_model("mlp", MOONS), MOONS, progress="no"), TypeError,
         "progress must be True or False"),
        ("zero epochs", lambda: train.Recipe(epochs=0, lr=0.1), ValueError, "epochs must be an integer"),
        ("negative learning rate", lambda: train.Recipe(epochs=1, lr=-0.1), ValueError, "lr must be a finite"),
        ("unknown optimizer", lambda: train.Recipe(epochs=1, lr=0.1, optimizer="lbfgs"), ValueError, "optimizer"),
        ("NaN target loss", lambda: train.Recipe(1, 0.1, target_loss=float("nan")), ValueError, "target_loss"),
        ("unknown model", lambda: train.pretrained("vgg", "moons"), ValueError, "model_name must be one of"),
        ("path for a data set", lambda: train.pretrained("mlp", "../../evil", recipe=RECIPE), ValueError,
         "dataset_name must be a plain name"),
        ("negative seed", lambda: train.pretrained("mlp", "moons", seed=-1), ValueError, "seed must be"),
        ("dict recipe", lambda: train.pretrained("mlp", "moons", recipe={"epochs": 1}), TypeError, "recipe must be"),
        ("string widths", lambda: train.pretrained("mlp", "moons", hidden="64"), TypeError, "hidden must be a list"),
        ("text progress", lambda: train.pretrained("mlp", "moons", progress="no"), TypeError, "progress must be"),
        ("other data set", lambda: train.pretrained("mlp", "circles", data=MOONS), ValueError, "data must be the"),
        ("negative padding", lambda: train.augment_crop_flip(torch.rand(2, 1, 4, 4), torch.Generator(), -1),
         ValueError, "pad must be an integer"),
    ],
    "checkpoints": [
        ("a key whose name leaves the root", lambda: checkpoints.file_for({"model": "../../evil", "dataset": "d"}, "."),
         ValueError, "key\\['model'\\] must be a plain name"),
        ("an absolute data set name", lambda: checkpoints.file_for({"model": "mlp", "dataset": "/etc/x"}, "."),
         ValueError, "key\\['dataset'\\] must be a plain name"),
        ("a key without names", lambda: checkpoints.file_for({}, "."), ValueError, "key\\['model'\\] must be a plain"),
        ("a string key", lambda: checkpoints.file_for("mlp-moons", "."), TypeError, "key must be a mapping"),
        ("NaN in a key", lambda: checkpoints.file_for({"model": "m", "dataset": "d", "lr": float("nan")}, "."),
         TypeError, "key must hold only JSON values"),
        ("a number for the root", lambda: checkpoints.file_for({"model": "m", "dataset": "d"}, 3), TypeError,
         "root must be a str"),
        ("NaN weights", lambda: checkpoints.save("x.pt", {"model": "m", "dataset": "d"}, nan_model()), ValueError,
         "model holds NaN or infinite values"),
        ("text accuracy", lambda: checkpoints.save("x.pt", {"model": "m", "dataset": "d"}, M, test_accuracy="0.9"),
         ValueError, "test_accuracy must be None or a number"),
        ("tensor accuracy", lambda: checkpoints.save("x.pt", {"model": "m", "dataset": "d"}, M,
                                                     test_accuracy=torch.tensor(0.9)), ValueError, "test_accuracy"),
        ("accuracy above 1", lambda: checkpoints.save("x.pt", {"model": "m", "dataset": "d"}, M, test_accuracy=1.5),
         ValueError, "test_accuracy must be None or a number in \\[0, 1\\]"),
        ("string model", lambda: checkpoints.read("x.pt", {}, "mlp"), TypeError, "model must be a torch.nn.Module"),
    ],
    "geometry": [
        ("zero normal", lambda: geometry.hyperplane_distance(X, torch.zeros(4), 0.0), ValueError, "w must be non-zero"),
        ("NaN normal", lambda: geometry.hyperplane_distance(X, torch.tensor([1.0, 0, 0, float("nan")]), 0.0),
         ValueError, "w must not contain NaN"),
        ("NaN offset", lambda: geometry.hyperplane_distance(X, torch.ones(4), float("nan")), ValueError, "b must be"),
        ("text offset", lambda: geometry.hyperplane_distance(X, torch.ones(4), "0"), TypeError, "b must be a real"),
        ("vector offset", lambda: geometry.hyperplane_distance(X, torch.ones(4), torch.ones(2)), TypeError, "b must"),
        ("NaN point", lambda: geometry.hyperplane_distance(NAN, torch.ones(4), 0.0), ValueError, "x must not contain"),
        ("labels past the classes", lambda: geometry.margin(M, X, Y + 1), ValueError, "y must be class indices"),
        ("one logit", lambda: geometry.logit_margin(torch.zeros(3, 1)), ValueError, "z must have at least 2 classes"),
        ("zero direction", lambda: geometry.distance_along(M, X, torch.zeros_like(X)), ValueError, "directions must"),
        ("NaN direction", lambda: geometry.distance_along(M, X, NAN), ValueError, "directions must not contain NaN"),
        ("inverted radii", lambda: geometry.distance_along(M, X, X, max_radius=1e-5), ValueError, "min_radius must"),
        ("one grid point", lambda: geometry.distance_along(M, X, X, n_scan=1), ValueError, "n_scan must be"),
        ("lines through a list", lambda: geometry.line_distance(M, X.tolist(), X), TypeError, "x must be a torch"),
        ("1-D flat ratio", lambda: geometry.flat_boundary_ratio(1), ValueError, "dim must be an integer in \\[2"),
        ("quantile 1", lambda: geometry.flat_boundary_ratio(4, q=1.0), ValueError, "q must be a finite number"),
        ("text step", lambda: geometry.flat_boundary_flip_probability(4, "far"), TypeError, "t must be a number"),
        ("negative step", lambda: geometry.flat_boundary_flip_probability(4, -1.0), ValueError, "t must be finite"),
        ("no random lines", lambda: geometry.normal_and_random_radii(M, X, 0), ValueError, "n_directions must"),
        ("zero descent given", lambda: geometry.normal_and_random_radii(M, X, 2, descent=torch.zeros_like(X)),
         ValueError, "descent must be non-zero"),
        ("descent of another shape", lambda: geometry.normal_and_random_radii(M, X, 2, descent=X[:2]), ValueError,
         "descent must have shape"),
        ("hidden layers for a linear boundary", lambda: geometry.linear_boundary(M), ValueError, "model must be a tw"),
        ("margin gradient of a list", lambda: geometry.margin_gradient(M, X.tolist()), TypeError, "x must be a torch"),
        ("margin gradient, wrong features", lambda: geometry.margin_gradient(M, torch.rand(2, 5)), ValueError,
         "x has inputs of shape"),
    ],
    "budgets": [
        ("text budget", lambda: budgets.per_sample("0.1", X), TypeError, "eps must be a number"),
        ("negative budget", lambda: budgets.per_sample(-0.1, X), ValueError, "eps must be finite and >= 0"),
        ("NaN budget", lambda: budgets.per_sample(float("nan"), X), ValueError, "eps must be finite"),
        ("one budget too few", lambda: budgets.per_sample(torch.ones(5), X), ValueError, "eps must be a number or a"),
        ("unknown norm", lambda: budgets.norms(X, "l1"), ValueError, "norm must be one of"),
        ("no directions", lambda: budgets.sample_sphere(0, (3,)), ValueError, "n must be an integer"),
        ("empty shape", lambda: budgets.sample_sphere(2, ()), ValueError, "shape must be a non-empty tuple"),
        ("list shape", lambda: budgets.sample_sphere(2, [3]), ValueError, "shape must be a non-empty tuple"),
        ("zero size", lambda: budgets.sample_sphere(2, (0,)), ValueError, "shape\\[0\\] must be an integer"),
    ],
    "noise": [
        ("unknown kind", lambda: noise.random_perturbation(X, 0.1, kind="uniform"), ValueError, "kind must be one of"),
        ("unknown norm", lambda: noise.random_perturbation(X, 0.1, norm="l3"), ValueError, "norm must be one of"),
        ("negative budget", lambda: noise.random_perturbation(X, -1.0), ValueError, "eps must be finite"),
        ("empty batch", lambda: noise.random_perturbation(X[:0], 0.1), ValueError, "x must hold at least one"),
        ("NaN entry", lambda: noise.random_perturbation(NAN, 0.1), ValueError, "x must not contain NaN"),
        ("no draws", lambda: noise.random_flip_fraction(M, X, 0.1, 0), ValueError, "n_draws must be an integer"),
        ("wrong features", lambda: noise.random_flip_fraction(M, torch.rand(2, 5), 0.1, 2), ValueError, "x has inp"),
    ],
    "attacks": [
        ("NaN in the centre", lambda: attacks.project(NAN, X, 0.1), ValueError, "x0 must not contain NaN"),
        ("NaN in the point", lambda: attacks.project(X, NAN, 0.1), ValueError, "x must not contain NaN"),
        ("negative radius", lambda: attacks.project(X, X, -0.1), ValueError, "eps must be finite"),
        ("unknown norm", lambda: attacks.project(X, X, 0.1, norm="l1"), ValueError, "norm must be one of"),
        ("NaN budget", lambda: attacks.fgsm(M, X, None, float("nan")), ValueError, "eps must be finite"),
        ("inputs outside the box", lambda: attacks.fgsm(M, X + 2, None, 0.1), ValueError, "x must lie in \\[0, 1\\]"),
        ("no steps", lambda: attacks.pgd(M, X, None, 0.1, steps=0), ValueError, "steps must be an integer"),
        ("zero step size", lambda: attacks.pgd(M, X, None, 0.1, step_size=0.0), ValueError, "step_size must be"),
        ("no restarts", lambda: attacks.pgd(M, X, None, 0.1, restarts=0), ValueError, "restarts must be"),
        ("labels past the classes", lambda: attacks.pgd(M, X, Y + 1, 0.1), ValueError, "y must be class indices"),
        ("text random start", lambda: attacks.pgd(M, X, None, 0.1, random_start=1), TypeError, "random_start must"),
        ("no DeepFool steps", lambda: attacks.deepfool(M, X, steps=0), ValueError, "steps must be an integer"),
        ("negative overshoot", lambda: attacks.deepfool(M, X, overshoot=-1.0), ValueError, "overshoot must be"),
        ("perturbed batch of another shape", lambda: attacks.flip_rate(M, X, X[:2]), ValueError, "x_perturbed must"),
        ("no draws", lambda: attacks.alignment(M, X, None, 0), ValueError, "n_draws must be an integer"),
        ("zero largest budget", lambda: attacks.pgd_radius(M, X, max_eps=0.0), ValueError, "max_eps must be"),
        ("string model", lambda: attacks.input_gradient("m", X), TypeError, "model must be a torch.nn.Module"),
        ("zero radius", lambda: attacks.flip_radius(M, X, X, max_radius=0.0), ValueError, "max_radius must be"),
    ],
    "stats": [
        ("text values", lambda: stats.power_law_fit(["a", "b"], [1, 2]), TypeError, "x and y must be numbers"),
        ("unequal lengths", lambda: stats.power_law_fit([1, 2, 3], [1, 2]), ValueError, "x and y must be 1-D arrays"),
        ("zero value", lambda: stats.power_law_fit([0, 1], [1, 2]), ValueError, "x and y must be finite and positive"),
        ("one point", lambda: stats.power_law_fit([1], [1]), ValueError, "equal length >= 2"),
        ("NaN value", lambda: stats.power_law_fit([1, 2], [1, float("nan")]), ValueError, "finite and positive"),
    ],
    "plotting": [
        ("a string for a table", lambda: plotting.table("x"), TypeError, "frame must be a pandas DataFrame"),
        ("zero digits", lambda: plotting.table(pd.DataFrame({"a": [1.0]}), digits=0), ValueError, "digits must be"),
        ("a string of columns", lambda: plotting.table(pd.DataFrame({"acc": [1.0]}), percent="acc"), TypeError,
         "percent must be a list or tuple"),
        ("no colours", lambda: plotting.class_colors(0), ValueError, "k must be an integer"),
        ("no columns", lambda: plotting.subplots(0), ValueError, "ncols must be an integer"),
        ("negative width", lambda: plotting.subplots(1, width=-1.0), ValueError, "width must be a finite number"),
        ("a 2-D image", lambda: plotting.show_image(None, np.zeros((2, 2))), ValueError, "image must be shaped"),
        ("log of zero", lambda: plotting.loglog_with_fit(None, [0, 1], [1, 2], 1.0, 0.0, label="m"), ValueError,
         "x and y must be finite and positive"),
        ("unequal lengths", lambda: plotting.loglog_with_fit(None, [1, 2], [1], 1.0, 0.0, label="m"), ValueError,
         "x and y must be 1-D arrays of equal length"),
        ("NaN slope", lambda: plotting.loglog_with_fit(None, [1, 2], [1, 2], float("nan"), 0.0, label="m"),
         ValueError, "slope must be a finite number"),
    ],
    "explorers": [
        ("no panels to draw", lambda: explorers.small_multiples([], print, title="t"), ValueError,
         "values must hold at least 1"),
        ("zero columns", lambda: explorers.small_multiples([1, 2], print, title="t", ncols=0), ValueError,
         "ncols must be an integer"),
        ("a string of values", lambda: explorers.small_multiples("ab", print, title="t"), TypeError,
         "values must be a list or tuple"),
        ("a number to draw with", lambda: explorers.small_multiples([1], 3, title="t"), TypeError,
         "draw_one must be callable"),
        ("negative panel size", lambda: explorers.small_multiples([1], print, title="t", size=(-1, 2)), ValueError,
         "size\\[0\\] must be a finite number"),
        ("no controls", lambda: explorers.Explorer({}, print, print), ValueError, "controls must be a non-empty"),
        ("zero panels", lambda: explorers.Explorer({"a": 1}, print, print, panels=0), ValueError, "panels must be"),
        ("empty slider", lambda: explorers.slider([], 1, "d"), ValueError, "options must hold at least 1"),
        ("value off the slider", lambda: explorers.slider([1, 2], 3, "d"), ValueError, "value must be one of"),
    ],
    "weights": [
        ("an extra tensor", lambda: weights.check_direction(M, direction(extra=torch.ones(1))), ValueError,
         "direction must be a dict with one tensor per trainable parameter"),
        ("NaN entry", lambda: weights.check_direction(M, direction(**{W: torch.full((8, 4), float("nan"))})),
         ValueError, "direction\\['layers.0.weight'\\] must not contain NaN"),
        ("a string for a direction", lambda: weights.flatten("d"), TypeError, "direction must be a dict"),
        ("an empty direction", lambda: weights.flatten({}), ValueError, "direction must hold at least one tensor"),
        ("a vector of another length", lambda: weights.unflatten(torch.ones(3), direction()), ValueError,
         "vector has 3 entries"),
        ("a list for a vector", lambda: weights.unflatten([1.0], direction()), TypeError, "vector must be a torch"),
        ("another architecture", lambda: weights.difference(M, models.MLP(4, 9, 3)), ValueError, "model and other"),
        ("NaN scale", lambda: weights.applied(M, direction(), float("nan")), ValueError, "scale must be a finite"),
        ("text scale", lambda: weights.perturbed(M, direction(), "1").__enter__(), TypeError, "scale must be a real"),
        ("no directions", lambda: weights.loss_surface(M, X, Y, [], torch.ones(1, 1)), ValueError, "directions must"),
        ("coordinates of the wrong shape", lambda: weights.loss_surface(M, X, Y, [direction()], torch.ones(2, 2)),
         ValueError, "coords must be shaped \\(K, 1\\)"),
        ("minibatch past the data", lambda: weights.minibatch_gradients(M, X, Y, batch_size=7, n_batches=1),
         ValueError, "batch_size must be an integer in \\[1, 6\\]"),
        ("float labels", lambda: weights.gradient(M, X, Y.float()), TypeError, "y must hold int64"),
        ("labels past the classes", lambda: weights.gradient(M, X, Y + 1), ValueError, "y must be class indices"),
    ],
    "directions": [
        ("unknown normalization", lambda: directions.random_direction(M, normalization="l2"), ValueError,
         "normalization must be one of"),
        ("numpy generator", lambda: directions.random_direction(M, generator=np.random.default_rng()), TypeError,
         "generator must be a torch.Generator"),
        ("zero size", lambda: directions.adversarial_direction(M, X, Y, eps=0.0), ValueError, "eps must be"),
        ("no steps", lambda: directions.adversarial_direction(M, X, Y, eps=0.1, steps=0), ValueError, "steps must"),
        ("text flag", lambda: directions.adversarial_direction(M, X, Y, eps=0.1, relative="y"), TypeError, "relative"),
        ("inverted range", lambda: directions.halving_size(M, X, Y, X, Y, low=1.0, high=0.1), ValueError,
         "low must be below high"),
        ("zero low end", lambda: directions.halving_size(M, X, Y, X, Y, low=0.0), ValueError, "low must be a finite"),
        ("NaN fit data", lambda: directions.halving_size(M, NAN, Y, X, Y), ValueError, "x_fit must not contain NaN"),
    ],
    "curvature": [
        ("one probe", lambda: curvature.hessian_trace(M, X, Y, n_probes=1), ValueError, "n_probes must be"),
        ("zero chunk", lambda: curvature.hessian_trace(M, X, Y, n_probes=2, chunk=0), ValueError, "chunk must be"),
        ("a scale of the wrong shape", lambda: curvature.hessian_trace(M, X, Y, scale={W: torch.ones(1)}), ValueError,
         "scale must be a dict with one tensor"),
        ("no eigenvalues", lambda: curvature.top_eigenvalues(M, X, Y, 0), ValueError, "k must be an integer"),
        ("more eigenvalues than weights", lambda: curvature.top_eigenvalues(M, X, Y, 10**6), ValueError, "k = 1000000"),
        ("no iterations", lambda: curvature.top_eigenvalues(M, X, Y, iters=0), ValueError, "iters must be"),
        ("a direction of another model", lambda: curvature.quadratic_terms(M, X, Y, {W: torch.ones(8, 4)}),
         ValueError, "delta must be a dict with one tensor"),
        ("a string for a direction", lambda: curvature.direction_statistics("d", direction(), torch.ones(1, 1)),
         TypeError, "delta must be a dict"),
        ("eigenvectors of the wrong length", lambda: curvature.direction_statistics(
            direction(), direction(), torch.ones(3, 1)), ValueError, "eigvecs of shape \\(3, 1\\)"),
        ("a list for eigenvectors", lambda: curvature.direction_statistics(direction(), direction(), [[1.0]]),
         TypeError, "eigvecs must be a torch.Tensor"),
        ("a NaN product", lambda: curvature.hessian_vector_product(M, X, Y, direction(**{W: torch.full(
            (8, 4), float("nan"))})), ValueError, "v\\['layers.0.weight'\\] must not contain NaN"),
    ],
    "quant": [
        ("zero bits", lambda: quant.QuantSpec(0), ValueError, "bits must be an integer in \\[1, 16\\]"),
        ("fractional bits", lambda: quant.QuantSpec(8.0), TypeError, "bits must be an integer"),
        ("text symmetry", lambda: quant.QuantSpec(8, symmetric="yes"), TypeError, "symmetric must be True or False"),
        ("string granularity", lambda: quant.QuantSpec(8, granularity="axis"), TypeError, "granularity must be"),
        ("string calibration", lambda: quant.QuantSpec(8, calibration="mse"), TypeError, "calibration must be"),
        ("unknown rounding", lambda: quant.QuantSpec(8, rounding="up"), ValueError, "rounding must be one of"),
        ("fractional axis", lambda: quant.PerAxis(1.5), TypeError, "axis must be an integer"),
        ("percentile below 50", lambda: quant.Percentile(40), ValueError, "percentile must be a finite number"),
        ("text bits", lambda: quant.as_spec("8"), TypeError, "spec must be a quant.QuantSpec"),
        ("unknown workflow", lambda: quant.as_spec(8, "bias"), ValueError, "workflow must be one of"),
        ("NaN lower end", lambda: quant.from_range(torch.tensor(float("nan")), torch.tensor(1.0), 8), ValueError,
         "lo must not contain NaN"),
        ("inverted range", lambda: quant.from_range(torch.tensor(1.0), torch.tensor(0.0), 8), ValueError,
         "lo must not exceed hi"),
        ("empty tensor", lambda: quant.qparams(torch.ones(0), 8), ValueError, "x must hold at least one value"),
        ("integer tensor", lambda: quant.qparams(torch.ones(3, dtype=torch.long), 8), TypeError, "x must be a fl"),
        ("axis past the tensor", lambda: quant.qparams(X, quant.QuantSpec(8, granularity=quant.PerAxis(2))),
         ValueError, "axis 2 is out of range"),
        ("zero scale", lambda: quant.codes(X, torch.zeros(1), torch.zeros(1), 8), ValueError, "scale must be positive"),
        ("NaN zero point", lambda: quant.fake_quantize(X, torch.ones(1), torch.tensor([float("nan")]), 8), ValueError,
         "zero_point must not contain NaN"),
        ("a list to quantize", lambda: quant.quantize([1.0, 2.0], 8), TypeError, "x must be a torch.Tensor"),
        ("NaN entry to quantize", lambda: quant.quantize(NAN, 8), ValueError, "x must not contain NaN"),
        ("STE with a zero scale", lambda: quant.fake_quantize_ste(X, torch.zeros(1), torch.zeros(1), 8), ValueError,
         "scale must be positive"),
    ],
    "ptq": [
        ("a string of layers", lambda: ptq.check_layers(M, W), TypeError, "layers must be a list"),
        ("an unknown layer", lambda: ptq.check_layers(M, ["nope"]), ValueError, "layers names unknown weight tensors"),
        ("a number among the names", lambda: ptq.check_layers(M, [W, 3]), ValueError, "layers names unknown"),
        ("a number for fn", lambda: ptq.map_weights(M, 3), TypeError, "fn must be callable"),
        ("fn returning one row", lambda: ptq.map_weights(M, lambda n, w: w[:1]), ValueError, "fn must return a tens"),
        ("text bits", lambda: ptq.quantize_weights(M, "8"), TypeError, "spec must be a quant.QuantSpec"),
        ("MSE activations", lambda: ptq.quantize_activations(M, quant.QuantSpec.for_activations(
            8, calibration=quant.MSE()), X), ValueError, "activations are quantized per tensor"),
        ("NaN calibration", lambda: ptq.quantize_activations(M, 8, NAN), ValueError, "calibration must not contain"),
        ("text flag", lambda: ptq.quantize_activations(M, 8, X, straight_through="y"), TypeError, "straight_through"),
        ("a model without layers", lambda: ptq.quantize_activations(nn.Identity(), 8, X), ValueError, "no linear"),
    ],
    "rounding": [
        ("zero bits", lambda: rounding.step_sizes(M, 0), ValueError, "bits must be an integer"),
        ("a string of layers", lambda: rounding.rounding_error(M, 4, layers=W), TypeError, "layers must be a list"),
        ("float labels", lambda: rounding.adversarial_rounding(M, X, Y.float(), 4), TypeError, "y must hold int64"),
        ("numpy generator", lambda: rounding.random_rounding(M, 4, generator=np.random.default_rng()), TypeError,
         "generator must be"),
        ("directions of other models", lambda: rounding.predicted_increase(direction(), {W: torch.ones(8, 4)}),
         ValueError, "diag_h and steps must be directions of the same model"),
        ("a string for a direction", lambda: rounding.first_order_spread("g", direction()), ValueError,
         "grad_at_theta and steps must be directions"),
        ("shapes that differ", lambda: rounding.adversarial_gain(direction(), direction(**{W: torch.ones(2)})),
         ValueError, "grad_at_theta\\['layers.0.weight'\\] and steps\\['layers.0.weight'\\] must have one shape"),
        ("NaN steps", lambda: rounding.predicted_increase(direction(), direction(**{W: torch.full(
            (8, 4), float("nan"))})), ValueError, "steps\\['layers.0.weight'\\] must not contain NaN"),
    ],
    "bitflips": [
        ("float codes", lambda: bitflips.flip_bits(torch.ones(2), 0), TypeError, "q must hold int64 codes"),
        ("codes past int8", lambda: bitflips.flip_bits(torch.tensor([300]), 0), ValueError, "q must be int64 codes"),
        ("bit 8", lambda: bitflips.flip_bits(torch.tensor([3]), 8), ValueError, "bit must be an integer"),
        ("an unknown tensor", lambda: bitflips.flip_direction(M, [("nope", 0, 0)]), ValueError, "tensor name must"),
        ("an index past the tensor", lambda: bitflips.flip_direction(M, [(W, 32, 0)]), ValueError, "index must be"),
        ("bit 9", lambda: bitflips.flip_direction(M, [(W, 0, 9)]), ValueError, "bit must be an integer in \\[0, 7\\]"),
        ("a string of flips", lambda: bitflips.flip_direction(M, "x"), TypeError, "flips must be a list"),
        ("a pair for a triple", lambda: bitflips.flip_direction(M, [(W, 1)]), ValueError, "flips\\[0\\] must be a"),
        ("more flips than bits", lambda: bitflips.random_bit_flips(M, 10**6), ValueError, "n_flips must be"),
        ("negative flips", lambda: bitflips.bit_flip_attack(M, X, Y, -1), ValueError, "n_flips must be an integer"),
        ("NaN data", lambda: bitflips.bit_flip_attack(M, NAN, Y, 1), ValueError, "x must not contain NaN"),
    ],
    "qat": [
        ("zero scale", lambda: qat.FakeQuantize(8, scale=torch.zeros(1)), ValueError, "scale must be positive"),
        ("floor rounding", lambda: qat.FakeQuantize(quant.QuantSpec(8, rounding="floor")), ValueError, "rounds to"),
        ("observe and noise", lambda: qat.FakeQuantize(8, observe=True, noise=True), ValueError, "at most one of"),
        ("text bits", lambda: qat.prepare_qat(M, "8"), TypeError, "spec must be a quant.QuantSpec"),
        ("LSQ with noise", lambda: qat.prepare_qat(M, 4, learn_scale=True, noise=True), ValueError, "cannot be comb"),
        ("nothing to quantize", lambda: qat.prepare_qat(nn.Identity(), 4), ValueError, "no linear or convolution"),
        ("another architecture", lambda: qat.latent_model(qat.prepare_qat(M, 4), models.MLP(4, 9, 3)), ValueError,
         "qat_model was not prepared from a model like this one"),
        ("another depth", lambda: qat.latent_model(qat.prepare_qat(M, 4), models.MLP(4, (8, 8), 3)), ValueError,
         "qat_model was not prepared from a model like this one"),
        ("a string for like", lambda: qat.latent_model(qat.prepare_qat(M, 4), "mlp"), TypeError, "like must be"),
    ],
    "deploy": [
        ("bits for a spec", lambda: deploy.onnx_benchmark(M, X, "/nonexistent", spec=8), TypeError, "spec must be"),
        ("four bits", lambda: deploy.onnx_benchmark(M, X, "/nonexistent", spec=quant.QuantSpec(4)), ValueError,
         "8-bit min-max"),
        ("no threads", lambda: deploy.onnx_benchmark(M, X, "/nonexistent", threads=0), ValueError, "threads must"),
        ("two repeats", lambda: deploy.onnx_benchmark(M, X, "/nonexistent", repeats=2), ValueError, "repeats must"),
        ("a number for the folder", lambda: deploy.onnx_benchmark(M, X, 3), TypeError, "folder must be a str"),
        ("NaN inputs", lambda: deploy.onnx_benchmark(M, NAN, "/nonexistent"), ValueError, "x must not contain NaN"),
        ("a folder in a file", lambda: deploy.onnx_benchmark(M, X, __file__ + "/onnx"), PermissionError,
         "cannot write the ONNX files in .*BOOK_ONNX"),
    ],
    "perturbations": [
        ("a string of methods", lambda: perturbations.input_methods("fgsm"), TypeError, "methods must be a non-empty"),
        ("an unknown method", lambda: perturbations.input_methods(["nope"]), ValueError, "methods\\[0\\] must be"),
        ("no methods", lambda: perturbations.rounding_methods([]), TypeError, "methods must be a non-empty list"),
        ("a string of budgets", lambda: perturbations.flip_curves(M, X, "0.1"), ValueError, "eps_values must be"),
        ("a negative budget", lambda: perturbations.flip_curves(M, X, [-1.0]), ValueError, "eps_values\\[0\\] must"),
        ("no draws", lambda: perturbations.flip_curves(M, X, [0.1], n_draws=0), ValueError, "n_draws must be"),
        ("a number for a name", lambda: perturbations.input_method(3, random=True), TypeError, "name must be a non"),
        ("negative variance", lambda: perturbations.rounding_method("r", variance=-1.0), ValueError, "variance must"),
        ("a number to register", lambda: perturbations.rounding_method("r", variance=None)(3), TypeError,
         "fn must be callable"),
    ],
}


def nan_model() -> nn.Module:
    model = mlp()
    with torch.no_grad():
        model.layers[0].weight[0, 0] = float("nan")
    return model


FLAT = [(module, *case) for module, cases in CASES.items() for case in cases]


@pytest.mark.parametrize("call,error,message", [c[2:] for c in FLAT], ids=[f"{c[0]}: {c[1]}" for c in FLAT])
def test_a_bad_call_is_rejected_with_a_message_that_names_the_argument(call, error, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=message):
        call()


def test_a_point_where_the_margin_has_no_gradient_has_no_normal_distance():
    model = models.MLP(2, 4, 2).eval()
    with torch.no_grad():
        model.layers[0].bias.fill_(-100.0)  # every hidden unit off: the logits are constant, the gradient zero
    r_normal, r_random = geometry.normal_and_random_radii(model, torch.rand(3, 2), 2,
                                                          generator=torch.Generator().manual_seed(0))
    assert torch.isinf(r_normal).all() and r_random.shape == (3, 2)


def test_the_model_and_data_the_bad_calls_used_are_unchanged():
    assert torch.equal(M(X), mlp()(X)) and not M.training


if __name__ == "__main__":
    counts = Counter(c[0] for c in FLAT)
    print("\n".join(f"{m:15s} {n}" for m, n in counts.items()), f"\ntotal {sum(counts.values())}")
