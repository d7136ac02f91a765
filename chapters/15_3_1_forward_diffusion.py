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
# # §15.3.1 The forward process: progressive noising
#
# A diffusion model never learns to *destroy* an image: that half is fixed in advance. The forward
# process is a Markov chain that, step by step, shrinks the current state a little and adds a little
# Gaussian noise,
#
# $$q(x_t \mid x_{t-1}) = \mathcal N\!\big(x_t;\ \sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\big),\qquad t = 1,\dots,T
# \qquad\text{(15.7)}$$
#
# with a fixed *schedule* of small variances β₁, …, β_T. With α_t = 1 − β_t and ᾱ_t = α₁α₂⋯α_t the text
# states that the T small steps can be skipped: x_t can be drawn from x₀ in one go,
#
# $$q(x_t \mid x_0) = \mathcal N\!\big(x_t;\ \sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big).
# \qquad\text{(15.8)}$$
#
# Proving (15.8) is Problem 15.3.1. Here we
#
# 1. build the two schedules in common use (linear and cosine) and write **ᾱ_t** yourself;
# 2. write **`q_sample`**, the one-draw sampler of (15.8), and watch a digit dissolve;
# 3. prove (15.8) by computation: you write how **two Gaussian steps compose into one**, and the lesson
#    applies your composition T times to reach ᾱ_t (the induction of Problem 15.3.1; the written proof
#    is in the solutions notebook);
# 4. check (15.8) against the slow chain (15.7) with moments and named two-sample tests, first showing
#    that the tests *do* reject a deliberately wrong formula, in 1-D and on 64-pixel digits;
# 5. explore with a slider how T and the β range decide how fast structure is lost and whether ᾱ_T ≈ 0.
#
# **Notation.** Steps follow the text: t = 1..T, and ᾱ₀ = 1 (no noise yet). In code a schedule's
# tensors have length T and **index t − 1 holds step t**. Images live on the [−1, 1] scale
# (`data.unit_to_signed`), the usual scale for diffusion models.
#
# *Needs:* Gaussians; nothing from Chapter 14 beyond the digits of §14.2. Runs in seconds (no training).

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display
from scipy import stats

from companion_lib import data, forward_diffusion, settings, two_sample
from companion_lib.viz import common, widgets
from companion_lib.grading import check

run = settings.setup(seed=0, notebook="15_3_1_forward_diffusion")
gen = torch.Generator().manual_seed(0)      # all noise of this lesson: drawn on the CPU, moved to run.device

# %% [markdown]
# ## 1. Two schedules and the cumulative product ᾱ_t
#
# * **linear** (Ho et al., 2020): β_t grows linearly from β₁ = 10⁻⁴ to β_T = 0.02 over T = 1000 steps;
# * **cosine** (Nichol & Dhariwal, 2021): ᾱ_t is *prescribed*, ᾱ_t = f(t)/f(0) with
#   f(t) = cos²((t/T + s)/(1 + s) · π/2), s = 0.008, and β_t = 1 − ᾱ_t/ᾱ_{t−1}, clipped at 0.999.
#
# `forward_diffusion.NoiseSchedule` holds β_t, α_t and ᾱ_t as float64 tensors on the CPU (they are cast to the
# data's dtype and device where they meet the data).

# %%
T = 1000
lin = forward_diffusion.NoiseSchedule.linear(T)
cos = forward_diffusion.NoiseSchedule.cosine(T)
print(lin)
print(cos)

# %% [markdown]
# ### Exercise 1: ᾱ_t from the β's
#
# Return the tensor whose entry t − 1 is ᾱ_t = ∏_{i ≤ t}(1 − β_i). Mind the indexing: entry 0 is ᾱ₁,
# not ᾱ₀ = 1.

# %%
def alpha_bar(betas):
    """betas (T,) float64, entry t−1 = β_t  →  (T,) tensor, entry t−1 = ᾱ_t, in betas's dtype."""
    # YOUR CODE HERE
    raise NotImplementedError


result = check("15.3.1.alpha_bar", alpha_bar)
result

# %% [markdown]
# The lesson continues with your function if it passed. A check against theory: the cosine schedule
# *defines* ᾱ_t = f(t)/f(0); rebuilding ᾱ_t from its β's must give that back at every step except the
# last, where the clip β_T ≤ 0.999 moves it.

# %%
# NBVAL_CHECK_OUTPUT
alpha_bar = result.or_reference()
with settings.cpu_float64():                                   # exact schedule arithmetic, on the CPU
    ab_lin, ab_cos = alpha_bar(lin.betas), alpha_bar(cos.betas)
    s_off = 0.008
    f = torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + s_off) / (1 + s_off) * math.pi / 2) ** 2
    prescribed = f[1:] / f[0]
    rel = ((ab_cos[:-1] - prescribed[:-1]).abs() / prescribed[:-1]).max().item()
print(f"cosine: max relative gap to f(t)/f(0) for t < T: {rel:.1e}  (< 1e-10: {rel < 1e-10})")
print(f"cosine at t = T: from the β's {ab_cos[-1].item():.2e}, prescribed {prescribed[-1].item():.1e} "
      "(β_T clipped at 0.999)")
assert rel < 1e-10

# %% [markdown]
# ᾱ_t is how much of the signal's *variance* survives to step t; the signal-to-noise ratio of
# q(x_t | x₀) is SNR_t = ᾱ_t/(1 − ᾱ_t). The linear schedule destroys the signal fast in the middle and
# then spends its last few hundred steps on near-pure noise; the cosine schedule spreads the decay more
# evenly over t, and its log-SNR falls almost linearly in t.

# %%
fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.4))
steps = np.arange(1, T + 1)
for name, sch, ab in (("linear", lin, ab_lin), ("cosine", cos, ab_cos)):
    ax.plot(steps, ab.numpy(), label=f"{name}")
    bx.plot(steps, np.log10(sch.snr().numpy()), label=name)
ax.set_xlabel("t")
ax.set_ylabel(r"$\bar\alpha_t$")
ax.set_title(r"$\bar\alpha_t$: the variance of $x_0$ that survives", fontsize=10)
ax.legend()
bx.axhline(0, color="grey", lw=0.8, ls=":")
bx.set_xlabel("t")
bx.set_ylabel(r"$\log_{10}$ SNR$_t$")
bx.set_title(r"SNR$_t = \bar\alpha_t / (1-\bar\alpha_t)$ (dotted: SNR = 1)", fontsize=10)
bx.legend()
fig.tight_layout()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
for name, sch in (("linear", lin), ("cosine", cos)):
    half = int(np.nonzero(sch.alpha_bars.numpy() <= 0.5)[0][0]) + 1
    print(f"{name:>6}: SNR < 1 from t = {half} on;  ᾱ_T = {sch.alpha_bars[-1].item():.2e}, "
          f"√ᾱ_T = {math.sqrt(sch.alpha_bars[-1].item()):.2e}")

# %% [markdown]
# ## 2. One draw instead of t steps
#
# ### Exercise 2: `q_sample`
#
# Write the sampler of (15.8) for a batch: row i of x0 goes to its own step t[i]. The schedule is
# float64 on the CPU while x0 may be float32 on a GPU: the result must keep **x0's dtype and device**
# (cast the schedule to the data, never the data to the schedule).

# %%
def q_sample(alpha_bars, x0, t, noise):
    """alpha_bars (T,) float64 (entry t−1 = ᾱ_t); x0 (batch, ...); t (batch,) long in 1..T; noise like x0
    → x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε, same shape, dtype and device as x0."""
    # YOUR CODE HERE
    raise NotImplementedError


result = check("15.3.1.q_sample", q_sample)
result

# %% [markdown]
# Now a digit through the forward process, drawn with your `q_sample` (or the reference) on the
# run's device in float32. The same ε is used at every t, so each row shows one path of (15.8) as t
# grows; the top row uses the linear schedule, the bottom row the cosine one.

# %%
q_sample = result.or_reference()
split = data.load_digits_split(validation=False)
X = data.unit_to_signed(data.to_unit(torch.as_tensor(split.X_train, dtype=torch.float32)))   # (1437, 64) in [−1, 1]
X = X.to(run.device)
x0 = X[:1]
show_t = [1, 50, 100, 200, 300, 400, 600, 800, 1000]
eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1)).to(run.device)   # the picture's ε
rows = []
for sch in (lin, cos):
    tt = torch.tensor(show_t, device=run.device)
    rows.append(q_sample(sch.alpha_bars, x0.expand(len(show_t), -1), tt, eps.expand(len(show_t), -1)))
assert rows[0].dtype == torch.float32 and rows[0].device.type == run.device.type
fig, ax = plt.subplots(figsize=(11, 3.2))
common.image_grid(data.signed_to_unit(torch.cat(rows)).clamp(0, 1).cpu(), nrow=len(show_t), ax=ax, vmin=0, vmax=1)
ax.set_title("t = " + ",  ".join(map(str, show_t)) + "    (top: linear, bottom: cosine)", fontsize=10)
plt.show()
print(f"correlation of this ε with x₀ over the 64 pixels: {torch.corrcoef(torch.stack([eps[0], x0[0]]))[0, 1].item():.2f} "
      "(chance level ±0.125: a draw that happens to resemble x₀ would make the last images look like it)")

# %% [markdown]
# ## 3. Problem 15.3.1 as computation: two steps make one
#
# One step of (15.7) is a *linear-Gaussian* map: x_t = √α_t·x_{t−1} + √β_t·ε with ε ~ N(0, I) drawn
# afresh. The whole proof of (15.8) rests on one fact: two such maps in a row are again one such map.
#
# ### Exercise 3: compose two Gaussian steps
#
# Given x_{t−1} = b·x_{t−2} + √u·ε′ and then x_t = a·x_{t−1} + √v·ε, with ε, ε′ independent standard
# normal (and independent of x_{t−2}), x_t given x_{t−2} is N(c·x_{t−2}, w) in each coordinate.
# Return the pair (c, w). The inputs are float64 tensors that broadcast (a batch of pairs of steps).

# %%
def compose(a, v, b, u):
    """x_t = a·x_{t−1} + √v·ε after x_{t−1} = b·x_{t−2} + √u·ε′ (ε, ε′ independent N(0, 1))
    → (c, w): x_t given x_{t−2} is N(c·x_{t−2}, w). Float64 tensors that broadcast."""
    # YOUR CODE HERE
    raise NotImplementedError


result = check("15.3.1.compose", compose)
result

# %% [markdown]
# **The induction, run.** Given x₀, x₀ itself is "coefficient 1, variance 0". Step t of (15.7) is
# the pair (a, v) = (√α_t, β_t), composed *after* the law of x_{t−1} given x₀ that the loop carries.
# If (15.8) holds, after t steps the coefficient is √ᾱ_t and the variance 1 − ᾱ_t. Both schedules run
# at once (tensors of length 2), T = 1000 compositions each; the comparison is with your `alpha_bar`
# (a cumulative product) and with the library's 1 − ᾱ_t (computed as −expm1 Σ log α_s). The lesson
# runs on your `compose` if it passed, else on the reference (then a line above the numbers says so).

# %%
compose = result.or_reference()
with settings.cpu_float64():                                   # exact arithmetic, on the CPU
    a_steps = torch.stack([lin.alphas, cos.alphas]).sqrt()     # (2, T): √α_t of each schedule
    v_steps = torch.stack([lin.betas, cos.betas])              # (2, T): β_t
    c = torch.ones(2, dtype=torch.float64)                     # x₀ given x₀: coefficient 1,
    w = torch.zeros(2, dtype=torch.float64)                    # variance 0
    coefs, variances = [], []
    for k in range(T):                                         # column k holds step t = k + 1
        c, w = compose(a_steps[:, k], v_steps[:, k], c, w)
        coefs.append(c)
        variances.append(w)
    coefs, variances = torch.stack(coefs, 1), torch.stack(variances, 1)
    ab_both = torch.stack([ab_lin, ab_cos])                    # your alpha_bar: a cumulative product
    gap_ab = ((coefs ** 2 - ab_both).abs() / ab_both).max().item()
    om_both = torch.stack([lin.one_minus_alpha_bars, cos.one_minus_alpha_bars])
    gap_om = ((variances - om_both).abs() / om_both).max().item()
    add_ratio = (v_steps[0, :300].sum() / om_both[0, 299]).item()   # "the variances add", linear, t = 300
print(f"{T} compositions, both schedules: largest relative gap of coefficient² to your ᾱ_t {gap_ab:.0e}, "
      f"of the variance to 1 − ᾱ_t {gap_om:.0e} (both < 1e-10: {max(gap_ab, gap_om) < 1e-10})")
print(f"linear schedule, t = 300: β₁ + … + β_t = {add_ratio:.2f} × (1 − ᾱ_t)")
assert max(gap_ab, gap_om) < 1e-10 and add_ratio > 1.4

# %% [markdown]
# T compositions reproduce ᾱ_t and 1 − ᾱ_t at every step to rounding: the loop *is* the induction of
# Problem 15.3.1 (the step t − 1 → t is one call). The last line is what a composition that forgets to
# shrink the earlier noise gives (the β_s simply added up): at t = 300 it overstates the noise by the
# printed factor, and §4 shows the two-sample tests rejecting exactly that formula. The recursion
# w_t = α_t w_{t−1} + β_t is also a good way to *compute* 1 − ᾱ_t: it never subtracts two numbers
# close to 1, so it keeps full relative precision at small t, where 1 − cumprod does not.
#
# ## 4. (15.8) checked against the chain: (15.7) run t times has the law (15.8)
#
# `forward_diffusion.forward_chain` runs (15.7) literally: t steps, fresh noise at each. If (15.8) is right, its
# x_t and `q_sample`'s x_t have the same distribution. Two instruments compare them:
#
# * **moments**: for a fixed x₀, the mean should be √ᾱ_t x₀ and the variance 1 − ᾱ_t (with their
#   Monte Carlo error bars);
# * **two-sample tests**: in 1-D the Kolmogorov–Smirnov test (`scipy.stats.ks_2samp`, the largest gap
#   between the two empirical CDFs); for images the **energy-distance permutation test**
#   (`two_sample.energy_test`, Székely & Rizzo), which works in any dimension.
#
# A test that never rejects proves nothing, so first we show these tests *rejecting* two wrong
# versions of (15.8):
#
# * **"variances add"**: x_t = √ᾱ_t x₀ + √(β₁ + ⋯ + β_t) ε, what one gets by forgetting that every step
#   also shrinks the noise added before it;
# * **a slightly wrong schedule**: the right formula, but with β_T = 0.022 instead of 0.02.
#
# 1-D first: x₀ = 1 for every chain, n chains run to T, recorded at a few steps.

# %%
n = run.budget(quick=20_000, full=400_000)
check_t = [1, 10, 100, 300, 1000]
x0_1d = torch.ones(n, device=run.device)
path = forward_diffusion.forward_chain(lin, x0_1d, T, generator=gen, keep=check_t)      # (len(check_t), n)
lin_wrong = forward_diffusion.NoiseSchedule.linear(T, beta_end=0.022)


def direct(schedule, t, x0_batch):
    """(15.8) by the lesson's q_sample, fresh noise."""
    tt = torch.full((x0_batch.shape[0],), t, device=run.device)
    return q_sample(schedule.alpha_bars, x0_batch, tt, torch.randn(x0_batch.shape, generator=gen).to(run.device))


def variances_add(t, x0_batch):
    """The wrong formula: noise variance β_1 + … + β_t."""
    total = float(lin.betas[:t].numpy().sum())
    return math.sqrt(lin.alpha_bars[t - 1].item()) * x0_batch + math.sqrt(total) * torch.randn(
        x0_batch.shape, generator=gen).to(run.device)


chain_300 = path[check_t.index(300)].cpu().numpy()
p_add = stats.ks_2samp(chain_300, variances_add(300, x0_1d).cpu().numpy()).pvalue
p_sched = stats.ks_2samp(chain_300, direct(lin_wrong, 300, x0_1d).cpu().numpy()).pvalue
p_right = stats.ks_2samp(chain_300, direct(lin, 300, x0_1d).cpu().numpy()).pvalue

# %%
# NBVAL_CHECK_OUTPUT
print(f"KS test at t = 300, n = {n:,} per side (H0: same distribution)")
print(f"  'variances add'          p = {p_add:.1e}   rejected at 1e-6: {p_add < 1e-6}")
print(f"  β_T = 0.022 schedule      p = {p_sched:.1e}   rejected at 1e-6: {p_sched < 1e-6}")
print(f"  (15.8), the right formula p > 1e-3: {p_right > 1e-3}")
assert p_add < 1e-6 and p_sched < 1e-6 and p_right > 1e-3

# %% [markdown]
# The KS test tells the chain apart from a schedule whose last β is off by 10 %. Now the right formula at
# every recorded step: moments with their z-scores (|z| ≲ 3 expected), the two-sample KS test against
# `q_sample` draws, and the one-sample KS test against the exact normal CDF of (15.8).

# %%
rows = []
for k, t in enumerate(check_t):
    xt = path[k].cpu().numpy().astype(np.float64)
    ab, om = lin.alpha_bars[t - 1].item(), lin.one_minus_alpha_bars[t - 1].item()
    z_mean = (xt.mean() - math.sqrt(ab)) / math.sqrt(om / n)
    z_var = (xt.var(ddof=1) - om) / (om * math.sqrt(2 / (n - 1)))        # Var of s² for a Gaussian
    p2 = stats.ks_2samp(xt, direct(lin, t, x0_1d).cpu().numpy()).pvalue
    p1 = stats.kstest(xt, stats.norm(loc=math.sqrt(ab), scale=math.sqrt(om)).cdf).pvalue
    rows.append((t, xt.mean(), math.sqrt(ab), xt.var(ddof=1), om, z_mean, z_var, p2, p1))

# %%
print(f"{'t':>5} {'mean':>8} {'√ᾱ_t':>8} {'var':>9} {'1-ᾱ_t':>9} {'z(mean)':>8} {'z(var)':>7} "
      f"{'KS 2-sample p':>14} {'KS vs (15.8) p':>15}")
for t, m, m_th, v, v_th, zm, zv, p2, p1 in rows:
    print(f"{t:>5} {m:>8.4f} {m_th:>8.4f} {v:>9.5f} {v_th:>9.5f} {zm:>8.2f} {zv:>7.2f} {p2:>14.3f} {p1:>15.3f}")

# %%
# NBVAL_CHECK_OUTPUT
worst_z = max(max(abs(r[5]), abs(r[6])) for r in rows)
smallest_p = min(min(r[7], r[8]) for r in rows)
print(f"largest |z| over {len(rows)} steps x 2 moments < 4: {worst_z < 4};  "
      f"smallest of {2 * len(rows)} p-values > 1e-3: {smallest_p > 1e-3}")
assert worst_z < 4 and smallest_p > 1e-3

# %%
print(f"smallest p-value {smallest_p:.3f}: the least of {2 * len(rows)} independent uniform draws is at most that "
      f"with probability {1 - (1 - smallest_p) ** (2 * len(rows)):.2f}")

# %% [markdown]
# Ten p-values and none below 10⁻³ is what equality predicts (how ordinary the smallest one is, as the
# least of ten uniform draws, is printed just above); but a single p-value can be large by luck, too. A
# sharper check of the *test itself*: repeat the whole experiment many times with small samples. Under
# a true null hypothesis, p-values are uniform on [0, 1], so about 5 % of them fall below 0.05. Against
# a wrong schedule far more should, but how many depends on how wrong it is and on n: with n = 1000 per
# side we compare β_T = 0.022 (caught above with the larger n) and β_T = 0.03.

# %%
reps, n_small, t_cal = run.budget(quick=200, full=1000), 1000, 300
chains = forward_diffusion.forward_chain(lin, torch.ones(reps * n_small, device=run.device), t_cal, generator=gen)
chains = chains.reshape(reps, n_small).cpu().numpy()
one = torch.ones(reps * n_small, device=run.device)
right = direct(lin, t_cal, one).reshape(reps, n_small).cpu().numpy()
lin_wronger = forward_diffusion.NoiseSchedule.linear(T, beta_end=0.03)
p_null = np.array([stats.ks_2samp(a, b).pvalue for a, b in zip(chains, right)])
p_small, p_alt = (np.array([stats.ks_2samp(a, b).pvalue for a, b in zip(chains, wrong)])
                  for wrong in (direct(sch, t_cal, one).reshape(reps, n_small).cpu().numpy()
                                for sch in (lin_wrong, lin_wronger)))

# %%
# NBVAL_CHECK_OUTPUT
rate = (p_null < 0.05).mean()
half_width = 3 * math.sqrt(0.05 * 0.95 / reps)
print(f"{reps} repeats, n = {n_small} per side, t = {t_cal}:")
print(f"  (15.8):           share of p < 0.05 within 0.05 ± {half_width:.3f}: {abs(rate - 0.05) <= half_width}")
print(f"  β_T = 0.022:      share of p < 0.05 = {(p_small < 0.05).mean():.2f}  (little power at this n)")
print(f"  β_T = 0.03:       share of p < 0.05 above 0.5: {(p_alt < 0.05).mean() > 0.5}")
assert abs(rate - 0.05) <= half_width and (p_alt < 0.05).mean() > 0.5

# %%
fig, ax = plt.subplots(figsize=(7, 3))
bins = np.linspace(0, 1, 21)
ax.hist(p_null, bins=bins, alpha=0.7, label=f"chain vs (15.8): {np.mean(p_null < 0.05):.1%} below 0.05")
ax.hist(p_small, bins=bins, alpha=0.6, label=f"chain vs β_T = 0.022: {np.mean(p_small < 0.05):.1%} below 0.05")
ax.hist(p_alt, bins=bins, alpha=0.6, label=f"chain vs β_T = 0.03: {np.mean(p_alt < 0.05):.1%} below 0.05")
ax.axhline(reps / 20, color="k", lw=0.8, ls=":", label="uniform")
ax.set_xlabel("KS p-value")
ax.set_ylabel("repeats")
ax.set_title(f"{reps} repeated KS tests at t = {t_cal}, n = {n_small} per side", fontsize=10)
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ### On digit images (64 dimensions)
#
# **Moments, one x₀.** Run many chains from the same digit to t = 200. Each pixel should have mean
# √ᾱ_t x₀ and variance 1 − ᾱ_t, and distinct pixels should be uncorrelated (the covariance is
# (1 − ᾱ_t) I).

# %%
n_img = run.budget(quick=2000, full=50_000)
t_img = 200
chain_img = forward_diffusion.forward_chain(lin, x0.expand(n_img, -1), t_img, generator=gen).cpu()
ab, om = lin.alpha_bars[t_img - 1].item(), lin.one_minus_alpha_bars[t_img - 1].item()
with settings.cpu_float64():                                   # oracle statistics, float64 on the CPU
    chain_img = chain_img.double()
    mean_img, var_img = chain_img.mean(0), chain_img.var(0)
    z_mean_img = (mean_img - math.sqrt(ab) * x0.cpu().double()[0]) / math.sqrt(om / n_img)
    corr = torch.corrcoef(chain_img.T)
    off = (corr - torch.eye(64, dtype=torch.float64)).abs().max().item()
    pics = torch.stack([x0.cpu()[0].double(), mean_img / math.sqrt(ab), chain_img[0]]).float()
    z_max = z_mean_img.abs().max().item()
    ratio_lo, ratio_hi = (var_img / om).min().item(), (var_img / om).max().item()

# %%
# NBVAL_CHECK_OUTPUT
print(f"t = {t_img}, {n_img:,} chains from one digit: √ᾱ_t = {math.sqrt(ab):.3f}, 1 − ᾱ_t = {om:.3f}")
print(f"  mean image: largest |z| over 64 pixels < 4.5: {z_max < 4.5}")
print(f"  pixel variances / (1 − ᾱ_t) within 1 ± 5·√(2/n): {max(abs(ratio_lo - 1), abs(ratio_hi - 1)) < 5 * math.sqrt(2 / n_img)}")
print(f"  largest |correlation| between pixels < 5/√n: {off < 5 / math.sqrt(n_img)}")
assert z_max < 4.5 and max(abs(ratio_lo - 1), abs(ratio_hi - 1)) < 5 * math.sqrt(2 / n_img)
assert off < 5 / math.sqrt(n_img)

# %%
fig, ax = plt.subplots(figsize=(5, 1.8))
common.image_grid(data.signed_to_unit(pics).clamp(0, 1), nrow=3, ax=ax, vmin=0, vmax=1)
ax.set_title(f"x₀ | chain mean / √ᾱ_t ({n_img} chains) | one x_t, t = {t_img}", fontsize=9)
plt.show()

# %% [markdown]
# **Distributions, many x₀.** Now x₀ is a random training digit. Two disjoint halves of the training
# digits give two independent samples: one half goes through the chain, the other through (15.8), and
# the energy test asks whether the two clouds of 64-dimensional points differ. Again the
# "variances add" formula is there to show the test can say no.

# %%
m_img = run.budget(quick=500, full=700)
n_perm = run.budget(quick=200, full=1000)
perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(1))
A, B = X[perm[:m_img].to(run.device)], X[perm[m_img:2 * m_img].to(run.device)]
g_test = torch.Generator().manual_seed(2)
energy_rows = []
for t in (50, 250, 1000):
    xa = forward_diffusion.forward_chain(lin, A, t, generator=gen)
    right_p = two_sample.energy_test(xa, direct(lin, t, B), n_perm, generator=g_test)["p_value"]
    wrong_p = two_sample.energy_test(xa, variances_add(t, B), n_perm, generator=g_test)["p_value"]
    energy_rows.append((t, right_p, wrong_p))

# %%
# NBVAL_CHECK_OUTPUT
floor = 1 / (n_perm + 1)
print(f"energy permutation test, {m_img} digits per side, {n_perm} permutations (smallest possible p = {floor:.4f})")
for t, right_p, wrong_p in energy_rows:
    print(f"  t = {t:>4}:  chain vs (15.8) p > 0.01: {right_p > 0.01}   "
          f"chain vs 'variances add' p = {wrong_p:.4f} (at the floor: {wrong_p == floor})")
assert all(r > 0.01 for _, r, _ in energy_rows) and all(w == floor for t, _, w in energy_rows if t >= 250)

# %% [markdown]
# At t = 50 the two formulas are still close (β₁ + ⋯ + β₅₀ ≈ 1 − ᾱ₅₀ while both are small), and a few
# hundred digits in 64 dimensions cannot tell them apart; from t = 250 on the wrong one is rejected at
# the smallest p-value the permutations can give, while (15.8) never is.
#
# ## 5. How fast is structure lost, and is ᾱ_T ≈ 0?
#
# The text asks that the schedule make ᾱ_T ≈ 0, so that x_T is (nearly) N(0, I) whatever x₀ was: the
# reverse process starts from exactly that (the text's next subsection, *The Reverse Process and the
# Intuition of Reversibility*, which has no number: see the note below; lesson 15_3_3). The slider changes T and the linear schedule's β₁ and
# β_T; the figure shows ᾱ_t, one digit at fixed fractions of T (same ε throughout), and the mean
# KL(q(x_T | x₀) ‖ N(0, I)) over the training digits (`forward_diffusion.terminal_kl`: ½ Σ_pixels
# [ᾱ_T(x₀² − 1) − log(1 − ᾱ_T)], zero only when ᾱ_T = 0).

# %%
ui, explore = widgets.forward_schedule_explorer(X.cpu(), noise=eps.cpu(), T=1000, beta_start=1e-4, beta_end=0.02)
display(ui)

# %% [markdown]
# Drawn once more below so the notebook reads without a live kernel: the standard schedule, then the
# same β range with only T = 100 steps (the last images still show the digit: ᾱ_T is far from 0), then
# T = 100 with β_T raised to 0.2.

# %%
# NBVAL_CHECK_OUTPUT
summary = {}
for T_, b1, bT in ((1000, 1e-4, 0.02), (100, 1e-4, 0.02), (100, 1e-4, 0.2)):
    summary[(T_, bT)] = explore(T_, b1, bT)
for (T_, bT), res in summary.items():
    print(f"T = {T_:>4}, β_T = {bT}: ᾱ_T = {res['alpha_bar_T']:.1e}, "
          f"KL(q(x_T|x_0) ‖ N(0,I)) = {res['terminal_kl']:.2g} nats per image, SNR < 1 from t = {res['t_half']}")

# %% [markdown]
# With T = 100 and the usual β range, ᾱ_T ≈ 0.36: a sampler that starts from N(0, I) starts from the wrong
# place, by about ten nats per image. Fewer steps need larger β's, and larger β's are exactly what
# Problem 15.3.2 (lesson 15_3_2) will show to be costly for the *reverse* process.
#
# > **Note on the text.** Three places in this section deserve a correction.
# >
# > 1. *The hint of Problem 15.3.1* says that for z₁, z₂ ~ N(μ, I), αz₁ + βz₂ ~ N((α + β)μ, (α² + β²)I).
# >    This needs z₁ and z₂ to be **independent** (it is false for z₂ = z₁, where the variance is
# >    (α + β)²); and the step of the proof combines two Gaussians with *different* means,
# >    √α_t x_{t−1} (mean √ᾱ_t x₀) and √β_t ε (mean 0), so the fact actually used is: for independent
# >    z₁ ~ N(μ₁, σ₁²I), z₂ ~ N(μ₂, σ₂²I), αz₁ + βz₂ ~ N(αμ₁ + βμ₂, (α²σ₁² + β²σ₂²)I). Independence
# >    holds because ε_t is drawn afresh, independent of x_{t−1}.
# > 2. *"Typically the schedule stops just short of this point, so that information about the original
# >    x₀ is retained."* The amount retained is negligible, and keeping it is not the purpose. For any
# >    reference density r, the mutual information satisfies I(x₀; x_T) ≤ E_{x₀} KL(q(x_T | x₀) ‖ r); with
# >    r = N(0, I) the right side is the `terminal_kl` above. ᾱ_T > 0 is simply what a finite number of
# >    steps with β_t < 1 gives, and the sampler starts from N(0, I), discarding whatever x_T still held.
# > 3. *The numbering.* After §15.3.1 the text's subsections *The Reverse Process and the Intuition of
# >    Reversibility* and *Putting it all together: Conditional Generation* carry no number, and the
# >    next numbered one is §15.3.4: there is no §15.3.2 or §15.3.3. The companion names lessons
# >    15_3_2 and 15_3_3 after Problems 15.3.2 and 15.3.3, which sit in the unnumbered reverse-process
# >    subsection, and 15_3_5 after the conditional-generation one.
#
# The computation for the second point, for both standard schedules on all training digits (nats per
# image of 64 pixels), and for the first, with z₂ = z₁:

# %%
# NBVAL_CHECK_OUTPUT
for name, sch in (("linear", lin), ("cosine", cos)):
    bound = forward_diffusion.terminal_kl(sch, X).mean().item()
    print(f"{name:>6}: ᾱ_T = {sch.alpha_bars[-1].item():.1e};  I(x_0; x_T) <= {bound:.1e} nats per image "
          f"(< 0.01: {bound < 0.01})")
z1 = torch.randn(n, generator=gen).to(run.device)
a_, b_ = 0.6, 0.8
print(f"α z1 + β z1: variance {(a_ * z1 + b_ * z1).var().item():.2f} ≈ (α+β)² = {(a_ + b_) ** 2:.2f}, "
      f"not α² + β² = {a_ ** 2 + b_ ** 2:.2f}")

# %% [markdown]
# > **Note on the text (the opening of §15.3).** The text presents a diffusion model as a mapping f from
# > images to N(0, I), "very trivial", with an inverse f⁻¹ that a denoising net provides. The forward
# > process is not a function of the image: it is random, and the same x₀ gives a different x_t at every
# > draw. By t = T two noisings of *one* digit lie as far apart as noisings of two *different* digits, so
# > no f⁻¹ can read x₀ back off x_T. What the forward process carries to N(0, I) is the data's
# > *distribution*; the reverse chain carries N(0, I) back to a distribution (it draws a fresh z at every
# > step of (15.11)), and one x_T leads to many x₀. Distances between 500 pairs (per image of 64 pixels,
# > cosine schedule); at t = T both are about √(2·64):

# %%
g_f = torch.Generator().manual_seed(3)
pairs = torch.randperm(X.shape[0], generator=g_f)[:1000].to(run.device)
first, other = X[pairs[:500]], X[pairs[500:]]
for t_f in (100, 500, T):
    tt_f = torch.full((500,), t_f, device=run.device)
    draw = [torch.randn(first.shape, generator=g_f).to(run.device) for _ in range(2)]
    same = (q_sample(cos.alpha_bars, first, tt_f, draw[0]) - q_sample(cos.alpha_bars, first, tt_f, draw[1]))
    diff = (q_sample(cos.alpha_bars, first, tt_f, draw[0]) - q_sample(cos.alpha_bars, other, tt_f, draw[1]))
    print(f"t = {t_f:>4}: two noisings of one digit {same.norm(dim=1).mean().item():5.2f} apart, "
          f"of two different digits {diff.norm(dim=1).mean().item():5.2f}   (√(2·64) = {math.sqrt(128):.2f})")
assert abs(diff.norm(dim=1).mean().item() / same.norm(dim=1).mean().item() - 1) < 0.02

# %% [markdown]
# ## Summary
#
# * A schedule β₁..β_T fixes everything: α_t = 1 − β_t, ᾱ_t = ∏ α_i, SNR_t = ᾱ_t/(1 − ᾱ_t). The linear
#   schedule's SNR drops below 1 at t = 260 of 1000 and its last few hundred steps add noise to noise;
#   the cosine one crosses at t = 497 and spreads the loss over all steps.
# * Two linear-Gaussian steps compose into one (coefficients multiply; the earlier variance is scaled
#   by the later coefficient squared, then the variances add). Applied T times, that composition is
#   the proof of (15.8): it reproduced ᾱ_t and 1 − ᾱ_t at every step to rounding.
# * (15.8) replaces t steps of (15.7) by one draw. Checked here, not assumed: moments within their error
#   bars, KS tests (1-D) and energy permutation tests (64-pixel digits) that reject two wrong formulas
#   but not (15.8), and KS p-values that are uniform under (15.8) (about 5 % below 0.05).
# * Whether x_T is pure noise depends on T and the β range together: ᾱ_T ≈ 4·10⁻⁵ for the standard linear
#   schedule, 0.36 for T = 100 with the same β's. What x_T still knows about x₀ (under 10⁻³ nats per image
#   for the standard schedules) is not used by the sampler.
# * `q_sample` keeps the data's dtype and device: the float64 schedule is cast, never the data.

# %% [markdown]
# Your exercises in this lesson, as the autograder last saw them:

# %%
from companion_lib.grading import progress

progress("15.3.1")
