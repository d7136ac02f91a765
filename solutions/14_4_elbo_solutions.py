# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # §14.4 The ELBO: worked solutions
#
# Solutions to the two exercises of `chapters/14_4_elbo`.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from companion_lib import settings
from companion_lib.grading import check

run = settings.setup(seed=0)

# %% [markdown]
# ## Exercise 1: the ELBO gap of a discrete latent variable
#
# By eq. 14.5 and Bayes' rule, the gap is KL(q ‖ p(h|x)) with log p(h|x) = log p(x,h) − log p(x) and
# log p(x) = logsumexp_h log p(x,h), all in log space: the check has log p(x, h) ≈ −2000, where every
# p(x, h) underflows, and a component 800 nats behind, whose posterior probability underflows to 0
# (so log(softmax) gives −inf) while log p(h|x) ≈ −800 is finite. `torch.log_softmax` normalises over
# h by subtracting the row maximum first, so it never forms log p(x) and keeps full precision even when
# |log p(x)| is huge; `log_joint − torch.logsumexp(log_joint, 1, keepdim=True)` is equally right at the
# check's magnitudes. `torch.special.xlogy(q, q)` is q log q with the convention 0 log 0 = 0; the second
# term must also skip q = 0 (where log p(h|x) may be very negative, but 0 times it is 0 anyway).

# %%
def elbo_gap(log_joint, q):
    """log_joint (n, K) = log p(x_i, h=k); q (n, K) rows on the simplex → (n,) KL(q ‖ p(h|x_i))."""
    log_joint, q = torch.as_tensor(log_joint), torch.as_tensor(q)
    log_post = torch.log_softmax(log_joint, dim=1)                             # log p(h|x)
    return (torch.special.xlogy(q, q) - q * log_post).sum(1)                    # Σ q (log q − log p(h|x))


result = check("14.4.elbo_gap", elbo_gap)
assert result, result
result

# %% [markdown]
# ## Exercise 2: the entropy of a Gaussian
#
# H = −E[log N(h; μ, Σ)] = ½ log det(2πΣ) + ½ E[(h−μ)ᵀΣ⁻¹(h−μ)], and the expectation equals
# tr(Σ⁻¹ Σ) = d. So H = ½ (d (1 + log 2π) + log det Σ). `torch.logdet` works on batches.

# %%
def gaussian_entropy(cov):
    """cov (d, d) or (..., d, d), symmetric positive definite → entropy of N(μ, cov) in nats, shape (...)."""
    cov = torch.as_tensor(cov)
    d = cov.shape[-1]
    return 0.5 * (d * (1 + math.log(2 * math.pi)) + torch.logdet(cov))


result = check("14.4.gaussian_entropy", gaussian_entropy)
assert result, result
result
