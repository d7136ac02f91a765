"""ipywidgets builders the lessons use, in section order: each returns a widget whose sliders redraw
a figure, and the function that draws it.

Every builder also works without a browser: calling its ``update``/``draw`` function directly (as the
tests and nbval do) draws the same figure, so a lesson never depends on a slider moving. All of them
build their sliders-over-a-figure layout with one helper, ``sliders_with_figure``. Only APIs that
ipywidgets 7.7 and 8 share are used.
"""
from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display
from matplotlib.figure import Figure

from companion_lib._checks import (as_array, as_tensor, check_callable, check_float, check_int,
                                   check_text)
from companion_lib.settings import cpu_float64
from companion_lib.viz import ch14, common

__all__ = ["sliders_with_figure", "em_stepper", "kl_asymmetry", "langevin_explorer", "elbo_q_slider",
           "latent_explorer_2d", "flow_layers", "forward_schedule_explorer", "gaussian_overlap"]


def sliders_with_figure(sliders: dict, draw):
    """The sliders (one above, several side by side) over an output area that shows
    ``draw(**{name: slider.value})`` on every change of any slider, and once at the start.

    sliders: {keyword of ``draw``: ipywidgets slider}. ``draw`` may return a Figure (shown, then
    closed) or draw with ``plt.show()`` itself. Returns the ``VBox``. The lessons' own widgets use it too
    (any ipywidgets value widget works as a "slider": a Dropdown, a SelectionSlider).
    """
    if not isinstance(sliders, dict) or not sliders or not all(
            isinstance(s, widgets.ValueWidget) for s in sliders.values()):
        raise TypeError("sliders must be a non-empty dict {keyword: ipywidgets slider}")
    check_callable(draw, "draw", "the sliders' values (as keywords) to a figure")
    out = widgets.Output()

    def redraw(change=None):
        with out:
            out.clear_output(wait=True)
            result = draw(**{name: s.value for name, s in sliders.items()})
            if isinstance(result, Figure):
                display(result)
                plt.close(result)

    for s in sliders.values():
        s.observe(redraw, names="value")
    redraw()
    controls = list(sliders.values())
    return widgets.VBox([controls[0] if len(controls) == 1 else widgets.HBox(controls), out])


# ---------------------------------------------------------------- §14.1: EM, one iteration at a time
def em_stepper(x, bin_edges, counts, path, xlim=None):
    """§14.1: a slider over EM iterations of a 1-D mixture, redrawing the fit over the histogram.

    x: unused (kept for the old call); bin_edges (B+1,) increasing, counts (B,) the histogram; path:
    the list from ``companion_lib.mixture.em_path`` (1-D data); xlim: optional (low, high) of the grid.
    Returns ``(widget, draw)``; ``draw(iteration)`` draws that iteration on a new figure and returns it.
    """
    edges = as_array(bin_edges, "bin_edges", ndim=1, min_rows=2)
    if not (np.diff(edges) > 0).all():
        raise ValueError("bin_edges must be strictly increasing (B + 1 edges of B bins)")
    counts = as_array(counts, "counts", shape=(len(edges) - 1,))
    if (counts < 0).any() or counts.sum() <= 0:
        raise ValueError("counts must be non-negative with a positive total (one count per bin)")
    if not isinstance(path, (list, tuple)) or not path or not all(
            isinstance(p, dict) and {"weights", "means", "covariances", "log_likelihood"} <= set(p) for p in path):
        raise TypeError("path must be the non-empty list of dicts that companion_lib.mixture.em_path returns")
    if xlim is not None:
        lim = as_array(xlim, "xlim", shape=(2,))
        if lim[0] >= lim[1]:
            raise ValueError(f"xlim must be (low, high) with low < high, got {tuple(lim)}")
    density = counts / (counts.sum() * np.diff(edges))
    grid = np.linspace(edges[0] if xlim is None else xlim[0], edges[-1] if xlim is None else xlim[1], 400)

    def draw(iteration: int):
        iteration = check_int(iteration, "iteration", low=0, high=len(path) - 1)
        step = path[iteration]
        fig, ax = plt.subplots(figsize=(6.5, 3.2))
        ax.bar(edges[:-1], density, width=np.diff(edges), align="edge", color="#cfd8dc", edgecolor="white",
               label="data")
        ch14.mixture_density_1d(ax, grid, step["weights"], step["means"], step["covariances"])
        ll = step["log_likelihood"]                     # em_path's mean per point; the total is n times it
        ax.set_title(f"EM iteration {iteration}: log-likelihood {ll * counts.sum():.2f} in total, "
                     f"{ll:.4f} per point (nats)", fontsize=10)
        ax.set_xlabel("forehead / body length")
        ax.set_ylabel("density")
        ax.legend(fontsize=8, loc="upper left")
        return fig

    slider = widgets.IntSlider(value=0, min=0, max=len(path) - 1, description="iteration",
                               continuous_update=False)
    return sliders_with_figure({"iteration": slider}, draw), draw


# ---------------------------------------------------------------- §14.2: KL is not symmetric
def kl_asymmetry(separation: float = 4.0, weight: float = 0.5, std: float = 0.6):
    """§14.2: sliders for the separation of P's two modes and the weight of the left one; each move
    refits one Gaussian by min KL(P‖Q) (moment matching) and by min KL(Q‖P) (mode seeking) and redraws.

    Returns ``(ui, update)``: ``ui`` the widget to display; ``update(separation, weight)`` draws the
    figure for those values and returns the fits (``companion_lib.divergences.bimodal_fits``'s dict),
    so it can be called (and tested) without a browser.
    """
    from companion_lib.divergences import bimodal_fits

    separation = check_float(separation, "separation", low=0.0, high=8.0)
    weight = check_float(weight, "weight", low=0.1, high=0.9)
    std = check_float(std, "std", low=0.0, low_open=True)

    @cpu_float64()  # exact fits on a grid, on the CPU
    def update(separation=separation, weight=weight):
        fits = bimodal_fits(separation, weight, std)
        fig, ax = plt.subplots(figsize=(7, 3.4))
        ch14.kl_fits(fits["grid"], fits["log_p"], {
            f"argmin KL(P‖Q): mass covering (KL(P‖Q) = {fits['kl_forward']:.3f})": fits["forward"],
            f"argmin KL(Q‖P): mode seeking (KL(Q‖P) = {fits['kl_reverse']:.3f})": fits["reverse"],
        }, ax=ax, title=f"one Gaussian fitted to a two-mode P (separation {separation:.1f}, "
                        f"left weight {weight:.2f})")
        peak = max([float(fits["log_p"].exp().max())]
                   + [1 / np.sqrt(2 * np.pi * v) for _, v in (fits["forward"], fits["reverse"])])
        ax.set_ylim(0, 1.6 * peak)
        ax.legend(fontsize=8, loc="upper right")
        plt.show()
        return fits

    sep = widgets.FloatSlider(value=separation, min=0.0, max=8.0, step=0.5, description="separation",
                              continuous_update=False)
    w = widgets.FloatSlider(value=weight, min=0.1, max=0.9, step=0.05, description="left weight",
                            continuous_update=False)
    return sliders_with_figure({"separation": sep, "weight": w}, update), update


# ---------------------------------------------------------------- §14.3: Langevin step size and length
def langevin_explorer(score_fn, x0, exact_probs, lim: float, step_size: float = 0.05, n_steps: int = 100,
                      seed: int = 0, max_steps: int = 1000):
    """§14.3: sliders for the Langevin step size η and the number of steps; each move reruns the
    chains from ``x0`` (n, 2) with a fixed seed and redraws their histogram next to the exact binned
    density ``exact_probs`` (bins, bins) on [−lim, lim]², with the total-variation distance.

    Returns ``(ui, update)``; ``update(step_size, n_steps)`` draws the figure and returns
    ``{"samples": (n, 2) tensor, "tv": float}`` (callable, and tested, without a browser).
    """
    from companion_lib import ebm

    check_callable(score_fn, "score_fn", "x (n, 2) to scores (n, 2)")
    with cpu_float64():  # only checked here: x0 may be an exact float64 start on the CPU
        x0 = as_tensor(x0, "x0", shape=(None, 2), min_rows=1, dtype=None)
    exact = as_array(exact_probs, "exact_probs", ndim=2)
    if exact.shape[0] != exact.shape[1] or exact.shape[0] < 1 or (exact < 0).any():
        raise ValueError(f"exact_probs must be a square (bins, bins) array of probabilities, got shape {exact.shape}")
    lim = check_float(lim, "lim", low=0.0, low_open=True)
    max_steps = check_int(max_steps, "max_steps", low=1)
    step_size = check_float(step_size, "step_size", low=1e-3, high=1.0)
    n_steps = check_int(n_steps, "n_steps", low=0, high=max_steps)
    seed = check_int(seed, "seed", low=0)
    bins = exact.shape[0]

    @cpu_float64()  # the histograms and their distance are exact, on the CPU
    def update(step_size=step_size, n_steps=n_steps):
        step_size = check_float(step_size, "step_size", low=0.0, low_open=True)
        n_steps = check_int(n_steps, "n_steps", low=0)
        g = torch.Generator().manual_seed(seed)
        x = ebm.langevin(score_fn, x0, step_size, n_steps, generator=g)
        hist = ebm.histogram_2d(x, lim, bins)
        tv = ebm.total_variation(hist, torch.as_tensor(exact))
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 4.2))
        vmax = exact.max() * 1.1
        for a, img, t in ((ax, hist.numpy(), f"{x.shape[0]} chains, η = {step_size:.3g}, {n_steps} steps"),
                          (bx, exact, "exact binned P = exp(−E)/Z")):
            a.imshow(img, origin="lower", extent=(-lim, lim, -lim, lim), cmap="magma", vmin=0, vmax=vmax)
            a.set_title(t, fontsize=10)
            a.set_xlabel("$x_1$")
            a.set_ylabel("$x_2$")
        fig.suptitle(f"total-variation distance between the two histograms: {tv:.3f}")
        fig.tight_layout()
        plt.show()
        return {"samples": x, "tv": tv}

    eta = widgets.FloatLogSlider(value=step_size, base=10, min=-3, max=0, step=0.1, description="η",
                                 continuous_update=False)
    steps = widgets.IntSlider(value=n_steps, min=0, max=max_steps, step=10, description="steps",
                              continuous_update=False)
    return sliders_with_figure({"step_size": eta, "n_steps": steps}, update), update


# ---------------------------------------------------------------- §14.4: the ELBO of a two-state h
@cpu_float64()  # exact, on the CPU (the dtype rule in settings)
def elbo_q_slider(log_joint, q_init: float = 0.2, n_grid: int = 401):
    """§14.4: move q(h=1|x) for a two-state h; redraw ELBO(q), log p(x) and the gap KL(q ‖ p(h|x)).

    log_joint: (2,) or (1, 2), the values log p(x, h) for one x and h ∈ {0, 1}; q_init in [0, 1];
    n_grid ≥ 2 points of the q grid. Returns ``(widget, draw)``; ``draw(q1)`` draws the figure for
    q(h=1|x) = q1 on a new figure and returns it (left: the ELBO over the simplex with the gap shaded;
    right: the three numbers as bars).
    """
    from companion_lib import elbo

    lj = as_tensor(log_joint, "log_joint", ndim=(1, 2)).reshape(1, -1)
    if lj.shape[1] != 2:
        raise ValueError(f"log_joint must hold log p(x, h) for h in {{0, 1}}: shape (2,) or (1, 2), "
                         f"got {tuple(lj.shape)}")
    q_init = check_float(q_init, "q_init", low=0.0, high=1.0)
    n_grid = check_int(n_grid, "n_grid", low=2)
    grid = torch.linspace(0, 1, n_grid, dtype=lj.dtype, device=lj.device)
    Q = torch.stack([1 - grid, grid], 1)
    curve = elbo.discrete_elbo(lj.expand(n_grid, 2), Q)
    log_px = float(elbo.log_evidence(lj)[0])
    q_post = float(elbo.posterior(lj)[0, 1])

    @cpu_float64()
    def draw(q1: float):
        q1 = check_float(q1, "q1", low=0.0, high=1.0)
        q = torch.tensor([[1 - q1, q1]], dtype=lj.dtype, device=lj.device)
        e_now = float(elbo.discrete_elbo(lj, q)[0])
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [2.2, 1]})
        ch14.elbo_sweep(grid, log_px, curve, ax=ax, q_post=q_post, q_now=q1)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.2), ncol=3)
        ch14.elbo_bars(log_px, e_now, ax=bx, title=f"q(h=1|x) = {q1:.2f}: gap = {log_px - e_now:.4f}")
        fig.tight_layout()
        return fig

    slider = widgets.FloatSlider(value=q_init, min=0.0, max=1.0, step=0.01, description="q(h=1|x)",
                                 continuous_update=False, readout_format=".2f")
    return sliders_with_figure({"q1": slider}, draw), draw


# ---------------------------------------------------------------- §14.5: a 2-D latent space
def latent_explorer_2d(decode, points=None, labels=None, extent: float = 3.0, step: float = 0.1):
    """§14.5: two sliders (z1, z2) move a point in a 2-D latent space and show the decoder's image there.

    decode: a callable taking a float32 tensor (m, 2) and returning images (m, 64) (tensor or array),
    e.g. ``lambda z: model.decode(z.to(device))[0]``. points (m, 2), labels (m,): optional encoded
    data drawn behind the moving point. Returns ``(ui, update)``; ``update(z1, z2)`` draws the figure
    and returns the decoded image as a (64,) NumPy array (callable without a browser).
    """
    check_callable(decode, "decode", "z (m, 2) to images (m, 64)")
    extent = check_float(extent, "extent", low=0.0, low_open=True)
    step = check_float(step, "step", low=0.0, low_open=True)
    if (points is None) != (labels is None):
        raise ValueError("points and labels must be given together (encoded data and its digit classes) or not at all")
    if points is not None:  # checked once here, as latent_scatter would on every redraw
        pts = as_array(points, "points", shape=(None, 2), min_rows=1)
        as_array(labels, "labels", shape=(len(pts),))

    def update(z1=0.0, z2=0.0):
        z1, z2 = check_float(z1, "z1"), check_float(z2, "z2")
        with torch.no_grad():
            img = decode(torch.tensor([[z1, z2]], dtype=torch.float32))
        img = as_array(img, "decode(z)", shape=(1, None))[0]
        fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(7.5, 3.4), gridspec_kw={"width_ratios": [1.4, 1]})
        if points is not None:
            ch14.latent_scatter(points, labels, ax=ax0, s=4)
            ax0.get_legend().remove()
        ax0.plot([z1], [z2], marker="*", color="black", ms=16, mec="white")
        ax0.set_xlim(-extent, extent)
        ax0.set_ylim(-extent, extent)
        ax0.set_xlabel("$z_1$")
        ax0.set_ylabel("$z_2$")
        ax0.set_title("latent plane (held-out codes)", fontsize=10)
        common.image_grid(img[None], nrow=1, ax=ax1, vmin=0, vmax=1,
                          title=f"decoder mean $\\mu_\\theta(z)$ at z = ({z1:.1f}, {z2:.1f})")
        plt.show()
        return img

    s1 = widgets.FloatSlider(value=0.0, min=-extent, max=extent, step=step, description="z1")
    s2 = widgets.FloatSlider(value=0.0, min=-extent, max=extent, step=step, description="z2")
    return sliders_with_figure({"z1": s1, "z2": s2}, update), update


# ---------------------------------------------------------------- §15.2: a flow, layer by layer
def flow_layers(stages, colors=None, lim: float = 3.5, names=None):
    """§15.2: a slider over the layers of a 2-D flow, redrawing the points after k layers.

    stages: list of (n, 2) tensors or arrays, the data and its image after each layer
    (``flows.RealNVP.stages(x)``); colors: optional (n,) values to colour the points by (e.g. the
    data's x₁, so one can follow each point); names: optional title per stage. The unit and 2σ
    circles of N(0, I), where the last stage should land, are drawn on every stage.
    Returns ``(widget, draw)``; ``draw(k)`` draws stage k on a new figure and returns it.
    """
    if not isinstance(stages, (list, tuple)) or not stages:
        raise TypeError(f"stages must be a non-empty list of (n, 2) arrays (RealNVP.stages(x)), got "
                        f"{type(stages).__name__}")
    pts = [as_array(s, f"stages[{i}]", shape=(None, 2), min_rows=1) for i, s in enumerate(stages)]
    if any(p.shape[0] != pts[0].shape[0] for p in pts):
        raise ValueError("stages must be a non-empty list of (n, 2) arrays with the same n")
    c = None if colors is None else as_array(colors, "colors", shape=(pts[0].shape[0],))
    lim = check_float(lim, "lim", low=0.0, low_open=True)
    if names is not None:
        if not isinstance(names, (list, tuple)) or len(names) != len(pts):
            raise ValueError(f"names must be a list of {len(pts)} titles (one per stage) or None, got {names!r}")
        names = [check_text(n, f"names[{i}]", optional=False) for i, n in enumerate(names)]
    angle = np.linspace(0, 2 * np.pi, 200)

    def draw(k: int):
        k = check_int(k, "k", low=0, high=len(pts) - 1)
        fig, ax = plt.subplots(figsize=(4.4, 4.2))
        ax.scatter(pts[k][:, 0], pts[k][:, 1], c=c, s=3, cmap=None if c is None else "viridis")
        for r in (1, 2):
            ax.plot(r * np.cos(angle), r * np.sin(angle), color="k", lw=0.7, ls="--")
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
        ax.set_title(names[k] if names is not None else f"after {k} of {len(pts) - 1} layers", fontsize=10)
        return fig

    slider = widgets.IntSlider(value=0, min=0, max=len(pts) - 1, description="layers",
                               continuous_update=False)
    return sliders_with_figure({"k": slider}, draw), draw


# ---------------------------------------------------------------- §15.3.1: the forward process
def forward_schedule_explorer(x0, noise=None, T: int = 1000, beta_start: float = 1e-4,
                              beta_end: float = 0.02, fractions=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0)):
    """§15.3.1: sliders for T and the linear schedule's β_1 and β_T; each move redraws ᾱ_t and √ᾱ_t over
    t/T and the first image of x0 noised by (15.8) at the given fractions of T, always with the same
    ε, so only the schedule changes.

    x0 (n, 64) images on the [−1, 1] scale (the mean KL(q(x_T | x_0) ‖ N(0, I)) is taken over all n);
    noise: optional fixed ε (1, 64); fractions: values in (0, 1]. Returns ``(ui, update)``;
    ``update(T, beta_start, beta_end)`` draws the figure and returns ``{"alpha_bar_T", "terminal_kl",
    "t_half"}`` (t_half: the first step with ᾱ_t ≤ ½, i.e. signal-to-noise ratio ≤ 1), callable
    without a browser.
    """
    from companion_lib import diffusion
    from companion_lib.data import signed_to_unit

    x0 = as_tensor(x0, "x0", shape=(None, 64), min_rows=1, dtype=torch.float32).cpu()
    if noise is None:
        eps = torch.randn(x0[:1].shape, generator=torch.Generator().manual_seed(0))
    else:
        eps = as_tensor(noise, "noise", shape=(1, 64), dtype=torch.float32).cpu()
    fr = as_array(fractions, "fractions", ndim=1, min_rows=1)
    if (fr <= 0).any() or (fr > 1).any():
        raise ValueError(f"fractions must lie in (0, 1] (fractions of T), got {fr}")
    T = check_int(T, "T", low=10, high=2000)
    beta_start = check_float(beta_start, "beta_start", low=1e-5, high=0.1)
    beta_end = check_float(beta_end, "beta_end", low=1e-4, high=10 ** -0.1)

    def update(T=T, beta_start=beta_start, beta_end=beta_end):
        sched = diffusion.NoiseSchedule.linear(T, beta_start, beta_end)  # checks its arguments
        ab = sched.alpha_bars.numpy()
        steps = sorted({max(1, int(round(f * sched.T))) for f in fr})
        t = torch.tensor(steps)
        xt = diffusion.q_sample(sched, x0[:1].expand(len(steps), -1), t, eps.expand(len(steps), -1))
        kl = float(diffusion.terminal_kl(sched, x0).mean())
        below = np.nonzero(ab <= 0.5)[0]
        t_half = int(below[0]) + 1 if below.size else None
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [1.3, 1]})
        grid = np.arange(1, sched.T + 1) / sched.T
        ax.plot(grid, ab, label=r"$\bar\alpha_t$")
        ax.plot(grid, np.sqrt(ab), label=r"$\sqrt{\bar\alpha_t}$ (signal scale)")
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("t / T")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=8)
        ax.set_title(f"T = {sched.T}, β from {float(beta_start):.1e} to {float(beta_end):.1e}", fontsize=10)
        common.image_grid(signed_to_unit(xt).clamp(0, 1), nrow=(len(steps) + 1) // 2, ax=bx, vmin=0, vmax=1)
        bx.set_title("t = " + ", ".join(str(s) for s in steps), fontsize=9)
        half = f"ᾱ_t ≤ ½ from t = {t_half} ({t_half / sched.T:.0%} of T)" if t_half else "ᾱ_t never reaches ½"
        fig.suptitle(f"ᾱ_T = {ab[-1]:.2e};  mean KL(q(x_T|x_0) ‖ N(0, I)) = {kl:.3g} nats per image;  {half}",
                     fontsize=10)
        fig.tight_layout()
        plt.show()
        return {"alpha_bar_T": float(ab[-1]), "terminal_kl": kl, "t_half": t_half}

    s_T = widgets.IntSlider(value=T, min=10, max=2000, step=10, description="T", continuous_update=False)
    s_b1 = widgets.FloatLogSlider(value=beta_start, base=10, min=-5, max=-1, step=0.1, description="β_1",
                                  continuous_update=False, readout_format=".1e")
    s_bT = widgets.FloatLogSlider(value=beta_end, base=10, min=-4, max=-0.1, step=0.1, description="β_T",
                                  continuous_update=False, readout_format=".1e")
    return sliders_with_figure({"T": s_T, "beta_start": s_b1, "beta_end": s_bT}, update), update


# ---------------------------------------------------------------- §15.3.2: two Gaussians, one boundary
def gaussian_overlap(ratio: float = 2.0):
    """§15.3, Problem 15.3.2: a slider for t/σ in [0, 8]; redraws N(−t/2, σ²) and N(+t/2, σ²) (σ = 1),
    the nearest-mean decision boundary at 0 and the two error areas (each class's mass on the wrong
    side), with P(error) = 1 − Φ(t/2σ) and the bound ½ exp(−t²/8σ²) in the title.

    Returns ``(ui, update)``; ``update(ratio)`` draws the figure and returns ``{"error", "bound"}``
    (floats), callable without a browser.
    """
    from companion_lib import distinguish

    ratio = check_float(ratio, "ratio", low=0.0, high=8.0)

    def update(ratio=ratio):
        r = check_float(ratio, "ratio", low=0.0)
        err = float(distinguish.error_probability(r, 1.0))
        bound = float(distinguish.error_bound(r, 1.0))
        x = np.linspace(-r / 2 - 4.5, r / 2 + 4.5, 801)
        p = np.exp(-0.5 * (x + r / 2) ** 2) / np.sqrt(2 * np.pi)
        q = np.exp(-0.5 * (x - r / 2) ** 2) / np.sqrt(2 * np.pi)
        fig, ax = plt.subplots(figsize=(7.5, 3.4))
        ax.plot(x, p, color="C0", label=r"P = N(−t/2, σ²)")
        ax.plot(x, q, color="C3", label=r"Q = N(+t/2, σ²)")
        ax.fill_between(x, 0, p, where=x >= 0, color="C0", alpha=0.35, label="P's samples called Q")
        ax.fill_between(x, 0, q, where=x <= 0, color="C3", alpha=0.35, label="Q's samples called P")
        ax.axvline(0, color="k", lw=1, ls="--", label="decision boundary")
        ax.set_xlabel("x  (in units of σ)")
        ax.set_ylabel("density")
        ax.set_ylim(0, 0.5)
        ax.legend(fontsize=8, loc="upper right")
        ax.set_title(f"t/σ = {r:.2f}:  P(error) = 1 − Φ(t/2σ) = {err:.4f},  bound ½exp(−t²/8σ²) = {bound:.4f}",
                     fontsize=10)
        plt.show()
        return {"error": err, "bound": bound}

    s = widgets.FloatSlider(value=ratio, min=0.0, max=8.0, step=0.1, description="t / σ",
                            continuous_update=False)
    return sliders_with_figure({"ratio": s}, update), update
