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
# # §14.3 Energy-based models: the landscape, the partition function, and the score
#
# Section 14.3 describes a model by one scalar function, the **energy** $E$: low where data are
# plausible, high elsewhere. The Gibbs–Boltzmann distribution (eq. 14.3) turns it into probabilities,
# $P = e^{-E}/Z$, and the trouble is all in $Z$. In this lesson we
#
# 1. write an energy on $\mathbb{R}^2$, compute $Z$ by quadrature, and check it against closed forms;
# 2. measure what the same quadrature costs as the dimension grows, and why 64 pixels are already out of reach;
# 3. compute the **score** $-\nabla_x E$ (eq. 15.1) by autograd and see that $Z$ never enters it;
# 4. **sample** with nothing but the score (Langevin dynamics) and measure how close we get to $P$;
# 5. **learn** an energy network from 2-D data by denoising score matching, score it on held-out data, see
#    where it puts the mass, and compare it with maximum likelihood (exact on a grid, and by contrastive divergence);
# 6. play the section's image/caption story in miniature with a joint energy $E(x, h)$ and a discrete $h$.
#
# **Needs:** §14.1 (mixtures, responsibilities), a little multivariable calculus. Runs in well under a
# minute on a laptop CPU in quick mode.

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

from companion_lib import data, ebm, settings, training
from companion_lib.viz import ch14, widgets
from companion_lib.grading import check
from companion_lib.mixture import GaussianMixture

run = settings.setup(seed=0, notebook="14_3_energy_based_models")

# %% [markdown]
# ## 1. An energy and its Gibbs distribution
#
# Any function $E:\mathbb{R}^d\to\mathbb{R}$ with $\int e^{-E} < \infty$ defines a density
# $$P(x) = \frac{e^{-E(x)}}{Z}, \qquad Z = \int e^{-E(x')}\,dx' \qquad\text{(eq. 14.3)}.$$
# In two dimensions we can simply *compute* $Z$: lay a $k\times k$ grid over a box that holds
# essentially all the mass and add up $e^{-E}$ times the cell area (the midpoint rule).
#
# First a case with a known answer. A quadratic energy $E(x) = \tfrac12 x^\top A x$ is a Gaussian in
# disguise, so $Z = 2\pi/\sqrt{\det A}$.

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    A = torch.tensor([[2.0, 0.6], [0.6, 1.0]], dtype=torch.float64)
    log_Z_grid = ebm.log_partition_grid(lambda x: ebm.quadratic_energy(x, A), d=2, lim=6.0, k=200)
    log_Z_exact = ebm.quadratic_log_partition(A)
    print(f"quadratic energy: log Z by a 200x200 grid = {log_Z_grid:.8f}, closed form = {log_Z_exact:.8f}, "
          f"|difference| = {abs(log_Z_grid - log_Z_exact):.1e}")
    assert abs(log_Z_grid - log_Z_exact) < 1e-6

# %% [markdown]
# Now the energy we keep for the rest of the lesson: three valleys of different depth and width,
# $$E(x) = -\log \sum_{k=1}^{3} \rho_k\, \mathcal N(x;\mu_k,\sigma_k^2 I) + c .$$
# The mixture part is normalised, so the constant $c$ decides $Z$ exactly: $Z = e^{-c}$. We take
# $c = 2$ and let the grid find it.

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    W = torch.tensor([0.3, 0.3, 0.4], dtype=torch.float64)                # ρ_k
    MU = torch.tensor([[-1.0, -0.5], [1.0, -0.5], [0.0, 0.9]], dtype=torch.float64)
    VAR = torch.tensor([0.25, 0.15, 0.2], dtype=torch.float64)            # σ_k²
    C = 2.0


    def energy(x):
        """The lesson's energy: x (n, 2) -> (n,)."""
        return ebm.gmm_energy(x, W, MU, VAR) + C


    LIM = 3.5
    log_p, centres, log_Z = ebm.grid_log_density(energy, lim=LIM, k=200)

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    print(f"log Z on the grid = {log_Z:.6f}; closed form -c = {-C:.6f}")
    print(f"grid density integrates to {float(log_p.exp().sum()) * (2 * LIM / 200) ** 2:.6f}")
    assert abs(log_Z + C) < 1e-5

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    pts, _, _ = ebm.grid_2d(LIM, 200)
    ch14.energy_and_density(centres, energy(pts).reshape(200, 200), log_p,
                            title="three valleys: the energy and the distribution it defines")
    plt.tight_layout()
    plt.show()

# %% [markdown]
# ## 2. The cost of $Z$ as the dimension grows
#
# The grid that was instant in 2-D needs $k^d$ evaluations in $d$ dimensions. We time the same
# midpoint rule on the standard Gaussian energy $E(x) = \|x\|^2/2$ (where $\log Z = \tfrac d2\log 2\pi$,
# so we also see that the answer is right), with $k = 16$ points per axis, evaluated in chunks so that
# memory stays bounded; the column "memory" is what holding all grid points at once would take.

# %%
K_AXIS = 16
dims = list(range(1, run.budget(quick=6, full=7) + 1))
rows = []
for d in dims:
    start = time.perf_counter()
    lz = ebm.log_partition_grid(lambda x: 0.5 * (x ** 2).sum(1), d=d, lim=5.0, k=K_AXIS)
    seconds = time.perf_counter() - start
    rows.append((d, K_AXIS ** d, seconds, K_AXIS ** d * d * 8, lz - 0.5 * d * math.log(2 * math.pi)))
print(f"{'d':>2} {'points':>12} {'seconds':>9} {'memory':>10} {'error in log Z':>15}")
for d, n, s, mem, err in rows:
    print(f"{d:>2} {n:>12,} {s:>9.4f} {mem / 2**20:>8.1f} MB {err:>15.2e}")

# %% [markdown]
# The error column is tiny: the quadrature is *accurate*. It is only the *cost* that explodes.
# Extrapolate the time per point measured at the largest $d$ (a generous assumption: the energy of a
# real model costs far more than $\|x\|^2/2$):

# %%
per_point = rows[-1][2] / rows[-1][1]
YEAR = 3600 * 24 * 365
for d, what in ((8, "8 dimensions"), (12, "12 dimensions"), (64, "8x8 digits"), (10 ** 6, "a megapixel image")):
    log10_points = d * math.log10(K_AXIS)
    log10_seconds = log10_points + math.log10(per_point)
    if log10_seconds < 5:
        took = f"about {10 ** log10_seconds:,.0f} seconds"
    elif log10_seconds < 9:
        took = f"about {10 ** log10_seconds / 86400:,.0f} days"
    else:
        took = f"about 10^{log10_seconds - math.log10(YEAR):,.0f} years"
    print(f"{what:>18}: 16^{d} = 10^{log10_points:,.0f} points, {took}")

fig, ax = plt.subplots(figsize=(6.5, 3.8))
d_all = np.arange(1, 65)
ax.semilogy(d_all, float(K_AXIS) ** d_all * per_point, ls="--", color="grey",
            label=f"extrapolated: {K_AXIS}$^d$ × {per_point * 1e9:.0f} ns")
ax.semilogy([r[0] for r in rows], [r[2] for r in rows], "o", color="tab:red", label="measured")
for seconds, name in ((1, "1 second"), (YEAR, "1 year"), (4.35e17, "age of the universe")):
    ax.axhline(seconds, color="tab:blue", lw=0.8)
    ax.text(64, seconds * 2, name, ha="right", fontsize=8, color="tab:blue")
ax.axvline(64, color="k", lw=0.8)
ax.text(63, 1e-5, "8×8 digits (d = 64)", ha="right", fontsize=8)
ax.set_xlabel("dimension d")
ax.set_ylabel("seconds to compute Z on a grid")
ax.set_title(f"the partition function by quadrature: {K_AXIS} points per axis")
ax.legend(fontsize=8, loc="center right")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3. The score does not need $Z$
#
# $\log P(x) = -E(x) - \log Z$, and $\log Z$ is a constant, so its gradient vanishes:
# $$s(x) = \nabla_x \log P(x) = -\nabla_x E(x) \qquad\text{(eq. 15.1)}.$$
# Autograd gives the score of any energy written in torch. Two checks: shifting $E$ by a constant
# (which multiplies $Z$ by $e^{-\text{const}}$) leaves the score exactly unchanged, and autograd agrees
# with the closed form $-\nabla E(x) = \sum_k r_k(x)\,(\mu_k - x)/\sigma_k^2$, where $r_k(x)$ are the
# responsibilities of §14.1.

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    g = torch.Generator().manual_seed(1)
    x_test = torch.randn(1000, 2, generator=g, dtype=torch.float64) * 1.5
    s_autograd = ebm.score(energy, x_test)
    s_shifted = ebm.score(lambda x: energy(x) + 10.0, x_test)          # Z becomes e^-10 times smaller
    s_analytic = ebm.gmm_score(x_test, W, MU, VAR)
    print("max |score(E) - score(E + 10)|   =", float((s_autograd - s_shifted).abs().max()))
    print("max |autograd - closed form| < 1e-12:", float((s_autograd - s_analytic).abs().max()) < 1e-12)
    assert torch.equal(s_autograd, s_shifted)
    assert torch.allclose(s_autograd, s_analytic, atol=1e-10)

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    q_pts, _, _ = ebm.grid_2d(LIM, 22)
    ch14.score_field(centres, log_p, q_pts, ebm.score(energy, q_pts),
                     title="the score $-\\nabla E$ points uphill in probability, into the valleys")
    plt.show()

# %% [markdown]
# ### Exercise 1: the score of a mixture energy
#
# Write the closed form yourself. The responsibilities need each component's *normalised* Gaussian
# density, including its $(2\pi\sigma_k^2)^{-d/2}$ factor, because the components have different widths.

# %%
def gmm_score(x, weights, means, variances):
    """Score -∇E(x) of E(x) = -log Σ_k ρ_k N(x; μ_k, σ_k² I).

    x (n, 2), weights (K,), means (K, 2), variances (K,) -> (n, 2).
    """
    # YOUR CODE HERE
    raise NotImplementedError


result = check("14.3.gmm_score", gmm_score)
result

# %%
gmm_score = result.or_reference()

# %% [markdown]
# ## 4. Sampling with only the score: Langevin dynamics
#
# The unadjusted Langevin algorithm moves each of many chains by
# $$x \leftarrow x + \tfrac{\eta}{2}\, s(x) + \sqrt{\eta}\,\xi,\qquad \xi\sim\mathcal N(0, I):$$
# a step up the log-density plus just enough noise. As $\eta\to 0$ and the number of steps grows, the
# chains' distribution approaches $P = e^{-E}/Z$, and $Z$ was never needed. With $\eta > 0$ it
# converges to a slightly wrong (too wide) distribution: the bias we will measure.
#
# ### Exercise 2: one Langevin step
#
# The noise $\xi$ is handed to you so that the answer is deterministic.

# %%
def langevin_step(x, score, step_size, noise):
    """x, score, noise: (n, 2) tensors (score = -∇E at x, noise ξ ~ N(0, I)); step_size η > 0.
    Returns the (n, 2) positions after one unadjusted Langevin step of size η, as defined above."""
    # YOUR CODE HERE
    raise NotImplementedError


result = check("14.3.langevin_step", langevin_step)
result

# %%
langevin_step = result.or_reference()

# %% [markdown]
# Your step (or the reference) and the library's `ebm.langevin` must produce the same chains when they
# draw the same noise:

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    x0 = torch.randn(500, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 1.5
    x_mine = x0
    for _ in range(50):
        xi = torch.randn(x_mine.shape, generator=g1, dtype=x_mine.dtype)
        x_mine = langevin_step(x_mine, gmm_score(x_mine, W, MU, VAR), 0.05, xi)
    x_lib = ebm.langevin(lambda x: ebm.gmm_score(x, W, MU, VAR), x0, 0.05, 50, generator=g2)
    print(f"largest difference after 50 steps: {float((x_mine - x_lib).abs().max()):.1e}")
    assert torch.allclose(x_mine, x_lib, atol=1e-10)

# %% [markdown]
# ### How close do the chains get?
#
# We run many chains from a broad Gaussian start, bin them on a $30\times30$ grid, and compare with the
# exact probability of each bin (from the quadrature of §1) by the **total-variation distance**
# $\mathrm{TV} = \tfrac12\sum_{\text{bins}}|p - q|$. A finite sample never reaches 0, so the floor to
# beat is the TV of the same number of *exact* samples of the mixture.

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    N_CHAINS = run.budget(quick=8000, full=50000)
    BINS = 30
    STEPS = run.budget(quick=300, full=1000)
    RECORD = (0, 10, 30, 100, 300, 1000)
    exact_bins = ebm.binned_probabilities(energy, lim=LIM, bins=BINS)
    g = torch.Generator().manual_seed(11)
    floor = ebm.total_variation(ebm.histogram_2d(ebm.gmm_sample(N_CHAINS, W, MU, VAR, g), LIM, BINS), exact_bins)
    start_points = torch.randn(N_CHAINS, 2, generator=g, dtype=torch.float64) * 1.5
    tv = {}
    for eta in (0.2, 0.05, 0.01):
        kept = ebm.langevin(lambda x: ebm.gmm_score(x, W, MU, VAR), start_points, eta, STEPS,
                            generator=torch.Generator().manual_seed(12), record=RECORD)
        tv[eta] = {t: ebm.total_variation(ebm.histogram_2d(x, LIM, BINS), exact_bins) for t, x in kept.items()}

# %%
print(f"{N_CHAINS} chains; TV of {N_CHAINS} exact samples (the floor): {floor:.3f}")
steps_shown = sorted(tv[0.2])
print("   η   " + "".join(f"{t:>8}" for t in steps_shown) + "   (steps)")
for eta, row in tv.items():
    print(f"{eta:5.2f}  " + "".join(f"{row[t]:8.3f}" for t in steps_shown))
assert tv[0.01][STEPS] < tv[0.01][10] and tv[0.01][STEPS] < 1.6 * floor
assert tv[0.2][STEPS] > 1.5 * tv[0.01][STEPS]       # a big step has a visible bias

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for eta, row in tv.items():
    ax.plot(list(row)[1:], list(row.values())[1:], "o-", label=f"η = {eta}")
ax.axhline(floor, color="k", ls=":", label=f"floor: {N_CHAINS} exact samples")
ax.set_xscale("log")
ax.set_xlabel("Langevin steps")
ax.set_ylabel("total-variation distance to P")
ax.set_title("Langevin chains approach P; a large η stalls above the floor (bias)")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Small steps are accurate but slow; a big step mixes fast and then stalls, because the unadjusted
# chain's stationary distribution is not exactly $P$ (a Metropolis correction would remove that bias).
# Move the sliders to see it: the histogram of the chains on the left, the exact $P$ on the right.

# %%
ui, draw_langevin = widgets.langevin_explorer(
    lambda x: ebm.gmm_score(x, W, MU, VAR), start_points[:4000], exact_bins, LIM,
    step_size=0.05, n_steps=100, seed=5)
display(ui)

# %%
_ = draw_langevin(0.05, 100)       # the same figure, drawn once without a slider

# %% [markdown]
# ## 5. Learning an energy from data
#
# Now the energy is unknown: we have samples from two moons and want $E_\theta$ such that
# $e^{-E_\theta}/Z$ fits them. Maximum likelihood would need $\nabla_\theta \log Z$, i.e. samples
# from the model at every step. **Denoising score matching** avoids $Z$ altogether: perturb a data
# point, $\tilde x = x + \sigma\varepsilon$, and ask the model's score to point back,
# $$\min_\theta\ \mathbb E\,\tfrac12\big\|\sigma\, s_\theta(\tilde x) + \varepsilon\big\|^2,
# \qquad s_\theta = -\nabla_x E_\theta \text{ (autograd, with create\_graph so we can differentiate again)}.$$
# Its minimiser is the score of the data blurred by $\mathcal N(0,\sigma^2 I)$ (this is the idea §15.3
# builds on). The network is a small SiLU MLP; a weak $\|x\|^2$ term keeps $e^{-E_\theta}$ integrable.
# *Sources:* score matching, A. Hyvärinen, *JMLR* 6 (2005) 695–709; this denoising form and its
# minimiser, P. Vincent, *Neural Computation* 23 (2011) 1661–1674.
#
# ### Exercise 3: the denoising score-matching loss
#
# Write the loss above for a batch. Two details are part of the contract, so that the check can
# compare your loss with the reference on fixed weights: draw the noise **once**, as
# `eps = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)`; and keep the loss
# differentiable in the network's weights (the check also compares its gradient in every weight, which
# is what training uses). The energy network of this section then trains with your loss.

# %%
def dsm_loss(energy_fn, x, sigma, generator):
    """energy_fn: (n, 2) -> (n,) energies E_theta; x (n, 2) data; sigma > 0; generator for the noise.
    Returns a scalar tensor: the denoising score-matching loss of the formula above, differentiable in theta."""
    # YOUR CODE HERE
    raise NotImplementedError


result = check("14.3.dsm_loss", dsm_loss)
result

# %%
dsm_loss = result.or_reference()

# %% [markdown]
# Because we are in 2-D we *can* normalise $e^{-E_\theta}$ on a grid, which gives an honest held-out
# log-likelihood: we use it on the validation split to pick the best step (early stopping) and on the
# test split to compare with Gaussian mixtures fitted by EM.

# %%
X = data.make_toy_2d("moons", 3000, seed=0).to(run.device)
X_fit, X_val, X_test = X[:2000], X[2000:2500], X[2500:]
SIGMA = 0.07
torch.manual_seed(0)
energy_net = ebm.EnergyMLP(dim=2, hidden=128, depth=3).to(run.device)
g_train = torch.Generator().manual_seed(2)


def dsm(model, batch):            # your loss (or the reference, if the check above did not pass)
    return dsm_loss(model, batch, SIGMA, g_train)


def val_nll(model, x):
    with settings.cpu_float64():  # the grid quadrature is exact, in float64 on the CPU
        return -float(ebm.grid_log_likelihood(model, x, lim=3.0, k=150).mean())


fit = training.train(energy_net, dsm, X_fit, steps=run.budget(quick=1500, full=8000), val_data=X_val,
                     val_fn=val_nll, batch_size=256, lr=3e-3, cosine=True, eval_every=100,
                     generator=g_train, desc="denoising score matching")
print(f"best validation NLL {fit.best_val:.3f} nats at step {fit.best_step} ({fit.seconds:.1f} s)")

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    nll_ebm = -float(ebm.grid_log_likelihood(energy_net, X_test, lim=3.0, k=300).mean())
    baselines = {}
    for k in (1, 8):
        gm = GaussianMixture(k, random_state=0).fit(X_fit.double().cpu().numpy())
        baselines[k] = (-gm.score(X_test.double().cpu().numpy()), gm)

g = torch.Generator().manual_seed(4)
chains = ebm.langevin(lambda x: ebm.score(energy_net, x), (torch.randn(2000, 2, generator=g) * 1.5).to(run.device),
                      0.01, run.budget(quick=300, full=1000), generator=g)


def near_data(x, radius=0.15):
    """Share of points within `radius` of some training point."""
    x = x.float().to(run.device)
    return float((torch.cdist(x, X_fit.float()).min(1).values < radius).float().mean())


gauss_samples = torch.as_tensor(baselines[1][1].sample(2000, generator=g)[0], dtype=torch.float32)
print("held-out negative log-likelihood (nats per point, lower is better):")
print(f"  energy network (grid-normalised) {nll_ebm:.3f}")
print(f"  one Gaussian                     {baselines[1][0]:.3f}")
print(f"  Gaussian mixture, 8 components   {baselines[8][0]:.3f}  (energy network - mixture: "
  f"{nll_ebm - baselines[8][0]:+.3f})")
print(f"share of samples within 0.15 of a training point: Langevin on E_θ {near_data(chains):.3f}, "
      f"one Gaussian {near_data(gauss_samples):.3f}, held-out data {near_data(X_test):.3f}")
assert nll_ebm < baselines[1][0] - 1.0, "the learned energy should beat one Gaussian by a wide margin"
assert near_data(chains) > 0.85

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    log_p_net, c_net, _ = ebm.grid_log_density(energy_net, lim=3.0, k=200, device=run.device)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.3))
    axes[0].plot(fit.history["step"], fit.history["train"], color="C0")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("DSM loss (running mean; no unit of likelihood)", color="C0")
    val_ax = axes[0].twinx()
    val_ax.plot(fit.history["step"], fit.history["val"], "o-", ms=3, color="C3")
    val_ax.axvline(fit.best_step, color="grey", ls=":", lw=1)
    val_ax.set_ylabel("validation NLL (nats per point, Z on the grid)", color="C3")
    axes[0].set_title("training: the loss it minimises, and the likelihood it is judged by", fontsize=10)
    im = axes[1].imshow(log_p_net.exp().cpu(), origin="lower", extent=(-3, 3, -3, 3), cmap="magma")
    plt.colorbar(im, ax=axes[1], fraction=0.046)
    axes[1].set_title("learned density $e^{-E_\\theta}/Z$ (Z on the grid)", fontsize=10)
    axes[1].set_xlabel("$x_1$")
    axes[1].set_ylabel("$x_2$")
    ch14.samples_vs_density(c_net, log_p_net, chains, ax=axes[2], data=X_test,
                            title="Langevin samples from $E_\\theta$ over held-out data")
    plt.tight_layout()
    plt.show()

# %% [markdown]
# The learned landscape has two curved valleys where the moons are. Its held-out likelihood is far
# better than one Gaussian's and a little worse than an 8-component mixture fitted by EM (the gap is
# printed above), and the Langevin samples sit on the moons. Two caveats: the model learns the score of
# the *blurred* data (so it is a little too wide), and away from the data denoising score matching
# barely constrains $E_\theta$, which is why chains started far away can linger in shallow basins.
# A third one is hidden by the picture: how much mass each moon gets.
#
# ### Where the mass goes: the two moons' weights
#
# Split the plane between the moons (each point goes to the nearer of the two noiseless arcs,
# `data.nearest_moon`) and add up the grid-normalised density of $E_\theta$ over each half
# (`ebm.region_masses`). Beside it: the data's share, the share of the lesson's short chains, and the
# share of chains run much longer (every chain's moon recorded along the way).

# %%
LONG = run.budget(quick=3000, full=5000)
N_LONG = run.budget(quick=500, full=2000)
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    data_share = (data.nearest_moon(X_test).bincount(minlength=2).double() / len(X_test)).tolist()
    mass_dsm = ebm.region_masses(energy_net, data.nearest_moon, 2, lim=3.0, k=200, device=run.device).tolist()


def moon_share(x):
    """Share of the points x (n, 2) nearer each moon: (upper, lower)."""
    with settings.cpu_float64():
        return (data.nearest_moon(x.cpu()).bincount(minlength=2).double() / len(x)).tolist()


g = torch.Generator().manual_seed(5)
long_run = ebm.langevin(lambda x: ebm.score(energy_net, x),
                        (torch.randn(N_LONG, 2, generator=g) * 1.5).to(run.device), 0.01, LONG,
                        generator=g, record=(100, 300, 1000, 2000, 3000, 5000))
shares = {t: moon_share(x) for t, x in long_run.items()}
short_steps = run.budget(quick=300, full=1000)
print(f"share on the (upper, lower) moon")
print(f"  held-out data                          {data_share[0]:.3f}  {data_share[1]:.3f}")
print(f"  E_θ's grid-normalised density          {mass_dsm[0]:.3f}  {mass_dsm[1]:.3f}")
print(f"  the lesson's {len(chains)} chains, {short_steps} steps   {moon_share(chains)[0]:.3f}  {moon_share(chains)[1]:.3f}")
for t, sh in shares.items():
    print(f"  {N_LONG} chains after {t:>5} steps          {sh[0]:.3f}  {sh[1]:.3f}")
err_short = abs(float(shares[short_steps][0] - mass_dsm[0]))
err_long = abs(float(shares[LONG][0] - mass_dsm[0]))
assert abs(float(mass_dsm[0] - data_share[0])) > 0.08, "DSM's moon weights should be visibly off"
assert err_long < err_short, "longer chains should move toward the model's own weights"

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.6))
steps_rec = sorted(shares)
ax.plot(steps_rec, [float(shares[t][0]) for t in steps_rec], "o-", color="tab:red",
        label=f"{N_LONG} Langevin chains on $E_\\theta$ (η = 0.01)")
ax.axhline(float(mass_dsm[0]), color="k", ls="--", label="$E_\\theta$'s own mass (grid)")
ax.axhline(float(data_share[0]), color="tab:blue", ls=":", label="held-out data")
ax.axvline(short_steps, color="grey", lw=0.8)
ax.text(short_steps * 1.05, 0.55, "the lesson's chains", fontsize=8, color="grey", transform=ax.get_xaxis_transform())
ax.set_xscale("log")
ax.set_xlabel("Langevin steps")
ax.set_ylabel("share on the upper moon")
ax.set_title("short chains look balanced; the model is not", fontsize=10)
ax.legend(fontsize=8, loc="center left")
plt.tight_layout()
plt.show()

# %% [markdown]
# The density that denoising score matching learned does not give the moons the data's weights (the
# printed masses), and the short chains hide it: started from a broad Gaussian they fall into whichever
# moon is nearer, so after a few hundred steps their split reflects the starting point more than the
# model. Run longer, they cross the gap between the moons now and then and drift toward the model's
# own, unbalanced, weights.
#
# Why score matching gets this wrong: the loss only asks the score $\nabla_x\log p$ to be right *where
# the (blurred) data are*. Inside each moon the score says how the density changes along and across
# that moon, and it is identical whether that moon carries 30 % or 70 % of the mass: multiplying one
# component of a mixture by a constant leaves its score unchanged wherever the other component is
# negligible. The relative weight is encoded only in the score *between* the moons, where the data put
# almost no points and the loss almost no weight. (Hyvärinen 2005 introduced score matching; Vincent
# 2011 the denoising form used here; this blindness to the weights of well-separated modes is a known
# property of both.) Langevin dynamics with the same score has the same problem the other way round:
# moving mass from one moon to the other requires crossing the gap, which is rare.

# %% [markdown]
# ## 5b. Maximum likelihood, where $Z$ is computable
#
# §5 opened with the obstacle: maximum likelihood needs $\nabla_\theta\log Z$. Write the negative
# log-likelihood of eq. 14.3 and differentiate it:
# $$-\log P_\theta(x) = E_\theta(x) + \log Z_\theta,\qquad
# \nabla_\theta\log Z_\theta = \frac{\int -\nabla_\theta E_\theta(x')\,e^{-E_\theta(x')}\,dx'}{Z_\theta}
# = -\,\mathbb E_{x'\sim P_\theta}\big[\nabla_\theta E_\theta(x')\big],$$
# so the gradient of the average NLL is "lower the energy of the data, raise the energy of what the
# model currently believes in":
# $$\nabla_\theta\,\mathrm{NLL} = \mathbb E_{\text{data}}[\nabla_\theta E_\theta] - \mathbb E_{P_\theta}[\nabla_\theta E_\theta].$$
# In 2-D we can do both exactly and compare them with score matching, on the same network:
#
# * **exact maximum likelihood**: $\log Z_\theta$ by the grid, a log-sum-exp of $-E_\theta$ over the
#   cells, differentiated by autograd: the expectation under $P_\theta$ is a softmax-weighted sum over
#   the cells (`ebm.ml_grid_loss`; a coarse grid shifted at random each step);
# * **contrastive divergence** (CD), the classic route when $Z$ is out of reach: replace
#   $\mathbb E_{P_\theta}$ by an average over samples from short Langevin chains. Restarting the chains
#   from noise every step would need long chains; **persistent** CD keeps them between steps
#   (`ebm.PersistentChains`), since the model changes little from one step to the next.
#
# ### Exercise 4: the contrastive-divergence loss
#
# Training needs a scalar whose gradient is the estimate above. Write it: `x_model` are the model
# samples, which must act as constants (the sampler that made them used the same network).

# %%
def cd_loss(energy_fn, x_data, x_model):
    """energy_fn: (n, 2) -> (n,) energies E_theta; x_data (n, 2) data; x_model (m, 2) model samples.
    Returns a scalar: mean energy of the data minus mean energy of the (fixed) samples, whose gradient
    in theta is the contrastive-divergence estimate of the NLL's gradient above."""
    # YOUR CODE HERE
    raise NotImplementedError


result = check("14.3.cd_loss", cd_loss)
result

# %%
cd_loss = result.or_reference()

# %% [markdown]
# Now the three trainings, on the same architecture and data. CD's loss is unbounded below (only
# energy *differences* matter to it), so it gets the usual small penalty on the energies' size
# (`ebm.energy_penalty`, Du & Mordatch 2019), gradient clipping and the persistent chains' step size
# $\eta = 0.005$. All three are early-stopped on the grid likelihood of the validation split, as §5
# did; the step budgets differ and are printed with their times.

# %%
STEPS_ML = run.budget(quick=600, full=3000)
GRID_TRAIN = run.budget(quick=24, full=48)          # training grid, k x k cells, shifted each step
ALPHA = 0.1                                          # energy penalty of CD

torch.manual_seed(0)
ml_net = ebm.EnergyMLP(dim=2, hidden=128, depth=3).to(run.device)
g_ml = torch.Generator().manual_seed(2)
fit_ml = training.train(ml_net, lambda m, b: ebm.ml_grid_loss(m, b, lim=3.0, k=GRID_TRAIN, generator=g_ml),
                        X_fit, steps=STEPS_ML, val_data=X_val, val_fn=val_nll, batch_size=256, lr=3e-3,
                        cosine=True, eval_every=100, generator=g_ml, desc="exact maximum likelihood")

torch.manual_seed(0)
cd_net = ebm.EnergyMLP(dim=2, hidden=128, depth=3).to(run.device)
g_cd = torch.Generator().manual_seed(2)
persistent = ebm.PersistentChains(run.budget(quick=128, full=256), dim=2, steps=run.budget(quick=5, full=10),
                                  step_size=0.005, generator=torch.Generator().manual_seed(5),
                                  device=run.device)


def cd_objective(model, batch):                      # your loss (or the reference) + the energy penalty
    x_model = persistent.advance(model)
    return cd_loss(model, batch, x_model) + ALPHA * ebm.energy_penalty(model, batch, x_model)


fit_cd = training.train(cd_net, cd_objective, X_fit, steps=STEPS_ML, val_data=X_val, val_fn=val_nll,
                        batch_size=256, lr=3e-3, cosine=True, grad_clip=1.0, eval_every=100, generator=g_cd,
                        desc="persistent contrastive divergence")

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    compared = []
    for name, net, f in (("denoising score matching", energy_net, fit), ("exact maximum likelihood", ml_net, fit_ml),
                         ("persistent CD", cd_net, fit_cd)):
        nll = -float(ebm.grid_log_likelihood(net, X_test, lim=3.0, k=300).mean())
        mass = ebm.region_masses(net, data.nearest_moon, 2, lim=3.0, k=200, device=run.device).tolist()
        compared.append((name, nll, mass, f))
print(f"{'':26}{'held-out NLL':>13}{'upper':>8}{'lower':>8}{'steps':>7}{'best at':>9}{'seconds':>9}")
print(f"{'held-out data':26}{'':>13}{data_share[0]:8.3f}{data_share[1]:8.3f}")
print(f"{'Gaussian mixture, K = 8':26}{baselines[8][0]:13.3f}")
for name, nll, mass, f in compared:
    print(f"{name:26}{nll:13.3f}{mass[0]:8.3f}{mass[1]:8.3f}{f.history['step'][-1]:7d}{f.best_step:9d}"
          f"{f.seconds:9.1f}")
weight_error = {name: abs(float(mass[0] - data_share[0])) for name, _, mass, _ in compared}
nll_of = {name: nll for name, nll, _, _ in compared}
print("error in the upper moon's weight:", {k: round(v, 3) for k, v in weight_error.items()})
for name, _, _, f in compared:
    still = "still improving at its last step" if f.best_step == f.history["step"][-1] else "stopped improving"
    print(f"{name}: best validation NLL at step {f.best_step} of {f.history['step'][-1]} ({still})")
print(f"CD's persistent chains at the end: {moon_share(persistent.x)[0]:.3f} / {moon_share(persistent.x)[1]:.3f} "
      "on the two moons")
assert weight_error["exact maximum likelihood"] < 0.05 < weight_error["denoising score matching"]
assert nll_of["exact maximum likelihood"] < baselines[1][0] - 1.0 and nll_of["persistent CD"] < baselines[1][0] - 1.0

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.3))
    for ax, (name, nll, mass, _), net in zip(axes, compared, (energy_net, ml_net, cd_net)):
        lp, _, _ = ebm.grid_log_density(net, lim=3.0, k=200, device=run.device)
        ax.imshow(lp.exp().cpu(), origin="lower", extent=(-3, 3, -3, 3), cmap="magma")
        ax.set_title(f"{name}\nNLL {nll:.3f}; moons {mass[0]:.2f} / {mass[1]:.2f} "
                     f"(data {data_share[0]:.2f} / {data_share[1]:.2f})", fontsize=9)
        ax.set_xlabel("$x_1$")
    axes[0].set_ylabel("$x_2$")
    plt.tight_layout()
    plt.show()

# %% [markdown]
# What the table says (its numbers are computed above, and the asserts hold on any CPU):
#
# * **Exact maximum likelihood gets the weights right** where score matching does not: its objective
#   contains $\log Z_\theta$, so putting too much mass on one moon is paid for directly. Each of its
#   steps evaluates the network on the whole training grid, so it gets fewer steps than score matching
#   here; where the lines above say it was still improving at its last step, its NLL is that of a
#   budget, not of the method (full mode gives it five times more).
# * **Contrastive divergence** estimates the same gradient from a few hundred chain positions, so it
#   sees the model only through its chains (their final split on the two moons is printed). Its
#   gradient is noisy and biased: the chains lag behind the changing model and the unadjusted Langevin
#   step adds its own bias; compare its likelihood and weights with exact ML's in the table. In high
#   dimension this estimate is all there is.
# * Denoising score matching was the fastest to set up and the only one that never looks at $Z$ or at
#   model samples; its blind spot is the one measured above.
#
# Only in 2-D could we compute the exact gradient and the honest held-out likelihood that judge the
# other two; in 64 dimensions (§2) neither exists, and the choice is between CD's noisy gradient and
# score matching's blind spots, the problem §15 takes up.

# %% [markdown]
# ## 6. The image/caption story in miniature: a joint energy $E(x, h)$
#
# §14.3 pairs an image $x$ with a caption $h$. Here $x\in\mathbb R^2$ and the "caption" is one of
# $K = 8$ labels: which of eight clusters a point comes from. From labelled data we fit
# $$E(x, h) = \frac{\|x - c_h\|^2}{2\sigma^2} + b_h,$$
# by maximum likelihood (class means $c_h$, a pooled $\sigma^2$, and $b_h$ chosen so that
# $e^{-E(x,h)}$ is exactly the joint density $p(x, h)$, so $Z = 1$). Then
#
# * **captioning**: $h^* = \arg\min_h E(x_{\text{fixed}}, h)$, a search over the 8 labels;
# * **generation**: $x^* = \arg\min_x E(x, h_{\text{fixed}})$, by gradient descent on $x$;
# * **sampling**: Langevin on $E(\cdot, h_{\text{fixed}})$, which draws from $P(x\mid h)$; its normaliser
#   $Z(h)$ drops out of the score just as $Z$ did.

# %%
X8 = data.make_toy_2d("8gaussians", 2000, seed=1)
labels = torch.round(torch.atan2(X8[:, 1], X8[:, 0]) / (math.pi / 4)).long() % 8     # which cluster
joint = ebm.JointEnergy.fit(X8[:1500], labels[:1500])
captions = joint.caption(X8[1500:])

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    print(f"fitted σ² = {joint.sigma2:.4f}; centre of h = 2: {np.round(joint.centres[2].numpy(), 3) + 0.0}")
    print(f"captioning by enumeration, accuracy on 500 held-out points: "
          f"{float((captions == labels[1500:]).double().mean()):.3f}")
    x_fixed = torch.tensor([[0.2, 1.3]], dtype=torch.float64)
    print("E(x_fixed, h) for h = 0..7:", np.round(joint.energies(x_fixed)[0].numpy(), 1),
          "-> h* =", int(joint.caption(x_fixed)[0]))

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    H = 2
    ETA_H = 0.005                      # Langevin step size for P(x | h)
    starts = torch.tensor([[-2.0, -2.0], [2.5, -1.0], [-2.5, 1.5], [0.5, -0.3], [2.0, 2.5]], dtype=torch.float64)
    paths = joint.generate(H, starts, lr=0.2, steps=40)
    g = torch.Generator().manual_seed(8)
    cond_samples = ebm.langevin(lambda x: ebm.score(lambda z: joint.energy(z, H), x),
                                torch.randn(1000, 2, generator=g, dtype=torch.float64) * 2, ETA_H, 400, generator=g)

    pts8, c8, _ = ebm.grid_2d(3.0, 150)
    e_h = joint.energy(pts8, H).reshape(150, 150)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.8))
    for a in (ax, bx):
        a.contour(c8, c8, e_h, levels=float(e_h.min()) + np.array([0.5, 2, 4.5, 8, 12.5, 18, 24.5, 32, 40.5, 50]),
                  cmap="viridis", linewidths=0.8)                   # circles at 1, 2, ..., 10 σ
        a.scatter(X8[:, 0], X8[:, 1], s=1, c="lightgrey")
        a.set_aspect("equal")
        a.set_xlabel("$x_1$")
        a.set_ylabel("$x_2$")
    for p in paths.transpose(0, 1):
        ax.plot(p[:, 0], p[:, 1], ".-", ms=3, lw=1)
    ax.plot(*joint.centres[H], "k*", ms=14, label=f"argmin$_x$ E(x, h={H})")
    ax.set_title(f"generation: gradient descent on E(·, h = {H}) from 5 starts", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    bx.scatter(cond_samples[:, 0], cond_samples[:, 1], s=3, c="tab:orange", label="Langevin samples of P(x | h)")
    bx.plot(*joint.centres[H], "k*", ms=14, label="the argmin (one point)")
    cx, cy = joint.centres[H].tolist()
    bx.set_xlim(cx - 0.45, cx + 0.45)
    bx.set_ylim(cy - 0.45, cy + 0.45)
    bx.set_title(f"zoom: sampling P(x | h = {H}) fills the valley, not just its bottom", fontsize=10)
    bx.legend(fontsize=8, loc="lower left")
    plt.tight_layout()
    plt.show()

# %%
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    spread = cond_samples.std(0)
    biased = math.sqrt(joint.sigma2 / (1 - ETA_H / (4 * joint.sigma2)))
    print(f"Langevin samples of P(x | h={H}): mean {np.round(cond_samples.mean(0).numpy(), 2) + 0.0}, "
          f"std {np.round(spread.numpy(), 3)}")
    print(f"the model's σ = {math.sqrt(joint.sigma2):.3f}; the unadjusted chain's stationary std with "
          f"η = {ETA_H}: {biased:.3f}")
    std_error = biased / math.sqrt(2 * len(cond_samples))           # of a std from n Gaussian draws
    off_biased = float((spread - biased).abs().max()) / std_error
    off_sigma = float((spread - math.sqrt(joint.sigma2)).abs().min()) / std_error
    print(f"in standard errors of a sample std ({std_error:.4f}): the samples' std is at most {off_biased:.1f} "
          f"from the prediction, at least {off_sigma:.1f} from σ")
    assert off_biased < 3 < off_sigma
    print(f"all 5 descents end within {float((paths[-1] - joint.centres[H]).norm(dim=1).max()):.1e} of c_h")

# %% [markdown]
# Gradient descent lands every start on the same point $c_h$: the single most compatible $x$. The
# Langevin samples instead spread over the valley with the model's width $\sigma$, a touch wider: their
# spread is consistent with what the step size predicts for an unadjusted chain on a Gaussian,
# $\sigma/\sqrt{1-\eta/4\sigma^2}$, within the sampling error of 1000 draws, and not with $\sigma$ itself
# (the distances in standard errors are printed above). For images, the argmin is one over-smoothed "average" picture;
# samples are the variety.

# %% [markdown]
# > **Note on the text.** Footnote 3 of §14.3 calls $\nabla_h E(x, h)$ "the score function". The score
# > is the gradient of the **log-density**, $\nabla \log P = -\nabla E$ (eq. 15.1): it has the opposite
# > sign to the energy gradient (it points towards *low* energy, which is why gradient *descent* on $E$
# > and Langevin's drift $+\tfrac\eta2 s$ go the same way). And when $h$ is discrete, as text is, there
# > is no gradient in $h$ at all: $h^* = \arg\min_h E(x, h)$ is a search (here, enumeration over 8 labels;
# > for sentences, beam search or a learned encoder), not gradient descent.
#
# The sign, checked without autograd: take the grid-normalised $\log P$ of §1, differentiate it by
# finite differences, and compare with $-\nabla E$ and with $+\nabla E$.

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():  # exact, in float64 on the CPU (settings' dtype rule)
    step = 2 * LIM / 200
    d_dy, d_dx = np.gradient(log_p.cpu().numpy(), step, step)                 # ∇ log P on the grid
    fd_score = torch.tensor(np.stack([d_dx.ravel(), d_dy.ravel()], 1))
    inner = (pts.abs() < 2.5).all(1).cpu()                                      # stay off the box edge
    grad_E = -ebm.score(energy, pts).cpu()                                      # ∇E
    cos_minus = torch.nn.functional.cosine_similarity(fd_score[inner], -grad_E[inner]).mean()
    cos_plus = torch.nn.functional.cosine_similarity(fd_score[inner], grad_E[inner]).mean()
    print(f"mean cosine( finite-difference ∇log P , -∇E ) = {float(cos_minus):+.4f}")
    print(f"mean cosine( finite-difference ∇log P , +∇E ) = {float(cos_plus):+.4f}")

# %% [markdown]
# Why there is no gradient in a discrete $h$, as mathematics rather than as a PyTorch rule: the labels
# $0,\dots,7$ are *names*. Renaming them by a permutation $\pi$ gives the same model,
# $E'(x, \pi(h)) = E(x, h)$, and the same caption. A "derivative in $h$", say the difference
# $E(x, h+1) - E(x, h)$ between neighbouring labels, depends on the numbering: after a renaming it
# changes, even in sign, so it cannot say which way to move. Only the comparison of all labels, the
# argmin, survives a renaming.

# %%
# NBVAL_CHECK_OUTPUT
e_h = joint.energies(x_fixed.float())[0].cpu()                    # E(x_fixed, h), h = 0..7
pi = torch.randperm(len(e_h), generator=torch.Generator().manual_seed(4))   # renaming h -> pi[h]
e_renamed = torch.empty_like(e_h)
e_renamed[pi] = e_h                                                # E'(x, pi[h]) = E(x, h)
h_star = int(e_h.argmin())
print("E(x, h+1) - E(x, h), labels as given:  ", np.round(e_h.diff().numpy(), 1))
print("E'(x, h+1) - E'(x, h), after renaming: ", np.round(e_renamed.diff().numpy(), 1))
print(f"caption: h* = {h_star}; after renaming argmin = {int(e_renamed.argmin())} = pi[h*] = {int(pi[h_star])}")
assert int(e_renamed.argmin()) == int(pi[h_star])

# %% [markdown]
# ## Summary
#
# * An energy defines a distribution through eq. 14.3; in 2-D its partition function is a quick
#   quadrature that matches the closed form of $\log Z$ to about $10^{-7}$ (the difference printed in §1).
# * The same quadrature needs $k^d$ evaluations: seconds at $d = 6$, far beyond the age of the universe
#   at $d = 64$. That is the bottleneck the section describes.
# * The score $-\nabla_x E$ does not involve $Z$ (shifting $E$ left it bit-for-bit unchanged), and
#   Langevin dynamics samples $P$ from the score alone: the total-variation distance falls to the
#   sampling floor for a small step, while a large step stays biased.
# * A small energy network trained by denoising score matching learns the two moons: a held-out
#   likelihood near an 8-component mixture's and far above one Gaussian's, and Langevin samples on the data,
#   but not the moons' weights: the score inside each moon does not say how much mass it carries, and
#   short Langevin chains hide the error.
# * Maximum likelihood needs $\nabla_\theta\log Z = -\mathbb E_{P_\theta}[\nabla_\theta E_\theta]$. On a 2-D
#   grid it is exact and gets the weights right; contrastive divergence estimates it with persistent
#   Langevin chains, the route that survives in high dimension.
# * With a joint $E(x, h)$, generation is minimisation over $x$, captioning a search over discrete $h$,
#   and sampling $P(x\mid h)$ shows the whole valley instead of its single lowest point. The score is
#   $-\nabla E$, not $\nabla E$.

# %% [markdown]
# Your exercises in this lesson, as the autograder last saw them:

# %%
from companion_lib.grading import progress

progress("14.3")
