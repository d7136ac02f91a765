# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 14.5 The variational autoencoder: solutions
#
# Worked solutions to the five exercises of `chapters/14_5_variational_autoencoder`. The last one
# trains the VAE built from Exercises 3 and 4 (a few seconds in quick mode).

# %%
import torch
from torch import nn

from companion_lib import data, metrics, recipes, settings, vae
from companion_lib.grading import check
from companion_lib.nets import mlp

run = settings.setup(seed=0)

# %% [markdown]
# ## Exercise 1: a reparameterised sample
#
# Row $i$ is $z_i = \mu_i + \sigma_i\,\varepsilon_i$ with one scalar $\sigma_i$ per row. Reshaping
# `sigma` to $(n, 1)$ makes it broadcast along the latent axis; this works whether it came as
# $(n,)$ or $(n, 1)$. Multiplying a $(n,)$ vector straight into a $(n, d)$ array would broadcast it
# along the *columns*, which raises when $n \ne d$ and is silently wrong when $n = d$.

# %%
def reparameterize(mu, sigma, eps):
    """mu (n, d), sigma (n,) or (n, 1), eps (n, d) -> z (n, d): row i a sample of N(mu_i, sigma_i^2 I_d)."""
    return mu + sigma.reshape(-1, 1) * eps


result = check("14.5.reparameterize", reparameterize)
assert result, result
result

# %% [markdown]
# ## Exercise 2: one term of the ELBO estimate, eq. (14.13)
#
# Sum the three Gaussian log-densities $\log\mathcal N(v; m, s^2 I_D) = -\tfrac12[\lVert v - m\rVert^2/s^2
# + D\log s^2 + D\log 2\pi]$: the decoder ($D = n$), the prior ($m = 0$, $s = 1$, $D = d$) and, with a
# minus sign, the encoder ($D = d$). Dropping the $\log 2\pi$ terms leaves (14.13); the dropped
# constant is $-\tfrac n2\log 2\pi$ because the two latent ones cancel.

# %%
def elbo_term(x, mu_dec, sigma_dec, z, mu_enc, sigma_enc):
    """x (b, n), mu_dec (b, n), sigma_dec (b,)|(b, 1), z (b, d), mu_enc (b, d), sigma_enc (b,)|(b, 1) -> (b,)."""
    n, d = x.shape[1], z.shape[1]
    var_dec = sigma_dec.reshape(-1) ** 2
    var_enc = sigma_enc.reshape(-1) ** 2
    return -0.5 * (((x - mu_dec) ** 2).sum(1) / var_dec + n * torch.log(var_dec)
                   + (z ** 2).sum(1)
                   - ((z - mu_enc) ** 2).sum(1) / var_enc - d * torch.log(var_enc))


result = check("14.5.elbo_term", elbo_term)
assert result, result
result


# %% [markdown]
# ## Exercise 3: the encoder and decoder
#
# The contract fixes shapes and meanings, not layers; one way to keep it: two MLPs
# (Linear–SiLU–Linear–SiLU–Linear of width `hidden`), each with one extra output. The last one is
# $\log\sigma$, which `exp` turns into a positive standard deviation; the decoder's means go through a
# sigmoid because the dequantised pixels lie in $[0, 1)$. Indexing with `...` lets `decode` take a batch
# of any shape, such as $(s, b, d)$, and every row is computed on its own (no batch statistics).
#
# `companion_lib.nets.mlp(n_in, hidden, n_out, depth=2)` builds this stack; writing the `nn.Sequential`
# out by hand, or another architecture (one hidden layer, softplus for σ), passes as well.

# %%
class VAENetworks(nn.Module):
    """Encoder E_phi and decoder D_theta of eqs. (14.10)-(14.11)."""

    def __init__(self, n_dims, latent_dims, hidden):
        super().__init__()
        self.encoder = mlp(n_dims, hidden, latent_dims + 1, depth=2)
        self.decoder = mlp(latent_dims, hidden, n_dims + 1, depth=2)

    def encode(self, y):
        out = self.encoder(y)
        return out[..., :-1], torch.exp(out[..., -1])

    def decode(self, z):
        out = self.decoder(z)
        return torch.sigmoid(out[..., :-1]), torch.exp(out[..., -1])


result = check("14.5.vae_networks", VAENetworks)
assert result, result
result

# %% [markdown]
# ## Exercise 4: the loss
#
# Encode, move the noise with Exercise 1, decode, and negate Exercise 2's summand. Every step is
# differentiable in the weights: that is the reparameterisation trick at work.

# %%
def negative_elbo(model, y, eps):
    """model with encode/decode; y (b, n); eps (b, d) -> (b,) minus the summand (14.13)."""
    mu_enc, sigma_enc = model.encode(y)
    z = reparameterize(mu_enc, sigma_enc, eps)
    mu_dec, sigma_dec = model.decode(z)
    return -elbo_term(y, mu_dec, sigma_dec, z, mu_enc, sigma_enc)


result = check("14.5.negative_elbo", negative_elbo)
assert result, result
result

# %% [markdown]
# ## Exercise 5: a short training run
#
# The lesson's training cell with these two answers (same rule, split, early stopping and seed),
# then the held-out negative ELBO on the fixed evaluation set.

# %%
digits = data.load_digits_split()
X_fit = torch.as_tensor(digits.X_fit, dtype=torch.float32, device=run.device)
X_val = torch.as_tensor(digits.X_val, dtype=torch.float32, device=run.device)
d, hidden = 16, run.budget(quick=128, full=512)
torch.manual_seed(2)
rule = dict(steps=run.budget(quick=5000, full=30_000), lr=run.budget(quick=2e-3, full=1e-3),
            patience=run.budget(quick=8, full=30), eval_every=50, batch_size=128)
fit = recipes.train_vae(X_fit, X_val, latent_dims=d, model=VAENetworks(64, d, hidden), negative_elbo=negative_elbo,
                        generator=run.generator, device=run.device, progress=False, **rule)
model = vae.wrap_networks(fit.model, 64, d)
elbo, _ = vae.elbo_and_iwae(model.eval(), data.heldout_digits().to(run.device), k=run.budget(quick=200, full=2000),
                            generator=torch.Generator().manual_seed(8))
bound = metrics.bits_per_dim(elbo.cpu(), n_dims=64)
print(f"held-out -ELBO {bound:.3f} bits/dim after {fit.steps_run} steps (best at {fit.best_step})")
result = check("14.5.trained_bound", bound)
assert result, result
result
