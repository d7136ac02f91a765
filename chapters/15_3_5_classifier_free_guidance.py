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
# # §15.3 Conditional generation: classifier-free guidance (eq. 15.12)
#
# A diffusion model that learned $p(x)$ draws *some* digit. To ask for a particular one, the text trains a
# single network $\epsilon_\theta(x_t, t, c)$ that sees the label $c$ most of the time and a null label $\varnothing$
# otherwise, and at sampling time extrapolates from the unconditional prediction toward the conditional one:
# $$\hat\epsilon = \epsilon_{uncond} + w\,(\epsilon_{cond} - \epsilon_{uncond}) \qquad (15.12).$$
# $w = 0$ is the unconditional model, $w = 1$ the plain conditional one, and $w > 1$ goes further.
# In this lesson we
#
# 1. write (15.12) (exercise);
# 2. train a conditional denoiser on a labelled 2-D mixture and watch guidance push samples away from the other classes;
# 3. do the same on the digits, and **measure** the trade-off the text describes: fidelity to the requested
#    class (a digit classifier's verdict) against diversity (how many different training images the samples resemble).
#
# **Needs:** `15_3_3_reverse_diffusion_ddpm` (training and sampling). Quick mode: under a minute.
#
# **Note on the text.** In the text, the paragraph that opens "Putting it all together: Conditional
# Generation" ("The process described above generates unconditional samples ...") appears a second time,
# word for word, right after the discussion of the guidance scale and before §15.3.4. It is a repetition
# (a copy-paste slip), not new material: nothing in this lesson depends on the second copy.

# %%
import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

from companion_lib import data, ddpm, ebm, forward_diffusion, guidance, metrics, settings, training
from companion_lib.viz import common, widgets
from companion_lib.denoisers import ResidualDenoiser
from companion_lib.grading import check

run = settings.setup(seed=0)
T = 1000
schedule = forward_diffusion.NoiseSchedule.cosine(T, max_beta=0.2)

# %% [markdown]
# ## 1. The guided prediction (15.12)
#
# **Exercise.** Write $\hat\epsilon$ from the two predictions and the guidance scale $w$.

# %%
def cfg_combine(eps_cond, eps_uncond, w):
    """eps_cond, eps_uncond (batch, ...): the predictions with the label and with the null label;
    w: the guidance scale (a number). Returns the guided prediction of eq. 15.12, same shape."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
result = check("15.3.5.cfg", cfg_combine)
result

# %%
cfg_combine = result.or_reference()


def guided(model, labels, w, null_label):
    """ε̂(x_t, t) for the sampler: a pass with the labels and one with ∅, combined by your cfg_combine."""
    return guidance.guided_eps(model, labels, w, null_label, combine=cfg_combine)


# %% [markdown]
# ## 2. A labelled mixture in the plane
#
# Three classes, each a Gaussian blob, overlapping enough that a point between two blobs could belong
# to either. Because the classes are known Gaussians, the exact class posterior $p(c\mid x)$ tells us
# how clearly a sample belongs to the class it was asked for.

# %%
K = 3
MEANS = torch.tensor([[0.0, 1.0], [-0.87, -0.5], [0.87, -0.5]])
VAR = 0.12
WEIGHTS = torch.full((K,), 1 / K)
g = torch.Generator().manual_seed(0)
labels_2d = torch.multinomial(WEIGHTS, 12_000, replacement=True, generator=g)
x_2d = MEANS[labels_2d] + VAR ** 0.5 * torch.randn(12_000, 2, generator=g)


def class_posterior(x):
    """Exact p(c | x) of the three equal-weight blobs: (n, 3)."""
    return torch.softmax(-((x[:, None] - MEANS[None]) ** 2).sum(-1) / (2 * VAR), 1)


torch.manual_seed(0)
net2d = ResidualDenoiser(2, hidden=128, blocks=2, emb_dim=64, n_classes=K).to(run.device)
P_NULL = 0.15                                       # the text: the label is dropped 10–20% of the time


def cond_loss(model, batch):
    x0, c = batch
    t = torch.randint(1, T + 1, (x0.shape[0],), device=x0.device)
    c = guidance.null_labels(c, model.null_label, P_NULL)
    return ddpm.ddpm_loss(schedule, model, x0, t, torch.randn_like(x0), c) / x0.shape[1]


fit2d = training.train(net2d, cond_loss, (x_2d.to(run.device), labels_2d.to(run.device)),
                       steps=run.budget(quick=800, full=8000), batch_size=256, lr=3e-3, warmup=100,
                       cosine=True, ema_decay=0.995, desc="conditional 2-D denoiser")
print(f"{fit2d.steps_run} steps in {fit2d.seconds:.1f} s")

# %%
W_VALUES = (0.0, 1.0, 3.0, 7.5)     # quick mode samples on a respaced chain of 250 of the 1000 steps
asked = torch.zeros(500, dtype=torch.long, device=run.device)           # ask for class 0 (the top blob)
fig, axes = plt.subplots(1, 4, figsize=(15, 3.9), sharex=True, sharey=True)
for ax, w in zip(axes, W_VALUES):
    xs = ddpm.sample(schedule, guided(fit2d.ema.model, asked, w, K), (500, 2), device=run.device,
                          n_steps=run.budget(quick=250, full=None), generator=torch.Generator().manual_seed(1)).cpu()
    post = class_posterior(xs)[:, 0]
    ax.scatter(x_2d[:3000, 0], x_2d[:3000, 1], s=1, c=labels_2d[:3000], cmap="Pastel1", alpha=0.5)
    ax.scatter(xs[:, 0], xs[:, 1], s=2, c="C0")
    ax.set_title(f"w = {w}: p(c=0 | x) ≥ 0.9 for {float((post >= 0.9).float().mean()):.0%}", fontsize=10)
    print(f"w = {w:>3}: share with p(class 0 | x) >= 0.9: {float((post >= 0.9).float().mean()):.3f}; "
          f"mean height {xs[:, 1].mean().item():+.2f} (class mean +1.00); spread {xs.std(0).mean().item():.2f} "
          f"(class {VAR ** 0.5:.2f})")
axes[0].set_xlim(-2.5, 2.5)
axes[0].set_ylim(-2, 2.5)
plt.suptitle("asking for class 0 (top blob) with guidance w (data in pastel)", y=1.02)
plt.tight_layout()
plt.show()

# %% [markdown]
# With $w = 0$ the label is ignored and all three blobs appear; $w = 1$ draws the top blob itself, tails
# included. Larger $w$ moves the samples away from the boundaries with the other two classes: at $w = 3$
# every sample is clearly of class 0 and the cloud is tighter than the class itself (less diverse); at
# $w = 7.5$ the extrapolation overshoots and throws a few samples far from any data, so the spread grows
# again (the printed numbers).
#
# ## 3. The digits
#
# A conditional version of the digit denoiser of 15_3_3 (a label embedding added in every block next to
# the step's), trained with the label dropped 15% of the time. Training sits alone in the next cell.

# %%
split = data.load_digits_split(validation=False)
x_train = data.unit_to_signed(data.to_unit(torch.as_tensor(split.X_train, dtype=torch.float32))).to(run.device)
y_train = torch.as_tensor(split.y_train, dtype=torch.long).to(run.device)
torch.manual_seed(0)
denoiser = ResidualDenoiser(64, n_classes=10).to(run.device)
fit = training.train(denoiser, cond_loss, (x_train, y_train), steps=run.budget(quick=1500, full=30_000),
                     batch_size=128, lr=3e-3, warmup=200, cosine=True, ema_decay=0.999, eval_every=100,
                     desc="conditional digit denoiser")
model = fit.ema.model
print(f"{fit.steps_run} steps in {fit.seconds:.1f} s ({fit.steps_run / fit.seconds:.0f} steps/s)")

# %% [markdown]
# ### Fidelity and diversity across $w$
#
# For each $w$, 20 samples of every class (200 in all). Quick mode runs the reverse chain on a respaced
# schedule of 100 of the 1000 steps (the same $\bar\alpha_t$ at the steps it visits; each visited step is
# a larger jump), which is ten times cheaper; full mode uses all 1000.
#
# * **Fidelity**: the share of samples that the digit judge (`metrics.DigitJudge`) labels as the class asked for.
# * **Diversity**: within each class, the share of *distinct* nearest training images among its 20 samples
#   (1.0: every sample resembles a different training digit; low: many collapse onto the same few).

# %%
judge = metrics.DigitJudge()
print(f"judge: held-out accuracy {judge.accuracy:.3f}")
train_unit = data.to_unit(torch.as_tensor(split.X_train, dtype=torch.float32))
PER_CLASS = 20
N_STEPS = run.budget(quick=100, full=None)
W_DIGITS = (0.0, 1.0, 2.0, 3.0, 5.0, 7.5)
asked = torch.arange(10).repeat_interleave(PER_CLASS).to(run.device)


def distinct_share(x_unit, classes):
    """Mean over classes of (number of distinct nearest training images) / (samples of that class)."""
    nearest = torch.cdist(x_unit, train_unit).argmin(1)
    return float(np.mean([len(set(nearest[classes == c].tolist())) / int((classes == c).sum())
                          for c in range(10)]))


grids, table = {}, []
for w in W_DIGITS:
    xs = ddpm.sample(schedule, guided(model, asked, w, 10), (len(asked), 64), device=run.device,
                          clip_x0=True, n_steps=N_STEPS, generator=torch.Generator().manual_seed(2))
    xu = data.signed_to_unit(xs.clamp(-1, 1)).cpu()
    grids[w] = xu
    accuracy = float((torch.as_tensor(judge.predict(xu)) == asked.cpu()).float().mean())
    table.append((w, accuracy, distinct_share(xu, asked.cpu()), judge.confident_share(xu)))
for w, acc, div, conf in table:
    print(f"w = {w:>3}: judge agrees with the requested class {acc:.1%}; distinct nearest training images "
          f"{div:.2f}; confident share {conf:.1%}")

# %%
table_np = np.array(table)
fig, ax = plt.subplots(figsize=(5.5, 3.4))
ax.plot(table_np[:, 0], table_np[:, 1], "o-", label="fidelity: judge = requested class")
ax.plot(table_np[:, 0], table_np[:, 2], "s-", label="diversity: distinct nearest training images")
ax.set_xlabel("guidance scale w")
ax.set_ylim(0, 1.05)
ax.legend(fontsize=8)
ax.set_title("the trade-off of (15.12), measured")
plt.tight_layout()
plt.show()

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
for ax, w in zip(axes, (0.0, 1.0, 7.5)):
    order = torch.arange(10)[:, None] * PER_CLASS + torch.arange(8)[None]      # 8 per class, one row each
    common.image_grid(grids[w][order.flatten()], nrow=8, ax=ax, vmin=0, vmax=1, title=f"w = {w}")
plt.suptitle("rows: the class asked for, 0 to 9", y=1.0)
plt.tight_layout()
plt.show()


# %% [markdown]
# ### Try it: a class and a guidance scale
#
# 16 samples of the chosen class (50 respaced steps, so each redraw is quick).

# %%
def draw_class(digit, w):
    labels = torch.full((16,), digit, dtype=torch.long, device=run.device)
    xs = ddpm.sample(schedule, guided(model, labels, w, 10), (16, 64), device=run.device, clip_x0=True,
                          n_steps=50, generator=torch.Generator().manual_seed(5))
    fig, ax = plt.subplots(figsize=(7, 1.3))
    common.image_grid(data.signed_to_unit(xs.clamp(-1, 1)).cpu(), nrow=16, ax=ax, vmin=0, vmax=1,
                      title=f"class {digit}, w = {w}")
    return fig


controls = {"digit": W.Dropdown(options=list(range(10)), value=3, description="class"),
            "w": W.FloatSlider(value=3.0, min=0.0, max=10.0, step=0.5, description="w")}
display(widgets.sliders_with_figure(controls, draw_class))

# %% [markdown]
# ## Summary
#
# * One network, trained with the label replaced by $\varnothing$ 15% of the time, gives both $\epsilon_{cond}$ and
#   $\epsilon_{uncond}$; (15.12) mixes them at sampling time, with no classifier anywhere.
# * On the 2-D mixture, $w > 1$ moves samples away from the other classes, beyond where the class's own data lie.
# * On the digits the judge's agreement with the requested class rises with $w$ while the share of distinct
#   nearest training images falls: fidelity is bought with diversity, as the text says, and the numbers above
#   say at what rate for this model.

# %% [markdown]
# Your exercises in this lesson, as the autograder last saw them:

# %%
from companion_lib.grading import progress

progress("15.3.5")
