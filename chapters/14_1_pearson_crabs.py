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
# Two exercises are autograded (the closed-form Gaussian fit and the E-step). Everything runs on the
# CPU in under a minute; `companion_lib` does the computing, in PyTorch.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import KFold, cross_val_score

from companion_lib import data, metrics, mixture, moments, plots, settings, widgets
from companion_lib.grading import check
from companion_lib.mixture import GaussianMixture

run = settings.setup(seed=0)

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
# the ELBO of Lemma 14.4.1). We fit with `reg_covar=0`: scikit-learn's default adds $10^{-6}$ to every
# variance, which makes the M-step inexact and lets the log-likelihood dip by ~$10^{-7}$ per crab late
# in the run (we show this below). The tolerance is tiny because EM crawls on this data set.

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

# %% [markdown]
# **Oracle.** scikit-learn's own `GaussianMixture`, from the same k-means initialisation, must reach the
# same log-likelihood per crab.

# %%
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

ref = SklearnGaussianMixture(2, reg_covar=0.0, tol=1e-10, max_iter=5000, random_state=run.seed).fit(X)
gap = abs(ref.score(X) - gm2.score(X))
print(f"|ours - scikit-learn| = {gap:.1e} nats per crab")
assert gap < 1e-6

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.4))
histogram(ax, "One Gaussian vs a two-component mixture")
plots.mixture_density_1d(ax, grid, w2, mu2, sd2 ** 2, label="2-component mixture (EM)")
ax.plot(grid, np.exp(one.score_samples(grid[:, None])), color="k", ls=":", lw=1.5, label="one Gaussian")
ax.legend(fontsize=8, loc="upper left")
plt.show()

# %% [markdown]
# ### The log-likelihood per EM iteration
# `log_likelihood_history_` holds the mean log-likelihood at the start of every iteration. With
# `reg_covar=0` it never decreases; with scikit-learn's default `reg_covar=1e-6` it does dip a little.

# %%
hist = np.array(gm2.log_likelihood_history_)
assert np.all(np.diff(hist) >= -1e-12), "EM decreased the likelihood"
with_reg = GaussianMixture(2, reg_covar=1e-6, tol=1e-10, max_iter=5000, random_state=run.seed).fit(X)
dips = np.diff(with_reg.log_likelihood_history_)
print(f"reg_covar=0:    smallest step {np.diff(hist).min():+.1e} (never down)")
print(f"reg_covar=1e-6: smallest step {dips.min():+.1e} ({(dips < 0).sum()} steps down)")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
axes[0].plot(np.arange(1, len(hist) + 1), hist * len(X))
axes[0].set_xscale("log")
axes[0].set_xlabel("EM iteration")
axes[0].set_ylabel("log-likelihood (14.2)")
axes[0].set_title("EM climbs fast, then crawls")
axes[1].plot(np.arange(2, len(hist) + 1), np.diff(hist) * len(X))
axes[1].set_xscale("log")
axes[1].set_yscale("log")
axes[1].set_xlabel("EM iteration")
axes[1].set_ylabel("gain over previous iteration")
axes[1].set_title("every step is an improvement (reg_covar = 0)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Step through EM yourself
# The slider below replays EM from a deliberately poor start (both means low, equal widths). Drag it
# and watch the two components separate. The static figure after it shows three moments of the same run.

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
axes[0].set_xlabel("components k")
axes[0].set_ylabel("BIC (lower is better)")
axes[0].set_title(f"BIC picks k = {min(ks, key=lambda k: fits[k].bic(X))}")
axes[1].plot(ks, [heldout[k] for k in ks], "o-", color="C2")
axes[1].set_xlabel("components k")
axes[1].set_ylabel("held-out log-lik per crab")
axes[1].set_title("5-fold cross-validation")
plt.tight_layout()
plt.show()

# %% [markdown]
# One Gaussian is rejected by the χ² test; two components fit within sampling error, and BIC prefers
# two. Three or four components win a little training likelihood but no held-out likelihood worth the
# extra parameters.
#
# ## 5. The latent-variable view: $p(h, x)$ and $p(h \mid x)$
#
# The fitted mixture is a generative model: draw $h \sim \text{Categorical}(\rho)$, then
# $x \sim \mathcal N(\mu_h, \sigma_h^2)$. Going the other way, Bayes' rule gives the posterior
# $p(h \mid x)$, which the E-step computes.
#
# **Exercise 14.1.b** Write `e_step(x, weights, means, variances)`: `x` of shape `(n,)`, the rest `(K,)`;
# return the `(n, K)` matrix $p(h = k \mid x_i)$. Work in log space.

# %%
def e_step(x, weights, means, variances):
    """Responsibilities p(h = k | x_i) of a 1-D Gaussian mixture: (n,) and (K,) inputs -> (n, K)."""
    # YOUR CODE HERE
    raise NotImplementedError


result = check("14.1.e_step", e_step)
result

# %%
e_step = result.or_reference()

# %%
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
mom_loglik = torch.logsumexp(mixture.log_gaussian(
    torch.as_tensor(X), torch.as_tensor(best.means[:, None]), torch.as_tensor(best.sds ** 2), "spherical")
    + torch.log(torch.tensor([best.weight, 1 - best.weight], dtype=torch.float64)), 1).sum().item()
print(f"log-likelihood: method of moments {mom_loglik:.2f} <= maximum likelihood {gm2.score(X) * len(X):.2f}")
assert mom_loglik <= gm2.score(X) * len(X) + 1e-9

fig, ax = plt.subplots(figsize=(6.5, 3.4))
histogram(ax, "Pearson's moments (1894) vs maximum likelihood (EM)")
plots.mixture_density_1d(ax, grid, w2, mu2, sd2 ** 2, components=False, label="maximum likelihood (EM)")
plots.mixture_density_1d(ax, grid, [best.weight, 1 - best.weight], best.means, best.sds ** 2,
                         components=False, label="method of moments", color="C0")
ax.legend(fontsize=8, loc="upper left")
plt.show()

# %% [markdown]
# The two routes agree to within a few thousandths. The moment fit has, by construction, a lower
# likelihood; it is also less efficient (higher moments are noisy estimates), which is why maximum
# likelihood replaced it. Pearson's published values differ slightly from both because he applied
# Sheppard's corrections for the grouping into classes.
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
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True, sharey=True)
markers = ["o", "s", "^", "D"]
for g, name in enumerate(lepto.group_names):
    sel = lepto.group == g
    axes[0].scatter(pcs[sel, 0], pcs[sel, 1], s=14, marker=markers[g], label=name,
                    color=["#1f77b4", "#6baed6", "#e6550d", "#fdae6b"][g])
for c in range(4):
    sel = labels_shape == c
    axes[1].scatter(pcs[sel, 0], pcs[sel, 1], s=14, color=f"C{c + 4}", label=f"component {c}")
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
# "knows" species: it found whichever structure dominates the representation it was given. Which structure a density model finds depends on
# the representation it is given, a theme that returns with the VAE in §14.5.
#
# ## Summary
# * Density estimation fits $p_\theta(x)$ to unlabeled data by maximum likelihood (eq. 14.2).
# * A single Gaussian has a closed-form fit, but Pearson's crabs reject it (χ² p < 0.001).
# * A two-component mixture, a latent-variable model $p_\theta(h, x)$, fits; EM raises the
#   log-likelihood at every iteration (exactly so with `reg_covar=0`), and our PyTorch EM matches
#   scikit-learn to within $10^{-6}$ nats per crab.
# * BIC, held-out likelihood and the χ² test all choose two components.
# * Pearson's method of moments lands close to maximum likelihood, with a lower likelihood.
# * On five-dimensional crabs, how well the hidden label is recovered depends on the representation.
#
# Next, §14.2: why maximising likelihood means minimising a KL divergence.
