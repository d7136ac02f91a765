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
# # §15.3 Telling Gaussians apart, and why the forward steps must be small
#
# A diffusion model generates by running the forward chain of §15.3.1 backwards, one step
# q(x_{t−1} | x_t) at a time, and it models every backward step by a **Gaussian**. The text argues
# (around eq. 15.9) that this is reasonable only when each forward step adds little noise. This lesson
# makes the argument measurable in three steps:
#
# 1. **Problem 15.3.2**: how often the nearest-mean rule confuses N(μ₁, σ²) with N(μ₂, σ²). You write
#    the exact error probability (i) and its exponential bound (ii); a Monte Carlo simulation must land
#    inside its confidence interval; a slider shows the two densities and the error area.
# 2. **Eq. (15.9)**: after one forward step, two starting points x₀ and x₀' become two Gaussians with the
#    same σ = √β; Problem 15.3.2 says how well x₁ still reveals which one it came from, in 1-D and for
#    pairs of digit images.
# 3. **The reverse step itself**: for a 1-D data distribution where everything can be computed (a
#    mixture of three Gaussians), the *true* reverse conditional q(x_{t−1} | x_t) by quadrature, its best
#    Gaussian fit, and the KL between them: small for small β, large for large β; and over a whole chain,
#    many small steps beat few large ones.
#
# **Notation.** In Problem 15.3.2 the letter t is a *distance* between two means (the text's choice), not
# a diffusion step; in §2 and §3 t is a step again, and β is the variance of one forward step.
#
# *Needs:* §15.3.1 (the forward process and `forward_diffusion.NoiseSchedule`); Gaussians and their CDF Φ. Runs
# in seconds (no training).

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display
from scipy import stats

from companion_lib import data, distinguish, divergences, forward_diffusion, settings
from companion_lib.viz import widgets
from companion_lib.grading import check

run = settings.setup(seed=0, notebook="15_3_2_distinguishing_gaussians")

# %% [markdown]
# ## 1. Problem 15.3.2: two Gaussians, one boundary
#
# P = N(μ₁, σ²) and Q = N(μ₂, σ²) are equally likely sources of a sample x; the classifier says "P" when x
# is nearer to μ₁ and "Q" otherwise. With t = |μ₁ − μ₂|, the decision boundary is the midpoint, and each
# source puts some of its mass on the wrong side of it.
#
# ### Exercise (i): the error probability
#
# Return the probability that the classifier is wrong, for tensors t ≥ 0 and σ > 0 that broadcast.
# For the standard normal tail, 1 − Φ(z) = ½ erfc(z/√2) (`torch.special.erfc`) stays accurate where
# `1 - Phi(z)` would round to zero.

# %%
def error_probability(t, sigma):
    """t ≥ 0 (distance between the means), sigma > 0, float64 tensors that broadcast → P(error), same shape."""
    # YOUR CODE HERE
    raise NotImplementedError


result = check("15.3.2.error_probability", error_probability)
result

# %% [markdown]
# The lesson goes on with your function if it passed. A check against a simulation:
# `distinguish.nearest_mean_error_mc` draws n samples, each from P or Q with probability ½, classifies
# them by the nearer mean and counts the mistakes. The formula must fall inside the simulation's 95 %
# (Wilson) confidence interval, except for about one ratio in twenty by chance; we print each z-score
# (|z| < 1.96 inside the interval) and, to judge all ratios at once, the χ² test of Σ z² (7 degrees of
# freedom if the formula is right).

# %%
error_probability = result.or_reference()


def p_error(ratio):
    """P(error) at the distance ratio·σ (σ = 1) by the lesson's error_probability, as a NumPy array."""
    with settings.cpu_float64():                               # exact tails: float64 on the CPU
        one = torch.tensor(1.0, dtype=torch.float64)
        return np.asarray(error_probability(torch.as_tensor(np.asarray(ratio, dtype=np.float64)), one), dtype=float)


n_mc = run.budget(quick=400_000, full=20_000_000)
ratios = [0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0]
g_mc = torch.Generator().manual_seed(15302)
mc = [distinguish.nearest_mean_error_mc(r, 1.0, n_mc, generator=g_mc, device=run.device) for r in ratios]
exact = p_error(ratios).tolist()

# %%
print(f"n = {n_mc:,} draws per ratio")
print(f"{'t/σ':>5} {'1 − Φ(t/2σ)':>12} {'simulated':>10} {'95% interval':>20} {'z':>6}  inside")
z_scores = []
for r, e, m in zip(ratios, exact, mc):
    z = (m["rate"] - e) / m["se"]
    z_scores.append(z)
    lo, hi = m["ci"]
    print(f"{r:>5.1f} {e:>12.5f} {m['rate']:>10.5f} [{lo:.5f}, {hi:.5f}] {z:>6.2f}  {lo <= e <= hi}")
chi2 = float(np.sum(np.square(z_scores)))
p_chi2 = float(stats.chi2.sf(chi2, len(ratios)))
print(f"Σ z² = {chi2:.2f} on {len(ratios)} degrees of freedom: χ² test p = {p_chi2:.2f}")
n_miss = sum(not (m["ci"][0] <= e <= m["ci"][1]) for e, m in zip(exact, mc))
print(f"{n_miss} of {len(ratios)} intervals miss; at least that many of {len(ratios)} independent 95 % intervals "
      f"miss with probability {stats.binom.sf(n_miss - 1, len(ratios), 0.05):.2f} when the formula is right")
wrong_z = (mc[2]["rate"] - float(p_error(2.0))) / mc[2]["se"]          # 1 − Φ(t/σ) at t/σ = 1
print(f"the wrong formula 1 − Φ(t/σ) at t/σ = 1: z = {wrong_z:.0f}")
assert max(abs(z) for z in z_scores) < 4 and p_chi2 > 0.01

# %% [markdown]
# A 95 % interval misses one time in twenty when the formula is right, so among seven a miss or two is
# no alarm (the table marks them, and the line under it says how often that many misses happen by
# chance). That is why one judges them together: Σ z² is an ordinary value for a χ²(7) variable (the p-value printed above). A
# wrong formula is another matter: the last line puts `1 − Φ(t/σ)` hundreds of standard errors away.
#
# ### Exercise (ii): the bound
#
# Using the tail bound 1 − Φ(z) ≤ ½ e^{−z²/2} for z > 0, write the resulting upper bound on the error
# probability as a function of t and σ.

# %%
def error_bound(t, sigma):
    """t ≥ 0, sigma > 0, float64 tensors that broadcast → the bound on P(error) from the Gaussian tail bound."""
    # YOUR CODE HERE
    raise NotImplementedError


result = check("15.3.2.error_bound", error_bound)
result

# %% [markdown]
# Checks against theory: the bound must hold at every ratio (with equality at t = 0), and it must have
# the right *exponent*: log P(error) / (t²/8σ²) → −1 as t/σ grows. The bound is not tight in its
# prefactor: by the classical Mills-ratio asymptotics 1 − Φ(z) ≈ φ(z)/z, the ratio bound / P(error)
# grows like z·√(π/2) with z = t/2σ, linear in t, while both sides fall like e^{−t²/8σ²}.

# %%
error_bound = result.or_reference()
with settings.cpu_float64():                                   # exact tails, float64 on the CPU
    r_grid = torch.linspace(0, 60, 6001, dtype=torch.float64)
    one = torch.tensor(1.0, dtype=torch.float64)
    p_err, p_bound = error_probability(r_grid, one), error_bound(r_grid, one)
    holds = bool((p_bound >= p_err * (1 - 1e-12)).all())
    exponent = (torch.log(p_err[-1]) / (r_grid[-1] ** 2 / 8)).item()
    z_big = r_grid[-1].item() / 2
    prefactor = (p_bound[-1] / p_err[-1]).item() / (z_big * math.sqrt(math.pi / 2))
    r_grid, p_err, p_bound = r_grid.numpy(), p_err.numpy(), p_bound.numpy()

# %%
# NBVAL_CHECK_OUTPUT
print(f"bound >= P(error) at all {len(r_grid)} ratios in [0, 60]: {holds};  equal at t = 0: "
      f"{abs(p_err[0] - p_bound[0]) < 1e-15}")
print(f"at t/σ = 60: log P(error) / (t²/8σ²) = {exponent:.4f};  (bound / P(error)) / (z √(π/2)) = {prefactor:.4f}")
assert holds and abs(exponent + 1) < 0.01 and abs(prefactor - 1) < 0.01
print(f"P(error) at t/σ = 60 is {p_err[-1]:.2e}; torch.special.ndtr(-30) gives "
      f"{torch.special.ndtr(torch.tensor(-30.0)).item():.1e} here, so tails need erfc")

# %%
fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.4))
rg = r_grid[r_grid <= 8]
ax.plot(rg, p_err[: len(rg)], label="P(error) = 1 − Φ(t/2σ)")
ax.plot(rg, p_bound[: len(rg)], ls="--", label="bound ½ exp(−t²/8σ²)")
ax.errorbar(ratios, [m["rate"] for m in mc], yerr=[1.96 * m["se"] for m in mc], fmt="o", ms=4, capsize=3,
            color="k", label=f"simulation (n = {n_mc:,}) ± 1.96 s.e.")
ax.set_xlabel("t / σ")
ax.set_ylabel("probability of error")
ax.legend(fontsize=8)
ax.set_title("Problem 15.3.2: exact, bound and simulation", fontsize=10)
rg2 = r_grid[r_grid <= 30]
bx.semilogy(rg2, p_err[: len(rg2)], label="P(error)")
bx.semilogy(rg2, p_bound[: len(rg2)], ls="--", label="bound")
bx.set_xlabel("t / σ")
bx.set_title("log scale: same exponent, prefactor off by ~ t", fontsize=10)
bx.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# **Try it.** Move t/σ: the two densities, the boundary halfway between the means, and the shaded
# error areas (each source's mass on the wrong side). Drawn below for t/σ = 1 and t/σ = 4 as well.

# %%
ui, overlap = widgets.gaussian_overlap(2.0)
display(ui)

# %%
# NBVAL_CHECK_OUTPUT
for r in (1.0, 4.0):
    shown = overlap(r)
    print(f"t/σ = {r}: P(error) = {shown['error']:.4f}, bound = {shown['bound']:.4f}")

# %% [markdown]
# ## 2. Eq. (15.9): can x₁ tell which x₀ it came from?
#
# One forward step (15.7) maps two starting points x₀ ≠ x₀' to N(√α₁ x₀, β₁) and N(√α₁ x₀', β₁): two
# Gaussians with a common σ = √β₁ and centres √α₁|x₀ − x₀'| apart. Problem 15.3.2 gives the best
# possible error rate of guessing the starting point from x₁ (the nearest-mean rule is the Bayes rule
# for equal priors and variances), as a function of the ratio √α₁|x₀ − x₀'| / √β₁ alone.
#
# The same holds for images: N(a x₀, βI) and N(a x₀', βI) in 64 dimensions differ only along the
# direction x₀ − x₀', so the error is that of the 1-D problem with distance a‖x₀ − x₀'‖. For the
# digits, the hardest pair is a digit and its nearest neighbour among the training images.

# %%
split = data.load_digits_split(validation=False)
X = data.unit_to_signed(data.to_unit(torch.as_tensor(split.X_train, dtype=torch.float32)))   # [−1, 1] scale
dist = torch.cdist(X, X)
dist.fill_diagonal_(float("inf"))
nearest = dist.min(1).values                                   # (1437,) distance to the nearest other digit

# %%
# NBVAL_CHECK_OUTPUT
q = torch.quantile(nearest, torch.tensor([0.0, 0.5])).tolist()
print(f"distance from a training digit to its nearest neighbour (64 pixels on [−1, 1]): "
      f"min {q[0]:.2f}, median {q[1]:.2f}")
print(f"{'β':>8} {'√(β/(1−β))':>11} | P(error) after one step, nearest pair at the min / median distance")
for beta in (1e-4, 0.02, 0.1, 0.5, 0.9):
    scale = math.sqrt(beta / (1 - beta))                       # (15.9): the threshold on |x0 − x0'|
    errs = [float(p_error(d / scale)) for d in q]
    shown = [f"{e:.2e}" if e > 0 else "< 1e-300" for e in errs]
    print(f"{beta:>8g} {scale:>11.3f} | {shown[0]} / {shown[1]}")

# %% [markdown]
# Two claims above, checked. The midpoint is the best threshold: sweeping a threshold c, the error
# ½(1 − Φ((c + t/2)/σ)) + ½ Φ((c − t/2)/σ) is smallest at c = 0. And in 64 dimensions the nearest-mean
# rule between one step from the closest pair of digits errs at the 1-D rate (simulated at β = 0.5).

# %%
c = np.linspace(-2, 2, 4001)
for r in (0.5, 2.0):
    swept = 0.5 * (stats.norm.sf(c + r / 2) + stats.norm.cdf(c - r / 2))
    print(f"t/σ = {r}: best threshold c = {c[np.argmin(swept)]:+.3f}, error there {swept.min():.4f} "
          f"= 1 − Φ(t/2σ) = {float(p_error(r)):.4f}")
i, j = divmod(int(torch.argmin(dist)), len(X))                   # the closest pair of training digits
beta, n_pair = 0.5, run.budget(quick=20_000, full=1_000_000)
a, g_pair = math.sqrt(1 - beta), torch.Generator().manual_seed(9)
src = torch.randint(0, 2, (n_pair,), generator=g_pair)            # which digit each x₁ came from
x1 = a * X[[i, j]][src] + math.sqrt(beta) * torch.randn(n_pair, 64, generator=g_pair)
guess = (torch.cdist(x1, a * X[[i, j]]).argmin(1) != src).float()
rate, se = guess.mean().item(), guess.std().item() / math.sqrt(n_pair)
formula = float(p_error(a * (X[i] - X[j]).norm().item() / math.sqrt(beta)))
print(f"64-D simulation, closest pair, β = {beta}: error {rate:.4f} ± {se:.4f};  1-D formula {formula:.4f}  "
      f"(|z| < 4: {abs(rate - formula) < 4 * se})")
assert abs(rate - formula) < 4 * se

# %% [markdown]
# With the schedules of §15.3.1 (β ≤ 0.02) a single step hardly ever confuses two digits: at β = 0.02 the
# closest pair of training digits is 4.3 units of √(β/(1−β)) apart (error 1.5 %), the median nearest
# pair 13 units (error ~10⁻¹¹); only steps with β near 0.5 blur them in one go. What the chain erases is
# erased *gradually*: after t
# steps the two laws are N(√ᾱ_t x₀, (1 − ᾱ_t)I) and N(√ᾱ_t x₀', (1 − ᾱ_t)I), so the same formula with
# ratio √ᾱ_t‖x₀ − x₀'‖/√(1 − ᾱ_t) tracks how the identity of x₀ fades along the linear schedule:

# %%
lin = forward_diffusion.NoiseSchedule.linear(1000)
steps = np.arange(1, 1001)
snr_sqrt = np.sqrt(lin.snr().numpy())                          # √ᾱ_t / √(1 − ᾱ_t)
fading = {label: p_error(d * snr_sqrt)
          for label, d in (("nearest pair (min)", q[0]), ("nearest pair (median)", q[1]),
                           ("two random digits", torch.cdist(X[:200], X[200:400]).median().item()))}
fig, ax = plt.subplots(figsize=(7, 3.2))
for label, curve in fading.items():
    ax.plot(steps, curve, label=label)
ax.axhline(0.5, color="grey", ls=":", lw=0.8)
ax.set_xlabel("step t (linear schedule, T = 1000)")
ax.set_ylabel("P(error) telling x₀ from x₀' given x_t")
ax.set_title("how the forward process forgets which digit it started from", fontsize=10)
ax.legend(fontsize=8)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
for label, curve in fading.items():
    above = int(np.argmax(curve >= 0.4)) + 1 if (curve >= 0.4).any() else None
    print(f"{label:>22}: P(error) at t = T: {curve[-1]:.3f};  reaches 0.4 at t = {above}")

# %% [markdown]
# > **Note on the text.** Before (15.9) the text says two such Gaussians can be *reliably* distinguished
# > "if the distance between their centers is larger than their standard deviation". At a distance of
# > exactly one standard deviation, Problem 15.3.2 gives an error rate of 1 − Φ(½) ≈ 31 %, which is not
# > reliable; the "≫" in (15.9) is what carries the claim. Error rates at a few multiples:

# %%
# NBVAL_CHECK_OUTPUT
for k in (1, 2, 4, 6):
    print(f"distance = {k} σ:  P(error) = {float(p_error(k)):.4f}")

# %% [markdown]
# ## 3. The reverse step: how Gaussian is q(x_{t−1} | x_t)?
#
# The reverse model p_θ(x_{t−1} | x_t) of the text's reverse-process subsection (unnumbered; lesson
# 15_3_3) is a Gaussian. The *true* reverse conditional follows
# from Bayes' rule,
#
# $$q(x_{t-1}\mid x_t) \;\propto\; \underbrace{\mathcal N\big(x_t;\ \sqrt{1-\beta_t}\,x_{t-1},\ \beta_t\big)}_{\text{forward step (15.7)}}\;
#   q(x_{t-1}),$$
#
# and need not be Gaussian at all. Take a 1-D data distribution with three bumps of different widths,
# q(x₀) = 0.35 N(−1.2, 0.12²) + 0.4 N(0.1, 0.25²) + 0.25 N(1.0, 0.08²), and look at one step from x₀
# (t = 1) with variance β. `distinguish.reverse_conditional` evaluates the right-hand side on a grid
# and normalises it by the trapezoidal rule; for a mixture prior Bayes' rule also has a closed form
# (`reverse_conditional_mixture`, a mixture again), which serves as the oracle.

# %%
W, MU, VAR = [0.35, 0.4, 0.25], [-1.2, 0.1, 1.0], [0.12 ** 2, 0.25 ** 2, 0.08 ** 2]
betas_show = [0.002, 0.05, 0.5]
x_show = [-0.55, 0.55]                                          # between the bumps: the hardest places
with settings.cpu_float64():
    grid = torch.linspace(-3, 3, 6001, dtype=torch.float64)
    x_t = torch.tensor(x_show, dtype=torch.float64)
    log_prior = lambda x: divergences.mixture_log_pdf(x, W, MU, VAR)   # noqa: E731
    worst = 0.0
    for beta in betas_show:
        numeric = distinguish.reverse_conditional(x_t, beta, log_prior, grid).exp()
        r, m, v = distinguish.reverse_conditional_mixture(x_t, beta, W, MU, VAR)
        closed = (r[:, :, None] * torch.exp(divergences.log_normal(grid, m[:, :, None], v[None, :, None]))).sum(1)
        worst = max(worst, ((numeric - closed).abs().max() / closed.max()).item())

# %%
# NBVAL_CHECK_OUTPUT
print(f"quadrature vs closed form, 3 β's x 2 x_t's on a grid of {len(grid)} points: "
      f"max |difference| / peak < 1e-6: {worst < 1e-6}")
assert worst < 1e-6

# %% [markdown]
# The best Gaussian fit of q(x_{t−1} | x_t) in the sense of KL(q ‖ N) is the one with the same mean and
# variance (moment matching, as in §14.2), and the KL to it measures how far the reverse step is from
# *any* Gaussian. `distinguish.reverse_gaussian_kl` computes both by quadrature on a grid that follows
# the conditional. For a small step the conditional is a narrow, nearly Gaussian bump; for a large
# step it is a copy of the data's bumps, reweighted.

# %%
fig, axes = plt.subplots(len(x_show), len(betas_show), figsize=(11, 5.2))
for j, beta in enumerate(betas_show):
    with settings.cpu_float64():                               # quadrature: float64 on the CPU
        res = distinguish.reverse_gaussian_kl(torch.tensor(x_show, dtype=torch.float64), beta, W, MU, VAR,
                                          n_points=2001)
        fit = divergences.log_normal(res["grid"], res["mean"][:, None], res["var"][:, None]).exp().numpy()
        true = res["log_q"].exp().numpy()
    for i, xv in enumerate(x_show):
        ax = axes[i, j]
        gx = res["grid"][i].numpy()
        ax.plot(gx, true[i], label="true q(x₀ | x₁)")
        ax.plot(gx, fit[i], ls="--", label="best Gaussian")
        ax.set_title(f"β = {beta}, x₁ = {xv}: KL = {res['kl'][i].item():.3g}", fontsize=9)
        if beta < 0.1:
            ax.set_xlim(res["mean"][i].item() - 5 * math.sqrt(res["var"][i].item()),
                        res["mean"][i].item() + 5 * math.sqrt(res["var"][i].item()))
        else:
            ax.set_xlim(-2, 2)
axes[0, 0].legend(fontsize=7)
for ax in axes[-1]:
    ax.set_xlabel("x₀")
fig.tight_layout()
plt.show()

# %% [markdown]
# Averaged over x_t ~ q(x_t), the expected KL E_{x_t}[KL(q(x_{t−1} | x_t) ‖ best Gaussian)] summarises
# one step (`distinguish.expected_reverse_kl`: a quadrature over each bump of q(x_t) as well). It grows
# with β by orders of magnitude; the dotted lines mark where the (15.9) threshold √(β/(1−β)) equals the
# closest distance between two bumps' centres (0.9) and a quarter of it.

# %%
n_beta = run.budget(quick=25, full=60)
beta_grid = np.geomspace(1e-4, 0.9, n_beta)
kl_curve = np.array([distinguish.expected_reverse_kl(b, W, MU, VAR) for b in beta_grid])
small = beta_grid <= 1e-3
slope = np.polyfit(np.log(beta_grid[small]), np.log(kl_curve[small]), 1)[0]

# %%
fig, ax = plt.subplots(figsize=(7, 3.4))
ax.loglog(beta_grid, kl_curve, "o-", ms=3)
for d, ls, label in ((0.9 / 4, "--", "√(β/(1−β)) = 0.9/4"), (0.9, ":", "√(β/(1−β)) = 0.9 (closest bumps)")):
    ax.axvline(d ** 2 / (1 + d ** 2), color="grey", ls=ls, lw=0.8, label=label)
ax.legend(fontsize=8, loc="lower right")
ax.set_xlabel("β (variance of the forward step)")
ax.set_ylabel("E KL(true reverse step ‖ best Gaussian), nats")
ax.set_title("one reverse step is Gaussian only when the forward step is small", fontsize=10)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
assert np.all(np.diff(kl_curve) > 0)
for b in (1e-4, 1e-3, 1e-2, 1e-1, 0.9):
    print(f"β = {b:<6g}: E KL = {np.interp(np.log(b), np.log(beta_grid), kl_curve):.2e} nats")
print(f"increasing in β at all {n_beta} points: True;  log-log slope for β <= 1e-3: {slope:.2f}")

# %% [markdown]
# For small β the expected KL falls roughly like β³ (slope printed above): halving the step makes the
# Gaussian approximation of the reverse step about eight times better. But halving the step also
# doubles the number of steps needed to reach noise. Which effect wins?
#
# ### Many small steps or few large ones?
#
# Because the reversed chain is again Markov, the per-step KLs *add up*: their sum over t = 1..T is
# exactly KL(q(x_{0:T}) ‖ p(x_{0:T})) for the reverse process p that starts from the true q(x_T) and uses
# the best Gaussian at every step, and by data processing it bounds the KL between the data and what
# such a p generates. Fix the end point ᾱ_T = 0.01 and split the way there into T equal steps
# (β = 1 − 0.01^{1/T}), with `distinguish.reverse_kl_per_step` (each step's prior q(x_{t−1}) is the data
# pushed through (15.8), again a mixture).

# %%
nodes = run.budget(quick=41, full=161)                          # quadrature nodes over x_t per bump
T_grid = run.budget(quick=[1, 3, 10, 30, 100], full=[1, 2, 5, 10, 20, 50, 100, 200, 500])


def constant(T_):
    return forward_diffusion.NoiseSchedule(torch.full((T_,), 1 - 0.01 ** (1 / T_)))


path_kl = {T_: distinguish.reverse_kl_per_step(constant(T_), W, MU, VAR, n_nodes=nodes).numpy() for T_ in T_grid}

# %%
# NBVAL_CHECK_OUTPUT
sums = [float(path_kl[T_].sum()) for T_ in T_grid]
print(f"ᾱ_T = 0.01 reached in T equal steps ({nodes} quadrature nodes per bump):")
for T_, s_ in zip(T_grid, sums):
    print(f"  T = {T_:>3}: β = {1 - 0.01 ** (1 / T_):.4f},  Σ_t E KL = {s_:.4f} nats,  "
          f"share of the first step: {path_kl[T_][0] / s_:.0%}")
assert all(b < a for a, b in zip(sums, sums[1:]))

# %% [markdown]
# More, smaller steps win: the total falls steadily with T. It also shows *where* the cost sits: with
# equal steps, most of it is in the first step, where q(x_{t−1}) is the data itself, with its sharpest
# features. That is why practical schedules start with a tiny β₁ and grow. Same T = 100 and the same
# end point ᾱ_T = 0.01: equal steps, a linear schedule from β₁ = 10⁻⁴ (β_T solved for ᾱ_T = 0.01),
# and the cosine schedule (whose ᾱ_T is far below 0.01).

# %%
def linear_to(T_, target=0.01):
    lo, hi = 1e-4, 0.999
    for _ in range(60):                                          # bisection on β_T for ᾱ_T = target
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if forward_diffusion.NoiseSchedule.linear(T_, 1e-4, mid).alpha_bars[-1].item() > target else (lo, mid)
    return forward_diffusion.NoiseSchedule.linear(T_, 1e-4, hi)


compare = {"equal steps": constant(100), "linear from 1e-4": linear_to(100), "cosine": forward_diffusion.NoiseSchedule.cosine(100)}
per_step = {name: (path_kl[100] if name == "equal steps" else
                   distinguish.reverse_kl_per_step(sch, W, MU, VAR, n_nodes=nodes).numpy())
            for name, sch in compare.items()}

# %%
fig, (ax, bx) = plt.subplots(1, 2, figsize=(10.5, 3.4))
ax.semilogx(T_grid, sums, "o-")
ax.set_ylim(0, None)
ax.set_xlabel("number of steps T (equal β, ᾱ_T = 0.01)")
ax.set_ylabel("Σ_t E KL (nats)")
ax.set_title("the whole reverse chain: more, smaller steps", fontsize=10)
for name, kl in per_step.items():
    bx.semilogy(np.arange(1, 101), np.where(kl > 0, kl, np.nan), label=f"{name}: Σ = {kl.sum():.4f}")
bx.set_ylim(1e-10, 1)
bx.set_xlabel("step t (T = 100)")
bx.set_ylabel("E KL of step t (nats)")
bx.set_title("where the cost sits", fontsize=10)
bx.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
for name, sch in compare.items():
    print(f"{name:>17}: β_1 = {sch.betas[0].item():.1e}, β_T = {sch.betas[-1].item():.3f}, "
          f"ᾱ_T = {sch.alpha_bars[-1].item():.1e},  Σ_t E KL = {per_step[name].sum():.4f} nats")
assert per_step["linear from 1e-4"].sum() < per_step["equal steps"].sum() / 5

# %% [markdown]
# ## Summary
#
# * **Problem 15.3.2.** The nearest-mean rule between N(μ₁, σ²) and N(μ₂, σ²) errs with probability
#   1 − Φ(t/2σ), t = |μ₁ − μ₂|; a simulation agrees within its confidence intervals. The bound
#   ½ exp(−t²/8σ²) holds everywhere, has the exact exponent, and is loose only by a factor growing like t.
# * **Eq. 15.9.** One forward step turns two starting points into two Gaussians √α|x₀ − x₀'| apart with
#   σ = √β, so Problem 15.3.2 gives how well x₁ reveals its origin. "Larger than σ" still means a 31 %
#   error; the text's "≫" is needed. For digits and the usual β's one step forgets nothing; the forgetting
#   happens gradually along the chain.
# * **Why small steps.** For a three-bump data distribution, the true reverse step q(x_{t−1} | x_t) is
#   nearly Gaussian for small β (E KL ≈ 10⁻⁸ nats at β = 10⁻⁴) and far from it for large β (≈ 0.7 nats
#   at β = 0.9). Over a whole chain to the same ᾱ_T, the summed KL falls as T grows, and a schedule that
#   starts with tiny β's does far better than equal steps: the Gaussian reverse model of the reverse process is only
#   as good as the steps are small where the data has fine structure.

# %% [markdown]
# Your exercises in this lesson, as the autograder last saw them:

# %%
from companion_lib.grading import progress

progress("15.3.2")
