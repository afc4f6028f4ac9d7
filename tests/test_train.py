import pytest
import torch

from utils import train
from utils.data import load_dataset
from utils.models import build_model


def small_fit(model, ds, seed=0):
    return train.fit(model, ds, epochs=3, lr=1e-2, batch_size=64, seed=seed, progress=False, device="cpu")


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
    for _ in range(2):
        torch.manual_seed(99)  # a different global state must not matter: fit seeds itself
        model = build_model("cnn", ds)
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


def test_augmentation_shifts_and_flips_images_without_changing_their_size():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    out = train.augment_crop_flip(x, torch.Generator().manual_seed(0), pad=2)
    assert out.shape == x.shape
    assert not torch.equal(out, x)


def test_bad_arguments_are_rejected_clearly():
    ds = load_dataset("moons", n_samples=100)
    model = build_model("mlp", ds)
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        train.fit(model, ds, epochs=0, lr=0.1)
    with pytest.raises(ValueError, match="lr must be > 0"):
        train.fit(model, ds, epochs=1, lr=-1)
    with pytest.raises(ValueError, match="optimizer must be 'adam' or 'sgd'"):
        train.fit(model, ds, epochs=1, lr=0.1, optimizer="lbfgs")
    with pytest.raises(ValueError, match="augment=True needs image inputs"):
        train.fit(model, ds, epochs=1, lr=0.1, augment=True)
    with pytest.raises(ValueError, match="same number of samples"):
        train.evaluate(model, ds.x_test, ds.y_test[:3])
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        train.predict(model, [[0.0, 1.0]])
    with pytest.raises(ValueError, match="no training recipe for cnn/moons"):
        train.pretrained("cnn", "moons")
    with pytest.raises(ValueError, match="data is 'moons' but dataset_name is 'circles'"):
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


def test_a_corrupt_cache_file_is_retrained_with_a_warning(isolated_root, counted_fit):
    train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
    (path,) = (isolated_root / "data" / "checkpoints").glob("*.pt")
    path.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unusable .*retraining"):
        model = train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
    assert len(counted_fit) == 2 and isinstance(model, torch.nn.Module)
    train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
    assert len(counted_fit) == 2  # the retrained file replaced the corrupt one


def test_a_mismatched_cache_file_is_retrained(isolated_root, counted_fit):
    train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
    (path,) = (isolated_root / "data" / "checkpoints").glob("*.pt")
    saved = torch.load(path, weights_only=True)
    saved["state_dict"] = {k: v[..., :1] for k, v in saved["state_dict"].items()}
    torch.save(saved, path)
    with pytest.warns(UserWarning, match="unusable"):
        train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
    assert len(counted_fit) == 2


def test_pretrained_weights_do_not_depend_on_what_ran_before(tmp_path, monkeypatch):
    weights = []
    for draws in (1, 7):
        monkeypatch.setenv("BOOK_ROOT", str(tmp_path / str(draws)))
        torch.rand(draws)  # other code consuming the global random stream first
        model = train.pretrained("mlp", "moons", recipe=RECIPE, progress=False)
        weights.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])
