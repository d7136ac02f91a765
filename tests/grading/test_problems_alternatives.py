"""Every lesson problem accepts a genuinely different correct answer: another but equivalent
computation (log space vs direct, a loop vs vectorised, torch.distributions, another order of
operations). The "reference passes" test (test_grading) compares the reference with itself; this one
checks that the tolerances and comparators do not demand the reference's exact arithmetic."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from companion_lib.grading import PROBLEMS, grade_answer

Normal = torch.distributions.Normal
LOG_2PI = math.log(2 * math.pi)


def _e_step(x, w, m, v):                     # torch.distributions in log space, log_softmax over k
    return torch.softmax(torch.log(w) + Normal(m, v.sqrt()).log_prob(x[:, None]), dim=1)


def _m_step(x, r):                           # a loop over the components
    n_k = [r[:, k].sum() for k in range(r.shape[1])]
    means = [(r[:, k] * x).sum() / n_k[k] for k in range(r.shape[1])]
    var = [(r[:, k] * (x - means[k]) ** 2).sum() / n_k[k] for k in range(r.shape[1])]
    return torch.stack(n_k) / x.shape[0], torch.stack(means), torch.stack(var)


def _gaussian_mle(X):                        # torch.cov with no correction
    X = torch.as_tensor(X)
    return X.mean(0), torch.cov(X.T, correction=0).reshape(X.shape[1], X.shape[1])


def _kl_gaussians(mu1, var1, mu2, var2):     # torch.distributions' KL, summed
    return torch.distributions.kl_divergence(Normal(mu1, var1.sqrt()), Normal(mu2, var2.sqrt())).sum()


def _kl_estimate(log_p, log_q):              # sums by hand, the variance from the centred squares
    d = log_p - log_q
    n = d.shape[-1]
    mean = d.sum(-1) / n
    return mean, torch.sqrt(((d - mean[..., None]) ** 2).sum(-1) / ((n - 1) * n))


def _sigma2_mle(X):                          # the mean of the per-coordinate ML variances
    return torch.as_tensor(X).var(0, unbiased=False).mean()


def _gmm_score(x, w, m, v):                  # a loop over components, log-sum-exp by hand
    d = x.shape[1]
    logs, pulls = [], []
    for k in range(w.shape[0]):
        diff = m[k] - x
        logs.append(torch.log(w[k]) - 0.5 * (diff ** 2).sum(1) / v[k] - 0.5 * d * torch.log(2 * math.pi * v[k]))
        pulls.append(diff / v[k])
    logs = torch.stack(logs, 1)
    resp = torch.exp(logs - logs.max(1, keepdim=True).values)
    resp = resp / resp.sum(1, keepdim=True)
    return sum(resp[:, k:k + 1] * pulls[k] for k in range(w.shape[0]))


def _langevin_step(x, s, eta, xi):           # another order of operations
    return (x + math.sqrt(eta) * xi) + s * (eta / 2)


def _dsm_loss(energy_fn, x, sigma, generator):  # grad_outputs instead of a sum, ε − σ∇E
    eps = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    xt = (x + sigma * eps).requires_grad_(True)
    energy = energy_fn(xt)
    (grad,) = torch.autograd.grad(energy, xt, grad_outputs=torch.ones_like(energy), create_graph=True)
    return ((eps - sigma * grad) ** 2).sum(-1).mean() / 2


def _cd_loss(energy_fn, x_data, x_model):   # one forward pass on both sets, weighted sums
    n, m = x_data.shape[0], x_model.shape[0]
    energy = energy_fn(torch.cat([x_data, x_model.detach()]))
    weights = torch.cat([torch.full((n,), 1.0 / n), torch.full((m,), -1.0 / m)]).to(energy)
    return (weights * energy).sum()


def _gaussian_entropy(cov):                  # Cholesky factor instead of logdet
    L = torch.linalg.cholesky(torch.as_tensor(cov))
    d = L.shape[-1]
    return 0.5 * d * (1 + LOG_2PI) + torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)


def _elbo_gap(log_joint, q):                 # Σ q log q − Σ q log p(h|x), log p(h|x) = log p(x, h) − logsumexp
    log_post = log_joint - torch.logsumexp(log_joint, 1, keepdim=True)
    return torch.special.xlogy(q, q).sum(1) - (q * log_post).sum(1)


def _reparameterize(mu, sigma, eps):         # addcmul with σ viewed as a column
    return torch.addcmul(mu, sigma.reshape(mu.shape[0], 1), eps)


def _log_normal_sum(v, mean, sd):            # Σ log N(v; mean, sd²) over the last axis, by torch.distributions
    return Normal(mean, sd).log_prob(v).sum(-1)


def _elbo_term(x, md, sd, z, me, se):        # torch.distributions, constants added back
    sd, se = sd.reshape(-1, 1), se.reshape(-1, 1)
    log_px = _log_normal_sum(x, md, sd)
    log_pz = _log_normal_sum(z, torch.zeros_like(z), torch.ones_like(z))
    log_qz = _log_normal_sum(z, me, se)
    return log_px + log_pz - log_qz + 0.5 * x.shape[1] * LOG_2PI


class _VAENetworks(torch.nn.Module):         # layers from a list, outputs split with torch.split
    def __init__(self, n_dims, latent_dims, hidden):
        super().__init__()

        def net(a, b):
            sizes = [(a, hidden), (hidden, hidden), (hidden, b)]
            layers = []
            for i, (p, q) in enumerate(sizes):
                layers += [torch.nn.Linear(p, q)] + ([torch.nn.SiLU()] if i < 2 else [])
            return torch.nn.Sequential(*layers)

        self.latent_dims, self.n_dims = latent_dims, n_dims
        self.encoder, self.decoder = net(n_dims, latent_dims + 1), net(latent_dims, n_dims + 1)

    def encode(self, y):
        mu, raw = torch.split(self.encoder(y), [self.latent_dims, 1], dim=-1)
        return mu, raw.squeeze(-1).exp()

    def decode(self, z):
        mu, raw = torch.split(self.decoder(z), [self.n_dims, 1], dim=-1)
        return torch.sigmoid(mu), raw.squeeze(-1).exp()


def _negative_elbo(model, y, eps):           # torch.distributions' rsample-style sample, log_probs
    mu, s = model.encode(y)
    z = mu + s[:, None] * eps
    md, sd = model.decode(z)
    return -_elbo_term(y, md, sd, z, mu, s)


def _made_mask(d_in, d_out, output_layer):     # an outer comparison by broadcasting in integers, then cast
    gap = d_out.view(-1, 1) - d_in.view(1, -1) - int(output_layer)
    return (gap >= 0).to(torch.float32)


def _coupling_forward(z, mask, conditioner):  # multiplicative masks, no index assignment
    m = mask.to(z.dtype)
    r, s = conditioner(z[:, mask])
    r_full = torch.zeros_like(z).masked_scatter(~mask.expand_as(z), r)
    s_full = torch.zeros_like(z).masked_scatter(~mask.expand_as(z), s)
    return m * z + (1 - m) * (z * torch.exp(r_full) + s_full), r_full.sum(1)


def _coupling_inverse(z_next, mask, conditioner):
    m = mask.to(z_next.dtype)
    r, s = conditioner(z_next[:, mask])
    r_full = torch.zeros_like(z_next).masked_scatter(~mask.expand_as(z_next), r)
    s_full = torch.zeros_like(z_next).masked_scatter(~mask.expand_as(z_next), s)
    return m * z_next + (1 - m) * (z_next - s_full) / torch.exp(r_full)


def _density_15_2_1(x, a, b):                # conditionals x3, x4 | x1, x2 by torch.distributions
    std = Normal(torch.zeros((), dtype=x.dtype), torch.ones((), dtype=x.dtype))
    x1, x2, x3, x4 = x.unbind(1)
    p3 = Normal(a[1] * x1**2 + a[2] * x2**2, torch.exp(a[0])).log_prob(x3)
    p4 = Normal(b[1] * x1**2 + b[2] * x2**2, torch.exp(b[0])).log_prob(x4)
    return torch.exp(std.log_prob(x1) + std.log_prob(x2) + p3 + p4)


def _alpha_bar(betas):                       # log space: exp(Σ log(1 − β))
    return torch.exp(torch.cumsum(torch.log1p(-betas), 0))


def _compose(a, v, b, u):                    # the covariance of (ε′, ε) pushed through the row (a, 1)
    row = torch.stack(torch.broadcast_tensors(a, torch.ones_like(a)), -1)[..., None, :]
    cov = torch.diag_embed(torch.stack(torch.broadcast_tensors(u, v), -1))
    return torch.mul(b, a), (row @ cov @ row.transpose(-1, -2))[..., 0, 0]


def _q_sample(alpha_bars, x0, t, noise):     # float32 arithmetic when x0 is float32
    ab = alpha_bars.to(x0)[t.to(x0.device) - 1].reshape(-1, *([1] * (x0.ndim - 1)))
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise.to(x0)


def _error_probability(t, sigma):            # SciPy's survival function (NumPy in, NumPy out)
    return stats.norm.sf(np.asarray(t) / (2 * np.asarray(sigma)))


def _error_bound(t, sigma):                  # in log space
    return torch.exp(math.log(0.5) - t ** 2 / (8 * sigma ** 2))


def _posterior(s, x0, xt, t):                # ᾱ_{t−1} = ᾱ_t / α_t instead of a shifted table
    alpha, beta = s.at("alphas", t, xt), s.at("betas", t, xt)
    ab = s.at("alpha_bars", t, xt)
    ab_prev = ab / alpha
    mean = (ab_prev.sqrt() * beta * x0 + alpha.sqrt() * (1 - ab_prev) * xt) / (1 - ab)
    return mean, ((1 - ab_prev) * beta / (1 - ab)).expand_as(xt)


def _predict_x0(s, xt, t, eps):              # multiply by rsqrt
    return (xt - torch.sqrt(1 - s.at("alpha_bars", t, xt)) * eps) * torch.rsqrt(s.at("alpha_bars", t, xt))


def _ddpm_loss(s, eps_model, x0, t, noise):  # x_t under no_grad, a summed squared error over n
    with torch.no_grad():
        ab = s.at("alpha_bars", t, x0)
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    return torch.nn.functional.mse_loss(eps_model(xt, t), noise, reduction="sum") / x0.shape[0]


def _ddpm_step(s, eps, xt, t, noise, sigma="posterior"):  # β = 1 − α, ᾱ_{t−1} = ᾱ_t / α_t, mask by t > 1
    alpha, ab = s.at("alphas", t, xt), s.at("alpha_bars", t, xt)
    mean = (xt - (1 - alpha) / torch.sqrt(1 - ab) * eps) / alpha.sqrt()
    var = 1 - alpha if sigma == "beta" else (1 - ab / alpha) / (1 - ab) * (1 - alpha)
    keep = (t > 1).to(xt.dtype).reshape(-1, *([1] * (xt.ndim - 1)))
    return mean + keep * var.sqrt() * noise


def _elbo_weight(s, t, sigma):               # the simplified forms, ᾱ_{t−1} read at index t − 2
    beta, alpha = s.betas[t - 1], s.alphas[t - 1]
    rest = (1 - s.alpha_bars[t - 2]) if sigma == "posterior" else s.one_minus_alpha_bars[t - 1]
    return beta / (2 * alpha * rest)


def _sample_loop(schedule, eps_fn, step_fn, x_T, noises, sigma="posterior"):   # a while loop, a counter
    x, t_now, i = x_T, schedule.T, 0
    while t_now >= 1:
        t = t_now * torch.ones(x.shape[0], dtype=torch.long)
        x = step_fn(schedule, eps_fn(x, t), x, t, noises[i], sigma)
        t_now, i = t_now - 1, i + 1
    return x


def _eps_star(x, ab, w, m, v):               # the noisy mixture's closed form, by torch.distributions
    m_t, v_t = math.sqrt(ab) * m, ab * v + (1 - ab)
    comps = torch.distributions.Independent(Normal(m_t, v_t.sqrt()[:, None].expand_as(m_t)), 1)
    resp = torch.softmax(torch.log(w) + comps.log_prob(x[:, None]), dim=1)
    score = (resp[..., None] * (m_t[None] - x[:, None]) / v_t[None, :, None]).sum(1)
    return -math.sqrt(1 - ab) * score


def _cfg(eps_cond, eps_uncond, w):           # torch.lerp (extrapolates for w outside [0, 1])
    return torch.lerp(eps_uncond, eps_cond, w)


def _dsm_loss_15_3_4(schedule, score_model, x0, t, noise, weight):   # the kernel's score from x_t and x_0
    ab = schedule.alpha_bars[t - 1].to(x0.dtype)[:, None]
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    target = -(xt - ab.sqrt() * x0) / (1 - ab)
    return torch.einsum("b,b->", weight, ((score_model(xt, t) - target) ** 2).sum(-1)) / x0.shape[0]


def _cfg_loss(schedule, model, x0, labels, t, noise, u, p_uncond, null_label):  # masked copy, own (15.8)
    c = labels.clone()
    c[u < p_uncond] = null_label
    ab = schedule.alpha_bars[t - 1].to(x0.dtype)[:, None]
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    return ((model(xt, t, c) - noise) ** 2).sum(1).mean()


ALTERNATIVES = {
    "14.1.e_step": _e_step, "14.1.m_step": _m_step, "14.1.gaussian_mle": _gaussian_mle,
    "14.2.kl_gaussians": _kl_gaussians, "14.2.kl_estimate": _kl_estimate,
    "14.2.sigma2_mle": _sigma2_mle,
    "14.3.gmm_score": _gmm_score, "14.3.langevin_step": _langevin_step, "14.3.dsm_loss": _dsm_loss,
    "14.3.cd_loss": _cd_loss,
    "14.4.gaussian_entropy": _gaussian_entropy, "14.4.elbo_gap": _elbo_gap,
    "14.5.reparameterize": _reparameterize, "14.5.elbo_term": _elbo_term, "14.5.vae_networks": _VAENetworks,
    "14.5.negative_elbo": _negative_elbo, "14.5.trained_bound": np.float32(3.3),
    "15.1.made_mask": _made_mask,
    "15.2.coupling_forward": _coupling_forward, "15.2.coupling_inverse": _coupling_inverse,
    "15.2.1": _density_15_2_1, "15.3.1.alpha_bar": _alpha_bar, "15.3.1.q_sample": _q_sample,
    "15.3.1.compose": _compose,
    "15.3.2.error_probability": _error_probability, "15.3.2.error_bound": _error_bound,
    "15.3.3.posterior": _posterior, "15.3.3.predict_x0": _predict_x0, "15.3.3.loss": _ddpm_loss,
    "15.3.3.step": _ddpm_step, "15.3.3.elbo_weight": _elbo_weight, "15.3.3.sample_loop": _sample_loop,
    "15.3.4.eps_star": _eps_star, "15.3.4.dsm_loss": _dsm_loss_15_3_4,
    "15.3.5.cfg": _cfg, "15.3.5.cfg_loss": _cfg_loss,
}


def test_every_lesson_problem_has_an_alternative():
    lessons = {pid for pid, p in PROBLEMS.items() if not p.section.startswith("0.")}
    assert set(ALTERNATIVES) == lessons, sorted(lessons ^ set(ALTERNATIVES))


@pytest.mark.parametrize("pid", sorted(ALTERNATIVES))
def test_another_correct_form_passes(pid):
    result = grade_answer(pid, ALTERNATIVES[pid])
    assert result.passed, result.message
