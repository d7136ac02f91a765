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
# # §15.3.1 The forward process: worked solutions
#
# The proof asked for by Problem 15.3.1, and the two exercises of `chapters/15_3_1_forward_diffusion`.

# %%
import torch

from companion_lib import forward_diffusion, settings
from companion_lib.grading import check

run = settings.setup(seed=0)

# %% [markdown]
# ## Problem 15.3.1: a proof of (15.8)
#
# **Fact.** If z₁ ~ N(μ₁, σ₁²I) and z₂ ~ N(μ₂, σ₂²I) are *independent*, then a z₁ + b z₂ ~
# N(aμ₁ + bμ₂, (a²σ₁² + b²σ₂²)I): a linear map of the Gaussian vector (z₁, z₂) is Gaussian, means are
# linear, and the variances add because the cross-covariance is zero. (The text's hint is the case
# μ₁ = μ₂ = μ, σ₁ = σ₂ = 1; it needs the independence too.)
#
# **Claim.** For every t ≥ 1, q(x_t | x₀) = N(√ᾱ_t x₀, (1 − ᾱ_t)I). **Induction on t.**
#
# * t = 1: by (15.7), q(x₁ | x₀) = N(√α₁ x₀, β₁I) = N(√ᾱ₁ x₀, (1 − ᾱ₁)I), since ᾱ₁ = α₁ = 1 − β₁.
# * t − 1 → t: write one step of (15.7) as x_t = √α_t x_{t−1} + √β_t ε_t with ε_t ~ N(0, I) drawn
#   independently of x_{t−1} (and of x₀). Given x₀, by the induction hypothesis x_{t−1} ~
#   N(√ᾱ_{t−1} x₀, (1 − ᾱ_{t−1})I). The fact with a = √α_t, b = √β_t gives a Gaussian with mean
#   √α_t √ᾱ_{t−1} x₀ = √ᾱ_t x₀ and variance
#   α_t(1 − ᾱ_{t−1}) + β_t = α_t − ᾱ_t + 1 − α_t = 1 − ᾱ_t.  ∎
#
# The two places where the proof can go wrong are the ones the lesson's wrong formulas make: the noise
# added at step s is shrunk by every later step, √(α_{s+1}⋯α_t), so the variances do *not* simply add
# up to β₁ + ⋯ + β_t; and the product ᾱ_t must include α_t itself (entry t − 1 in code).

# %% [markdown]
# ## Exercise 1: ᾱ_t
#
# A cumulative product of α_t = 1 − β_t. (`NoiseSchedule` computes exp(Σ log(1 − β_s)) with
# `log1p`, which agrees to rounding; `torch.cumprod` is the direct translation.)

# %%
def alpha_bar(betas):
    """betas (T,) float64, entry t−1 = β_t  →  (T,) tensor, entry t−1 = ᾱ_t, in betas's dtype."""
    return torch.cumprod(1 - betas, dim=0)


result = check("15.3.1.alpha_bar", alpha_bar)
assert result, result
result

# %% [markdown]
# ## Exercise 2: `q_sample`
#
# Cast the float64 schedule to x0's dtype and device first (`.to(x0)`), pick entry t − 1, reshape it to
# (batch, 1, …, 1), then apply (15.8). The noise is cast too, in case it came in another dtype.

# %%
def q_sample(alpha_bars, x0, t, noise):
    """alpha_bars (T,) float64 (entry t−1 = ᾱ_t); x0 (batch, ...); t (batch,) long in 1..T; noise like x0
    → x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε, same shape, dtype and device as x0."""
    ab = alpha_bars.to(x0)[t.to(x0.device) - 1]                        # ᾱ_t, x0's dtype and device
    ab = ab.reshape(-1, *([1] * (x0.ndim - 1)))                         # (batch, 1, ..., 1)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise.to(x0)              # (15.8)


result = check("15.3.1.q_sample", q_sample)
assert result, result
result

# %% [markdown]
# On the run's device, in float32, against the library's `forward_diffusion.q_sample`:

# %%
# NBVAL_CHECK_OUTPUT
schedule = forward_diffusion.NoiseSchedule.linear(1000)
g = torch.Generator().manual_seed(0)
x0 = (2 * torch.rand(8, 64, generator=g) - 1).to(run.device)
eps = torch.randn(8, 64, generator=g).to(run.device)
t = torch.randint(1, 1001, (8,), generator=g).to(run.device)
mine = q_sample(schedule.alpha_bars, x0, t, eps)
ref = forward_diffusion.q_sample(schedule, x0, t, eps)
print(mine.dtype, mine.device.type == run.device.type, f"max |difference| < 1e-5: {(mine - ref).abs().max().item() < 1e-5}")

# %% [markdown]
# ## Exercise 3: two Gaussian steps composed
#
# Substitute: x_t = a(b·x_{t−2} + √u·ε′) + √v·ε = ab·x_{t−2} + (a√u·ε′ + √v·ε). The two noise terms
# are independent Gaussians with mean 0 and variances a²u and v, so their sum has variance a²u + v
# (the fact of the proof above). The coefficient is ab. With (a, v) = (√α_t, β_t) and (b, u) =
# (√ᾱ_{t−1}, 1 − ᾱ_{t−1}) this is exactly the induction step of the proof.

# %%
def compose(a, v, b, u):
    """x_t = a·x_{t−1} + √v·ε after x_{t−1} = b·x_{t−2} + √u·ε′ (ε, ε′ independent N(0, 1))
    → (c, w): x_t given x_{t−2} is N(c·x_{t−2}, w). Float64 tensors that broadcast."""
    return a * b, a ** 2 * u + v


result = check("15.3.1.compose", compose)
assert result, result
result

# %% [markdown]
# Iterated from (1, 0) over the linear schedule, it gives (√ᾱ_T, 1 − ᾱ_T):

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():
    c, w = torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    for a_t, b_t in zip(schedule.alphas.sqrt(), schedule.betas):
        c, w = compose(a_t, b_t, c, w)
    print(f"c² = ᾱ_T: {abs(c.item() ** 2 - schedule.alpha_bars[-1].item()) < 1e-12};  "
          f"w = 1 − ᾱ_T: {abs(w.item() - schedule.one_minus_alpha_bars[-1].item()) < 1e-12}")
