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
# # §15.3 The reverse process: training a denoiser (15.10) and sampling with it (15.11)
#
# The forward process of §15.3.1 destroys an image in $T$ small Gaussian steps. Generation runs the
# chain backwards: start from pure noise $x_T \sim \mathcal N(0, I)$ and take $T$ small denoising steps.
# Each step needs $p_\theta(x_{t-1}\mid x_t)$, and the text's recipe is to train a network
# $\epsilon_\theta(x_t, t)$ that guesses the noise inside $x_t$. In this lesson we
#
# 1. solve **Problem 15.3.3**: the forward process run backwards, $q(x_{t-1}\mid x_t, x_0)$, is a
#    Gaussian we can write down (i); guessing $\epsilon$ is the same as guessing $x_0$ (ii);
# 2. write the **training loss (15.10)** and **one sampling step (15.11)** ourselves;
# 3. train on 2-D data (seconds), then on the 8×8 digits, and sample;
# 4. **measure** the samples instead of eyeballing them: a digit classifier labels them, and a
#    nearest-neighbour search asks whether they are copies of training images;
# 5. compute a **held-out likelihood bound in bits/dim**, on the same scale as the VAE and flow lessons.
#
# **Needs:** §15.3.1 (the forward process, eq. 15.8), Gaussian algebra. Quick mode: well under a minute.

# %%
import math
import time

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

from companion_lib import data, ddpm, forward_diffusion, metrics, recipes, settings, training
from companion_lib.viz import ch15, common, widgets
from companion_lib.denoisers import ResidualDenoiser
from companion_lib.grading import check

run = settings.setup(seed=0)

# %% [markdown]
# One schedule for the whole lesson: the cosine schedule with $T = 1000$, its $\beta_t$ capped at 0.2.
# (The usual cap is 0.999. At the last step that makes $1/\sqrt{\alpha_T} \approx 32$, so (15.11) multiplies
# any error of $\epsilon_\theta$ at $t = T$ by about 32 before the next step sees it; the cap 0.2 changes only
# the last 9 of 1000 steps and still leaves $\bar\alpha_T$ tiny.)

# %%
T = 1000
schedule = forward_diffusion.NoiseSchedule.cosine(T, max_beta=0.2)
print(schedule)
for cap in (0.999, 0.2):
    s = forward_diffusion.NoiseSchedule.cosine(T, max_beta=cap)
    with settings.cpu_float64():                   # the schedule is float64 on the CPU
        gain = (s.betas / (s.one_minus_alpha_bars.sqrt() * s.alphas.sqrt())).max().item()
    print(f"cap {cap}: largest factor β_t/(√(1-ᾱ_t)√α_t) in front of ε_θ in (15.11) = {gain:.3g}")

# %% [markdown]
# ## 1. Problem 15.3.3 (i): the forward process run backwards
#
# Given the clean image $x_0$, Bayes' theorem turns the two Gaussians we know,
# $q(x_t\mid x_{t-1}) = \mathcal N(\sqrt{\alpha_t}\,x_{t-1}, \beta_t I)$ (15.7) and
# $q(x_{t-1}\mid x_0) = \mathcal N(\sqrt{\bar\alpha_{t-1}}\,x_0, (1-\bar\alpha_{t-1}) I)$ (15.8), into
# $$q(x_{t-1}\mid x_t, x_0) \;\propto\; q(x_t\mid x_{t-1})\, q(x_{t-1}\mid x_0),$$
# a product of two Gaussians in $x_{t-1}$, hence a Gaussian. Its precision is the sum of the two
# precisions, $\alpha_t/\beta_t + 1/(1-\bar\alpha_{t-1})$, and its mean is the precision-weighted
# combination of what each factor says about $x_{t-1}$. Simplify both with $\bar\alpha_t = \alpha_t\bar\alpha_{t-1}$.
#
# **Exercise 1.** Write the mean $\tilde\mu_t(x_t, x_0)$ and the variance $\tilde\beta_t$.

# %%
def posterior_mean_variance(schedule, x0, xt, t):
    """schedule: a forward_diffusion.NoiseSchedule (schedule.at(name, t, like) reads 'betas', 'alphas',
    'alpha_bars' or 'one_minus_alpha_bars' at steps t, shaped to broadcast against like).
    x0, xt (batch, ...); t (batch,) integer steps in 1..T.
    Returns (mean, variance) of q(x_{t-1} | x_t, x_0), both of xt's shape (ᾱ_0 = 1)."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
result = check("15.3.3.posterior", posterior_mean_variance)
result

# %%
posterior_mean_variance = result.or_reference()

# %% [markdown]
# A check that does not use the formula at all: run the forward chain itself. Draw many pairs
# $x_{t-1} \sim q(\cdot\mid x_0)$, $x_t \sim q(\cdot\mid x_{t-1})$ from one fixed $x_0$ (1-D), keep the
# pairs whose $x_t$ landed near a chosen value, and look at their $x_{t-1}$.

# %%
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(0)
t_chk, x0_chk, xt_target, n = 300, 0.6, 0.2, 1_000_000
with settings.cpu_float64():                       # an exact check on the CPU
    ab_prev, b_t = schedule.alpha_bars[t_chk - 2], schedule.betas[t_chk - 1]
    prev = ab_prev.sqrt() * x0_chk + (1 - ab_prev).sqrt() * torch.randn(n, generator=g, dtype=torch.float64)
    xt_all = (1 - b_t).sqrt() * prev + b_t.sqrt() * torch.randn(n, generator=g, dtype=torch.float64)
    near = (xt_all - xt_target).abs() < 0.005
    mc_mean, mc_var = prev[near].mean().item(), prev[near].var().item()
    mean, var = posterior_mean_variance(schedule, torch.tensor([[x0_chk]], dtype=torch.float64),
                                        torch.tensor([[xt_target]], dtype=torch.float64), torch.tensor([t_chk]))
print(f"t = {t_chk}: {int(near.sum())} pairs kept")
print(f"mean     formula {mean.item():.4f}   forward chain {mc_mean:.4f}")
print(f"variance formula {var.item():.5f}  forward chain {mc_var:.5f}  (β_t = {b_t.item():.5f})")
assert abs(mean.item() - mc_mean) < 0.01 and abs(var.item() / mc_var - 1) < 0.05

# %% [markdown]
# The posterior variance $\tilde\beta_t$ is a little smaller than $\beta_t$ (knowing $x_0$ removes some
# uncertainty), and at $t = 1$ it is exactly 0: given $x_0$, there is nothing left to guess.

# %%
fig, ax = plt.subplots(figsize=(5.5, 3))
tt = torch.arange(1, T + 1)
with settings.cpu_float64():
    ratio = (ddpm.reverse_variance(schedule, tt, torch.zeros(T, 1, dtype=torch.float64)).squeeze(1)
             / schedule.betas)
ax.semilogx(tt.numpy(), ratio.numpy())
ax.set_xlabel("step t")
ax.set_ylabel(r"$\tilde\beta_t / \beta_t$")
ax.set_title("posterior variance relative to the forward step")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. Problem 15.3.3 (ii): predicting the noise is predicting $x_0$
#
# Equation (15.8) can be solved for $x_0$: whoever knows the noise $\epsilon$ in $x_t$ knows $x_0$.
#
# **Exercise 2.** Write $\hat x_0(x_t, \epsilon)$.

# %%
def predict_x0(schedule, xt, t, eps):
    """xt, eps (batch, ...); t (batch,) steps in 1..T. Returns x0_hat (batch, ...): (15.8) solved for x_0."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
result = check("15.3.3.predict_x0", predict_x0)
result

# %%
predict_x0 = result.or_reference()

# %% [markdown]
# Now (ii) numerically: the mean in (15.11), $\frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon\big)$,
# is the posterior mean $\tilde\mu_t(x_t, \hat x_0)$ with $x_0$ replaced by the $\hat x_0$ that $\epsilon$
# implies, for *any* $\epsilon$. So a network that outputs $\epsilon_\theta$ parameterises the reverse mean:
# learning the noise and learning $\tilde\mu_t$ are the same task.

# %%
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(1)
with settings.cpu_float64():
    t_any = torch.randint(1, T + 1, (1000,), generator=g)
    xt_any = torch.randn(1000, 64, generator=g, dtype=torch.float64)
    eps_any = torch.randn(1000, 64, generator=g, dtype=torch.float64)
    mean_15_11 = ddpm.reverse_mean(schedule, eps_any, xt_any, t_any)
    mean_post, _ = posterior_mean_variance(schedule, predict_x0(schedule, xt_any, t_any, eps_any), xt_any, t_any)
    gap = (mean_15_11 - mean_post).abs().max().item()
print(f"largest difference over 1000 random (x_t, t, ε): {gap:.1e} (float64 round-off: below 1e-9)")
assert gap < 1e-9

# %% [markdown]
# ## 3. The training loss (15.10) and one sampling step (15.11)
#
# **Exercise 3.** Write the loss (15.10) on one minibatch: build $x_t$ by (15.8) from the data, the
# noise and the steps you are given, and return the batch mean of $\lVert\epsilon - \epsilon_\theta(x_t, t)\rVert^2$.

# %%
def ddpm_loss(schedule, eps_model, x0, t, noise):
    """x0, noise (batch, d); t (batch,) steps in 1..T; eps_model(x_t, t) -> (batch, d).
    Returns a scalar: the batch mean of the squared norm of noise - eps_model(x_t, t)."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
result = check("15.3.3.loss", ddpm_loss)
result

# %%
ddpm_loss = result.or_reference()

# %% [markdown]
# **Exercise 4.** Write one step of (15.11). The text leaves $\sigma_t$ open; the two usual choices
# are $\sigma_t^2 = \beta_t$ (the reverse step as noisy as the forward one) and $\sigma_t^2 = \tilde\beta_t$
# (the posterior variance of Exercise 1). The last step, $t = 1$, adds no noise.

# %%
def ddpm_step(schedule, eps, xt, t, noise, sigma="posterior"):
    """eps = eps_theta(x_t, t), xt, noise z: (batch, ...); t (batch,) steps in 1..T.
    sigma: 'beta' (σ_t² = β_t) or 'posterior' (σ_t² = posterior variance). Returns x_{t-1}."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
result = check("15.3.3.step", ddpm_step)
result

# %%
ddpm_step = result.or_reference()

# %% [markdown]
# ## 4. A first run on 2-D data
#
# Two moons, a small denoiser, your loss. The network $\epsilon_\theta(x_t, t)$ is a residual MLP in which
# the embedding of $t$ is added inside every block (`denoisers.ResidualDenoiser`), so every layer knows
# how noisy its input is.

# %%
moons = data.make_toy_2d("moons", 4000, seed=0)
moons_test = data.make_toy_2d("moons", 2000, seed=1)
torch.manual_seed(0)
net2d = ResidualDenoiser(2, hidden=64, blocks=2, emb_dim=32).to(run.device)


def loss_2d(model, x0):
    t = torch.randint(1, T + 1, (x0.shape[0],), device=x0.device)
    return ddpm_loss(schedule, model, x0, t, torch.randn_like(x0)) / x0.shape[1]


fit2d = training.train(net2d, loss_2d, moons.to(run.device), steps=run.budget(quick=800, full=6000),
                       batch_size=256, lr=3e-3, warmup=100, cosine=True, ema_decay=0.995, desc="2-D denoiser")
print(f"{fit2d.steps_run} steps in {fit2d.seconds:.1f} s ({fit2d.steps_run / fit2d.seconds:.0f} steps/s)")

# %%
den2d = fit2d.ema.model
xs2d, kept2d = ddpm.sample(schedule, den2d, (1000, 2), device=run.device, step_fn=ddpm_step,
                                generator=torch.Generator().manual_seed(2), keep=(1000, 300, 100, 30, 0))


def nearest(a, b):
    """Distance of each row of a to its nearest row of b (both on the CPU)."""
    return torch.cdist(a, b).min(1).values


d_model = nearest(xs2d.cpu(), moons).mean().item()
d_real = nearest(moons_test, moons).mean().item()
print(f"mean distance to the nearest training point: samples {d_model:.3f}, fresh moons {d_real:.3f}")

# %%
shown = (1000, 300, 100, 30, 0)
ch15.point_clouds([kept2d[step] for step in shown], [f"x_{step}" if step else "x_0 (samples)" for step in shown],
                  3.0, background=moons, s=1, equal=False, share=True, figsize=(14, 2.9),
                  suptitle="ancestral sampling on two moons (grey: data)")
plt.show()

# %% [markdown]
# ## 5. The digits
#
# The same recipe on the 1437 training digits, scaled to $[-1, 1]$. The denoiser is larger (hidden
# width 256, three blocks); training uses Adam with a short warm-up and cosine decay, and an exponential
# moving average (EMA) of the weights, which samples better than the last iterate. The pixels are used at
# the centre of their grey level, $(x + \tfrac12)/17$, mapped to $[-1, 1]$. The recipe is packaged as
# `recipes.fit_ddpm_digits` (the companion's scoreboard trains the same model); it trains with **your** loss
# of Exercise 3. Training sits alone in the next cell: re-running the sampling cells does not retrain.

# %%
DIGIT_STEPS = run.budget(quick=2500, full=40_000)
_, fit = recipes.fit_ddpm_digits(steps=DIGIT_STEPS, T=T, max_beta=0.2, loss=ddpm_loss, device=run.device)
eps_model = fit.ema.model
print(f"denoiser parameters: {sum(p.numel() for p in fit.model.parameters()):,}")
print(f"{fit.steps_run} steps in {fit.seconds:.1f} s ({fit.steps_run / fit.seconds:.0f} steps/s)")

# %%
common.training_curves(fit.history, ylabel="loss (15.10) per pixel", title="training the digit denoiser")
plt.show()

# %% [markdown]
# ### Sampling, and a look at the chain
#
# 256 samples with $\sigma_t^2 = \tilde\beta_t$ and one change to (15.11) as printed: each step predicts
# $\hat x_0$ from $\epsilon_\theta$, clips it to $[-1, 1]$ (where the data live) and then takes the
# posterior mean $\tilde\mu_t(x_t, \hat x_0)$. Without clipping that is exactly (15.11) (part 2); with it,
# the early steps, where $\hat x_0$ is a poor guess, cannot throw pixels far out of range.
# (`ddpm.ddpm_step(..., clip_x0=True)`; your step of Exercise 4 does not clip, and runs below.)

# %%
KEEP = (1000, 700, 500, 350, 250, 150, 80, 40, 15, 0)
start = time.perf_counter()
samples, chain = ddpm.sample(schedule, eps_model, (256, 64), device=run.device, clip_x0=True,
                                  generator=torch.Generator().manual_seed(3), keep=KEEP)
print(f"256 samples x 1000 steps in {time.perf_counter() - start:.1f} s")
samples_unit = data.signed_to_unit(samples.clamp(-1, 1)).cpu()
common.image_grid(samples_unit[:64], nrow=16, vmin=0, vmax=1, title="DDPM samples (the first 64 of 256)")
plt.show()


# %%
def show_chain(step):
    fig, ax = plt.subplots(figsize=(7, 1.4))
    common.image_grid(data.signed_to_unit(chain[step][:16].clamp(-1, 1)).cpu(), nrow=16, ax=ax, vmin=0, vmax=1,
                      title=f"x_{step}: the same 16 chains" + (" (done)" if step == 0 else ""))
    return fig


display(widgets.sliders_with_figure({"step": W.SelectionSlider(options=list(KEEP), value=250, description="t")},
                                    show_chain))

# %% [markdown]
# ### Measuring the samples
#
# A classifier of digits (`metrics.DigitJudge`, trained on the real training digits with mixup, so that
# it is unsure about half-formed or blended digits) labels each sample; we count the share it labels
# with probability at least 0.9, and how the labels spread over the ten classes. First, what its numbers
# mean on real held-out digits and on noise:

# %%
judge = metrics.DigitJudge()
real_share = judge.confident_share(data.heldout_digits())
noise_share = judge.confident_share(torch.rand(500, 64, generator=torch.Generator().manual_seed(4)))
print(f"judge: held-out accuracy {judge.accuracy:.3f}; confident on {real_share:.1%} of real held-out digits, "
      f"on {noise_share:.1%} of uniform noise")

# %% [markdown]
# And whether the samples are new: the distance from each sample to its nearest training image,
# against the same distance for real held-out digits (which the model never saw). A model that copies
# its training set would score far below 1 on this ratio.

# %%
ref_distance = metrics.heldout_nearest_train_distance().mean()


def quality(x_unit):
    """Confident share relative to real digits, smallest class share, nearest-training ratio."""
    share = judge.confident_share(x_unit)
    hist = judge.class_histogram(x_unit)
    return {"confident": share, "ratio": share / real_share, "smallest class": float(np.min(hist)),
            "copy ratio": float(metrics.nearest_train_distance(x_unit).mean() / ref_distance)}


q_main = quality(samples_unit)
print(f"confident share {q_main['confident']:.1%} = {q_main['ratio']:.2f}x that of real digits "
      f"(floor 0.45x); smallest class {q_main['smallest class']:.1%} (floor 4%); "
      f"nearest-training ratio {q_main['copy ratio']:.2f} (floor 0.9)")

# %%
fig, ax = plt.subplots(figsize=(5.5, 2.8))
ax.bar(range(10), judge.class_histogram(samples_unit), color="C0", label="samples")
ax.axhline(0.1, color="grey", ls=":", label="uniform")
ax.set_xticks(range(10))
ax.set_xlabel("digit the judge sees")
ax.set_ylabel("share of samples")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Your step, and the other $\sigma_t$
#
# 64 more samples each (a smaller sample: its shares carry about ±6% of sampling error): with your
# `ddpm_step` exactly as (15.11) prints it (no clipping), and with $\sigma_t^2 = \beta_t$ (clipped). Same network, same judge.

# %%
variants = {
    "your step, σ²=β̃, no clip": dict(step_fn=ddpm_step, sigma="posterior"),
    "library, σ²=β, clipped": dict(sigma="beta", clip_x0=True),
}
rows = {"library, σ²=β̃, clipped (above)": q_main}
for name, kw in variants.items():
    x = ddpm.sample(schedule, eps_model, (64, 64), device=run.device,
                         generator=torch.Generator().manual_seed(5), **kw)
    rows[name] = quality(data.signed_to_unit(x.clamp(-1, 1)).cpu())
for name, q in rows.items():
    print(f"{name:<32} ratio {q['ratio']:.2f}x  smallest class {q['smallest class']:.1%}  "
          f"nearest-training {q['copy ratio']:.2f}")

# %% [markdown]
# ## 6. A held-out likelihood bound in bits per dimension
#
# The reverse chain defines a density $p_\theta(x_0)$ on the $[-1,1]$ scale, and the usual variational
# argument (the ELBO of §14.4, with $x_{1:T}$ as latent variables) bounds it:
# $$-\log p_\theta(x_0) \le \underbrace{\mathrm{KL}(q(x_T\mid x_0)\,\|\,\mathcal N(0,I))}_{L_T}
#   + \sum_{t=2}^{T}\underbrace{\mathrm{KL}\big(q(x_{t-1}\mid x_t,x_0)\,\|\,p_\theta(x_{t-1}\mid x_t)\big)}_{L_{t-1}}
#   \underbrace{-\,\log p_\theta(x_0\mid x_1)}_{L_0}.$$
# Each $L_{t-1}$ compares two Gaussians (Exercise 1 gives the first). The decoder of the last step
# must be a density, and $\tilde\beta_1 = 0$, so we state ours: $p_\theta(x_0\mid x_1) = \mathcal N(\mu_\theta(x_1, 1), \beta_1 I)$.
# The sum over 999 steps is estimated per image by stratified sampling of $t$ (64 strata, single steps
# where $t$ is small and the terms are large), one independent estimate per held-out image, so the
# spread over images gives the standard error.
#
# The scale matters. The companion scores densities of dequantised digits $y \in [0,1)^{64}$
# (`data.heldout_digits()`); the model lives on $x = 2y - 1$, whose Jacobian is 2 per pixel:
# $\log p(y) = \log p(x) + 64 \log 2$. Forgetting it costs exactly $\log_2 2 = 1$ bit/dim.

# %%
y_held = data.heldout_digits()
x_held = data.unit_to_signed(y_held).to(run.device)
bounds = {}
for sigma in ("posterior", "beta"):
    nll_x = ddpm.variational_bound(schedule, eps_model, x_held, n_t=64, sigma=sigma,
                                        generator=torch.Generator().manual_seed(6)).cpu()
    log_p_y = -nll_x + 64 * math.log(2)                                   # the Jacobian of y -> x = 2y - 1
    bpd = data.dequantized_bits_per_dim(log_p_y, 64)
    bounds[sigma] = (bpd.mean().item(), bpd.std().item() / math.sqrt(len(bpd)))
    forgot = data.dequantized_bits_per_dim(-nll_x, 64).mean().item()
    print(f"σ_t² = {'β̃_t' if sigma == 'posterior' else 'β_t'}: held-out bound {bounds[sigma][0]:.3f} "
          f"± {bounds[sigma][1]:.3f} bits/dim (standard error); without the Jacobian: {forgot:.3f}")
_ = metrics.record_heldout_result(              # a row of README's table (when the notebooks are refreshed)
    "15_3_3/ddpm", f"DDPM, residual MLP ({fit.steps_run} steps): variational bound, σ_t² = β̃_t / β_t",
    (bounds["posterior"][0], bounds["beta"][0]), "15_3_3", order=0,
    note=f"standard errors {bounds['posterior'][1]:.3f} / {bounds['beta'][1]:.3f}")

# %% [markdown]
# Two things to read off. The choice of $\sigma_t$, which hardly shows in the samples, matters for the
# bound: at small $t$ the noise is far finer than the gap between grey levels, the data look smooth at
# that scale, and then the true reverse step is about as noisy as the forward one ($\beta_t$); the
# posterior variance $\tilde\beta_t$ is the right choice only for data concentrated on points. And the
# bound is a number on the same scale as the held-out bits/dim of the other lessons (the table in the
# README collects them): a diffusion model trained for its samples, with the unweighted loss (15.10),
# is not tuned for this bound.

# %% [markdown]
# ## 7. Longer training (full mode)
#
# With more steps the samples get better, until the model starts to reproduce its 1437 training
# images. In full mode we train afresh for several lengths and follow both numbers; in quick mode the
# list is empty and this cell only reports the run above.

# %%
curve = [(fit.steps_run, q_main["ratio"], q_main["copy ratio"])]
for n_steps in run.budget(quick=[], full=[5_000, 10_000, 20_000, 80_000]):
    _, res = recipes.fit_ddpm_digits(steps=n_steps, T=T, max_beta=0.2, loss=ddpm_loss, device=run.device,
                                  eval_every=500, desc=f"{n_steps} steps")
    xs = ddpm.sample(schedule, res.ema.model, (256, 64), device=run.device, clip_x0=True,
                          generator=torch.Generator().manual_seed(3))
    q = quality(data.signed_to_unit(xs.clamp(-1, 1)).cpu())
    curve.append((n_steps, q["ratio"], q["copy ratio"]))
for n_steps, ratio, copy in sorted(curve):
    print(f"{n_steps:>6} steps: confident-share ratio {ratio:.2f}x, nearest-training ratio {copy:.2f}")
if len(curve) > 1:
    curve.sort()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([c[2] for c in curve], [c[1] for c in curve], "o-")
    for n_steps, ratio, copy in curve:
        ax.annotate(f"{n_steps}", (copy, ratio), fontsize=8)
    ax.set_xlabel("nearest-training ratio (1 = as new as real digits)")
    ax.set_ylabel("confident share / real")
    ax.invert_xaxis()
    plt.tight_layout()
    plt.show()

# %% [markdown]
# ## Summary
#
# * $q(x_{t-1}\mid x_t, x_0)$ is Gaussian with mean $\tilde\mu_t$ and variance $\tilde\beta_t$ (Problem 15.3.3 (i)),
#   checked above against the forward chain itself.
# * The mean of (15.11) is $\tilde\mu_t(x_t, \hat x_0)$ with $\hat x_0$ read off $\epsilon_\theta$ (Problem 15.3.3 (ii)),
#   so training on the noise (15.10) is training the reverse mean.
# * The same few lines train a denoiser on two moons in seconds and on the digits in about half a minute;
#   the samples were measured by a classifier and a copy check rather than judged by eye, and the
#   printed numbers above say how far quick mode gets.
# * Clipping $\hat x_0$ is a change to (15.11), and $\sigma_t$ is a real choice: it barely moves the samples but
#   moves the likelihood bound, which counts the Jacobian of the $[0,1) \to [-1,1]$ rescaling.

# %% [markdown]
# Your exercises in this lesson, as the autograder last saw them:

# %%
from companion_lib.grading import progress

progress("15.3.3")
