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

# %% tags=["colab"]
# On Colab only (elsewhere this cell does nothing): install companion_lib 0.2.0 without touching
# Colab's own packages (--no-deps: its torch and widgets stay as they are), then check the import
# and name any dependency that is missing or too old.
import importlib as _il, importlib.metadata as _md, os as _os, subprocess as _sp, sys as _sys
if "google.colab" in _sys.modules:
    if "0.2.0" not in [_d.version for _d in _md.distributions(name="companion_lib")]:
        _source = _os.environ.get("COMPANION_COLAB_SOURCE", "companion_lib @ git+https://github.com/OWNER/companion@v0.2.0")
        _sp.run([_sys.executable, "-m", "pip", "install", "-q", "--no-deps", _source], check=True)
        _il.invalidate_caches()
    from companion_lib import colab as _colab
    _colab.report()

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
# 2. write the **training loss (15.10)**, **one sampling step (15.11)** and the **whole sampling loop**
#    from $x_T$ to $x_0$ ourselves;
# 3. train on 2-D data (seconds), then on the 8×8 digits, sample, and look at the chain: $x_t$ and the
#    $\hat x_0$ the network sees in it;
# 4. **measure** the samples instead of eyeballing them: a digit classifier labels them, and a
#    nearest-neighbour search asks whether they are copies of training images;
# 5. derive **(15.10) from the variational bound**: each term of the bound is the loss (15.10) with a
#    weight that depends on $t$, which we write down and check against exact Gaussian KLs;
# 6. compute a **held-out likelihood bound in bits/dim**, on the same scale as the VAE and flow lessons.
#
# How the weighting of the loss (unweighted (15.10), the bound's weights, others) and the number of
# sampling steps change the samples is measured side by side in the next lesson, `15_3_3b`.
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

from companion_lib import bench, data, ddpm, forward_diffusion, gaussian, metrics, recipes, settings, training
from companion_lib.viz import ch15, common, widgets
from companion_lib.denoisers import ResidualDenoiser
from companion_lib.grading import check

run = settings.setup(seed=0, notebook="15_3_3_reverse_diffusion_ddpm")

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
# > **Note on the text.** Four places around (15.10)–(15.11) and Problem 15.3.3 need a correction.
# >
# > 1. *Problem 15.3.3 (ii)* speaks of "parameterizing the reverse process mean $\widetilde\mu_t(x_t, x_0)$".
# >    $\tilde\mu_t(x_t, x_0)$ is the mean of the posterior of (i) (a symbol the text uses without defining
# >    it), and the reverse model's mean cannot depend on $x_0$, which it does not have. What (ii) asks for,
# >    and what the cell above checks, is that the model's mean $\mu_\theta(x_t, t)$ of (15.11) equals
# >    $\tilde\mu_t(x_t, \hat x_0)$ with $\hat x_0$ read off $\epsilon_\theta$.
# > 2. Before (15.10) the text says that because the steps are small, "the reverse transition
# >    $p_\theta(x_{t-1}\mid x_t)$ can also be approximated by a Gaussian". The model $p_\theta$ is a Gaussian by
# >    construction; the statement that needs small steps is about the *true* reverse conditional
# >    $q(x_{t-1}\mid x_t)$, which lesson 15_3_2 (§3) measures.
# > 3. *Footnote 9* says the gradient step helps the network learn "the 'signal' in the $\epsilon$". The noise
# >    carries no signal: it is drawn independently of $x_0$. The signal is in $x_t$, and what the network
# >    learns is $\mathbb E[\epsilon\mid x_t]$, which depends on the data distribution. In 1-D with data
# >    $x_0 \sim \mathcal N(0, s^2)$ it is $\sqrt{1-\bar\alpha_t}\,x_t/(\bar\alpha_t s^2 + 1 - \bar\alpha_t)$: below, the same
# >    noise for two values of $s$, uncorrelated with $x_0$ both times, and two different best predictions.
# > 4. *(15.11)* never says what $\sigma_t$ is (Exercise 4 takes the two usual choices), and as printed it adds
# >    $\sigma_t z$ at every step down to $t = 1$. With $\sigma_1^2 = \tilde\beta_1 = 0$ that last noise vanishes
# >    by itself; with $\sigma_t^2 = \beta_t$ it would blur the final sample, so Ho et al. (2020, Algorithm 2)
# >    set $z = 0$ at $t = 1$, as this companion's step does. How much it would add here is printed last.

# %%
g = torch.Generator().manual_seed(8)
t_1d, n_1d = 300, 400_000
with settings.cpu_float64():
    ab_1d = schedule.alpha_bars[t_1d - 1].item()
    eps_1d = torch.randn(n_1d, generator=g, dtype=torch.float64)             # the same noise for both data sets
    for s_data in (0.3, 1.5):                                                 # 1-D data x_0 ~ N(0, s²)
        x0_1d = s_data * torch.randn(n_1d, generator=g, dtype=torch.float64)
        xt_1d = math.sqrt(ab_1d) * x0_1d + math.sqrt(1 - ab_1d) * eps_1d
        corr = torch.corrcoef(torch.stack([eps_1d, x0_1d]))[0, 1].item()
        slope = ((eps_1d * xt_1d).mean() / (xt_1d * xt_1d).mean()).item()   # least squares: ε ≈ slope · x_t
        exact = math.sqrt(1 - ab_1d) / (ab_1d * s_data ** 2 + 1 - ab_1d)
        print(f"t = {t_1d}, data N(0, {s_data}²): |corr(ε, x_0)| = {abs(corr):.3f};  best prediction E[ε | x_t] = "
              f"{slope:.3f} x_t (exact {exact:.3f})")
        assert abs(corr) < 0.01 and abs(slope - exact) < 0.01
    sd_last = math.sqrt(schedule.betas[0].item())
print(f"σ_t² = β_t at t = 1 would add noise of standard deviation √β_1 = {sd_last:.4f} to the final sample "
      f"(one grey level is {2 / data.DIGIT_LEVELS:.4f} wide on [-1, 1])")

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
# **Exercise 5.** Now the whole chain. Start from $x_T$ and take the steps of (15.11) down to $x_0$,
# asking the network at each step for $\epsilon_\theta(x_t, t)$. So that a correct loop gives one
# answer, it draws nothing itself: $x_T$ and the $T$ noises $z$ are handed in, `noises[0]` for the
# first step taken (from $x_T$) and `noises[T - 1]` for the last (from $x_1$).

# %%
def sample_loop(schedule, eps_fn, step_fn, x_T, noises, sigma="posterior"):
    """eps_fn(x_t, t) -> eps (t a (batch,) torch.long tensor); step_fn has Exercise 4's signature.
    x_T (batch, ...); noises (T, batch, ...) in the order the steps are taken. Returns x_0 (batch, ...)."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
result = check("15.3.3.sample_loop", sample_loop)
result

# %%
sample_loop = result.or_reference()

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

# %% [markdown]
# 1000 samples with **your loop and your step**. The noises come from one generator in a stated order
# ($x_T$ first, then one $z$ per step), the order in which the library's sampler `ddpm.sample` draws
# them; so the two must give the same samples, and the library's run also keeps the chain's
# intermediate states for the figure below.

# %%
den2d = fit2d.ema.model
g = torch.Generator().manual_seed(2)
x_T = torch.randn(1000, 2, generator=g)
noises = torch.stack([torch.randn(1000, 2, generator=g) for _ in range(T)])
with torch.no_grad():
    xs2d = sample_loop(schedule, den2d, ddpm_step, x_T.to(run.device), noises.to(run.device))
_, kept2d = ddpm.sample(schedule, den2d, (1000, 2), device=run.device, step_fn=ddpm_step,
                        generator=torch.Generator().manual_seed(2), keep=(1000, 300, 100, 30, 0))
gap = (xs2d - kept2d[0]).abs().max().item()
print(f"your loop vs ddpm.sample with the same draws: largest difference {gap:.1e}")
assert gap < 1e-4


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
# The same recipe on the 1437 training digits, scaled to $[-1, 1]$, with three changes that buy better
# digits in the same seconds (the next lesson, `15_3_3b`, measures each against the text's choices): the
# network outputs $v = \sqrt{\bar\alpha_t}\,\epsilon - \sqrt{1-\bar\alpha_t}\,x_0$ (Salimans & Ho 2022), which
# (15.8) turns back into $\epsilon_\theta$ (`ddpm.EpsilonFrom`), so everything downstream is the text's
# $\epsilon$-model; the squared error of each $t$ is weighted by min-SNR-5 (Hang et al. 2023); and it is a
# residual MLP of hidden width 256 with two blocks. Training uses Adam with a short warm-up and cosine
# decay, and an exponential moving average (EMA) of the weights, which samples better than the last
# iterate. The recipe is packaged as `recipes.fit_ddpm_digits` (the companion's scoreboard trains the
# same model). **Your** loss of Exercise 3 computes every training loss: the recipe hands it a network
# whose error is $\sqrt{w_t}\,(\epsilon - \epsilon_\theta)$, so that your $\lVert\epsilon - \cdot\rVert^2$ is the weighted one.
#
# One convention for the data, the one the flow of §15.2 uses and every bits/dim in the companion
# assumes: the model sees **dequantised** digits, $y = (x + u)/17$ with a fresh $u \sim U[0, 1)^{64}$
# for every batch, mapped to $[-1, 1]$, and it is scored (samples against real held-out digits, the
# bound of section 7) on held-out digits dequantised the same way (`dequantize=True`: each batch gets a
# fresh $u$ before your loss sees it). Training sits alone in the next cell: re-running the sampling
# cells does not retrain.

# %%
DIGIT_STEPS = run.budget(quick=3500, full=40_000)
_, fit = recipes.fit_ddpm_digits(steps=DIGIT_STEPS, T=T, max_beta=0.2, loss=ddpm_loss, dequantize=True,
                                 device=run.device)
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


# %% [markdown]
# The chain, for four of the samples: at each chosen $t$ the state $x_t$ (upper image of each pair)
# and the clean image the network reads in it, $\hat x_0(x_t, \epsilon_\theta(x_t, t))$ by your
# Exercise 2 (lower image, clipped to the data's range). Compare the step at which $\hat x_0$ shows a
# recognisable digit with the step at which $x_t$ itself does: the network reads the digit out of an
# $x_t$ that still looks like noise to us.

# %%
SHOWN, N_CHAINS = (1000, 700, 500, 350, 250, 150, 80, 15, 0), 4
fig, axes = plt.subplots(1, len(SHOWN), figsize=(8, 5.2))
for ax, step in zip(axes, SHOWN):
    x = chain[step][:N_CHAINS]
    if step:
        t_col = torch.full((N_CHAINS,), step, dtype=torch.long, device=x.device)
        with torch.no_grad():
            x0_hat = predict_x0(schedule, x, t_col, eps_model(x, t_col))
    else:
        x0_hat = x                                          # the chain has ended: x_0 is the sample
    pairs = torch.stack([x, x0_hat], 1).reshape(-1, 64).clamp(-1, 1)   # x_t, x̂_0 of chain 1, then chain 2, …
    common.image_grid(data.signed_to_unit(pairs).cpu(), nrow=1, ax=ax, vmin=0, vmax=1, title=f"t = {step}")
for i in range(2 * N_CHAINS):
    axes[0].text(-0.15, 1 - (i + 0.5) / (2 * N_CHAINS), r"$x_t$" if i % 2 == 0 else r"$\hat x_0$", fontsize=9,
                 ha="right", va="center", transform=axes[0].transAxes)
fig.suptitle("the reverse chain of four samples: x_t and the x̂_0 the network predicts from it")
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
print(f"confident share {q_main['confident']:.1%} = {q_main['ratio']:.2f}x that of real digits; "
      f"smallest class {q_main['smallest class']:.1%}; nearest-training ratio {q_main['copy ratio']:.2f}")

# %% [markdown]
# How good is good enough? Three seeds of this recipe at the quick budget (3500 steps, the same 256
# samples and 1000 ancestral steps; measured when the recipe was chosen, see `recipes.fit_ddpm_digits`)
# gave a confident share of 0.81 ± 0.03 of real digits' (mean ± standard error), a smallest class of
# 6.2 % ± 0.6 % and a nearest-training ratio of 0.927 ± 0.007. The floors below sit at least three
# standard errors under those means, so an honest run on any machine meets them, and a recipe that
# only pleased the judge by copying its training images would fail the third.

# %%
FLOORS = {"ratio": 0.7, "smallest class": 0.04, "copy ratio": 0.9}
for key, floor in FLOORS.items():
    print(f"{key:<15} {q_main[key]:.3f}  (floor {floor})")
    if run.mode == "quick":       # the floors are the quick budget's; full mode's 40 000 steps follow section 8
        assert q_main[key] >= floor, f"{key} {q_main[key]:.3f} is below its floor {floor}"

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
# Three samplers compared like with like: the same number of samples from the same generator seed, so
# all three start from the same $x_T$ and draw the same $z$'s (a paired comparison): the library's
# clipped step with $\sigma_t^2 = \tilde\beta_t$ (as above), your `ddpm_step` exactly as (15.11) prints it
# (no clipping), and the clipped step with $\sigma_t^2 = \beta_t$. Same network, same judge. The ± is the
# binomial standard error of a confident share over this many samples.

# %%
N_VARIANT = run.budget(quick=64, full=256)
variants = {
    "library, σ²=β̃, clipped": dict(sigma="posterior", clip_x0=True),
    "your step, σ²=β̃, no clip": dict(step_fn=ddpm_step, sigma="posterior"),
    "library, σ²=β, clipped": dict(sigma="beta", clip_x0=True),
}
print(f"{N_VARIANT} samples each, generator seed 5")
for name, kw in variants.items():
    x = ddpm.sample(schedule, eps_model, (N_VARIANT, 64), device=run.device,
                    generator=torch.Generator().manual_seed(5), **kw)
    q = quality(data.signed_to_unit(x.clamp(-1, 1)).cpu())
    se = math.sqrt(q["confident"] * (1 - q["confident"]) / N_VARIANT) / real_share
    print(f"{name:<26} ratio {q['ratio']:.2f}x ± {se:.2f}  smallest class {q['smallest class']:.1%}  "
          f"nearest-training {q['copy ratio']:.2f}")

# %% [markdown]
# ## 6. (15.10) from the variational bound
#
# The text gives the loss (15.10) without deriving it. It comes from the bound on $-\log p_\theta(x_0)$
# that the next section computes (the ELBO of §14.4, with $x_{1:T}$ as the latent variables), whose
# middle terms are
# $$L_{t-1} = \mathrm{KL}\big(q(x_{t-1}\mid x_t, x_0)\,\|\,p_\theta(x_{t-1}\mid x_t)\big), \qquad
#   p_\theta(x_{t-1}\mid x_t) = \mathcal N\big(\mu_\theta(x_t, t), \sigma_t^2 I\big),\quad t = 2, \dots, T,$$
# with $\mu_\theta$ the mean of (15.11). Both are Gaussians whose variances the schedule fixes, so the
# network enters only through the mean, and part 2 says how the two means differ.
#
# **Exercise 6.** Write the weight $w_t$ for which $L_{t-1} = w_t\,\lVert\epsilon - \epsilon_\theta(x_t, t)\rVert^2 + C_t$,
# where $\epsilon$ made $x_t$ by (15.8) and $C_t$ does not depend on $\theta$, for both choices of $\sigma_t^2$.

# %%
def elbo_weight(schedule, t, sigma):
    """t (batch,) steps in 2..T; sigma 'posterior' (σ_t² = posterior variance) or 'beta' (σ_t² = β_t).
    schedule.betas, .alphas, .alpha_bars, .one_minus_alpha_bars: float64, index t - 1 holds step t.
    Returns w_t (batch,): L_{t-1} = w_t ||eps - eps_theta(x_t, t)||^2 + (a constant in theta)."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
result = check("15.3.3.elbo_weight", elbo_weight)
result

# %%
elbo_weight = result.or_reference()

# %% [markdown]
# The claim checked directly, at every $t = 2, \dots, 1000$ of this lesson's schedule and for both
# $\sigma_t^2$: draw $x_0$, $\epsilon$ and two different guesses $\epsilon_\theta, \epsilon'_\theta$, compute the two
# exact Gaussian KLs (your posterior of Exercise 1 against $\mathcal N(\mu_\theta, \sigma_t^2 I)$), and compare
# their difference, in which the constant $C_t$ cancels, with $w_t$ times the difference of the squared errors.

# %%
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(7)
with settings.cpu_float64():
    t_all = torch.arange(2, T + 1)
    x0_k, eps_k, e1, e2 = (torch.randn(T - 1, 64, generator=g, dtype=torch.float64) for _ in range(4))
    xt_k = forward_diffusion.q_sample(schedule, x0_k, t_all, eps_k)
    m_q, v_q = posterior_mean_variance(schedule, x0_k, xt_k, t_all)
    for sigma in ("posterior", "beta"):
        v_p = ddpm.reverse_variance(schedule, t_all, xt_k, sigma).expand_as(xt_k)
        kl1, kl2 = (gaussian.kl(m_q, v_q, ddpm.reverse_mean(schedule, e, xt_k, t_all), v_p).sum(1) for e in (e1, e2))
        claim = elbo_weight(schedule, t_all, sigma) * ((eps_k - e1).pow(2).sum(1) - (eps_k - e2).pow(2).sum(1))
        rel = ((claim - (kl1 - kl2)).abs() / (kl1 - kl2).abs()).max().item()
        print(f"σ_t² = {'β̃_t' if sigma == 'posterior' else 'β_t'}: largest relative gap over t = 2..{T}: "
              f"{'below 1e-9' if rel < 1e-9 else f'{rel:.1e}'}")
        assert rel < 1e-6

# %% [markdown]
# At $t = 1$ the formula breaks for $\sigma_1^2 = \tilde\beta_1$: given $x_0$ there is nothing left to guess,
# $\tilde\beta_1 = 0$, $q(x_0\mid x_1, x_0)$ is a point mass, and no Gaussian $p_\theta$ is at finite KL from
# it. So the bound does not use a KL there. Its last term is a decoder, $L_0 = -\log p_\theta(x_0\mid x_1)$,
# and this lesson's bound (next section) takes $p_\theta(x_0\mid x_1) = \mathcal N(\mu_\theta(x_1, 1), \beta_1 I)$,
# whatever $\sigma_t$ the other steps use. Since $x_0 - \mu_\theta(x_1, 1) = \sqrt{\beta_1/\alpha_1}\,(\epsilon_\theta - \epsilon)$,
# $L_0 = \frac{1}{2\alpha_1}\lVert\epsilon - \epsilon_\theta\rVert^2 + \text{const}$: the $\sigma_1^2 = \beta_1$ value of the
# formula. `ddpm.elbo_weight` returns that weight at $t = 1$, so that $\sum_t w_t\lVert\epsilon - \epsilon_\theta\rVert^2$ is
# the whole bound up to a constant.

# %%
with settings.cpu_float64():
    t1 = torch.tensor([1])
    beta_tilde_1 = ddpm.reverse_variance(schedule, t1, torch.zeros(1, 1, dtype=torch.float64)).item()
    decoder_w = (1 / (2 * schedule.alphas[0])).item()
    library_w = [ddpm.elbo_weight(schedule, t1, s_, like=torch.zeros(1, dtype=torch.float64)).item()
                 for s_ in ("posterior", "beta")]
print(f"posterior variance at t = 1: {beta_tilde_1}; the decoder's weight 1/(2α_1) = {decoder_w:.6f}; "
      f"ddpm.elbo_weight at t = 1 (σ² = β̃, β): {library_w[0]:.6f}, {library_w[1]:.6f}")
assert beta_tilde_1 == 0.0 and all(abs(w - decoder_w) < 1e-12 for w in library_w)

# %% [markdown]
# So the bound is a *weighted* version of (15.10), and (15.10) sets every $w_t$ to 1. How different are
# the two weightings? Below, each weighting's share per step (the weights divided by their sum over
# $t$): the loss (15.10) with $t$ uniform spreads its effort evenly; the bound does not.

# %%
with settings.cpu_float64():
    tt = torch.arange(1, T + 1)
    shares = {sigma: ddpm.elbo_weight(schedule, tt, sigma, like=torch.zeros(T, dtype=torch.float64))
              for sigma in ("posterior", "beta")}
    shares = {k: (v / v.sum()).numpy() for k, v in shares.items()}
fig, ax = plt.subplots(figsize=(5.5, 3.2))
for sigma, label in (("posterior", r"bound, $\sigma_t^2 = \tilde\beta_t$"), ("beta", r"bound, $\sigma_t^2 = \beta_t$")):
    ax.loglog(tt.numpy(), shares[sigma], label=label)
ax.axhline(1 / T, color="grey", ls=":", label="(15.10): 1/T each")
ax.set_xlabel("step t")
ax.set_ylabel("share of the total weight")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
parts = {"first 10 steps": slice(0, 10), "steps 100..900": slice(99, 900), "last 10 steps": slice(T - 10, T)}
for sigma in ("posterior", "beta"):
    print(f"σ_t² = {'β̃_t' if sigma == 'posterior' else 'β_t'}: share of the bound's weight (uniform t in brackets): "
          + ", ".join(f"{name} {shares[sigma][sl].sum():.0%} ({(sl.stop - sl.start) / T:.0%})"
                      for name, sl in parts.items()))
    assert shares[sigma][:10].sum() > 5 * 10 / T and shares[sigma][T - 10:].sum() > 5 * 10 / T
    assert shares[sigma][99:900].sum() < 0.5 * 801 / T

# %% [markdown]
# The loss (15.10) therefore is not the bound: its gradient is the bound's gradient with the steps
# reweighted. The bound's weight is U-shaped: the first few steps (where $x_t$ is almost clean and the
# network must find the last details of the image) and the last few (where this schedule's $\beta_t$
# reaches its cap 0.2) each carry more than five times their uniform share, and the wide middle of the
# chain, where the digit is decided (see the chain above), less than half of it. (15.10) moves that
# weight to the middle. Ho et al. (2020) found that trade worth it (better samples, a worse bound). Whether it holds for this model, on
# equal training budgets and several seeds, is measured in the next lesson, `15_3_3b`; `ddpm.elbo_weight`
# is the weight it trains with.

# %% [markdown]
# ## 7. A held-out likelihood bound in bits per dimension
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
bounds, per_image = {}, {}
for sigma in ("posterior", "beta"):
    nll_x = ddpm.variational_bound(schedule, eps_model, x_held, n_t=64, sigma=sigma,
                                        generator=torch.Generator().manual_seed(6)).cpu()
    log_p_y = -nll_x + 64 * math.log(2)                                   # the Jacobian of y -> x = 2y - 1
    bpd = data.dequantized_bits_per_dim(log_p_y, 64)
    bounds[sigma] = (bpd.mean().item(), bpd.std().item() / math.sqrt(len(bpd)))
    per_image[sigma] = bpd
    forgot = data.dequantized_bits_per_dim(-nll_x, 64).mean().item()
    print(f"σ_t² = {'β̃_t' if sigma == 'posterior' else 'β_t'}: held-out bound {bounds[sigma][0]:.3f} "
          f"± {bounds[sigma][1]:.3f} bits/dim (standard error); without the Jacobian: {forgot:.3f}")
diff = per_image["posterior"] - per_image["beta"]                       # same images, same draws: paired
diff_se = diff.std().item() / math.sqrt(len(diff))
print(f"bound with σ_t² = β̃_t minus bound with σ_t² = β_t: {diff.mean().item():.3f} ± {diff_se:.3f} bits/dim")
assert diff.mean().item() > 3 * diff_se
_ = metrics.record_heldout_result(              # a row of README's table (when the notebooks are refreshed)
    "15_3_3/ddpm", f"DDPM, residual MLP ({fit.steps_run} steps): variational bound, σ_t² = β̃_t / β_t",
    (bounds["posterior"][0], bounds["beta"][0]), "15_3_3", order=0,
    note=f"standard errors {bounds['posterior'][1]:.3f} / {bounds['beta'][1]:.3f}")

# %% [markdown]
# Two things to read off. The choice of $\sigma_t$ matters for the bound ($\sigma_t^2 = \beta_t$ gives the
# lower one, by more than three standard errors of the paired difference): at small $t$ the noise is far finer than the width of a grey level, the
# dequantised data look smooth at that scale, and then the true reverse step is about as noisy as the
# forward one ($\beta_t$); the posterior variance $\tilde\beta_t$ is the right choice only for data
# concentrated on points. And the bound is a number on the same scale as the held-out bits/dim of the
# other lessons (the table in the README collects them); the model behind it was trained on (15.10),
# whose weighting differs from the bound's (section 6).

# %% [markdown]
# ## 8. Longer training (full mode)
#
# With more steps the samples get better, until the model starts to reproduce its 1437 training
# images. In full mode we train afresh for several lengths and follow both numbers; in quick mode the
# list is empty and this cell only reports the run above.

# %%
curve = [(fit.steps_run, q_main["ratio"], q_main["copy ratio"])]
for n_steps in run.budget(quick=[], full=[5_000, 10_000, 20_000, 80_000]):
    _, res = recipes.fit_ddpm_digits(steps=n_steps, T=T, max_beta=0.2, loss=ddpm_loss, dequantize=True,
                                     device=run.device, eval_every=500, desc=f"{n_steps} steps")
    xs = ddpm.sample(schedule, res.ema.model, (256, 64), device=run.device, clip_x0=True,
                          generator=torch.Generator().manual_seed(3))
    q = quality(data.signed_to_unit(xs.clamp(-1, 1)).cpu())
    curve.append((n_steps, q["ratio"], q["copy ratio"]))
recorded = bench.read_curve()        # results/ddpm_training_curve.json, written by a GPU run if one happened
if recorded is not None:
    print(f"recorded curve: {recorded['device']}, {recorded['date']}")
    curve += [(r["steps"], r["confident_ratio"], r["nearest_train_ratio"]) for r in recorded["rows"]]
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
# * Your loop of Exercise 5 runs the whole chain from $x_T$ to $x_0$ on your step; with the same draws it
#   gives the library sampler's samples. The static picture of the chain shows $x_t$ beside the $\hat x_0$
#   the network reads in it.
# * The same few lines train a denoiser on two moons in seconds and on (dequantised) digits in about
#   half a minute (with a v-output and min-SNR weights around your loss); the samples were measured by a classifier and a copy check rather than judged by eye,
#   and the printed numbers above say how far quick mode gets.
# * Each term $L_{t-1}$ of the variational bound is (15.10)'s squared error times a weight
#   $w_t = \beta_t^2 / (2\sigma_t^2\alpha_t(1-\bar\alpha_t))$ (Exercise 6, checked against exact KLs); the bound
#   concentrates its weight on the first steps, (15.10) spreads it evenly.
# * Clipping $\hat x_0$ is a change to (15.11), and $\sigma_t$ is a real choice: it barely moves the samples but
#   moves the likelihood bound, which counts the Jacobian of the $[0,1) \to [-1,1]$ rescaling.

# %% [markdown]
# Your exercises in this lesson, as the autograder last saw them:

# %%
from companion_lib.grading import progress

progress("15.3.3")
