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
# 2. train $\epsilon_\theta$ by (15.10), and a network $s_\theta$ that outputs the score itself by denoising score
#    matching (exercise: its loss), and see that with the right weight the two losses are one, through (15.13);
# 3. compare the learned fields with the exact score, and measure where they fail: where $p(x_t)$ has no mass;
# 4. measure the error against $t$ in three units, to test the claim that noisier levels are easier to learn;
# 5. sample with the exact score and with the learned one, and compare both with the data.
#
# **Needs:** §15.3 (eqs. 15.8, 15.10, 15.11), §14.3 (the score). Quick mode: under a minute (two small
# networks of 1200 steps each; full mode trains each for 20,000).

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from companion_lib import ddpm, ebm, forward_diffusion, scores, settings, training
from companion_lib.viz import ch15
from companion_lib.denoisers import ResidualDenoiser
from companion_lib.grading import check

run = settings.setup(seed=0, notebook="15_3_4_score_matching")

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
#
# A check must be able to fail. The average carries a Monte-Carlo error (about $1/\sqrt{\text{pairs}}$), and
# near a blob's centre $\epsilon^*$ is close to 0: there $\epsilon \equiv 0$ would pass as well as the truth.
# So the probes sit on the flanks of the blobs, where $|\epsilon^*|$ is large, and the cell asserts both
# that the average agrees with $\epsilon^*$ and that it is *far* from 0 on the scale of the same tolerance.

# %%
g = torch.Generator().manual_seed(1)
n = 2_000_000
x0 = ebm.gmm_sample(n, WEIGHTS, MEANS, VARS, generator=g)
eps = torch.randn(n, 2, generator=g)
PROBES = {100: torch.tensor([[-1.55, -0.8], [-0.8, -0.8], [-1.2, -0.4]]),      # flanks of the left blob
          400: torch.tensor([[-1.0, -1.45], [-1.75, -0.65], [1.0, -1.45]])}    # the blobs have widened
for t, probe in PROBES.items():
    xt = forward_diffusion.q_sample(schedule, x0, torch.full((n,), t), eps)
    exact = eps_star(probe, alpha_bar(t), WEIGHTS, MEANS, VARS)
    for p, e in zip(probe, exact):
        near = (xt - p).norm(dim=1) < 0.03
        mc = eps[near].mean(0)
        se = eps[near].std(0).max().item() / math.sqrt(int(near.sum()))
        tol = 4 * se + 0.03                           # Monte-Carlo error + the disc's smoothing bias
        print(f"t={t:>3} x=({p[0]:+.2f},{p[1]:+.2f}): E[ε | x_t ≈ x] = ({mc[0]:+.3f},{mc[1]:+.3f}) "
              f"[{int(near.sum())} pairs], ε*(x) = ({e[0]:+.3f},{e[1]:+.3f}); tolerance {tol:.3f}")
        assert (mc - e).abs().max().item() < tol                # ε* agrees with the average ...
        assert mc.abs().max().item() > 3 * tol                  # ... and ε ≡ 0 would fail by a wide margin

# %% [markdown]
# (The disc has radius 0.03, so the averages carry a small smoothing bias besides their Monte-Carlo error.)
#
# ## 2. Learning $\epsilon_\theta$ by (15.10)
#
# The network never sees a score: it only regresses the noise (15.10) on samples of the mixture.

# %%
STEPS = run.budget(quick=1200, full=20_000)
torch.manual_seed(0)
net = ResidualDenoiser(2, hidden=128, blocks=3, emb_dim=64).to(run.device)


def loss_fn(model, x0):
    t = torch.randint(1, T + 1, (x0.shape[0],), device=x0.device)
    return ddpm.ddpm_loss(schedule, model, x0, t, torch.randn_like(x0)) / x0.shape[1]


fit = training.train(net, loss_fn, x_data.to(run.device), steps=STEPS,
                     batch_size=256, lr=3e-3, warmup=100, cosine=True, ema_decay=0.995, desc="ε_θ on the mixture")
eps_model = fit.ema.model
print(f"{fit.steps_run} steps in {fit.seconds:.1f} s ({fit.steps_run / fit.seconds:.0f} steps/s)")


@torch.no_grad()
def learned_score(x, t):
    """−ε_θ(x, t)/√(1 − ᾱ_t): the score the network implies by (15.13). x (n, 2) on the CPU."""
    tt = torch.full((x.shape[0],), t, device=run.device)
    return scores.score_from_eps(eps_model(x.to(run.device), tt).cpu(), 1 - alpha_bar(t))


# %% [markdown]
# ## 2b. A network that outputs the score: denoising score matching
#
# (15.13) says the ε-network is a score network in disguise. Take the other road: a network $s_\theta(x_t, t)$
# whose output *is* the score, trained to match $\nabla\log p(x_t)$. That target is unknown, but Vincent
# (2011) showed that regressing onto the score of the noising kernel, $\nabla_{x_t}\log q(x_t\mid x_0)$,
# which (15.8) gives in closed form, has the same minimiser: averaged over the $x_0$ that could have
# produced $x_t$, the kernel's score is $\nabla\log p(x_t)$. This is *denoising score matching*.
#
# **Exercise.** Write the loss, with one weight $\lambda$ per row (the next cell says why a weight is needed).

# %%
def score_matching_loss(schedule, score_model, x0, t, noise, weight):
    """x0, noise (batch, d); t (batch,) steps in 1..T; weight λ (batch,); score_model(x_t, t) -> (batch, d).
    Returns the scalar mean over the batch of λ‖s_θ(x_t, t) − ∇_{x_t} log q(x_t | x_0)‖², x_t by (15.8)."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
result = check("15.3.4.dsm_loss", score_matching_loss)
result

# %%
score_matching_loss = result.or_reference()

# %% [markdown]
# **Why a weight.** Even the perfect network, $s_\theta = \nabla\log p(x_t)$, does not bring the loss to 0: the
# target $\nabla\log q(x_t\mid x_0)$ scatters around its mean. The floor that is left at step $t$ is
# $\mathbb E\lVert\nabla\log q - \nabla\log p\rVert^2 = \mathbb E\lVert\epsilon - \epsilon^*\rVert^2/(1-\bar\alpha_t)$,
# computable here with the exact $\epsilon^*$:

# %%
g = torch.Generator().manual_seed(5)
floors = {}
for t in (1, 10, 100, 400, 1000):
    x0 = ebm.gmm_sample(20_000, WEIGHTS, MEANS, VARS, generator=g)
    e = torch.randn(20_000, 2, generator=g)
    xt = forward_diffusion.q_sample(schedule, x0, torch.full((20_000,), t), e)
    resid = (e - eps_star(xt, alpha_bar(t), WEIGHTS, MEANS, VARS)).pow(2).sum(1).mean().item()
    floors[t] = (resid / (1 - alpha_bar(t)), resid)
    print(f"t = {t:>4}: floor of the unweighted loss {floors[t][0]:10.3g};  with λ_t = 1 − ᾱ_t: {floors[t][1]:.3g}")
spread = max(f[0] for f in floors.values()) / min(f[0] for f in floors.values())
assert spread > 100 and max(f[1] for f in floors.values()) <= 2.0
print(f"unweighted, the floors span a factor {spread:.0f}; weighted, every floor is at most d = 2")

# %% [markdown]
# Unweighted, the smallest steps would dominate every minibatch with noise the network cannot remove.
# Song & Ermon (2019) weight step $t$ by the kernel's variance, $\lambda_t = 1-\bar\alpha_t$. With that weight,
# $\lambda_t\lVert s_\theta + \epsilon/\sqrt{1-\bar\alpha_t}\rVert^2 = \lVert\epsilon - (-\sqrt{1-\bar\alpha_t}\,s_\theta)\rVert^2$: the weighted
# loss of a score network **is** (15.10) for the ε-network $\epsilon_\theta = -\sqrt{1-\bar\alpha_t}\,s_\theta$, which is
# (15.13) read as an identity between losses. Checked on one minibatch with your loss:

# %%
torch.manual_seed(1)
score_net = ResidualDenoiser(2, hidden=128, blocks=3, emb_dim=64).to(run.device)
xb = x_data[:256].to(run.device)
tb = torch.randint(1, T + 1, (256,), device=run.device)
nb = torch.randn(256, 2, device=run.device)
lam = schedule.at("one_minus_alpha_bars", tb, xb).squeeze(1)
dsm = score_matching_loss(schedule, score_net, xb, tb, nb, lam)
as_eps = ddpm.ddpm_loss(schedule, lambda x, t: -schedule.at("one_minus_alpha_bars", t, x).sqrt() * score_net(x, t),
                        xb, tb, nb)
print(f"weighted DSM loss of s_θ {dsm.item():.6f};  (15.10) of −√(1 − ᾱ_t) s_θ {as_eps.item():.6f}")
assert abs(dsm.item() - as_eps.item()) <= 1e-4 * as_eps.item()


# %% [markdown]
# The two losses agree, but the two *networks* are parameterised differently: the score network must
# output the score itself, of size up to about $1/\sqrt{1-\bar\alpha_t}$ (printed below for small $t$), where the
# ε-network outputs numbers of size 1. Train it on your loss, with the same budget as $\epsilon_\theta$ (section 4
# compares the two, through (15.13), at every $t$):

# %%
def dsm_loss_fn(model, x0):
    t = torch.randint(1, T + 1, (x0.shape[0],), device=x0.device)
    lam = schedule.at("one_minus_alpha_bars", t, x0).squeeze(1)
    return score_matching_loss(schedule, model, x0, t, torch.randn_like(x0), lam) / x0.shape[1]


print("1/√(1 − ᾱ_t) at t = 1, 10, 100:", ", ".join(f"{(1 - alpha_bar(t)) ** -0.5:.3g}" for t in (1, 10, 100)))
fit_s = training.train(score_net, dsm_loss_fn, x_data.to(run.device), steps=STEPS, batch_size=256, lr=3e-3,
                       warmup=100, cosine=True, ema_decay=0.995, desc="s_θ on the mixture")
score_model = fit_s.ema.model
print(f"{fit_s.steps_run} steps in {fit_s.seconds:.1f} s")


@torch.no_grad()
def eps_of(model, x, t, kind):
    """The noise prediction of either network at one step t (x (n, 2) on the CPU): ε_θ itself, or
    −√(1 − ᾱ_t) s_θ by (15.13)."""
    out = model(x.to(run.device), torch.full((x.shape[0],), int(t), device=run.device)).cpu()
    return out if kind == "eps" else scores.eps_from_score(out, 1 - alpha_bar(int(t)))


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
# At $t = 700$ the two fields coincide. At $t = 10$ and $t = 100$ they agree on the blobs and disagree
# *between* them. That is not bad luck: (15.10) is an average over $x_t \sim p(x_t)$, so an error at a
# point costs in proportion to the density there, and where $p(x_t)$ has almost no mass the network is
# never asked anything (Song & Ermon 2019 call this the low-density problem; it is why score models
# noise the data at several levels). Measured at every point of the grid, against the density there:

# %%
BINS = np.array([-np.inf, -8, -6, -4, -2, 0, np.inf])           # log10 p(x_t)
fig, ax = plt.subplots(figsize=(6.5, 3.8))
by_density = {}
for t, marker in ((10, "o"), (100, "s")):
    w, m, v = forward_diffusion.noisy_mixture(alpha_bar(t), WEIGHTS, MEANS, VARS)
    log10_p = (-ebm.gmm_energy(grid, w, m, v) / math.log(10)).numpy()
    exact_eps = eps_star(grid, alpha_bar(t), WEIGHTS, MEANS, VARS)
    which = np.digitize(log10_p, BINS[1:-1])
    for name, model, kind in (("ε_θ", eps_model, "eps"), ("s_θ", score_model, "score")):
        err = (eps_of(model, grid, t, kind) - exact_eps).pow(2).sum(1).numpy()
        med = np.array([np.median(err[which == b]) if (which == b).any() else np.nan for b in range(len(BINS) - 1)])
        by_density[(t, name)] = med
        ax.semilogy(range(len(med)), med, marker + ("-" if name == "ε_θ" else "--"), label=f"t = {t}, {name}")
ax.set_xticks(range(len(BINS) - 1), ["< −8", "−8..−6", "−6..−4", "−4..−2", "−2..0", "> 0"])
ax.set_xlabel("log10 p(x_t) at the point")
ax.set_ylabel("median ‖ε̂ − ε*‖² (ε units)")
ax.legend(fontsize=8)
ax.set_title("the learned score is wrong where p(x_t) has no mass")
plt.tight_layout()
plt.show()
for (t, name), med in by_density.items():
    dense = med[~np.isnan(med)]
    print(f"t = {t:>3}, {name}: median error {dense[0]:.3g} in the emptiest cells, {dense[-1]:.3g} in the "
          f"densest (ratio {dense[0] / dense[-1]:.0f})")
    assert dense[0] > 10 * dense[-1]

# %% [markdown]
# The error is orders of magnitude larger where $p(x_t)$ is small, at both steps and for both networks.
# At $t = 700$ the same grid is covered by a single wide Gaussian, every point has mass, and the
# fields agree everywhere. The sampler never needs the score where no sample goes, so the failure costs
# little at sampling time *if* the chain stays where the model was trained; starting at $x_T \sim \mathcal N(0, I)$
# and reaching low $t$ only after the noisier levels have moved samples onto the blobs is exactly that.
#
# > **Note on the text.** Two sentences around (15.13) say more than holds.
# > (1) Training $\epsilon_\theta$ by (15.10) is said to compute "the score of the data distribution at every
# > noise level". By (15.13) it computes the score of the *noisy* marginal $p(x_t)$, the data distribution
# > blurred by the forward noise of step $t$: a different function at every $t$ (the four panels above), of
# > which the data's own score is only the $t \to 0$ end. The text writes the same $p$ for all of these
# > marginals, and $e^*(x_t, t)$ once where it means $\epsilon^*$.
# > (2) The noisy distributions are said to "cover the entire space". For $t \ge 1$, $p(x_t)$ is positive
# > everywhere, but at small $t$ that is a formality: on much of the plotted square the density is below
# > $10^{-8}$, and the probability there is so small that no training batch ever lands in it. Covering the
# > space in the sense that matters for learning is a property of the large $t$ only. On this lesson's mixture:

# %%
pts, _, area = ebm.grid_2d(LIM, 250)                               # float64 on the CPU
for t in (1, 10, 100, 300, 700):
    with settings.cpu_float64():                                   # exact, in float64 on the CPU
        w, m, v = forward_diffusion.noisy_mixture(alpha_bar(t), WEIGHTS.double(), MEANS.double(), VARS.double())
        log10_p = -ebm.gmm_energy(pts, w, m, v) / math.log(10)
        empty = log10_p < -8
        mass = (10 ** log10_p[empty]).sum().item() * area
        lowest, empty_share, any_empty = log10_p.min().item(), empty.double().mean().item(), bool(empty.any())
    print(f"t = {t:>3}: smallest log10 p(x_t) on the square {lowest:4.0f}; p(x_t) < 1e-8 on "
          f"{empty_share:4.0%} of its area"
          + (f", which one draw of x_t in {1 / mass:.0e} reaches" if any_empty else ""))
print(f"each network's training drew {STEPS * 256:,} points x_t in all, spread over the {T} steps")

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
    eps_err = (eps_of(eps_model, xt, t, "eps") - exact_eps).pow(2).sum(1).mean().item()
    score_net_err = (eps_of(score_model, xt, t, "score") - exact_eps).pow(2).sum(1).mean().item()
    score_size = (exact_eps.pow(2).sum(1).mean() / (1 - alpha_bar(t))).item()
    rows.append((t, eps_err / (1 - alpha_bar(t)), eps_err, eps_err / (1 - alpha_bar(t)) / score_size, score_net_err))
rows = np.array(rows)

fig, ax = plt.subplots(figsize=(6.5, 3.8))
ax.loglog(rows[:, 0], rows[:, 1], "o-", ms=3, label="score error  E‖s_θ − ∇log p‖²")
ax.loglog(rows[:, 0], rows[:, 2], "o-", ms=3, label="ε units  E‖ε_θ − ε*‖²")
ax.loglog(rows[:, 0], rows[:, 3], "o-", ms=3, label="relative  E‖s_θ − ∇log p‖² / E‖∇log p‖²")
ax.loglog(rows[:, 0], rows[:, 4], "s--", ms=3, label="score network, ε units  E‖−√(1−ᾱ) s_θ − ε*‖²")
ax.set_xlabel("step t")
ax.set_ylabel("mean squared error")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %%
low, high = rows[rows[:, 0] <= 30], rows[rows[:, 0] >= 300]
print(f"t <= 30:  score error {low[:, 1].mean():.3g}, ε-units {low[:, 2].mean():.3g}, relative {low[:, 3].mean():.3g}")
print(f"t >= 300: score error {high[:, 1].mean():.3g}, ε-units {high[:, 2].mean():.3g}, relative {high[:, 3].mean():.3g}")
print(f"score network in ε units: t <= 30 {low[:, 4].mean():.3g}, t >= 300 {high[:, 4].mean():.3g}; "
      f"mean over all t {rows[:, 4].mean():.3g} against the ε-network's {rows[:, 2].mean():.3g}")
better = "score network" if low[:, 4].mean() < low[:, 2].mean() else "ε-network"
print(f"at t <= 30 the {better} has the smaller error in ε units")

# %% [markdown]
# Read in $\epsilon$ units or relative to the score, the error is smallest at the noisiest levels,
# where $p(x_t)$ is close to one wide Gaussian and its score nearly linear; at small $t$ the score must
# follow four sharp blobs and their boundaries, and the relative error is larger (above 1 at the
# smallest steps: there the network's score is worse than no score at all, and the optimal $\epsilon^*$ is
# tiny, so (15.10) hardly rewards getting it right). So the claim holds
# here in units that do not favour it, while the raw score error exaggerates it by the factor
# $1/(1-\bar\alpha_t)$.
#
# The score network (dashed), trained on the same loss read through (15.13), is not the same model: its
# output must grow like $1/\sqrt{1-\bar\alpha_t}$ at small $t$, and its error curve has another shape than the
# ε-network's (the averages printed above; the cell below states which is smaller at the smallest steps).
# One loss, two parameterisations, two different sets of errors: the choice of what the network outputs
# matters even when the objectives are identical.
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
#   matched a brute-force average of the noise $\mathbb E[\epsilon\mid x_t]$ at probes where $\epsilon \equiv 0$ would fail.
# * Denoising score matching regresses a score network onto $\nabla\log q(x_t\mid x_0) = -\epsilon/\sqrt{1-\bar\alpha_t}$.
#   Unweighted, its floor spans many orders of magnitude across $t$; with $\lambda_t = 1-\bar\alpha_t$ it *is* (15.10)
#   for $\epsilon_\theta = -\sqrt{1-\bar\alpha_t}\,s_\theta$, which is (15.13) as an identity between losses. Section 4
#   compares the two trained networks at every $t$.
# * Both networks learned the score where $p(x_t)$ has mass. Between the blobs at small $t$, where
#   $p(x_t)$ is tiny, their fields disagree with the exact one by orders of magnitude more than on the blobs:
#   (15.10) only asks for the score where the data go (the low-density problem behind noising at many levels).
# * Measured in $\epsilon$ units or relative to the score's size, the error is smallest at the noisiest levels,
#   as the text says; the raw score error would overstate the effect through the factor $1/(1-\bar\alpha_t)$.
# * The reverse chain run with the exact $\epsilon^*$ reproduces the mixture; with the learned $\epsilon_\theta$ it
#   comes close, and the histogram distances above say how close.

# %% [markdown]
# Your exercises in this lesson, as the autograder last saw them:

# %%
from companion_lib.grading import progress

progress("15.3.4")
