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
# # 14.5 The variational autoencoder on the digits
#
# We build the VAE of §14.5 *exactly* as eqs. 14.10–14.11 write it: a Gaussian encoder with one
# scalar standard deviation, a Gaussian decoder with one scalar standard deviation, a standard normal
# prior. **You write its pieces**: the reparameterised sample, the summand (14.13), the two networks
# and the loss; the lesson then trains *your* VAE on the 8×8 digits and looks at it from every side:
#
# 1. the estimator (14.12) and its explicit form (14.13), checked against exact log-densities;
# 2. a short training run of your VAE, graded by its held-out bound;
# 3. why the reparameterisation trick matters: its gradient against the score-function (REINFORCE)
#    gradient, with and without a baseline;
# 4. reconstructions, samples from the prior, interpolations, and a 2-D latent map with a slider;
# 5. held-out likelihood (ELBO and an importance-weighted bound), and two better decoders for
#    17-level pixels trained beside the text's one.
#
# **Needs:** §14.4 (the ELBO, eq. 14.4), Gaussians, a little PyTorch. Runs in under a minute on a
# laptop CPU (quick mode); `COMPANION_MODE=full` trains longer, bigger networks.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn
from torch.distributions import Independent, Normal

from companion_lib import data, metrics, recipes, settings, vae
from companion_lib.viz import ch14, common, widgets
from companion_lib.grading import check

run = settings.setup(seed=0)

# %% [markdown]
# ## 1. Data: the digits, dequantised
#
# The pixels are integer levels $0,\dots,16$. A Gaussian decoder is a *density*, so we model
# dequantised values $y = (x + u)/17$, $u \sim U[0,1)^{64}$, which lie in $[0,1)^{64}$ (the
# companion's one convention; bits/dim then upper-bound the code length of the discrete digits).
# Training draws fresh $u$ for every minibatch; every held-out number below is measured on the
# companion's one fixed evaluation set, `data.heldout_digits()` (the 360 held-out digits, dequantised
# once with a fixed seed).

# %%
digits = data.load_digits_split()
to_dev = lambda a: torch.as_tensor(a, dtype=torch.float32, device=run.device)  # noqa: E731
X_fit, X_val = to_dev(digits.X_fit), to_dev(digits.X_val)
y_test = data.heldout_digits().to(run.device)                 # the fixed evaluation set
y_fit = data.dequantize(X_fit, torch.Generator().manual_seed(2024))
n = X_fit.shape[1]
print(f"fit {tuple(X_fit.shape)}, validation {tuple(X_val.shape)}, held-out {tuple(y_test.shape)}; "
      f"y in [{float(y_test.min()):.3f}, {float(y_test.max()):.3f})")

# %% [markdown]
# ## 2. The model, eqs. 14.10–14.11
#
# $$q_\phi(z\mid x) = \mathcal N\big(z;\ \mu_\phi(x),\ \sigma_\phi(x)^2 I_d\big),\qquad
#   p_\theta(x\mid z) = \mathcal N\big(x;\ \mu_\theta(z),\ \sigma_\theta(z)^2 I_n\big),\qquad
#   p(z) = \mathcal N(z; 0, I_d).$$
#
# $\sigma_\phi$ and $\sigma_\theta$ are **scalars**, one number per input, as in the text.
#
# ### Sampling from the encoder: the reparameterisation trick
#
# To estimate the ELBO of an image $x_i$ we need samples $z_{ij} \sim q_\phi(z\mid x_i)$, drawn so
# that gradients can flow back into $\mu_\phi$ and $\sigma_\phi$: draw $\varepsilon_j \sim \mathcal
# N(0, I_d)$ once, then move and scale it by the encoder's outputs. The randomness no longer depends
# on $\phi$, so the gradient of an average over $\varepsilon$ is the average of gradients.
# *Source:* the reparameterised estimator and the VAE, D. P. Kingma and M. Welling, "Auto-encoding
# variational Bayes", ICLR 2014 (arXiv:1312.6114).
#
# **Exercise 1.** Write the reparameterised sample for a batch: one row per image, one scalar
# $\sigma$ per row.

# %%
def reparameterize(mu, sigma, eps):
    """mu (n, d) encoder means; sigma (n,) or (n, 1), one standard deviation per row; eps (n, d)
    standard normal noise. Returns z (n, d), row i a sample of N(mu_i, sigma_i^2 I_d) built from eps_i."""
    # YOUR CODE HERE
    raise NotImplementedError


result = check("14.5.reparameterize", reparameterize)
result

# %%
reparameterize = result.or_reference()   # your function if it passed, else the reference (it says so)

# %% [markdown]
# Check it against the definition: for a fixed image, many samples should have mean $\mu_\phi(x)$
# and per-coordinate standard deviation $\sigma_\phi(x)$. Any encoder will do for this check: we use a
# freshly initialised one (seeded).

# %%
d = 16
torch.manual_seed(1)
untrained = vae.VAE(n, d, hidden=128).to(run.device)
with torch.no_grad():
    mu_e, sig_e = untrained.encode(y_test[:1])
    eps = torch.randn(20_000, d, generator=torch.Generator().manual_seed(1)).to(run.device)
    z = reparameterize(mu_e.expand(20_000, d), sig_e.expand(20_000), eps)
worst = ((z.mean(0) - mu_e[0]).abs().max() / sig_e).item()
print(f"sigma_phi(x) = {sig_e.item():.4f};  sample std per coordinate: {z.std(0).min():.4f} .. {z.std(0).max():.4f}")
print(f"largest |sample mean - mu_phi(x)| / sigma over {d} coordinates = {worst:.4f} "
      f"(one standard error: 1/sqrt(20000) = {1 / math.sqrt(20_000):.4f})")
assert worst < 4 / math.sqrt(20_000)

# %% [markdown]
# ### The estimator (14.12) and its explicit form (14.13)
#
# Each summand of (14.12) is $\log p_\theta(x_i\mid z_{ij}) + \log p(z_{ij}) - \log q_\phi(z_{ij}\mid x_i)$.
# All three are Gaussian log-densities, $\log\mathcal N(v; m, s^2 I_D) = -\tfrac12\big[\lVert v-m\rVert^2/s^2
# + D\log s^2 + D\log 2\pi\big]$, and (14.13) writes their sum without the $\log 2\pi$ constants.
#
# **Exercise 2.** Write one term (14.13) for a batch of images, each with its own sample $z$.

# %%
def elbo_term(x, mu_dec, sigma_dec, z, mu_enc, sigma_enc):
    """x (b, n), mu_dec (b, n), sigma_dec (b,) or (b, 1), z (b, d), mu_enc (b, d), sigma_enc (b,) or (b, 1)
    -> (b,) values of eq. 14.13 (constants dropped)."""
    # YOUR CODE HERE
    raise NotImplementedError


result = check("14.5.elbo_term", elbo_term)
result

# %%
elbo_term = result.or_reference()

# %% [markdown]
# Now the oracle. For 5 held-out images and $s = 8$ samples each we compute the summands three ways:
# with `torch.distributions` (exact log-densities), with the library's `vae.log_weights`, and with
# your (14.13). Which constant did (14.13) drop? The data term brings $-\tfrac n2\log 2\pi$, the prior
# $-\tfrac d2\log 2\pi$, and $-\log q$ brings $+\tfrac d2\log 2\pi$: the latent constants cancel, so the
# difference should be exactly $-\tfrac n2 \log 2\pi = -32\log 2\pi \approx -58.81$ for every term.
# (The signs in (14.13) are right: $+\lVert z\rVert^2$ from the prior, $-\lVert z-\mu_\phi\rVert^2/\sigma_\phi^2$
# and $-d\log\sigma_\phi^2$ from subtracting $\log q$.)

# %%
# NBVAL_CHECK_OUTPUT
s, x5 = 8, y_test[:5]
eps = torch.randn(s, 5, d, generator=torch.Generator().manual_seed(3)).to(run.device)
with torch.no_grad():
    mu_e, sig_e = untrained.encode(x5)
    z = torch.stack([reparameterize(mu_e, sig_e, eps[j]) for j in range(s)])   # z_ij, own eps_j
    mu_d, sig_d = untrained.decode(z)                                          # (s, 5, n), (s, 5)
    q = Independent(Normal(mu_e, sig_e[:, None].expand_as(mu_e)), 1)
    prior = Independent(Normal(torch.zeros_like(z), torch.ones_like(z)), 1)
    lik = Independent(Normal(mu_d, sig_d[..., None].expand_as(mu_d)), 1)
    exact = lik.log_prob(x5) + prior.log_prob(z) - q.log_prob(z)              # (s, 5), all constants
    library = vae.log_weights(untrained, x5, s, eps=eps)
    t1413 = torch.stack([elbo_term(x5, mu_d[j], sig_d[j], z[j], mu_e, sig_e) for j in range(s)])
gap = (exact - t1413).cpu()
spread = (gap.max() - gap.min()).item()
print(f"library vs torch.distributions: max |difference| < 1e-3: {bool((exact - library).abs().max() < 1e-3)}\n"
      f"exact - (14.13): mean {gap.mean():.3f}, the same for all {gap.numel()} terms to 1e-3: {spread < 1e-3}\n"
      f"-(n/2) log(2 pi) = {vae.elbo_constant(n):.3f}")
assert abs(gap.mean().item() - vae.elbo_constant(n)) < 1e-3

# %% [markdown]
# > **Note on the text.** Before (14.13) the text says that each term in the sum (14.12) "is a Gaussian
# > distribution". Each term is a *number*: a sum of three Gaussian log-densities evaluated at one
# > point. As a random quantity (through $\varepsilon$) it is not Gaussian either. Its last part is
# > exactly computable: $-\log q_\phi(z\mid x) = \tfrac d2\log 2\pi + \tfrac d2\log\sigma_\phi^2 +
# > \tfrac12\lVert\varepsilon\rVert^2$ is a shifted $\tfrac12\chi^2_d$ variable, whose skewness is
# > $\sqrt{8/d} \approx 0.71$ for $d = 16$, not the 0 of a Gaussian. What the text means is that each
# > of the three *densities* in the term is Gaussian, which is what lets (14.13) be written out.

# %%
# NBVAL_CHECK_OUTPUT
eps_many = torch.randn(50_000, 1, d, generator=torch.Generator().manual_seed(11)).to(run.device)
with torch.no_grad():
    mu1, sig1 = untrained.encode(y_test[:1])
    z1 = reparameterize(mu1.expand(50_000, d), sig1.expand(50_000), eps_many[:, 0])   # (S, d)
    neg_log_q = -vae.log_normal(z1, mu1, sig1).cpu()                                  # (S,)
    whole = vae.log_weights(untrained, y_test[:1], 50_000, eps=eps_many)[:, 0].cpu()


def skewness(v):
    v = v - v.mean()
    return ((v**3).mean() / (v**2).mean() ** 1.5).item()


print(f"one term of (14.12) is one number per sample: shape of 50000 terms {tuple(whole.shape)}\n"
      f"skewness of -log q(z|x) over eps: {skewness(neg_log_q):.2f} (chi-square theory sqrt(8/d) = "
      f"{math.sqrt(8 / d):.2f}; a Gaussian: 0)\n"
      f"skewness of the whole term: {skewness(whole):.2f}")
assert abs(skewness(neg_log_q) - math.sqrt(8 / d)) < 0.1

# %% [markdown]
# ## 3. You build the VAE: two networks and a loss
#
# **Exercise 3.** Write the encoder and decoder as one `nn.Module`. The autograder loads fixed
# weights into it, so the architecture is part of the contract: two attributes `encoder` and
# `decoder`, each `Linear(in, hidden) → SiLU → Linear(hidden, hidden) → SiLU → Linear(hidden, out)`,
# with `out = d + 1` for the encoder (the means, then $\log\sigma_\phi$) and `out = n + 1` for the
# decoder (the means before a sigmoid, since pixels live in $[0, 1)$; then $\log\sigma_\theta$).
# $\sigma = \exp(\text{last output})$ in both. The check compares `encode` and `decode` with the
# reference on two sizes ($n = 64, d = 16$, hidden 32; $n = 10, d = 3$, hidden 8) in float64, to
# relative error $10^{-6}$.

# %%
class VAENetworks(nn.Module):
    """Encoder E_phi and decoder D_theta of eqs. (14.10)-(14.11), built as VAENetworks(n_dims, latent_dims, hidden).

    encode(y): y (b, n) -> (mu_phi (b, d), sigma_phi (b,) > 0)
    decode(z): z (..., d) -> (mu_theta (..., n) in (0, 1), sigma_theta (...,) > 0)
    Attributes encoder and decoder hold the layers listed above (their weights are what the check loads).
    """

    def __init__(self, n_dims, latent_dims, hidden):
        super().__init__()
        # YOUR CODE HERE
        raise NotImplementedError

    def encode(self, y):
        raise NotImplementedError

    def decode(self, z):
        raise NotImplementedError


net_result = check("14.5.vae_networks", VAENetworks)
net_result

# %% [markdown]
# **Exercise 4.** The loss. For a batch $y$ (b, n) and noise $\varepsilon$ (b, d), encode, draw one
# reparameterised sample per image, decode it, and return the (b,) values of **minus** (14.13). Use
# your functions from Exercises 1 and 2. The check runs it on the reference networks with fixed
# weights and fixed $\varepsilon$.

# %%
def negative_elbo(model, y, eps):
    """model with encode/decode as in Exercise 3; y (b, n); eps (b, d) standard normal noise.
    Returns (b,): minus the one-sample summand (14.13) for each image (constants dropped)."""
    # YOUR CODE HERE
    raise NotImplementedError


loss_result = check("14.5.negative_elbo", negative_elbo)
loss_result

# %% [markdown]
# ### Training your VAE
#
# The cell below trains *your* networks with *your* loss (or the reference ones, saying so, where a
# check did not pass): Adam on minibatches of 128 images, $s = 1$ sample per image, fresh
# dequantisation noise every step. The loss is your $-$(14.13) plus the dropped constant, converted to
# bits/dim. With 1149 training images a VAE overfits within seconds, so we stop early on the
# validation split and keep the best weights.

# %%
Networks = net_result.or_reference()
loss_fn = loss_result.or_reference()
hidden = run.budget(quick=128, full=512)
torch.manual_seed(2)
fit = recipes.train_vae(X_fit, X_val, latent_dims=d, model=Networks(n, d, hidden), negative_elbo=loss_fn,
                    steps=run.budget(quick=3000, full=30_000), lr=run.budget(quick=2e-3, full=1e-3),
                    patience=run.budget(quick=8, full=30), generator=run.generator, device=run.device,
                    desc="your VAE d=16")
# the library's VAE with the trained weights (the same function when Exercise 3 passed): it adds
# sampling, the exact log-weights and the importance-weighted bound
model = vae.VAE(n, d, hidden).to(run.device)
model.load_state_dict(fit.model.state_dict())
model.eval()
print(f"trained with {'your' if net_result else 'the reference'} networks and {'your' if loss_result else 'the reference'} "
      f"loss: best validation -ELBO {fit.best_val:.3f} bits/dim at step {fit.best_step} of {fit.steps_run} "
      f"({fit.steps_run / fit.seconds:.0f} steps/s)")

# %%
ax = common.training_curves(fit.history, ylabel="−ELBO (bits/dim)",
                            title="VAE (d = 16): the validation curve turns up, early stopping keeps the best")
ax.axhline(math.log2(17), color="k", lw=0.8, ls="--", label="uniform over 17 levels")
ax.set_ylim(top=min(ax.get_ylim()[1], 5.5))
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# **Exercise 5.** Hand in the held-out negative ELBO of your trained VAE in bits/dim on the fixed
# evaluation set. The pass mark is 3.45 bits/dim (uniform over the 17 levels: 4.09); the companion's
# test-suite checks that the reference code reaches it with this budget. (If the lesson fell back to
# the reference above, there is nothing of yours to grade yet.)

# %%
k_eval = run.budget(quick=200, full=2000)      # samples per image for the ELBO
my_bound = metrics.heldout_bits_per_dim(       # bits/dim on data.heldout_digits(), the one convention
    lambda y: vae.elbo_and_iwae(model, y, k=k_eval, generator=torch.Generator().manual_seed(8))[0],
    device=run.device)
print(f"held-out -ELBO of the trained VAE: {my_bound:.3f} bits/dim")
if net_result and loss_result:
    bound_result = check("14.5.trained_bound", my_bound)
else:
    bound_result = "not graded: the run above used the reference code"
bound_result

# %% [markdown]
# > **Note on the text.** Three slips in §14.5.1, each checked below on the trained model.
# > 1. (14.12) is a **sum** over the $s$ samples, so it is an unbiased estimate of $s\times$ELBO, not
# >    of the ELBO; the average $\frac1s\sum_j[\dots]$ is the unbiased estimate of the ELBO. (For the
# >    gradient direction this is only a rescaling, but a printed "ELBO" would be off by the factor $s$.)
# > 2. The reparameterisation should read $z_{ij} = \mu_\phi(x_i) + \sigma_\phi(x_i)\,\varepsilon_j$
# >    (one fresh $\varepsilon_j$ per sample), not $\varepsilon_i$. With $\varepsilon_i$ all $s$
# >    samples of one image coincide and averaging over them reduces no variance.
# > 3. "$s$ is the batch size" mixes two numbers: $s$ is the number of Monte-Carlo samples **per
# >    data point**; the minibatch size is the number of images $x_i$ per gradient step. Here we train
# >    with $s = 1$ sample per image and 128 images per step.

# %%
g = torch.Generator().manual_seed(4)
with torch.no_grad():
    elbo_ref = vae.elbo_and_iwae(model, y_test, k=run.budget(quick=500, full=5000), generator=g)[0].mean()
    lines = [f"ELBO per held-out image (reference, many samples): {elbo_ref:.1f} nats",
             " s   (14.12) as printed   (14.12)/s    s x ELBO"]
    for s in (1, 10, 100):
        printed = vae.elbo_estimate(model, y_test, s=s, generator=g, reduction="sum").mean()
        lines.append(f"{s:3d}   {printed:14.1f}   {printed / s:10.1f}   {s * elbo_ref:9.1f}")
print("\n".join(lines))

# %% [markdown]
# And slip 2: for one held-out image we repeat the $s$-sample average 400 times, once with a fresh
# $\varepsilon_j$ per sample and once with one shared $\varepsilon$ for all $j$ (the text's
# $\varepsilon_i$). Only the first gets better with $s$.

# %%
R, g = 400, torch.Generator().manual_seed(5)
xr = y_test[:1].expand(R, n)
lines = [" s   std, eps_j fresh   std, eps_i shared"]
with torch.no_grad():
    for s in (1, 10, 100):
        fresh = torch.randn(s, R, d, generator=g).to(run.device)
        shared = torch.randn(1, R, d, generator=g).to(run.device).expand(s, R, d)
        sd_fresh = vae.log_weights(model, xr, s, eps=fresh).mean(0).std()
        sd_shared = vae.log_weights(model, xr, s, eps=shared).mean(0).std()
        lines.append(f"{s:3d}   {sd_fresh:16.3f}   {sd_shared:17.3f}")
print("\n".join(lines))

# %% [markdown]
# ## 4. Why reparameterise? Unbiased gradients with very different variances
#
# The ELBO of one image is $\mathbb E_{z\sim q}[f(z)]$ with $f(z) = \log p_\theta(x, z) - \log
# q_\phi(z\mid x)$, and we want its gradient with respect to the encoder output
# $(\mu, \sigma) = (\mu_\phi(x), \sigma_\phi(x))$. Three unbiased estimators from $s$ samples:
#
# * **reparameterisation**: $\frac1s\sum_j \nabla_{\mu,\sigma}\, f(\mu + \sigma\varepsilon_j)$, which
#   uses the decoder's gradient in $z$;
# * **score function (REINFORCE)**: $\frac1s\sum_j f(z_j)\,\nabla_{\mu,\sigma}\log q(z_j) +
#   \nabla_{\mu,\sigma} f(z_j)\big|_{z_j\ \text{fixed}}$, which only needs values of $f$ (the second
#   part is $-\nabla\log q(z_j)$, whose mean is zero);
# * **REINFORCE with a leave-one-out baseline**: $f(z_j)$ replaced by $f(z_j) - b_j$ with
#   $b_j = \frac1{s-1}\sum_{k\ne j} f(z_k)$. Since $b_j$ does not depend on $z_j$ and
#   $\mathbb E[\nabla\log q(z_j)] = 0$, it stays unbiased; it removes the *level* of $f$ from the
#   weight of each score. It needs $s \ge 2$, so all three are compared from $s = 2$.
#
# We repeat each estimate many times for one held-out image and compare means (all should agree)
# and total variances (trace of the covariance), as functions of $s$.

# %%
s_values = run.budget(quick=[2, 4, 16, 64], full=[2, 4, 16, 64, 256])
R = run.budget(quick=600, full=2000)
g = torch.Generator().manual_seed(6)
estimators = {"reparam": "reparameterisation", "score": "score function (REINFORCE)",
              "score_loo": "REINFORCE, leave-one-out baseline"}
grads = {est: [vae.encoder_gradients(model, y_test[0], s, R, g, est) for s in s_values] for est in estimators}
total_var = {est: np.array([G.var(0).sum().item() for G in grads[est]]) for est in grads}
with torch.no_grad():   # the size of f itself for this image, and how much it varies between samples
    f_vals = vae.log_weights(model, y_test[:1], 2000, generator=torch.Generator().manual_seed(9))[:, 0].cpu()

# %%
G_rep = grads["reparam"][-1]
lines = [f"s = {s_values[-1]}, {R} repeats, {G_rep.shape[1]} gradient components (mu_phi: {d}, sigma_phi: 1)",
         f"f(z) = log p(x, z) - log q(z|x) for this image: mean {f_vals.mean():.1f} nats, "
         f"std over z {f_vals.std():.1f} nats"]
for est in ("score", "score_loo"):
    G = grads[est][-1]
    zs = (G_rep.mean(0) - G.mean(0)) / torch.sqrt(G_rep.var(0) / R + G.var(0) / R)
    lines.append(f"{estimators[est]}: largest |mean - reparam mean| over components = {zs.abs().max():.2f} "
                 "standard errors")
    assert zs.abs().max() < 4.5
for est in ("score", "score_loo"):
    ratio = total_var[est] / total_var["reparam"]
    lines.append(f"variance ratio {est} / reparam at s = {s_values}: {[f'{r:.3g}' for r in ratio]}")
print("\n".join(lines))

# %%
ax = ch14.variance_vs_samples(s_values, {estimators[e]: total_var[e] for e in ("score", "score_loo", "reparam")},
                              title="∇ ELBO w.r.t. the encoder output, one held-out digit")
ax.set_xticks(s_values, [str(v) for v in s_values])
ax.xaxis.set_minor_locator(plt.NullLocator())
plt.show()

# %% [markdown]
# All three variances fall like $1/s$ (slope $-1$: averaging independent samples). Plain REINFORCE
# weights each random score direction by the value of $f$, which on this image is tens of nats (printed
# above) although it varies between samples by far less; the leave-one-out baseline subtracts that
# level, which is where most of plain REINFORCE's excess variance comes from (compare the two ratio
# rows). Even with the baseline the reparameterised gradient stays the most accurate, because it
# uses how $f$ *changes* with $z$ rather than only its values.
#
# ## 5. What the model learned: reconstructions and samples
#
# Encode held-out digits, decode the encoder mean: the decoder mean $\mu_\theta(\mu_\phi(x))$ is the
# reconstruction. The scalar $\sigma_\theta$ is the decoder's claimed pixel noise.

# %%
with torch.no_grad():
    idx = torch.arange(0, 360, 36)[:10]
    mu_e, _ = model.encode(y_test[idx])
    recon, sig_rec = model.decode(mu_e)
fig, axes = plt.subplots(2, 1, figsize=(10, 2.9))
common.image_grid(y_test[idx], nrow=10, ax=axes[0], vmin=0, vmax=1, title="held-out digits (dequantised)")
common.image_grid(recon, nrow=10, ax=axes[1], vmin=0, vmax=1,
                  title=f"reconstructions μθ(μφ(x)); decoder σθ ≈ {sig_rec.mean():.3f}")
plt.tight_layout()
plt.show()

# %% [markdown]
# Sampling is ancestral: $z \sim \mathcal N(0, I_d)$, then $x \sim \mathcal N(\mu_\theta(z),
# \sigma_\theta(z)^2 I_n)$. The decoder *means* are smooth and blurry (an average over the digits
# that could have produced $z$), and the honest samples, with the isotropic $\sigma_\theta$ noise
# added, are speckled: one scalar noise level for all 64 pixels puts noise on the empty border too.

# %%
gs = torch.Generator().manual_seed(7)
z = torch.randn(16, d, generator=gs).to(run.device)
with torch.no_grad():
    means, sig_s = model.decode(z)
    noisy = means + sig_s[:, None] * torch.randn(means.shape, generator=gs).to(run.device)
fig, axes = plt.subplots(3, 1, figsize=(10, 3.6))
common.image_grid(y_fit[:16], nrow=16, ax=axes[0], vmin=0, vmax=1, title="real training digits")
common.image_grid(means, nrow=16, ax=axes[1], vmin=0, vmax=1, title="samples: decoder means μθ(z), z ~ N(0, I)")
common.image_grid(noisy.clamp(0, 1), nrow=16, ax=axes[2], vmin=0, vmax=1,
                  title="the same z with the decoder's noise σθ(z)·ε added (clipped to [0, 1])")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 6. Interpolating in latent space
#
# Walk in a straight line between the encoder means of two held-out digits and decode each point;
# compare the straight line in pixel space, which only cross-fades.

# %%
a, b = int(np.flatnonzero(digits.y_test == 2)[0]), int(np.flatnonzero(digits.y_test == 7)[0])
t = torch.linspace(0, 1, 10, device=run.device)[:, None]
with torch.no_grad():
    za, zb = model.encode(y_test[[a, b]])[0]
    path, _ = model.decode((1 - t) * za + t * zb)
fade = (1 - t) * y_test[a] + t * y_test[b]
fig, axes = plt.subplots(2, 1, figsize=(10, 2.9))
common.image_grid(path, nrow=10, ax=axes[0], vmin=0, vmax=1, title="decoded straight line in latent space (d = 16)")
common.image_grid(fade, nrow=10, ax=axes[1], vmin=0, vmax=1, title="straight line in pixel space (cross-fade)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 7. A 2-D latent space you can see
#
# With $d = 2$ we can draw the whole latent space. We train a second, smaller VAE the same way (the
# library's code this time), then plot the encoder means $\mu_\phi(x)$ of the 360 held-out digits
# coloured by their (unused) labels, next to the decoder means over a grid of the same plane.

# %%
fit2 = recipes.train_vae(X_fit, X_val, latent_dims=2, hidden=run.budget(quick=128, full=512),
                     steps=run.budget(quick=1500, full=30_000), lr=run.budget(quick=3e-3, full=1e-3),
                     patience=run.budget(quick=6, full=30), generator=run.generator, device=run.device,
                     desc="VAE d=2")
model2 = fit2.model
with torch.no_grad():
    codes = model2.encode(y_test)[0].cpu()
print(f"d = 2: best validation -ELBO {fit2.best_val:.3f} bits/dim at step {fit2.best_step}")

# %%
extent, m = 2.5, 13
ticks = torch.linspace(-extent, extent, m)
grid_z = torch.stack([ticks.repeat(m), ticks.flip(0).repeat_interleave(m)], 1)  # rows: z2 high -> low
with torch.no_grad():
    grid_img = model2.decode(grid_z.to(run.device))[0]
fig, axes = plt.subplots(1, 2, figsize=(12, 5.6))
ch14.latent_scatter(codes, digits.y_test, ax=axes[0], title="encoder means of held-out digits (d = 2)")
axes[0].set_xlim(-extent, extent)
axes[0].set_ylim(-extent, extent)
common.image_grid(grid_img, nrow=m, ax=axes[1], vmin=0, vmax=1,
                  title=f"decoder means μθ(z) on a {m}×{m} grid of the same plane")
centres = np.arange(m) * 9 + 3.5                 # tile centres in image_grid's canvas (8 px + 1 gap)
labels = [f"{v:.1f}" for v in ticks.tolist()]
axes[1].set_xticks(centres[::2], labels[::2])
axes[1].set_yticks(centres[::2], labels[::-1][::2])
axes[1].set_xlabel("$z_1$")
axes[1].set_ylabel("$z_2$")
plt.tight_layout()
plt.show()

# %% [markdown]
# Move a point through the plane with the two sliders (in a live notebook); below it is drawn once at
# $z = (0.8, -0.5)$.

# %%
ui, update = widgets.latent_explorer_2d(lambda z: model2.decode(z.to(run.device))[0],
                                        points=codes, labels=digits.y_test, extent=extent)
_ = update(0.8, -0.5)

# %%
ui

# %% [markdown]
# ## 8. Held-out likelihood: the ELBO and an importance-weighted bound
#
# The ELBO is a lower bound on $\log p_\theta(y)$. A tighter one uses the same $k$ samples
# differently: with weights $w_j = p_\theta(y, z_j)/q_\phi(z_j\mid y)$,
# $$\log p_\theta(y) \;\ge\; \mathbb E\Big[\log \tfrac1k \textstyle\sum_j w_j\Big] \;\ge\;
#   \mathbb E\big[\tfrac1k\textstyle\sum_j \log w_j\big] = \text{ELBO},$$
# by Jensen's inequality (the importance-weighted bound, IWAE; Y. Burda, R. Grosse and R. Salakhutdinov,
# "Importance weighted autoencoders", ICLR 2016, arXiv:1509.00519). Both converted to bits/dim of the
# discrete digits with `metrics.bits_per_dim` (lower is better; uniform over 17 levels: 4.09).

# %%
k = run.budget(quick=200, full=2000)


def bounds(net, y, seed=8):
    """Mean ELBO and IWAE (nats per image) and both in bits/dim, from k samples per image."""
    elbo, iwae = vae.elbo_and_iwae(net, y, k=k, generator=torch.Generator().manual_seed(seed))
    assert (iwae >= elbo).all(), "IWAE must not be below the ELBO"
    elbo, iwae = elbo.cpu(), iwae.cpu()
    return (elbo.mean().item(), iwae.mean().item(),
            metrics.bits_per_dim(elbo, n_dims=n), metrics.bits_per_dim(iwae, n_dims=n))


rows = {"train (X_fit)": bounds(model, y_fit), "held-out": bounds(model, y_test)}
lines = [f"VAE d = {d}, k = {k} samples per image; nats per image of dequantised y, bits/dim of the digits",
         f"{'':18s} {'ELBO nats':>10s} {'IWAE nats':>10s} {'ELBO b/d':>9s} {'IWAE b/d':>9s}"]
for name, (e, w, eb, wb) in rows.items():
    lines.append(f"{name:18s} {e:10.2f} {w:10.2f} {eb:9.3f} {wb:9.3f}")
lines.append(f"{'uniform baseline':18s} {0.0:10.2f} {0.0:10.2f} {math.log2(17):9.3f} {math.log2(17):9.3f}")
print("\n".join(lines))
iwae_gap = rows["held-out"][2] - rows["held-out"][3]
print(f"the ELBO under-reports this model's held-out likelihood by at least {iwae_gap:.2f} bits/dim")

# %% [markdown]
# The IWAE bound sits above the ELBO on every image (asserted), so the ELBO under-reports this model's
# likelihood by at least the gap between the two columns. The training images score better than the
# held-out ones even at the early-stopped weights: the model has begun to fit its 1149 training digits
# in particular, which is why we stop on a validation split and report the held-out row.
#
# ## 9. Is the scalar $\sigma_\theta$ the weak point? Two other decoders, trained beside it
#
# The reconstruction errors say how unequal the pixels are: the empty border is predicted almost
# exactly (its only error is the dequantisation noise, standard deviation $1/(17\sqrt{12}) \approx
# 0.017$), the strokes are not, and a single $\sigma_\theta$ must compromise between them.

# %%
with torch.no_grad():
    mu_e, _ = model.encode(y_test)
    recon_all, sig_all = model.decode(mu_e)
rms = ((y_test - recon_all) ** 2).mean(0).sqrt().cpu().numpy().reshape(8, 8)
fig, ax = plt.subplots(figsize=(4.2, 3.4))
im = ax.imshow(rms, cmap="magma", vmin=0)
fig.colorbar(im, ax=ax, label="RMS reconstruction error")
ax.set_xticks([])
ax.set_yticks([])
ax.set_title(f"per-pixel error on held-out digits\nvs one decoder σθ ≈ {sig_all.mean():.3f} for all pixels",
             fontsize=10)
plt.show()
print(f"per-pixel RMS error: min {rms.min():.3f}, median {np.median(rms):.3f}, max {rms.max():.3f}; "
      f"mean decoder sigma {sig_all.mean():.3f}")

# %% [markdown]
# That is a suspicion, not a measurement. So we measure: two VAEs with **the same encoder, latent
# size, split, optimiser and stopping rule** (early stopping on the validation split, or the step
# budget if that comes first), differing only in the decoder $p_\theta(x\mid z)$:
#
# * **per-pixel σ**: $\mathcal N\big(x; \mu_\theta(z), \operatorname{diag}\sigma_\theta(z)^2\big)$,
#   one standard deviation per pixel (the decoder has $2n$ outputs);
# * **categorical**: each pixel's level $\ell \in \{0,\dots,16\}$ gets its own 17-way distribution
#   $\operatorname{softmax}$ of 17 decoder outputs. As a density of the dequantised $y$ it is constant on
#   each cell of width $1/17$: $p_\theta(y\mid z) = p_\theta(\ell\mid z)\cdot 17^{64}$, so its bits/dim
#   on the dequantised data are exactly the bits/dim of the discrete levels and the two conventions
#   agree.
#
# Everything else, the ELBO, IWAE and bits/dim, is computed by the same code.

# %%
decoders = {"text (14.11): one σθ": model}
for name, kind, lr in (("per-pixel σθ", "gaussian_per_pixel", 3e-3), ("categorical, 17 levels", "categorical", 3e-3)):
    fit_k = recipes.train_vae(X_fit, X_val, latent_dims=d, hidden=hidden, decoder=kind,
                          steps=run.budget(quick=2500, full=30_000), lr=run.budget(quick=lr, full=1e-3),
                          patience=run.budget(quick=6, full=30), generator=run.generator, device=run.device,
                          desc=kind)
    decoders[name] = fit_k.model
    print(f"{name}: best validation -ELBO {fit_k.best_val:.3f} bits/dim at step {fit_k.best_step} "
          f"of {fit_k.steps_run} ({'stopped early' if fit_k.stopped_early else 'the step budget'})")

# %%
table = {name: bounds(net, y_test) for name, net in decoders.items()}
lines = [f"held-out, d = {d}, same encoder and stopping rule  ELBO b/d   IWAE b/d (k = {k})"]
for name, (_, _, eb, wb) in table.items():
    lines.append(f"{name:44s} {eb:8.3f}   {wb:8.3f}")
print("\n".join(lines))
text_b, pixel_b, cat_b = (table[name][3] for name in decoders)
for order, (key, name) in enumerate(zip(("vae_text", "vae_per_pixel_sigma", "vae_categorical"), decoders)):
    label = {"vae_text": f"VAE (eqs. 14.10–14.11, d = {d}, one decoder σ)",
             "vae_per_pixel_sigma": f"VAE, same encoder, per-pixel decoder σ (d = {d})",
             "vae_categorical": f"VAE, same encoder, 17-level categorical decoder (d = {d})"}[key]
    metrics.record_heldout_result(f"14_5/{key}", label, (table[name][2], table[name][3]), "14_5", order=order,
                                  note=f"ELBO / importance-weighted bound, k = {k}")
print(f"IWAE gain over the text's decoder: per-pixel σ {text_b - pixel_b:.2f} bits/dim, "
      f"categorical {text_b - cat_b:.2f} bits/dim")
assert cat_b < pixel_b < text_b

# %% [markdown]
# The numbers settle it: giving every pixel its own $\sigma_\theta$ is by itself worth most of a bit
# per pixel (the gain printed above), so the scalar $\sigma_\theta$ of (14.11) is indeed a large part
# of why the text's VAE is a weak density model of these digits. A decoder that knows the pixels are
# 17 discrete levels does better still: a Gaussian spreads probability over values no pixel takes,
# the categorical puts all of it on the 17 cells. Samples from the categorical decoder, with its
# per-pixel levels drawn from $p_\theta(\ell\mid z)$:

# %%
cat_model = decoders["categorical, 17 levels"]
fig, axes = plt.subplots(2, 1, figsize=(10, 2.6))
common.image_grid(cat_model.sample(16, torch.Generator().manual_seed(7), noise=False), nrow=16, ax=axes[0],
                  vmin=0, vmax=1, title="categorical decoder: means E[y | z], z ~ N(0, I)")
common.image_grid(cat_model.sample(16, torch.Generator().manual_seed(7)), nrow=16, ax=axes[1], vmin=0, vmax=1,
                  title="the same z: one level per pixel drawn from p(ℓ | z)")
plt.tight_layout()
plt.show()

# %% [markdown]
# > **Note on the text.** §14.5 motivates Gaussians by saying that every distribution can be
# > approximated *in distribution* by a mixture of Gaussians, because a step-function CDF is "a mixture
# > of constants, i.e. mixture of Gaussians with ≈ 0 variance". Two things are worth separating.
# > A step-function CDF is a mixture of **point masses** (constants as *values*, not as densities): it
# > has no density at all, and its log-likelihood of any new point is $-\infty$. Convergence in
# > distribution (of CDFs) says nothing about densities or about KL, which is what maximum likelihood
# > and the ELBO measure (§14.2). The cell below takes $P = \mathcal N(0, 1)$ and mixtures of $K$
# > Gaussians of width $\tau$ at $P$'s quantiles: as $\tau \to 0$ the CDFs stay within $1/(2K)$ of
# > $P$'s (the Kolmogorov distance barely moves) while $\mathrm{KL}(P\,\|\,Q)$ grows without bound.
# > Ten times more components of the tiny width (last row) bring the CDF ten times closer, yet their KL
# > stays far larger than that of 20 components whose width suits their spacing (first row).
# > Mixtures of Gaussians *can* approximate smooth densities in KL, but with widths matched to the
# > spacing of the centres (first rows), not with widths shrinking to 0; a VAE's decoder learns its
# > $\sigma_\theta$, and section 9 showed how much its form matters for the likelihood.

# %%
# NBVAL_CHECK_OUTPUT
from scipy.special import logsumexp  # noqa: E402
from scipy.stats import norm  # noqa: E402

draws = np.random.default_rng(0).standard_normal(20_000)    # KL(P || Q) = E_P[log p - log q], by Monte Carlo
xs = np.linspace(-6, 6, 4001)                                 # where the two CDFs are compared
lines = ["  K      tau   Kolmogorov sup|F_P - F_Q|   KL(P || Q) nats (+- 2 s.e.)"]
kl_by_tau = []
for K, tau in ((20, 0.3), (20, 0.1), (20, 0.01), (20, 0.001), (200, 0.001)):
    centres_k = norm.ppf((np.arange(K) + 0.5) / K)              # P's quantiles: a step CDF when tau = 0
    at = np.concatenate([xs, centres_k - 3 * tau, centres_k + 3 * tau])   # the CDF jumps happen there
    ks = np.abs(norm.cdf(at) - norm.cdf(at[:, None], centres_k, tau).mean(1)).max()
    log_ratio = norm.logpdf(draws) - (logsumexp(norm.logpdf(draws[:, None], centres_k, tau), axis=1) - math.log(K))
    kl, se = log_ratio.mean(), log_ratio.std() / math.sqrt(len(draws))
    kl_by_tau.append(kl)
    lines.append(f"{K:3d}  {tau:7.3f}   {ks:24.4f}   {kl:12.3f} +- {2 * se:.3f}")
print("\n".join(lines))
assert kl_by_tau[3] > kl_by_tau[2] > kl_by_tau[1] > kl_by_tau[0] and kl_by_tau[4] > 100 * kl_by_tau[0]

# %% [markdown]
# ## Summary
#
# * The VAE's ELBO (14.9) is estimated per image by averaging $\log p(x\mid z_j) + \log p(z_j) -
#   \log q(z_j\mid x)$ over $z_j = \mu_\phi(x) + \sigma_\phi(x)\varepsilon_j$; (14.13) is that summand
#   with the constant $-\tfrac n2\log 2\pi$ removed. Each summand is a number, not a Gaussian.
# * You wrote the sample, the summand, the networks and the loss; the lesson trained your VAE with
#   early stopping and graded its held-out bound.
# * (14.12) as printed sums over the samples (an estimate of $s\times$ELBO); each sample needs its own
#   $\varepsilon_j$; $s$ counts samples per image, not images per batch.
# * Reparameterised and score-function gradients have the same mean; a leave-one-out baseline removes
#   much of REINFORCE's variance, and the reparameterised gradient still has the least.
# * Decoder means are blurry averages; true samples carry the isotropic noise. A 2-D latent space
#   already separates most digit classes without seeing a label.
# * Trained side by side on the fixed held-out set, a per-pixel $\sigma_\theta$ and, more, a
#   categorical decoder over the 17 levels beat the text's scalar $\sigma_\theta$ by the margins printed
#   in section 9.

# %% [markdown]
# Your exercises in this lesson, as the autograder last saw them:

# %%
from companion_lib.grading import progress

progress("14.5")
