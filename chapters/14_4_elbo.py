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
# # §14.4 The evidence lower bound (ELBO), checked where everything is exact
#
# Section 14.4 states Lemma 14.4.1: for a latent-variable model p(x, h) and **any** distribution
# q(h|x) over the hidden variable, the *evidence lower bound*
#
# $$\mathrm{ELBO}(q) \;=\; \mathbb{E}_{q(h|x)}[\log p(x,h)] + H[q(h|x)] \;\le\; \log p(x) \qquad\text{(eq. 14.4)}$$
#
# and the proof (eqs. 14.5–14.8) shows what the slack is:
#
# $$\log p(x) \;=\; \mathrm{ELBO}(q) \;+\; \mathrm{KL}\big(q(h|x)\,\|\,p(h|x)\big).$$
#
# Usually neither side can be computed; that is why variational methods (and the VAE of §14.5) exist.
# This lesson uses two models where **every term is a closed form**, so the lemma can be checked to
# float64 precision rather than believed:
#
# 1. a **discrete** h: the two-component Gaussian mixture fitted to Pearson's crabs in §14.1;
# 2. a **continuous** h: the linear-Gaussian model p(h) = N(0, I), p(x|h) = N(Wh + b, σ²I).
#
# Then it ties back to §14.1: **EM is coordinate ascent on the ELBO**, which is why its log-likelihood
# never decreases.
#
# *Needs:* §14.1 (mixtures, EM) and the KL divergence of §14.2. No training: the whole notebook runs
# in seconds.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

from companion_lib import data, elbo, mixture, settings
from companion_lib.viz import ch14, widgets
from companion_lib.grading import check

run = settings.setup(seed=0, notebook="14_4_elbo")

# %% [markdown]
# ## 1. A discrete hidden variable: which component produced this crab?
#
# In §14.1 a crab's forehead-to-body ratio x was modelled with a hidden label h ∈ {0, 1} (two
# sub-populations): p(x, h) = ρ_h N(x; μ_h, σ_h²). We refit that mixture (EM with `reg_covar=0`, run to
# a tight tolerance) and pick one crab near the middle of the data, where the two components overlap
# and the posterior p(h|x) is genuinely uncertain.

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    crabs = torch.as_tensor(data.load_pearson_crabs().data)        # (1000, 1)
    gm = mixture.GaussianMixture(2, reg_covar=0.0, random_state=0, tol=1e-10, max_iter=5000).fit(crabs)
    theta = (gm.weights_, gm.means_, gm.covariances_)
    log_joint_all = elbo.mixture_log_joint(crabs, *theta)          # log p(x_i, h) for every crab: (1000, 2)

    x0 = torch.tensor([[0.6475]], dtype=torch.float64)   # the median crab
    log_joint = elbo.mixture_log_joint(x0, *theta)                 # (1, 2)
    log_px = elbo.log_evidence(log_joint)                          # log p(x) = log Σ_h p(x, h)
    post = elbo.posterior(log_joint)                               # p(h | x), Bayes' rule

# %%
# NBVAL_CHECK_OUTPUT
print("weights", np.round(gm.weights_, 4), " means", np.round(gm.means_.ravel(), 4),
      " sds", np.round(np.sqrt(gm.covariances_.ravel()), 4))
print(f"x = 0.6475:  log p(x) = {log_px.item():.4f} nats,  p(h=1|x) = {post[0, 1].item():.4f}")

# %% [markdown]
# For a two-state h, a distribution q(h|x) is one number, q₁ = q(h=1|x) ∈ [0, 1]. The lemma claims three
# things for every q₁: the ELBO never exceeds log p(x); the gap is exactly KL(q ‖ p(h|x)) (eq. 14.5); and
# the gap vanishes at q = p(h|x). We test all three for **every crab** and many random q, in float64.

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    n_q = run.budget(quick=200, full=2000)
    q = torch.distributions.Dirichlet(torch.ones(2, dtype=torch.float64)).sample((n_q, len(crabs)))  # (n_q, 1000, 2): points on the simplex
    lj = log_joint_all.expand(n_q, -1, -1).reshape(-1, 2)
    q = q.reshape(-1, 2)
    lower = elbo.discrete_elbo(lj, q)                              # E_q[log p(x,h)] + H[q]     (eq. 14.4)
    gap = elbo.elbo_gap(lj, q)                                     # KL(q ‖ p(h|x))              (eq. 14.5)
    exact = elbo.log_evidence(lj)                                  # log p(x)

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    identity_err = (exact - lower - gap).abs().max().item()
    at_posterior = (elbo.discrete_elbo(log_joint_all, elbo.posterior(log_joint_all))
                    - elbo.log_evidence(log_joint_all)).abs().max().item()
    assert identity_err <= 1e-12 and at_posterior <= 1e-12
    assert (lower <= exact + 1e-12).all() and (gap >= 0).all()
    assert torch.allclose(elbo.log_evidence(log_joint_all).cpu(), torch.as_tensor(gm.score_samples(crabs)))
    print(f"{len(q):,} (crab, q) pairs: ELBO <= log p(x) everywhere: True")
    print(f"max |log p(x) - ELBO(q) - KL(q || p(h|x))| <= 1e-12: {identity_err <= 1e-12}")
print(f"max |ELBO(posterior) - log p(x)|             <= 1e-12: {at_posterior <= 1e-12}")

# %% [markdown]
# The picture for our one crab: sweep q₁ over [0, 1]. The ELBO (blue) is a concave curve that touches
# the horizontal line log p(x) at exactly one point, the posterior p(h=1|x); the shaded slack at each
# q₁ is KL(q ‖ p(h|x)). At the corners q₁ = 0 or 1 (a "hard" assignment, as k-means would make) the
# entropy term is zero and the gap is −log p(h|x) of the chosen label.

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    grid = torch.linspace(0, 1, 401, dtype=torch.float64)
    Q = torch.stack([1 - grid, grid], 1)
    sweep = elbo.discrete_elbo(log_joint.expand(len(grid), -1), Q)
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    ch14.elbo_sweep(grid, log_px, sweep, ax=ax, q_post=post[0, 1])
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_ylim(1.9, 3.15)
    plt.show()

# %% [markdown]
# **Try it.** Move q(h=1|x): the ELBO and the gap change, log p(x) does not (it does not depend on q).
# The figure below the slider is drawn once for q₁ = 0.80 so the notebook reads without a live kernel.

# %%
box, draw = widgets.elbo_q_slider(log_joint, q_init=0.8)
display(box)

# %%
fig = draw(0.8)
plt.show()

# %% [markdown]
# > **Note on the text.** The last line of the proof of Lemma 14.4.1 says that, because log p(x) is
# > constant over q(h|x), $\mathbb{E}_{q(h|x)}[\log p(x)] = p(x)$. It should read
# > $\mathbb{E}_{q(h|x)}[\log p(x)] = \log p(x)$: the expectation of a constant is that constant, and the
# > constant is the *log*-evidence. Substituting it into (14.8) gives
# > $\log p(x) - \mathbb{E}_q[\log p(x,h)] - H[q] \ge 0$, i.e. (14.4).
# > A smaller slip: the unlabelled line after (14.5) (the KL rewritten with Bayes' rule
# > $p(h|x) = p(x,h)/p(x)$) is presumably the missing (14.6), since the numbering jumps from (14.5) to
# > (14.7). (The text's "lower bound on p(x)" before the lemma is fine read as $e^{\mathrm{ELBO}} \le p(x)$;
# > the bound as stated and used is on $\log p(x)$.)
#
# Below, both for q₁ = 0.8: the expectation of the constant log p(x), and each term of (14.5)–(14.8).

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    q_one = torch.tensor([[0.2, 0.8]], dtype=torch.float64)
    E_log_px = (q_one * log_px[:, None]).sum()                     # E_q[log p(x)], log p(x) repeated over h
    print(f"E_q[log p(x)] = {E_log_px.item():.4f}   log p(x) = {log_px.item():.4f}   "
          f"p(x) = {log_px.exp().item():.4f}  (the text's p(x) is a different number)")
    e_log_joint = (q_one * log_joint).sum().item()                 # E_q[log p(x, h)]
    entropy = elbo.categorical_entropy(q_one).item()               # H[q]
    kl = elbo.elbo_gap(log_joint, q_one).item()                    # KL(q ‖ p(h|x)), eq. 14.5
    print(f"E_q[log p(x,h)] + H[q] + KL = {e_log_joint:.4f} + {entropy:.4f} + {kl:.4f} "
          f"= {e_log_joint + entropy + kl:.4f} = log p(x)")
    assert abs(E_log_px.item() - log_px.item()) < 1e-12
    assert abs(e_log_joint + entropy + kl - log_px.item()) < 1e-12

# %% [markdown]
# ### Exercise 1: the ELBO gap of a discrete latent variable
#
# Given the table log p(x_i, h = k) for all h (shape (n, K)) and a q (n, K), return the gap
# log p(x_i) − ELBO_i(q) per row, as KL(q ‖ p(h|x)) (eq. 14.5). Stay in log space, as in the E-step of
# §14.1: the check has a case with log p(x, h) ≈ −2000 (every p(x, h) underflows to 0) and one with a
# component whose posterior probability, about e^−800, is below the smallest float64 although its log
# and the KL are finite. Mind the rows of q that contain zeros (0 log 0 = 0).

# %%
def elbo_gap(log_joint, q):
    """log_joint (n, K) = log p(x_i, h=k); q (n, K) rows on the simplex → (n,) KL(q ‖ p(h|x_i))."""
    # YOUR CODE HERE
    raise NotImplementedError


result = check("14.4.elbo_gap", elbo_gap)
result

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    elbo_gap = result.or_reference()   # your function if it passed, else the reference (it says so)
    hard = torch.nn.functional.one_hot(log_joint_all.argmax(1), 2).double()   # k-means-style hard labels
    print(f"mean gap of hard assignments on the crabs: {elbo_gap(log_joint_all, hard).mean().item():.4f} nats")

# %% [markdown]
# **How many digits survive?** Any route that forms log p(x) = logsumexp_h log p(x, h), whether it
# subtracts it from the ELBO or from log p(x, h), carries the round-off of that number, about
# 2·10^-16 · |log p(x)| nats. Shifting each row by its maximum first (what `torch.log_softmax` does inside)
# never forms log p(x), so it keeps the gap to full relative precision. Taking the log of a softmax
# avoids forming log p(x) too, but a posterior probability below about e^−745 becomes 0 and its log −inf.
# Below, the four routes on a row shifted to log p(x) ≈ 10^8 with q within 10^-3 of the posterior
# (a gap of a few 10^-7), and on a row with one component 800 nats behind.

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    xlogx = torch.special.xlogy
    routes = {
        "log p(x) − ELBO(q)": lambda lj, q: torch.logsumexp(lj, 1) - (q * lj).sum(1) + xlogx(q, q).sum(1),
        "log p(x,h) − logsumexp": lambda lj, q: (xlogx(q, q) - q * (lj - torch.logsumexp(lj, 1, keepdim=True))).sum(1),
        "log_softmax": lambda lj, q: (xlogx(q, q) - q * torch.log_softmax(lj, 1)).sum(1),
        "log(softmax)": lambda lj, q: (xlogx(q, q) - q * torch.log(torch.softmax(lj, 1))).sum(1),
    }
    row = torch.tensor([[0.0, -0.7, -2.0]], dtype=torch.float64)
    q_near = torch.softmax(row, 1) * torch.tensor([[1 + 1e-3, 1 - 1e-3, 1.0]], dtype=torch.float64)
    q_near = q_near / q_near.sum()
    far_row, q_far = torch.tensor([[0.0, -800.0, -1.5]], dtype=torch.float64), torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64)
    big_row = row + 1e8                                           # log p(x, h) ≈ 10^8 (rounded to float64)
    exact_near = elbo.elbo_gap(big_row - big_row.max(), q_near).item()   # the shift by the max is exact
    exact_far = elbo.elbo_gap(far_row, q_far).item()
    print(f"exact gaps: {exact_near:.4e} (near the posterior), {exact_far:.2f} (far component)")
    print(f"{'route':>24} | relative error, log p(x) ≈ 1e8 | far component")
    rel = {}
    for name, route in routes.items():
        rel[name] = abs(route(big_row, q_near).item() - exact_near) / exact_near
        print(f"{name:>24} | {rel[name]:30.1e} | {route(far_row, q_far).item():.2f}")
    ulp = torch.finfo(torch.float64).eps * 1e8                  # relative precision of float64 times 10^8
    print(f"float64 round-off of a number of size 1e8: {ulp:.1e} nats = {ulp / exact_near:.1e} of this gap")
    assert rel["log_softmax"] < 1e-12 and rel["log(softmax)"] < 1e-12
    assert 1e-4 < rel["log p(x,h) − logsumexp"] < 1 and 1e-4 < rel["log p(x) − ELBO(q)"] < 1
    assert torch.isinf(routes["log(softmax)"](far_row, q_far)).all()

# %% [markdown]
# So at log p(x) ≈ 10^8 the two routes that form log p(x) keep only a few digits of a 10^-7 gap, for the
# same reason; `torch.log_softmax` keeps them all; log(softmax) is exact here but infinite as soon as a
# posterior probability underflows. The check above uses log p(x, h) ≈ −2000, where the logsumexp route
# that §14.1 teaches loses only about 2·10^-16 × 2000 ≈ 4·10^-13 nats, far inside its tolerance, and it
# tests the underflow that log(softmax) cannot survive.

# %% [markdown]
# ## 2. A continuous hidden variable: the linear-Gaussian model
#
# Now h ∈ ℝᵏ: p(h) = N(0, I_k) and p(x|h) = N(Wh + b, σ²I_d) (probabilistic PCA). Integrating h out,
# p(x) = N(b, WWᵀ + σ²I), and completing the square gives a Gaussian posterior
#
# $$p(h|x) = \mathcal{N}\big(\Sigma_{\text{post}} W^\top (x-b)/\sigma^2,\; \Sigma_{\text{post}}\big),\qquad
# \Sigma_{\text{post}} = (I + W^\top W/\sigma^2)^{-1}.$$
#
# For a Gaussian q(h|x) = N(m, S) each ELBO term is closed form:
# $\mathbb{E}_q[\log p(h)] = -\tfrac12(k\log 2\pi + \|m\|^2 + \operatorname{tr} S)$,
# $\mathbb{E}_q[\log p(x|h)] = -\tfrac12\big(d\log 2\pi\sigma^2 + (\|x - Wm - b\|^2 + \operatorname{tr} W S W^\top)/\sigma^2\big)$
# and $H[q] = \tfrac12\log\det(2\pi e S)$. We take d = 3, k = 2 and check the closed forms against
# `torch.distributions` first.

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    g = torch.Generator().manual_seed(14)
    lg = elbo.LinearGaussian(torch.randn(3, 2, generator=g, dtype=torch.float64),
                             torch.randn(3, generator=g, dtype=torch.float64), sigma2=0.3)
    x, _ = lg.sample(5, generator=g)                               # five observations (5, 3)
    post_mean, post_cov = lg.posterior(x)

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    MVN = torch.distributions.MultivariateNormal
    err_px = (lg.log_px(x) - MVN(*lg.marginal()).log_prob(x)).abs().max().item()
    h_test = torch.randn(7, 5, 2, generator=g, dtype=torch.float64)
    bayes = lg.log_joint(x, h_test) - lg.log_px(x)                 # log p(h|x) = log p(x,h) − log p(x)
    err_post = (bayes - MVN(post_mean, post_cov).log_prob(h_test)).abs().max().item()
    assert err_px < 1e-10 and err_post < 1e-10
    print(f"log p(x) vs MultivariateNormal: agree to 1e-10: {err_px < 1e-10}")
    print(f"posterior vs Bayes' rule at random h: agree to 1e-10: {err_post < 1e-10}")
print("log p(x) =", np.round(lg.log_px(x).cpu().numpy(), 4))

# %% [markdown]
# Now random Gaussian q's, diagonal and full: the closed-form ELBO, a Monte Carlo estimate of the same
# expectation (sampling h ~ q, averaging log p(x,h) − log q(h|x)), and the gap against the closed-form
# Gaussian KL(q ‖ p(h|x)) (checked against `torch.distributions.kl_divergence`).

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    n_mc = run.budget(quick=4000, full=100_000)
    m = post_mean + 0.5 * torch.randn(5, 2, generator=g, dtype=torch.float64)
    S_diag = torch.diag_embed(0.5 * torch.rand(5, 2, generator=g, dtype=torch.float64) + 0.05)
    A = torch.randn(5, 2, 2, generator=g, dtype=torch.float64)
    S_full = 0.2 * A @ A.transpose(-1, -2) + 0.05 * torch.eye(2, dtype=torch.float64)
    rows = []
    for name, S in [("diagonal", S_diag), ("full", S_full), ("posterior", post_cov)]:
        mean = post_mean if name == "posterior" else m
        closed = lg.elbo(x, mean, S)                               # eq. 14.4, closed form
        mc, se = lg.elbo_mc(x, mean, S, n_mc, generator=g)         # Monte Carlo, with its standard error
        kl = elbo.gaussian_kl(mean, S, post_mean, post_cov)        # eq. 14.5
        oracle = torch.distributions.kl_divergence(MVN(mean, S), MVN(post_mean, post_cov))
        rows.append((name, closed, mc, se, kl, oracle))

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    exact = lg.log_px(x)
    print(f"{'q':>9} | {'log p(x) - ELBO - KL':>21} | {'|MC - closed| / s.e. (max)':>27} | mean gap")
    for name, closed, mc, se, kl, oracle in rows:
        ident = (exact - closed - kl).abs().max().item()
        z = ((mc - closed).abs() / se.clamp_min(1e-300)).max().item() if se.max() > 1e-12 else 0.0
        assert ident < 1e-10 and torch.allclose(kl, oracle, atol=1e-10) and z < 4.5
        print(f"{name:>9} | {'< 1e-10' if ident < 1e-10 else ident:>21} | "
              f"{'< 4.5' if z < 4.5 else z:>27} | {kl.mean().item():.4f}")

# %% [markdown]
# At the posterior the Monte Carlo estimator has **zero variance**: log p(x,h) − log q(h|x) =
# log p(x) for every sample h. Elsewhere the estimate wanders around the closed form with the usual
# 1/√n shrinkage of its error bar:

# %%
i, S_show = 0, S_full[:1]
n_grid = [10, 30, 100, 300, 1000, 3000, run.budget(quick=10_000, full=100_000)]
est = [lg.elbo_mc(x[i:i + 1], m[i:i + 1], S_show, n, generator=g) for n in n_grid]
mu_mc = np.array([e[0].item() for e in est])
se_mc = np.array([e[1].item() for e in est])
fig, ax = plt.subplots(figsize=(6.5, 3.4))
ax.errorbar(n_grid, mu_mc, yerr=2 * se_mc, fmt="o", capsize=3, label="Monte Carlo ELBO ± 2 s.e.")
ax.axhline(lg.elbo(x[i:i + 1], m[i:i + 1], S_show).item(), color="C0", label="closed-form ELBO")
ax.axhline(exact[i].item(), color="k", ls="--", label="log p(x)")
ax.set_xscale("log")
ax.set_xlabel("number of samples h ~ q")
ax.set_ylabel("nats")
ax.set_title("ELBO of one full-covariance q: Monte Carlo vs closed form", fontsize=10)
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ### Exercise 2: the entropy of a Gaussian
#
# The H[q] term of the ELBO for q = N(μ, Σ). Return it in nats for a (d, d) covariance or a batch
# (..., d, d).

# %%
def gaussian_entropy(cov):
    """cov (d, d) or (..., d, d), symmetric positive definite → entropy of N(μ, cov) in nats, shape (...)."""
    # YOUR CODE HERE
    raise NotImplementedError


result = check("14.4.gaussian_entropy", gaussian_entropy)
result

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    gaussian_entropy = result.or_reference()   # your function if it passed, else the reference (it says so)
    print("H[q] for the five full-covariance q's:", np.round(gaussian_entropy(S_full).cpu().numpy(), 4))

# %% [markdown]
# ### The picture for k = 1, and what a restricted q costs
#
# With a one-dimensional h, q = N(m, s²) has two parameters, so the ELBO is a surface over (m, log s).
# Its single peak sits at the exact posterior, where it reaches log p(x). Here d = 2, W = (1.5, 0.5)ᵀ,
# b = 0, σ² = 0.5 and x = (1.2, 1.0).

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    lg1 = elbo.LinearGaussian(torch.tensor([[1.5], [0.5]], dtype=torch.float64),
                              torch.zeros(2, dtype=torch.float64), sigma2=0.5)
    x1 = torch.tensor([[1.2, 1.0]], dtype=torch.float64)
    ms = torch.linspace(-1.0, 2.0, 121, dtype=torch.float64)
    log_s = torch.linspace(-3.0, 1.0, 101, dtype=torch.float64)
    MM, LS = torch.meshgrid(ms, log_s, indexing="xy")
    surface = lg1.elbo(x1.expand(MM.numel(), -1), MM.reshape(-1, 1),
                       torch.diag_embed(torch.exp(2 * LS.reshape(-1, 1)))).reshape(MM.shape)
    pm1, pc1 = lg1.posterior(x1)
    post_point = (pm1[0, 0].item(), 0.5 * torch.log(pc1[0, 0]).item())
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ch14.elbo_contour(ms, log_s, surface, ax=ax, post=post_point, log_px=lg1.log_px(x1).item(),
                      title="ELBO over q = N(m, s²); contours at log p(x) − {0.02, 0.1, …, 8} nats")
    plt.show()

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    print(f"grid maximum {surface.max().item():.4f} at (m, log s) = "
          f"({MM.reshape(-1)[surface.argmax()].item():.3f}, {LS.reshape(-1)[surface.argmax()].item():.3f});"
          f"  posterior ({post_point[0]:.3f}, {post_point[1]:.3f}),  log p(x) = {lg1.log_px(x1).item():.4f}")

# %% [markdown]
# When k ≥ 2 and q is restricted to be **diagonal** ("mean field"), the posterior's correlation cannot be
# represented, so the gap can no longer close. For this Gaussian model the best diagonal q is known:
# it keeps the posterior mean and sets each variance to 1/Λ_jj, where Λ = I + WᵀW/σ² is the posterior
# precision, and its gap is ½(Σ_j log Λ_jj − log det Λ). We recover this by maximising the closed-form
# ELBO with autograd (L-BFGS over m and log s) and compare.

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    xi = x[:1]
    m_var = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    log_s_var = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([m_var, log_s_var], lr=1, max_iter=200, tolerance_grad=1e-12,
                            tolerance_change=1e-14, line_search_fn="strong_wolfe")


    def closure():
        opt.zero_grad()
        loss = -lg.elbo(xi, m_var, torch.diag(torch.exp(2 * log_s_var))).sum()
        loss.backward()
        return loss


    opt.step(closure)
    Lam = torch.linalg.inv(post_cov)                               # posterior precision I + WᵀW/σ²
    gap_theory = 0.5 * (torch.log(torch.diagonal(Lam)).sum() - torch.logdet(Lam))
    with torch.no_grad():
        gap_fit = (lg.log_px(xi) - lg.elbo(xi, m_var, torch.diag(torch.exp(2 * log_s_var))))[0]

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    assert abs(gap_fit.item() - gap_theory.item()) < 1e-8
    assert torch.allclose(m_var.detach(), post_mean[:1], atol=1e-6)
    corr = post_cov[0, 1] / post_cov.diagonal().prod().sqrt()
    print(f"posterior correlation of h1, h2: {corr.item():.4f}")
print(f"best diagonal q: gap = {gap_fit.item():.5f} nats (theory {gap_theory.item():.5f}); "
      f"full-covariance q: gap = 0")

# %% [markdown]
# ## 3. EM is coordinate ascent on the ELBO (back to §14.1)
#
# Over a data set, with one q_i = q(h|x_i) per point and parameters θ,
#
# $$\mathrm{ELBO}(q, \theta) = \sum_i \Big(\mathbb{E}_{q_i}[\log p_\theta(x_i, h)] + H[q_i]\Big) \;\le\; \sum_i \log p_\theta(x_i).$$
#
# EM maximises it one block at a time (this reading of EM, and the variants it justifies, are from
# R. M. Neal and G. E. Hinton, "A view of the EM algorithm that justifies incremental, sparse, and other
# variants", in M. I. Jordan (ed.), *Learning in Graphical Models*, Kluwer 1998, 355–368; EM itself and
# its monotonicity are from Dempster, Laird and Rubin, *J. R. Statist. Soc. B* 39 (1977) 1–38):
#
# * **E-step**, θ fixed: the best q is the posterior, q_i = p_θ(h|x_i); the gap closes and the ELBO
#   *touches* the log-likelihood;
# * **M-step**, q fixed: the entropy does not involve θ, so maximising the ELBO in θ is the weighted
#   maximum-likelihood fit of §14.1 (`mixture.m_step`). The ELBO rises; the log-likelihood rises at least
#   as much, because a gap KL(q ‖ p_θ(h|x)) ≥ 0 opens.
#
# Hence log-lik(θ_{t+1}) ≥ ELBO(q_{t+1}, θ_{t+1}) ≥ ELBO(q_{t+1}, θ_t) = log-lik(θ_t). We start from a poor
# guess (both components too narrow, equal weights; q₀ uniform) and record both quantities after every
# half-step. The M-step uses `reg_covar = 0`: with a ridge added to the covariances it is no longer the
# exact maximiser, and the monotonicity can fail (measured at the end of this section). The table
# below is per crab (log-likelihood and ELBO divided by n = 1000); §14.1 prints totals over the crabs.

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    n_iter = run.budget(quick=12, full=40)
    trace = elbo.em_elbo_trace(crabs, [0.5, 0.5], [[0.62], [0.67]], [[[1e-4]], [[1e-4]]], n_iter)
    ll, lb, kl_gap = trace["log_lik"], trace["elbo"], trace["gap"]
    assert (torch.diff(ll) >= -1e-13).all(), "EM decreased the log-likelihood"
    assert (torch.diff(lb) >= -1e-13).all(), "a half-step decreased the ELBO"
    assert kl_gap[1::2].abs().max() < 1e-12                        # after each E-step: ELBO = log-lik

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    print(f"{'half-step':>10} {'stage':>6} {'log-lik/n':>10} {'ELBO/n':>10} {'gap (KL)/n':>11}")
    for t in range(7):
        shown = f"{kl_gap[t].item():.2e}" if kl_gap[t] > 1e-12 else "0 (<1e-12)"
        print(f"{t:>10} {trace['stage'][t]:>6} {ll[t].item():>10.4f} {lb[t].item():>10.4f} {shown:>11}")
print(f"after {n_iter} iterations: {ll[-1].item():.5f};  converged EM: {gm.score(crabs):.5f}")

# %%
axes = ch14.em_staircase(trace, zoom_from=2, optimum=gm.score(crabs))
axes[0].figure.suptitle("EM on Pearson's crabs as coordinate ascent on the ELBO (reg_covar = 0)", fontsize=11)
axes[0].figure.tight_layout()
plt.show()

# %% [markdown]
# With scikit-learn's default ridge `reg_covar = 1e-6` the M-step is not the exact maximiser of the
# ELBO in θ, and late in the run, where the true gains are tiny, the log-likelihood can go down. The
# size of the worst step, per crab (this lesson's unit) and in total over the 1000 crabs (§14.1's):

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    ridged = mixture.GaussianMixture(2, reg_covar=1e-6, random_state=0, tol=1e-10, max_iter=5000).fit(crabs)
    steps = np.diff(ridged.log_likelihood_history_)                # mean log-likelihood per crab, per iteration
print(f"reg_covar = 1e-6: {(steps < 0).sum()} of {len(steps)} steps go down; the worst by "
      f"{steps.min():+.1e} nats per crab = {steps.min() * len(crabs):+.1e} nats in total over {len(crabs)} crabs")
assert steps.min() < 0

# %% [markdown]
# ## Summary
#
# * For any q(h|x): log p(x) = ELBO(q) + KL(q ‖ p(h|x)). Checked to 1e-12 for a discrete h (every crab,
#   many random q) and to 1e-10 for a continuous h (diagonal and full Gaussian q), with the ELBO also
#   estimated by Monte Carlo within its standard error.
# * The bound is tight exactly at the posterior. A restricted family (hard labels, diagonal Gaussians)
#   cannot reach it and pays the KL to the posterior: a gap that fitting q within that family
#   cannot remove.
# * The proof's last step needs E_q[log p(x)] = log p(x), not p(x).
# * EM alternates an E-step that closes the gap with an M-step that lifts the bound; hence its
#   log-likelihood never decreases. The VAE of §14.5 maximises the same ELBO when neither step has a
#   closed form, using gradients and the reparameterisation h = m + Lε used by `elbo_mc` above.

# %% [markdown]
# Your exercises in this lesson, as the autograder last saw them:

# %%
from companion_lib.grading import progress

progress("14.4")
