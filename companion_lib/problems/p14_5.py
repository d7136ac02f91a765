"""§14.5 problems: the reparameterised sample and the per-sample ELBO term (14.13)."""
import torch

from companion_lib import vae
from companion_lib.grading import Problem, case_seed, register


def _reparam_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 145))
    f64 = dict(generator=g, dtype=torch.float64)
    cases = []
    # σ as (n,), n != d; σ as (n, 1); and n == d, where a wrong broadcast of σ (n,) goes unnoticed
    for n, d, col in ((5, 3, False), (4, 2, True), (6, 6, False)):
        mu = torch.randn(n, d, **f64)
        sigma = torch.rand(n, **f64) * 1.5 + 0.1
        eps = torch.randn(n, d, **f64)
        cases.append((mu, sigma[:, None] if col else sigma, eps))
    return cases


def _reparam_ref(mu, sigma, eps):
    return vae.reparameterize(mu, sigma, eps)


def _wrong_variance(mu, sigma, eps):            # scales ε by the variance σ² instead of σ
    s = sigma.reshape(-1, 1)
    return mu + s**2 * eps


def _wrong_broadcast(mu, sigma, eps):           # σ (n,) broadcast along the latent axis, not the rows
    return mu + sigma.reshape(-1) * eps


def _wrong_shared_noise(mu, sigma, eps):        # one ε for every row (the text's z_ij = μ + σ ε_i slip)
    return mu + sigma.reshape(-1, 1) * eps[:1]


def _wrong_log_sigma(mu, sigma, eps):           # treats σ as log σ
    return mu + torch.exp(sigma.reshape(-1, 1)) * eps


register(Problem(
    id="14.5.reparameterize",
    section="14.5",
    title="A reparameterised sample z = μ + σ·ε",
    statement=("Write reparameterize(mu, sigma, eps): mu (n, d) encoder means, sigma the encoder's scalar "
               "standard deviation per row, of shape (n,) or (n, 1), eps (n, d) standard normal noise. "
               "Return z (n, d), a sample of q(z|x_i) = N(μ_i, σ_i² I_d) for each row i."),
    kind="function",
    reference=_reparam_ref,
    reference_names=("companion_lib.vae.reparameterize",),
    cases=_reparam_cases,
    hint=("Row i is μ_i + σ_i ε_i: σ_i is one number per row, so give it shape (n, 1) before multiplying "
          "(sigma.reshape(-1, 1)); it is a standard deviation, not a variance."),
    wrong_answers=(_wrong_variance, _wrong_broadcast, _wrong_shared_noise, _wrong_log_sigma),
    rtol=1e-6, atol=1e-9,
))


def _elbo_term_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1451))
    f64 = dict(generator=g, dtype=torch.float64)
    cases = []
    for b, n, d, col in ((4, 64, 16, False), (3, 5, 2, True), (7, 10, 3, False)):
        x = torch.rand(b, n, **f64)
        mu_dec = torch.rand(b, n, **f64)
        sigma_dec = torch.rand(b, **f64) * 0.5 + 0.05
        mu_enc = torch.randn(b, d, **f64)
        sigma_enc = torch.rand(b, **f64) * 0.8 + 0.1
        z = mu_enc + sigma_enc[:, None] * torch.randn(b, d, **f64)
        if col:
            sigma_dec, sigma_enc = sigma_dec[:, None], sigma_enc[:, None]
        cases.append((x, mu_dec, sigma_dec, z, mu_enc, sigma_enc))
    return cases


def _elbo_term_ref(x, mu_dec, sigma_dec, z, mu_enc, sigma_enc):
    return vae.elbo_term(x, mu_dec, sigma_dec, z, mu_enc, sigma_enc)


def _col(s):
    return s.reshape(-1)


def _wrong_no_n(x, md, sd, z, me, se):          # log σ_θ² once instead of n times
    sd, se = _col(sd), _col(se)
    d = z.shape[1]
    return -0.5 * (((x - md) ** 2).sum(1) / sd**2 + torch.log(sd**2) + (z**2).sum(1)
                   - ((z - me) ** 2).sum(1) / se**2 - d * torch.log(se**2))


def _wrong_q_sign(x, md, sd, z, me, se):        # adds log q instead of subtracting it
    sd, se = _col(sd), _col(se)
    n, d = x.shape[1], z.shape[1]
    return -0.5 * (((x - md) ** 2).sum(1) / sd**2 + n * torch.log(sd**2) + (z**2).sum(1)
                   + ((z - me) ** 2).sum(1) / se**2 + d * torch.log(se**2))


def _wrong_sigma_not_squared(x, md, sd, z, me, se):   # divides by σ where σ² belongs
    sd, se = _col(sd), _col(se)
    n, d = x.shape[1], z.shape[1]
    return -0.5 * (((x - md) ** 2).sum(1) / sd + n * torch.log(sd**2) + (z**2).sum(1)
                   - ((z - me) ** 2).sum(1) / se - d * torch.log(se**2))


def _wrong_with_constant(x, md, sd, z, me, se):  # keeps the −(n/2) log 2π the text drops
    return vae.elbo_term(x, md, sd, z, me, se) + vae.elbo_constant(x.shape[1])


def _wrong_no_prior(x, md, sd, z, me, se):       # forgets log p(z)
    return vae.elbo_term(x, md, sd, z, me, se) + 0.5 * (z**2).sum(1)


register(Problem(
    id="14.5.elbo_term",
    section="14.5",
    title="One term of the ELBO estimate, eq. (14.13)",
    statement=("Write elbo_term(x, mu_dec, sigma_dec, z, mu_enc, sigma_enc) for a batch of b rows: x (b, n) "
               "data, mu_dec = μ_θ(z) (b, n), sigma_dec = σ_θ(z) of shape (b,) or (b, 1), z (b, d), "
               "mu_enc = μ_φ(x) (b, d), sigma_enc = σ_φ(x) of shape (b,) or (b, 1). Return the (b,) values "
               "of log p(x|z) + log p(z) − log q(z|x) written out as in (14.13), constants dropped."),
    kind="function",
    reference=_elbo_term_ref,
    reference_names=("companion_lib.vae.elbo_term",),
    cases=_elbo_term_cases,
    hint=("Write the three Gaussian log-densities: log N(v; m, s² I_D) = −½[‖v − m‖²/s² + D log s² + D log 2π]. "
          "Decoder: D = n; prior: m = 0, s = 1, D = d; encoder: D = d, subtracted. Drop every log 2π "
          "(they add up to −(n/2) log 2π)."),
    wrong_answers=(_wrong_no_n, _wrong_q_sign, _wrong_sigma_not_squared, _wrong_with_constant,
                   _wrong_no_prior),
    rtol=1e-6, atol=1e-8,
))
