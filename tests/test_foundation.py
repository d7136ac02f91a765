"""_checks, data, metrics, plots: the floors every notebook stands on (settings and training:
test_settings.py, test_training.py)."""
import math

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
import torch

from companion_lib import _checks, data, metrics, plots


# ------------------------------------------------------------------ _checks
def test_as_tensor_errors_name_what_was_expected():
    with pytest.raises(ValueError, match=r"x must be 2-D, got shape \(3,\)"):
        _checks.as_tensor([1, 2, 3], "x", ndim=2)
    with pytest.raises(ValueError, match=r"shape \(\*, 2\)"):
        _checks.as_tensor(np.zeros((4, 3)), "x", shape=(None, 2))
    with pytest.raises(ValueError, match="finite"):
        _checks.as_tensor([1.0, float("inf")], "x")
    with pytest.raises(ValueError, match="numeric"):
        _checks.as_tensor(["a", "b"], "x")
    with pytest.raises(ValueError, match="at least 5 rows"):
        _checks.as_tensor(np.zeros((2, 2)), "x", min_rows=5)
    with pytest.raises(ValueError, match=">= 1"):
        _checks.check_int(0, "k", low=1)
    with pytest.raises(ValueError, match="integer"):
        _checks.check_int(1.5, "k")
    with pytest.raises(ValueError, match="> 0"):
        _checks.check_float(0.0, "lr", low=0.0, low_open=True)
    assert _checks.as_tensor(np.arange(3), "x").dtype == torch.float64


# ------------------------------------------------------------------ data
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


# ------------------------------------------------------------------ plots
def test_image_grid_layout_and_errors():
    ax = plots.image_grid(np.random.default_rng(0).random((10, 64)), nrow=5)
    img = ax.get_images()[0].get_array()
    assert img.shape == (2 * 9 - 1, 5 * 9 - 1)
    with pytest.raises(ValueError, match="64"):
        plots.image_grid(np.zeros((3, 10)))
