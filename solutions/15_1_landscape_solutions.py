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
# # §15.1 The landscape: worked solution
#
# The exercise of `chapters/15_1_landscape`: the mask of one MADE layer (Germain et al. 2015).

# %%
import torch

from companion_lib import settings
from companion_lib.grading import check

run = settings.setup(seed=0)

# %% [markdown]
# ## Why the rule is ≥ in the hidden layers and > at the output
#
# Give input pixel j the degree m(j), its position 1..D in the ordering, and every hidden unit a
# degree m ∈ 1..D−1, read as "this unit may depend on the pixels of degree 1..m". A connection from a
# unit of degree m to a unit of degree m' keeps that promise exactly when m ≤ m': the new unit then
# depends on pixels of degree ≤ m ≤ m'. So a hidden layer keeps the weight from input j to output k
# when m'(k) ≥ m(j). By induction over the layers, a hidden unit of degree m depends only on pixels of
# degree ≤ m.
#
# The output unit that gives the conditional of the pixel of degree d must depend only on pixels of
# degree **< d** (the pixels before it); with ≥ it would also see pixel d itself, and the network could
# copy its input: the "conditional" would put all its mass on the observed value and the product over
# pixels would no longer be a distribution. Hence the strict inequality in the output layer only.
# (Hidden units of degree D would then feed no output at all, which is why their degrees stop at D−1.)
#
# In tensor form: rows are outputs, columns are inputs (`nn.Linear` computes x Wᵀ with W of shape
# (n_out, n_in)), so compare a column of output degrees with a row of input degrees by broadcasting.

# %%
def made_mask(in_degrees, out_degrees, output_layer):
    """in_degrees (n_in,), out_degrees (n_out,) long; output_layer: bool → (n_out, n_in) float32 mask of 0/1."""
    rows, cols = out_degrees[:, None], in_degrees[None, :]
    allowed = rows > cols if output_layer else rows >= cols
    return allowed.to(torch.float32)


result = check("15.1.made_mask", made_mask)
assert result, result
result

# %% [markdown]
# A worked example: three pixels in the order 2, 0, 1 (input degrees m = (2, 3, 1)), one hidden layer of
# two units with degrees 1 and 2. The hidden mask lets unit 1 (degree 1) see only pixel 2 and unit 2
# (degree 2) see pixels 2 and 0; the output mask lets pixel 2's conditional (degree 1) see nothing,
# pixel 0's (degree 2) only hidden unit 1, pixel 1's (degree 3) both hidden units.

# %%
d_in, d_hidden = torch.tensor([2, 3, 1]), torch.tensor([1, 2])
print("hidden mask (2 × 3):\n", made_mask(d_in, d_hidden, False))
print("output mask (3 × 2):\n", made_mask(d_hidden, d_in, True))
assert made_mask(d_hidden, d_in, True)[2].sum() == 0        # the first pixel of the ordering sees nothing
