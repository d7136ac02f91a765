"""Figures the notebooks show. Matplotlib only; every function returns its Figure (or Axes).

Floor 3: may import from floors 1–2, never from grading.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from companion_lib._checks import as_array, check_int


def _np(x, name: str = "x", finite: bool = False) -> np.ndarray:
    """Tensor (any device, any dtype) or array-like → float64 NumPy, with a clear error for non-numbers."""
    return as_array(x, name, finite=finite)


def image_grid(images, nrow: int = 8, ax=None, title: str | None = None, shape=(8, 8),
               vmin: float | None = None, vmax: float | None = None, cmap: str = "gray_r"):
    """Tile images (n, h*w) or (n, h, w) into one picture with a thin gap; returns the Axes."""
    imgs = _np(images, "images")
    nrow = check_int(nrow, "nrow", low=1)
    h, w = shape
    if imgs.ndim == 2:
        if imgs.shape[1] != h * w:
            raise ValueError(f"images must be (n, {h * w}) or (n, {h}, {w}), got {imgs.shape}")
        imgs = imgs.reshape(-1, h, w)
    if imgs.ndim != 3 or imgs.shape[1:] != (h, w):
        raise ValueError(f"images must be (n, {h * w}) or (n, {h}, {w}), got {imgs.shape}")
    if imgs.shape[0] == 0:
        raise ValueError("images must hold at least one image, got none")
    if not np.isfinite(imgs).all():
        raise ValueError("images must be finite; they hold NaN or infinite values (a diverged model?)")
    n = imgs.shape[0]
    ncol = min(nrow, n)
    nrows = int(np.ceil(n / ncol))
    vmin = float(imgs.min()) if vmin is None else vmin
    vmax = float(imgs.max()) if vmax is None else vmax
    canvas = np.full((nrows * (h + 1) - 1, ncol * (w + 1) - 1), np.nan)
    for i in range(n):
        r, c = divmod(i, ncol)
        canvas[r * (h + 1): r * (h + 1) + h, c * (w + 1): c * (w + 1) + w] = imgs[i]
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * ncol + 0.4, 0.45 * nrows + 0.5))
    cm = plt.get_cmap(cmap).with_extremes(bad="white")
    ax.imshow(canvas, cmap=cm, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def training_curves(history: dict, ax=None, ylabel: str = "loss", title: str | None = None):
    """Plot ``train`` and ``val`` from a ``companion_lib.training.TrainResult.history``."""
    missing = [k for k in ("step", "train", "val") if not isinstance(history, dict) or k not in history]
    if missing:
        raise ValueError(f"history must be a dict with 'step', 'train' and 'val' lists "
                         f"(TrainResult.history); missing {missing}")
    if not len(history["train"]) == len(history["step"]) == len(history["val"]):
        raise ValueError("history's 'step', 'train' and 'val' must have one entry each per evaluation")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    steps = history["step"]
    ax.plot(steps, history["train"], label="train (running mean)")
    val = np.asarray(history["val"], dtype=float)
    if np.isfinite(val).any():
        ax.plot(steps, val, label="validation")
        best = int(np.nanargmin(val))
        ax.axvline(steps[best], color="grey", ls=":", lw=1, label=f"best (step {steps[best]})")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def mixture_density_1d(ax, grid, weights, means, variances, components: bool = True, label="mixture",
                       color="C3"):
    """Draw a 1-D Gaussian mixture density (and its weighted components) on ``ax`` over ``grid``.

    weights (K,), means (K,) or (K, 1), variances (K,), (K, 1) or (K, 1, 1): arrays or tensors.
    """
    from scipy.stats import norm

    w = _np(weights).reshape(-1)
    mu = _np(means).reshape(-1)
    sd = np.sqrt(_np(variances).reshape(-1))
    if not (len(w) == len(mu) == len(sd)):
        raise ValueError(f"weights, means, variances must each hold K values, got {len(w)}, {len(mu)}, {len(sd)}")
    parts = w[:, None] * norm.pdf(np.asarray(grid)[None], mu[:, None], sd[:, None])
    if components and len(w) > 1:
        for k, part in enumerate(parts):
            ax.plot(grid, part, ls="--", lw=1, color=f"C{k}", label=f"component {k + 1} (ρ={w[k]:.2f})")
    ax.plot(grid, parts.sum(0), color=color, lw=2, label=label)
    return ax


# ---------------------------------------------------------------- §14.2 (divergences)
def kl_fits(grid, log_p, fits: dict, ax=None, title: str | None = None):
    """P's density (shaded) with one-Gaussian fits drawn over it.

    grid (g,), log_p (g,): P on a grid; fits: {label: (mean, var)}. Returns the Axes.
    """
    x = _np(grid)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    ax.fill_between(x, np.exp(_np(log_p)), color="0.8", label="P (data distribution)")
    styles = [dict(color="C0", lw=2), dict(color="C3", lw=2, ls="--"), dict(color="C2", lw=1.5, ls=":")]
    for (label, (mean, var)), style in zip(fits.items(), styles):
        q = np.exp(-0.5 * (x - mean) ** 2 / var) / np.sqrt(2 * np.pi * var)
        ax.plot(x, q, label=label, **style)
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    return ax


# ---------------------------------------------------------------- §14.4 the ELBO
def elbo_sweep(q1, log_px, elbo_values, ax=None, q_post=None, q_now=None,
               title: str = "ELBO(q) under log p(x): the gap is KL(q ‖ p(h|x))"):
    """ELBO as a function of q(h=1|x) (a two-state h) with log p(x) above it and the gap shaded.

    q1 (G,) grid of q(h=1|x); log_px a number; elbo_values (G,); q_post marks the posterior p(h=1|x);
    q_now marks a current q (the widget's slider). Returns the Axes.
    """
    q1, e = _np(q1).ravel(), _np(elbo_values).ravel()
    lp = float(log_px)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.4))
    ax.axhline(lp, color="k", lw=1.5, label=r"$\log p(x)$")
    ax.plot(q1, e, color="C0", lw=2, label=r"ELBO$(q)=\mathbb{E}_q[\log p(x,h)]+H[q]$")
    ax.fill_between(q1, e, lp, color="C1", alpha=0.3, label=r"gap $=\mathrm{KL}(q\,\|\,p(h|x))$")
    if q_post is not None:
        ax.axvline(float(q_post), color="C2", ls="--", lw=1.2, label=f"posterior p(h=1|x) = {float(q_post):.3f}")
    if q_now is not None:
        e_now = float(np.interp(float(q_now), q1, e))
        ax.plot([q_now, q_now], [e_now, lp], color="C3", lw=3, solid_capstyle="butt")
        ax.plot([q_now], [e_now], "o", color="C3", label=f"q(h=1|x) = {float(q_now):.2f}")
    lo = max(float(e.min()), lp - 4 * (lp - float(np.median(e))) - 0.5)
    ax.set_ylim(lo, lp + 0.12 * (lp - lo))
    ax.set_xlabel(r"$q(h=1\mid x)$")
    ax.set_ylabel("nats")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower center")
    return ax


def elbo_bars(log_px, elbo_value, ax=None, title: str | None = None):
    """Three bars: log p(x), ELBO(q) and the gap log p(x) − ELBO(q) = KL(q ‖ p(h|x)). Returns the Axes."""
    lp, e = float(log_px), float(elbo_value)
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3.2))
    names = [r"$\log p(x)$", "ELBO(q)", "gap = KL"]
    vals = [lp, e, lp - e]
    bars = ax.bar(names, vals, color=["k", "C0", "C1"])
    for bar, v in zip(bars, vals):
        ax.annotate(f"{v:.3f}", (bar.get_x() + bar.get_width() / 2, v), ha="center",
                    va="bottom" if v >= 0 else "top", fontsize=8)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel("nats")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def elbo_contour(m_grid, log_s_grid, elbo_grid, ax=None, post=None, log_px=None,
                 title: str = "ELBO of q = N(m, s²)"):
    """Filled contours of the ELBO over (m, log s) for a one-dimensional h; ``post`` = (mean, log sd)
    of the exact posterior is starred. elbo_grid: (len(log_s_grid), len(m_grid)). Returns the Axes."""
    M, LS = np.meshgrid(_np(m_grid), _np(log_s_grid))
    Z = _np(elbo_grid)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.8))
    top = float(Z.max()) if log_px is None else float(log_px)
    levels = top - np.array([8, 4, 2, 1, 0.5, 0.25, 0.1, 0.02, 0.0])
    cs = ax.contourf(M, LS, Z, levels=np.unique(np.concatenate([[Z.min()], levels])), cmap="viridis")
    ax.contour(M, LS, Z, levels=levels[:-1], colors="white", linewidths=0.5)
    cb = plt.colorbar(cs, ax=ax)
    cb.set_label("ELBO (nats)")
    if post is not None:
        ax.plot([float(post[0])], [float(post[1])], "*", color="C3", ms=14, mec="white",
                label="exact posterior: ELBO = log p(x)")
        ax.legend(fontsize=8, loc="upper right")
    ax.set_xlabel("m (mean of q)")
    ax.set_ylabel("log s (log std of q)")
    ax.set_title(title, fontsize=10)
    return ax


def em_staircase(trace: dict, axes=None, zoom_from: int = 2, optimum: float | None = None):
    """EM as coordinate ascent: log-likelihood and ELBO after every half-step (E, M) of
    ``companion_lib.elbo.em_elbo_trace``. Left: all half-steps; right: zoomed from half-step
    ``zoom_from``. ``optimum`` draws the converged log-likelihood. Returns the two Axes."""
    ll, el = _np(trace["log_lik"]), _np(trace["elbo"])
    t = np.arange(len(ll))
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, lo in zip(axes, (0, zoom_from)):
        s = slice(lo, None)
        ax.step(t[s], ll[s], where="post", color="k", lw=2, label=r"log-likelihood $\frac{1}{n}\sum_i\log p_\theta(x_i)$")
        ax.plot(t[s], el[s], "o-", color="C0", ms=4, lw=1, label=r"ELBO$(q,\theta)/n$")
        ax.fill_between(t[s], el[s], ll[s], color="C1", alpha=0.3, label="gap = mean KL")
        if optimum is not None:
            ax.axhline(optimum, color="C2", ls=":", label="converged EM (log-lik)")
        ax.set_xticks(t[s][::2] if len(t[s]) <= 30 else t[s][::6])
        ax.set_xticklabels([f"{i // 2}" for i in t[s][::2]] if len(t[s]) <= 30 else [f"{i // 2}" for i in t[s][::6]])
        ax.set_xlabel("EM iteration (E-step at odd half-steps, M-step at even)")
        ax.set_ylabel("nats per sample")
    axes[0].set_title("from the poor start", fontsize=10)
    axes[1].set_title(f"zoom from iteration {zoom_from // 2}: E closes the gap, M lifts both", fontsize=10)
    axes[1].legend(fontsize=8, loc="lower right")
    return axes


# ---------------------------------------------------------------- §14.5: variational autoencoder
def latent_scatter(z, labels, ax=None, title: str | None = None, s: float = 10.0):
    """Scatter 2-D latent codes z (m, 2) coloured by integer labels (m,) 0..9, with a legend."""
    z, labels = _np(z, "z", finite=True), _np(labels, "labels")
    if z.ndim != 2 or z.shape[1] != 2 or labels.shape != (z.shape[0],):
        raise ValueError(f"z must be (m, 2) and labels (m,), got {z.shape} and {labels.shape}")
    if (labels != np.round(labels)).any() or (labels < 0).any():
        raise ValueError("labels must be non-negative integers (digit classes)")
    labels = labels.astype(int)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.2))
    cmap = plt.get_cmap("tab10")
    for k in np.unique(labels):
        pts = z[labels == k]
        ax.scatter(pts[:, 0], pts[:, 1], s=s, color=cmap(k % 10), alpha=0.75, label=str(k))
        ax.annotate(str(k), pts.mean(0), fontsize=12, weight="bold", ha="center", va="center",
                    color=cmap(k % 10), bbox=dict(boxstyle="round,pad=0.1", fc="white", alpha=0.7, lw=0))
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.legend(fontsize=7, ncol=2, title="digit", title_fontsize=7, markerscale=1.5, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def variance_vs_samples(s_values, variances: dict, ax=None, title: str | None = None):
    """Log-log plot of estimator variance against the number of samples s, with a 1/s guide line.

    variances: {label: (len(s_values),) array of total variances}.
    """
    s_values = np.asarray(s_values, float)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    for (label, v), marker in zip(variances.items(), "osd^v"):
        v = np.asarray(v, float)
        ax.loglog(s_values, v, marker=marker, label=label)
        ax.loglog(s_values, v[0] / s_values, color="grey", ls=":", lw=1)
    ax.plot([], [], color="grey", ls=":", lw=1, label="slope −1 (variance ∝ 1/s)")
    ax.set_xlabel("samples per data point s")
    ax.set_ylabel("total variance of the gradient estimate")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


# ---------------------------------------------------------------- §14.3: energies, scores, samples
def energy_and_density(centres, energy, log_p, axes=None, title: str = "", levels: int = 25):
    """§14.3: the energy E on a grid (left) and its Gibbs density exp(−E)/Z (right), eq. 14.3.

    centres (k,) grid coordinates; energy and log_p (k, k) indexed [y, x]. Returns the two Axes.
    """
    c, e, p = _np(centres), _np(energy), np.exp(_np(log_p))
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    ax, bx = axes
    cs = ax.contourf(c, c, np.minimum(e, np.quantile(e, 0.6)), levels=levels, cmap="viridis")
    plt.colorbar(cs, ax=ax, label="energy E(x) (clipped)")
    ax.set_title("energy landscape E(x): valleys are dark", fontsize=10)
    im = bx.imshow(p, origin="lower", extent=(c[0], c[-1], c[0], c[-1]), cmap="magma")
    plt.colorbar(im, ax=bx, label="P(x) = exp(−E(x)) / Z")
    bx.set_title("Gibbs density (eq. 14.3), Z by quadrature", fontsize=10)
    for a in axes:
        a.set_xlabel("$x_1$")
        a.set_ylabel("$x_2$")
        a.set_aspect("equal")
    if title:
        ax.figure.suptitle(title)
    return axes


def score_field(centres, log_p, points, scores, ax=None, title: str | None = None, color="white"):
    """§14.3: the score −∇E as arrows (points (m, 2), scores (m, 2)) over the density exp(log_p)."""
    c, p = _np(centres), np.exp(_np(log_p))
    pts, s = _np(points), _np(scores)
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(p, origin="lower", extent=(c[0], c[-1], c[0], c[-1]), cmap="magma")
    norm = np.linalg.norm(s, axis=1, keepdims=True)
    ax.quiver(pts[:, 0], pts[:, 1], s[:, 0] / (1 + norm[:, 0]), s[:, 1] / (1 + norm[:, 0]),
              color=color, angles="xy", scale_units="xy", scale=2.5, width=0.004)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(title or "score $-\\nabla E(x)$ (arrows, length squashed) over P(x)", fontsize=10)
    ax.set_aspect("equal")
    return ax


def samples_vs_density(centres, log_p, samples, ax=None, title: str | None = None, data=None,
                       max_points: int = 3000, s: float = 2.0):
    """§14.3: samples (n, 2) as dots over density contours exp(log_p) (k, k) [y, x]; optional data."""
    c, p = _np(centres), np.exp(_np(log_p))
    x = _np(samples)[:max_points]
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    ax.contourf(c, c, p, levels=12, cmap="Greys")
    if data is not None:
        d = _np(data)[:max_points]
        ax.scatter(d[:, 0], d[:, 1], s=s, c="tab:blue", alpha=0.5, label="data")
    ax.scatter(x[:, 0], x[:, 1], s=s, c="tab:orange", alpha=0.6, label="samples")
    ax.set_xlim(c[0], c[-1])
    ax.set_ylim(c[0], c[-1])
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_aspect("equal")
    ax.legend(fontsize=8, loc="upper right", markerscale=4)
    if title:
        ax.set_title(title, fontsize=10)
    return ax
