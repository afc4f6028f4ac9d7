"""Property-based hostile tests (hypothesis) of the numeric functions and the file readers: for any input
drawn — NaN or infinity at any entry, zero, negative or inverted ranges, arbitrary text and bytes — a
function either returns a result with its documented property or raises a ValueError or TypeError naming
the argument (the readers: DatasetUnavailableError naming the file); never another exception, never a NaN
result. ``EXAMPLES`` bad or random inputs per property (about 1,000 in all, a few seconds)."""

import math
import struct

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from utils import attacks, bitflips, budgets, checkpoints, checks, geometry, quant, stats
from utils.datafiles import DatasetUnavailableError, read_cifar_batch, read_idx

EXAMPLES = 60
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=32)
ODD = st.one_of(st.text(max_size=5), st.none(), st.lists(st.integers(), max_size=2), st.booleans(), ANY_FLOAT,
                st.integers(-10, 10))


def tensors(draw, shape, *, lo=-10.0, hi=10.0):
    """A float tensor of ``shape``, with a NaN or infinity planted at a drawn entry one time in three."""
    values = draw(st.lists(st.floats(lo, hi, width=32), min_size=math.prod(shape), max_size=math.prod(shape)))
    t = torch.tensor(values, dtype=torch.float32).reshape(shape)
    if t.numel() and draw(st.integers(0, 2)) == 0:
        t.view(-1)[draw(st.integers(0, t.numel() - 1))] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    return t


@SETTINGS
@given(value=st.one_of(ODD, st.floats(allow_nan=True, allow_infinity=True)))
def test_checks_positive_returns_a_positive_finite_float_or_names_the_argument(value):
    try:
        out = checks.positive("lr", value)
    except (ValueError, TypeError) as err:
        assert str(err).startswith("lr must be")
    else:
        assert isinstance(out, float) and math.isfinite(out) and out > 0


@SETTINGS
@given(value=st.one_of(st.text(max_size=12), st.integers(), st.none()))
def test_checks_device_gives_a_device_of_this_machine_or_names_the_argument(value):
    try:
        dev = checks.device("device", value)
    except (ValueError, TypeError) as err:
        assert str(err).startswith("device must be")
    else:
        torch.zeros(1, device=dev)


@SETTINGS
@given(data=st.data(), n=st.integers(1, 4))
def test_per_sample_budgets_are_finite_and_non_negative_or_rejected(data, n):
    x = torch.rand(n, 3)
    eps = data.draw(st.one_of(ANY_FLOAT, st.builds(lambda: tensors(data.draw, (n,))), ODD))
    try:
        e = budgets.per_sample(eps, x)
    except (ValueError, TypeError) as err:
        assert str(err).startswith("eps must be")
    else:
        assert e.shape == (n, 1) and torch.isfinite(e).all() and (e >= 0).all()


@SETTINGS
@given(data=st.data(), bits=st.integers(1, 8), symmetric=st.booleans())
def test_a_range_gives_a_positive_grid_that_covers_it_or_is_rejected(data, bits, symmetric):
    lo, hi = tensors(data.draw, (3,)), tensors(data.draw, (3,))
    spec = quant.QuantSpec(bits, symmetric=symmetric)
    try:
        scale, zero = quant.from_range(lo, hi, spec)
    except ValueError as err:
        assert str(err).startswith(("lo must", "hi must"))
    else:
        q_min, q_max = quant.code_range(spec)
        assert torch.isfinite(scale).all() and (scale > 0).all() and ((zero >= q_min) & (zero <= q_max)).all()
        top = torch.maximum(lo.abs(), hi.abs()) if symmetric else hi.clamp(min=0) - lo.clamp(max=0)
        assert (scale * (q_max - (0 if symmetric else q_min)) >= top * (1 - 1e-5) - 1e-12).all()


@SETTINGS
@given(data=st.data(), rows=st.integers(0, 3), bits=st.integers(2, 8))
def test_qparams_of_any_tensor_is_positive_and_finite_or_names_x(data, rows, bits):
    x = tensors(data.draw, (rows, 2))
    try:
        scale, _ = quant.qparams(x, quant.QuantSpec.for_weights(bits))
    except ValueError as err:
        assert str(err).startswith("x must")
    else:
        assert torch.isfinite(scale).all() and (scale > 0).all()


@SETTINGS
@given(data=st.data())
def test_the_distance_to_a_hyperplane_is_finite_and_non_negative_or_rejected(data):
    x, w = tensors(data.draw, (4, 3), lo=-1, hi=1), tensors(data.draw, (3,), lo=-1, hi=1)
    if data.draw(st.booleans()):
        w = torch.zeros(3)
    b = data.draw(st.one_of(ANY_FLOAT, ODD))
    try:
        d = geometry.hyperplane_distance(x, w, b)
    except (ValueError, TypeError) as err:
        assert str(err).startswith(("x must", "w must", "b must"))
    else:
        assert torch.isfinite(d).all() and (d >= 0).all()


@SETTINGS
@given(x=st.lists(ANY_FLOAT, max_size=5), y=st.lists(ANY_FLOAT, max_size=5))
def test_a_power_law_fit_is_finite_or_rejected(x, y):
    try:
        slope, intercept = stats.power_law_fit(x, y)
    except ValueError as err:
        assert str(err).startswith("x ")
    else:
        assert math.isfinite(slope) and math.isfinite(intercept)


@SETTINGS
@given(data=st.data(), eps=st.floats(0, 2), norm=st.sampled_from(["l2", "linf"]))
def test_the_projection_stays_in_the_ball_and_the_box_or_names_the_bad_argument(data, eps, norm):
    x0, x = tensors(data.draw, (2, 3), lo=0, hi=1), tensors(data.draw, (2, 3), lo=-2, hi=3)
    try:
        p = attacks.project(x0, x, eps, norm=norm)
    except ValueError as err:
        assert str(err).startswith("x0 must" if not torch.isfinite(x0).all() else "x must")
    else:
        assert (p >= 0).all() and (p <= 1).all()
        assert (budgets.norms(p - x0, norm) <= eps * (1 + 1e-5) + 1e-6).all()


@SETTINGS
@given(t=st.one_of(ANY_FLOAT, st.lists(ANY_FLOAT, max_size=3), st.text(max_size=3)), dim=st.integers(-1, 50))
def test_a_flip_probability_is_a_probability_or_rejected(t, dim):
    try:
        p = geometry.flat_boundary_flip_probability(dim, t)
    except (ValueError, TypeError) as err:
        assert str(err).startswith(("t must", "dim must"))
    else:
        assert np.all((p >= 0) & (p <= 0.5))


@SETTINGS
@given(q=st.integers(-300, 300), bit=st.one_of(st.integers(-2, 10), ANY_FLOAT))
def test_a_bit_flip_is_its_own_inverse_or_rejected(q, bit):
    codes = torch.tensor([q])
    try:
        flipped = bitflips.flip_bits(codes, bit)
    except (ValueError, TypeError) as err:
        assert str(err).startswith(("q must", "bit must"))
    else:
        assert -128 <= flipped.item() <= 127 and torch.equal(bitflips.flip_bits(flipped, bit), codes)


@SETTINGS
@given(model=st.text(max_size=12), dataset=st.text(max_size=12))
def test_a_cache_file_never_leaves_its_root(model, dataset, tmp_path):
    try:
        path = checkpoints.file_for({"model": model, "dataset": dataset}, tmp_path)
    except ValueError as err:
        assert str(err).startswith(("key['model'] must", "key['dataset'] must"))
    else:
        assert path.parent == tmp_path and path.resolve().parent == tmp_path.resolve()


IDX_HEADER = st.builds(lambda t, d, sizes: bytes([0, 0, t, d]) + b"".join(struct.pack(">I", s) for s in sizes),
                       st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07]), st.integers(0, 4),
                       st.lists(st.sampled_from([0, 1, 2, 3, 2**31, 2**32 - 1]), max_size=4))


@SETTINGS
@given(header=IDX_HEADER, body=st.binary(max_size=40), dims=st.integers(1, 3))
def test_any_idx_file_is_read_or_rejected_naming_the_file(header, body, dims, tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(header + body)
    try:
        array = read_idx(path, dims=dims)
    except DatasetUnavailableError as err:
        assert str(err).startswith(f"{path} is not a valid data file")
    else:
        assert array.ndim == dims


@SETTINGS
@given(content=st.binary(max_size=200))
def test_any_cifar_file_is_read_or_rejected_naming_the_file(content, tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(content)
    with pytest.raises(DatasetUnavailableError, match="data_batch_1 is not a valid data file"):
        read_cifar_batch(path)
