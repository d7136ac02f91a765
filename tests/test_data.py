"""data: the data sets (Pearson's crabs, Leptograpsus crabs, the digits split, the 2-D toys), the fixed
evaluation set (same in every process), the scale maps, dequantisation, bad input."""
import hashlib
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from companion_lib import data

#: sha256 of data.heldout_digits().numpy().tobytes(): changes if the seed, the split or the rule moves
HELDOUT_SHA256 = "6d6cdcfe4eb71bf0c3f3cb011cd3fdeb186d6bad8b695af1b5a46f8d80da88ad"


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.numpy().tobytes()).hexdigest()


def test_heldout_digits_contract():
    y = data.heldout_digits()
    split = data.load_digits_split(validation=False)
    assert y.shape == (360, 64) and y.dtype == torch.float32 and y.device.type == "cpu"
    assert float(y.min()) >= 0.0 and float(y.max()) < 1.0
    # the dequantisation of the held-out levels: floor(17 y) gives the levels back
    assert np.array_equal(data.from_unit(y).numpy(), split.X_test)
    # and not the bin centres (there is noise), nor a fresh draw each call
    assert not torch.allclose(y, data.to_unit(torch.as_tensor(split.X_test, dtype=torch.float32)))
    assert torch.equal(y, data.heldout_digits())


def test_heldout_digits_is_a_copy():
    y = data.heldout_digits()
    y.zero_()
    assert float(data.heldout_digits().sum()) > 1000


def test_heldout_digits_identical_in_another_process():
    code = ("import hashlib; from companion_lib import data; "
            "print(hashlib.sha256(data.heldout_digits().numpy().tobytes()).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == _digest(data.heldout_digits()) == HELDOUT_SHA256


def test_heldout_digits_is_the_seeded_dequantisation():
    split = data.load_digits_split(validation=False)
    u = torch.rand(360, 64, generator=torch.Generator().manual_seed(data.HELDOUT_SEED), dtype=torch.float64)
    expected = ((torch.as_tensor(split.X_test) + u) / 17).float().clamp(max=1 - 2 ** -24)
    assert torch.equal(data.heldout_digits(), expected)


def test_to_unit_from_unit_round_trip():
    levels = torch.randint(0, 17, (50, 64), generator=torch.Generator().manual_seed(0))
    centres = data.to_unit(levels)
    assert torch.allclose(centres, (levels + 0.5) / 17)
    assert centres.dtype == torch.float32
    u = torch.rand(50, 64, generator=torch.Generator().manual_seed(1))
    y = data.to_unit(levels, noise=u)
    assert torch.allclose(y, (levels + u) / 17)
    assert torch.equal(data.from_unit(y), levels.float())
    assert torch.equal(data.from_unit(centres), levels.float())
    # the scale's ends: 0 → level 0, just below 1 → level 16; out-of-range values are clipped
    assert data.from_unit(torch.tensor([0.0, 0.9999, 1.5, -0.2])).tolist() == [0.0, 16.0, 16.0, 0.0]


def test_signed_scale_maps():
    y = torch.tensor([0.0, 0.25, 0.5, 1.0])
    x = data.unit_to_signed(y)
    assert x.tolist() == [-1.0, -0.5, 0.0, 1.0]
    assert torch.equal(data.signed_to_unit(x), y)


def test_dequantize_values_and_generator():
    x = np.array([[0, 16], [3, 4]])
    a = data.dequantize(x, torch.Generator().manual_seed(5))
    u = torch.rand(2, 2, generator=torch.Generator().manual_seed(5))
    assert a.dtype == torch.float32                          # integer levels give float32
    assert torch.allclose(a, (torch.as_tensor(x, dtype=torch.float32) + u) / 17)
    assert torch.equal(data.from_unit(a), torch.as_tensor(x, dtype=torch.float32))
    b = data.dequantize(torch.as_tensor(x, dtype=torch.float64), torch.Generator().manual_seed(5))
    assert b.dtype == torch.float64 and not torch.equal(a.double(), b)   # drawn in the input's dtype


def test_dequantized_bits_per_dim_values():
    lp = torch.tensor([0.0, -64 * math.log(2)])
    assert torch.allclose(data.dequantized_bits_per_dim(lp, 64),
                          torch.tensor([math.log2(17), math.log2(17) + 1]))
    assert data.dequantized_bits_per_dim(torch.tensor(64 * math.log(2)), 64, levels=None).item() == pytest.approx(-1)


# ------------------------------------------------------------------ the data sets
def test_pearson_crabs_readings():
    value = data.load_pearson_crabs()
    edge = data.load_pearson_crabs("right_edge")
    assert value.data.shape == (1000, 1) and value.count.sum() == 1000 and len(value.ratio) == 29
    assert value.data.mean() - edge.data.mean() == pytest.approx(0.002)
    assert np.allclose(np.diff(value.bin_edges), 0.004)
    with pytest.raises(ValueError, match="reading"):
        data.load_pearson_crabs("middle")


def test_leptograpsus_crabs():
    crabs = data.load_leptograpsus_crabs()
    assert crabs.data.shape == (200, 5) and crabs.feature_names == ["FL", "RW", "CL", "CW", "BD"]
    assert np.bincount(crabs.group).tolist() == [50, 50, 50, 50]
    assert set(crabs.species) == {"B", "O"} and set(crabs.sex) == {"M", "F"}
    assert np.allclose(np.log(crabs.data), data.load_leptograpsus_crabs(log=True).data)


def test_digits_split_is_fixed_disjoint_and_stratified():
    a, b = data.load_digits_split(), data.load_digits_split()
    assert a.X_train.shape == (1437, 64) and a.X_test.shape == (360, 64)
    assert a.X_fit.shape == (1149, 64) and a.X_val.shape == (288, 64)
    np.testing.assert_array_equal(a.X_test, b.X_test)
    train_rows = {r.tobytes() for r in a.X_train}
    assert sum(r.tobytes() in train_rows for r in a.X_test) <= 5  # the raw set has a few exact duplicates
    assert np.bincount(a.y_test).min() >= 35
    assert a.X_train.min() == 0 and a.X_train.max() == 16


def test_dequantize():
    x = np.array([[0, 16], [3, 5]], dtype=float)
    y = data.dequantize(x, torch.Generator().manual_seed(0))
    assert y.shape == (2, 2) and (y >= 0).all() and (y < 1).all()
    assert torch.equal(torch.floor(y * 17), torch.as_tensor(x))
    with pytest.raises(ValueError, match="integer levels"):
        data.dequantize(np.array([[17.0]]))
    with pytest.raises(ValueError, match="2-D"):
        data.dequantize(np.zeros(3))


@pytest.mark.parametrize("name", ["moons", "rings", "8gaussians"])
def test_toy_2d(name):
    X = data.make_toy_2d(name, 500)
    assert X.shape == (500, 2) and X.dtype == torch.float32
    assert 0.3 < X.std().item() < 2.5
    assert torch.equal(X, data.make_toy_2d(name, 500))


@pytest.mark.parametrize("call, err, match", [
    (lambda: data.dequantize(np.array([[0.5, 1.0]])), ValueError, "integer levels"),
    (lambda: data.dequantize(np.array([[17, 1]])), ValueError, "0..16"),
    (lambda: data.dequantize(np.array([[-1, 1]])), ValueError, "0..16"),
    (lambda: data.dequantize(np.array([1, 2])), ValueError, "2-D"),
    (lambda: data.dequantize(np.zeros((0, 64))), ValueError, "at least 1"),
    (lambda: data.dequantize(np.zeros((2, 2)), generator=5), TypeError, "generator"),
    (lambda: data.to_unit(torch.tensor([20])), ValueError, "0..16"),
    (lambda: data.to_unit(torch.tensor([1, 2]), noise=torch.tensor([0.5])), ValueError, "shape"),
    (lambda: data.to_unit(torch.tensor([1, 2]), noise=torch.tensor([0.5, 1.0])), ValueError, r"\[0, 1\)"),
    (lambda: data.from_unit(torch.tensor([float("nan")])), ValueError, "finite"),
    (lambda: data.unit_to_signed(["a"]), ValueError, "numeric"),
    (lambda: data.make_toy_2d("spiral", 10), ValueError, "moons"),
    (lambda: data.make_toy_2d("moons", 0), ValueError, "n_samples"),
    (lambda: data.make_toy_2d("moons", 10, seed=-1), ValueError, "seed"),
    (lambda: data.load_pearson_crabs("middle"), ValueError, "reading"),
    (lambda: data.load_digits_split(validation="yes"), TypeError, "validation"),
    (lambda: data.dequantized_bits_per_dim(np.zeros(3), 64), TypeError, "log_p"),
    (lambda: data.dequantized_bits_per_dim(torch.zeros(3), 0), ValueError, "n_dims"),
])
def test_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call()
