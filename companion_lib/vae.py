"""§14.5 The variational autoencoder exactly as eqs. 14.10–14.13, in PyTorch.

* ``VAE``               encoder E_φ(x) → (μ_x (d,), scalar σ_x), decoder D_θ(z) → (μ_z (n,), scalar σ_z),
                        prior N(0, I_d)                                               eqs. 14.10–14.11
                        (``decoder="gaussian"``, the text's); two better decoders for 17-level pixels
                        with the same encoder: ``"gaussian_per_pixel"`` (σ_θ(z) ∈ R^n) and
                        ``"categorical"`` (a 17-way distribution per pixel, density p(levels)·17^n on
                        the dequantisation cell)
* ``reparameterize``    z = μ + σ·ε, the reparameterisation trick                     §14.5.1
* ``log_normal``        log N(x; μ, σ² I) with all constants
* ``elbo_term``         one summand of (14.12) in the explicit form (14.13), constants dropped
* ``log_weights``       the exact summands log p(x, z_j) − log q(z_j | x), z_j ~ q       eq. 14.12
* ``elbo_estimate``     (14.12) as printed (``reduction="sum"``: s × ELBO) or its average (the ELBO)
* ``elbo_and_iwae``     the ELBO and the importance-weighted bound from the same k samples
* ``sample_log_weights`` / ``iwae_bounds``  k log-weights per image; IWAE_k for several k from them
                        (Burda et al. 2016)
* ``kl_to_prior`` / ``rate_distortion``  KL(q(z|x) ‖ p(z)) in closed form (Kingma & Welling 2014,
                        app. B); rate and distortion per image, ELBO = −(distortion + rate)
* ``fit_posterior``     a q(z|x) fitted per image (no encoder): the amortisation gap
* ``wrap_networks``     any module with the text's encode/decode as a ``VAE``
* ``encoder_gradients`` reparameterisation vs score-function (REINFORCE, with or without a
                        leave-one-out baseline) gradients of the ELBO with respect to the encoder
                        output (μ_φ(x), σ_φ(x))
* ``negative_elbo``     −(14.13) for a batch, one reparameterised sample per image (the lesson's
                        exercise; any module with the text's ``encode``/``decode`` trains with it)
* ``make_loss`` / ``make_val_fn``  the loss and validation functions of training on the digits
                        (``recipes.train_vae``, which was ``vae.train_vae``), re-dequantising every
                        batch; bits/dim of the dequantised data.

Shapes: n = data dimension (64 for the digits), d = latent dimension, b = batch, s / k = samples.
Torch only, no plotting, no grading. Device-agnostic: tensors follow the model / input.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from companion_lib._checks import (as_tensor, check_batch, check_choice, check_float, check_int,
                                   check_model_input)
from companion_lib.data import DIGIT_LEVELS, dequantize, dequantized_bits_per_dim
from companion_lib.gaussian import LOG_2PI, log_normal_diag
from companion_lib.nets import mlp
from companion_lib._moved import moved_getattr

__all__ = ["VAE", "DECODERS", "wrap_networks", "reparameterize", "log_normal", "elbo_term", "elbo_constant",
           "log_weights", "elbo_estimate", "elbo_and_iwae", "sample_log_weights", "iwae_bounds", "kl_to_prior",
           "rate_distortion", "fit_posterior", "encoder_gradients", "negative_elbo", "make_loss",
           "make_val_fn"]

#: Names that moved out of this module, importable from here for this release (a DeprecationWarning
#: names the new home); listed in companion_lib._layers.DEPRECATED_ALIASES.
_MOVED = {'train_vae': 'recipes.train_vae'}
__getattr__ = moved_getattr(__name__, _MOVED)


#: The decoders ``VAE`` offers: the text's (14.11) and two for pixels with few levels.
DECODERS = ("gaussian", "gaussian_per_pixel", "categorical")


class VAE(nn.Module):
    """The VAE of eqs. 14.10–14.11 with isotropic Gaussians and *scalar* standard deviations.

    q(z|x) = N(z; μ_x, σ_x² I_d), (μ_x, σ_x) = E_φ(x)       eq. 14.10
    p(x|z) = N(x; μ_z, σ_z² I_n), (μ_z, σ_z) = D_θ(z)       eq. 14.11   (``decoder="gaussian"``)
    p(z)   = N(z; 0, I_d)                                  eq. 14.11

    E_φ and D_θ are MLPs (``nets.mlp``: ``depth`` hidden layers of width ``hidden``, SiLU) with one
    extra output for log σ. The decoder mean goes through a sigmoid (data live in [0, 1)), an
    implementation choice. Two other decoders, same encoder and prior:

    * ``"gaussian_per_pixel"``: p(x|z) = N(x; μ_z, diag(σ_z²)), one σ per pixel (2n outputs);
    * ``"categorical"``: each pixel's level ℓ = ⌊levels·y⌋ is drawn from its own ``levels``-way
      distribution softmax(logits) (n·levels outputs). As a density of the dequantised y it is constant
      on each cell of width 1/levels: p(y|z) = p(ℓ|z)·levels^n.
    """

    def __init__(self, n_dims: int = 64, latent_dims: int = 16, hidden: int = 128, depth: int = 2,
                 decoder: str = "gaussian", levels: int = DIGIT_LEVELS):
        super().__init__()
        self.n_dims = check_int(n_dims, "n_dims", low=1)
        self.latent_dims = check_int(latent_dims, "latent_dims", low=1)
        check_int(hidden, "hidden", low=1)
        check_int(depth, "depth", low=1)
        self.decoder_type = check_choice(decoder, "decoder", DECODERS)
        self.levels = check_int(levels, "levels", low=2)
        n_out = {"gaussian": self.n_dims + 1, "gaussian_per_pixel": 2 * self.n_dims,
                 "categorical": self.n_dims * self.levels}[self.decoder_type]
        self.encoder = mlp(self.n_dims, hidden, self.latent_dims + 1, depth)
        self.decoder = mlp(self.latent_dims, hidden, n_out, depth)

    @staticmethod
    def _sigma(raw: torch.Tensor) -> torch.Tensor:
        return torch.exp(raw.clamp(-9.0, 4.0))

    def encode(self, x: torch.Tensor):
        """x (..., n) → μ_φ(x) (..., d) and σ_φ(x) (...,) > 0."""
        out = self.encoder(check_model_input(self, check_batch(x, "x", self.n_dims, any_batch_shape=True),
                                             "x", "the VAE"))
        return out[..., :-1], self._sigma(out[..., -1])

    def decode(self, z: torch.Tensor):
        """z (..., d) → the decoder's output, by ``decoder_type``:

        * ``"gaussian"``: μ_θ(z) (..., n) in (0, 1) and σ_θ(z) (...,) > 0 (one σ per image);
        * ``"gaussian_per_pixel"``: μ_θ(z) (..., n) and σ_θ(z) (..., n) > 0;
        * ``"categorical"``: the mean E[y|z] (..., n) (bin centres weighted by their probabilities)
          and the logits (..., n, levels).
        """
        out = self.decoder(check_model_input(self, check_batch(z, "z", self.latent_dims, any_batch_shape=True),
                                             "z", "the VAE"))
        n = self.n_dims
        if self.decoder_type == "gaussian":
            return torch.sigmoid(out[..., :-1]), self._sigma(out[..., -1])
        if self.decoder_type == "gaussian_per_pixel":
            return torch.sigmoid(out[..., :n]), self._sigma(out[..., n:])
        logits = out.reshape(*out.shape[:-1], n, self.levels)
        centres = (torch.arange(self.levels, dtype=out.dtype, device=out.device) + 0.5) / self.levels
        return torch.softmax(logits, -1) @ centres, logits

    def log_likelihood(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p_θ(y | z) with all constants: y (b, n) in [0, 1), z (..., b, d) → (..., b)."""
        first, second = self.decode(z)
        if self.decoder_type != "categorical":
            return log_normal(y, first, second)                     # eq. 14.11 (or per-pixel σ)
        level = torch.floor(y * self.levels).clamp(0, self.levels - 1).long()
        log_p = torch.log_softmax(second, -1)                       # (..., b, n, levels)
        picked = log_p.gather(-1, level.expand(log_p.shape[:-1])[..., None])[..., 0]
        return picked.sum(-1) + self.n_dims * math.log(self.levels)  # p(ℓ|z)·levels^n on the cell

    @torch.no_grad()
    def sample(self, m: int, generator: torch.Generator | None = None, noise: bool = True):
        """m draws from the model: z ~ N(0, I_d), then y ~ p_θ(y|z) (``noise=True``) or the decoder
        mean E[y|z] (``noise=False``). Gaussian: y = μ_θ(z) + σ_θ(z)·ε; categorical: a level per pixel,
        dequantised uniformly within its cell. Returns (m, n)."""
        m = check_int(m, "m", low=1)
        p = next(self.parameters())
        z = _randn((m, self.latent_dims), generator, p)
        mean, second = self.decode(z)
        if not noise:
            return mean
        if self.decoder_type == "categorical":
            probs = torch.softmax(second, -1).reshape(-1, self.levels).cpu()
            level = torch.multinomial(probs, 1, generator=generator).reshape(mean.shape)
            u = torch.rand(mean.shape, generator=generator, dtype=mean.dtype)
            return ((level + u) / self.levels).to(p.device)
        sigma = second if self.decoder_type == "gaussian_per_pixel" else second[:, None]
        return mean + sigma * _randn(mean.shape, generator, p)


class _WrappedNetworks(VAE):
    """``wrap_networks``' result: the text's VAE whose encode/decode are another module's."""

    def __init__(self, networks: nn.Module, n_dims: int, latent_dims: int):
        nn.Module.__init__(self)
        self.n_dims = check_int(n_dims, "n_dims", low=1)
        self.latent_dims = check_int(latent_dims, "latent_dims", low=1)
        self.decoder_type, self.levels = "gaussian", DIGIT_LEVELS
        self.networks = networks

    def encode(self, x: torch.Tensor):
        mu, sigma = self.networks.encode(check_batch(x, "x", self.n_dims, any_batch_shape=True))
        return mu, sigma.reshape(mu.shape[:-1])

    def decode(self, z: torch.Tensor):
        mu, sigma = self.networks.decode(check_batch(z, "z", self.latent_dims, any_batch_shape=True))
        return mu, sigma.reshape(mu.shape[:-1])


def wrap_networks(networks: nn.Module, n_dims: int, latent_dims: int) -> VAE:
    """Any module with the text's ``encode(y) → (μ_φ (..., d), σ_φ (...,))`` and ``decode(z) →
    (μ_θ (..., n), σ_θ (...,))`` (eqs. 14.10–14.11; σ of shape (..., 1) is accepted) as a ``VAE`` with
    the text's Gaussian decoder, so that ``log_weights``, ``elbo_and_iwae``, ``sample`` … run on it.
    The module's parameters are shared, not copied."""
    if not isinstance(networks, nn.Module) or not all(callable(getattr(networks, m, None))
                                                     for m in ("encode", "decode")):
        raise TypeError("networks must be a torch.nn.Module with encode(y) and decode(z), got "
                        f"{type(networks).__name__}")
    return _WrappedNetworks(networks, n_dims, latent_dims)


# --------------------------------------------------------------------------------------------------
# The reparameterisation trick and the terms of the ELBO
def _randn(shape, generator, like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise drawn on the CPU from ``generator`` (reproducible across devices), in
    the dtype of ``like`` and moved to its device."""
    return torch.randn(tuple(shape), generator=generator, dtype=like.dtype).to(like.device)


def _sigma_column(sigma: torch.Tensor, n: int, name: str) -> torch.Tensor:
    """Accept a scalar-per-row σ of shape (n,) or (n, 1); return (n, 1)."""
    if sigma.ndim == 1 and sigma.shape[0] == n:
        sigma = sigma[:, None]
    if sigma.ndim != 2 or sigma.shape != (n, 1):
        raise ValueError(f"{name} must have shape ({n},) or ({n}, 1) (one scalar per row), "
                         f"got {tuple(sigma.shape)}")
    if (sigma <= 0).any():
        raise ValueError(f"{name} must be positive (a standard deviation)")
    return sigma


def reparameterize(mu, sigma, eps) -> torch.Tensor:
    """z = μ + σ·ε (§14.5.1): mu (n, d), sigma (n,) or (n, 1), eps (n, d) or (s, n, d) → shape of eps.

    With eps (s, n, d) row j of sample i uses its own ε_j: z_ij = μ_φ(x_i) + σ_φ(x_i)·ε_j.
    """
    mu = as_tensor(mu, "mu", ndim=2, dtype=None)
    n, d = mu.shape
    sigma = _sigma_column(as_tensor(sigma, "sigma", ndim=(1, 2), dtype=mu.dtype, device=mu.device),
                          n, "sigma")
    eps = as_tensor(eps, "eps", ndim=(2, 3), dtype=mu.dtype, device=mu.device)
    if eps.shape[-2:] != (n, d):
        raise ValueError(f"eps must have shape ({n}, {d}) or (s, {n}, {d}) to match mu, "
                         f"got {tuple(eps.shape)}")
    return mu + sigma * eps                                         # z = μ + σ ε  (§14.5.1)


def log_normal(x: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """log N(x; μ, σ² I_D) with all constants (eq. 14.11): x, mu (..., D), sigma (...) → (...).

    **sigma is the standard deviation σ** (the encoder's and decoder's outputs), and the result is
    summed over the last dimension. A sigma with as many dimensions as ``x`` is one standard deviation
    per coordinate, log N(x; μ, diag(σ²)).

    Deprecated name (kept for this release; the lessons' exercises use it): the one Gaussian
    log-density is ``gaussian.log_normal_diag(x, mu, var)`` with the **variance** var = σ²; this is
    ``gaussian.log_normal_diag(x, mu, sigma ** 2)`` (with ``sigma[..., None] ** 2`` for one σ per row).
    """
    x, mu, sigma = (as_tensor(v, n, dtype=None) for v, n in ((x, "x"), (mu, "mu"), (sigma, "sigma")))
    try:
        shape = torch.broadcast_shapes(x.shape, mu.shape)
        torch.broadcast_shapes(sigma.shape if sigma.ndim == len(shape) else (*sigma.shape, 1), shape)
    except RuntimeError as err:
        raise ValueError(f"x {tuple(x.shape)}, mu {tuple(mu.shape)} and sigma {tuple(sigma.shape)} must "
                         "broadcast: x, mu (..., D), sigma (...) or (..., D)") from err
    if (sigma <= 0).any():
        raise ValueError("sigma (the standard deviation σ) must be > 0")
    var = sigma**2
    if var.ndim < len(shape):
        var = var[..., None]                                        # one σ per row: σ² I
    return log_normal_diag(x, mu, var, check=False)


def elbo_constant(n_dims: int) -> float:
    """The constant (14.13) drops from each summand of (14.12): −(n/2)·log 2π.

    log p(x|z) carries −(n/2) log 2π, log p(z) carries −(d/2) log 2π and −log q(z|x) carries
    +(d/2) log 2π, so the latent constants cancel and only the data one is left.
    """
    return -0.5 * check_int(n_dims, "n_dims", low=1) * LOG_2PI


def elbo_term(x, mu_dec, sigma_dec, z, mu_enc, sigma_enc) -> torch.Tensor:
    """One summand of (14.12) in the explicit form (14.13), constants dropped (as in the text).

    x (b, n) data, mu_dec = μ_θ(z) (b, n), sigma_dec = σ_θ(z) (b,) or (b, 1), z (b, d),
    mu_enc = μ_φ(x) (b, d), sigma_enc = σ_φ(x) (b,) or (b, 1). Returns (b,):

    −½ [ ‖x − μ_θ‖²/σ_θ² + n log σ_θ² + ‖z‖² − ‖z − μ_φ‖²/σ_φ² − d log σ_φ² ]     eq. 14.13

    Adding ``elbo_constant(n)`` gives log p(x|z) + log p(z) − log q(z|x) exactly.
    """
    x = as_tensor(x, "x", ndim=2, dtype=None, min_rows=1)
    b, n = x.shape
    kw = dict(dtype=x.dtype, device=x.device)
    mu_dec = as_tensor(mu_dec, "mu_dec", shape=(b, n), shape_of="x", **kw)
    z = as_tensor(z, "z", ndim=2, **kw)
    if z.shape[0] != b:
        raise ValueError(f"z must have shape ({b}, d) to match x, got {tuple(z.shape)}")
    d = z.shape[1]
    mu_enc = as_tensor(mu_enc, "mu_enc", shape=(b, d), shape_of="z", **kw)
    s_dec = _sigma_column(as_tensor(sigma_dec, "sigma_dec", ndim=(1, 2), **kw), b, "sigma_dec")[:, 0]
    s_enc = _sigma_column(as_tensor(sigma_enc, "sigma_enc", ndim=(1, 2), **kw), b, "sigma_enc")[:, 0]
    return -0.5 * (((x - mu_dec) ** 2).sum(-1) / s_dec**2 + n * torch.log(s_dec**2)   # eq. 14.13
                   + (z**2).sum(-1)
                   - ((z - mu_enc) ** 2).sum(-1) / s_enc**2 - d * torch.log(s_enc**2))


def _check_model_input(model: VAE, y, name: str = "y") -> torch.Tensor:
    if not isinstance(model, VAE):
        raise ValueError(f"model must be a companion_lib.vae.VAE, got {type(model).__name__}")
    p = next(model.parameters())
    return as_tensor(y, name, shape=(None, model.n_dims), dtype=p.dtype, device=p.device, min_rows=1)


def _check_posterior(model: VAE, y: torch.Tensor, posterior):
    """(μ (b, d), σ (b,)) of a q(z|y) given per image instead of the encoder's (validated)."""
    if not isinstance(posterior, (tuple, list)) or len(posterior) != 2:
        raise TypeError("posterior must be a pair (mu (b, d), sigma (b,)), got "
                        f"{type(posterior).__name__}")
    b, d = y.shape[0], model.latent_dims
    mu = as_tensor(posterior[0], "posterior mu", shape=(b, d), dtype=y.dtype, device=y.device)
    sigma = _sigma_column(as_tensor(posterior[1], "posterior sigma", ndim=(1, 2), dtype=y.dtype,
                                    device=y.device), b, "posterior sigma")[:, 0]
    return mu, sigma


def log_weights(model: VAE, y, s: int = 1, generator: torch.Generator | None = None,
                eps: torch.Tensor | None = None, posterior=None) -> torch.Tensor:
    """The exact summands of (14.12): log p(y|z_j) + log p(z_j) − log q(z_j|y), shape (s, b).

    y (b, n); z_j = μ_φ(y) + σ_φ(y)·ε_j with ε_j ~ N(0, I_d) drawn from ``generator`` (or passed in
    as ``eps`` (s, b, d)). Differentiable in the model's parameters (the reparameterisation trick).
    ``posterior=(mu (b, d), sigma (b,))``: use this q(z|y) = N(mu, sigma² I_d) per image instead of
    the encoder's (e.g. one fitted per image by ``fit_posterior``: the amortisation gap).
    """
    y = _check_model_input(model, y)
    s = check_int(s, "s", low=1)
    if posterior is None:
        mu_e, sig_e = model.encode(y)                               # eq. 14.10
    else:
        mu_e, sig_e = _check_posterior(model, y, posterior)
    if eps is None:
        eps = _randn((s, y.shape[0], model.latent_dims), generator, y)
    z = reparameterize(mu_e, sig_e, eps)                            # (s, b, d)
    log_px_z = model.log_likelihood(y, z)                           # log p(x|z), eq. 14.11
    log_pz = log_normal(z, torch.zeros_like(z), torch.ones_like(z[..., 0]))  # log p(z), N(0, I_d)
    log_qz_x = log_normal(z, mu_e, sig_e)                           # log q(z|x)
    return log_px_z + log_pz - log_qz_x                             # eq. 14.12 summand


def elbo_estimate(model: VAE, y, s: int = 1, generator: torch.Generator | None = None,
                  reduction: str = "mean") -> torch.Tensor:
    """Monte-Carlo ELBO per data point, (b,), from s reparameterised samples.

    ``reduction="sum"`` is (14.12) as printed: the *sum* over s samples, an unbiased estimate of
    s × ELBO. ``reduction="mean"`` divides by s: the unbiased estimate of the ELBO itself.
    """
    check_choice(reduction, "reduction", ("mean", "sum"))
    lw = log_weights(model, y, s, generator)
    return lw.sum(0) if reduction == "sum" else lw.mean(0)


@torch.no_grad()
def elbo_and_iwae(model: VAE, y, k: int = 100, generator: torch.Generator | None = None,
                  chunk: int = 100, posterior=None):
    """ELBO and importance-weighted bound (IWAE, Burda et al. 2016) per data point, both (b,).

    From the same k samples z_j ~ q(z|y) with log-weights w_j = log p(y, z_j) − log q(z_j|y):
    ELBO ≈ mean_j w_j,  IWAE_k = log mean_j exp(w_j) ≥ mean_j w_j (Jensen), and IWAE_k ≤ log p(y).
    Samples are drawn ``chunk`` at a time to bound memory. ``posterior``: as in ``log_weights``.
    """
    lw = sample_log_weights(model, y, k, generator, chunk, posterior)   # (k, b)
    return lw.mean(0), torch.logsumexp(lw, 0) - math.log(k)


@torch.no_grad()
def sample_log_weights(model: VAE, y, k: int = 100, generator: torch.Generator | None = None,
                       chunk: int = 100, posterior=None) -> torch.Tensor:
    """k log-weights log p(y, z_j) − log q(z_j|y) per image, (k, b), without a graph, drawn ``chunk``
    samples at a time (``log_weights`` under ``torch.no_grad()``; ``posterior`` as there)."""
    k = check_int(k, "k", low=1)
    chunk = check_int(chunk, "chunk", low=1)
    parts, left = [], k
    while left > 0:
        m = min(chunk, left)
        parts.append(log_weights(model, y, m, generator, posterior=posterior))
        left -= m
    return torch.cat(parts, 0)


def iwae_bounds(log_w: torch.Tensor, ks) -> dict:
    """IWAE_k (Burda et al. 2016) for each k in ``ks`` from K log-weights per image, (K, b):
    the K samples are cut into ⌊K/k⌋ disjoint groups of k, and each image's bound is the mean over its
    groups of log (1/k) Σ_{j in group} w_j (an unbiased estimate of IWAE_k, whose expectation rises
    with k towards log p(y)). Returns {k: (b,) tensor}; every k must be between 1 and K."""
    log_w = as_tensor(log_w, "log_w", ndim=2, dtype=None, min_rows=1)
    K = log_w.shape[0]
    if not isinstance(ks, (list, tuple)) or not ks:
        raise TypeError(f"ks must be a non-empty list of sample sizes k, got {type(ks).__name__}")
    out = {}
    for k in ks:
        k = check_int(k, "ks", low=1, high=K)
        groups = log_w[: (K // k) * k].reshape(K // k, k, -1)
        out[k] = (torch.logsumexp(groups, 1) - math.log(k)).mean(0)
    return out


def kl_to_prior(mu, sigma) -> torch.Tensor:
    """KL(N(μ, σ² I_d) ‖ N(0, I_d)) in closed form, ½(‖μ‖² + dσ² − d − d log σ²) (Kingma & Welling
    2014, appendix B): mu (..., d), sigma (...,) one standard deviation per row → (...,) nats.

    The *rate* of a VAE: the mean over images of KL(q_φ(z|x) ‖ p(z)), the information (in nats) the
    code carries about x on average; the ELBO is −(distortion + rate)."""
    mu = as_tensor(mu, "mu", dtype=None)
    if mu.ndim < 1:
        raise ValueError("mu must have shape (..., d)")
    sigma = as_tensor(sigma, "sigma", dtype=mu.dtype, device=mu.device)
    if sigma.shape != mu.shape[:-1]:
        raise ValueError(f"sigma must have shape {tuple(mu.shape[:-1])} (one σ per row of mu), "
                         f"got {tuple(sigma.shape)}")
    if (sigma <= 0).any():
        raise ValueError("sigma (the standard deviation σ) must be > 0")
    d = mu.shape[-1]
    var = sigma**2
    return 0.5 * ((mu**2).sum(-1) + d * var - d - d * torch.log(var))


def rate_distortion(model: VAE, y, k: int = 1, generator: torch.Generator | None = None,
                    posterior=None):
    """Rate and distortion of a VAE per image, both (b,) nats: rate = KL(q(z|y) ‖ p(z)) in closed
    form (``kl_to_prior``), distortion = −E_q[log p_θ(y|z)] from k reparameterised samples, so that
    ELBO = −(distortion + rate) (Kingma & Welling 2014, eq. 3). Differentiable (a β-VAE loss is
    distortion + β·rate). ``posterior``: as in ``log_weights``."""
    y = _check_model_input(model, y)
    k = check_int(k, "k", low=1)
    mu_e, sig_e = model.encode(y) if posterior is None else _check_posterior(model, y, posterior)
    z = reparameterize(mu_e, sig_e, _randn((k, y.shape[0], model.latent_dims), generator, y))
    return kl_to_prior(mu_e, sig_e), -model.log_likelihood(y, z).mean(0)


def fit_posterior(model: VAE, y, steps: int = 100, lr: float = 0.05, s: int = 8,
                  generator: torch.Generator | None = None):
    """q(z|y) = N(μ, σ² I_d) fitted to each image separately (no encoder): start from the encoder's
    (μ_φ(y), log σ_φ(y)) and take ``steps`` Adam steps (learning rate ``lr``) on the s-sample ELBO of
    each image, the model's weights held fixed. The ELBO of this q minus the encoder's is the
    *amortisation gap* (one encoder for all images instead of a q per image; Cremer, Li & Duvenaud
    2018). y (b, n). Returns (mu (b, d), sigma (b,)), without a graph, for ``posterior=``."""
    y = _check_model_input(model, y)
    steps = check_int(steps, "steps", low=1)
    s = check_int(s, "s", low=1)
    lr = check_float(lr, "lr", low=0.0, low_open=True)
    with torch.no_grad():
        mu0, sig0 = model.encode(y)
    mu = mu0.clone().requires_grad_(True)
    log_sigma = torch.log(sig0).clone().requires_grad_(True)
    opt = torch.optim.Adam([mu, log_sigma], lr=lr)
    frozen = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            opt.zero_grad()
            lw = log_weights(model, y, s, generator, posterior=(mu, log_sigma.exp()))
            (-lw.mean(0).sum()).backward()              # images are independent: one sum, per-image steps
            opt.step()
    finally:
        for p, flag in zip(model.parameters(), frozen):
            p.requires_grad_(flag)
    return mu.detach(), log_sigma.detach().exp()


# --------------------------------------------------------------------------------------------------
# Gradient estimators with respect to the encoder output
def encoder_gradients(model: VAE, y, s: int, repeats: int, generator: torch.Generator | None = None,
                      estimator: str = "reparam") -> torch.Tensor:
    """``repeats`` independent s-sample estimates of ∇ ELBO w.r.t. the encoder output (μ_φ(y), σ_φ(y)).

    y (n,) one (dequantised) image. Returns (repeats, d + 1): d entries for μ_φ, one for σ_φ.

    * ``"reparam"``: differentiate (1/s) Σ_j f(μ + σ ε_j), f(z) = log p(y, z) − log q(z|y; μ, σ).
    * ``"score"``  (REINFORCE): (1/s) Σ_j [ f(z_j) ∇ log q(z_j; μ, σ) + ∇_{μ,σ} f(z_j) ] with z_j held
      fixed; the second part equals −∇ log q(z_j) and has mean zero. No gradient flows through z.
    * ``"score_loo"``: the same with a leave-one-out baseline, f(z_j) replaced by
      f(z_j) − (1/(s−1)) Σ_{k≠j} f(z_k); the baseline is independent of z_j, so it stays unbiased
      (needs s ≥ 2).
    All three are unbiased for the same gradient; the model's own parameters are not touched.
    """
    check_choice(estimator, "estimator", ("reparam", "score", "score_loo"))
    s = check_int(s, "s", low=2 if estimator == "score_loo" else 1)
    repeats = check_int(repeats, "repeats", low=1)
    y = _check_model_input(model, as_tensor(y, "y", ndim=1, dtype=None)[None, :])
    d = model.latent_dims
    with torch.no_grad():
        mu0, sig0 = model.encode(y)                                 # (1, d), (1,)
    mu = mu0.expand(repeats, d).clone().requires_grad_(True)        # one leaf per repeat
    sig = sig0.expand(repeats).clone().requires_grad_(True)
    eps = _randn((s, repeats, d), generator, y)
    z = mu + sig[:, None] * eps                                     # (s, R, d)
    if estimator != "reparam":
        z = z.detach()
    log_joint = model.log_likelihood(y, z) + log_normal(z, torch.zeros_like(z), torch.ones_like(z[..., 0]))
    log_q = log_normal(z, mu, sig)
    f = log_joint - log_q                                           # (s, R)
    weight = f.detach()
    if estimator == "score_loo":                                    # leave-one-out baseline
        weight = weight - (weight.sum(0, keepdim=True) - weight) / (s - 1)
    surrogate = f if estimator == "reparam" else weight * log_q + f
    g_mu, g_sig = torch.autograd.grad(surrogate.mean(0).sum(), (mu, sig))
    return torch.cat([g_mu, g_sig[:, None]], 1).detach()


# --------------------------------------------------------------------------------------------------
# Training on the digits (dequantised every batch)
def negative_elbo(model: nn.Module, y, eps) -> torch.Tensor:
    """−(14.13) for a batch, one reparameterised sample per image, constants dropped (as in the text).

    model: any module with the text's ``encode(y) → (μ_φ (b, d), σ_φ (b,))`` and
    ``decode(z) → (μ_θ (b, n), σ_θ (b,))``; y (b, n); eps (b, d) standard normal noise. With
    z = μ_φ(y) + σ_φ(y)·ε it returns (b,) values −[log p(y|z) + log p(z) − log q(z|y)] − (n/2)·log 2π
    (``elbo_term`` negated); adding ``−elbo_constant(n)`` gives the exact one-sample negative ELBO.
    """
    if not isinstance(model, nn.Module) or not all(callable(getattr(model, m, None)) for m in ("encode", "decode")):
        raise TypeError(f"model must be a torch.nn.Module with encode(y) and decode(z) (e.g. a "
                        f"companion_lib.vae.VAE), got a {type(model).__name__}")
    y = check_batch(y, "y", getattr(model, "n_dims", None))
    mu_e, sig_e = model.encode(y)                                   # eq. 14.10
    eps = check_batch(eps, "eps")
    if eps.shape != mu_e.shape:
        raise ValueError(f"eps must have shape {tuple(mu_e.shape)} (batch, latent dims) to match y and the "
                         f"encoder, got {tuple(eps.shape)}")
    z = reparameterize(mu_e, sig_e, eps)                            # §14.5.1
    mu_d, sig_d = model.decode(z)                                   # eq. 14.11
    return -elbo_term(y, mu_d, sig_d, z, mu_e, sig_e)               # eq. 14.13


def _batch_elbo(model, y, s, generator, neg_elbo, latent_dims, beta=None):
    """(b,) s-sample ELBO of dequantised y: the library's ``log_weights``, or a user's −(14.13); with
    ``beta``, −(distortion + β·rate) (the β-VAE objective, rate in closed form)."""
    if beta is not None:
        rate, distortion = rate_distortion(model, y, s, generator)
        return -(distortion + beta * rate)
    if neg_elbo is None:
        return log_weights(model, y, s, generator).mean(0)
    eps = _randn((s, y.shape[0], latent_dims), generator, y)
    parts = [-neg_elbo(model, y, eps[j]) for j in range(s)]
    return torch.stack(parts).mean(0) + elbo_constant(y.shape[1])


def _check_beta(beta, negative_elbo):
    if beta is None:
        return None
    if negative_elbo is not None:
        raise ValueError("give negative_elbo or beta, not both (beta trains the library's β-VAE loss)")
    return check_float(beta, "beta", low=0.0)


def make_loss(generator: torch.Generator | None = None, s: int = 1, levels: int = DIGIT_LEVELS,
              negative_elbo=None, latent_dims: int | None = None, beta: float | None = None):
    """loss_fn(model, x) for ``training.train``: x (b, n) raw levels 0..levels−1, dequantised afresh
    at every call (y = (x + u)/levels); returns the negative s-sample ELBO in bits/dim (scalar).

    ``negative_elbo(model, y, eps)`` (the contract of ``negative_elbo`` above, e.g. a student's) replaces
    the library's estimator; it needs ``latent_dims`` to draw ε. ``beta`` (≥ 0): minimise the β-VAE
    objective distortion + β·rate instead (``rate_distortion``; β = 1 is the ELBO with the KL in
    closed form, Kingma & Welling's estimator)."""
    s = check_int(s, "s", low=1)
    beta = _check_beta(beta, negative_elbo)
    if negative_elbo is not None:
        latent_dims = check_int(latent_dims, "latent_dims", low=1)

    def loss_fn(model: VAE, x: torch.Tensor) -> torch.Tensor:
        y = dequantize(x, generator, levels)
        elbo = _batch_elbo(model, y, s, generator, negative_elbo, latent_dims, beta)  # (b,), unbiased ELBO
        return dequantized_bits_per_dim(elbo, y.shape[1], levels).mean()

    return loss_fn


def make_val_fn(seed: int = 1234, s: int = 1, levels: int = DIGIT_LEVELS, negative_elbo=None,
                latent_dims: int | None = None, beta: float | None = None):
    """val_fn(model, x) → float: negative ELBO in bits/dim with the *same* dequantisation noise and ε
    at every call (a fresh generator seeded ``seed``), so early stopping compares like with like.
    ``negative_elbo``, ``latent_dims``, ``beta``: as in ``make_loss`` (with ``beta``, the β-VAE
    objective is what is validated)."""
    s = check_int(s, "s", low=1)
    beta = _check_beta(beta, negative_elbo)
    if negative_elbo is not None:
        latent_dims = check_int(latent_dims, "latent_dims", low=1)

    def val_fn(model: VAE, x: torch.Tensor) -> float:
        g = torch.Generator().manual_seed(seed)
        y = dequantize(x, g, levels)
        with torch.no_grad():
            elbo = _batch_elbo(model, y, s, g, negative_elbo, latent_dims, beta)
        return float(dequantized_bits_per_dim(elbo, y.shape[1], levels).mean())

    return val_fn
