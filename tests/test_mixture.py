"""companion_lib.mixture against scikit-learn (the oracle) and EM's own guarantees."""
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import norm
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SKGaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

from companion_lib import mixture, settings
from companion_lib.data import load_leptograpsus_crabs, load_pearson_crabs
from companion_lib.mixture import GaussianMixture

PEARSON = load_pearson_crabs().data
LEPTO = load_leptograpsus_crabs(log=True).data
COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


pytestmark = pytest.mark.usefixtures("one_blas_thread")   # k-means (OpenMP); torch: tests/conftest.py


def _sklearn_has_lower_bounds() -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return hasattr(SKGaussianMixture(1, max_iter=1).fit([[0.0], [1.0]]), "lower_bounds_")


# scikit-learn's lower_bounds_ (every EM iterate's bound) is newer than pyproject's lower bound 1.6
# (Colab ships 1.6.1): the tests that compare iterate by iterate with it skip there, with this reason.
needs_sklearn_lower_bounds = pytest.mark.skipif(
    not _sklearn_has_lower_bounds(),
    reason="compares with scikit-learn's GaussianMixture.lower_bounds_, which the installed scikit-learn lacks")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
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
    if covariance_type == "tied":                       # one matrix shared by all components
        order_o = order_r = slice(None)
    for name in ("covariances_", "precisions_", "precisions_cholesky_"):
        a, b = getattr(ours, name)[order_o], getattr(ref, name)[order_r]
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-8 * np.abs(b).max(), err_msg=name)


@needs_sklearn_lower_bounds
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_same_iterates_as_sklearn_to_round_off(covariance_type):
    """Same k-means start, same EM: every fitted array and the samples agree to ~1e-12."""
    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(100, 3), rng.randn(80, 3) * 0.5 + 3])
    kw = dict(n_components=2, covariance_type=covariance_type, random_state=3, tol=1e-8)
    ours, ref = GaussianMixture(**kw).fit(X), SKGaussianMixture(**kw).fit(X)
    assert ours.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(ours.lower_bounds_, ref.lower_bounds_, rtol=0, atol=1e-12)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), rtol=1e-10, atol=1e-12,
                                   err_msg=name)
    assert ours._n_parameters() == ref._n_parameters()
    xo, ho = ours.sample(50)           # no generator: NumPy draws from random_state, as scikit-learn
    xr, hr = ref.sample(50)
    np.testing.assert_array_equal(ho, hr)
    np.testing.assert_allclose(xo, xr, rtol=0, atol=1e-9)


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


@pytest.mark.parametrize("reg_covar,weights,means,sds,loglik", [
    (0.0, [0.4322, 0.5678], [0.63372, 0.65657], [0.01831, 0.01262], 2567.58),      # maximum likelihood
    (1e-6, [0.4132, 0.5868], [0.63314, 0.65624], [0.01829, 0.01285], 2567.55),     # scikit-learn's ridge
])
def test_pearson_reference_fit(reg_covar, weights, means, sds, loglik):
    """PROVENANCE.md's reference fits (MixtureInf reading, EM to tol=1e-10): the maximum-likelihood
    fit (reg_covar=0) and scikit-learn's default ridge, whose fixed point lies 0.03 nats lower."""
    gm = GaussianMixture(2, reg_covar=reg_covar, random_state=0, tol=1e-10, max_iter=5000).fit(PEARSON)
    assert gm.converged_                                                    # EM crawls here
    order = np.argsort(gm.means_[:, 0])
    np.testing.assert_allclose(gm.weights_[order], weights, atol=2e-4)
    np.testing.assert_allclose(gm.means_[order, 0], means, atol=2e-5)
    np.testing.assert_allclose(np.sqrt(gm.covariances_[order, 0, 0]), sds, atol=2e-5)
    assert gm.score(PEARSON) * len(PEARSON) == pytest.approx(loglik, abs=0.01)


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
    (dict(covariance_type="tide"), "covariance_type"),
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
    b = GaussianMixture(4, random_state=0).fit(LEPTO)
    a = GaussianMixture(4, random_state=0, device="cuda", dtype="float64").fit(LEPTO)
    assert abs(a.score(LEPTO) - b.score(LEPTO)) < 1e-8
    a32 = GaussianMixture(4, random_state=0, device="cuda").fit(LEPTO)   # the rule: float32 there
    assert a32.weights_.dtype == np.float32 and a32._means.device.type == "cuda"
    assert abs(a32.score(LEPTO) - b.score(LEPTO)) < 1e-3


# ---------------------------------------------------------------- the drop-in: what scikit-learn's API adds
RNG = np.random.RandomState(7)
BLOBS = np.vstack([RNG.randn(60, 2) + [4, 0], RNG.randn(40, 2) * 0.5])


@pytest.mark.parametrize("weights,match", [
    (np.ones((2, 1)) / 2, r"'weights' should have the shape of \(2,\), but got \(2, 1\)"),
    ([1.2, -0.2], r"in the range \[0, 1\], but got min value -0.20000, max value 1.20000"),
    ([0.3, 0.3], r"should be normalized, but got sum\(weights\) = 0.60000"),
])
def test_bad_weights_init_named_as_sklearn_does(weights, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(2, weights_init=weights).fit(BLOBS)


@pytest.mark.parametrize("covariance_type,bad,match", [
    ("full", np.ones((3, 2, 2)), r"'full precision' should have the shape of \(2, 2, 2\)"),
    ("full", np.stack([np.eye(2), -np.eye(2)]), "'full precision' should be symmetric, positive-definite"),
    ("full", np.stack([np.eye(2), [[1.0, 0.5], [0.0, 1.0]]]), "symmetric, positive-definite"),
    ("tied", np.ones((3, 3)), r"'tied precision' should have the shape of \(2, 2\)"),
    ("diag", np.array([[1.0, 1.0], [0.0, 1.0]]), "'diag precision' should be positive"),
    ("spherical", np.array([1.0, -1.0]), "'spherical precision' should be positive"),
])
def test_bad_precisions_init(covariance_type, bad, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(2, covariance_type=covariance_type, precisions_init=bad).fit(BLOBS)


@pytest.mark.filterwarnings("ignore:Number of distinct clusters")
def test_bad_means_init_and_collapsed_component_messages():
    with pytest.raises(ValueError, match=r"'means' should have the shape of \(2, 2\), but got \(2, 3\)"):
        GaussianMixture(2, means_init=np.zeros((2, 3))).fit(BLOBS)
    X = np.vstack([np.ones((5, 3)), np.zeros((5, 3))])
    with pytest.raises(ValueError, match="ill-defined empirical covariance.*increase reg_covar"):
        GaussianMixture(10, reg_covar=0, random_state=0).fit(X)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_all_three_inits_skip_the_initial_m_step(covariance_type, monkeypatch):
    """What scikit-learn's mocked test guards: with weights, means and precisions all given, no
    responsibilities are drawn and the M-step runs once per EM iteration, never for the start."""
    ref = SKGaussianMixture(2, covariance_type=covariance_type, random_state=0, tol=1e-10).fit(BLOBS)
    calls = []
    m_step = mixture._maximise  # the fitting loop's M-step (m_step on checked input)
    monkeypatch.setattr(mixture, "_maximise", lambda *a, **k: calls.append(1) or m_step(*a, **k))
    monkeypatch.setattr(GaussianMixture, "_initial_resp", lambda *a: pytest.fail("drew a start"))
    gm = GaussianMixture(2, covariance_type=covariance_type, weights_init=ref.weights_,
                         means_init=ref.means_, precisions_init=ref.precisions_, tol=1e-10).fit(BLOBS)
    assert len(calls) == gm.n_iter_ >= 1
    np.testing.assert_allclose(gm.means_, ref.means_, atol=1e-6)       # it starts at the optimum


@needs_sklearn_lower_bounds
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_precisions_init_as_sklearn(covariance_type):
    rng = np.random.RandomState(1)
    P = {"full": np.stack([np.eye(2) * 2, [[1.0, 0.3], [0.3, 0.5]]]), "tied": np.array([[1.0, 0.2], [0.2, 2.0]]),
         "diag": rng.uniform(0.5, 2, (2, 2)), "spherical": np.array([0.7, 3.0])}[covariance_type]
    kw = dict(n_components=2, covariance_type=covariance_type, precisions_init=P, random_state=0,
              max_iter=5, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours, ref = GaussianMixture(**kw).fit(BLOBS), SKGaussianMixture(**kw).fit(BLOBS)
    np.testing.assert_allclose(ours.precisions_cholesky_, ref.precisions_cholesky_, rtol=1e-9)
    np.testing.assert_allclose(ours.lower_bounds_, ref.lower_bounds_, rtol=1e-11)
    start = GaussianMixture(**{**kw, "max_iter": 0}).fit(BLOBS)       # max_iter=0: the start itself
    np.testing.assert_allclose(start.precisions_, P, rtol=1e-12)
    inv = np.linalg.inv(P) if covariance_type in ("full", "tied") else 1 / P
    np.testing.assert_allclose(start.covariances_, inv, rtol=1e-12)


def test_warm_start_continues_em():
    cold = GaussianMixture(2, max_iter=6, tol=0, reg_covar=0, random_state=0)
    warm = GaussianMixture(2, max_iter=2, tol=0, reg_covar=0, random_state=0, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cold.fit(BLOBS)
        bounds = sum((warm.fit(BLOBS).lower_bounds_ for _ in range(3)), [])
    np.testing.assert_allclose(bounds, cold.lower_bounds_, rtol=1e-13)
    np.testing.assert_allclose(warm.precisions_, cold.precisions_, rtol=1e-12)
    assert np.all(np.diff(bounds) > 0)


def test_verbose_prints_progress(capsys):
    GaussianMixture(2, verbose=2, verbose_interval=1, random_state=0, tol=1e-6).fit(BLOBS)
    out = capsys.readouterr().out
    assert out.startswith("Initialization 0\n  Iteration 1\t time lapse")
    assert "ll change" in out and "Initialization converged." in out
    GaussianMixture(2, random_state=0).fit(BLOBS)
    assert capsys.readouterr().out == ""


def test_parameters_set_by_hand_predict_as_sklearn():
    ref = SKGaussianMixture(3, covariance_type="tied", random_state=0).fit(LEPTO)
    gm = GaussianMixture(3, covariance_type="tied")
    gm._set_parameters((ref.weights_, ref.means_, ref.covariances_, ref.precisions_cholesky_))
    np.testing.assert_allclose(gm.score_samples(LEPTO), ref.score_samples(LEPTO), rtol=1e-12)
    np.testing.assert_array_equal(gm.predict(LEPTO), ref.predict(LEPTO))
    np.testing.assert_allclose(gm.precisions_, ref.precisions_, rtol=1e-12)
    assert gm._n_parameters() == ref._n_parameters() == 3 * 5 + 5 * 6 // 2 + 2


def test_dtype_rule():
    gm = GaussianMixture(2, random_state=0).fit(torch.as_tensor(PEARSON, dtype=torch.float32))
    assert gm.weights_.dtype == np.float64                      # the CPU default: float64, exact
    with pytest.raises(ValueError, match="MPS has no float64"):
        GaussianMixture(2, device="mps", dtype="float64").fit(PEARSON)
    with pytest.raises(ValueError, match="dtype"):
        GaussianMixture(2, dtype="float16").fit(PEARSON)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_runs_under_the_no_float64_stand_in(covariance_type):
    """Its float64 work is inside settings.cpu_float64(): fine on a Mac, where MPS has no float64."""
    X32 = torch.as_tensor(LEPTO, dtype=torch.float32)
    ref = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(LEPTO)
    with settings.no_float64():
        gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X32)
        score = gm.score(X32)
        proba, labels = gm.predict_proba(X32), gm.predict(LEPTO)
        x, _ = gm.sample(5, generator=torch.Generator().manual_seed(0))
        p = gm.precisions_
        gm.means_ = gm.means_ + 0.0                  # set by hand, as with scikit-learn's arrays
        gm.weights_.sum()
        path = mixture.em_path(PEARSON, [0.5, 0.5], [[0.6], [0.62]], [4e-4, 4e-4], 2, "spherical")
    assert score == pytest.approx(ref.score(LEPTO), abs=1e-5)
    assert proba.shape == (len(LEPTO), 3) and labels.shape == (len(LEPTO),) and x.shape == (5, 5)
    assert p.shape == ref.precisions_.shape and len(path) == 3


@pytest.mark.parametrize("call", [
    lambda w: mixture.responsibilities(torch.tensor([0.6, 0.7]), w, torch.tensor([0.6, 0.7]),
                                       torch.tensor([1e-3, 1e-3])),
    lambda w: mixture.em_path(PEARSON, w, [[0.6], [0.62]], [4e-4, 4e-4], 2, "spherical"),
    lambda w: mixture.cdf_1d(np.array([0.6]), w, [0.6, 0.62], [4e-4, 4e-4]),
], ids=["responsibilities", "em_path", "cdf_1d"])
@pytest.mark.parametrize("w,match", [([-0.5, 1.5], "weights must be .*got min -0.5"),
                                     ([0.5, 0.7], "weights must .*sum to 1.*renormalised.*got sum 1.2"),
                                     ([2.0, 3.0], "weights must .*sum to 1.*got sum 5")])
def test_mixture_weights_must_be_probabilities(call, w, match):
    with pytest.raises(ValueError, match=match):
        call(torch.tensor(w))


def test_em_path_checks_the_covariance_shape():
    with pytest.raises(ValueError, match=r"covariances must have shape \(2, 1, 1\) for covariance_type='full'"):
        mixture.em_path(PEARSON, [0.5, 0.5], [[0.6], [0.62]], [4e-4, 4e-4], 2)


def test_cdf_1d_against_scipy():
    x = np.array([-np.inf, -1.0, 0.0, 2.0, np.inf])
    got = mixture.cdf_1d(x, [0.3, 0.7], [[0.0], [1.0]], [[[1.0]], [[4.0]]])
    want = 0.3 * norm.cdf(x) + 0.7 * norm.cdf(x, 1.0, 2.0)
    np.testing.assert_allclose(got, want)
    with pytest.raises(ValueError, match="K values"):
        mixture.cdf_1d(x, [0.3, 0.7], [0.0], [1.0, 1.0])


def test_em_path_starts_where_told_and_never_decreases():
    path = mixture.em_path(PEARSON, [0.5, 0.5], [[0.60], [0.62]], [4e-4, 4e-4], n_iter=30,
                           covariance_type="spherical")
    assert len(path) == 31
    assert torch.allclose(path[0]["means"], torch.tensor([[0.60], [0.62]], dtype=torch.float64))
    ll = [p["log_likelihood"] for p in path]
    assert all(b >= a - 1e-12 for a, b in zip(ll, ll[1:])) and ll[-1] > ll[0] + 0.01
    with pytest.raises(ValueError, match="means must have shape"):
        mixture.em_path(PEARSON, [0.5, 0.5], [[0.6, 0.1], [0.62, 0.1]], [1e-4, 1e-4], 3)


def test_sample_needs_a_positive_integer():
    gm = GaussianMixture(2, random_state=0).fit(BLOBS)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="Invalid value for 'n_samples'"):
            gm.sample(bad)


def test_sklearn_test_file_is_a_verbatim_copy():
    """tests/sklearn_gmm holds scikit-learn's test file with one import swapped: check the copy
    against the installed scikit-learn when it is the version copied and ships its tests."""
    import pathlib

    import sklearn

    installed = pathlib.Path(sklearn.__file__).parent / "mixture/tests/test_gaussian_mixture.py"
    if sklearn.__version__ != "1.9.1" or not installed.exists():
        pytest.skip("the copy is of scikit-learn 1.9.1's file")
    copy = (pathlib.Path(__file__).parent / "sklearn_gmm/test_sklearn_gaussian_mixture.py").read_text()
    lines = [ln for ln in copy.splitlines() if not ln.startswith("# ") and ln != "#"]
    upstream = [ln for ln in installed.read_text().splitlines() if not ln.startswith("# ")]
    changed = [(a, b) for a, b in zip(upstream, lines) if a != b]
    assert len(lines) == len(upstream)
    assert changed == [("from sklearn.mixture import GaussianMixture",
                        "from companion_lib.mixture import GaussianMixture  # companion: was sklearn.mixture")]



# ---------------------------------------------------------------- the fast arrangements, and the peer bench (issue 21)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_gaussian_keeps_its_digits_far_from_the_origin(covariance_type):
    """The quadratic forms expanded for speed (tied, diag, spherical) are taken about the means' average:
    data 10⁶ from the origin keep their digits (expanded about 0 they would be off by ~1e-3)."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(50, 3, generator=g, dtype=torch.float64) + 1e6
    means = torch.randn(2, 3, generator=g, dtype=torch.float64) + 1e6
    A = torch.randn(3, 3, generator=g, dtype=torch.float64)
    var = torch.rand(2, 3, generator=g, dtype=torch.float64) + 0.5
    S = torch.stack([A @ A.T, A.T @ A]) + 0.5 * torch.eye(3, dtype=torch.float64)
    cov, full = {"full": (S, S), "tied": (S[0], S[0]),
                 "diag": (var, torch.diag_embed(var)),
                 "spherical": (var[:, 0], var[:, 0, None, None] * torch.eye(3, dtype=torch.float64))}[covariance_type]
    ref = torch.distributions.MultivariateNormal(means, full).log_prob(X[:, None, :])
    torch.testing.assert_close(mixture.log_gaussian(X, means, cov, covariance_type), ref, rtol=0, atol=1e-8)


def test_m_step_covariance_types_are_one_estimate():
    """tied is the pooled Σ_k N_k Σ_k / Σ_k N_k of the full estimates, diag their diagonals, spherical the
    diagonals' mean, for any weights r_ik ≥ 0 (rows need not sum to 1: the two-product tied form must not
    assume they do), and data away from the origin."""
    g = torch.Generator().manual_seed(1)
    X = torch.randn(40, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5]) + 50
    resp = torch.rand(40, 3, generator=g, dtype=torch.float64)
    _, means, full = mixture.m_step(X, resp, "full")
    nk = resp.sum(0)
    by_hand = torch.stack([((X - m).T * r) @ (X - m) for m, r in zip(means, resp.T)]) / nk[:, None, None]
    torch.testing.assert_close(full, by_hand)
    torch.testing.assert_close(mixture.m_step(X, resp, "tied")[2], (nk[:, None, None] * full).sum(0) / nk.sum())
    diag = torch.diagonal(full, dim1=-2, dim2=-1)
    torch.testing.assert_close(mixture.m_step(X, resp, "diag")[2], diag)
    torch.testing.assert_close(mixture.m_step(X, resp, "spherical")[2], diag.mean(1))


@needs_sklearn_lower_bounds
def test_peer_comparisons_agree_with_sklearn_and_catch_a_difference():
    """``peers.gmm`` at a tiny size: each row's two fits have the same history; a history off by 1e-8
    in one iterate, or one iteration short, is not called identical."""
    from companion_lib.peers import gmm

    comps = gmm.comparisons(n=300, d=3, k=2, n_iter=4)
    assert [c.name for c in comps] == ["EM, full covariance", "EM, diag covariance", "EM, tied covariance",
                                       "EM, spherical covariance", "EM, Pearson's crabs", "EM, Leptograpsus crabs"]
    for c in comps:
        ours, theirs = c.ours(), c.theirs()
        same, text = c.agree(ours, theirs)
        assert same and "max |Δ lower bound|" in text, (c.name, text)
    assert ours.lower_bounds_ == pytest.approx(theirs.lower_bounds_, abs=1e-12)
    ours.lower_bounds_[1] += 1e-8
    assert not c.agree(ours, theirs)[0]
    ours.lower_bounds_.pop()
    same, text = c.agree(ours, theirs)
    assert not same and "iterations against" in text


def test_peer_float32_agreement_is_relative_to_float64():
    """The GPU rows' rule (ours in float32): the final mean log-likelihood within FLOAT32_RTOL of
    scikit-learn's; a float32 fit on the CPU passes it, one with its last bound off by 1e-3 does not."""
    from companion_lib.peers import gmm

    kw = dict(n_components=2, random_state=0, max_iter=20, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = GaussianMixture(dtype="float32", **kw).fit(LEPTO)
        theirs = SKGaussianMixture(**kw).fit(LEPTO)
    agree = gmm._agree(float64=False)
    same, text = agree(ours, theirs)
    assert same and "relative difference" in text, text
    ours.lower_bounds_[-1] += 1e-3 * abs(ours.lower_bounds_[-1])
    assert not agree(ours, theirs)[0]


def test_peer_agreement_on_a_scikit_learn_without_lower_bounds():
    """scikit-learn < 1.7 (pyproject's lower bound is 1.6) keeps only ``lower_bound_`` and ``n_iter_``: the
    peers then compare the last bound and the iteration count, and still catch a difference in either."""
    from types import SimpleNamespace

    from companion_lib.peers import gmm

    kw = dict(n_components=2, random_state=0, max_iter=5, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = GaussianMixture(**kw).fit(LEPTO)
    old = SimpleNamespace(lower_bound_=ours.lower_bounds_[-1], n_iter_=ours.n_iter_)
    same, text = gmm._agree(float64=True)(ours, old)
    assert same and "at the last of 5 iterations" in text, text
    assert not gmm._agree(float64=True)(ours, SimpleNamespace(lower_bound_=old.lower_bound_ + 1e-8, n_iter_=5))[0]
    same, text = gmm._agree(float64=True)(ours, SimpleNamespace(lower_bound_=old.lower_bound_, n_iter_=4))
    assert not same and "5 iterations against scikit-learn's 4" in text


@pytest.mark.parametrize("kw,err,match", [
    (dict(covariance_types="full"), TypeError, "sequence of names"),
    (dict(covariance_types=("full", "ful")), ValueError, "covariance_types must be one of"),
    (dict(n=3, k=2), ValueError, "n must be at least 2k"),
    (dict(n_iter=0), ValueError, "n_iter must be >= 1"),
    (dict(device="tpu"), ValueError, "device must be one of"),
    (dict(crabs=1), TypeError, "crabs must be True or False"),
])
def test_peer_comparisons_bad_input(kw, err, match):
    from companion_lib.peers import gmm

    with pytest.raises(err, match=match):
        gmm.comparisons(**kw)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_peer_comparisons_on_cuda_without_cuda():
    from companion_lib.peers import gmm

    with pytest.raises(ValueError, match="no CUDA device"):
        gmm.comparisons("cuda")

@parametrize_with_checks([GaussianMixture(random_state=0)])
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
