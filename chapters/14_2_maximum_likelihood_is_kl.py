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
# # §14.2 Maximum likelihood is minimum KL divergence
#
# This lesson makes three points of §14.2 concrete.
#
# 1. **Theorem 14.2.2.** For a known 1-D distribution $P$ and Gaussian models $Q_\theta$, the average
#    negative log-likelihood on $n$ samples equals $\mathrm{KL}(P\,\|\,Q_\theta)$ plus a constant, the
#    entropy $H(P)$; so the maximum-likelihood $\hat\theta_n$ approaches the KL minimiser $\theta^*$
#    (here at the rate $n^{-1/2}$, a property of this example rather than of the theorem).
# 2. **Example 14.2.1** on real images (the 8×8 digits): the isotropic Gaussian $\mathcal N(\mu, \sigma^2 I)$
#    generalises perfectly (train ≈ held-out likelihood) and still learns nearly nothing; a full-covariance
#    Gaussian and a Gaussian mixture do better, in held-out bits/dim and in their samples.
# 3. **KL is not symmetric**: fitting one Gaussian to a two-mode $P$ by $\min \mathrm{KL}(P\|Q)$ covers both
#    modes, by $\min \mathrm{KL}(Q\|P)$ picks one (with a slider).
#
# In between, you estimate $\mathrm{KL}(P\|Q)$ from samples, the way a likelihood sees it, and measure
# what that estimate gets wrong when the model was fitted to the same samples. Along the way, three
# corrections to the text's Example 14.2.1 and to one sentence of §14.2.
#
# **Needs:** §14.1 (the Gaussian maximum-likelihood estimate, `mixture.GaussianMixture`), the idea of a
# KL divergence. Runs in well under a minute on a laptop CPU (quick mode).

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.optimize import minimize

from companion_lib import data, divergences, metrics, mixture, settings
from companion_lib.viz import common, widgets
from companion_lib.grading import check

run = settings.setup(seed=0, notebook="14_2_maximum_likelihood_is_kl")

# %% [markdown]
# ## 1. The likelihood sees the KL divergence, shifted by a constant
#
# Write the expected negative log-likelihood of a model $Q_\theta$ under the data distribution $P$ and
# add and subtract $\log P$:
#
# $$\mathbb E_{x\sim P}\bigl[-\log Q_\theta(x)\bigr]
#   = \underbrace{\mathbb E_{x\sim P}\bigl[-\log P(x)\bigr]}_{H(P),\ \text{no } \theta}
#   + \underbrace{\mathbb E_{x\sim P}\Bigl[\log \tfrac{P(x)}{Q_\theta(x)}\Bigr]}_{\mathrm{KL}(P\|Q_\theta)} .$$
#
# The left side is what the average negative log-likelihood on $n$ samples, $\mathrm{NLL}_n(\theta) =
# -\frac1n\sum_i \log Q_\theta(x_i)$ (minus eq. 14.2 divided by $|S|$), estimates. That is the proof of
# Theorem 14.2.2: minimising $\mathrm{NLL}_n$ is minimising a noisy copy of $\mathrm{KL}(P\|Q_\theta)$.
#
# We take a skewed $P$ whose density we know exactly, a two-component mixture
# $P = 0.7\,\mathcal N(-1, 0.5^2) + 0.3\,\mathcal N(1.5, 1)$, and the family $Q_\theta = \mathcal N(\mu, \sigma^2)$,
# which cannot represent $P$: the KL minimum is not zero. Integrals over $x$ are done by the trapezoidal
# rule on a fine grid (these 1-D computations are tiny and stay on the CPU).
#
# First, an exercise: the one KL divergence with a closed form that we need to check the quadrature.

# %% [markdown]
# ### Exercise 1: KL between two Gaussians
#
# For diagonal Gaussians (1-D is $d = 1$),
# $\mathrm{KL}\bigl(\mathcal N(\mu_1, \operatorname{diag} v_1)\,\|\,\mathcal N(\mu_2, \operatorname{diag} v_2)\bigr)$
# is a sum of $d$ one-dimensional terms. Derive one term from $\int p\,(\log p - \log q)\,dx$ and write the
# function. The inputs share one shape, 0-d or $(d,)$; return a 0-d tensor.

# %%
def kl_gaussians(mu1, var1, mu2, var2):
    """KL(N(mu1, diag var1) ‖ N(mu2, diag var2)); inputs 0-d or (d,), variances > 0 → 0-d tensor."""
    # YOUR CODE HERE
    raise NotImplementedError

result = check("14.2.kl_gaussians", kl_gaussians)
result

# %%
kl_gaussians = result.or_reference()   # your function if it passed, else the reference (it says so)

# %% [markdown]
# Now the densities and the quadrature, with three oracles: the quadrature KL between two Gaussians
# against your closed form (the quadrature integrates $p(\log p - \log q)$ on a grid and knows nothing of
# the formula); a Gaussian's entropy against $\tfrac12\log(2\pi e\sigma^2)$; and $H(P)$ by quadrature
# against a Monte-Carlo average of $-\log P(x)$.

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    P = dict(weights=[0.7, 0.3], means=[-1.0, 1.5], variances=[0.5 ** 2, 1.0 ** 2])
    grid = torch.linspace(-10.0, 12.0, 4001, dtype=torch.float64)      # covers P's mass (and the models')
    log_p = divergences.mixture_log_pdf(grid, **P)                       # exact log P on the grid
    H_P = divergences.entropy_quadrature(log_p, grid)                    # H(P) = −∫ p log p

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    m1, v1, m2, v2 = (torch.tensor(a, dtype=torch.float64) for a in (0.3, 0.5, -1.0, 2.0))
    kl_quad = divergences.kl_quadrature(divergences.log_normal(grid, m1, v1), divergences.log_normal(grid, m2, v2), grid)
    kl_closed = kl_gaussians(m1, v1, m2, v2)                             # your closed form (or the reference)
    print(f"KL(N(0.3, 0.5) ‖ N(-1, 2)): quadrature {kl_quad:.6f} | closed form {kl_closed:.6f}")
    H_gauss = divergences.entropy_quadrature(divergences.log_normal(grid, m1, v1), grid)
    print(f"entropy of N(0.3, 0.5):     quadrature {H_gauss:.6f} | ½ log(2πe σ²) {0.5 * math.log(2 * math.pi * math.e * 0.5):.6f}")
    x_mc = divergences.sample_mixture(10 ** 6, **P, generator=run.generator)
    H_mc = -divergences.mixture_log_pdf(x_mc, **P).mean()
    print(f"H(P):  quadrature {H_P:.4f} nats | Monte Carlo (10^6 samples) {H_mc:.4f} "
          f"± {divergences.mixture_log_pdf(x_mc, **P).std() / 1000:.4f}")
    print(f"∫ P dx on the grid: {divergences.trapezoid(log_p.exp(), grid):.8f}")
    assert abs(kl_quad - kl_closed) < 1e-6 and abs(H_mc - H_P) < 0.01

# %% [markdown]
# Now scan the mean $\mu$ of the model (with $\sigma^2$ held at its best value $\sigma^{*2} = \operatorname{Var}_P x$)
# and compare the exact $\mathrm{KL}(P\|Q_\mu)$ with $\mathrm{NLL}_n(\mu)$ on $n$ fresh samples for three
# sample sizes. Their difference should be flat in $\mu$ and sit at $H(P)$.

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    mu_star, var_star = divergences.mixture_moments(**P)                 # θ* (shown to be the KL minimiser below)
    mus = torch.linspace(-3.0, 2.5, 111, dtype=torch.float64)
    kl_curve = divergences.kl_quadrature(log_p, divergences.log_normal(grid, mus[:, None], var_star), grid)  # (111,)

    sample_sizes = [20, 200, run.budget(quick=20_000, full=200_000)]
    nll_curves = {}
    for n in sample_sizes:
        x = divergences.sample_mixture(n, **P, generator=run.generator)
        nll_curves[n] = -divergences.log_normal(x[:, None], mus, var_star).mean(0)   # NLL_n(μ), (111,)

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    print(f"H(P) = {H_P:.4f} nats")
    for n, nll in nll_curves.items():
        gap = nll - kl_curve
        print(f"n = {n:>6}: NLL_n − KL over μ ∈ [-3, 2.5]: mean {gap.mean():.4f}, spread (max − min) {gap.max() - gap.min():.4f}; "
              f"argmin NLL_n = {mus[nll.argmin()]:.3f} (argmin KL = {mus[kl_curve.argmin()]:.3f})")

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    ax = axes[0]
    ax.plot(mus, kl_curve + H_P, color="k", lw=3, label=r"$\mathrm{KL}(P\|Q_\mu) + H(P)$ (exact)")
    for (n, nll), c in zip(nll_curves.items(), ["C1", "C2", "C0"]):
        ax.plot(mus, nll, color=c, lw=1.5, label=fr"$\mathrm{{NLL}}_n(\mu)$, n = {n}")
    ax.axvline(float(mu_star), color="grey", ls=":", label=r"$\mu^*$ = mean of $P$")
    ax.set(xlabel=r"model mean $\mu$", ylabel="nats per sample", title="negative log-likelihood vs KL + entropy")
    ax.legend(fontsize=8)
    ax = axes[1]
    for (n, nll), c in zip(nll_curves.items(), ["C1", "C2", "C0"]):
        ax.plot(mus, nll - kl_curve, color=c, label=f"n = {n}")
    ax.axhline(float(H_P), color="k", lw=3, alpha=0.4, label=f"H(P) = {H_P:.3f}")
    ax.set(xlabel=r"model mean $\mu$", ylabel=r"$\mathrm{NLL}_n(\mu) - \mathrm{KL}(P\|Q_\mu)$",
           title="the difference is (nearly) constant in $\\mu$")
    ax.legend(fontsize=8)
    fig.tight_layout()
plt.show()

# %% [markdown]
# For a Gaussian model the difference is exactly a straight line in $\mu$, with slope
# $-(\bar x - \mu^*)/\sigma^{*2}$ set by the sampling error of the mean, and a level that misses $H(P)$ by the
# sampling error of the second moment: clearly tilted for $n = 20$, nearly flat for large $n$. Each curve is
# one random data set, so its two errors are single draws (the printed spreads need not fall in step
# with $n$); how fast they shrink *on average* is measured below, over many data sets. Shifting a curve
# by a constant does not move its minimiser; tilting it slightly moves the minimiser slightly (from
# $\mu^*$ to $\bar x$).
#
# **Where is the KL minimiser?** For the Gaussian family, $\mathrm{KL}(P\|Q_\theta)$ is minimised by matching
# moments: $\mu^* = \mathbb E_P x$, $\sigma^{*2} = \operatorname{Var}_P x$. Oracle: minimise the quadrature KL
# numerically over $(\mu, \log\sigma^2)$ with `scipy.optimize.minimize` and compare with the closed-form
# mixture moments.

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    def kl_of(theta):
        mu, log_var = theta
        return float(divergences.kl_quadrature(log_p, divergences.log_normal(grid, mu, math.exp(log_var)), grid))

    opt = minimize(kl_of, x0=[1.0, 0.0], method="Nelder-Mead", options=dict(xatol=1e-8, fatol=1e-12))
    print(f"numerical argmin KL(P‖Q): μ = {opt.x[0]:.5f}, σ² = {math.exp(opt.x[1]):.5f}, KL = {opt.fun:.5f} nats")
    print(f"moments of P (closed form): μ = {mu_star:.5f}, σ² = {var_star:.5f}")
    assert abs(opt.x[0] - mu_star) < 1e-4 and abs(math.exp(opt.x[1]) - var_star) < 1e-4

# %% [markdown]
# **The maximiser of the likelihood approaches the minimiser of the KL.** The maximum-likelihood Gaussian
# on $n$ samples is $\hat\theta_n = (\bar x, \hat\sigma)$ with the $1/n$ standard deviation (§14.1). We draw
# many data sets of each size and measure $|\hat\theta_n - \theta^*|$ for $\theta = (\mu, \sigma)$.

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    n_values = np.unique(np.logspace(1, run.budget(quick=4, full=5.5), run.budget(quick=9, full=15)).astype(int))
    n_seeds = run.budget(quick=20, full=200)
    theta_star = torch.stack([mu_star, var_star.sqrt()])
    errors = np.zeros((n_seeds, len(n_values)))
    tilt, level = np.zeros_like(errors), np.zeros_like(errors)   # the two errors of NLL_n − KL seen above
    for s in range(n_seeds):
        for j, n in enumerate(n_values):
            x = divergences.sample_mixture(int(n), **P, generator=run.generator)
            theta_hat = torch.stack([x.mean(), x.std(correction=0)])      # the maximum-likelihood estimate
            errors[s, j] = float((theta_hat - theta_star).norm())
            tilt[s, j] = float((x.mean() - mu_star).abs() / var_star)     # |slope| of NLL_n − KL in μ
            level[s, j] = float((((x - mu_star) ** 2).mean() - var_star).abs() / (2 * var_star))  # level error
    slope = np.polyfit(np.log(n_values), np.log(np.median(errors, 0)), 1)[0]
    rms_slopes = [np.polyfit(np.log(n_values), np.log(np.sqrt((e ** 2).mean(0))), 1)[0] for e in (tilt, level)]

# %%
# NBVAL_CHECK_OUTPUT
print(f"{n_seeds} data sets per n; fitted slope of log median |θ̂_n − θ*| against log n: {slope:.2f} (theory −0.5)")
print(f"root-mean-square over the data sets, slope against log n: tilt of NLL_n − KL {rms_slopes[0]:.2f}, "
      f"its level error {rms_slopes[1]:.2f} (theory −0.5 for both)")
assert -0.65 < slope < -0.35 and all(-0.65 < r < -0.35 for r in rms_slopes)

# %%
fig, ax = plt.subplots(figsize=(6, 4))
for s in range(n_seeds):
    ax.plot(n_values, errors[s], color="C0", alpha=0.15, lw=0.8)
ax.plot(n_values, np.median(errors, 0), "o-", color="C0", lw=2, label=f"median over {n_seeds} data sets")
ref = np.median(errors, 0)[0] * np.sqrt(n_values[0] / n_values)
ax.plot(n_values, ref, "k--", label=r"slope $n^{-1/2}$")
ax.set(xscale="log", yscale="log", xlabel="number of samples n",
       ylabel=r"$|\hat\theta_n - \theta^*|$", title="maximum-likelihood estimate → KL minimiser")
ax.legend();

# %% [markdown]
# > **Note on the text.** Theorem 14.2.2 ("given enough training data, the θ maximizing (14.2) minimizes
# > KL(P‖Q)") holds under conditions of two different kinds.
# > * *Consistency of the maximiser* needs the average log-likelihood to approach $-\mathrm{KL} - H(P)$
# >   **uniformly** over the parameters (for instance a compact parameter set and log-densities continuous
# >   in θ with an integrable bound), and a unique (well-separated) KL minimiser. Pointwise convergence,
# >   which is all the first figure shows, is not enough: below, a Gaussian mixture puts one component on
# >   each of 200 data points and shrinks their common width. Its likelihood grows without bound, so no
# >   maximiser exists, while its KL to $P$ grows too.
# > * *Expressiveness* only decides how small the minimal KL is: the best Gaussian above still has
# >   $\mathrm{KL}(P\|Q_{\theta^*}) > 0$ (printed in the oracle cell); only a family that contains $P$ reaches 0.
# >
# > The rate $n^{-1/2}$ measured above comes from the central limit theorem for this smooth,
# > finite-variance example; the theorem itself gives no rate.

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    x200 = divergences.sample_mixture(200, **P, generator=torch.Generator().manual_seed(3))
    lines = ["  width of the components   log-likelihood of the 200 points   KL(P || Q) nats (quadrature)"]
    avg_ll, kls = [], []
    for width in (0.3, 0.03, 1e-3, 1e-10):
        Q = dict(weights=torch.full((200,), 1 / 200, dtype=torch.float64), means=x200,
                 variances=torch.full((200,), width ** 2, dtype=torch.float64))
        avg_ll.append(float(divergences.mixture_log_pdf(x200, **Q).sum()))
        kl = float(divergences.kl_quadrature(log_p, divergences.mixture_log_pdf(grid, **Q), grid))
        lines.append(f"  {width:23.0e}   {avg_ll[-1]:32.1f}   {kl:14.4g}")
        kls.append(kl)
    print("\n".join(lines))
    assert avg_ll[3] > avg_ll[2] > avg_ll[1] > avg_ll[0] and kls[3] > kls[2] > kls[1]

# %% [markdown]
# ### The KL divergence from samples, and what fitting does to it
#
# A likelihood only ever sees samples. With $x_1, \dots, x_n$ drawn from $P$ and both densities
# computable (as here, where $P$ is known), the expectation $\mathrm{KL}(P\|Q) = \mathbb E_P[\log P - \log Q]$
# becomes an average over the samples, the same average that $\mathrm{NLL}_n$ takes of $-\log Q$ alone:
# the two differ by the sample average of $\log P$, which does not involve $\theta$.
#
# ### Exercise 2: the Monte-Carlo estimate of $\mathrm{KL}(P\|Q)$
#
# Write `kl_estimate(log_p, log_q)`: `log_p`, `log_q` of one shape `(..., n)` hold $\log P(x_i)$ and
# $\log Q(x_i)$ at $n$ independent samples of $P$ (the last axis; leading axes index separate data sets).
# Return `(estimate, standard_error)`, each of shape `(...)`: the estimate of $\mathrm{KL}(P\|Q)$ and its
# standard error, the sample standard deviation (divisor $n-1$) of the averaged terms over $\sqrt n$.

# %%
def kl_estimate(log_p, log_q):
    """log_p, log_q (..., n) at n samples of P → (estimate (...), standard error (...)) of KL(P‖Q)."""
    # YOUR CODE HERE
    raise NotImplementedError

result = check("14.2.kl_estimate", kl_estimate)
result

# %%
kl_estimate = result.or_reference()   # your function if it passed, else the reference (it says so)

# %% [markdown]
# **Is it right on average, and is its error bar honest?** For a fixed model, $\theta^*$ and
# $Q = \mathcal N(0, 1)$, draw many data sets of each size $n$ and compare the estimates with the quadrature
# KL of part 1 (an independent computation on a grid): the average over data sets should match it (the
# estimator is unbiased), their spread should shrink like $n^{-1/2}$, your standard error should
# match that spread, and about 95% of the intervals "estimate ± 2 standard errors" should contain the truth.

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    n_sets = run.budget(quick=1000, full=10_000)                    # data sets per sample size
    kl_sizes = [10, 30, 100, 300, 1000]
    fixed = {"θ*": (mu_star, var_star), "N(0, 1)": (torch.tensor(0.0, dtype=torch.float64),
                                                    torch.tensor(1.0, dtype=torch.float64))}
    samples = {n: divergences.sample_mixture(n_sets * n, **P, generator=run.generator) for n in kl_sizes}
    log_p_samples = {n: divergences.mixture_log_pdf(x, **P).reshape(n_sets, n) for n, x in samples.items()}
    samples = {n: x.reshape(n_sets, n) for n, x in samples.items()}
    kl_true, kl_runs = {}, {}
    for name, (m_, v_) in fixed.items():
        kl_true[name] = divergences.kl_quadrature(log_p, divergences.log_normal(grid, m_, v_), grid)
        for n in kl_sizes:
            kl_runs[name, n] = kl_estimate(log_p_samples[n], divergences.log_normal(samples[n], m_, v_))

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    print(f"{n_sets} data sets per n | model     n  quadrature   mean of estimates   spread   mean s.e.  "
          f"covered by ±2 s.e.")
    for (name, n), (est, se) in kl_runs.items():
        mean_err = est.std() / math.sqrt(n_sets)                            # standard error of the mean
        cover = ((est - kl_true[name]).abs() <= 2 * se).double().mean()
        print(f"{'':>21}{name:>8} {n:5d}  {kl_true[name]:.4f}      {est.mean():.4f} ± {mean_err:.4f}   "
              f"{est.std():.4f}    {se.mean():.4f}      {cover:.3f}")
        assert abs(est.mean() - kl_true[name]) < 4 * mean_err               # unbiased
        assert abs(se.mean() / est.std() - 1) < 0.15                        # the error bar is the spread
        if n >= 100:
            assert 0.92 < cover < 0.98
        elif n == 10:
            assert cover < 0.95                                             # the skewed small-n case
    for name in fixed:
        scaled = [float(kl_runs[name, n][0].std() * math.sqrt(n)) for n in kl_sizes]
        assert max(scaled) / min(scaled) < 1.15                             # spread ∝ n^(-1/2)

# %% [markdown]
# Unbiased, with an honest error bar (at $n = 10$ the intervals cover a little less than 95%: the average
# of ten skewed terms is not yet Gaussian). Now the case that matters for learning: the model is **fitted
# to the same samples**, $\hat\theta_n = (\bar x, \hat\sigma^2)$, and the estimate is taken at $\hat\theta_n$.
# That is what a training likelihood reports. Two numbers per data set:
#
# * the **in-sample** estimate $\widehat{\mathrm{KL}}_n(\hat\theta_n)$ (your estimator at the fitted model, on
#   the samples it was fitted to): $\hat\theta_n$ maximises the likelihood of exactly these samples, so it
#   is at most the estimate at $\theta^*$ on the same samples, which is unbiased for $\mathrm{KL}^* =
#   \mathrm{KL}(P\|Q_{\theta^*})$: the in-sample estimate is **optimistic**;
# * the **true** $\mathrm{KL}(P\|Q_{\hat\theta_n})$ of the fitted model (what fresh, held-out data would
#   measure), here in closed form, since $\mathbb E_P[\log Q_\theta]$ needs only $P$'s mean and variance:
#   $\mathrm{KL}(P\|\mathcal N(\mu, \sigma^2)) = -H(P) + \tfrac12\log(2\pi\sigma^2) + \frac{\operatorname{Var}_P + (\mathbb E_P x - \mu)^2}{2\sigma^2}$.
#   It is at least $\mathrm{KL}^*$, by the definition of $\theta^*$.
#
# A second-order expansion of the log-likelihood around $\theta^*$ says how large both effects are on
# average: each is about $c/(2n)$ with $c = \operatorname{tr}(J^{-1}K)$, $J$ the expected Hessian of
# $-\log Q_\theta$ and $K$ the covariance of its gradient at $\theta^*$. For the Gaussian family
# $c = 1 + (\kappa - 1)/2$, with $\kappa = \mathbb E_P(x-\mu^*)^4/\sigma^{*4}$ the kurtosis of $P$; if $P$ were
# Gaussian ($\kappa = 3$), $c$ would be 2, the number of parameters.

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    kurtosis = divergences.trapezoid(log_p.exp() * (grid - mu_star) ** 4, grid) / var_star ** 2
    c_theory = 1 + (kurtosis - 1) / 2
    kl_star = kl_true["θ*"]
    optimism, excess, in_sample, held_out = {}, {}, {}, {}
    for n in kl_sizes:
        x = samples[n]
        mu_hat, var_hat = x.mean(1), x.var(1, correction=0)                 # the MLE on each data set
        in_sample[n], _ = kl_estimate(log_p_samples[n], divergences.log_normal(x, mu_hat[:, None], var_hat[:, None]))
        at_star = kl_runs["θ*", n][0]                                       # same samples, θ = θ*
        held_out[n] = -H_P + 0.5 * torch.log(2 * math.pi * var_hat) + (var_star + (mu_star - mu_hat) ** 2) / (2 * var_hat)
        optimism[n], excess[n] = at_star - in_sample[n], held_out[n] - kl_star
    # oracle for the closed form of KL(P‖Q_θ̂): quadrature at one fitted θ̂
    check_kl = divergences.kl_quadrature(log_p, divergences.log_normal(grid, mu_hat[0], var_hat[0]), grid)
    assert abs(check_kl - held_out[kl_sizes[-1]][0]) < 1e-6
    assert (optimism[n] >= -1e-12).all() and (excess[n] >= -1e-12).all()  # both one-sided, every data set

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    print(f"kurtosis of P {kurtosis:.3f}, so c/2 = {c_theory / 2:.3f};  KL* = {kl_star:.4f} nats")
    print("    n   mean in-sample estimate   mean true KL of the fit   n × optimism   n × excess")
    for n in kl_sizes:
        se_o, se_e = (n * v.std() / math.sqrt(n_sets) for v in (optimism[n], excess[n]))
        print(f"{n:5d}   {in_sample[n].mean():22.4f}   {held_out[n].mean():23.4f}   "
              f"{n * optimism[n].mean():6.3f} ± {se_o:.3f}  {n * excess[n].mean():6.3f} ± {se_e:.3f}")
        if n >= 100:                                                        # the 1/n expansion holds
            assert abs(n * optimism[n].mean() / (c_theory / 2) - 1) < 0.25
            assert abs(n * excess[n].mean() / (c_theory / 2) - 1) < 0.25

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    ax = axes[0]
    for (name, c), off in zip([("θ*", "C0"), ("N(0, 1)", "C3")], (0.97, 1.03)):
        est_n = [kl_runs[name, n][0] for n in kl_sizes]
        ax.errorbar(np.array(kl_sizes) * off, [float(e.mean()) for e in est_n], yerr=[float(e.std()) for e in est_n],
                    fmt="o", color=c, capsize=3, label=f"Q = {name}: mean ± spread of the estimates")
        ax.axhline(float(kl_true[name]), color=c, ls=":", lw=1.5)
    ax.set(xscale="log", xlabel="samples per data set n", ylabel="nats",
           title="estimates of KL(P‖Q) at a fixed Q (dotted: quadrature)")
    ax.legend(fontsize=8)
    ax = axes[1]
    ns = np.array(kl_sizes, dtype=float)
    ax.plot(ns, [float(in_sample[n].mean()) for n in kl_sizes], "o-", color="C1",
            label=r"in-sample estimate at $\hat\theta_n$")
    ax.plot(ns, [float(held_out[n].mean()) for n in kl_sizes], "s-", color="C2",
            label=r"true KL of the fitted $Q_{\hat\theta_n}$")
    n_line = np.logspace(1, 3, 50)
    for sign in (-1, 1):
        ax.plot(n_line, float(kl_star) + sign * float(c_theory) / (2 * n_line), color="grey", lw=1, ls="--",
                label=r"KL* $\pm\, c/(2n)$ (theory)" if sign > 0 else None)
    ax.axhline(float(kl_star), color="k", lw=1.5, label="KL* (the best Gaussian)")
    ax.set(xscale="log", xlabel="samples per data set n", ylabel="nats (mean over data sets)",
           title="fitting to the samples: optimistic in-sample, worse in truth")
    ax.legend(fontsize=8)
    fig.tight_layout()
plt.show()

# %% [markdown]
# The in-sample estimate falls below $\mathrm{KL}^*$ and the fitted model's true KL rises above it, both by
# about $c/(2n)$ (dashed) once $n \ge 100$: the training likelihood flatters the fitted model by as much as
# the model actually falls short. (At $n = 10$ the expansion is poor and the fitted model is much worse
# than $c/(2n)$ says.) This is why §14.2 judges a density model by its likelihood on **held-out** data,
# as part 2 does, and why an information criterion such as AIC (§14.1's BIC is a cousin) charges a
# penalty per parameter.

# %% [markdown]
# ## 2. Example 14.2.1 on real images
#
# The digits are 8×8 images with integer grey levels $0..16$. A density on $\mathbb R^{64}$ needs continuous
# data, so we **dequantise**: $y = (x + u)/17$ with $u \sim U[0,1)^{64}$, once per image, and report
# **bits per dimension**, $\log_2 17 - \mathbb E[\log p(y)]/(64 \ln 2)$ (the companion's one convention,
# `metrics.bits_per_dim`; the uniform distribution over the 17 levels scores $\log_2 17 = 4.09$).
#
# We fit on the training images (1437), choose hyper-parameters by fitting on `X_fit` (1149) and scoring
# `X_val` (288), and report the held-out `X_test` (360).

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    digits = data.load_digits_split()
    Y_fit, Y_val = (data.dequantize(digits[k], run.generator) for k in ("X_fit", "X_val"))
    Y_test = data.heldout_digits().double()   # the companion's one fixed evaluation set (float32 -> float64)
    Y_train = torch.cat([Y_fit, Y_val])
    D = Y_train.shape[1]
print("fit / validation / train / held-out:", *(tuple(t.shape) for t in (Y_fit, Y_val, Y_train, Y_test)))

# %% [markdown]
# The model of Example 14.2.1 is $\mathcal N(\mu, \sigma^2 I)$: one mean image and a single variance shared by
# all 64 pixels. Its negative log-likelihood on $m$ images in $\mathbb R^d$ is
#
# $$-\sum_{i=1}^m \log \mathcal N(x_i; \mu, \sigma^2 I) = \sum_{i=1}^m \frac{|x_i - \mu|^2}{2\sigma^2}
#   + \frac{m d}{2}\log(2\pi\sigma^2).$$
#
# ### Exercise 3: the maximum-likelihood $\sigma^2$
#
# With $\mu$ the sample mean, set the derivative in $\sigma^2$ to zero and write `sigma2_mle(X)` for $X$ of shape
# $(m, d)$, returning a 0-d tensor.

# %%
def sigma2_mle(X):
    """The σ² of the maximum-likelihood N(μ, σ²I) for data X (m, d); a 0-d tensor."""
    # YOUR CODE HERE
    raise NotImplementedError

result = check("14.2.sigma2_mle", sigma2_mle)
result

# %%
sigma2_mle = result.or_reference()   # your function if it passed, else the reference (it says so)

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    mu_iso = Y_train.mean(0)
    var_iso = sigma2_mle(Y_train)
    nll_train = divergences.isotropic_gaussian_nll(Y_train, mu_iso, var_iso)    # (m,) nats per image
    nll_test = divergences.isotropic_gaussian_nll(Y_test, mu_iso, var_iso)
    print(f"N(μ, σ²I) on digits: σ² = {var_iso:.5f} (σ = {var_iso.sqrt():.4f}), {D + 1} parameters")
    print(f"  train    NLL {nll_train.mean():8.3f} nats/image = {metrics.bits_per_dim(-nll_train, D):.4f} bits/dim")
    print(f"  held-out NLL {nll_test.mean():8.3f} nats/image = {metrics.bits_per_dim(-nll_test, D):.4f} bits/dim")

# %% [markdown]
# Train and held-out agree to within about 0.01 bit per pixel: by the yardstick of generalisation this model
# is flawless. Yet it is *worse* than the uniform distribution over the 17 levels (4.09 bits/dim): one
# shared variance is far too wide for the always-blank border pixels and its Gaussian spills mass outside
# $[0, 1)$. Its samples tell the same story.

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    eps = torch.randn(16, D, generator=run.generator, dtype=torch.float64)
    iso_samples = mu_iso + var_iso.sqrt() * eps                            # x = μ + σ ε
    fig, axes = plt.subplots(1, 3, figsize=(11, 2.6), gridspec_kw=dict(width_ratios=[8, 1.4, 8]))
    common.image_grid(Y_test[:16], nrow=8, ax=axes[0], title="held-out digits", vmin=0, vmax=1)
    common.image_grid(mu_iso[None], nrow=1, ax=axes[1], title="μ", vmin=0, vmax=1)
    common.image_grid(iso_samples, nrow=8, ax=axes[2], title="samples of N(μ, σ²I)", vmin=0, vmax=1)
    fig.suptitle("the isotropic Gaussian generalises perfectly and draws noisy copies of the mean image", fontsize=10)
    fig.tight_layout()
plt.show()

# %% [markdown]
# > **Note on the text.** (a) Example 14.2.1 gives the objective as $\sum_i |x_i-\mu|^2/\sigma^2$. That is not the
# > log-likelihood of $\mathcal N(\mu, \sigma^2 I)$: the negative log-likelihood is
# > $\sum_i |x_i-\mu|^2/(2\sigma^2) + \frac{md}{2}\log(2\pi\sigma^2)$. The $\log\sigma^2$ term (from the
# > Gaussian's normalising constant) is what keeps $\sigma$ finite: without it the printed objective decreases
# > for ever as $\sigma \to \infty$ and has no minimiser in $\sigma$.

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    var_grid = torch.logspace(-3, 3, 241, dtype=torch.float64)
    sq = ((Y_train - mu_iso) ** 2).sum(1)                                     # |x_i − μ|², (m,)
    printed_obj = torch.stack([(sq / v).mean() for v in var_grid])           # the text's objective, per image
    true_nll = torch.stack([divergences.isotropic_gaussian_nll(Y_train, mu_iso, v).mean() for v in var_grid])
    for v in (1e-2, 1.0, 1e2, 1e3):
        print(f"σ² = {v:7g}: printed objective {float((sq / v).mean()):10.4f} | "
              f"NLL {float(divergences.isotropic_gaussian_nll(Y_train, mu_iso, torch.tensor(v)).mean()):10.3f} nats/image")
    print(f"on a grid of σ² from 1e-3 to 1e3: the printed objective is smallest at the largest σ² "
          f"({var_grid[printed_obj.argmin()]:g}); the NLL at σ² = {var_grid[true_nll.argmin()]:.4f}, "
          f"the grid point nearest the MLE {var_iso:.4f}")
    assert (printed_obj[1:] < printed_obj[:-1]).all()

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].plot(var_grid.cpu(), printed_obj.cpu(), color="C3")
axes[0].set(xscale="log", yscale="log", xlabel=r"$\sigma^2$", ylabel=r"$\frac{1}{m}\sum_i |x_i-\mu|^2/\sigma^2$",
            title="the printed objective: no minimiser in σ")
axes[1].plot(var_grid.cpu(), true_nll.cpu(), color="C0")
axes[1].axvline(float(var_iso), color="k", ls=":", label=fr"MLE $\sigma^2$ = {var_iso:.4f}")
axes[1].set(xscale="log", xlabel=r"$\sigma^2$", ylabel="nats per image", ylim=(-20, 300),
            title="negative log-likelihood: minimum at the MLE")
axes[1].legend()
fig.tight_layout()

# %% [markdown]
# > **Note on the text.** (b) The estimates. $\mu = \frac1m\sum_i x_i$ is right, but the printed
# > $\sigma^2 = \sum_i \frac1n |x_i-\mu|^2$ mixes $m$ and $n$ and forgets to divide by the dimension $d$. The
# > maximum-likelihood estimate is
# > $$\sigma^2 = \frac{1}{m d}\sum_{i=1}^m |x_i - \mu|^2,$$
# > the average over pixels of the per-pixel variances (which is what the text's next paragraph says in
# > words). Read with $n = m$, the printed formula is $d = 64$ times too large.
#
# Oracle: maximise the log-likelihood numerically over $(\mu, \log\sigma^2)$ with L-BFGS, from $\mu = 0$,
# $\sigma^2 = 1$.

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    mu_opt = torch.zeros(D, dtype=torch.float64, requires_grad=True)
    log_var_opt = torch.zeros((), dtype=torch.float64, requires_grad=True)
    lbfgs = torch.optim.LBFGS([mu_opt, log_var_opt], lr=1, max_iter=200, tolerance_grad=1e-12,
                              tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure():
        lbfgs.zero_grad()
        loss = divergences.isotropic_gaussian_nll(Y_train, mu_opt, log_var_opt.exp()).mean()
        loss.backward()
        return loss

    lbfgs.step(closure)
    m = Y_train.shape[0]
    text_var = sq.sum() / m                                                 # the printed formula, with n = m
    print(f"σ² by numerical maximisation: {log_var_opt.exp():.6f}   (|μ_opt − mean| < 1e-6: {bool((mu_opt - mu_iso).abs().max() < 1e-6)})")
    print(f"σ² = Σ|x_i − μ|² / (m d):     {sq.sum() / (m * D):.6f}   (mean of per-pixel variances "
          f"{Y_train.var(0, correction=0).mean():.6f})")
    print(f"σ² as printed, Σ|x_i − μ|²/m: {text_var:.6f}   ({text_var / var_iso:.1f} × too large)")
    assert abs(log_var_opt.exp() - var_iso) < 1e-6

# %% [markdown]
# > **Note on the text.** (c) §14.2 says that because log is monotone, maximising the product (14.1) is
# > "equivalent to minimizing the log likelihood". It is equivalent to **maximising** the log-likelihood
# > (14.2), or minimising the *negative* log-likelihood. Minimising the log-likelihood itself has no solution:
# > it goes to $-\infty$ (let $\sigma^2$ grow, or move $\mu$ away).

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
        def log_lik(var):
            return float(-divergences.isotropic_gaussian_nll(Y_train, mu_iso, torch.as_tensor(var)).sum())

        print(f"log-likelihood (14.2) at the MLE σ² = {var_iso:.4f}: {log_lik(var_iso):.1f} nats")
        print(f"  at σ²/2: {log_lik(var_iso / 2):.1f}, at 2σ²: {log_lik(var_iso * 2):.1f}   (both lower: the MLE maximises it)")
    print("  at σ² = 1e2, 1e4, 1e6:", ", ".join(f"{log_lik(v):.0f}" for v in (1e2, 1e4, 1e6)), "  (no minimum: → −∞)")

# %% [markdown]
# ### Richer models: a full-covariance Gaussian and a Gaussian mixture
#
# To learn more than the mean image, the model family has to grow. Two steps up:
#
# * **one Gaussian with full covariance** (`mixture.gaussian_mle`): pixels are correlated, so strokes
#   appear. Pixels at the border are almost constant, so we add a small ridge $\lambda I$ to the covariance,
#   chosen on the validation split;
# * **a mixture of $K$ full-covariance Gaussians** (`mixture.GaussianMixture`, EM of §14.1), with $K$ and the
#   ridge `reg_covar` chosen on the validation split.

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    eye = torch.eye(D, dtype=torch.float64)

    def full_gauss_log_prob(Y, mean, cov):
        """log N(y; mean, cov) for Y (n, 64) → (n,)."""
        return mixture.log_gaussian(Y, mean[None], cov[None], "full")[:, 0]

    ridges = run.budget(quick=[1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2], full=list(np.logspace(-6, -1, 16)))
    mean_fit, cov_fit = mixture.gaussian_mle(Y_fit)
    val_bpd_ridge = [metrics.bits_per_dim(full_gauss_log_prob(Y_val, mean_fit, cov_fit + r * eye), D) for r in ridges]
    best_ridge = ridges[int(np.argmin(val_bpd_ridge))]

    Ks = run.budget(quick=[5, 10, 20], full=[3, 5, 10, 15, 20, 30])
    reg_covars = run.budget(quick=[3e-4, 1e-3, 3e-3], full=[1e-4, 3e-4, 1e-3, 3e-3, 1e-2])
    gmm_options = dict(tol=1e-4, max_iter=300, n_init=run.budget(quick=1, full=3), random_state=0)
    val_bpd_gmm = np.zeros((len(Ks), len(reg_covars)))
    for i, K in enumerate(Ks):
        for j, rc in enumerate(reg_covars):
            gm = mixture.GaussianMixture(K, reg_covar=rc, **gmm_options).fit(Y_fit)
            val_bpd_gmm[i, j] = metrics.bits_per_dim(torch.as_tensor(gm.score_samples(Y_val)), D)
    i, j = np.unravel_index(np.argmin(val_bpd_gmm), val_bpd_gmm.shape)
    best_K, best_rc = Ks[i], reg_covars[j]
print(f"chosen on the validation split: ridge λ = {best_ridge:.1e} (full covariance); K = {best_K}, reg_covar = {best_rc:.0e} (mixture)")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), sharey=True)
axes[0].plot(ridges, val_bpd_ridge, "o-", color="C1")
axes[0].axvline(best_ridge, color="k", ls=":", label=f"chosen λ = {best_ridge:.0e}")
axes[0].set(xscale="log", xlabel=r"ridge $\lambda$ added to the covariance", ylabel="validation bits/dim",
            title="one Gaussian, full covariance")
axes[0].legend()
for i, K in enumerate(Ks):
    axes[1].plot(reg_covars, val_bpd_gmm[i], "o-", label=f"K = {K}")
axes[1].set(xscale="log", xlabel="reg_covar (ridge added to each component's covariance)",
            title="Gaussian mixture (EM)")
axes[1].set_xticks(reg_covars, [f"{r:.0e}" for r in reg_covars])
axes[1].minorticks_off()
axes[1].legend(fontsize=8)
fig.suptitle("model choice on the validation split (fit on X_fit, score X_val; lower is better)", fontsize=10)
fig.tight_layout()

# %% [markdown]
# Refit the chosen models on all 1437 training images and score the held-out images. The table also shows
# the number of parameters and the gap between train and held-out.

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    mean_full, cov_full = mixture.gaussian_mle(Y_train)
    cov_full = cov_full + best_ridge * eye
    gmm = mixture.GaussianMixture(best_K, reg_covar=best_rc, **gmm_options).fit(Y_train)

    models = {
        "uniform over 17 levels": (lambda Y: torch.zeros(Y.shape[0], dtype=torch.float64), 0),
        "N(μ, σ²I)  (Example 14.2.1)": (lambda Y: -divergences.isotropic_gaussian_nll(Y, mu_iso, var_iso), D + 1),
        "N(μ, Σ), full covariance": (lambda Y: full_gauss_log_prob(Y, mean_full, cov_full), D + D * (D + 1) // 2),
        f"mixture, K = {best_K}": (lambda Y: torch.as_tensor(gmm.score_samples(Y)),
                                   best_K * (D + D * (D + 1) // 2) + best_K - 1),
    }

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    print(f"{'model':30s} {'params':>7s} {'train nats':>11s} {'held-out nats':>14s} {'train b/d':>10s} {'held-out b/d':>13s}")
    results = {}
    for name, (log_prob, n_params) in models.items():
        lp_train, lp_test = log_prob(Y_train), log_prob(Y_test)
        results[name] = metrics.bits_per_dim(lp_test, D)
        print(f"{name:30s} {n_params:7d} {-lp_train.mean() + 0:11.2f} {-lp_test.mean() + 0:14.2f} "
              f"{metrics.bits_per_dim(lp_train, D):10.3f} {results[name]:13.3f}")
print("(nats: −log p(y) per image of the dequantised data; b/d: bits per dimension of the 17-level pixels)")
for order, (key, name) in enumerate(zip(["uniform", "isotropic_gaussian", "full_gaussian", "mixture"], models)):
    metrics.record_heldout_result(f"14_2/{key}", name.replace("  ", " "), results[name], "14_2", order=order)

# %% [markdown]
# Every step up in the model family buys held-out likelihood: the isotropic Gaussian is no better than
# knowing nothing (the uniform row), the full covariance gains more than a bit per pixel, the mixture
# another quarter of a bit. (The mixture's
# train–held-out gap is larger: with tens of thousands of parameters it starts to fit the particular
# training images.) Now the samples.

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    n_show = 10
    full_samples = mean_full + torch.randn(n_show, D, generator=run.generator, dtype=torch.float64) \
        @ torch.linalg.cholesky(cov_full).T                                   # x = μ + L ε, Σ = L Lᵀ
    gmm_samples, _ = gmm.sample(n_show, generator=run.generator)
    names = list(results)                                                     # the table's model names
    rows = [("held-out digits (dequantised)", Y_test[:n_show]), (names[1], iso_samples[:n_show]),
            (names[2], full_samples), (names[3], gmm_samples)]
    fig, axes = plt.subplots(len(rows), 1, figsize=(6, 1.1 * len(rows) + 0.4))
    for ax, (name, imgs) in zip(axes, rows):
        title = f"samples of {name}: held-out {results[name]:.2f} bits/dim" if name in results else name
        common.image_grid(imgs, nrow=n_show, ax=ax, title=title, vmin=0, vmax=1)
    fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3. KL is not symmetric
#
# Theorem 14.2.2 is about $\mathrm{KL}(P\|Q)$, the data distribution first. Swapping the arguments changes
# what a poor model does. Fit a single Gaussian $Q$ to a two-mode $P$:
#
# * $\min_Q \mathrm{KL}(P\|Q) = \mathbb E_P[\log P/Q]$ punishes $Q \approx 0$ wherever $P$ has mass, so $Q$
#   **covers** both modes (for Gaussians: match $P$'s mean and variance, as in part 1);
# * $\min_Q \mathrm{KL}(Q\|P) = \mathbb E_Q[\log Q/P]$ punishes $Q$ putting mass where $P \approx 0$, so $Q$
#   **seeks** one mode and ignores the other. There is no closed form; we run Adam from five starting means
#   and keep the best (the variational methods of §14.4 minimise this direction). The KL is computed by
#   quadrature on a grid that moves with $Q$, $x = \mu + \sigma z$ (`divergences.kl_gaussian_to_density`),
#   because a fixed grid would cut off the tails of a wide $Q$ during the search.

# %%
ui, draw_fits = widgets.kl_asymmetry(separation=4.0, weight=0.6)
fits = draw_fits(4.0, 0.6)                      # the figure drawn once (the sliders below redraw it)

# %% [markdown]
# Three oracles. The forward fit must equal the mixture's closed-form moments. The moving-grid KL of the
# reverse fit must agree with the grid quadrature of part 1. For well-separated modes the
# mode-seeking fit sits on the heavier mode, $Q \approx \mathcal N(\pm s/2, 0.6^2)$, and then
# $\mathrm{KL}(Q\|P) \approx -\log w_{\text{heavier}}$, the price of ignoring the other mode.

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    mm = divergences.mixture_moments([0.6, 0.4], [-2.0, 2.0], [0.36, 0.36])
    print(f"separation 4, left weight 0.6: forward fit (μ, σ²) = ({fits['forward'][0]:.4f}, {fits['forward'][1]:.4f}); "
          f"closed-form moments ({mm[0]:.4f}, {mm[1]:.4f})")
    far = divergences.bimodal_fits(10.0, 0.6)
    print(f"separation 10: reverse fit (μ, σ²) = ({far['reverse'][0]:.3f}, {far['reverse'][1]:.3f}), "
          f"KL(Q‖P) = {far['kl_reverse']:.4f}; −log 0.6 = {-math.log(0.6):.4f}")
    kl_grid = divergences.kl_quadrature(divergences.log_normal(fits["grid"], *fits["reverse"]), fits["log_p"], fits["grid"])
    print(f"KL(Q_rev ‖ P) at separation 4: moving grid {fits['kl_reverse']:.5f} | grid quadrature {kl_grid:.5f}")
    assert abs(fits["forward"][0] - mm[0]) < 1e-6 and abs(fits["forward"][1] - mm[1]) < 1e-6
    assert abs(kl_grid - fits["kl_reverse"]) < 1e-4
    assert abs(far["kl_reverse"] + math.log(0.6)) < 1e-3

# %% [markdown]
# Move the sliders (in a live notebook): with the modes close together both fits agree; as they separate the
# mass-covering fit widens and puts its peak where $P$ has almost no mass, while the mode-seeking fit locks
# onto the heavier mode (and jumps to the other side when the weight crosses 0.5).

# %%
ui

# %% [markdown]
# ## Summary
#
# * $\mathbb E_P[-\log Q_\theta] = H(P) + \mathrm{KL}(P\|Q_\theta)$: the average negative log-likelihood is a
#   sampled, shifted copy of the KL divergence, so its minimiser converges to the KL minimiser, here at rate
#   $n^{-1/2}$ (Theorem 14.2.2). The theorem says nothing about how small the minimal KL is: that is the job
#   of the model family.
# * $\mathrm{KL}(P\|Q)$ can be estimated from samples of $P$ by averaging $\log P - \log Q$: unbiased, with an
#   error bar that shrinks like $n^{-1/2}$. At a model fitted to the same samples the estimate is optimistic
#   by about $c/(2n)$, and the fitted model's true KL is worse than the best by about as much: a training
#   likelihood flatters, a held-out one does not.
# * Example 14.2.1 on digits: $\mathcal N(\mu, \sigma^2 I)$ has train ≈ held-out likelihood and samples that
#   are the mean image plus noise. A full covariance and then a mixture lower the held-out bits/dim and
#   draw more digit-like samples. Agreement between train and held-out likelihood says nothing about whether
#   the distribution has been learnt.
# * Corrections: the Gaussian negative log-likelihood is $\sum_i|x_i-\mu|^2/(2\sigma^2) + \frac{md}{2}\log(2\pi\sigma^2)$,
#   its maximiser has $\sigma^2 = \frac{1}{md}\sum_i|x_i-\mu|^2$, and maximum likelihood maximises the
#   log-likelihood.
# * $\mathrm{KL}(P\|Q)$ (maximum likelihood) covers all modes; $\mathrm{KL}(Q\|P)$ picks one.

# %% [markdown]
# Your exercises in this lesson, as the autograder last saw them:

# %%
from companion_lib.grading import progress

progress("14.2")
