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
# # §14.2 Maximum likelihood is minimum KL divergence: solutions
#
# Worked solutions to the three exercises of `chapters/14_2_maximum_likelihood_is_kl`.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from companion_lib import settings
from companion_lib.grading import check

run = settings.setup(seed=0)

# %% [markdown]
# ## Exercise 1: KL between two Gaussians
#
# For one coordinate, $\log p(x) - \log q(x) = \tfrac12\log\frac{v_2}{v_1} - \frac{(x-\mu_1)^2}{2v_1} +
# \frac{(x-\mu_2)^2}{2v_2}$. Take the expectation under $p = \mathcal N(\mu_1, v_1)$, using
# $\mathbb E_p(x-\mu_1)^2 = v_1$ and $\mathbb E_p(x-\mu_2)^2 = v_1 + (\mu_1-\mu_2)^2$:
#
# $$\mathrm{KL}(p\|q) = \tfrac12\Bigl[\log\frac{v_2}{v_1} + \frac{v_1 + (\mu_1-\mu_2)^2}{v_2} - 1\Bigr].$$
#
# The coordinates of diagonal Gaussians are independent, so their KLs add. Sanity checks: it is 0 when
# $p = q$, and it is not symmetric in $(1, 2)$.

# %%
def kl_gaussians(mu1, var1, mu2, var2):
    """KL(N(mu1, diag var1) ‖ N(mu2, diag var2)); inputs 0-d or (d,), variances > 0 → 0-d tensor."""
    mu1, var1, mu2, var2 = (torch.as_tensor(a, dtype=torch.float64) for a in (mu1, var1, mu2, var2))
    return 0.5 * (torch.log(var2 / var1) + (var1 + (mu1 - mu2) ** 2) / var2 - 1).sum()

result = check("14.2.kl_gaussians", kl_gaussians)
assert result, result
result

# %% [markdown]
# ## Exercise 2: the Monte-Carlo estimate of KL(P‖Q)
#
# $\mathrm{KL}(P\|Q) = \mathbb E_{x\sim P}[\log P(x) - \log Q(x)]$, so with $x_1..x_n$ drawn from $P$ the
# average $\frac1n\sum_i (\log P(x_i) - \log Q(x_i))$ is an unbiased estimate. Its terms are independent,
# so its variance is the variance of one term over $n$: the standard error is the sample standard deviation
# of the terms (divisor $n-1$) over $\sqrt n$. Both reduce the last axis, so a batch of data sets
# `(..., n)` gives one estimate per data set.

# %%
def kl_estimate(log_p, log_q):
    """log_p, log_q (..., n) at n samples of P → (estimate (...), standard error (...)) of KL(P‖Q)."""
    terms = torch.as_tensor(log_p) - torch.as_tensor(log_q)               # log P(x_i) − log Q(x_i)
    n = terms.shape[-1]
    return terms.mean(-1), terms.std(-1, correction=1) / n ** 0.5

result = check("14.2.kl_estimate", kl_estimate)
assert result, result
result

# %% [markdown]
# ## Exercise 3: the maximum-likelihood $\sigma^2$ of $\mathcal N(\mu, \sigma^2 I)$
#
# The negative log-likelihood is $L(\sigma^2) = \frac{S}{2\sigma^2} + \frac{md}{2}\log(2\pi\sigma^2)$ with
# $S = \sum_i |x_i - \mu|^2$. Its derivative $-\frac{S}{2\sigma^4} + \frac{md}{2\sigma^2}$ vanishes at
# $\sigma^2 = S/(md)$: the average of all $m \cdot d$ squared deviations (not $S/m$, which is $d$ times larger).

# %%
def sigma2_mle(X):
    """The σ² of the maximum-likelihood N(μ, σ²I) for data X (m, d); a 0-d tensor."""
    X = torch.as_tensor(X, dtype=torch.float64)
    m, d = X.shape
    return ((X - X.mean(0)) ** 2).sum() / (m * d)

result = check("14.2.sigma2_mle", sigma2_mle)
assert result, result
result
