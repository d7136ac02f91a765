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
# # §15.3 Training and sampling choices: what the network predicts, how the loss weighs each $t$, how many steps to sample
#
# Lesson 15_3_3 trained a digit denoiser on your loss (15.10) and sampled it with your step (15.11). The text
# fixes three things there that practice does not: the network predicts the noise $\epsilon$; every step
# $t$ counts equally in the loss; and sampling takes all $T = 1000$ steps. In this lesson we
#
# 1. write the three usual **parameterisations** ($\epsilon$, $v$, $\hat x_0$) and the three usual **weightings**
#    of the loss (none, as in (15.10); the weights that make it the variational bound; min-SNR) in one currency,
#    the error in $\epsilon$, and check the conversions;
# 2. train the same network with each choice **on equal budgets** and measure the samples with the digit
#    judge *and* the copy check side by side (a model that copies its training digits pleases the judge);
# 3. measure the **cost of sampling**: quality and seconds against the number of sampling steps, from
#    1000 down to 10, for respaced ancestral sampling and for deterministic DDIM.
#
# **Needs:** 15_3_3 (the loss (15.10), the step (15.11), the ELBO weight, the judge and the copy check).
# Quick mode: smaller runs than full mode (each cell says which); well under a minute.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from companion_lib import data, ddpm, forward_diffusion, metrics, recipes, settings
from companion_lib.viz import common

run = settings.setup(seed=0, notebook="15_3_3b_training_and_sampling_choices")
T = 1000
schedule = forward_diffusion.NoiseSchedule.cosine(T, max_beta=0.2)     # the schedule of 15_3_3

# %% [markdown]
# ## 1. Three things a network can predict, one currency
#
# With $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$ (15.8), knowing $x_t$ and any one of
# $\epsilon$, $x_0$ or the "velocity" $v = \sqrt{\bar\alpha_t}\,\epsilon - \sqrt{1-\bar\alpha_t}\,x_0$
# (Salimans & Ho 2022) gives the other two:
# $$\hat\epsilon = \sqrt{\bar\alpha_t}\,\hat v + \sqrt{1-\bar\alpha_t}\,x_t, \qquad
#   \hat\epsilon = \frac{x_t - \sqrt{\bar\alpha_t}\,\hat x_0}{\sqrt{1-\bar\alpha_t}}.$$
# So a network that predicts $v$ or $x_0$ can be read as an $\epsilon_\theta$ (`ddpm.EpsilonFrom`), and the
# loss (15.10), the step (15.11) and every sampler run on it unchanged. What changes is what the network's
# own output has to get right: its squared error is $\lVert\epsilon - \hat\epsilon\rVert^2$ times
# $1/\bar\alpha_t$ for $v$ and times $1/\mathrm{SNR}_t$ for $x_0$, with $\mathrm{SNR}_t = \bar\alpha_t/(1-\bar\alpha_t)$.
# A check of both factors on random data:

# %%
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(0)
with settings.cpu_float64():
    x0 = torch.randn(500, 64, generator=g, dtype=torch.float64)
    eps = torch.randn(500, 64, generator=g, dtype=torch.float64)
    t = torch.randint(1, T + 1, (500,), generator=g)
    xt = forward_diffusion.q_sample(schedule, x0, t, eps)
    ab, one_m = schedule.at("alpha_bars", t, xt), schedule.at("one_minus_alpha_bars", t, xt)
    v_hat = ab.sqrt() * eps - one_m.sqrt() * x0 + 0.1 * torch.randn(500, 64, generator=g, dtype=torch.float64)
    eps_hat = ddpm.eps_from_prediction(schedule, v_hat, xt, t, "v")
    v_err = (ab.sqrt() * eps - one_m.sqrt() * x0 - v_hat).pow(2).sum(1)
    gap_v = (v_err - (eps - eps_hat).pow(2).sum(1) / ab.squeeze(1)).abs().max().item()
    x0_hat = x0 + 0.1 * torch.randn(500, 64, generator=g, dtype=torch.float64)
    eps_hat = ddpm.eps_from_prediction(schedule, x0_hat, xt, t, "x0")
    snr = (ab / one_m).squeeze(1)
    gap_x0 = ((x0 - x0_hat).pow(2).sum(1) - (eps - eps_hat).pow(2).sum(1) / snr).abs().max().item()
print(f"‖v − v̂‖² = ‖ε − ε̂‖²/ᾱ_t: largest gap {gap_v:.0e};  ‖x_0 − x̂_0‖² = ‖ε − ε̂‖²/SNR_t: largest gap {gap_x0:.0e}")
assert gap_v < 1e-8 and gap_x0 < 1e-6

# %% [markdown]
# ## 2. Three weightings of the loss
#
# In one currency, a loss is $\mathbb E_t\, w_t\,\lVert\epsilon - \epsilon_\theta(x_t, t)\rVert^2$ and the choices are the weights:
#
# * **none**, $w_t = 1$: the text's (15.10) (Ho et al.'s "simple" loss);
# * **ELBO**: $w_t = \beta_t^2 / (2\sigma_t^2\alpha_t(1-\bar\alpha_t))$, the weight of 15_3_3 that makes the loss the
#   variational bound (`ddpm.elbo_weight`, here scaled to mean 1 over $t$);
# * **min-SNR-$\gamma$**: $w_t = \min(\mathrm{SNR}_t, \gamma)/\mathrm{SNR}_t$ (Hang et al. 2023), which leaves the
#   noisy steps alone and turns down the nearly clean ones, where $\lVert\epsilon - \epsilon_\theta\rVert^2$ is large
#   and hard to reduce but changes the samples little.
#
# A network predicting $v$ or $x_0$ trained on its *own* plain squared error carries the implicit weight
# $1/\bar\alpha_t$ or $1/\mathrm{SNR}_t$ in this currency: those are weightings too.

# %%
tt = torch.arange(1, T + 1)
like = torch.zeros(T, 1)
weights = {name: recipes.ddpm_weight(schedule, tt, like, name).squeeze(1) for name in recipes.WEIGHTINGS}
with settings.cpu_float64():                         # the schedule's float64 tables, on the CPU
    snr_t = (schedule.alpha_bars / schedule.one_minus_alpha_bars).float()
    alpha_bars32 = schedule.alpha_bars.float()
weights["plain v-loss (1/ᾱ_t)"] = 1 / alpha_bars32
weights["plain x̂0-loss (1/SNR_t)"] = 1 / snr_t
fig, ax = plt.subplots(figsize=(6, 3.2))
for name, w in weights.items():
    ax.loglog(tt.numpy(), w.numpy(), label=name, ls="-" if name in recipes.WEIGHTINGS else ":")
ax.set_xlabel("step t")
ax.set_ylabel(r"weight $w_t$ of $\|\epsilon-\epsilon_\theta\|^2$")
ax.set_title("what each loss asks the network to get right")
ax.legend(fontsize=7)
plt.tight_layout()
plt.show()
elbo_w = weights["elbo"]
print(f"ELBO weights: largest/smallest = {float(elbo_w.max() / elbo_w.min()):.0f}; share of the total weight "
      f"on t ≤ 10: {float(elbo_w[:10].sum() / elbo_w.sum()):.1%}")

# %% [markdown]
# The ELBO weights put a large share of the whole loss on the first few steps, where the image is almost
# clean: that is where the bound's terms are largest, and where a sample's look is least decided.
#
# ## 3. Every combination on one budget
#
# The recipe of 15_3_3 (`recipes.fit_ddpm_digits`: a residual MLP with two blocks, Adam with warm-up and
# cosine decay, an EMA of the weights, dequantised digits) trained with each parameterisation and weighting, the same number of
# steps and the same seed. The weight enters through the network handed to the loss (15.10):
# given $\tilde\epsilon = \epsilon - \sqrt{w_t}\,(\epsilon - \epsilon_\theta)$ in place of $\epsilon_\theta$, the unweighted
# loss computes $w_t\lVert\epsilon - \epsilon_\theta\rVert^2$ (in 15_3_3 that loss is **yours**; here the library's).
#
# Each model gives 256 samples (respaced ancestral sampling, 100 steps, $\hat x_0$ clipped), scored by the
# judge relative to real held-out digits, by the smallest class share, and by the copy check (mean distance
# to the nearest training digit, relative to that of real held-out digits: below 1 means closer to the
# training set than new digits are). **Quick mode** trains five of the nine combinations (the text's
# $\epsilon$ with each weighting, and min-SNR with each parameterisation) for 600 steps, a sixth of the
# recipe's budget; **full mode** trains all nine at the recipe's budget (15_3_3's quick budget, 3500 steps).

# %%
judge = metrics.DigitJudge()
real_share = judge.confident_share(data.heldout_digits())
ref_distance = metrics.heldout_nearest_train_distance().mean()


def quality(x_signed):
    """Judge share relative to real digits, smallest class share, nearest-training ratio, for samples on [−1, 1]."""
    x_unit = data.signed_to_unit(x_signed.clamp(-1, 1)).cpu()
    return {"ratio": judge.confident_share(x_unit) / real_share,
            "smallest": float(np.min(judge.class_histogram(x_unit))),
            "copy": float(metrics.nearest_train_distance(x_unit).mean() / ref_distance)}


COMPARE_STEPS = run.budget(quick=600, full=3500)
every = [(p, w) for p in ddpm.PREDICTIONS for w in recipes.WEIGHTINGS]
combos = run.budget(quick=[("eps", "none"), ("eps", "elbo"), ("eps", "min_snr"), ("v", "min_snr"), ("x0", "min_snr")],
                    full=every)
table, models = {}, {}
for prediction, weighting in combos:
    _, res = recipes.fit_ddpm_digits(steps=COMPARE_STEPS, prediction=prediction, weighting=weighting,
                                     dequantize=True, device=run.device, progress=False)
    x = ddpm.sample(schedule, res.ema.model, (256, 64), device=run.device, clip_x0=True, n_steps=100,
                    generator=torch.Generator().manual_seed(3))
    table[(prediction, weighting)] = quality(x)
    models[(prediction, weighting)] = res
print(f"{COMPARE_STEPS} training steps each; 256 samples, 100 respaced ancestral steps")
print(f"{'predicts':>8} {'weighting':>9}   judge ÷ real   smallest class   nearest-training ratio")
for (prediction, weighting), q in table.items():
    print(f"{prediction:>8} {weighting:>9}   {q['ratio']:12.2f}   {q['smallest']:14.1%}   {q['copy']:22.2f}")

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.8))
for (prediction, weighting), q in table.items():
    ax.scatter(q["copy"], q["ratio"], color=f"C{ddpm.PREDICTIONS.index(prediction)}",
               marker="osD"[recipes.WEIGHTINGS.index(weighting)])
    ax.annotate(f"{prediction}, {weighting}", (q["copy"], q["ratio"]), fontsize=7, xytext=(3, 3),
                textcoords="offset points")
ax.axvline(1.0, color="grey", ls=":", lw=1)
ax.set_xlabel("nearest-training ratio (1 = as far from the training set as new digits)")
ax.set_ylabel("judge's confident share ÷ real digits'")
ax.set_title(f"equal budgets ({COMPARE_STEPS} steps each)")
plt.tight_layout()
plt.show()

# %% [markdown]
# Read the two axes together. Up is what the judge likes; left is closer to the training digits. A choice
# that moves a model up *and* left may be learning the data or may be starting to copy it; only a move up
# at an unchanged nearest-training ratio is plainly better samples. The numbers printed above decide the
# sentences below for this run:

# %%
text_eps = table[("eps", "none")]
best = max(table, key=lambda k: table[k]["ratio"])
print(f"the text's choice (ε, unweighted): {text_eps['ratio']:.2f}x real, nearest-training ratio {text_eps['copy']:.2f}")
print(f"the judge's favourite: {best[0]}, {best[1]}: {table[best]['ratio']:.2f}x real, "
      f"nearest-training ratio {table[best]['copy']:.2f}")
print(f"ELBO weights (ε): {table[('eps', 'elbo')]['ratio']:.2f}x real: "
      + (f"the bound's weighting gives the worst samples of the {len(table)}" if table[("eps", "elbo")]["ratio"]
         == min(q["ratio"] for q in table.values()) else "not the worst samples here"))
print(f"min-SNR instead of no weighting (ε): {table[('eps', 'min_snr')]['ratio'] - text_eps['ratio']:+.2f} in the judge's ratio, "
      f"{table[('eps', 'min_snr')]['copy'] - text_eps['copy']:+.2f} in the nearest-training ratio")

# %% [markdown]
# ### 3.1 Weighted or unweighted: the bound and the samples, over seeds
#
# Ho et al. (2020) trained the same network on the bound's weights and on the unweighted (15.10) and
# found the unweighted loss **better for samples and worse for the bound**. Does that hold here? The
# $\epsilon$-predicting network of section 3 with weighting `none` and `elbo`, on the same budget, for
# several seeds (the seed of the weights and of the training draws; seed 0 is section 3's run). For each
# model: the held-out variational bound in bits/dim of section 7 of 15_3_3 ($\sigma_t^2 = \beta_t$, the Jacobian of
# $y \mapsto 2y - 1$ counted; fewer strata of $t$ than there, 32, and the same draws for every model) and the
# judge ratio and copy check on 256 samples as above. One seed is not evidence: the spread over seeds
# is the standard error, and the difference is paired by seed (same seed, same initial weights).
# **Quick mode**: 2 seeds at section 3's short budget (a standard error from two seeds rests on one degree
# of freedom: a rough guide, and a short budget can favour a different loss than a long one); **full
# mode**: 4 seeds at 3500 steps.

# %%
SEEDS = run.budget(quick=[0, 1], full=[0, 1, 2, 3])
x_held = data.unit_to_signed(data.heldout_digits()).to(run.device)
start_cpu = time.process_time()
paired = {"none": [], "elbo": []}
for weighting in paired:
    for seed in SEEDS:
        if seed == 0 and ("eps", weighting) in models:            # section 3's run: the same call with seed 0
            res, q = models[("eps", weighting)], dict(table[("eps", weighting)])
        else:
            _, res = recipes.fit_ddpm_digits(steps=COMPARE_STEPS, prediction="eps", weighting=weighting,
                                             dequantize=True, device=run.device, progress=False, seed=seed)
            x = ddpm.sample(schedule, res.ema.model, (256, 64), device=run.device, clip_x0=True, n_steps=100,
                            generator=torch.Generator().manual_seed(3))
            q = quality(x)
        nll_x = ddpm.variational_bound(schedule, res.ema.model, x_held, n_t=32, sigma="beta",
                                       generator=torch.Generator().manual_seed(6)).cpu()
        q["bound"] = data.dequantized_bits_per_dim(-nll_x + 64 * np.log(2), 64).mean().item()   # + Jacobian
        paired[weighting].append(q)
added_cpu = time.process_time() - start_cpu


def mean_se(values):
    """Mean and standard error over seeds (n − 1 in the variance)."""
    v = np.asarray(values, dtype=float)
    return v.mean(), v.std(ddof=1) / np.sqrt(len(v))


print(f"ε-prediction, {COMPARE_STEPS} training steps, seeds {SEEDS}; mean ± standard error over seeds")
print(f"{'':>22} {'none (15.10)':>16} {'elbo':>16} {'elbo − none (paired)':>22}")
summary = {}
for key, label in (("bound", "bound (bits/dim)"), ("ratio", "judge ÷ real"), ("copy", "nearest-training ratio")):
    a = [q[key] for q in paired["none"]]
    b = [q[key] for q in paired["elbo"]]
    (ma, sa), (mb, sb), (md, sd) = mean_se(a), mean_se(b), mean_se(np.subtract(b, a))
    summary[key] = (md, sd)
    print(f"{label:>22} {ma:9.3f} ± {sa:.3f} {mb:9.3f} ± {sb:.3f} {md:+13.3f} ± {sd:.3f}")
assert all(np.isfinite(q[k]) for qs in paired.values() for q in qs for k in ("bound", "ratio", "copy"))


def verdict(key, lower_is_better):
    md, sd = summary[key]
    elbo_better = (md < 0) if lower_is_better else (md > 0)
    clear = abs(md) > 2 * sd
    return (f"{'the ELBO-weighted loss' if elbo_better else 'the unweighted loss'} "
            f"{'is better' if clear else 'comes out ahead, but within 2 standard errors'} "
            f"({md:+.3f} ± {sd:.3f}, elbo − none)")


print(f"for the bound: {verdict('bound', lower_is_better=True)};")
print(f"for the samples (judge): {verdict('ratio', lower_is_better=False)}.")


def against_ho(key, ho_sign):
    """Ho et al.'s direction for elbo − none has sign ho_sign; does this run agree, beyond 2 standard errors?"""
    md, sd = summary[key]
    if abs(md) <= 2 * sd:
        return "undecided (within 2 standard errors)"
    return "holds" if np.sign(md) == ho_sign else "is reversed"


print(f"Ho et al.'s finding, here ({len(SEEDS)} seeds, {COMPARE_STEPS} steps): unweighted gives better samples: "
      f"{against_ho('ratio', -1)}; unweighted gives a worse bound: {against_ho('bound', -1)}.")
print(f"(CPU time of this comparison: {added_cpu:.1f} s)")

# %% [markdown]
# ## 4. The cost of sampling
#
# Ancestral sampling calls the network once per step: 1000 calls per batch of samples, against a single
# call per training example. Two ways to take fewer steps without retraining:
#
# * **respaced ancestral sampling** (Nichol & Dhariwal 2021; `ddpm.sample(..., n_steps=k)`): keep $k$ of the
#   steps, evenly spaced, and give the shorter chain the $\beta'$ that keep $\bar\alpha$ at the kept steps
#   ($\beta'_i = 1 - \bar\alpha_{s_i}/\bar\alpha_{s_{i-1}}$, `ddpm.respace`); each step is still (15.11), with fresh noise;
# * **deterministic DDIM** (Song, Meng & Ermon 2021, $\eta = 0$; `ddpm.ddim_step`): from $x_t$, predict
#   $\hat x_0$ and move to the noise level of the next kept step along the same $\epsilon_\theta$, adding no noise:
#   $$x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1-\bar\alpha_{t'}}\,\epsilon_\theta(x_t, t), \qquad \bar\alpha_0 = 1,$$
#   so the last step, to $t' = 0$, returns $\hat x_0$ itself. (`ddim_step` equals diffusers'
#   `DDIMScheduler.step` with the same $\beta$, `clip_sample=False`; the tests check it.)
#
# The model here is the one of section 3 that the judge liked best among those whose samples are not
# closer to the training digits than new digits are, within 10% (nearest-training ratio ≥ 0.9), so the
# differences between samplers are not lost in a poor model (**quick mode**: its short run, and the step
# counts below are a subset; full mode: 3500 training steps and every count from 1000 to 10). The same 256
# starting noises $x_T$ for every run.

# %%
fair = [k for k in table if table[k]["copy"] >= 0.9] or list(table)
chosen = max(fair, key=lambda k: table[k]["ratio"])
fit = models[chosen]
eps_model = fit.ema.model
print(f"the model: predicts {chosen[0]}, weighting {chosen[1]}, {fit.steps_run} training steps "
      f"(judge {table[chosen]['ratio']:.2f}x real with 100 respaced steps)")
STEP_COUNTS = run.budget(quick=[250, 50, 10], full=[1000, 500, 250, 100, 50, 20, 10])
cost = {"ancestral": {}, "DDIM": {}}
for k in sorted(STEP_COUNTS, reverse=True):
    for method in ("ancestral", "DDIM"):
        g = torch.Generator().manual_seed(3)
        start = time.perf_counter()
        if method == "ancestral":
            x = ddpm.sample(schedule, eps_model, (256, 64), device=run.device, clip_x0=True, n_steps=k, generator=g)
        else:
            x = ddpm.ddim_sample(schedule, eps_model, (256, 64), k, device=run.device, generator=g)
        seconds = time.perf_counter() - start
        cost[method][k] = dict(quality(x), seconds=seconds, samples=x)
for method, rows in cost.items():
    for k, q in sorted(rows.items(), reverse=True):
        print(f"{method:>9} {k:>5} steps: {q['seconds']:5.2f} s   judge {q['ratio']:.2f}x real   "
              f"smallest class {q['smallest']:.1%}   nearest-training ratio {q['copy']:.2f}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
for method, marker in (("ancestral", "o"), ("DDIM", "s")):
    ks = sorted(cost[method])
    for ax, key in zip(axes, ("ratio", "copy", "seconds")):
        ax.plot(ks, [cost[method][k][key] for k in ks], marker=marker, label=method if method == "DDIM"
                else "ancestral (respaced below 1000)")
for ax, label in zip(axes, ("judge's confident share ÷ real", "nearest-training ratio",
                            "seconds for 256 samples")):
    ax.set_xscale("log")
    ax.set_xlabel("sampling steps (network calls)")
    ax.set_ylabel(label)
axes[1].axhline(1.0, color="grey", ls=":", lw=1)
axes[2].set_yscale("log")
axes[0].legend(fontsize=8)
fig.suptitle(f"quality and cost against the number of sampling steps ({chosen[0]}, {chosen[1]}, "
             f"{fit.steps_run} training steps)")
plt.tight_layout()
plt.show()

# %%
fewest = min(STEP_COUNTS)
shown = [("ancestral", max(STEP_COUNTS)), ("ancestral", fewest), ("DDIM", fewest)]
fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
for ax, (method, k) in zip(axes, shown):
    common.image_grid(data.signed_to_unit(cost[method][k]["samples"][:36].clamp(-1, 1)).cpu(), nrow=6, ax=ax,
                      vmin=0, vmax=1, title=f"{method}, {k} steps")
plt.show()

# %% [markdown]
# The time is the number of network calls: the seconds fall in proportion to the steps. What the quality
# does as the steps fall is printed above for this run, and the next cell turns it into sentences. Two
# things to expect from the mechanics: respaced ancestral sampling adds fresh noise at every kept step, and
# with few steps each $\beta'$ is large, so a step is a large jump that (15.11), built for small steps,
# describes poorly; DDIM adds no noise and follows the deterministic path of $\hat x_0$, which tolerates large
# jumps better but cannot correct an early error with later noise.

# %%
most = max(STEP_COUNTS)
seconds_ratio = cost["ancestral"][most]["seconds"] / cost["ancestral"][fewest]["seconds"]
print(f"{most} steps took {seconds_ratio:.0f}x the time of {fewest} (the calls: {most // fewest}x)")
for k in sorted(STEP_COUNTS, reverse=True):
    a, d = cost["ancestral"][k], cost["DDIM"][k]
    better = "DDIM" if d["ratio"] > a["ratio"] else "ancestral"
    print(f"{k:>4} steps: {better} scores higher with the judge (DDIM {d['ratio']:.2f}, ancestral {a['ratio']:.2f}); "
          f"nearest-training ratios {d['copy']:.2f} (DDIM) and {a['copy']:.2f} (ancestral); "
          f"{most} ancestral steps: {cost['ancestral'][most]['ratio']:.2f}")
assert seconds_ratio > most / fewest / 4        # the cost is the network calls (loose: timers on a shared CPU)

# %% [markdown]
# ## Summary
#
# * A network can predict $\epsilon$, $v$ or $x_0$; each is read as an $\epsilon_\theta$ by (15.8), so the loss
#   (15.10) and the samplers are unchanged, and the choice only changes which steps the network's own error
#   emphasises. The weighting of the loss says the same thing explicitly: (15.10) weighs every step alike,
#   the ELBO weights pile onto the nearly clean steps, min-SNR turns those down.
# * On equal budgets the choices were measured side by side, with the copy check beside the judge; the
#   printed table decides which helped in this run, and whether a gain came with samples closer to the
#   training digits. Lesson 15_3_3 trains with $v$ and min-SNR-5 on **your** loss (15.10); the table shows
#   where that choice sits (at 15_3_3's budget in full mode; in quick mode, after a sixth of it).
# * The bound's weights against the unweighted (15.10) were compared over seeds on both the held-out bound
#   and the judge, paired by seed; the printed sentence says whether Ho et al.'s finding (unweighted: better
#   samples, worse bound) holds here beyond two standard errors, and one seed alone would not say.
# * Sampling costs one network call per step. Fewer steps, respaced or DDIM, trade quality for time; the
#   figure shows how much for this model.
