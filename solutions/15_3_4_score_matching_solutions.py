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
# # §15.3.4 Denoising is score matching: solution
#
# The exercise of `chapters/15_3_4_score_matching`. No training here.

# %%
import math

import torch

from companion_lib import ebm, settings
from companion_lib.grading import check

run = settings.setup(seed=0)

# %% [markdown]
# ## The optimal noise prediction of a Gaussian mixture
#
# Under (15.8), a component $\mathcal N(\mu_k, \sigma_k^2 I)$ of $x_0$ becomes
# $\sqrt{\bar\alpha}\,\mathcal N(\mu_k, \sigma_k^2 I) * \mathcal N(0, (1-\bar\alpha) I) = \mathcal N(\sqrt{\bar\alpha}\,\mu_k, (\bar\alpha\sigma_k^2 + 1-\bar\alpha) I)$,
# and the weights do not change (the noise is added whatever the component). The score of that mixture
# is $\sum_k r_k(x)\,(\sqrt{\bar\alpha}\mu_k - x)/(\bar\alpha\sigma_k^2 + 1 - \bar\alpha)$ with the
# responsibilities $r_k$; eq. 15.13 multiplies it by $-\sqrt{1-\bar\alpha}$.

# %%
def eps_star(x, alpha_bar, weights, means, variances):
    noisy_means = math.sqrt(alpha_bar) * means
    noisy_vars = alpha_bar * variances + (1 - alpha_bar)
    return -math.sqrt(1 - alpha_bar) * ebm.gmm_score(x, weights, noisy_means, noisy_vars)


check("15.3.4.eps_star", eps_star)

# %% [markdown]
# ## Denoising score matching for a score network
#
# By (15.8), $q(x_t\mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\,x_0, (1-\bar\alpha_t) I)$, whose score in $x_t$ is
# $-(x_t - \sqrt{\bar\alpha_t}\,x_0)/(1-\bar\alpha_t)$. With $x_t$ built from the noise,
# $x_t - \sqrt{\bar\alpha_t}\,x_0 = \sqrt{1-\bar\alpha_t}\,\epsilon$, so the target is $-\epsilon/\sqrt{1-\bar\alpha_t}$
# (Vincent 2011). Each row's squared norm is multiplied by its weight $\lambda$, then averaged over the batch;
# the loss stays a tensor so that training can differentiate it. With $\lambda_t = 1-\bar\alpha_t$ the loss is
# (15.10) for $\epsilon_\theta = -\sqrt{1-\bar\alpha_t}\,s_\theta$.

# %%
from companion_lib import forward_diffusion


def score_matching_loss(schedule, score_model, x0, t, noise, weight):
    xt = forward_diffusion.q_sample(schedule, x0, t, noise)
    target = -noise / schedule.at("one_minus_alpha_bars", t, x0).sqrt()
    return (weight * (score_model(xt, t) - target).pow(2).sum(1)).mean()


check("15.3.4.dsm_loss", score_matching_loss)
