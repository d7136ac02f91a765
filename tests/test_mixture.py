"""companion_lib.mixture against scikit-learn (the oracle) and EM's own guarantees."""
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SKGaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

from companion_lib import mixture
from companion_lib.data import load_leptograpsus_crabs, load_pearson_crabs
from companion_lib.mixture import GaussianMixture

PEARSON = load_pearson_crabs().data
LEPTO = load_leptograpsus_crabs(log=True).data


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
@pytest.mark.parametrize("X,k", [(PEARSON, 2), (LEPTO, 4)], ids=["pearson", "leptograpsus"])
def test_matches_sklearn_log_likelihood(covariance_type, X, k):
    kw = dict(n_components=k, covariance_type=covariance_type, tol=1e-9, max_iter=3000, random_state=0)
    ours = GaussianMixture(**kw).fit(X)
    ref = SKGaussianMixture(**kw).fit(X)
    assert abs(ours.score(X) - ref.score(X)) < 1e-6
    np.testing.assert_allclose(ours.score_samples(X), ref.score_samples(X), atol=1e-5)
    order_o, order_r = np.argsort(ours.means_[:, 0]), np.argsort(ref.means_[:, 0])
    np.testing.assert_allclose(ours.weights_[order_o], ref.weights_[order_r], atol=1e-5)
    np.testing.assert_allclose(ours.means_[order_o], ref.means_[order_r], atol=1e-5)
    assert ours.n_iter_ == pytest.approx(ref.n_iter_, abs=2)


def test_history_matches_sklearn_lower_bound():
    ours = GaussianMixture(2, tol=1e-8, max_iter=500, random_state=1).fit(PEARSON)
    ref = SKGaussianMixture(2, tol=1e-8, max_iter=500, random_state=1).fit(PEARSON)
    assert ours.lower_bound_ == pytest.approx(ref.lower_bound_, abs=1e-9)
    assert len(ours.log_likelihood_history_) == ours.n_iter_


@pytest.mark.parametrize("X,k", [(PEARSON, 2), (PEARSON, 3), (LEPTO, 4)])
def test_log_likelihood_never_decreases_without_regularisation(X, k):
    gm = GaussianMixture(k, reg_covar=0.0, tol=1e-7, max_iter=3000, random_state=0).fit(X)
    h = np.asarray(gm.log_likelihood_history_)
    assert len(h) > 5
    assert np.all(np.diff(h) >= -1e-12), np.diff(h).min()


def test_pearson_reference_fit():
    """PROVENANCE.md's reference fit (MixtureInf reading, scikit-learn defaults)."""
    gm = GaussianMixture(2, random_state=0, tol=1e-10, max_iter=5000).fit(PEARSON)  # EM crawls here
    order = np.argsort(gm.means_[:, 0])
    np.testing.assert_allclose(gm.weights_[order], [0.413, 0.587], atol=2e-3)
    np.testing.assert_allclose(gm.means_[order, 0], [0.6331, 0.6562], atol=2e-4)
    np.testing.assert_allclose(np.sqrt(gm.covariances_[order, 0, 0]), [0.0183, 0.0129], atol=2e-4)
    assert gm.score(PEARSON) * len(PEARSON) == pytest.approx(2567.5, abs=0.1)


def test_e_step_matches_bayes_rule_by_hand():
    x = torch.tensor([0.60, 0.64, 0.70], dtype=torch.float64)
    w, m, v = torch.tensor([0.4, 0.6]), torch.tensor([0.633, 0.656]), torch.tensor([0.0183, 0.0129]) ** 2
    r = mixture.responsibilities(x, w, m, v)
    dens = torch.distributions.Normal(m.double(), v.double().sqrt()).log_prob(x[:, None]).exp() * w.double()
    torch.testing.assert_close(r, dens / dens.sum(1, keepdim=True))
    assert torch.allclose(r.sum(1), torch.ones(3, dtype=torch.float64))
    # far-away points do not underflow to NaN (log space)
    far = mixture.responsibilities(torch.tensor([50.0]), w, m, v)
    assert torch.isfinite(far).all() and far.sum() == pytest.approx(1.0)


def test_log_gaussian_against_torch_distributions():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(20, 3, generator=g, dtype=torch.float64)
    means = torch.randn(2, 3, generator=g, dtype=torch.float64)
    A = torch.randn(2, 3, 3, generator=g, dtype=torch.float64)
    cov = A @ A.transpose(-1, -2) + 0.5 * torch.eye(3, dtype=torch.float64)
    ours = mixture.log_gaussian(X, means, cov, "full")
    ref = torch.distributions.MultivariateNormal(means, cov).log_prob(X[:, None, :])
    torch.testing.assert_close(ours, ref)
    var = torch.rand(2, 3, generator=g, dtype=torch.float64) + 0.1
    ref_diag = torch.distributions.Normal(means, var.sqrt()).log_prob(X[:, None, :]).sum(-1)
    torch.testing.assert_close(mixture.log_gaussian(X, means, var, "diag"), ref_diag)


def test_gaussian_mle_is_the_maximiser():
    X = torch.as_tensor(LEPTO)
    mean, cov = mixture.gaussian_mle(X)
    base = torch.distributions.MultivariateNormal(mean, cov).log_prob(X).sum()
    for eps in (1e-3, -1e-3):
        nudged = torch.distributions.MultivariateNormal(mean + eps, cov * (1 + eps)).log_prob(X).sum()
        assert nudged < base


def test_accepts_torch_and_numpy_and_predicts():
    gm = GaussianMixture(2, random_state=0).fit(torch.as_tensor(PEARSON))
    p = gm.predict_proba(PEARSON)
    assert p.shape == (1000, 2) and np.allclose(p.sum(1), 1)
    assert set(np.unique(gm.predict(PEARSON))) == {0, 1}
    assert np.isfinite(gm.bic(PEARSON)) and np.isfinite(gm.aic(PEARSON))


def test_sample_is_seeded_and_follows_weights():
    gm = GaussianMixture(2, random_state=0).fit(PEARSON)
    X1, h1 = gm.sample(4000, generator=torch.Generator().manual_seed(3))
    X2, h2 = gm.sample(4000, generator=torch.Generator().manual_seed(3))
    assert X1.shape == (4000, 1) and h1.shape == (4000,)
    np.testing.assert_array_equal(X1, X2)
    assert np.bincount(h1, minlength=2) / 4000 == pytest.approx(gm.weights_, abs=0.03)
    assert X1.mean() == pytest.approx(float(gm.weights_ @ gm.means_[:, 0]), abs=2e-3)


def test_bic_prefers_two_components_on_pearson():
    bics = [GaussianMixture(k, random_state=0, n_init=3).fit(PEARSON).bic(PEARSON) for k in (1, 2, 3)]
    assert np.argmin(bics) == 1, bics


@pytest.mark.parametrize("bad,match", [
    (np.zeros(5), "2-D"),
    (np.array([[1.0], [np.nan], [2.0]]), "finite"),
    (np.ones((1, 2)), "at least 2 samples"),
    (np.random.default_rng(0).normal(size=(3, 2)), "n_components"),
])
def test_bad_input_raises_clear_value_error(bad, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(4).fit(bad)


@pytest.mark.parametrize("params,match", [
    (dict(n_components=0), "n_components"),
    (dict(covariance_type="tied"), "covariance_type"),
    (dict(reg_covar=-1.0), "reg_covar"),
    (dict(means_init=np.zeros((3, 1))), "means_init"),
])
def test_bad_parameters_raise(params, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(**{"n_components": 2, **params}).fit(PEARSON)


def test_wrong_feature_count_at_predict():
    gm = GaussianMixture(2, random_state=0).fit(PEARSON)
    with pytest.raises(ValueError, match="features"):
        gm.predict(np.zeros((3, 2)))


def test_convergence_warning_says_what_to_change():
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        GaussianMixture(2, max_iter=2, tol=0, random_state=0).fit(PEARSON)


def test_float32_and_clone():
    gm = GaussianMixture(2, dtype="float32", random_state=0).fit(PEARSON)
    ref = clone(gm).set_params(dtype="float64").fit(PEARSON)
    assert abs(gm.score(PEARSON) - ref.score(PEARSON)) < 1e-3
    assert clone(gm).get_params()["n_components"] == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    a = GaussianMixture(4, random_state=0, device="cuda").fit(LEPTO)
    b = GaussianMixture(4, random_state=0).fit(LEPTO)
    assert abs(a.score(LEPTO) - b.score(LEPTO)) < 1e-8


@parametrize_with_checks([GaussianMixture(random_state=0)])
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
