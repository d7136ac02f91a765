"""§14.1 extras: Pearson's method of moments, the χ² test, the EM path and its widget."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from scipy.stats import norm

from companion_lib import data, metrics, mixture, moments, widgets

CRABS = data.load_pearson_crabs()


def test_normal_raw_moments_match_scipy():
    m = moments.normal_raw_moments(0.7, 1.3, 6)
    for k in range(7):
        assert m[k] == pytest.approx(norm(0.7, 1.3).moment(k), rel=1e-12)


def test_method_of_moments_recovers_a_known_mixture():
    rng = np.random.default_rng(0)
    n = 400_000
    h = rng.random(n) < 0.35
    x = np.where(h, rng.normal(-1.0, 0.6, n), rng.normal(1.2, 0.9, n))
    best = moments.method_of_moments(x, n_starts=60, seed=0)[0]
    assert best.weight == pytest.approx(0.35, abs=0.02)
    np.testing.assert_allclose(best.means, [-1.0, 1.2], atol=0.05)
    np.testing.assert_allclose(best.sds, [0.6, 0.9], atol=0.05)


def test_method_of_moments_roots_match_five_moments_on_crabs():
    x = CRABS.data[:, 0]
    fits = moments.method_of_moments(x, n_starts=60, seed=0)
    assert len(fits) >= 1
    for f in fits:
        raw = moments.mixture_raw_moments(f.weight, f.means, f.sds, 5)[1:]
        np.testing.assert_allclose(raw, [np.mean(x ** k) for k in range(1, 6)], rtol=1e-8)
        assert f.means[0] < f.means[1] and (f.sds > 0).all()
    errors = [abs(f.sixth_moment_error) for f in fits]
    assert errors == sorted(errors)
    with pytest.raises(ValueError, match="1-D"):
        moments.method_of_moments(CRABS.data)


def test_chi_square_rejects_wrong_model_and_accepts_right_one():
    rng = np.random.default_rng(1)
    edges = np.concatenate([[-np.inf], np.linspace(-3, 3, 25), [np.inf]])
    counts, _ = np.histogram(rng.normal(size=2000), bins=edges)
    right = metrics.chi_square_gof(counts, np.diff(norm.cdf(edges)), n_params=0)
    wrong = metrics.chi_square_gof(counts, np.diff(norm.cdf(edges, 0.3, 1.0)), n_params=0)
    assert right["p_value"] > 0.01 and wrong["p_value"] < 1e-6
    with pytest.raises(ValueError, match="sum to 1"):
        metrics.chi_square_gof(counts, np.full(len(counts), 0.01), n_params=0)


def test_cdf_1d_against_scipy():
    x = np.array([-np.inf, -1.0, 0.0, 2.0, np.inf])
    got = mixture.cdf_1d(x, [0.3, 0.7], [[0.0], [1.0]], [[[1.0]], [[4.0]]])
    want = 0.3 * norm.cdf(x) + 0.7 * norm.cdf(x, 1.0, 2.0)
    np.testing.assert_allclose(got, want)
    with pytest.raises(ValueError, match="K values"):
        mixture.cdf_1d(x, [0.3, 0.7], [0.0], [1.0, 1.0])


def test_em_path_starts_where_told_and_never_decreases():
    path = mixture.em_path(CRABS.data, [0.5, 0.5], [[0.60], [0.62]], [4e-4, 4e-4], n_iter=30,
                           covariance_type="spherical")
    assert len(path) == 31
    assert torch.allclose(path[0]["means"], torch.tensor([[0.60], [0.62]], dtype=torch.float64))
    ll = [p["log_likelihood"] for p in path]
    assert all(b >= a - 1e-12 for a, b in zip(ll, ll[1:])) and ll[-1] > ll[0] + 0.01
    with pytest.raises(ValueError, match="means must have shape"):
        mixture.em_path(CRABS.data, [0.5, 0.5], [[0.6, 0.1], [0.62, 0.1]], [1e-4, 1e-4], 3)


def test_em_stepper_redraws_for_each_iteration():
    path = mixture.em_path(CRABS.data, [0.5, 0.5], [[0.60], [0.62]], [4e-4, 4e-4], n_iter=10,
                           covariance_type="spherical")
    box, draw = widgets.em_stepper(CRABS.data, CRABS.bin_edges, CRABS.count, path)
    slider = box.children[0]
    assert slider.max == 10
    first, last = draw(0), draw(10)
    y0 = first.axes[0].lines[-1].get_ydata()
    y1 = last.axes[0].lines[-1].get_ydata()
    assert not np.allclose(y0, y1)
    assert "iteration 10" in last.axes[0].get_title()
    slider.value = 5  # the observer redraws without error
    plt.close("all")
