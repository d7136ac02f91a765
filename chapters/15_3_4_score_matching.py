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
# # §15.3.4 Denoising is score matching (eq. 15.13), checked where the truth is known
#
# Section 15.3.4 claims that the best possible noise predictor is a rescaled **score** of the noisy data,
# $$\epsilon^*(x_t, t) = -\sqrt{1-\bar\alpha_t}\,\nabla_{x_t}\log p(x_t) \qquad (15.13),$$
# so a network trained by the plain regression (15.10) is learning $\nabla \log p(x_t)$ at every noise level.
# On images we cannot see $p(x_t)$. Here we pick data for which we can: a mixture of Gaussians in the
# plane. The forward process (15.8) turns a Gaussian mixture into another Gaussian mixture, whose score
# is exact. In this lesson we
#
# 1. write $\epsilon^*$ for the mixture (exercise) and check (15.13) against a brute-force average of the noise;
# 2. train $\epsilon_\theta$ by (15.10) and compare $-\epsilon_\theta/\sqrt{1-\bar\alpha_t}$ with the exact score as vector fields;
# 3. measure the error against $t$ in three units, to test the claim that noisier levels are easier to learn;
# 4. sample with the exact score and with the learned one, and compare both with the data.
#
# **Needs:** §15.3 (eqs. 15.8, 15.10, 15.11), §14.3 (the score). Quick mode: well under a minute.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from companion_lib import ddpm, ebm, forward_diffusion, scores, settings, training
from companion_lib.viz import ch15
from companion_lib.denoisers import ResidualDenoiser
from companion_lib.grading import check

run = settings.setup(seed=0)

# %% [markdown]
# ## 1. Data with a known noisy marginal
#
# Four Gaussian blobs, $p(x_0) = \sum_k \rho_k\,\mathcal N(\mu_k, \sigma_k^2 I)$. Under (15.8),
# $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$ maps each blob to
# $\mathcal N(\sqrt{\bar\alpha_t}\,\mu_k, (\bar\alpha_t\sigma_k^2 + 1 - \bar\alpha_t) I)$ with the same weight:
# the blobs slide toward the origin and widen until, at $t = T$, only $\mathcal N(0, I)$ is left.

# %%
T = 1000
schedule = forward_diffusion.NoiseSchedule.cosine(T, max_beta=0.2)
WEIGHTS = torch.tensor([0.35, 0.25, 0.25, 0.15])
MEANS = torch.tensor([[-1.2, -0.8], [1.2, -0.8], [0.0, 1.1], [1.4, 1.2]])
VARS = torch.tensor([0.02, 0.05, 0.03, 0.01])
x_data = ebm.gmm_sample(20_000, WEIGHTS, MEANS, VARS, generator=torch.Generator().manual_seed(0))


def alpha_bar(t):
    return schedule.alpha_bars[t - 1].item()


# %% [markdown]
# **Exercise.** Write $\epsilon^*(x_t)$ for the mixture at a step with $\bar\alpha_t$ = `alpha_bar`, by (15.13).
# `ebm.gmm_score(x, weights, means, variances)` gives the score of an isotropic mixture.

# %%
def eps_star(x, alpha_bar, weights, means, variances):
    """x (n, d) noisy points x_t; alpha_bar = ᾱ_t (a number); the data mixture: weights (K,),
    means (K, d), variances (K,). Returns (n, d): the optimal noise prediction of eq. 15.13."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
result = check("15.3.4.eps_star", eps_star)
result

# %%
eps_star = result.or_reference()

# %% [markdown]
# An independent check of (15.13) itself. The optimal predictor under the squared loss is the
# conditional mean, $\epsilon^*(x) = \mathbb E[\epsilon \mid x_t = x]$. Draw many pairs $(x_0, \epsilon)$, form
# $x_t$, keep those that land in a small disc around a point $x$, and average their $\epsilon$.

# %%
g = torch.Generator().manual_seed(1)
n = 2_000_000
x0 = ebm.gmm_sample(n, WEIGHTS, MEANS, VARS, generator=g)
eps = torch.randn(n, 2, generator=g)
probe = torch.tensor([[-1.05, -0.7], [1.0, -0.6], [0.15, 0.85]])         # beside three of the blobs
for t in (100, 400):
    xt = forward_diffusion.q_sample(schedule, x0, torch.full((n,), t), eps)
    exact = eps_star(probe, alpha_bar(t), WEIGHTS, MEANS, VARS)
    for p, e in zip(probe, exact):
        near = (xt - p).norm(dim=1) < 0.03
        mc = eps[near].mean(0)
        se = eps[near].std(0).max().item() / math.sqrt(int(near.sum()))
        print(f"t={t:>3} x=({p[0]:+.1f},{p[1]:+.1f}): E[ε | x_t ≈ x] = ({mc[0]:+.3f},{mc[1]:+.3f}) "
              f"[{int(near.sum())} pairs], ε*(x) = ({e[0]:+.3f},{e[1]:+.3f})")
        assert (mc - e).abs().max().item() < 4 * se + 0.03

# %% [markdown]
# (The disc has radius 0.03, so the averages carry a small smoothing bias besides their Monte-Carlo error.)
#
# ## 2. Learning $\epsilon_\theta$ by (15.10)
#
# The network never sees a score: it only regresses the noise (15.10) on samples of the mixture.

# %%
torch.manual_seed(0)
net = ResidualDenoiser(2, hidden=128, blocks=3, emb_dim=64).to(run.device)


def loss_fn(model, x0):
    t = torch.randint(1, T + 1, (x0.shape[0],), device=x0.device)
    return ddpm.ddpm_loss(schedule, model, x0, t, torch.randn_like(x0)) / x0.shape[1]


fit = training.train(net, loss_fn, x_data.to(run.device), steps=run.budget(quick=2000, full=20_000),
                     batch_size=256, lr=3e-3, warmup=100, cosine=True, ema_decay=0.995, desc="ε_θ on the mixture")
eps_model = fit.ema.model
print(f"{fit.steps_run} steps in {fit.seconds:.1f} s ({fit.steps_run / fit.seconds:.0f} steps/s)")


@torch.no_grad()
def learned_score(x, t):
    """−ε_θ(x, t)/√(1 − ᾱ_t): the score the network implies by (15.13). x (n, 2) on the CPU."""
    tt = torch.full((x.shape[0],), t, device=run.device)
    return scores.score_from_eps(eps_model(x.to(run.device), tt).cpu(), 1 - alpha_bar(t))


# %% [markdown]
# ## 3. The two vector fields
#
# Background: the exact density $p(x_t)$. White arrows: the exact score $\nabla\log p(x_t)$. Cyan arrows:
# the learned $-\epsilon_\theta/\sqrt{1-\bar\alpha_t}$. (Arrow lengths are squashed, $s/(1+|s|)$, so the
# directions stay readable where the score is large.)

# %%
LIM = 2.5
grid, centres, _ = ebm.grid_2d(LIM, 120, dtype=torch.float32)
arrows, _, _ = ebm.grid_2d(LIM, 15, dtype=torch.float32)
fig, axes = plt.subplots(1, 4, figsize=(16, 4.2))
for ax, t in zip(axes, (10, 100, 300, 700)):
    w, m, v = forward_diffusion.noisy_mixture(alpha_bar(t), WEIGHTS, MEANS, VARS)
    log_p = -ebm.gmm_energy(grid, w, m, v).reshape(120, 120)
    ax.imshow(log_p.exp().numpy(), origin="lower", extent=(-LIM, LIM, -LIM, LIM), cmap="magma")
    for s, colour in ((ebm.gmm_score(arrows, w, m, v), "white"), (learned_score(arrows, t), "cyan")):
        norm = s.norm(dim=1, keepdim=True)
        ax.quiver(arrows[:, 0], arrows[:, 1], *(s / (1 + norm)).T, color=colour, angles="xy",
                  scale_units="xy", scale=2.5, width=0.005)
    ax.set_title(f"t = {t}, 1 − ᾱ_t = {1 - alpha_bar(t):.3f}")
    ax.set_xticks([])
    ax.set_yticks([])
plt.suptitle("exact score (white) and −ε_θ/√(1−ᾱ_t) (cyan) over p(x_t)", y=1.0)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Is a noisier level easier to learn? Measuring the error against $t$
#
# The error must be measured where the model is used, at $x_t \sim p(x_t)$, and in comparable units.
# The raw score error $\mathbb E\lVert s_\theta - \nabla\log p\rVert^2$ is $\mathbb E\lVert\epsilon_\theta - \epsilon^*\rVert^2/(1-\bar\alpha_t)$:
# it grows at small $t$ from the factor $1/(1-\bar\alpha_t)$ alone, however good the network. So we also
# show the error in $\epsilon$ units, and relative to the size of the score itself.

# %%
ts = np.unique(np.geomspace(1, T, 30).round().astype(int))
g = torch.Generator().manual_seed(2)
rows = []
for t in ts:
    x0 = ebm.gmm_sample(4000, WEIGHTS, MEANS, VARS, generator=g)
    xt = forward_diffusion.q_sample(schedule, x0, torch.full((4000,), int(t)), torch.randn(4000, 2, generator=g))
    exact_eps = eps_star(xt, alpha_bar(t), WEIGHTS, MEANS, VARS)
    with torch.no_grad():
        model_eps = eps_model(xt.to(run.device), torch.full((4000,), int(t), device=run.device)).cpu()
    eps_err = (model_eps - exact_eps).pow(2).sum(1).mean().item()
    score_size = (exact_eps.pow(2).sum(1).mean() / (1 - alpha_bar(t))).item()
    rows.append((t, eps_err / (1 - alpha_bar(t)), eps_err, eps_err / (1 - alpha_bar(t)) / score_size))
rows = np.array(rows)

fig, ax = plt.subplots(figsize=(6.5, 3.8))
ax.loglog(rows[:, 0], rows[:, 1], "o-", ms=3, label="score error  E‖s_θ − ∇log p‖²")
ax.loglog(rows[:, 0], rows[:, 2], "o-", ms=3, label="ε units  E‖ε_θ − ε*‖²")
ax.loglog(rows[:, 0], rows[:, 3], "o-", ms=3, label="relative  E‖s_θ − ∇log p‖² / E‖∇log p‖²")
ax.set_xlabel("step t")
ax.set_ylabel("mean squared error")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %%
low, high = rows[rows[:, 0] <= 30], rows[rows[:, 0] >= 300]
print(f"t <= 30:  score error {low[:, 1].mean():.3g}, ε-units {low[:, 2].mean():.3g}, relative {low[:, 3].mean():.3g}")
print(f"t >= 300: score error {high[:, 1].mean():.3g}, ε-units {high[:, 2].mean():.3g}, relative {high[:, 3].mean():.3g}")

# %% [markdown]
# Read in $\epsilon$ units or relative to the score, the error is smallest at the noisiest levels,
# where $p(x_t)$ is close to one wide Gaussian and its score nearly linear; at small $t$ the score must
# follow four sharp blobs and their boundaries, and the relative error is larger (above 1 at the
# smallest steps: there the network's score is worse than no score at all, and the optimal $\epsilon^*$ is
# tiny, so (15.10) hardly rewards getting it right). So the claim holds
# here in units that do not favour it, while the raw score error exaggerates it by the factor
# $1/(1-\bar\alpha_t)$.
#
# ## 5. Sampling with the exact score and with the learned one
#
# The reverse chain (15.11) only needs $\epsilon$ at every step. With $\epsilon^*$ from (15.13) it samples
# the mixture up to the discretisation of the chain; with $\epsilon_\theta$ it samples what the network
# learned. We compare histograms with the exact probabilities of the cells (total-variation distance),
# next to a fresh sample of the data of the same size, which shows the floor set by sampling noise.

# %%
def exact_eps_fn(x, t):
    """ε*(x_t, t) for a batch at one step (the sampler calls it with all rows at the same t)."""
    return eps_star(x.cpu(), alpha_bar(int(t[0])), WEIGHTS, MEANS, VARS).to(x.device)


N = 4000
draws = {
    "reverse chain, exact ε*": ddpm.sample(schedule, exact_eps_fn, (N, 2), device=run.device,
                                                generator=torch.Generator().manual_seed(3)).cpu(),
    "reverse chain, learned ε_θ": ddpm.sample(schedule, eps_model, (N, 2), device=run.device,
                                                   generator=torch.Generator().manual_seed(3)).cpu(),
    "fresh data (floor)": ebm.gmm_sample(N, WEIGHTS, MEANS, VARS, generator=torch.Generator().manual_seed(4)),
}
probs = ebm.binned_probabilities(lambda x: ebm.gmm_energy(x, WEIGHTS, MEANS, VARS), lim=LIM, bins=30)
for name, x in draws.items():
    tv = ebm.total_variation(ebm.histogram_2d(x, lim=LIM, bins=30), probs)
    comp = torch.softmax(-((x[:, None] - MEANS[None]) ** 2).sum(-1) / (2 * VARS), 1).argmax(1)
    shares = np.bincount(comp.numpy(), minlength=4) / N
    print(f"{name:<28} TV to exact cells {tv:.3f}; blob shares {np.round(shares, 3)} (truth {WEIGHTS.numpy()})")

# %%
ch15.point_clouds(list(draws.values()), list(draws), LIM, s=1, alpha=0.4, share=True, title_size=10,
                  figsize=(12, 4))
plt.show()

# %% [markdown]
# ## Summary
#
# * For a Gaussian mixture the forward process gives another mixture, so $\epsilon^*$ of (15.13) is exact; it
#   matched a brute-force average of the noise $\mathbb E[\epsilon\mid x_t]$.
# * A network trained only on the noise regression (15.10) learned the score: its
#   $-\epsilon_\theta/\sqrt{1-\bar\alpha_t}$ lines up with $\nabla\log p(x_t)$ at every noise level shown.
# * Measured in $\epsilon$ units or relative to the score's size, the error is smallest at the noisiest levels,
#   as the text says; the raw score error would overstate the effect through the factor $1/(1-\bar\alpha_t)$.
# * The reverse chain run with the exact $\epsilon^*$ reproduces the mixture; with the learned $\epsilon_\theta$ it
#   comes close, and the histogram distances above say how close.

# %% [markdown]
# Your exercises in this lesson, as the autograder last saw them:

# %%
from companion_lib.grading import progress

progress("15.3.4")
