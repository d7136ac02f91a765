"""The figures of Chapter 15, in section order: §15.2 coupling flows, §15.3 diffusion, and the
scoreboard's bar chart (§15.9). Matplotlib only. The lessons compute; these functions only draw.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from companion_lib._checks import as_array, check_axes, check_bool, check_float, check_text
from companion_lib.viz.common import _points

__all__ = ["binned_densities", "point_clouds", "bar_chart"]


def _titles(titles, n: int, name: str = "titles") -> list[str]:
    if not isinstance(titles, (list, tuple)) or len(titles) != n:
        raise ValueError(f"{name} must be a list of {n} titles (one per panel), got {titles!r}")
    return [check_text(t, f"{name}[{i}]", optional=False) for i, t in enumerate(titles)]


def _panels(axes, n: int, figsize, **subplots):
    """n Axes: the given ones (checked) or a new row of n."""
    axes = check_axes(axes, "axes", count=n)
    if axes is None:
        _, axes = plt.subplots(1, n, figsize=figsize, squeeze=False, **subplots)
        axes = list(axes[0])
    return axes


# ---------------------------------------------------------------- §15.2 coupling flows
def binned_densities(images, lim: float, titles, axes=None, xlabel: str = "$x_1$", ylabel: str = "$x_2$",
                     figsize=(11, 3.6)):
    """§15.2: binned 2-D densities side by side on [−lim, lim]², one colour scale for all (up to 1.1×
    the first panel's maximum, so a histogram of samples sets it).

    images: list of (bins, bins) arrays or tensors of non-negative probabilities, indexed [y, x]
    (``ebm.histogram_2d``, ``ebm.binned_probabilities``); titles: one per image; axes: None or one
    Axes per image. Returns the list of Axes.
    """
    if not isinstance(images, (list, tuple)) or not images:
        raise TypeError(f"images must be a non-empty list of (bins, bins) arrays, got {type(images).__name__}")
    imgs = [as_array(im, f"images[{i}]", ndim=2, min_rows=1) for i, im in enumerate(images)]
    for i, im in enumerate(imgs):
        if im.shape != imgs[0].shape or im.shape[0] != im.shape[1] or (im < 0).any():
            raise ValueError(f"images[{i}] must be a square (bins, bins) array of probabilities >= 0 like "
                             f"images[0] {imgs[0].shape}, got shape {im.shape}")
    lim = check_float(lim, "lim", low=0.0, low_open=True)
    titles = _titles(titles, len(imgs))
    xlabel, ylabel = check_text(xlabel, "xlabel", optional=False), check_text(ylabel, "ylabel", optional=False)
    axes = _panels(axes, len(imgs), figsize)
    vmax = imgs[0].max() * 1.1 or None
    for ax, img, title in zip(axes, imgs, titles):
        ax.imshow(img, origin="lower", extent=(-lim, lim, -lim, lim), cmap="magma", vmax=vmax)
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axes[0].figure.tight_layout()
    return axes


def point_clouds(clouds, titles, lim: float, axes=None, background=None, colors=None, s: float = 2.0,
                 alpha: float = 1.0, equal: bool = True, share: bool = False, suptitle: str | None = None,
                 title_size: float | None = None, figsize=(13, 2.9)):
    """§15.2–15.3: 2-D point clouds side by side on [−lim, lim]², e.g. a flow's stages or the states of
    a sampling chain.

    clouds: list of (n_i, 2) arrays or tensors; titles: one per cloud; background: optional (m, 2) points
    drawn in light grey behind every cloud (the data); colors: optional (n,) values to colour each cloud
    by (viridis; then all clouds have the same n) — otherwise colour C0; s, alpha: marker size and
    opacity; equal: equal aspect; share: new axes share x and y (tick labels only on the outer ones);
    title_size: the titles' font size (default Matplotlib's). axes: None or one Axes per cloud.
    Returns the list of Axes.
    """
    if not isinstance(clouds, (list, tuple)) or not clouds:
        raise TypeError(f"clouds must be a non-empty list of (n, 2) arrays, got {type(clouds).__name__}")
    pts = [_points(c, f"clouds[{i}]") for i, c in enumerate(clouds)]
    titles = _titles(titles, len(pts))
    lim = check_float(lim, "lim", low=0.0, low_open=True)
    back = None if background is None else _points(background, "background")
    c = None
    if colors is not None:
        c = as_array(colors, "colors", shape=(pts[0].shape[0],))
        if any(p.shape[0] != len(c) for p in pts):
            raise ValueError(f"colors gives one value per point, so every cloud must have {len(c)} points")
    s = check_float(s, "s", low=0.0, low_open=True)
    alpha = check_float(alpha, "alpha", low=0.0, high=1.0, low_open=True)
    equal = check_bool(equal, "equal")
    share = check_bool(share, "share")
    suptitle = check_text(suptitle, "suptitle")
    title_size = None if title_size is None else check_float(title_size, "title_size", low=0.0, low_open=True)
    axes = _panels(axes, len(pts), figsize, sharex=share, sharey=share)
    for ax, p, title in zip(axes, pts, titles):
        if back is not None:
            ax.scatter(back[:, 0], back[:, 1], s=s, c="lightgrey")
        if c is None:
            ax.scatter(p[:, 0], p[:, 1], s=s, c="C0", alpha=alpha)
        else:
            ax.scatter(p[:, 0], p[:, 1], s=s, c=c, cmap="viridis", alpha=alpha)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim))
        ax.set_title(title, fontsize=title_size)
        if equal:
            ax.set_aspect("equal")
    fig = axes[0].figure
    if suptitle:
        fig.suptitle(suptitle, y=1.02)
    fig.tight_layout()
    return axes


# ---------------------------------------------------------------- §15.9 the scoreboard
def bar_chart(rows: list[dict], path=None, title: str = "held-out digits", reference: str | None = None):
    """§15.9: bits/dim per model (hatched: upper bound) beside the judge's confident share, one bar per
    row of ``companion_lib.bench.scoreboard``; ``reference``: the model name of the row drawn in grey
    (the real digits, ``bench.LABELS["real"]``). Returns the figure; with ``path`` also saves it (PNG)."""
    import matplotlib

    if not isinstance(rows, list) or not rows or not all(
            isinstance(r, dict) and {"model", "bits_per_dim", "bound", "confident_share"} <= set(r) for r in rows):
        raise TypeError("rows must be the non-empty list of dicts that companion_lib.bench.scoreboard returns")
    for i, r in enumerate(rows):
        check_text(r["model"], f"rows[{i}]['model']", optional=False)
        if r["bound"] not in ("exact", "upper", None):
            raise ValueError(f"rows[{i}]['bound'] must be 'exact', 'upper' or None, got {r['bound']!r}")
        if r["bits_per_dim"] is not None:
            check_float(r["bits_per_dim"], f"rows[{i}]['bits_per_dim']")
        if r["confident_share"] is not None:
            check_float(r["confident_share"], f"rows[{i}]['confident_share']", low=0.0, high=1.0)
    title = check_text(title, "title", optional=False)
    reference = check_text(reference, "reference")
    if path is not None:
        matplotlib.use("Agg", force=False)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 0.45 * len(rows) + 1.5), sharey=True)
    y = np.arange(len(rows))[::-1]
    names = [r["model"] for r in rows]
    for yi, r in zip(y, rows):
        if r["bits_per_dim"] is not None:
            ax1.barh(yi, r["bits_per_dim"], color="C0" if r["bound"] == "exact" else "C1",
                     hatch=None if r["bound"] == "exact" else "//")
            ax1.text(r["bits_per_dim"], yi, f" {r['bits_per_dim']:.2f}", va="center", fontsize=8)
        if r["confident_share"] is not None:
            ax2.barh(yi, r["confident_share"], color="C7" if r["model"] == reference else "C2")
            ax2.text(r["confident_share"], yi, f" {r['confident_share']:.0%}", va="center", fontsize=8)
    ax1.set_yticks(y, names)
    ax1.set_xlabel("bits/dim (blue: exact, orange hatched: upper bound; lower is better)")
    ax2.set_xlabel("judge confident share at p ≥ 0.9 (grey: real digits)")
    ax2.set_xlim(0, 1.1)
    ax1.set_title(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
