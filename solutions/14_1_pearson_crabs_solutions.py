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
# # Solutions: §14.1 Density estimation on Pearson's crabs
# Worked solutions of the exercises in `chapters/14_1_pearson_crabs`, checked by the same autograder.

# %%
import torch

from companion_lib import settings
from companion_lib.grading import check

run = settings.setup(seed=0)

# %% [markdown]
# ## Exercise 14.1.a: the maximum-likelihood Gaussian
# The log-likelihood is $\sum_i \log\mathcal N(x_i;\mu,\Sigma) = -\tfrac n2\log\det(2\pi\Sigma)
# - \tfrac12\sum_i (x_i-\mu)^\top\Sigma^{-1}(x_i-\mu)$. Its gradient in $\mu$ vanishes at the sample
# mean; its gradient in $\Sigma^{-1}$ gives $\Sigma = \frac1n\sum_i (x_i-\mu)(x_i-\mu)^\top$. The
# divisor is $n$: the unbiased $n-1$ version is *not* the likelihood maximiser.

# %%
def gaussian_mle(X):
    X = torch.as_tensor(X, dtype=torch.float64)
    mean = X.mean(dim=0)
    centred = X - mean
    return mean, centred.T @ centred / X.shape[0]


result = check("14.1.gaussian_mle", gaussian_mle)
assert result, result
result

# %% [markdown]
# ## Exercise 14.1.b: the E-step
# Bayes' rule on $p(h, x) = \rho_h\,\mathcal N(x;\mu_h,\sigma_h^2)$ gives
# $p(h=k\mid x) = \exp\big(\ell_k - \operatorname{logsumexp}_j \ell_j\big)$ with
# $\ell_k = \log\rho_k - \tfrac12\log(2\pi\sigma_k^2) - (x-\mu_k)^2/(2\sigma_k^2)$.
# Subtracting the log-sum-exp (instead of dividing densities) keeps far-away points from underflowing.

# %%
def e_step(x, weights, means, variances):
    x, w, m, v = (torch.as_tensor(a, dtype=torch.float64) for a in (x, weights, means, variances))
    log_joint = torch.log(w) - 0.5 * torch.log(2 * torch.pi * v) - (x[:, None] - m) ** 2 / (2 * v)
    return torch.exp(log_joint - torch.logsumexp(log_joint, dim=1, keepdim=True))


result = check("14.1.e_step", e_step)
assert result, result
result

# %% [markdown]
# ## Exercise 14.1.c: the M-step
# With responsibilities fixed, $\sum_i\sum_k r_{ik}\log[\rho_k\mathcal N(x_i;\mu_k,\sigma_k^2)]$ splits
# into one weighted maximum-likelihood problem per component plus one for the weights. With
# $N_k = \sum_i r_{ik}$: $\mu_k = \sum_i r_{ik}x_i/N_k$, $\sigma_k^2 = \sum_i r_{ik}(x_i-\mu_k)^2/N_k$
# (the weighted version of the closed form of Exercise 14.1.a), and a Lagrange multiplier for
# $\sum_k\rho_k = 1$ gives $\rho_k = N_k/n$.

# %%
def m_step(x, resp):
    x, r = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(resp, dtype=torch.float64)
    nk = r.sum(0)
    means = (r * x[:, None]).sum(0) / nk
    variances = (r * (x[:, None] - means) ** 2).sum(0) / nk
    return nk / x.shape[0], means, variances


result = check("14.1.m_step", m_step)
assert result, result
result
