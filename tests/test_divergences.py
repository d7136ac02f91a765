"""§14.2 divergences: closed forms against quadrature, torch.distributions, Monte Carlo and autograd."""
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from companion_lib import divergences as dv  # noqa: E402

F64 = dict(dtype=torch.float64)
GRID = torch.linspace(-15.0, 15.0, 6001, **F64)
P = dict(weights=[0.7, 0.3], means=[-1.0, 1.5], variances=[0.25, 1.0])


@pytest.mark.parametrize("mu1,var1,mu2,var2", [(0.0, 1.0, 0.0, 1.0), (0.3, 0.5, -1.0, 2.0), (2.0, 4.0, 0.5, 0.25)])
def test_kl_gaussians_matches_quadrature_and_torch(mu1, var1, mu2, var2):
    closed = dv.kl_gaussians(torch.tensor(mu1, **F64), torch.tensor(var1, **F64),
                             torch.tensor(mu2, **F64), torch.tensor(var2, **F64))
    quad = dv.kl_quadrature(dv.log_normal(GRID, mu1, var1), dv.log_normal(GRID, mu2, var2), GRID)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu1, math.sqrt(var1)),
                                            torch.distributions.Normal(mu2, math.sqrt(var2)))
    assert closed.ndim == 0
    assert abs(float(closed) - float(quad)) < 1e-7
    assert abs(float(closed) - float(ref)) < 1e-6


def test_kl_gaussians_diagonal_is_sum_and_matches_torch():
    g = torch.Generator().manual_seed(0)
    mu1, mu2 = torch.randn(4, generator=g, **F64), torch.randn(4, generator=g, **F64)
    v1, v2 = torch.rand(4, generator=g, **F64) + 0.1, torch.rand(4, generator=g, **F64) + 0.1
    ref = torch.distributions.kl_divergence(
        torch.distributions.Independent(torch.distributions.Normal(mu1, v1.sqrt()), 1),
        torch.distributions.Independent(torch.distributions.Normal(mu2, v2.sqrt()), 1))
    assert torch.allclose(dv.kl_gaussians(mu1, v1, mu2, v2), ref, atol=1e-12)
    assert float(dv.kl_gaussians(mu1, v1, mu1, v1)) == pytest.approx(0.0, abs=1e-12)


def test_kl_gaussians_rejects_bad_input():
    one = torch.tensor(1.0)
    with pytest.raises(ValueError, match="var1 must be > 0"):
        dv.kl_gaussians(one, torch.tensor(-1.0), one, one)
    with pytest.raises(ValueError, match=r"mu2 must have shape \(3\)"):
        dv.kl_gaussians(torch.zeros(3), torch.ones(3), torch.zeros(2), torch.ones(3))
    with pytest.raises(ValueError, match="mu1 must be 0-D or 1-D"):
        dv.kl_gaussians(torch.zeros(2, 2), torch.ones(2, 2), torch.zeros(2, 2), torch.ones(2, 2))


def test_mixture_density_normalised_entropy_matches_monte_carlo():
    log_p = dv.mixture_log_pdf(GRID, **P)
    assert float(dv.trapezoid(log_p.exp(), GRID)) == pytest.approx(1.0, abs=1e-9)
    x = dv.sample_mixture(200_000, **P, generator=torch.Generator().manual_seed(1))
    lp = dv.mixture_log_pdf(x, **P)
    se = float(lp.std()) / math.sqrt(len(x))
    assert abs(float(-lp.mean()) - float(dv.entropy_quadrature(log_p, GRID))) < 4 * se
    mean, var = dv.mixture_moments(**P)
    assert abs(float(x.mean()) - float(mean)) < 0.01 and abs(float(x.var()) - float(var)) < 0.02
    # Gaussian entropy against ½ log(2πeσ²)
    assert float(dv.entropy_quadrature(dv.log_normal(GRID, 0.0, 2.0), GRID)) == pytest.approx(
        0.5 * math.log(2 * math.pi * math.e * 2.0), abs=1e-9)


def test_nll_minus_kl_is_entropy_in_expectation():
    """E_P[−log Q] = H(P) + KL(P‖Q) for any Q (Theorem 14.2.2's identity), by quadrature."""
    log_p = dv.mixture_log_pdf(GRID, **P)
    for mu, var in [(-2.0, 0.5), (0.0, 1.0), (1.0, 3.0)]:
        cross = -torch.trapezoid(log_p.exp() * dv.log_normal(GRID, mu, var), GRID)
        assert float(cross) == pytest.approx(
            float(dv.entropy_quadrature(log_p, GRID) + dv.kl_quadrature(log_p, dv.log_normal(GRID, mu, var), GRID)),
            abs=1e-10)


def test_forward_kl_fit_is_moment_matching_and_a_minimum():
    log_p = dv.mixture_log_pdf(GRID, **P)
    m, v = dv.fit_forward_kl(log_p, GRID)
    mm, mv = dv.mixture_moments(**P)
    assert abs(float(m - mm)) < 1e-8 and abs(float(v - mv)) < 1e-7
    best = float(dv.kl_quadrature(log_p, dv.log_normal(GRID, m, v), GRID))
    for dm, dvv in [(0.05, 0), (-0.05, 0), (0, 0.05), (0, -0.05)]:
        assert float(dv.kl_quadrature(log_p, dv.log_normal(GRID, m + dm, v + dvv), GRID)) > best


def test_reverse_kl_moving_grid_matches_fixed_grid_and_seeks_a_mode():
    log_p_fn = lambda x: dv.mixture_log_pdf(x, [0.6, 0.4], [-4.0, 4.0], [0.36, 0.36])  # noqa: E731
    gh = dv.kl_gaussian_to_density(torch.tensor([0.0, -3.0], **F64), torch.tensor([4.0, 0.5], **F64), log_p_fn)
    for k, (mu, var) in enumerate([(0.0, 4.0), (-3.0, 0.5)]):
        quad = dv.kl_quadrature(dv.log_normal(GRID, mu, var), log_p_fn(GRID), GRID)
        assert abs(float(gh[k]) - float(quad)) < 1e-6
    fit = dv.fit_reverse_kl(log_p_fn, torch.tensor([-1.0, 1.0], **F64), 1.0, steps=300)
    assert abs(float(fit["mean"]) + 4.0) < 0.02 and abs(float(fit["var"]) - 0.36) < 0.01
    assert float(fit["kl"]) == pytest.approx(-math.log(0.6), abs=1e-3)
    assert len(fit["runs"]) == 2


def test_isotropic_mle_maximises_likelihood_autograd():
    g = torch.Generator().manual_seed(3)
    X = torch.randn(30, 5, generator=g, **F64) * 0.7 + 2.0
    mean, var = dv.isotropic_gaussian_mle(X)
    assert float(var) == pytest.approx(float(X.var(0, correction=0).mean()), rel=1e-12)
    mu = mean.clone().requires_grad_(True)
    v = var.clone().requires_grad_(True)
    dv.isotropic_gaussian_nll(X, mu, v).sum().backward()
    assert mu.grad.abs().max() < 1e-9 and abs(float(v.grad)) < 1e-7
    # the NLL equals minus torch's log-density
    ref = -torch.distributions.MultivariateNormal(mean, var * torch.eye(5, **F64)).log_prob(X)
    assert torch.allclose(dv.isotropic_gaussian_nll(X, mean, var), ref, atol=1e-10)


def test_isotropic_and_quadrature_reject_bad_input():
    with pytest.raises(ValueError, match="X must be 2-D"):
        dv.isotropic_gaussian_mle(torch.zeros(5))
    with pytest.raises(ValueError, match=r"mean must have shape \(3\)"):
        dv.isotropic_gaussian_nll(torch.zeros(4, 3), torch.zeros(2), torch.tensor(1.0))
    with pytest.raises(ValueError, match="var must be > 0"):
        dv.isotropic_gaussian_nll(torch.zeros(4, 3), torch.zeros(3), torch.tensor(0.0))
    with pytest.raises(ValueError, match="strictly increasing"):
        dv.kl_quadrature(torch.zeros(3), torch.zeros(3), torch.tensor([0.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="grid length"):
        dv.kl_quadrature(torch.zeros(4), torch.zeros(3), torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="weights must be >= 0 and sum to 1"):
        dv.mixture_log_pdf(GRID, [0.5, 0.6], [0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="weight must be <"):
        dv.bimodal_fits(4.0, 1.0)


def test_widget_update_redraws_and_depends_on_the_sliders(monkeypatch):
    from companion_lib import divergences, widgets

    calls = []
    real = divergences.bimodal_fits

    def spy(separation, weight, std=0.6, **kw):
        calls.append((separation, weight))
        return real(separation, weight, std, **kw)

    monkeypatch.setattr(divergences, "bimodal_fits", spy)
    ui, update = widgets.kl_asymmetry(separation=4.0, weight=0.6)
    near = update(1.0, 0.6)
    far = update(6.0, 0.6)
    plt.close("all")
    assert near["forward"][1] < far["forward"][1]                 # wider P → wider moment-matched fit
    assert abs(near["reverse"][0] - far["reverse"][0]) > 1.0     # the mode-seeking fit follows a mode
    assert far["reverse"][0] < 0                                 # ... the heavier (left) one
    # the sliders start at the arguments and moving one refits with its value
    sep, w = ui.children[0].children
    assert (sep.value, w.value) == (4.0, 0.6)
    sep.value = 2.0
    plt.close("all")
    assert calls[-1] == (2.0, 0.6)
