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
# # §14.3 Energy-based models: worked solutions
#
# Solutions to the four exercises of `chapters/14_3_energy_based_models`. Each runs in milliseconds.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from companion_lib import settings
from companion_lib.grading import check

run = settings.setup(seed=0)

# %% [markdown]
# ## Exercise 1: the score of a Gaussian-mixture energy
#
# With $E(x) = -\log\sum_k \rho_k\,\mathcal N(x;\mu_k,\sigma_k^2 I)$,
# $$-\nabla_x E(x) = \frac{\sum_k \rho_k \mathcal N(x;\mu_k,\sigma_k^2 I)\,(\mu_k - x)/\sigma_k^2}
# {\sum_j \rho_j \mathcal N(x;\mu_j,\sigma_j^2 I)} = \sum_k r_k(x)\,\frac{\mu_k - x}{\sigma_k^2},$$
# a responsibility-weighted pull towards each centre. The responsibilities are a softmax of
# $\log\rho_k - \|x-\mu_k\|^2/2\sigma_k^2 - \tfrac d2\log(2\pi\sigma_k^2)$; the last term matters
# because the widths differ (the $2\pi$ alone would cancel).

# %%
def gmm_score(x, weights, means, variances):
    """Score -∇E(x) of E(x) = -log Σ_k ρ_k N(x; μ_k, σ_k² I). x (n, d) -> (n, d)."""
    d = x.shape[1]
    diff = means[None, :, :] - x[:, None, :]                                    # (n, K, d): μ_k − x
    log_joint = (torch.log(weights / weights.sum()) - 0.5 * (diff ** 2).sum(-1) / variances
                 - 0.5 * d * torch.log(2 * math.pi * variances))                 # (n, K)
    resp = torch.softmax(log_joint, dim=1)                                      # r_k(x)
    return (resp[:, :, None] * diff / variances[None, :, None]).sum(1)


result = check("14.3.gmm_score", gmm_score)
assert result, result
result

# %% [markdown]
# ## Exercise 2: one Langevin step
#
# The drift is half the step size times the score, the noise has variance $\eta$ (standard deviation
# $\sqrt\eta$). With this scaling the chain is a discretisation of the Langevin diffusion whose
# stationary distribution is $P = e^{-E}/Z$.

# %%
def langevin_step(x, score, step_size, noise):
    """x + (η/2)·score + √η·noise, all (n, 2)."""
    return x + 0.5 * step_size * score + math.sqrt(step_size) * noise


result = check("14.3.langevin_step", langevin_step)
assert result, result
result

# %% [markdown]
# ## Exercise 3: the denoising score-matching loss
#
# The score of the perturbed points comes from one call to `torch.autograd.grad` on the summed
# energies (each point's energy depends only on that point, so the gradient of the sum holds every
# point's gradient). `create_graph=True` keeps that gradient a differentiable function of the
# weights: the loss is a function of $\nabla_x E_\theta$, so training must differentiate through it.
# The noisy points themselves are leaves that require a gradient; the data do not.

# %%
def dsm_loss(energy_fn, x, sigma, generator):
    """Mean over the batch of ½‖σ·s_θ(x + σε) + ε‖², s_θ = −∇_x E_θ; differentiable in θ."""
    eps = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    x_tilde = (x + sigma * eps).detach().requires_grad_(True)
    (grad_e,) = torch.autograd.grad(energy_fn(x_tilde).sum(), x_tilde, create_graph=True)
    return 0.5 * ((sigma * -grad_e + eps) ** 2).sum(1).mean()


result = check("14.3.dsm_loss", dsm_loss)
assert result, result
result

# %% [markdown]
# ## Exercise 4: the contrastive-divergence loss
#
# $\nabla_\theta\,\mathrm{NLL} = \mathbb E_{\text{data}}[\nabla_\theta E_\theta] - \mathbb E_{P_\theta}[\nabla_\theta E_\theta]$:
# a difference of two averages of energy gradients, so the difference of the two average *energies*
# has exactly that gradient once the expectation under $P_\theta$ is replaced by the samples' mean.
# The samples must be constants: `detach()` cuts them off from the sampler's graph (otherwise autograd
# would also differentiate how the samples moved when θ changed, which is not part of the estimate).
# Means, not sums: the data batch and the sample batch may have different sizes.

# %%
def cd_loss(energy_fn, x_data, x_model):
    """mean E_θ(x_data) − mean E_θ(x_model), the samples held fixed; a scalar."""
    return energy_fn(x_data).mean() - energy_fn(x_model.detach()).mean()


result = check("14.3.cd_loss", cd_loss)
assert result, result
result
