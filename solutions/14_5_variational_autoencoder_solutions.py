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
# Worked solutions to the two exercises of `chapters/14_5_variational_autoencoder`. No training here.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from companion_lib import settings
from companion_lib.grading import check

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
    """mu (n, d), sigma (n,) or (n, 1), eps (n, d) -> z (n, d)."""
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
