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
# # §14.1 Density estimation on Pearson's crabs
#
# Section 14.1 names *learning the distribution of the data* as a goal of unsupervised learning and
# illustrates it with the oldest mixture model in statistics: Karl Pearson's 1894 analysis of crab
# measurements collected by W. F. R. Weldon. In this lesson you will
#
# 1. look at the real data (1000 crabs) and fit **one Gaussian** by maximum likelihood;
# 2. fit a **two-component Gaussian mixture** by EM, watch its log-likelihood climb, and choose the
#    number of components by BIC, cross-validated held-out likelihood and Pearson's own χ² test;
# 3. read the mixture as a **latent-variable model** $p_\theta(h, x)$ (h = which component): sample
#    from it, and compute the posterior $p(h \mid x)$;
# 4. redo **Pearson's method of moments** and set it beside maximum likelihood;
# 5. try a mixture on a second, five-dimensional crab data set where the hidden label is known.
#
# Three exercises are autograded: the closed-form Gaussian fit, and the two halves of EM (the E-step
# and the M-step), which the lesson then runs as *your* EM. Everything runs on the CPU in under a
# minute; `companion_lib` does the rest of the computing, in PyTorch.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score
from scipy.optimize import linear_sum_assignment
from sklearn.model_selection import KFold, cross_val_score

from companion_lib import data, metrics, mixture, moments, settings
from companion_lib.viz import ch14, widgets
from companion_lib.grading import check
from companion_lib.mixture import GaussianMixture

run = settings.setup(seed=0, notebook="14_1_pearson_crabs")

# %% [markdown]
# ## 1. The data
#
# Weldon measured, for 1000 female shore crabs from the Bay of Naples, the breadth of the "forehead"
# (the front of the carapace) divided by the body length. Pearson received the measurements grouped
# into 29 classes of width 0.004. `data.load_pearson_crabs()` expands the table into one row per crab.
# A table can be read two ways: we take each class value as the value of every crab in the class (the
# reading of the R package `MixtureInf`); `reading="right_edge"` treats it as the right edge of the
# class instead, which shifts every fitted mean by 0.002 and changes nothing else.

# %%
crabs = data.load_pearson_crabs()
X = crabs.data                      # (1000, 1): one ratio per crab
print(crabs.DESCR)
print("n =", len(X), "| classes:", len(crabs.ratio), "| range:", X.min(), "to", X.max())

# %% [markdown]
# > **Note on the text.** §14.1 places the crabs on Malta and says a thousand crabs were measured on
# > 23 attributes each. Pearson's mixture was fitted to *one* attribute, this forehead-to-length ratio,
# > of 1000 female crabs from the Bay of **Naples** (Weldon's sample). The cell below checks the data:
# > one column, 1000 rows. And a good two-component fit does not by itself show two species: it is
# > consistent with two sub-populations, which is how Pearson presented it, as a hypothesis.

# %%
# NBVAL_CHECK_OUTPUT
assert X.shape == (1000, 1) and crabs.count.sum() == 1000
print(f"one attribute, {X.shape[0]} crabs; mean {X.mean():.5f}, sd {X.std():.5f}")
skew = ((X - X.mean()) ** 3).mean() / X.std() ** 3
print(f"sample skewness {skew:.3f} (a single Gaussian has 0)")

# %%
density = crabs.count / (crabs.count.sum() * np.diff(crabs.bin_edges))
grid = np.linspace(0.575, 0.70, 500)
open_edges = np.concatenate([[-np.inf], crabs.bin_edges[1:-1], [np.inf]])  # outer classes open-ended


def histogram(ax, title=None):
    ax.bar(crabs.bin_edges[:-1], density, width=np.diff(crabs.bin_edges), align="edge",
           color="#cfd8dc", edgecolor="white", label="1000 crabs")
    ax.set_xlabel("forehead breadth / body length")
    ax.set_ylabel("density")
    if title:
        ax.set_title(title)


fig, ax = plt.subplots(figsize=(6.5, 3.2))
histogram(ax, "Weldon's Naples crabs: skewed to the left")
plt.show()

# %% [markdown]
# ## 2. One Gaussian, by maximum likelihood
#
# Maximum likelihood (eqs. 14.1–14.2) picks the parameters that make the observed sample most
# probable. For one Gaussian $\mathcal N(\mu, \Sigma)$ the maximiser has a closed form: set the
# gradient of $\sum_i \log \mathcal N(x_i; \mu, \Sigma)$ to zero.
#
# **Exercise 14.1.a** Write `gaussian_mle(X)` for `X` of shape `(n, d)`; return `(mean, cov)` with
# shapes `(d,)` and `(d, d)`.

# %%
def gaussian_mle(X):
    """Maximum-likelihood mean (d,) and covariance (d, d) of the rows of X (n, d)."""
    # YOUR CODE HERE
    raise NotImplementedError


result = check("14.1.gaussian_mle", gaussian_mle)
result

# %%
gaussian_mle = result.or_reference()   # your function if it passed, else the reference

# %% [markdown]
# Check it against theory twice: the likelihood must fall when the estimate is nudged in any
# direction, and a one-component `GaussianMixture` (which runs EM) must land on the same numbers.

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU
    mean, cov = gaussian_mle(torch.as_tensor(X))
    mean, var = float(mean[0]), float(cov[0, 0])
    loglik = torch.distributions.Normal(mean, var ** 0.5).log_prob(torch.as_tensor(X)).sum().item()
    for dm, dv in [(1e-4, 0), (-1e-4, 0), (0, 1e-6), (0, -1e-6)]:
        nudged = torch.distributions.Normal(mean + dm, (var + dv) ** 0.5).log_prob(torch.as_tensor(X)).sum()
        assert nudged < loglik
    one = GaussianMixture(1).fit(X)
    assert abs(one.means_[0, 0] - mean) < 1e-12 and abs(one.covariances_[0, 0, 0] - var) < 1e-5

# %%
# NBVAL_CHECK_OUTPUT
print(f"one Gaussian: mean {mean:.5f}, sd {var ** 0.5:.5f}, log-likelihood (14.2) {loglik:.2f}")

# %% [markdown]
# ## 3. Two Gaussians, by EM
#
# The model of §14.1: a hidden bit $h$ picks a component with probabilities $\rho_1, \rho_2 = 1-\rho_1$,
# then $x \mid h \sim \mathcal N(\mu_h, \sigma_h^2)$. So $p_\theta(h, x) = \rho_h\,\mathcal N(x;\mu_h,\sigma_h^2)$
# and $p_\theta(x) = \sum_h p_\theta(h, x)$. No formula maximises this likelihood, so we use EM:
#
# * **E-step**: with the current $\theta$, compute the responsibilities $r_{ik} = p_\theta(h = k \mid x_i)$ by Bayes' rule;
# * **M-step**: refit each component by weighted maximum likelihood, with weights $r_{ik}$.
#
# Each iteration can only raise the log-likelihood (14.2); §14.4 shows why (EM is coordinate ascent on
# the ELBO of Lemma 14.4.1). You write both steps.
#
# *Source:* EM in this generality, with the proof that no iteration lowers the likelihood, is
# A. P. Dempster, N. M. Laird and D. B. Rubin, "Maximum likelihood from incomplete data via the EM
# algorithm", *J. R. Statist. Soc. B* 39 (1977) 1–38.
#
# **Exercise 14.1.b** Write `e_step(x, weights, means, variances)`: `x` of shape `(n,)`, the rest `(K,)`;
# return the `(n, K)` matrix $p(h = k \mid x_i)$. The check includes points far from every component,
# where each $\rho_k\,\mathcal N(x; \mu_k, \sigma_k^2)$ is smaller than the smallest float64: a ratio of
# such numbers is $0/0$, so keep the whole computation in log space.

# %%
def e_step(x, weights, means, variances):
    """Responsibilities p(h = k | x_i) of a 1-D Gaussian mixture: x (n,), weights/means/variances (K,)
    -> (n, K), rows summing to 1."""
    # YOUR CODE HERE
    raise NotImplementedError


result = check("14.1.e_step", e_step)
result

# %%
e_step = result.or_reference()

# %% [markdown]
# **Exercise 14.1.c** Write `m_step(x, resp)`: given the responsibilities, return the new
# `(weights, means, variances)`, each of shape `(K,)`: the maximisers of the expected complete-data
# log-likelihood $\sum_i\sum_k r_{ik}\log[\rho_k\,\mathcal N(x_i;\mu_k,\sigma_k^2)]$ (set its gradient to
# zero, with $\sum_k\rho_k = 1$).

# %%
def m_step(x, resp):
    """x (n,), resp (n, K) -> (weights (K,), means (K,), variances (K,)) of the M-step."""
    # YOUR CODE HERE
    raise NotImplementedError


result = check("14.1.m_step", m_step)
result

# %%
m_step = result.or_reference()

# %% [markdown]
# ### Your EM
# Alternate your two steps from a simple start (equal weights, means at the quartiles, the overall
# variance for both) and record the log-likelihood (14.2), a total over the 1000 crabs, at the start
# and after every iteration. We stop when an iteration gains less than $10^{-10}$ nats per crab. No
# regulariser is added to the variances, so the M-step is exact; this matters below.

# %%
def log_likelihood(x, weights, means, variances):
    """(14.2) for a 1-D mixture: sum_i log sum_k rho_k N(x_i; mu_k, sigma_k^2)."""
    comp = torch.distributions.Normal(means, variances.sqrt()).log_prob(x[:, None])
    return torch.logsumexp(torch.log(weights) + comp, 1).sum().item()


def run_em(x, weights, means, variances, max_iter, tol=1e-10):
    """EM with your e_step and m_step; returns the final parameters and the log-likelihood history."""
    history = [log_likelihood(x, weights, means, variances)]
    for _ in range(max_iter):
        weights, means, variances = m_step(x, e_step(x, weights, means, variances))
        history.append(log_likelihood(x, weights, means, variances))
        if history[-1] - history[-2] < tol * len(x):
            break
    return (weights, means, variances), np.array(history)


q1, q3 = np.quantile(X[:, 0], [0.25, 0.75])
with settings.cpu_float64():  # exact, in float64 on the CPU
    x1 = torch.as_tensor(X[:, 0])
    start = (torch.tensor([0.5, 0.5], dtype=torch.float64), torch.tensor([q1, q3], dtype=torch.float64),
             torch.full((2,), float(X.var()), dtype=torch.float64))
    (w_em, mu_em, var_em), hist = run_em(x1, *start, max_iter=run.budget(quick=5000, full=20_000))
print(f"your EM: {len(hist) - 1} iterations, log-likelihood {hist[0]:.2f} -> {hist[-1]:.4f}")

# %% [markdown]
# **Oracle.** The library's `GaussianMixture` (PyTorch, scikit-learn's interface, its own k-means
# start), and scikit-learn's own, must reach the same maximum.

# %%
gm2 = GaussianMixture(2, reg_covar=0.0, tol=1e-10, max_iter=5000, random_state=run.seed).fit(X)
order = np.argsort(gm2.means_[:, 0])
w2, mu2, sd2 = gm2.weights_[order], gm2.means_[order, 0], np.sqrt(gm2.covariances_[order, 0, 0])
print(f"EM converged: {gm2.converged_} after {gm2.n_iter_} iterations")

# %%
# NBVAL_CHECK_OUTPUT
for k in range(2):
    print(f"component {k + 1}: weight {w2[k]:.4f}  mean {mu2[k]:.5f}  sd {sd2[k]:.5f}")
print(f"log-likelihood (14.2): {gm2.score(X) * len(X):.2f}  (one Gaussian: {loglik:.2f})")
mine = np.argsort(mu_em.numpy())
print(f"your EM:  weights {w_em.numpy()[mine].round(4)}  means {mu_em.numpy()[mine].round(5)}  "
      f"sds {np.sqrt(var_em.numpy())[mine].round(5)}")

# %%
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

ref = SklearnGaussianMixture(2, reg_covar=0.0, tol=1e-10, max_iter=5000, random_state=run.seed).fit(X)
gap = abs(ref.score(X) - gm2.score(X))
gap_yours = abs(hist[-1] / len(X) - gm2.score(X))
print(f"|library - scikit-learn| = {gap:.1e} nats per crab; |your EM - library| = {gap_yours:.1e} nats per crab")
assert gap < 1e-6 and gap_yours < 1e-5

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.4))
histogram(ax, "One Gaussian vs a two-component mixture")
ch14.mixture_density_1d(ax, grid, w2, mu2, sd2 ** 2, label="2-component mixture (EM)")
ax.plot(grid, np.exp(one.score_samples(grid[:, None])), color="k", ls=":", lw=1.5, label="one Gaussian")
ax.legend(fontsize=8, loc="upper left")
plt.show()

# %% [markdown]
# ### The log-likelihood per EM iteration
# `hist[t]` is *your* EM's total log-likelihood after t iterations (`hist[0]`: the start). With an
# exact M-step it never decreases. scikit-learn's default `reg_covar=1e-6` adds $10^{-6}$ to every variance, which makes
# the M-step inexact: the library's `GaussianMixture` (whose `log_likelihood_history_` holds the
# mean log-likelihood at the start of every iteration) then dips slightly late in the run.

# %%
assert np.all(np.diff(hist) >= -1e-9), "EM decreased the likelihood"
with_reg = GaussianMixture(2, reg_covar=1e-6, tol=1e-10, max_iter=5000, random_state=run.seed).fit(X)
dips = np.diff(with_reg.log_likelihood_history_)
print(f"your EM (exact M-step): smallest step {np.diff(hist).min():+.1e} nats (never down)")
print(f"library, reg_covar=1e-6: smallest step {dips.min() * len(X):+.1e} nats ({(dips < 0).sum()} steps down)")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
axes[0].plot(np.arange(len(hist)), hist)                  # hist[t]: after t iterations (t = 0: the start)
axes[0].set_xscale("symlog", linthresh=1)
axes[0].set_xlabel("EM iterations done (0 = the start)")
axes[0].set_ylabel("log-likelihood (14.2), total")
axes[0].set_title("your EM climbs fast, then crawls")
axes[1].plot(np.arange(1, len(hist)), np.maximum(np.diff(hist), 1e-12))   # the gain of iteration t
axes[1].set_xscale("log")
axes[1].set_yscale("log")
axes[1].set_xlabel("EM iteration t")
axes[1].set_ylabel("gain of iteration t (nats)")
axes[1].set_title("every step is an improvement (exact M-step)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Step through EM yourself
# The slider below replays the first iterations of EM from a deliberately poor start (both means low,
# equal widths). Drag it and watch the two components separate. The static figure after it shows
# three moments of the same run.

# %%
path = mixture.em_path(X, weights=[0.5, 0.5], means=[[0.60], [0.62]], covariances=[4e-4, 4e-4],
                       n_iter=run.budget(quick=60, full=300), covariance_type="spherical")
stepper, draw_em = widgets.em_stepper(X, crabs.bin_edges, crabs.count, path, xlim=(0.575, 0.70))
stepper

# %%
lls = [p["log_likelihood"] for p in path]
assert all(b >= a - 1e-12 for a, b in zip(lls, lls[1:]))
for it in (0, 5, len(path) - 1):
    draw_em(it)
    plt.show()

# %% [markdown]
# The slider's last frame is *not* the maximum-likelihood fit printed above: after these few
# iterations EM is still on its way, crawling along a direction in which the likelihood is nearly
# flat (the weights and widths trade off against each other). Your EM, run on from the slider's
# start, shows how far it still has to go and that it ends at the same optimum.

# %%
# NBVAL_CHECK_OUTPUT
last = path[-1]
with settings.cpu_float64():  # exact, in float64 on the CPU
    (w_long, mu_long, var_long), hist_long = run_em(
        x1, torch.tensor([0.5, 0.5], dtype=torch.float64), torch.tensor([0.60, 0.62], dtype=torch.float64),
        torch.tensor([4e-4, 4e-4], dtype=torch.float64), max_iter=run.budget(quick=20_000, full=50_000))
order_long = np.argsort(mu_long.numpy())
print(f"slider, after {len(path) - 1} iterations: weights {np.sort(last['weights'].numpy()).round(3)}, "
      f"log-likelihood {last['log_likelihood'] * len(X):.2f}")
print(f"your EM from the same start: {len(hist_long) - 1} iterations to converge, weights "
      f"{w_long.numpy()[order_long].round(3)}, log-likelihood {hist_long[-1]:.2f}")
print(f"maximum likelihood (above): weights {w2.round(3)}, log-likelihood {gm2.score(X) * len(X):.2f}")
assert abs(hist_long[-1] - gm2.score(X) * len(X)) < 1e-2

# %% [markdown]
# ## 4. How many components?
#
# The training log-likelihood always grows with more components, so it cannot choose $k$ by itself.
# Three honest judges:
#
# * **BIC** $= -2\log L + p\log n$ penalises the $p = 3k - 1$ parameters;
# * **held-out log-likelihood**: the §14.2 notion of generalisation, estimated by 5-fold cross-validation;
# * **Pearson's χ² test** (1900) of the fitted model's expected class counts against the observed ones.

# %%
ks = [1, 2, 3, 4]
fits = {k: GaussianMixture(k, reg_covar=0.0, tol=1e-6, max_iter=run.budget(quick=2000, full=5000),
                           n_init=run.budget(quick=2, full=10), random_state=run.seed).fit(X) for k in ks}
cv = KFold(5, shuffle=True, random_state=run.seed)
heldout = {k: cross_val_score(GaussianMixture(k, tol=1e-6, max_iter=1000, random_state=run.seed), X, cv=cv).mean()
           for k in ks}
chi2 = {k: metrics.chi_square_gof(crabs.count, np.diff(mixture.cdf_1d(
    open_edges, fits[k].weights_, fits[k].means_, fits[k].covariances_)), n_params=3 * k - 1) for k in ks}

# %%
# NBVAL_CHECK_OUTPUT
print(" k  train log-lik    BIC      held-out log-lik/crab   chi2 (dof)  p-value")
for k in ks:
    print(f" {k}  {fits[k].score(X) * len(X):10.2f}  {fits[k].bic(X):9.2f}   {heldout[k]:10.4f}"
          f"          {chi2[k]['statistic']:5.1f} ({chi2[k]['dof']})  {chi2[k]['p_value']:.4f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
axes[0].plot(ks, [fits[k].bic(X) for k in ks], "o-")
axes[0].set_xticks(ks)
axes[0].set_xlabel("components k")
axes[0].set_ylabel("BIC (lower is better)")
axes[0].set_title(f"BIC picks k = {min(ks, key=lambda k: fits[k].bic(X))}")
axes[1].plot(ks, [heldout[k] for k in ks], "o-", color="C2")
axes[1].set_xticks(ks)
axes[1].set_xlabel("components k")
axes[1].set_ylabel("held-out log-lik per crab")
axes[1].set_title("5-fold cross-validation")
plt.tight_layout()
plt.show()

# %% [markdown]
# BIC and the held-out likelihood both choose two components. The χ² test answers a different
# question, "is this model consistent with the counts?": it rejects one Gaussian and rejects none of
# $k = 2, 3, 4$, so it rules out $k = 1$ without choosing among the rest. Three or four components win
# a little training likelihood but no held-out likelihood worth the extra parameters.
#
# **Two maximised log-likelihoods for k = 2?** The table's $k = 2$ row is a little below the
# log-likelihood printed in section 3. Both are EM runs; the table's stops at `tol=1e-6` (gain per
# crab per iteration), section 3's at `1e-10`. On these crabs the likelihood is very flat near its
# maximum: quite different parameters score almost the same, so EM creeps and a loose tolerance stops
# it early. The cell below compares the two fits.

# %%
# NBVAL_CHECK_OUTPUT
loose = fits[2]
o = np.argsort(loose.means_[:, 0])
print(f"tol=1e-6 : weights {loose.weights_[o].round(4)}  means {loose.means_[o, 0].round(5)}  "
      f"sds {np.sqrt(loose.covariances_[o, 0, 0]).round(5)}  log-lik {loose.score(X) * len(X):.2f} "
      f"({loose.n_iter_} iterations)")
print(f"tol=1e-10: weights {w2.round(4)}  means {mu2.round(5)}  sds {sd2.round(5)}  "
      f"log-lik {gm2.score(X) * len(X):.2f} ({gm2.n_iter_} iterations)")
print(f"difference: {abs(gm2.score(X) - loose.score(X)) * len(X):.2f} nats for a weight change of "
      f"{abs(w2[0] - loose.weights_[o][0]):.3f}")
o = np.argsort(with_reg.means_[:, 0])
print(f"reg_covar=1e-6, tol=1e-10: weights {with_reg.weights_[o].round(4)}  log-lik {with_reg.score(X) * len(X):.2f} "
      f"({with_reg.n_iter_} iterations, converged)")
assert gm2.score(X) >= loose.score(X) and gm2.score(X) >= with_reg.score(X)
assert 0.01 < abs(with_reg.weights_[o][0] - w2[0]) < 0.05 and (gm2.score(X) - with_reg.score(X)) * len(X) < 0.1

# %% [markdown]
# The loose fit is not a different model, only an unfinished climb: a tenth of a nat for a
# weight change of several hundredths. The last line is a *converged* run of a slightly different
# objective: scikit-learn's default ridge `reg_covar=1e-6`, added to variances of about $3\cdot10^{-4}$
# and $1.6\cdot10^{-4}$, moves EM's fixed point along the same flat ridge, by about 0.02 in the weights
# and a few hundredths of a nat. (That fit is the one an older note in the data's provenance quoted.) The same flatness is why Pearson's moment estimates below land
# within a tenth of a nat of the maximum, and why the slider's run took so long. It also says how
# precisely the data pin down the mixture's parameters: not very.
#
# ## 5. The latent-variable view: $p(h, x)$ and $p(h \mid x)$
#
# The fitted mixture is a generative model: draw $h \sim \text{Categorical}(\rho)$, then
# $x \sim \mathcal N(\mu_h, \sigma_h^2)$. Going the other way, Bayes' rule gives the posterior
# $p(h \mid x)$, which your E-step computes; here it is on a grid of ratios.

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU
    resp = e_step(torch.as_tensor(grid), torch.as_tensor(w2), torch.as_tensor(mu2), torch.as_tensor(sd2 ** 2))
    # oracle: the library's posterior for the crabs equals scikit-learn's predict_proba
    ours = e_step(torch.as_tensor(X[:, 0]), torch.as_tensor(gm2.weights_), torch.as_tensor(gm2.means_[:, 0]),
                  torch.as_tensor(gm2.covariances_[:, 0, 0]))
    assert np.allclose(np.asarray(ours), ref.predict_proba(X), atol=1e-6)

fig, ax = plt.subplots(figsize=(6.5, 3))
ax.plot(grid, np.asarray(resp)[:, 0], label="p(h = 1 | x)  (smaller mean)")
ax.plot(grid, np.asarray(resp)[:, 1], label="p(h = 2 | x)")
ax.axvline(grid[np.argmin(np.abs(np.asarray(resp)[:, 0] - 0.5))], color="grey", ls=":", lw=1)
ax.set_xlabel("forehead breadth / body length")
ax.set_ylabel("posterior probability")
ax.set_title("Responsibilities: a soft assignment of each crab")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# **Why does $p(h = 1 \mid x)$ rise again on the right?** The log-odds of the two components are
#
# $$\log\frac{p(h=1\mid x)}{p(h=2\mid x)} = \log\frac{\rho_1\sigma_2}{\rho_2\sigma_1}
#   - \frac{(x-\mu_1)^2}{2\sigma_1^2} + \frac{(x-\mu_2)^2}{2\sigma_2^2},$$
#
# a parabola in $x$ whose $x^2$ coefficient $\tfrac12(1/\sigma_2^2 - 1/\sigma_1^2)$ is positive because
# component 2 is the narrower one. So the wide component wins both far tails: a Gaussian's density falls
# like $e^{-(x-\mu)^2/2\sigma^2}$, faster for smaller $\sigma$, and far enough to the right the narrow
# component's tail drops below the wide one's even on its own side. The posterior of component 1 is
# smallest at the parabola's vertex and climbs after it. It is the Gaussian shape speaking, not the data:
# the cell counts how few crabs lie where it happens.

# %%
# NBVAL_CHECK_OUTPUT
a2 = 0.5 * (1 / sd2[1] ** 2 - 1 / sd2[0] ** 2)                          # x² coefficient of the log-odds
a1 = mu2[0] / sd2[0] ** 2 - mu2[1] / sd2[1] ** 2
a0 = (np.log(w2[0] * sd2[1] / (w2[1] * sd2[0])) - mu2[0] ** 2 / (2 * sd2[0] ** 2)
      + mu2[1] ** 2 / (2 * sd2[1] ** 2))
vertex = -a1 / (2 * a2)                                                   # where p(h = 1 | x) is smallest
crossings = np.sort(np.roots([a2, a1, a0]).real)                          # where p(h = 1 | x) = 1/2
post1 = lambda x: 1 / (1 + np.exp(-(a2 * x ** 2 + a1 * x + a0)))
print(f"x² coefficient {a2:.0f} > 0 (sd {sd2[0]:.4f} vs {sd2[1]:.4f}); p(h = 1 | x) is smallest, "
      f"{post1(vertex):.3f}, at x = {vertex:.4f}")
print(f"p(h = 1 | x) = 1/2 at x = {crossings[0]:.4f} and again at x = {crossings[1]:.4f}; "
      f"largest crab {X.max():.4f}, p(h = 1 | largest crab) = {post1(X.max()):.3f}")
print(f"crabs right of the vertex: {(X[:, 0] > vertex).sum()} of {len(X)}")
assert a2 > 0 and abs(post1(grid) - np.asarray(resp)[:, 0]).max() < 1e-9   # the formula is the plotted curve
assert crossings[1] > X.max()

# %% [markdown]
# Sampling: 1000 synthetic crabs from the fitted $p(h, x)$, placed into Pearson's classes, against the
# real ones. The same χ² test scores the synthetic sample against the model it came from: a correct
# sampler must pass it.

# %%
sample, h = gm2.sample(len(X), generator=run.generator)
sample_counts, _ = np.histogram(np.clip(sample[:, 0], *crabs.bin_edges[[0, -1]] + [1e-9, -1e-9]),
                                bins=crabs.bin_edges)         # outer classes open-ended, as above
probs = np.diff(mixture.cdf_1d(open_edges, gm2.weights_, gm2.means_, gm2.covariances_))
sample_fit = metrics.chi_square_gof(sample_counts, probs, n_params=0)
print(f"share of samples from component with mean {gm2.means_[0, 0]:.4f}: {np.mean(h == 0):.3f} "
      f"(weight {gm2.weights_[0]:.3f}); chi2 p-value of the synthetic sample: {sample_fit['p_value']:.3f}")
assert sample_fit["p_value"] > 0.001

fig, ax = plt.subplots(figsize=(6.5, 3.2))
histogram(ax, "Real crabs and 1000 crabs sampled from p(h, x)")
ax.stairs(sample_counts / (len(X) * np.diff(crabs.bin_edges)), crabs.bin_edges, color="C1", lw=1.5,
          label="sampled from the mixture")
ax.legend(fontsize=8, loc="upper left")
plt.show()

# %% [markdown]
# ## 6. Pearson's own route: the method of moments
#
# Without computers Pearson could not maximise the likelihood. He matched the first five moments of
# the data with those of the mixture (five unknowns: $\rho_1, \mu_1, \mu_2, \sigma_1, \sigma_2$), which
# he reduced to a polynomial of degree nine. It had more than one admissible root; he kept the one whose
# *sixth* moment agreed best with the data. `moments.method_of_moments` solves the same five equations
# numerically from many starting points and ranks the admissible roots by the sixth moment.
#
# *Source:* K. Pearson, "Contributions to the mathematical theory of evolution", *Phil. Trans. R. Soc.
# Lond. A* 185 (1894) 71–110 (the five moment equations, the nonic, and the crab data).

# %%
mom = moments.method_of_moments(X[:, 0], n_starts=run.budget(quick=120, full=1000), seed=run.seed)
best = mom[0]
# oracle: the chosen root reproduces the first five sample moments exactly
raw = moments.mixture_raw_moments(best.weight, best.means, best.sds, 5)[1:]
sample_raw = np.array([np.mean(X[:, 0] ** k) for k in range(1, 6)])
assert np.allclose(raw, sample_raw, rtol=1e-8)

# %%
# NBVAL_CHECK_OUTPUT
print(f"{len(mom)} admissible roots; ranked by the sixth moment:")
for f in mom:
    print(f"  weights {f.weight:.4f}/{1 - f.weight:.4f}  means {f.means[0]:.5f}/{f.means[1]:.5f}  "
          f"sds {f.sds[0]:.5f}/{f.sds[1]:.5f}  sixth-moment error {f.sixth_moment_error:+.3f}")
print(f"EM (maximum likelihood): weights {w2[0]:.4f}/{w2[1]:.4f}  means {mu2[0]:.5f}/{mu2[1]:.5f}  "
      f"sds {sd2[0]:.5f}/{sd2[1]:.5f}")

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU
    mom_loglik = torch.logsumexp(mixture.log_gaussian(
        torch.as_tensor(X), torch.as_tensor(best.means[:, None]), torch.as_tensor(best.sds ** 2), "spherical")
        + torch.log(torch.tensor([best.weight, 1 - best.weight], dtype=torch.float64)), 1).sum().item()
    print(f"log-likelihood: method of moments {mom_loglik:.2f} <= maximum likelihood {gm2.score(X) * len(X):.2f}")
    assert mom_loglik <= gm2.score(X) * len(X) + 1e-9

fig, ax = plt.subplots(figsize=(6.5, 3.4))
histogram(ax, "Pearson's moments (1894) vs maximum likelihood (EM)")
ch14.mixture_density_1d(ax, grid, w2, mu2, sd2 ** 2, components=False, label="maximum likelihood (EM)")
ch14.mixture_density_1d(ax, grid, [best.weight, 1 - best.weight], best.means, best.sds ** 2,
                        components=False, label="method of moments", color="C0")
ax.legend(fontsize=8, loc="upper left")
plt.show()

# %% [markdown]
# The two routes agree to within a few thousandths. The moment fit has, by construction, a lower
# likelihood; it is also less efficient (higher moments are noisy estimates), which is why maximum
# likelihood replaced it.
#
# ## 7. A mixture where the hidden label is known: Leptograpsus crabs
#
# Campbell and Mahon measured five body dimensions (mm) of 200 rock crabs: 50 of each species
# (blue, orange) and sex. Here we know $h$, so we can score how well an unsupervised mixture recovers it.
# We work with log measurements, so that a crab twice as large is a shift, not a stretch.

# %%
lepto = data.load_leptograpsus_crabs(log=True)
XL = lepto.data
fit_raw = GaussianMixture(4, n_init=run.budget(quick=5, full=20), tol=1e-6, max_iter=1000,
                          random_state=run.seed).fit(XL)
bic_by_k = {k: GaussianMixture(k, n_init=run.budget(quick=3, full=10), random_state=run.seed).fit(XL).bic(XL)
            for k in range(1, 6)}
print("BIC on log sizes by k:", {k: round(v, 1) for k, v in bic_by_k.items()})

# %% [markdown]
# BIC picks a single component on the log measurements: the five sizes are dominated by one factor,
# overall size (young and old crabs of all four groups), and the groups differ in *shape*. Subtracting the
# log carapace length turns each crab into four log ratios, a size-free description of shape.

# %%
shape = np.delete(XL - XL[:, [2]], 2, axis=1)   # log(FL/CL), log(RW/CL), log(CW/CL), log(BD/CL)
fit_shape = GaussianMixture(4, n_init=run.budget(quick=5, full=20), tol=1e-6, max_iter=1000,
                            random_state=run.seed).fit(shape)
labels_raw, labels_shape = fit_raw.predict(XL), fit_shape.predict(shape)

# %%
# NBVAL_CHECK_OUTPUT
for name, lab in [("log sizes  ", labels_raw), ("log ratios ", labels_shape)]:
    print(f"{name}: adjusted Rand index vs species×sex {adjusted_rand_score(lepto.group, lab):.3f}, "
          f"vs species {adjusted_rand_score(lepto.species, lab):.3f}, vs sex {adjusted_rand_score(lepto.sex, lab):.3f}")
table = np.zeros((4, 4), int)
np.add.at(table, (lepto.group, labels_shape), 1)
print("\nconfusion (rows: true group, columns: mixture component), log ratios:")
print("                 " + "  ".join(f"c{j}" for j in range(4)))
for g, name in enumerate(lepto.group_names):
    print(f"{name:>15}  " + "  ".join(f"{n:2d}" for n in table[g]))

# %%
pcs = PCA(2).fit_transform(shape)
# each component gets the colour of the group it overlaps most (a one-to-one matching of the table)
comp_rows, comp_cols = linear_sum_assignment(-table)
group_of = dict(zip(comp_cols, comp_rows))        # component -> matched true group
colours = ["#1f77b4", "#6baed6", "#e6550d", "#fdae6b"]
markers = ["o", "s", "^", "D"]
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True, sharey=True)
for g, name in enumerate(lepto.group_names):
    sel = lepto.group == g
    axes[0].scatter(pcs[sel, 0], pcs[sel, 1], s=14, marker=markers[g], label=name, color=colours[g])
for c in range(4):
    sel = labels_shape == c
    g = group_of[c]
    axes[1].scatter(pcs[sel, 0], pcs[sel, 1], s=14, marker=markers[g], color=colours[g],
                    label=f"component {c} (≈ {lepto.group_names[g]})")
axes[0].set_title("true species × sex")
axes[1].set_title(f"mixture components (ARI {adjusted_rand_score(lepto.group, labels_shape):.2f})")
for ax in axes:
    ax.set_xlabel("shape PC 1")
    ax.legend(fontsize=7)
axes[0].set_ylabel("shape PC 2")
plt.tight_layout()
plt.show()

# %% [markdown]
# On log sizes the four components follow species fairly well but ignore sex entirely (adjusted Rand
# index with sex ≈ 0); on size-free shape the mixture recovers the four species × sex groups much
# better (ARI 0.76, the table above), the remaining confusion being mostly blue males placed with
# blue females. Note that a Rand index says how well clusters *match* the labels, not that the model
# "knows" species: it found whichever structure dominates the representation it was given, a theme that
# returns with the VAE in §14.5.
#
# ## Summary
# * Density estimation fits $p_\theta(x)$ to unlabeled data by maximum likelihood (eq. 14.2).
# * A single Gaussian has a closed-form fit, but Pearson's crabs reject it (χ² p < 0.001).
# * A two-component mixture, a latent-variable model $p_\theta(h, x)$, fits; your EM (your E- and
#   M-steps) raises the log-likelihood at every iteration and reaches the same maximum as the
#   library's and scikit-learn's.
# * BIC and held-out likelihood choose two components; the χ² test rejects one component and
#   accepts two (and three, and four): it checks a fit, it does not choose $k$.
# * The likelihood is flat near its maximum: a loosely converged EM, or Pearson's moments, land within
#   a tenth of a nat with visibly different parameters.
# * Pearson's method of moments lands close to maximum likelihood, with a lower likelihood.
# * On five-dimensional crabs, how well the hidden label is recovered depends on the representation.
#
# Next, §14.2: why maximising likelihood means minimising a KL divergence.

# %% [markdown]
# Your exercises in this lesson, as the autograder last saw them:

# %%
from companion_lib.grading import progress

progress("14.1")
