"""The figures of Chapter 14, in section order: §14.1 mixtures, §14.2 divergences, §14.3 energies and
scores, §14.4 the ELBO, §14.5 the variational autoencoder. Matplotlib only; every function returns
the Axes it drew on.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from companion_lib._checks import (as_array, as_component_values, check_axes, check_bool, check_float, check_int,
                                   check_text)
from companion_lib.viz.common import _density, _grid, _points

__all__ = ["mixture_density_1d", "kl_fits", "energy_and_density", "score_field", "samples_vs_density",
           "elbo_sweep", "elbo_bars", "elbo_contour", "em_staircase", "latent_scatter", "variance_vs_samples"]


def _number(value, name: str, *, optional: bool = False, **bounds):
    """A finite real number (NumPy scalars and 0-d/1-element tensors too); None where ``optional``."""
    if value is None and optional:
        return None
    arr = as_array(value, name, finite=False)
    if arr.size != 1:
        raise ValueError(f"{name} must be a single number, got shape {arr.shape}")
    return check_float(float(arr.reshape(())), name, **bounds)


def _title(ax, title):
    if title:
        ax.set_title(title, fontsize=10)


# ---------------------------------------------------------------- §14.1 mixtures
def mixture_density_1d(ax, grid, weights, means, variances, components: bool = True, label="mixture",
                       color="C3"):
    """§14.1: draw a 1-D Gaussian mixture density (and its weighted components) on ``ax`` over ``grid``.

    grid (g,); weights (K,), means (K,) or (K, 1), variances (K,), (K, 1) or (K, 1, 1), all positive:
    arrays or tensors. Returns the Axes.
    """
    from scipy.stats import norm

    if ax is None:
        raise TypeError("ax must be a Matplotlib Axes to draw on (e.g. from plt.subplots()), got None")
    check_axes(ax)
    x = as_array(grid, "grid", ndim=1, min_rows=1)
    w = as_array(weights, "weights", ndim=1, min_rows=1)
    mu, var = as_component_values(means, "means", len(w)), as_component_values(variances, "variances", len(w))
    if (w < 0).any():
        raise ValueError(f"weights must be >= 0 (mixture weights), got min {w.min():.3g}")
    if (var <= 0).any():
        raise ValueError(f"variances must be > 0, got min {var.min():.3g}")
    components = check_bool(components, "components")
    label = check_text(label, "label", optional=False)
    sd = np.sqrt(var)
    parts = w[:, None] * norm.pdf(x[None], mu[:, None], sd[:, None])
    if components and len(w) > 1:
        for k, part in enumerate(parts):
            ax.plot(x, part, ls="--", lw=1, color=f"C{k}", label=f"component {k + 1} (ρ={w[k]:.2f})")
    ax.plot(x, parts.sum(0), color=color, lw=2, label=label)
    return ax


# ---------------------------------------------------------------- §14.2 divergences
def kl_fits(grid, log_p, fits: dict, ax=None, title: str | None = None):
    """§14.2: P's density (shaded) with one-Gaussian fits drawn over it.

    grid (g,), log_p (g,): P on a grid; fits: {label: (mean, var)}, one to three fits, var > 0.
    Returns the Axes.
    """
    x = as_array(grid, "grid", ndim=1, min_rows=1)
    p = np.exp(as_array(log_p, "log_p", shape=(len(x),), shape_of="grid"))
    styles = [dict(color="C0", lw=2), dict(color="C3", lw=2, ls="--"), dict(color="C2", lw=1.5, ls=":")]
    if not isinstance(fits, dict) or not 1 <= len(fits) <= len(styles):
        raise TypeError(f"fits must be a dict {{label: (mean, var)}} of 1 to {len(styles)} fits, got "
                        f"{type(fits).__name__ if not isinstance(fits, dict) else f'{len(fits)} fits'}")
    checked = {}
    for label, fit in fits.items():
        if not isinstance(fit, (tuple, list)) or len(fit) != 2:
            raise ValueError(f"fits[{label!r}] must be a pair (mean, var), got {fit!r}")
        checked[str(label)] = (_number(fit[0], f"fits[{label!r}] mean"),
                               _number(fit[1], f"fits[{label!r}] var", low=0.0, low_open=True))
    ax = check_axes(ax)
    title = check_text(title, "title")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    ax.fill_between(x, p, color="0.8", label="P (data distribution)")
    for (label, (mean, var)), style in zip(checked.items(), styles):
        q = np.exp(-0.5 * (x - mean) ** 2 / var) / np.sqrt(2 * np.pi * var)
        ax.plot(x, q, label=label, **style)
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    _title(ax, title)
    ax.legend(fontsize=8, loc="upper left")
    return ax


# ---------------------------------------------------------------- §14.3 energies, scores, samples
def energy_and_density(centres, energy, log_p, axes=None, title: str = "", levels: int = 25):
    """§14.3: the energy E on a grid (left) and its Gibbs density exp(−E)/Z (right), eq. 14.3.

    centres (k,) increasing grid coordinates; energy and log_p (k, k) indexed [y, x].
    axes: None or two Axes. Returns the two Axes.
    """
    c, p = _density(centres, log_p)
    e = as_array(energy, "energy", shape=(len(c), len(c)))
    axes = check_axes(axes, "axes", count=2)
    title = check_text(title, "title")
    levels = check_int(levels, "levels", low=1)
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
    """§14.3: the score −∇E as arrows at points (m, 2), scores (m, 2), over the density exp(log_p),
    log_p (k, k) [y, x] on the grid centres (k,). Arrow lengths are squashed: s / (1 + ‖s‖)."""
    c, p = _density(centres, log_p)
    pts = _points(points, "points")
    s = as_array(scores, "scores", shape=pts.shape)
    ax = check_axes(ax)
    title = check_text(title, "title")
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
    """§14.3: samples (n, 2) as dots over density contours exp(log_p), log_p (k, k) [y, x] on the grid
    centres (k,); optional data (m, 2) in another colour. At most ``max_points`` of each are drawn."""
    c, p = _density(centres, log_p)
    max_points = check_int(max_points, "max_points", low=1)
    x = _points(samples, "samples")[:max_points]
    d = None if data is None else _points(data, "data")[:max_points]
    s = check_float(s, "s", low=0.0, low_open=True)
    ax = check_axes(ax)
    title = check_text(title, "title")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    ax.contourf(c, c, p, levels=12, cmap="Greys")
    if d is not None:
        ax.scatter(d[:, 0], d[:, 1], s=s, c="tab:blue", alpha=0.5, label="data")
    ax.scatter(x[:, 0], x[:, 1], s=s, c="tab:orange", alpha=0.6, label="samples")
    ax.set_xlim(c[0], c[-1])
    ax.set_ylim(c[0], c[-1])
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_aspect("equal")
    ax.legend(fontsize=8, loc="upper right", markerscale=4)
    _title(ax, title)
    return ax


# ---------------------------------------------------------------- §14.4 the ELBO
def elbo_sweep(q1, log_px, elbo_values, ax=None, q_post=None, q_now=None,
               title: str = "ELBO(q) under log p(x): the gap is KL(q ‖ p(h|x))"):
    """§14.4: ELBO as a function of q(h=1|x) (a two-state h) with log p(x) above it and the gap shaded.

    q1 (G,) increasing grid in [0, 1]; log_px a number; elbo_values (G,); q_post in [0, 1] marks the
    posterior p(h=1|x); q_now in [0, 1] marks a current q (the widget's slider). Returns the Axes.
    """
    q1 = _grid(q1, "q1")
    if q1[0] < 0 or q1[-1] > 1:
        raise ValueError(f"q1 must be a grid of probabilities in [0, 1], got [{q1[0]:.3g}, {q1[-1]:.3g}]")
    e = as_array(elbo_values, "elbo_values", shape=(len(q1),))
    lp = _number(log_px, "log_px")
    q_post = _number(q_post, "q_post", optional=True, low=0.0, high=1.0)
    q_now = _number(q_now, "q_now", optional=True, low=0.0, high=1.0)
    ax = check_axes(ax)
    title = check_text(title, "title")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.4))
    ax.axhline(lp, color="k", lw=1.5, label=r"$\log p(x)$")
    ax.plot(q1, e, color="C0", lw=2, label=r"ELBO$(q)=\mathbb{E}_q[\log p(x,h)]+H[q]$")
    ax.fill_between(q1, e, lp, color="C1", alpha=0.3, label=r"gap $=\mathrm{KL}(q\,\|\,p(h|x))$")
    if q_post is not None:
        ax.axvline(q_post, color="C2", ls="--", lw=1.2, label=f"posterior p(h=1|x) = {q_post:.3f}")
    if q_now is not None:
        e_now = float(np.interp(q_now, q1, e))
        ax.plot([q_now, q_now], [e_now, lp], color="C3", lw=3, solid_capstyle="butt")
        ax.plot([q_now], [e_now], "o", color="C3", label=f"q(h=1|x) = {q_now:.2f}")
    lo = max(float(e.min()), lp - 4 * (lp - float(np.median(e))) - 0.5)
    ax.set_ylim(lo, lp + 0.12 * (lp - lo))
    ax.set_xlabel(r"$q(h=1\mid x)$")
    ax.set_ylabel("nats")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower center")
    return ax


def elbo_bars(log_px, elbo_value, ax=None, title: str | None = None):
    """§14.4: three bars, log p(x), ELBO(q) and the gap log p(x) − ELBO(q) = KL(q ‖ p(h|x)) (two numbers
    in). Returns the Axes."""
    lp, e = _number(log_px, "log_px"), _number(elbo_value, "elbo_value")
    ax = check_axes(ax)
    title = check_text(title, "title")
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
    _title(ax, title)
    return ax


def elbo_contour(m_grid, log_s_grid, elbo_grid, ax=None, post=None, log_px=None,
                 title: str = "ELBO of q = N(m, s²)"):
    """§14.4: filled contours of the ELBO over (m, log s) for a one-dimensional h.

    m_grid (a,), log_s_grid (b,) increasing; elbo_grid (b, a); post = (mean, log sd) of the exact
    posterior, starred; log_px: the top contour level (default: the grid's maximum). Returns the Axes.
    """
    m, ls = _grid(m_grid, "m_grid"), _grid(log_s_grid, "log_s_grid")
    Z = as_array(elbo_grid, "elbo_grid", shape=(len(ls), len(m)))
    if post is not None:
        if not isinstance(post, (tuple, list)) or len(post) != 2:
            raise ValueError(f"post must be a pair (mean, log sd) or None, got {post!r}")
        post = (_number(post[0], "post[0]"), _number(post[1], "post[1]"))
    log_px = _number(log_px, "log_px", optional=True)
    ax = check_axes(ax)
    title = check_text(title, "title")
    M, LS = np.meshgrid(m, ls)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.8))
    top = float(Z.max()) if log_px is None else log_px
    levels = top - np.array([8, 4, 2, 1, 0.5, 0.25, 0.1, 0.02, 0.0])
    cs = ax.contourf(M, LS, Z, levels=np.unique(np.concatenate([[Z.min()], levels])), cmap="viridis")
    ax.contour(M, LS, Z, levels=levels[:-1], colors="white", linewidths=0.5)
    cb = plt.colorbar(cs, ax=ax)
    cb.set_label("ELBO (nats)")
    if post is not None:
        ax.plot([post[0]], [post[1]], "*", color="C3", ms=14, mec="white",
                label="exact posterior: ELBO = log p(x)")
        ax.legend(fontsize=8, loc="upper right")
    ax.set_xlabel("m (mean of q)")
    ax.set_ylabel("log s (log std of q)")
    ax.set_title(title, fontsize=10)
    return ax


def em_staircase(trace: dict, axes=None, zoom_from: int = 2, optimum: float | None = None):
    """§14.4: EM as coordinate ascent: log-likelihood and ELBO after every half-step (E, M) of
    ``companion_lib.elbo.em_elbo_trace`` (trace["log_lik"], trace["elbo"]: (H,) each). Left: all
    half-steps; right: zoomed from half-step ``zoom_from`` (< H). ``optimum`` draws the converged
    log-likelihood. axes: None or two Axes. Returns the two Axes."""
    if not isinstance(trace, dict) or not {"log_lik", "elbo"} <= set(trace):
        raise TypeError("trace must be the dict of companion_lib.elbo.em_elbo_trace (with 'log_lik' and 'elbo')")
    ll = as_array(trace["log_lik"], "trace['log_lik']", ndim=1, min_rows=1)
    el = as_array(trace["elbo"], "trace['elbo']", shape=ll.shape)
    zoom_from = check_int(zoom_from, "zoom_from", low=0, high=len(ll) - 1)
    optimum = _number(optimum, "optimum", optional=True)
    axes = check_axes(axes, "axes", count=2)
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
        every = 2 if len(t[s]) <= 30 else 6
        ax.set_xticks(t[s][::every])
        ax.set_xticklabels([f"{i // 2}" for i in t[s][::every]])
        ax.set_xlabel("EM iteration (E-step at odd half-steps, M-step at even)")
        ax.set_ylabel("nats per sample")
    axes[0].set_title("from the poor start", fontsize=10)
    axes[1].set_title(f"zoom from iteration {zoom_from // 2}: E closes the gap, M lifts both", fontsize=10)
    axes[1].legend(fontsize=8, loc="lower right")
    return axes


# ---------------------------------------------------------------- §14.5 the variational autoencoder
def latent_scatter(z, labels, ax=None, title: str | None = None, s: float = 10.0):
    """§14.5: scatter 2-D latent codes z (m, 2) coloured by integer labels (m,) 0..9, with a legend.
    Returns the Axes."""
    z = _points(z, "z")
    labels = as_array(labels, "labels")
    if labels.shape != (z.shape[0],):
        raise ValueError(f"z must be (m, 2) and labels (m,), got {z.shape} and {labels.shape}")
    if (labels != np.round(labels)).any() or (labels < 0).any():
        raise ValueError("labels must be non-negative integers (digit classes)")
    s = check_float(s, "s", low=0.0, low_open=True)
    ax = check_axes(ax)
    title = check_text(title, "title")
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
    _title(ax, title)
    return ax


def variance_vs_samples(s_values, variances: dict, ax=None, title: str | None = None):
    """§14.5: log-log plot of estimator variance against the number of samples s, with a 1/s guide.

    s_values (S,) positive; variances: {label: (S,) positive total variances}, one to five labels.
    Returns the Axes.
    """
    s_values = as_array(s_values, "s_values", ndim=1, min_rows=1)
    if (s_values <= 0).any():
        raise ValueError(f"s_values must be > 0 (numbers of samples), got min {s_values.min():g}")
    markers = "osd^v"
    if not isinstance(variances, dict) or not 1 <= len(variances) <= len(markers):
        raise TypeError(f"variances must be a dict {{label: (S,) array}} of 1 to {len(markers)} entries, "
                        f"got {type(variances).__name__}")
    checked = {}
    for label, v in variances.items():
        v = as_array(v, f"variances[{label!r}]", shape=s_values.shape, shape_of="s_values")
        if (v <= 0).any():
            raise ValueError(f"variances[{label!r}] must be > 0 (a log-log plot), got min {v.min():.3g}")
        checked[str(label)] = v
    ax = check_axes(ax)
    title = check_text(title, "title")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    for (label, v), marker in zip(checked.items(), markers):
        ax.loglog(s_values, v, marker=marker, label=label)
        ax.loglog(s_values, v[0] / s_values, color="grey", ls=":", lw=1)
    ax.plot([], [], color="grey", ls=":", lw=1, label="slope −1 (variance ∝ 1/s)")
    ax.set_xlabel("samples per data point s")
    ax.set_ylabel("total variance of the gradient estimate")
    ax.legend(fontsize=8)
    _title(ax, title)
    return ax
