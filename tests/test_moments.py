"""moments: the Gaussian and two-component mixture raw moments, Pearson's method of moments (§14.1)."""
import numpy as np
import pytest
from scipy.stats import norm

from companion_lib import data, moments

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
