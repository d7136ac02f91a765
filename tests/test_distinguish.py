"""§15.3 Problem 15.3.2 and eq. 15.9 (companion_lib.distinguish).

Oracles: scipy.stats.norm (tails), simulation, Bayes' rule for Gaussians in closed form, Monte Carlo
estimates of a KL, and the fact that a single-Gaussian prior has an exactly Gaussian reverse step.
"""
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402

from companion_lib import distinguish as D  # noqa: E402
from companion_lib import divergences, settings, widgets  # noqa: E402
from companion_lib.diffusion import NoiseSchedule  # noqa: E402

F64 = torch.float64
MIX = ([0.35, 0.4, 0.25], [-1.2, 0.1, 1.0], [0.12 ** 2, 0.25 ** 2, 0.08 ** 2])


# ---------------------------------------------------------------- Problem 15.3.2
def test_error_probability_against_scipy_including_far_tails():
    t = np.array([0.0, 0.3, 1.0, 4.0, 20.0, 60.0, 120.0])
    sigma = np.array([1.0, 0.5, 2.0, 1.0, 1.0, 1.0, 2.0])
    got = D.error_probability(t, sigma).numpy()
    expected = stats.norm.sf(t / (2 * sigma))
    assert np.allclose(got, expected, rtol=1e-12, atol=0)             # relative accuracy at 1e-198 too
    assert got[0] == 0.5


def test_error_bound_holds_and_is_tight_at_zero():
    t = torch.linspace(0, 50, 2001, dtype=F64)
    with settings.cpu_float64():
        p, b = D.error_probability(t, 1.0), D.error_bound(t, 1.0)
        assert (b >= p).all() and b[0] == p[0] == 0.5
        assert torch.allclose(b, 0.5 * torch.exp(-t ** 2 / 8))
        assert torch.allclose(D.error_bound(t, 3.0), 0.5 * torch.exp(-t ** 2 / 72))


def test_error_functions_broadcast():
    out = D.error_probability(torch.tensor([[1.0], [2.0]]), torch.tensor([1.0, 2.0, 4.0]))
    assert out.shape == (2, 3) and out.dtype == F64
    assert out[0, 1].item() == pytest.approx(D.error_probability(0.5, 1.0).item())   # only t/σ matters


@pytest.mark.parametrize("t, sigma, match", [
    (-1.0, 1.0, ">= 0"), (1.0, 0.0, "> 0"), (1.0, -2.0, "> 0"), (float("nan"), 1.0, "finite"),
    (torch.ones(3), torch.ones(2), "broadcast"), ("one", 1.0, "numeric"),
])
def test_error_functions_bad_input(t, sigma, match):
    for fn in (D.error_probability, D.error_bound):
        with pytest.raises(ValueError, match=match):
            fn(t, sigma)


def test_simulation_agrees_with_the_formula():
    g = torch.Generator().manual_seed(7)
    for ratio in (0.0, 1.0, 3.0):
        res = D.nearest_mean_error_mc(ratio, 2.0, 200_000, generator=g)   # t/σ = ratio/2
        exact = D.error_probability(ratio, 2.0).item()
        assert abs(res["rate"] - exact) < 4 * res["se"]
        lo, hi = res["ci"]
        assert lo < res["rate"] < hi and res["n"] == 200_000
    wrong = stats.norm.sf(1.0 / 2.0)                                   # 1 − Φ(t/σ) at t = 1, σ = 2
    res = D.nearest_mean_error_mc(1.0, 2.0, 200_000, generator=g)
    assert abs(res["rate"] - wrong) > 10 * res["se"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(t=-1.0), ">= 0"), (dict(t=1.0, sigma=0.0), "sigma"), (dict(t=1.0, n=0), ">= 1"),
    (dict(t=1.0, n=2.5), "integer"),
])
def test_simulation_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        D.nearest_mean_error_mc(**kwargs)


def test_overlap_widget_draws_without_a_browser():
    ui, update = widgets.gaussian_overlap(1.5)
    out = update(3.0)
    plt.close("all")
    assert out["error"] == pytest.approx(stats.norm.sf(1.5)) and out["bound"] == pytest.approx(0.5 * math.exp(-9 / 8))


# ---------------------------------------------------------------- eq. 15.9: the reverse step
def test_noised_mixture_matches_sampling_through_15_8():
    g = torch.Generator().manual_seed(3)
    ab = 0.3
    x0 = divergences.sample_mixture(400_000, *MIX, generator=g)
    xt = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * torch.randn(len(x0), generator=g, dtype=F64)
    w, m, v = D.noised_mixture(*MIX, ab)
    mean, var = divergences.mixture_moments(w, m, v)
    assert abs(xt.mean().item() - mean.item()) < 4 * math.sqrt(var.item() / len(xt))
    assert abs(xt.var().item() / var.item() - 1) < 0.01
    grid = torch.linspace(-3, 3, 13, dtype=F64)
    hist_cdf = torch.tensor([(xt <= c).double().mean().item() for c in grid], dtype=F64)
    exact_cdf = (w * torch.special.ndtr((grid[:, None] - m) / v.sqrt())).sum(1)
    assert (hist_cdf - exact_cdf).abs().max() < 0.005


def test_reverse_conditional_quadrature_matches_bayes_closed_form():
    x_t = torch.tensor([-0.9, 0.0, 0.4, 1.3], dtype=F64)
    grid = torch.linspace(-3, 3, 6001, dtype=F64)
    for beta in (0.01, 0.2, 0.7):
        num = D.reverse_conditional(x_t, beta, lambda x: divergences.mixture_log_pdf(x, *MIX), grid).exp()
        r, m, v = D.reverse_conditional_mixture(x_t, beta, *MIX)
        closed = (r[:, :, None] * divergences.log_normal(grid, m[:, :, None], v[None, :, None]).exp()).sum(1)
        assert (num - closed).abs().max() / closed.max() < 1e-6
        assert torch.allclose(r.sum(1), torch.ones(4, dtype=F64))


def test_single_gaussian_prior_gives_an_exactly_gaussian_reverse_step():
    beta, mu, s2 = 0.3, 0.5, 0.4
    x_t = torch.tensor([-1.0, 0.2, 2.0], dtype=F64)
    res = D.reverse_gaussian_kl(x_t, beta, [1.0], [mu], [s2])
    a = math.sqrt(1 - beta)
    var = 1 / (1 / s2 + a * a / beta)                                  # Bayes' rule for Gaussians
    assert torch.allclose(res["var"], torch.full((3,), var, dtype=F64), rtol=1e-9)
    assert torch.allclose(res["mean"], var * (mu / s2 + a * x_t / beta), rtol=1e-9)
    assert (res["kl"] < 1e-10).all()
    assert D.expected_reverse_kl(beta, [1.0], [mu], [s2]) < 1e-10


def test_reverse_kl_against_monte_carlo():
    beta = 0.2
    x_t = torch.tensor([-0.5], dtype=F64)
    res = D.reverse_gaussian_kl(x_t, beta, *MIX)
    r, m, v = D.reverse_conditional_mixture(x_t, beta, *MIX)
    g = torch.Generator().manual_seed(11)
    xs = divergences.sample_mixture(400_000, r[0], m[0], v, generator=g)       # draws of q(x_{t−1} | x_t)
    log_q = divergences.mixture_log_pdf(xs, r[0], m[0], v)
    log_n = divergences.log_normal(xs, res["mean"][0], res["var"][0])
    terms = log_q - log_n
    assert abs(terms.mean().item() - res["kl"].item()) < 4 * terms.std().item() / math.sqrt(len(xs))
    assert res["kl"].item() > 0.05                                     # clearly non-Gaussian here


def test_expected_kl_grows_with_beta_and_per_step_sums():
    kls = [D.expected_reverse_kl(b, *MIX, n_nodes=41) for b in (1e-3, 1e-2, 1e-1, 0.5)]
    assert all(b > a for a, b in zip(kls, kls[1:])) and kls[0] < 1e-4 < 0.1 < kls[-1]
    s = NoiseSchedule.linear(5, 0.01, 0.3)
    per = D.reverse_kl_per_step(s, *MIX, n_nodes=41)
    assert per.shape == (5,) and (per >= 0).all()
    assert per[0].item() == pytest.approx(D.expected_reverse_kl(0.01, *MIX, n_nodes=41))
    w, m, v = D.noised_mixture(*MIX, s.alpha_bars[2].item())           # prior of step 4 is q(x_3)
    assert per[3].item() == pytest.approx(D.expected_reverse_kl(s.betas[3].item(), w, m, v, n_nodes=41))


@pytest.mark.parametrize("call, error, match", [
    (lambda: D.reverse_conditional_mixture([0.0], 1.0, *MIX), ValueError, "beta"),
    (lambda: D.reverse_conditional_mixture([0.0], 0.1, [0.5, 0.6], [0, 1], [1, 1]), ValueError, "sum to 1"),
    (lambda: D.reverse_conditional_mixture([0.0], 0.1, [1.0], [0.0], [0.0]), ValueError, "variances"),
    (lambda: D.reverse_conditional_mixture([0.0], 0.1, [0.5, 0.5], [0.0], [1.0]), ValueError, "means"),
    (lambda: D.reverse_conditional([0.0], 0.1, lambda x: x, torch.tensor([0.0, 1.0, 0.5])), ValueError,
     "increasing"),
    (lambda: D.reverse_conditional([0.0, 1.0], 0.1, lambda x: x, torch.zeros(3, 5)), ValueError, "rows"),
    (lambda: D.noised_mixture(*MIX, 0.0), ValueError, "alpha_bar"),
    (lambda: D.reverse_kl_per_step("linear", *MIX), TypeError, "NoiseSchedule"),
    (lambda: D.expected_reverse_kl(0.1, *MIX, n_nodes=3), ValueError, "n_nodes"),
])
def test_reverse_step_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_public_functions_run_under_the_no_float64_stand_in():
    with settings.no_float64():
        assert D.error_probability(torch.tensor([1.0]), torch.tensor(1.0)).dtype == F64   # exact, on the CPU
        D.error_bound(2.0, 1.0)
        D.nearest_mean_error_mc(1.0, 1.0, 1000, generator=torch.Generator().manual_seed(0))
        D.noised_mixture(*MIX, 0.5)
        D.reverse_conditional(torch.tensor([0.0]), 0.1, lambda x: -0.5 * x ** 2, torch.linspace(-3, 3, 31))
        D.reverse_conditional_mixture(torch.tensor([0.0]), 0.1, *MIX)
        D.reverse_gaussian_kl(torch.tensor([0.0, 0.5]), 0.1, *MIX)
        D.expected_reverse_kl(0.1, *MIX, n_nodes=21)
        D.reverse_kl_per_step(NoiseSchedule.linear(3, 0.01, 0.1), *MIX, n_nodes=21)
