"""§14.4 (companion_lib.elbo): Lemma 14.4.1 checked against exact oracles.

Oracles: logsumexp / Categorical for the discrete model, torch.distributions (MultivariateNormal,
kl_divergence) for the linear-Gaussian one, Monte Carlo within its standard error, and EM's
monotonicity on Pearson's crabs.
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch.distributions import Categorical, MultivariateNormal, kl_divergence  # noqa: E402

from companion_lib import elbo, mixture, widgets  # noqa: E402
from companion_lib.data import load_pearson_crabs  # noqa: E402

F64 = torch.float64


@pytest.fixture(scope="module")
def crabs_fit():
    X = load_pearson_crabs().data
    gm = mixture.GaussianMixture(2, reg_covar=0, random_state=0, tol=1e-8, max_iter=3000).fit(X)
    return X, gm


@pytest.fixture(scope="module")
def lin():
    g = torch.Generator().manual_seed(7)
    model = elbo.LinearGaussian(torch.randn(3, 2, generator=g, dtype=F64),
                                torch.randn(3, generator=g, dtype=F64), 0.4)
    x, _ = model.sample(6, g)
    return model, x, g


def _random_simplex(n, K, g):
    return torch.distributions.Dirichlet(torch.ones(K, dtype=F64)).sample((n,))


# ---------------------------------------------------------------- discrete h
def test_discrete_identity_and_bound(crabs_fit):
    X, gm = crabs_fit
    lj = elbo.mixture_log_joint(X, gm.weights_, gm.means_, gm.covariances_)
    torch.manual_seed(0)
    q = _random_simplex(len(X), 2, None)
    log_px = elbo.log_evidence(lj)
    e = elbo.discrete_elbo(lj, q)
    gap = elbo.elbo_gap(lj, q)
    assert torch.allclose(log_px, torch.as_tensor(gm.score_samples(X)), atol=1e-12)
    assert (log_px - e - gap).abs().max() <= 1e-12                          # eq. 14.4 + 14.5
    assert (gap >= -1e-15).all() and (e <= log_px + 1e-12).all()
    post = elbo.posterior(lj)
    assert torch.allclose(post, torch.as_tensor(gm.predict_proba(X)), atol=1e-12)
    assert (elbo.elbo_gap(lj, post)).abs().max() <= 1e-12                    # equality at p(h|x)
    assert (elbo.discrete_elbo(lj, post) - log_px).abs().max() <= 1e-12


def test_discrete_against_categorical():
    g = torch.Generator().manual_seed(1)
    lj = torch.randn(5, 4, generator=g, dtype=F64) * 3
    q = torch.softmax(torch.randn(5, 4, generator=g, dtype=F64), 1)
    assert torch.allclose(elbo.categorical_entropy(q), Categorical(probs=q).entropy(), atol=1e-12)
    kl = kl_divergence(Categorical(probs=q), Categorical(logits=lj))
    assert torch.allclose(elbo.elbo_gap(lj, q), kl, atol=1e-12)


def test_zero_entries_follow_0log0():
    lj = torch.tensor([[-1.0, -2.0, -3.0]], dtype=F64)
    q = torch.tensor([[1.0, 0.0, 0.0]], dtype=F64)
    expected = torch.logsumexp(lj, 1) - lj[:, 0]                            # = -log p(h=0|x)
    assert torch.allclose(elbo.elbo_gap(lj, q), expected, atol=1e-14)
    assert torch.isfinite(elbo.discrete_elbo(lj, q)).all()


@pytest.mark.parametrize("call, match", [
    (lambda: elbo.discrete_elbo(np.zeros((3, 2)), np.full((3, 2), 0.6)), "sum to 1"),
    (lambda: elbo.discrete_elbo(np.zeros((3, 2)), np.array([[1.5, -0.5]] * 3)), "non-negative"),
    (lambda: elbo.discrete_elbo(np.zeros((3, 2)), np.full((3, 3), 1 / 3)), r"shape \(\*, 2\)"),
    (lambda: elbo.elbo_gap(np.zeros(3), np.full((3, 1), 1.0)), "2-D"),
    (lambda: elbo.elbo_gap(np.zeros((2, 2)), np.full((3, 2), 0.5)), "shape"),
    (lambda: elbo.gaussian_entropy(np.ones(3)), r"\(d, d\)"),
    (lambda: elbo.gaussian_entropy([[1.0, 2.0], [2.0, 1.0]]), "positive definite"),
    (lambda: elbo.gaussian_entropy([[1.0, 0.5], [0.0, 1.0]]), "symmetric"),
    (lambda: elbo.LinearGaussian(np.ones((3, 2)), np.zeros(2), 1.0), r"shape \(3\)"),
    (lambda: elbo.LinearGaussian(np.ones((3, 2)), np.zeros(3), 0.0), "sigma2"),
    (lambda: elbo.em_elbo_trace(np.ones((5, 1)), [0.5, 0.5], [[0.0], [1.0]], [[[1.0]], [[1.0]]], 0), "n_iter"),
])
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- Gaussians
def test_gaussian_entropy_and_kl_against_torch():
    g = torch.Generator().manual_seed(2)
    A = torch.randn(4, 3, 3, generator=g, dtype=F64)
    S1 = A @ A.transpose(-1, -2) + 0.2 * torch.eye(3, dtype=F64)
    B = torch.randn(3, 3, generator=g, dtype=F64)
    S2 = B @ B.T + 0.3 * torch.eye(3, dtype=F64)
    m1, m2 = torch.randn(4, 3, generator=g, dtype=F64), torch.randn(3, generator=g, dtype=F64)
    assert torch.allclose(elbo.gaussian_entropy(S1), MultivariateNormal(m1, S1).entropy(), atol=1e-12)
    lv = torch.randn(4, 3, generator=g, dtype=F64)
    assert torch.allclose(elbo.gaussian_entropy_diag(lv), elbo.gaussian_entropy(torch.diag_embed(lv.exp())),
                          atol=1e-12)
    want = kl_divergence(MultivariateNormal(m1, S1), MultivariateNormal(m2, S2))
    assert torch.allclose(elbo.gaussian_kl(m1, S1, m2, S2), want, atol=1e-10)
    assert elbo.gaussian_kl(m2, S2, m2, S2).abs() < 1e-12


def test_linear_gaussian_marginal_and_posterior(lin):
    model, x, g = lin
    mean, cov = model.marginal()
    assert torch.allclose(model.log_px(x), MultivariateNormal(mean, cov).log_prob(x), atol=1e-12)
    pm, pc = model.posterior(x)
    h = torch.randn(5, 6, 2, generator=g, dtype=F64)
    # Bayes' rule: log p(h|x) = log p(x, h) − log p(x), for any h
    assert torch.allclose(model.log_joint(x, h) - model.log_px(x), MultivariateNormal(pm, pc).log_prob(h),
                          atol=1e-10)


@pytest.mark.parametrize("diagonal", [True, False])
def test_linear_gaussian_elbo_identity(lin, diagonal):
    model, x, g = lin
    m = torch.randn(6, 2, generator=g, dtype=F64)
    if diagonal:
        S = torch.diag_embed(torch.exp(torch.randn(6, 2, generator=g, dtype=F64)))
    else:
        A = torch.randn(2, 2, generator=g, dtype=F64)
        S = A @ A.T + 0.1 * torch.eye(2, dtype=F64)
    pm, pc = model.posterior(x)
    gap = model.log_px(x) - model.elbo(x, m, S)
    assert (gap - elbo.gaussian_kl(m, S, pm, pc)).abs().max() < 1e-10           # eq. 14.5
    assert (gap > 0).all()
    assert (model.elbo(x, pm, pc) - model.log_px(x)).abs().max() < 1e-12       # equality at p(h|x)


def test_linear_gaussian_monte_carlo_within_standard_error(lin):
    model, x, _ = lin
    g = torch.Generator().manual_seed(3)
    m = torch.zeros(6, 2, dtype=F64)
    S = torch.tensor([[0.5, 0.1], [0.1, 0.3]], dtype=F64)
    est, se = model.elbo_mc(x, m, S, 4000, g)
    z = (est - model.elbo(x, m, S)) / se
    assert z.abs().max() < 4.5, z
    pm, pc = model.posterior(x)
    est, se = model.elbo_mc(x, pm, pc, 50, g)                                 # zero-variance at the posterior
    assert torch.allclose(est, model.log_px(x), atol=1e-10) and se.max() < 1e-10


def test_elbo_gradient_vanishes_at_the_posterior(lin):
    """Autograd oracle: the closed-form ELBO is maximised (zero gradient in m and S) at p(h|x)."""
    model, x, _ = lin
    pm, pc = model.posterior(x[:1])
    m = pm.clone().requires_grad_(True)
    L = torch.linalg.cholesky(pc).clone().requires_grad_(True)
    value = model.elbo(x[:1], m, L @ L.T)
    gm, gL = torch.autograd.grad(value.sum(), (m, L))
    assert gm.abs().max() < 1e-10 and gL.abs().max() < 1e-10


# ---------------------------------------------------------------- EM as coordinate ascent
def test_em_trace_is_a_monotone_staircase(crabs_fit):
    X, gm = crabs_fit
    tr = elbo.em_elbo_trace(X, [0.5, 0.5], [[0.62], [0.67]], [[[1e-4]], [[1e-4]]], 15)
    ll, e, gap = tr["log_lik"], tr["elbo"], tr["gap"]
    assert tr["stage"][:3] == ["start", "E", "M"] and len(ll) == 31
    assert (torch.diff(ll) >= -1e-13).all()                                  # EM never decreases log-lik
    assert (torch.diff(e) >= -1e-13).all()                                   # each half-step raises the ELBO
    assert (ll - e - gap).abs().max() < 1e-12
    assert gap[1::2].abs().max() < 1e-12                                     # after an E-step: ELBO = log-lik
    assert (gap[2::2] > 0).all()                                             # after an M-step: a gap opens
    assert ll[-1] <= gm.score(X) + 1e-9
    # the same parameters as mixture.m_step after one full iteration
    _, log_resp = mixture.e_step(torch.as_tensor(X), torch.tensor([0.5, 0.5], dtype=F64),
                                 torch.tensor([[0.62], [0.67]], dtype=F64),
                                 torch.tensor([[[1e-4]], [[1e-4]]], dtype=F64))
    w1, _, _ = mixture.m_step(torch.as_tensor(X), log_resp.exp())
    tr1 = elbo.em_elbo_trace(X, [0.5, 0.5], [[0.62], [0.67]], [[[1e-4]], [[1e-4]]], 1)
    assert torch.allclose(tr1["params"][0], w1)


# ---------------------------------------------------------------- the widget and figures
def test_widget_draw_changes_with_the_slider(crabs_fit, monkeypatch):
    from companion_lib.viz import ch14 as plots   # the widget draws with viz.ch14's elbo_bars

    titles = []
    real_bars = plots.elbo_bars

    def spy(log_px, elbo_value, ax=None, title=None):
        titles.append(title)
        return real_bars(log_px, elbo_value, ax=ax, title=title)

    monkeypatch.setattr(plots, "elbo_bars", spy)
    X, gm = crabs_fit
    lj = elbo.mixture_log_joint(np.array([[0.6475]]), gm.weights_, gm.means_, gm.covariances_)
    box, draw = widgets.elbo_q_slider(lj, q_init=0.3)
    assert box.children[0].value == 0.3 and titles[-1].startswith("q(h=1|x) = 0.30")   # drawn at q_init
    heights = []
    for q1 in (0.1, 0.9):
        fig = draw(q1)
        bars = fig.axes[1].patches
        heights.append([b.get_height() for b in bars])
        plt.close(fig)
    (lp_a, e_a, gap_a), (lp_b, e_b, gap_b) = heights
    assert lp_a == pytest.approx(lp_b)                                       # log p(x) does not move with q
    assert e_a != pytest.approx(e_b) and gap_a != pytest.approx(gap_b)
    assert lp_a == pytest.approx(e_a + gap_a)
    box.children[0].value = 0.5                                              # the slider redraws at its value
    assert titles[-1].startswith("q(h=1|x) = 0.50")
    with pytest.raises(ValueError):
        draw(1.5)
    plt.close("all")
