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
# # §15.3 The reverse process: solutions
#
# Worked solutions to the six exercises of `chapters/15_3_3_reverse_diffusion_ddpm`. No training here.

# %%
import torch

from companion_lib import settings
from companion_lib.grading import check

run = settings.setup(seed=0)

# %% [markdown]
# ## Exercise 1: Problem 15.3.3 (i)
#
# As a function of $x_{t-1}$, $\log q(x_t\mid x_{t-1}) + \log q(x_{t-1}\mid x_0)$ is, up to constants,
# $$-\frac{\lVert x_t - \sqrt{\alpha_t}\,x_{t-1}\rVert^2}{2\beta_t} - \frac{\lVert x_{t-1} - \sqrt{\bar\alpha_{t-1}}\,x_0\rVert^2}{2(1-\bar\alpha_{t-1})}.$$
# The coefficient of $-\tfrac12\lVert x_{t-1}\rVert^2$ is the precision
# $\frac{\alpha_t}{\beta_t} + \frac{1}{1-\bar\alpha_{t-1}} = \frac{\alpha_t(1-\bar\alpha_{t-1}) + \beta_t}{\beta_t(1-\bar\alpha_{t-1})} = \frac{1-\bar\alpha_t}{\beta_t(1-\bar\alpha_{t-1})}$
# (using $\alpha_t + \beta_t = 1$ and $\alpha_t\bar\alpha_{t-1} = \bar\alpha_t$), so
# $$\tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t .$$
# The linear term is $x_{t-1}^\top\big(\frac{\sqrt{\alpha_t}}{\beta_t}x_t + \frac{\sqrt{\bar\alpha_{t-1}}}{1-\bar\alpha_{t-1}}x_0\big)$;
# multiplying by $\tilde\beta_t$ gives the mean
# $$\tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0 + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t .$$
# In code the only trap is $\bar\alpha_{t-1}$ at $t = 1$, which is $\bar\alpha_0 = 1$: we get it as
# $\bar\alpha_t/\alpha_t$, which is exact at every $t$.

# %%
def posterior_mean_variance(schedule, x0, xt, t):
    beta = schedule.at("betas", t, xt)
    alpha = schedule.at("alphas", t, xt)
    ab = schedule.at("alpha_bars", t, xt)
    one_minus_ab = schedule.at("one_minus_alpha_bars", t, xt)
    ab_prev = ab / alpha                                              # ᾱ_{t−1}, = 1 at t = 1
    mean = ab_prev.sqrt() * beta / one_minus_ab * x0 + alpha.sqrt() * (1 - ab_prev) / one_minus_ab * xt
    variance = ((1 - ab_prev) / one_minus_ab * beta).expand_as(xt)
    return mean, variance


check("15.3.3.posterior", posterior_mean_variance)

# %% [markdown]
# ## Exercise 2: Problem 15.3.3 (ii)
#
# From $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$: $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon)/\sqrt{\bar\alpha_t}$.
# Put it into $\tilde\mu_t$: the coefficient of $x_t$ becomes
# $\frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{(1-\bar\alpha_t)\sqrt{\bar\alpha_t}} + \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}
#  = \frac{\beta_t + \alpha_t(1-\bar\alpha_{t-1})}{\sqrt{\alpha_t}(1-\bar\alpha_t)} = \frac{1}{\sqrt{\alpha_t}}$
# and that of $\epsilon$ is $-\frac{\sqrt{\bar\alpha_{t-1}}\beta_t\sqrt{1-\bar\alpha_t}}{(1-\bar\alpha_t)\sqrt{\bar\alpha_t}} = -\frac{\beta_t}{\sqrt{\alpha_t}\sqrt{1-\bar\alpha_t}}$:
# exactly the mean of (15.11).

# %%
def predict_x0(schedule, xt, t, eps):
    return (xt - schedule.at("one_minus_alpha_bars", t, xt).sqrt() * eps) / schedule.at("alpha_bars", t, xt).sqrt()


check("15.3.3.predict_x0", predict_x0)

# %% [markdown]
# ## Exercise 3: the loss (15.10)
#
# (15.8) with the given noise, then the squared error summed over the coordinates and averaged over
# the batch. (`torch.nn.functional.mse_loss` would also average over the coordinates: the same
# minimiser, but a number $d$ times smaller than (15.10).)

# %%
def ddpm_loss(schedule, eps_model, x0, t, noise):
    xt = schedule.at("alpha_bars", t, x0).sqrt() * x0 + schedule.at("one_minus_alpha_bars", t, x0).sqrt() * noise
    return (noise - eps_model(xt, t)).pow(2).sum(1).mean()


check("15.3.3.loss", ddpm_loss)

# %% [markdown]
# ## Exercise 4: one step of (15.11)
#
# $\sigma_t$ is a standard deviation: the square root of $\beta_t$ or of $\tilde\beta_t$. The mask
# `t == 1`, reshaped like the schedule's columns, removes the noise at the last step.

# %%
def ddpm_step(schedule, eps, xt, t, noise, sigma="posterior"):
    beta = schedule.at("betas", t, xt)
    alpha = schedule.at("alphas", t, xt)
    one_minus_ab = schedule.at("one_minus_alpha_bars", t, xt)
    mean = (xt - beta / one_minus_ab.sqrt() * eps) / alpha.sqrt()
    if sigma == "beta":
        var = beta
    else:
        var = (1 - schedule.at("alpha_bars", t, xt) / alpha) / one_minus_ab * beta
    last = (t == 1).to(xt.device).reshape(var.shape)
    return mean + torch.where(last, torch.zeros_like(var), var.sqrt()) * noise


check("15.3.3.step", ddpm_step)


# %% [markdown]
# ## Exercise 5: the whole sampling loop
#
# The chain has $T$ steps, $t = T, T-1, \dots, 1$; the step at $t$ turns $x_t$ into $x_{t-1}$, so the
# last one ($t = 1$) returns $x_0$. The $i$-th step taken ($i = 0, 1, \dots$) is at $t = T - i$ and uses
# `noises[i]`. The network must be told $t$ as a `(batch,)` integer tensor, one entry per row. Nothing is
# drawn inside: with `noises` drawn from a generator in the order the steps are taken (after $x_T$),
# this loop reproduces `ddpm.sample` exactly.

# %%
def sample_loop(schedule, eps_fn, step_fn, x_T, noises, sigma="posterior"):
    x = x_T
    for i, t_now in enumerate(range(schedule.T, 0, -1)):
        t = torch.full((x.shape[0],), t_now, dtype=torch.long, device=x.device)
        x = step_fn(schedule, eps_fn(x, t), x, t, noises[i], sigma=sigma)
    return x


check("15.3.3.sample_loop", sample_loop)

# %% [markdown]
# ## Exercise 6: (15.10) from the bound
#
# Both distributions in $L_{t-1}$ are Gaussians whose variances the schedule fixes ($\tilde\beta_t I$ and
# $\sigma_t^2 I$), so $\epsilon_\theta$ enters only through the mean of $p_\theta$:
# $$L_{t-1} = \frac{\lVert\tilde\mu_t(x_t, x_0) - \mu_\theta(x_t, t)\rVert^2}{2\sigma_t^2} + \text{terms free of } \theta .$$
# By Problem 15.3.3 (ii), $\tilde\mu_t(x_t, x_0)$ is the mean of (15.11) with the true $\epsilon$ (the one that
# made $x_t$) in place of $\epsilon_\theta$, so
# $$\tilde\mu_t - \mu_\theta = \frac{\beta_t}{\sqrt{\alpha_t}\sqrt{1-\bar\alpha_t}}\,(\epsilon_\theta - \epsilon),
# \qquad L_{t-1} = \frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1-\bar\alpha_t)}\,\lVert\epsilon - \epsilon_\theta\rVert^2 + C_t$$
# (Ho et al. 2020, eq. 12). With $\sigma_t^2 = \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t$ the weight is
# $\beta_t / (2\alpha_t(1-\bar\alpha_{t-1}))$; with $\sigma_t^2 = \beta_t$ it is $\beta_t / (2\alpha_t(1-\bar\alpha_t))$.
# (15.10) puts weight 1 on every $t$. At $t = 1$, $\tilde\beta_1 = 0$: the formula with $\sigma_1^2 = \tilde\beta_1$
# is infinite, and the bound uses a decoder term $L_0$ there instead (the lesson's section 6).

# %%
def elbo_weight(schedule, t, sigma):
    beta, alpha = schedule.betas[t - 1], schedule.alphas[t - 1]
    one_minus_ab = schedule.one_minus_alpha_bars[t - 1]
    if sigma == "beta":
        var = beta
    else:
        var = (1 - schedule.alpha_bars[t - 1] / alpha) / one_minus_ab * beta      # β̃_t, ᾱ_{t−1} = ᾱ_t / α_t
    return beta ** 2 / (2 * var * alpha * one_minus_ab)


check("15.3.3.elbo_weight", elbo_weight)
