# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 15.2 Normalizing flows: solutions
#
# Worked solutions to the exercises of `chapters/15_2_coupling_flows`: the affine coupling layer
# (forward and inverse) and Problem 15.2.1. The last cell trains a small 2-D flow on these
# functions for a few seconds, to see them work inside a model.

# %%
import torch

from companion_lib import data, flows, settings, training
from companion_lib.grading import check

run = settings.setup(seed=0)

# %% [markdown]
# ## Exercise 1: the coupling layer, forward (15.3)–(15.4)
#
# Split the coordinates with the boolean mask, `z[:, mask]` for $A$ and `z[:, ~mask]` for $B$. The
# conditioner sees only $z_A$ and returns $r = \log h_\theta(z_A)$ and $s_\theta(z_A)$ for the $B$
# coordinates. The output keeps $z_A$ and replaces $z_B$ by $z_B \odot e^{r} + s$.
#
# The log-determinant: ordered $A$ first, the Jacobian is
# $\begin{pmatrix} I & 0\\ \ast & \mathrm{diag}(e^{r})\end{pmatrix}$ (the $B$ outputs depend on $z_B$
# only through the factor $e^{r}$; the $A$ outputs do not depend on $z_B$ at all). A block-triangular
# determinant is the product of the diagonal blocks' determinants, $1\cdot\prod_j e^{r_j}$, so
# $\log|\det| = \sum_{j\in B} r_j$, one number per row. Reordering the coordinates permutes rows and
# columns by the same permutation, which leaves the determinant unchanged.

# %%
def coupling_forward(z, mask, conditioner):
    """z (b, d), mask (d,) bool (True on A), conditioner(z_A) -> (r, s) each (b, |B|).
    Returns z_next (b, d) by (15.3)-(15.4) and log_det (b,)."""
    z_a, z_b = z[:, mask], z[:, ~mask]
    r, s = conditioner(z_a)
    z_next = torch.empty_like(z)
    z_next[:, mask] = z_a                         # (15.3)
    z_next[:, ~mask] = z_b * torch.exp(r) + s     # (15.4)
    return z_next, r.sum(1)


result = check("15.2.coupling_forward", coupling_forward)
assert result, result
result

# %% [markdown]
# ## Exercise 1: the inverse (15.5)–(15.6)
#
# Because $z_A^{l+1} = z_A^l$, the conditioner evaluated on the output's $A$ part gives exactly the
# $r$ and $s$ of the forward pass. Undo (15.4) in reverse order: subtract $s$, then **divide** by
# $h = e^{r}$ (multiply by $e^{-r}$). The printed (15.6) multiplies by $h$ instead; that inverts
# (15.4) only when $h \equiv 1$.

# %%
def coupling_inverse(z_next, mask, conditioner):
    """The inverse of coupling_forward: z_next (b, d) -> z (b, d)."""
    z_a, z_b_next = z_next[:, mask], z_next[:, ~mask]
    r, s = conditioner(z_a)
    z = torch.empty_like(z_next)
    z[:, mask] = z_a                               # (15.5)
    z[:, ~mask] = (z_b_next - s) * torch.exp(-r)   # (15.6), with ⊘ h
    return z


result = check("15.2.coupling_inverse", coupling_inverse)
assert result, result
result

# %% [markdown]
# ## Problem 15.2.1
#
# $f$ maps the latent $z$ to the data $x$, so (15.2) is applied to the inverse map $g = f^{-1}$
# (data to latent), the role of the text's $f_\theta$. Solving $x = f(z)$:
#
# $$z_1 = x_1,\quad z_2 = x_2,\quad z_3 = e^{-a_0}(x_3 - a_1x_1^2 - a_2x_2^2),\quad
#   z_4 = e^{-b_0}(x_4 - b_1x_1^2 - b_2x_2^2).$$
#
# $J_g$ is lower triangular ($z_3$ and $z_4$ depend on $x_1, x_2$ and on their own coordinate only),
# with diagonal $(1, 1, e^{-a_0}, e^{-b_0})$, so $|\det J_g| = e^{-a_0-b_0}$ everywhere and
#
# $$p(x) = \frac{e^{-a_0-b_0}}{(2\pi)^2}\exp\Big(-\tfrac12\big[x_1^2 + x_2^2
#   + e^{-2a_0}(x_3 - a_1x_1^2 - a_2x_2^2)^2 + e^{-2b_0}(x_4 - b_1x_1^2 - b_2x_2^2)^2\big]\Big).$$
#
# Read conditionally, this says $x_1, x_2$ are standard normal and, given them, $x_3$ and $x_4$ are
# independent normals with means $a_1x_1^2 + a_2x_2^2$, $b_1x_1^2 + b_2x_2^2$ and standard deviations
# $e^{a_0}$, $e^{b_0}$; the map is itself an affine coupling layer with $A = \{1, 2\}$.

# %%
def density(x, a, b):
    """x (n, 4), a = (a0, a1, a2), b = (b0, b1, b2) -> (n,) density of f(z), z ~ N(0, I_4)."""
    x1, x2, x3, x4 = x.unbind(1)
    z3 = (x3 - a[1] * x1**2 - a[2] * x2**2) * torch.exp(-a[0])
    z4 = (x4 - b[1] * x1**2 - b[2] * x2**2) * torch.exp(-b[0])
    quad = x1**2 + x2**2 + z3**2 + z4**2
    return torch.exp(-0.5 * quad - a[0] - b[0]) / (2 * torch.pi) ** 2


result = check("15.2.1", density)
assert result, result
result

# %% [markdown]
# ## The coupling layer inside a flow
#
# `flows.RealNVP` accepts the two functions; a few hundred steps on two moons lower the held-out
# negative log-likelihood well below that of the flow at initialisation (a standard normal).

# %%
X = data.make_toy_2d("moons", 2000, seed=0).to(run.device)
X_held = data.make_toy_2d("moons", 1000, seed=1).to(run.device)
torch.manual_seed(0)
model = flows.RealNVP(2, n_layers=6, hidden=32, forward_fn=coupling_forward,
                      inverse_fn=coupling_inverse).to(run.device)
with torch.no_grad():
    before = -model.log_prob(X_held).mean().item()
fit = training.train(model, lambda m, batch: -m.log_prob(batch).mean(), X, steps=run.budget(quick=300, full=3000),
                     lr=3e-3, batch_size=256, generator=run.generator, desc="RealNVP on your layer")
with torch.no_grad():
    after = -model.log_prob(X_held).mean().item()
    back = (model.inverse(model(X_held)[0]) - X_held).abs().max().item()
print(f"held-out NLL: {before:.3f} nats at initialisation, {after:.3f} after {fit.steps_run} steps; "
      f"max |f⁻¹(f(x)) − x| = {back:.1e}")
assert after < before - 0.5 and back < 1e-3
