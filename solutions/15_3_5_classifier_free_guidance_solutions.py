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
# # §15.3 Classifier-free guidance: solution
#
# The exercise of `chapters/15_3_5_classifier_free_guidance`. No training here.

# %%
import torch

from companion_lib import settings
from companion_lib.grading import check

run = settings.setup(seed=0)

# %% [markdown]
# ## The guided prediction (15.12)
#
# Start at the unconditional prediction and move $w$ times along the difference that the label makes.
# Written as $(1-w)\,\epsilon_{uncond} + w\,\epsilon_{cond}$ it is an affine combination: a convex one
# for $0 \le w \le 1$ and an extrapolation beyond the conditional prediction for $w > 1$. (Some papers
# write $\epsilon_{cond} + w'(\epsilon_{cond} - \epsilon_{uncond})$; that is the same thing with $w = 1 + w'$,
# so their scales are ours minus one.)

# %%
def cfg_combine(eps_cond, eps_uncond, w):
    return eps_uncond + w * (eps_cond - eps_uncond)


check("15.3.5.cfg", cfg_combine)

# %%
e_c, e_u = torch.randn(4, 3), torch.randn(4, 3)
print("w = 0 gives ε_uncond:", torch.equal(cfg_combine(e_c, e_u, 0.0), e_u),
      "| w = 1 gives ε_cond:", torch.allclose(cfg_combine(e_c, e_u, 1.0), e_c))

# %% [markdown]
# ## The training step: label dropout
#
# A row loses its label when its uniform draw falls below $p_{uncond}$, which happens with probability
# $p_{uncond}$. The new labels are built with `torch.where`, so the caller's tensor (the data set's labels)
# is left alone; assigning into it (`labels[mask] = null_label`) would overwrite the data set's labels by ∅
# for every later epoch. The loss is then (15.10) with the model given those labels.

# %%
from companion_lib import ddpm


def cfg_training_loss(schedule, model, x0, labels, t, noise, u, p_uncond, null_label):
    c = torch.where(u < p_uncond, torch.full_like(labels, null_label), labels)
    return ddpm.ddpm_loss(schedule, model, x0, t, noise, c)


check("15.3.5.cfg_loss", cfg_training_loss)
