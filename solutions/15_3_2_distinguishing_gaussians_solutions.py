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
# # §15.3 Problem 15.3.2: worked solutions
#
# The proofs of Problem 15.3.2 (i) and (ii), and the two exercises of
# `chapters/15_3_2_distinguishing_gaussians`.

# %%
import math

import torch

from companion_lib import settings
from companion_lib.grading import check

run = settings.setup(seed=0)

# %% [markdown]
# ## (i) The error probability
#
# Shifting and flipping the line changes nothing, so put the means at −t/2 (P) and +t/2 (Q). The
# classifier says "Q" exactly when x > 0: the decision boundary is the midpoint. A sample of P is
# misclassified when x > 0, i.e. when the standardised Z = (x + t/2)/σ ~ N(0, 1) exceeds t/(2σ):
# probability 1 − Φ(t/2σ). By symmetry a sample of Q is misclassified (x < 0) with the same probability.
# With priors ½ each,
#
# $$P(\text{error}) = \tfrac12\big(1-\Phi(\tfrac{t}{2\sigma})\big) + \tfrac12\big(1-\Phi(\tfrac{t}{2\sigma})\big)
#   = 1-\Phi\!\left(\tfrac{t}{2\sigma}\right).$$
#
# For code, 1 − Φ(z) = ½ erfc(z/√2): subtracting Φ(z) from 1 loses every digit once Φ(z) rounds to 1
# (z ≳ 8.3 in float64), while `erfc` keeps its relative accuracy far into the tail.

# %%
def error_probability(t, sigma):
    """t ≥ 0 (distance between the means), sigma > 0, float64 tensors that broadcast → P(error), same shape."""
    t, sigma = torch.as_tensor(t), torch.as_tensor(sigma)
    return 0.5 * torch.special.erfc(t / (2 * sigma) / math.sqrt(2))


result = check("15.3.2.error_probability", error_probability)
assert result, result
result

# %% [markdown]
# ## (ii) The bound
#
# For z > 0, the tail bound 1 − Φ(z) ≤ ½ e^{−z²/2} with z = t/(2σ) gives
#
# $$P(\text{error}) = 1-\Phi\!\left(\tfrac{t}{2\sigma}\right) \le \tfrac12\exp\!\Big(-\tfrac12\cdot\tfrac{t^2}{4\sigma^2}\Big)
#   = \tfrac12\exp\!\Big(-\tfrac{t^2}{8\sigma^2}\Big),$$
#
# which decays like exp(−(t/σ)²/8): exponentially in the square of t/σ. (At t = 0 both sides are ½.)
# For completeness, a proof of the tail bound: g(z) = ½e^{−z²/2} − (1 − Φ(z)) has g(0) = 0, g(∞) = 0 and
# g'(z) = e^{−z²/2}(1/√(2π) − z/2), positive on [0, 2/√(2π)) and negative after, so g rises from 0 and then
# falls back to 0: it is ≥ 0 for all z ≥ 0.

# %%
def error_bound(t, sigma):
    """t ≥ 0, sigma > 0, float64 tensors that broadcast → the bound on P(error) from the Gaussian tail bound."""
    t, sigma = torch.as_tensor(t), torch.as_tensor(sigma)
    return 0.5 * torch.exp(-t ** 2 / (8 * sigma ** 2))


result = check("15.3.2.error_bound", error_bound)
assert result, result
result

# %%
# NBVAL_CHECK_OUTPUT
with settings.cpu_float64():
    z = torch.linspace(0, 40, 4001, dtype=torch.float64)
    gap = 0.5 * torch.exp(-z ** 2 / 2) - 0.5 * torch.special.erfc(z / math.sqrt(2))
    print(f"½ exp(−z²/2) − (1 − Φ(z)) >= 0 on 4001 points of [0, 40]: {bool((gap >= -1e-300).all())}; "
          f"largest at z = {z[gap.argmax()].item():.2f} (2/√(2π) = {2 / math.sqrt(2 * math.pi):.2f})")
