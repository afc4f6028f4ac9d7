import random

import numpy as np
import pytest
import torch

from utils import checkpoints, config, train
from utils.data import load_dataset
from utils.models import build_model


def small_fit(model, ds, seed=0):
    return train.fit(model, ds, epochs=3, lr=1e-2, batch_size=64, generator=torch.Generator().manual_seed(seed),
                     progress=False, device="cpu")


def test_fit_learns_and_reports_history():
    ds = load_dataset("moons", n_samples=600)
    model = build_model("mlp", ds)
    before = train.mean_loss(model, ds.x_test, ds.y_test)
    history = small_fit(model, ds)
    assert len(history["loss"]) == 3 and history["loss"][-1] < history["loss"][0]
    assert train.mean_loss(model, ds.x_test, ds.y_test) < before
    assert history["test_accuracy"][0] == train.evaluate(model, ds.x_test, ds.y_test) > 0.8


def test_fit_is_deterministic_under_a_seed():
    ds = load_dataset("digits").subset(300, 100)
    weights = []
    for draws in (1, 5):
        torch.manual_seed(99)
        model = build_model("cnn", ds)
        torch.rand(draws)  # a different global state must not matter: fit draws from its generator
        small_fit(model, ds, seed=5)
        weights.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_predict_and_evaluate_agree_with_the_model():
    ds = load_dataset("digits")
    model = build_model("mlp", ds).eval()
    with torch.no_grad():
        expected = model(ds.x_test).argmax(1)
    assert torch.equal(train.predict(model, ds.x_test, batch_size=7), expected)
    assert train.evaluate(model, ds.x_test, ds.y_test) == pytest.approx((expected == ds.y_test).float().mean().item())


def test_logits_keep_double_precision_and_widen_half_precision():
    ds = load_dataset("digits")
    model, x = build_model("mlp", ds).eval(), ds.x_test[:5]
    with torch.no_grad():
        exact = model.double()(x.double())
        assert torch.equal(train.logits(model, x.double()), exact)  # not rounded to single precision
        assert train.logits(model.bfloat16(), x.bfloat16()).dtype == torch.float32


def test_augmentation_shifts_and_flips_images_without_changing_their_size():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    out = train.augment_crop_flip(x, torch.Generator().manual_seed(0), pad=2)
    assert out.shape == x.shape
    assert not torch.equal(out, x)


def test_fit_and_pretrained_leave_the_global_random_state_and_settings_alone():
    ds = load_dataset("moons", n_samples=200)
    model = build_model("mlp", ds)
    states = lambda: (torch.get_rng_state(), np.random.get_state()[1], random.getstate())  # noqa: NPY002
    before, deterministic = states(), torch.are_deterministic_algorithms_enabled()
    small_fit(model, ds)
    train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
    after = states()
    assert torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1]) and before[2] == after[2]
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_bad_arguments_are_rejected_clearly():
    ds = load_dataset("moons", n_samples=100)
    model = build_model("mlp", ds)
    with pytest.raises(ValueError, match="epochs must be an integer in \\[1, inf\\], got 0"):
        train.fit(model, ds, epochs=0, lr=0.1)
    for bad in (-1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="lr must be a finite number in \\(0.0, inf\\)"):
            train.fit(model, ds, epochs=1, lr=bad)
    with pytest.raises(TypeError, match="batch_size must be an integer, got 2.5"):
        train.fit(model, ds, epochs=1, lr=0.1, batch_size=2.5)
    with pytest.raises(ValueError, match="optimizer must be one of 'adam', 'sgd'; got 'lbfgs'"):
        train.fit(model, ds, epochs=1, lr=0.1, optimizer="lbfgs")
    with pytest.raises(ValueError, match="augment=True needs image inputs"):
        train.fit(model, ds, epochs=1, lr=0.1, augment=True)
    with pytest.raises(ValueError, match="model must have at least one trainable parameter"):
        train.fit(torch.nn.Identity(), ds, epochs=1, lr=0.1)
    with pytest.raises(ValueError, match="y must be a 1-D tensor with one label per sample"):
        train.evaluate(model, ds.x_test, ds.y_test[:3])
    with pytest.raises(ValueError, match="y must be class indices in \\[0, 2\\), got values from 0 to 5"):
        train.evaluate(model, ds.x_test[:2], torch.tensor([0, 5]))
    with pytest.raises(TypeError, match="y must hold int64 class labels"):
        train.mean_loss(model, ds.x_test, ds.y_test.float())
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        train.predict(model, [[0.0, 1.0]])
    with pytest.raises(ValueError, match="x must not contain NaN"):
        train.predict(model, torch.full((2, 2), float("nan")))
    with pytest.raises(ValueError, match="no training recipe for cnn/moons"):
        train.pretrained("cnn", "moons")
    with pytest.raises(ValueError, match="data must be the Dataset 'circles', got 'moons'"):
        train.pretrained("mlp", "circles", data=ds)


@pytest.fixture
def counted_fit(monkeypatch):
    calls = []
    real_fit = train.fit

    def fit(*args, **kwargs):
        calls.append(1)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(train, "fit", fit)
    return calls


RECIPE = train.Recipe(epochs=2, lr=1e-2, batch_size=100)


def test_pretrained_trains_once_then_loads_the_same_weights(isolated_root, counted_fit):
    first = train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
    second = train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
    assert len(counted_fit) == 1
    pairs = zip(first.state_dict().values(), second.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    files = list((isolated_root / "data" / "checkpoints").glob("mlp-moons-*.pt"))
    assert len(files) == 1
    train.pretrained("mlp", "moons", recipe=train.Recipe(epochs=3, lr=1e-2, batch_size=100), progress=False)
    assert len(counted_fit) == 2  # another configuration, another cache entry


def checkpoint_file(root):
    (path,) = (root / "data" / "checkpoints").glob("*.pt")
    return path


def fresh_weights(model):
    """What a freshly built model of the same recipe holds: retraining must start from these."""
    return torch.cat([p.flatten() for p in model.parameters()])


def test_a_corrupt_cache_file_is_retrained_with_a_warning(isolated_root, counted_fit):
    train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
    path = checkpoint_file(isolated_root)
    path.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unusable .*retraining"):
        model = train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
    assert len(counted_fit) == 2 and isinstance(model, torch.nn.Module)
    train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
    assert len(counted_fit) == 2  # the retrained file replaced the corrupt one


def alter(path, change):
    saved = torch.load(path, weights_only=True)
    change(saved)
    torch.save(saved, path)


def poison_buffer_and_drop_a_weight(saved):
    saved["state_dict"]["normalize.std"] = torch.full_like(saved["state_dict"]["normalize.std"], 1e6)
    del saved["state_dict"]["layers.4.bias"]


@pytest.mark.parametrize("change,reason", [
    (lambda s: s["state_dict"].update({k: v[..., :1] for k, v in s["state_dict"].items()}), "wrong type, shape"),
    (poison_buffer_and_drop_a_weight, "do not match the model"),
    (lambda s: s["state_dict"]["layers.0.weight"].fill_(float("nan")), "NaN or infinite"),
    (lambda s: s["state_dict"]["layers.0.weight"].copy_(s["state_dict"]["layers.0.weight"].flip(0)), "checksum"),
    (lambda s: s.update(key={**s["key"], "seed": 9}), "another configuration"),
])
def test_an_altered_cache_file_never_reaches_the_model(isolated_root, counted_fit, change, reason):
    reference = train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
    alter(checkpoint_file(isolated_root), change)
    with pytest.warns(UserWarning, match=f"unusable .*{reason}"):
        retrained = train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
    assert len(counted_fit) == 2
    # retraining started from fresh weights, so it ends exactly where the first training did
    assert torch.equal(fresh_weights(retrained), fresh_weights(reference))
    assert torch.equal(retrained.normalize.std, reference.normalize.std)


def test_weights_that_no_longer_give_their_accuracy_are_retrained(isolated_root, counted_fit):
    train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
    path = checkpoint_file(isolated_root)

    def scramble_consistently(saved):  # a rewritten file with a valid checksum but other weights
        saved["state_dict"]["layers.4.weight"].mul_(-1)
        saved["checksum"] = checkpoints.checksum(saved["state_dict"])

    alter(path, scramble_consistently)
    with pytest.warns(UserWarning, match="give test accuracy .* saved with them\\); retraining, and replacing"):
        train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
    assert len(counted_fit) == 2


def test_an_unwritable_cache_warns_and_keeps_the_trained_model(isolated_root, counted_fit):
    blocked = isolated_root / "blocked"
    blocked.write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="could not cache the trained weights"):
        model = train.pretrained("mlp", "moons", recipe=RECIPE, progress=False, root=blocked / "checkpoints")
    ds = load_dataset("moons")
    assert train.evaluate(model, ds.x_test, ds.y_test) > 0.8 and len(counted_fit) == 1


def test_an_empty_folder_at_the_cache_path_is_replaced_by_the_checkpoint(isolated_root, counted_fit):
    train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
    path = checkpoint_file(isolated_root)
    path.unlink()
    path.mkdir()
    with pytest.warns(UserWarning) as record:
        train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
    assert len(record) == 1 and "a folder, not a checkpoint file" in str(record[0].message)
    assert "replacing them" in str(record[0].message)
    assert path.is_file() and sorted(p.name for p in path.parent.iterdir()) == [path.name]
    train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
    assert len(counted_fit) == 2  # repaired: the third call loads it


def test_a_full_folder_at_the_cache_path_is_reported_once_and_left_alone(isolated_root, counted_fit):
    train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
    path = checkpoint_file(isolated_root)
    path.unlink()
    (path / "notes").mkdir(parents=True)
    with pytest.warns(UserWarning) as record:
        model = train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
    assert len(record) == 1, [str(w.message) for w in record]
    assert "a folder that is not empty is in its place: remove" in str(record[0].message)
    assert (path / "notes").is_dir() and isinstance(model, torch.nn.Module)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left behind


def test_pretrained_weights_do_not_depend_on_what_ran_before(tmp_path, monkeypatch):
    weights = []
    for draws in (1, 7):
        monkeypatch.setenv("BOOK_ROOT", str(tmp_path / str(draws)))
        torch.rand(draws)  # other code consuming the global random stream first
        model = train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
        weights.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_the_book_seed_changes_the_trained_model():
    first = fresh_weights(train.pretrained("mlp", "moons", recipe=RECIPE, progress=False))
    config.use(seed=1)
    assert not torch.equal(first, fresh_weights(train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)))
