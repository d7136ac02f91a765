"""§15.3.3 reverse process (companion_lib.ddpm): the posterior against Bayes' theorem, (15.11) against diffusers' DDPMScheduler,
the sampler and the variational bound against a Gaussian data distribution whose ε* is exact, the
denoiser network, and bad input."""
import math

import pytest
import torch

from companion_lib import ddpm, forward_diffusion, gaussian, settings
from companion_lib.denoisers import ResidualDenoiser

F64 = torch.float64


def _schedules():
    return [forward_diffusion.NoiseSchedule.linear(1000), forward_diffusion.NoiseSchedule.cosine(1000, max_beta=0.2),
            forward_diffusion.NoiseSchedule.cosine(50)]


# ------------------------------------------------------------------------------ the posterior (15.3.3 (i))
@pytest.mark.parametrize("k", range(3))
def test_posterior_is_the_product_of_the_two_gaussians(k):
    s = _schedules()[k]
    g = torch.Generator().manual_seed(k)
    t = torch.randint(2, s.T + 1, (200,), generator=g)
    x0, xt = torch.randn(200, 3, generator=g, dtype=F64), torch.randn(200, 3, generator=g, dtype=F64)
    mean, var = ddpm.posterior_mean_variance(s, x0, xt, t)
    # Bayes: q(x_{t−1} | x_t, x_0) ∝ N(x_t; √α_t x_{t−1}, β_t) N(x_{t−1}; √ᾱ_{t−1} x_0, 1 − ᾱ_{t−1})
    beta, alpha = s.betas[t - 1][:, None], s.alphas[t - 1][:, None]
    ab_prev = s.alpha_bars[t - 2][:, None]
    precision = alpha / beta + 1 / (1 - ab_prev)
    want_mean = (alpha.sqrt() * xt / beta + ab_prev.sqrt() * x0 / (1 - ab_prev)) / precision
    assert torch.allclose(var, (1 / precision).expand_as(xt), rtol=1e-9, atol=0)
    assert torch.allclose(mean, want_mean, rtol=1e-9, atol=1e-12)
    assert mean.shape == var.shape == xt.shape and mean.dtype == F64


def test_posterior_at_t1_is_x0_with_no_variance():
    s = forward_diffusion.NoiseSchedule.linear(100)
    x0, xt = torch.randn(4, 5), torch.randn(4, 5)
    mean, var = ddpm.posterior_mean_variance(s, x0, xt, torch.ones(4, dtype=torch.long))
    assert torch.allclose(mean, x0, atol=1e-6) and float(var.abs().max()) == 0.0


def test_posterior_matches_monte_carlo_of_the_forward_chain():
    """Draw x_{t−1} ~ q(·|x_0), x_t ~ q(·|x_{t−1}); keep pairs with x_t near a value: the conditional law."""
    s = forward_diffusion.NoiseSchedule.linear(100, beta_end=0.2)
    g = torch.Generator().manual_seed(7)
    t, x0 = 30, torch.tensor(0.6, dtype=F64)
    n = 2_000_000
    prev = s.alpha_bars[t - 2].sqrt() * x0 + s.one_minus_alpha_bars[t - 2].sqrt() * torch.randn(n, generator=g, dtype=F64)
    xt = s.alphas[t - 1].sqrt() * prev + s.betas[t - 1].sqrt() * torch.randn(n, generator=g, dtype=F64)
    near = (xt - 0.2).abs() < 0.01
    mean, var = ddpm.posterior_mean_variance(s, x0.reshape(1, 1), torch.tensor([[0.2]], dtype=F64),
                                                  torch.tensor([t]))
    assert float(prev[near].mean()) == pytest.approx(float(mean), abs=0.01)
    assert float(prev[near].var()) == pytest.approx(float(var), rel=0.05)


def test_eps_mean_is_posterior_mean_at_predicted_x0():   # Problem 15.3.3 (ii)
    for s in _schedules():
        g = torch.Generator().manual_seed(1)
        t = torch.randint(1, s.T + 1, (64,), generator=g)
        xt, eps = torch.randn(64, 8, generator=g, dtype=F64), torch.randn(64, 8, generator=g, dtype=F64)
        x0_hat = ddpm.predict_x0(s, xt, t, eps)
        assert torch.allclose(forward_diffusion.q_sample(s, x0_hat, t, eps), xt, atol=1e-9)      # inverts (15.8)
        via_posterior, _ = ddpm.posterior_mean_variance(s, x0_hat, xt, t)
        assert torch.allclose(ddpm.reverse_mean(s, eps, xt, t), via_posterior, rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------------------ (15.11) vs diffusers
def _diffusers_step(scheduler, eps, xt, t, seed):
    g = torch.Generator().manual_seed(seed)
    return scheduler.step(eps, t - 1, xt, generator=g).prev_sample


@pytest.mark.parametrize("variance_type, sigma, clip", [("fixed_small", "posterior", False),
                                                         ("fixed_large", "beta", False),
                                                         ("fixed_small", "posterior", True)])
def test_ddpm_step_equals_diffusers(variance_type, sigma, clip):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=clip,
                                    variance_type=variance_type)
    ours = forward_diffusion.NoiseSchedule.linear(1000)
    g = torch.Generator().manual_seed(0)
    for t in [1000, 700, 123, 10, 2, 1]:
        xt, eps = torch.randn(16, 64, generator=g), torch.randn(16, 64, generator=g)
        want = _diffusers_step(sched, eps, xt, t, seed=t)
        noise = torch.randn((16, 64), generator=torch.Generator().manual_seed(t))
        got = ddpm.ddpm_step(ours, eps, xt, torch.full((16,), t), noise, sigma=sigma, clip_x0=clip)
        assert torch.allclose(got, want, atol=1e-3, rtol=0), (t, float((got - want).abs().max()))


def test_ddpm_step_equals_diffusers_on_a_cosine_schedule():
    diffusers = pytest.importorskip("diffusers")
    ours = forward_diffusion.NoiseSchedule.cosine(1000, max_beta=0.2)
    sched = diffusers.DDPMScheduler(num_train_timesteps=1000, trained_betas=ours.betas.float().numpy(),
                                    clip_sample=False, variance_type="fixed_small")
    g = torch.Generator().manual_seed(1)
    for t in [1000, 500, 3, 1]:
        xt, eps = torch.randn(8, 64, generator=g), torch.randn(8, 64, generator=g)
        noise = torch.randn((8, 64), generator=torch.Generator().manual_seed(t))
        got = ddpm.ddpm_step(ours, eps, xt, torch.full((8,), t), noise)
        assert torch.allclose(got, _diffusers_step(sched, eps, xt, t, seed=t), atol=1e-3, rtol=0)


def test_step_adds_no_noise_at_t1_and_mixes_steps_per_row():
    s = forward_diffusion.NoiseSchedule.linear(1000)
    xt, eps, z = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    t = torch.tensor([1, 500, 1])
    out = ddpm.ddpm_step(s, eps, xt, t, z, sigma="beta")
    no_noise = ddpm.ddpm_step(s, eps, xt, t, torch.zeros_like(z), sigma="beta")
    assert torch.equal(out[[0, 2]], no_noise[[0, 2]]) and not torch.allclose(out[1], no_noise[1])
    std = float(s.betas[499].sqrt())
    assert torch.allclose(out[1] - no_noise[1], std * z[1], atol=1e-6)


def test_clipping_keeps_predicted_x0_in_range_and_otherwise_changes_nothing():
    s = forward_diffusion.NoiseSchedule.linear(1000)
    g = torch.Generator().manual_seed(3)
    t = torch.full((32,), 900)
    x0 = 0.5 * torch.rand(32, 6, generator=g) - 0.25                  # well inside [−1, 1]
    eps = torch.randn(32, 6, generator=g)
    xt = forward_diffusion.q_sample(s, x0, t, eps)
    z = torch.zeros(32, 6)
    assert torch.allclose(ddpm.ddpm_step(s, eps, xt, t, z, clip_x0=True),
                          ddpm.ddpm_step(s, eps, xt, t, z), atol=1e-5)
    wild = ddpm.ddpm_step(s, eps + 3.0, xt, t, z, clip_x0=True)
    bounded = ddpm.posterior_mean_variance(s, -torch.ones_like(xt), xt, t)[0]
    assert torch.allclose(wild, bounded, atol=1e-5)                      # x̂_0 clipped to −1 everywhere


# ------------------------------------------------------------------------------ sampler and bound, exact ε*
M, S = 0.5, 0.3        # data N(M, S² I): q(x_t) = N(√ᾱ M, ᾱ S² + 1 − ᾱ), so ε* is exact (eq. 15.13)


def _exact_eps(s):
    def eps_fn(x, t):
        ab = s.at("alpha_bars", t, x)
        var = ab * S ** 2 + 1 - ab
        return (1 - ab).sqrt() * (x - ab.sqrt() * M) / var           # −√(1 − ᾱ) ∇ log q(x_t)
    return eps_fn


@pytest.mark.parametrize("sigma, n_steps", [("posterior", None), ("beta", None), ("posterior", 100)])
def test_sampling_with_the_exact_eps_recovers_the_data_law(sigma, n_steps):
    s = forward_diffusion.NoiseSchedule.cosine(1000, max_beta=0.2)
    x = ddpm.sample(s, _exact_eps(s), (4000, 2), generator=torch.Generator().manual_seed(0),
                         sigma=sigma, n_steps=n_steps)
    assert float(x.mean()) == pytest.approx(M, abs=0.02)
    assert float(x.std()) == pytest.approx(S, abs=0.02)


def test_sample_is_reproducible_and_keeps_requested_steps():
    s = forward_diffusion.NoiseSchedule.linear(100)
    a, kept = ddpm.sample(s, _exact_eps(s), (5, 3), generator=torch.Generator().manual_seed(1), keep=(100, 50, 0))
    b = ddpm.sample(s, _exact_eps(s), (5, 3), generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and sorted(kept) == [0, 50, 100] and torch.equal(kept[0], a)


def test_respaced_schedule_keeps_alpha_bars_at_kept_steps():
    s = forward_diffusion.NoiseSchedule.cosine(1000)
    steps = ddpm.timesteps(1000, 50)
    assert steps[0] == 1000 and steps[-1] == 1 and len(steps) == 50
    r = ddpm.respace(s, steps)
    assert torch.allclose(r.alpha_bars, s.alpha_bars[torch.tensor(sorted(steps)) - 1], rtol=1e-9)
    assert ddpm.timesteps(10, 10) == list(range(10, 0, -1))


def test_variational_bound_is_an_upper_bound_tight_with_sigma_beta():
    """For broad data (S = 0.3 ≫ √β_t) the true reverse steps have variance ≈ β_t: with σ_t² = β_t and the
    exact ε* the bound is tight; σ_t² = β̃_t (too certain at small t) is still a bound, a looser one."""
    s = forward_diffusion.NoiseSchedule.cosine(1000, max_beta=0.2)
    g = torch.Generator().manual_seed(0)
    x0 = M + S * torch.randn(400, 4, generator=g)
    nll = (0.5 * math.log(2 * math.pi * S ** 2) + (x0 - M) ** 2 / (2 * S ** 2)).sum(1)
    gaps = {}
    for sigma in ("beta", "posterior"):
        gap = ddpm.variational_bound(s, _exact_eps(s), x0, n_t=48, generator=g, sigma=sigma) - nll
        se = float(gap.std()) / math.sqrt(len(gap))
        assert float(gap.mean()) > -3 * se                               # a bound (up to Monte Carlo)
        gaps[sigma] = float(gap.mean()) / 4                              # nats per dimension
    assert abs(gaps["beta"]) < 0.05
    assert 0.2 < gaps["posterior"] < 0.6
    bad = ddpm.variational_bound(s, lambda x, t: 0.0 * x, x0, n_t=48, generator=g, sigma="beta")
    assert float((bad - nll).mean()) / 4 > 1.0                           # a useless ε_θ scores far worse


def test_loss_is_zero_for_the_true_noise_and_positive_otherwise():
    s = forward_diffusion.NoiseSchedule.linear(1000)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    t = torch.randint(1, 1001, (8,), generator=g)
    assert float(ddpm.ddpm_loss(s, lambda x, tt: noise, x0, t, noise)) == 0.0
    assert float(ddpm.ddpm_loss(s, lambda x, tt: 0 * x, x0, t, noise)) == pytest.approx(
        float(noise.pow(2).sum(1).mean()), rel=1e-6)


# ------------------------------------------------------------------------------ the ELBO weight (Ho et al. eq. 12)
@pytest.mark.parametrize("sigma", ddpm.SIGMAS)
@pytest.mark.parametrize("k", range(3))
def test_elbo_weight_is_the_kl_difference_per_unit_of_squared_noise_error(k, sigma):
    """L_{t−1}(ε_θ) − L_{t−1}(ε_θ') = w_t (‖ε − ε_θ‖² − ‖ε − ε_θ'‖²) for exact Gaussian KLs, t = 2..T."""
    s = _schedules()[k]
    g = torch.Generator().manual_seed(10 + k)
    t = torch.cat([torch.tensor([2, s.T]), torch.randint(2, s.T + 1, (198,), generator=g)])
    x0, eps = torch.randn(200, 3, generator=g, dtype=F64), torch.randn(200, 3, generator=g, dtype=F64)
    e1, e2 = torch.randn(200, 3, generator=g, dtype=F64), torch.randn(200, 3, generator=g, dtype=F64)
    xt = s.alpha_bars[t - 1].sqrt()[:, None] * x0 + s.one_minus_alpha_bars[t - 1].sqrt()[:, None] * eps
    m_q, v_q = ddpm.posterior_mean_variance(s, x0, xt, t)
    v_p = ddpm.reverse_variance(s, t, xt, sigma).expand_as(xt)

    def term(e):
        return gaussian.kl(m_q, v_q, ddpm.reverse_mean(s, e, xt, t), v_p).sum(1)

    w = ddpm.elbo_weight(s, t, sigma, like=torch.empty(200, dtype=F64))
    assert w.shape == (200,) and w.dtype == F64 and bool((w > 0).all())
    want = term(e1) - term(e2)
    got = w * ((eps - e1).pow(2).sum(1) - (eps - e2).pow(2).sum(1))
    assert torch.allclose(got, want, rtol=1e-7, atol=1e-9 * float(want.abs().max()))
    # the simplified forms
    ab_prev = s.alpha_bars[t - 2]
    short = s.betas[t - 1] / (2 * s.alphas[t - 1] * ((1 - ab_prev) if sigma == "posterior" else s.one_minus_alpha_bars[t - 1]))
    assert torch.allclose(w, short, rtol=1e-9)


def test_elbo_weight_at_t1_is_the_decoder_term_of_the_bound():
    """β̃_1 = 0 makes the formula infinite; the bound's L_0 = −log N(x_0; μ_θ(x_1, 1), β_1 I) has weight 1/(2α_1)."""
    s = forward_diffusion.NoiseSchedule.cosine(50)
    g = torch.Generator().manual_seed(3)
    x0, eps, e1 = (torch.randn(6, 4, generator=g, dtype=F64) for _ in range(3))
    t1 = torch.ones(6, dtype=torch.long)
    x1 = s.alphas[0].sqrt() * x0 + s.betas[0].sqrt() * eps
    nll = -gaussian.log_normal(x0, ddpm.reverse_mean(s, e1, x1, t1), s.betas[0]).sum(1)
    const = 0.5 * 4 * math.log(2 * math.pi * float(s.betas[0]))
    for sigma in ddpm.SIGMAS:
        w = ddpm.elbo_weight(s, t1, sigma, like=x0)
        assert w.shape == (6, 1) and torch.allclose(w[:, 0], 1 / (2 * s.alphas[0]).expand(6), rtol=1e-12)
        w = w[:, 0]
        assert torch.allclose(w * (eps - e1).pow(2).sum(1) + const, nll, rtol=1e-9)


def test_elbo_weight_like_float32_shape_and_bad_input():
    s = forward_diffusion.NoiseSchedule.linear(100)
    t = torch.tensor([1, 5, 100])
    w = ddpm.elbo_weight(s, t, "beta", like=torch.zeros(3, 2, 2))
    assert w.shape == (3, 1, 1) and w.dtype == torch.float32
    w64 = ddpm.elbo_weight(s, t, "beta", like=torch.zeros(3, dtype=F64))
    default = ddpm.elbo_weight(s, t, "beta")
    assert default.shape == (3,) and default.dtype == torch.get_default_dtype()
    assert torch.allclose(w.flatten().double(), w64, rtol=1e-6) and torch.allclose(default.double(), w64, rtol=1e-6)
    with pytest.raises(ValueError, match="sigma"):
        ddpm.elbo_weight(s, t, "sigma2")
    with pytest.raises(ValueError, match="t"):
        ddpm.elbo_weight(s, torch.tensor([0, 3]))
    with pytest.raises(TypeError, match="t"):
        ddpm.elbo_weight(s, torch.tensor([1.0, 3.0]))
    with pytest.raises(TypeError, match="schedule"):
        ddpm.elbo_weight(s.betas, t)
    with pytest.raises(TypeError, match="like"):
        ddpm.elbo_weight(s, t, like=[0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="steps"):
        ddpm.elbo_weight(s, t, like=torch.zeros(2, 4))


# ------------------------------------------------------------------------------ the denoiser network
def test_residual_denoiser_shapes_labels_and_size():
    torch.manual_seed(0)
    net = ResidualDenoiser(64)
    n = sum(p.numel() for p in net.parameters())
    assert 400_000 < n < 650_000
    x, t = torch.randn(5, 64), torch.randint(1, 1001, (5,))
    assert net(x, t).shape == (5, 64)
    cond = ResidualDenoiser(2, hidden=32, blocks=2, n_classes=3)
    y = torch.tensor([0, 1, 2, 3, 0])
    out = cond(torch.randn(5, 2), t, y)
    assert out.shape == (5, 2) and cond.null_label == 3
    x2 = torch.randn(5, 2)
    assert torch.equal(cond(x2, t), cond(x2, t, torch.full((5,), 3)))     # c=None is the null label
    assert not torch.allclose(cond(x2, t, torch.zeros(5, dtype=torch.long)), cond(x2, t))


def test_denoiser_rejects_bad_input():
    net = ResidualDenoiser(4, hidden=8, blocks=1, n_classes=2)
    t = torch.ones(3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"\(batch, 4\)"):
        net(torch.randn(3, 5), t)
    with pytest.raises(TypeError, match="integer steps"):
        net(torch.randn(3, 4), t.float())
    with pytest.raises(ValueError, match="0..2"):
        net(torch.randn(3, 4), t, torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match="unconditional"):
        ResidualDenoiser(4, hidden=8, blocks=1)(torch.randn(3, 4), t, torch.zeros(3, dtype=torch.long))


# ------------------------------------------------------------------------------ bad input, dtype rule
def test_reverse_functions_reject_bad_input():
    s = forward_diffusion.NoiseSchedule.linear(10)
    x, t = torch.randn(3, 2), torch.tensor([1, 2, 3])
    with pytest.raises(ValueError, match="sigma"):
        ddpm.ddpm_step(s, x, x, t, x, sigma="large")
    with pytest.raises(ValueError, match="1..T"):
        ddpm.ddpm_step(s, x, x, torch.tensor([0, 1, 2]), x)
    with pytest.raises(ValueError, match="shape"):
        ddpm.ddpm_step(s, torch.randn(3, 3), x, t, x)
    with pytest.raises(TypeError, match="clip_x0"):
        ddpm.ddpm_step(s, x, x, t, x, clip_x0="yes")
    with pytest.raises(ValueError, match="finite"):
        ddpm.posterior_mean_variance(s, x, x * float("nan"), t)
    with pytest.raises(TypeError, match="NoiseSchedule"):
        ddpm.predict_x0("linear", x, t, x)
    with pytest.raises(ValueError, match="n_steps"):
        ddpm.timesteps(10, 11)


def test_reverse_process_runs_in_float32_under_the_no_float64_stand_in():
    s = forward_diffusion.NoiseSchedule.cosine(100, max_beta=0.2)
    net = ResidualDenoiser(4, hidden=16, blocks=1)
    with settings.no_float64():
        x = ddpm.sample(s, lambda x, t: net(x, t), (6, 4), generator=torch.Generator().manual_seed(0),
                             clip_x0=True, n_steps=20)
        b = ddpm.variational_bound(s, lambda x, t: net(x, t), x.clamp(-1, 1), n_t=8)
        loss = ddpm.ddpm_loss(s, net, x, torch.randint(1, 101, (6,)), torch.randn(6, 4))
    assert x.dtype == b.dtype == loss.dtype == torch.float32 and torch.isfinite(b).all()


# ------------------------------------------------------------------------------ eq. 15.13 on a mixture
def test_noisy_mixture_matches_the_forward_process_and_eps_star_is_the_conditional_mean():
    from companion_lib import ebm, scores
    s = forward_diffusion.NoiseSchedule.cosine(1000, max_beta=0.2)
    w, m, v = torch.tensor([0.6, 0.4]), torch.tensor([[-1.0, 0.0], [1.5, 0.5]]), torch.tensor([0.05, 0.2])
    g = torch.Generator().manual_seed(0)
    n, t = 400_000, 250
    ab = s.alpha_bars[t - 1].item()
    x0 = ebm.gmm_sample(n, w, m, v, generator=g)
    eps = torch.randn(n, 2, generator=g)
    xt = forward_diffusion.q_sample(s, x0, torch.full((n,), t), eps)
    wt, mt, vt = forward_diffusion.noisy_mixture(ab, w, m, v)
    assert torch.allclose(xt.mean(0), (wt[:, None] * mt).sum(0), atol=0.01)
    second = (wt * (vt * 2 + (mt ** 2).sum(1))).sum()                  # E‖x_t‖² of the mixture
    assert float(xt.pow(2).sum(1).mean()) == pytest.approx(float(second), rel=0.01)
    # ε* = E[ε | x_t] (15.13): the regression of ε on x_t within a small disc
    probe = torch.tensor([[-0.5, 0.1]])
    near = (xt - probe).norm(dim=1) < 0.05
    star = scores.eps_from_score(ebm.gmm_score(probe, wt, mt, vt), 1 - ab)
    assert torch.allclose(eps[near].mean(0), star[0], atol=0.05)
    back = scores.score_from_eps(star, torch.tensor([1 - ab]))
    assert torch.allclose(back, ebm.gmm_score(probe, wt, mt, vt), rtol=1e-5)
    with pytest.raises(ValueError, match="one_minus_alpha_bar"):
        scores.eps_from_score(star, 0.0)
    with pytest.raises(ValueError, match="variances"):
        forward_diffusion.noisy_mixture(0.5, w, m, torch.tensor([0.1, -0.1]))


def test_the_reverse_process_on_an_accelerator_never_waits_for_it():
    """ddpm_step, the posterior, the loss and the sampler on the 'meta' device (tensors without
    values): no call reads a step, a label or a value back to the host (that would raise there)."""
    meta = torch.device("meta")
    s = forward_diffusion.NoiseSchedule.cosine(50, max_beta=0.2)
    t = torch.empty(6, dtype=torch.long, device=meta)
    xt, eps, noise = (torch.empty(6, 4, device=meta) for _ in range(3))
    for sigma in ddpm.SIGMAS:
        for clip in (False, True):
            out = ddpm.ddpm_step(s, eps, xt, t, noise, sigma=sigma, clip_x0=clip)
            assert out.device == meta and out.shape == (6, 4) and out.dtype == torch.float32
    mean, var = ddpm.posterior_mean_variance(s, eps, xt, t)
    assert mean.device == var.device == meta
    torch.manual_seed(0)
    net = ResidualDenoiser(4, hidden=8, blocks=1, emb_dim=8).to(meta)
    loss = ddpm.ddpm_loss(s, net, xt, t, noise)
    assert loss.device == meta and loss.shape == ()
    x0 = ddpm.sample(s, net, (6, 4), device=meta, n_steps=5, clip_x0=True)
    assert x0.device == meta and x0.shape == (6, 4)
    x0 = ddpm.sample(s, net, (6, 4), device=meta, sigma="beta", generator=torch.Generator().manual_seed(0))
    assert x0.device == meta and x0.shape == (6, 4)
    x0 = ddpm.ddim_sample(s, net, (6, 4), 5, device=meta, generator=torch.Generator().manual_seed(0))
    assert x0.device == meta and x0.shape == (6, 4)
    assert ddpm.ddim_step(s, eps, xt, t, torch.zeros_like(t)).device == meta
    cond = ResidualDenoiser(4, hidden=8, blocks=1, emb_dim=8, n_classes=3).to(meta)
    labels = torch.empty(6, dtype=torch.long, device=meta)
    assert ddpm.ddpm_loss(s, cond, xt, t, noise, labels).device == meta


# ------------------------------------------------------------------------------ training and sampling choices (15_3_3b)
@pytest.mark.parametrize("n_inference", [1000, 100, 10])
def test_ddim_step_equals_diffusers_ddim_scheduler(n_inference):
    """diffusers numbers steps from 0 (their timestep = our t − 1) and jumps by T // n_inference; their
    prev_timestep < 0 with set_alpha_to_one=True is our t_prev = 0 (ᾱ_0 = 1: the step returns x̂_0)."""
    diffusers = pytest.importorskip("diffusers")
    ours = forward_diffusion.NoiseSchedule.cosine(1000, max_beta=0.2)
    sched = diffusers.DDIMScheduler(num_train_timesteps=1000, trained_betas=ours.betas.float().numpy(),
                                    clip_sample=False, set_alpha_to_one=True, steps_offset=0)
    sched.set_timesteps(n_inference)
    gap = 1000 // n_inference
    g = torch.Generator().manual_seed(2)
    for t in [1000, 701, 300, 2 * gap, gap + 1, gap, 1]:
        xt, eps = torch.randn(8, 64, generator=g), torch.randn(8, 64, generator=g)
        want = sched.step(eps, t - 1, xt, eta=0.0).prev_sample
        t_prev = torch.full((8,), max(t - gap, 0))
        got = ddpm.ddim_step(ours, eps, xt, torch.full((8,), t), t_prev)
        assert torch.allclose(got, want, atol=1e-4, rtol=1e-4), (t, float((got - want).abs().max()))


def test_ddim_step_to_zero_returns_x0_hat_and_keeps_the_noise_direction():
    s = forward_diffusion.NoiseSchedule.cosine(100)
    g = torch.Generator().manual_seed(0)
    with settings.cpu_float64():
        x0, eps = torch.randn(6, 3, generator=g, dtype=F64), torch.randn(6, 3, generator=g, dtype=F64)
        t = torch.tensor([100, 50, 7, 2, 1, 30])
        xt = forward_diffusion.q_sample(s, x0, t, eps)
        assert torch.allclose(ddpm.ddim_step(s, eps, xt, t, torch.zeros_like(t)), x0, atol=1e-9)
        t_prev = torch.tensor([60, 10, 3, 1, 0, 29])                 # with the true ε it lands on q_sample(x0, t_prev, ε)
        want = torch.where((t_prev == 0)[:, None], x0,
                           forward_diffusion.q_sample(s, x0, t_prev.clamp(min=1), eps))
        assert torch.allclose(ddpm.ddim_step(s, eps, xt, t, t_prev), want, atol=1e-9)


@pytest.mark.parametrize("n_steps", [1000, 50])
def test_ddim_sampling_with_the_exact_eps_recovers_the_data_law(n_steps):
    s = forward_diffusion.NoiseSchedule.cosine(1000, max_beta=0.2)
    x = ddpm.ddim_sample(s, _exact_eps(s), (4000, 2), n_steps, generator=torch.Generator().manual_seed(0))
    assert float(x.mean()) == pytest.approx(M, abs=0.02)
    assert float(x.std()) == pytest.approx(S, abs=0.02)
    again = ddpm.ddim_sample(s, _exact_eps(s), (4000, 2), n_steps, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, again)                                      # deterministic given x_T


def test_ddim_rejects_bad_input():
    s = forward_diffusion.NoiseSchedule.cosine(100)
    xt, eps, t = torch.zeros(4, 2), torch.zeros(4, 2), torch.full((4,), 10)
    for bad in (torch.full((4,), 10), torch.full((4,), -1), torch.full((4,), 10.0), torch.full((3,), 5)):
        with pytest.raises(ValueError, match="t_prev"):
            ddpm.ddim_step(s, eps, xt, t, bad)
    with pytest.raises(ValueError, match="n_steps"):
        ddpm.ddim_sample(s, lambda x, t: x, (4, 2), 0)
    with pytest.raises(TypeError, match="eps_fn"):
        ddpm.ddim_sample(s, None, (4, 2), 10)


@pytest.mark.parametrize("prediction", ddpm.PREDICTIONS)
def test_every_parameterisation_reads_its_own_target_as_the_true_noise(prediction):
    s = forward_diffusion.NoiseSchedule.cosine(1000, max_beta=0.2)
    g = torch.Generator().manual_seed(1)
    with settings.cpu_float64():
        x0, eps = torch.randn(64, 5, generator=g, dtype=F64), torch.randn(64, 5, generator=g, dtype=F64)
        t = torch.randint(1, 1001, (64,), generator=g)
        xt = forward_diffusion.q_sample(s, x0, t, eps)
        ab, om = s.at("alpha_bars", t, xt), s.at("one_minus_alpha_bars", t, xt)
        target = {"eps": eps, "v": ab.sqrt() * eps - om.sqrt() * x0, "x0": x0}[prediction]
        assert torch.allclose(ddpm.eps_from_prediction(s, target, xt, t, prediction), eps, atol=1e-6)
        module = ddpm.EpsilonFrom(lambda_net(target), s, prediction)
        assert torch.allclose(module(xt, t), eps, atol=1e-6)
    with pytest.raises(ValueError, match="prediction"):
        ddpm.eps_from_prediction(s, eps.float(), xt.float(), t, "score")
    with pytest.raises(TypeError, match="net"):
        ddpm.EpsilonFrom(lambda x, t: x, s, prediction)


class lambda_net(torch.nn.Module):
    """A 'network' that returns a fixed tensor (its target), to test the wrappers exactly."""

    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, x, t):
        return self.out


def test_min_snr_weight_caps_the_low_noise_steps():
    s = forward_diffusion.NoiseSchedule.cosine(1000, max_beta=0.2)
    t = torch.arange(1, 1001)
    with settings.cpu_float64():
        w = ddpm.min_snr_weight(s, t, 5.0, like=torch.zeros(1000, 1, dtype=F64)).squeeze(1)
        snr = s.alpha_bars / s.one_minus_alpha_bars
        assert torch.allclose(w, torch.minimum(snr, torch.tensor(5.0, dtype=F64)) / snr, rtol=1e-12)
    assert bool((w <= 1).all()) and bool((w[snr <= 5] == 1).all()) and float(w[0]) < 1e-3
    assert ddpm.min_snr_weight(s, t[:3], 1.0).shape == (3,)
    for bad in (0.0, -1.0, float("nan"), "5", True):
        with pytest.raises(ValueError, match="gamma"):
            ddpm.min_snr_weight(s, t, bad)
    with pytest.raises(TypeError, match="like"):
        ddpm.min_snr_weight(s, t, 5.0, like=[1.0])


# ------------------------------------------------------------------------------ the samplers' loops (issue 21)
def _mlp(dim=3):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(dim, 16), torch.nn.SiLU(), torch.nn.Linear(16, dim))
    return lambda x, t: net(x) * 0.5


@pytest.mark.parametrize("kw", [{}, {"sigma": "beta"}, {"clip_x0": True}, {"n_steps": 7, "clip_x0": True},
                                {"n_steps": 5, "sigma": "beta"}])
def test_sample_is_ddpm_step_called_step_by_step_bit_for_bit_with_the_same_draws(kw):
    """The loop gathers its coefficients once, yet its chain is ``ddpm_step``'s, bit for bit, with x_T drawn
    first and then one z per step after the network call (the draw order of the previous release)."""
    s, eps_fn, shape = forward_diffusion.NoiseSchedule.cosine(40, max_beta=0.2), _mlp(), (16, 3)
    fast, kept = ddpm.sample(s, eps_fn, shape, generator=torch.Generator().manual_seed(4), keep=(40, 20, 0), **kw)
    g = torch.Generator().manual_seed(4)
    n = kw.get("n_steps")
    original = ddpm.timesteps(40, n) if n else list(range(40, 0, -1))
    chain = ddpm.respace(s, original) if n else s
    options = {k: v for k, v in kw.items() if k != "n_steps"}
    x = torch.randn(shape, generator=g)
    with torch.no_grad():
        for i, t in enumerate(original):
            eps = eps_fn(x, torch.full((16,), t))
            x = ddpm.ddpm_step(chain, eps, x, torch.full((16,), len(original) - i), torch.randn(shape, generator=g),
                               **options)
    assert torch.equal(fast, x) and torch.equal(kept[0], x) and sorted(kept) == [k for k in (0, 20, 40) if k in original + [0]]
    via_step_fn = ddpm.sample(s, eps_fn, shape, generator=torch.Generator().manual_seed(4),
                              step_fn=lambda *a, **k: ddpm.ddpm_step(*a, **k), **kw)
    assert torch.equal(via_step_fn, fast)
    other = ddpm.sample(s, eps_fn, shape, generator=torch.Generator().manual_seed(5), **kw)
    assert not torch.allclose(other, fast)                            # the draws matter: the test can fail


@pytest.mark.parametrize("n_steps", [40, 6])
def test_ddim_sample_is_ddim_step_called_step_by_step_bit_for_bit(n_steps):
    s, eps_fn, shape = forward_diffusion.NoiseSchedule.cosine(40, max_beta=0.2), _mlp(), (16, 3)
    fast = ddpm.ddim_sample(s, eps_fn, shape, n_steps, generator=torch.Generator().manual_seed(2))
    steps = ddpm.timesteps(40, n_steps)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        for t, t_prev in zip(steps, steps[1:] + [0]):
            x = ddpm.ddim_step(s, eps_fn(x, torch.full((16,), t)), x, torch.full((16,), t), torch.full((16,), t_prev))
    assert torch.equal(fast, x)
    assert torch.equal(ddpm.ddim_sample(s, eps_fn, shape, steps=steps, generator=torch.Generator().manual_seed(2)), x)
    leading = [1 + i * (40 // n_steps) for i in range(n_steps)][::-1]  # diffusers' default spacing
    other = ddpm.ddim_sample(s, eps_fn, shape, steps=leading, generator=torch.Generator().manual_seed(2))
    assert (leading == steps) == torch.equal(other, x)


def test_the_loops_check_once_not_per_step(monkeypatch):
    """No per-step validation (each reads values back to the host): the number of checks of data and steps
    does not grow with the number of steps, unless a step function of one's own is called per step."""
    counts = {"data": 0, "steps": 0}
    check_data, steps = ddpm._check_data, forward_diffusion.NoiseSchedule._steps

    def counting_data(*a, **k):
        counts["data"] += 1
        return check_data(*a, **k)

    def counting_steps(self, *a, **k):
        counts["steps"] += 1
        return steps(self, *a, **k)
    monkeypatch.setattr(ddpm, "_check_data", counting_data)
    monkeypatch.setattr(forward_diffusion.NoiseSchedule, "_steps", counting_steps)

    def checks(T, **kw):
        counts.update(data=0, steps=0)
        s = forward_diffusion.NoiseSchedule.linear(T, beta_end=0.2)
        if kw.pop("ddim", False):
            ddpm.ddim_sample(s, _mlp(), (4, 3), T)
        else:
            ddpm.sample(s, _mlp(), (4, 3), **kw)
        return dict(counts)
    for kw in ({}, {"clip_x0": True, "n_steps": 5}, {"ddim": True}):
        assert checks(10, **kw) == checks(30, **kw), kw
    own = {"step_fn": lambda *a, **k: ddpm.ddpm_step(*a, **k)}
    assert checks(30, **own)["steps"] > checks(10, **own)["steps"] >= 10


def test_the_loops_reject_bad_input_once():
    s = forward_diffusion.NoiseSchedule.linear(20)
    with pytest.raises(ValueError, match="eps_fn returned shape"):
        ddpm.sample(s, lambda x, t: x[:, :1], (4, 3))
    with pytest.raises(TypeError, match="eps_fn must return"):
        ddpm.ddim_sample(s, lambda x, t: x.numpy(), (4, 3), 5)
    with pytest.raises(ValueError, match="finite"):
        ddpm.sample(s, lambda x, t: x * float("nan"), (4, 3), n_steps=3)
    with pytest.raises(TypeError, match="clip_x0"):
        ddpm.sample(s, lambda x, t: x, (4, 3), clip_x0=1)
    with pytest.raises(TypeError, match="Generator"):
        ddpm.sample(s, lambda x, t: x, (4, 3), generator=0)
    with pytest.raises(TypeError, match="either n_steps"):
        ddpm.ddim_sample(s, lambda x, t: x, (4, 3), 5, steps=[20, 1])
    with pytest.raises(TypeError, match="either n_steps"):
        ddpm.ddim_sample(s, lambda x, t: x, (4, 3))
    for bad, err in (([20, 20, 1], ValueError), ([1, 20], ValueError), ([21, 1], ValueError), ([0], ValueError),
                     ([], TypeError), ("20", TypeError), ([20.5, 1], ValueError)):
        with pytest.raises(err, match="steps"):
            ddpm.ddim_sample(s, lambda x, t: x, (4, 3), steps=bad)
    assert ddpm.ddim_sample(s, lambda x, t: 0 * x, (4, 3), steps=torch.tensor([20, 7])).shape == (4, 3)


def test_ddpm_step_equals_diffusers_in_float64_to_round_off():
    """diffusers' schedule formed in float64 too (its own formula: linspace, then cumprod): one clipped step
    with σ_t² = β̃_t at six t, the same ε, x_t and z, differs only by rounding (diffusers' float32
    schedule loses digits of 1 − ᾱ_t at small t: the float32 test above needs 1e-3)."""
    diffusers = pytest.importorskip("diffusers")
    T, shape = 1000, (32, 64)
    sched = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                                    variance_type="fixed_small", clip_sample=True)
    ours = forward_diffusion.NoiseSchedule.linear(T, 1e-4, 0.02)
    with settings.cpu_float64():
        ref = diffusers.DDPMScheduler.from_config(sched.config)
        ref.set_timesteps(T)
        ref.betas = torch.linspace(1e-4, 0.02, T, dtype=F64)
        ref.alphas = 1.0 - ref.betas
        ref.alphas_cumprod = torch.cumprod(ref.alphas, 0)
        ref.one = torch.tensor(1.0, dtype=F64)
        g = torch.Generator().manual_seed(0)
        worst = {"posterior": 0.0, "beta": 0.0}
        for t in (1000, 700, 300, 50, 2, 1):
            eps, xt = (2 * torch.randn(shape, generator=g, dtype=F64) for _ in range(2))
            want = ref.step(eps, t - 1, xt, generator=torch.Generator().manual_seed(t)).prev_sample
            z = torch.randn(shape, generator=torch.Generator().manual_seed(t), dtype=F64)
            for sigma in worst:
                got = ddpm.ddpm_step(ours, eps, xt, torch.full((shape[0],), t), z, sigma=sigma, clip_x0=True)
                worst[sigma] = max(worst[sigma], float((got - want).abs().max()))
    assert worst["posterior"] < 1e-11, worst                         # 4e-13 measured: rounding only
    assert worst["beta"] > 1e-3                                        # σ_t² = β_t is diffusers' other variance


def test_the_sampling_loops_equal_loops_over_diffusers_schedulers():
    """companion_lib.peers.sampling at a small size: ancestral, respaced and DDIM samples of ddpm equal those
    of diffusers' DDPMScheduler / DDIMScheduler loops to round-off; a different chain does not."""
    pytest.importorskip("diffusers")
    from companion_lib.peers import sampling
    rows = sampling.comparisons(steps=50, respaced_steps=10, batch=8, dim=4)
    assert [r.name for r in rows] == ["DDPM ancestral", "DDPM respaced", "DDIM (η = 0)"]
    results = [(r.ours(), r.theirs()) for r in rows]
    for r, (ours, theirs) in zip(rows, results):
        identical, text = r.agree(ours, theirs)
        assert identical and "max |Δ sample|" in text, (r.name, text)
        assert "diffusers" in r.peer and r.device == "cpu"
    assert not rows[0].agree(results[0][0], results[1][1])[0]         # ancestral vs respaced: not the same
    with pytest.raises(ValueError, match="linspace"):
        sampling.comparisons(steps=8, respaced_steps=3, batch=2, dim=2)  # a tie that rounds the other way
    with pytest.raises(ValueError, match="respaced_steps"):
        sampling.comparisons(steps=50, respaced_steps=51)
    with pytest.raises(TypeError, match="device"):
        sampling.comparisons(device=0)


def test_the_sampling_peers_say_when_diffusers_is_missing(monkeypatch):
    import sys
    from companion_lib.peers import sampling
    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(ModuleNotFoundError, match="diffusers") as info:
        sampling.comparisons(steps=10, respaced_steps=5, batch=2, dim=2)
    assert info.value.name == "diffusers"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_loops_never_synchronise_on_cuda():
    """On CUDA no step waits for the GPU: a CPU generator draws into pinned memory (copied non-blocking),
    a generator on the GPU draws there; torch's sync debug mode turns any synchronisation into an error."""
    s = forward_diffusion.NoiseSchedule.cosine(50, max_beta=0.2)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.SiLU(), torch.nn.Linear(16, 3)).cuda()
    cpu = ddpm.sample(s, lambda x, t: net(x), (8, 3), device="cuda", clip_x0=True,
                      generator=torch.Generator().manual_seed(0))         # warm-up (pinned pool, kernels)
    torch.cuda.set_sync_debug_mode("error")
    try:
        again = ddpm.sample(s, lambda x, t: net(x), (8, 3), device="cuda", clip_x0=True,
                            generator=torch.Generator().manual_seed(0))
        on_gpu = ddpm.sample(s, lambda x, t: net(x), (8, 3), device="cuda", n_steps=10,
                             generator=torch.Generator(device="cuda").manual_seed(0))
        ddim = ddpm.ddim_sample(s, lambda x, t: net(x), (8, 3), 10, device="cuda",
                                generator=torch.Generator(device="cuda").manual_seed(0))
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert torch.equal(cpu, again) and on_gpu.is_cuda and ddim.is_cuda
    with torch.no_grad():
        on_cpu = ddpm.sample(s, lambda x, t: net.cpu()(x), (8, 3), clip_x0=True, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(cpu.cpu(), on_cpu, atol=1e-4)                 # the CPU generator's draws on every device
