"""Figures both chapters draw: a tile of digit images and a training run's loss curves.

Matplotlib only; every function returns the Axes it drew on.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from companion_lib._checks import as_array, check_axes, check_float, check_int, check_text

__all__ = ["image_grid", "training_curves"]


def _shape2(shape, name: str = "shape") -> tuple[int, int]:
    """An image shape (h, w) of two positive integers."""
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise ValueError(f"{name} must be a pair (h, w) of positive integers, got {shape!r}")
    return check_int(shape[0], f"{name}[0]", low=1), check_int(shape[1], f"{name}[1]", low=1)


def _limit(value, name: str):
    """None or a finite number (a colour limit, an axis limit)."""
    return None if value is None else check_float(value, name)


def image_grid(images, nrow: int = 8, ax=None, title: str | None = None, shape=(8, 8),
               vmin: float | None = None, vmax: float | None = None, cmap: str = "gray_r"):
    """Tile images (n, h*w) or (n, h, w) into one picture with a thin gap; returns the Axes.

    images: array or tensor (any device) of n ≥ 1 finite images; nrow: images per row; shape (h, w);
    vmin, vmax: the colour range (default: the images' own range).
    """
    imgs = as_array(images, "images")
    nrow = check_int(nrow, "nrow", low=1)
    h, w = _shape2(shape)
    ax = check_axes(ax)
    title = check_text(title, "title")
    vmin, vmax = _limit(vmin, "vmin"), _limit(vmax, "vmax")
    check_text(cmap, "cmap", optional=False)
    if imgs.ndim == 2:
        if imgs.shape[1] != h * w:
            raise ValueError(f"images must be (n, {h * w}) or (n, {h}, {w}), got {imgs.shape}")
        imgs = imgs.reshape(-1, h, w)
    if imgs.ndim != 3 or imgs.shape[1:] != (h, w):
        raise ValueError(f"images must be (n, {h * w}) or (n, {h}, {w}), got {imgs.shape}")
    if imgs.shape[0] == 0:
        raise ValueError("images must hold at least one image, got none")
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
    try:
        cm = plt.get_cmap(cmap).with_extremes(bad="white")
    except ValueError as err:
        raise ValueError(f"cmap must name a Matplotlib colormap (e.g. 'gray_r'), got {cmap!r}") from err
    ax.imshow(canvas, cmap=cm, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def training_curves(history: dict, ax=None, ylabel: str = "loss", title: str | None = None):
    """Plot ``train`` and ``val`` against ``step`` from a ``companion_lib.training.TrainResult.history``
    (three lists of equal length ≥ 1; ``val`` may be NaN where no validation ran). Returns the Axes."""
    missing = [k for k in ("step", "train", "val") if not isinstance(history, dict) or k not in history]
    if missing:
        raise ValueError(f"history must be a dict with 'step', 'train' and 'val' lists "
                         f"(TrainResult.history); missing {missing}")
    steps = as_array(history["step"], "history['step']", ndim=1, min_rows=1)
    train = as_array(history["train"], "history['train']", ndim=1, finite=False)
    val = as_array(history["val"], "history['val']", ndim=1, finite=False)
    if not len(train) == len(steps) == len(val):
        raise ValueError("history's 'step', 'train' and 'val' must have one entry each per evaluation, "
                         f"got {len(steps)}, {len(train)} and {len(val)}")
    if np.isinf(train).any() or np.isinf(val).any() or np.isnan(train).all():
        raise ValueError("history's 'train' must hold finite losses and 'val' finite losses or NaN "
                         "(no validation); got infinite values or no finite training loss (a diverged run?)")
    ax = check_axes(ax)
    ylabel = check_text(ylabel, "ylabel", optional=False)
    title = check_text(title, "title")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    steps = history["step"]
    ax.plot(steps, history["train"], label="train (running mean)")
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


# ---------------------------------------------------------------- private checks the chapters share
def _points(x, name: str, *, min_rows: int = 1) -> np.ndarray:
    """2-D points (n, 2), finite, as float64 NumPy."""
    return as_array(x, name, shape=(None, 2), min_rows=min_rows)


def _grid(centres, name: str = "centres", *, min_rows: int = 2) -> np.ndarray:
    """A 1-D, strictly increasing, finite grid of coordinates (k,)."""
    c = as_array(centres, name, ndim=1, min_rows=min_rows)
    if not (np.diff(c) > 0).all():
        raise ValueError(f"{name} must be strictly increasing grid coordinates, got {c[:5]}...")
    return c


def _density(centres, log_p, name: str = "log_p"):
    """A grid (k,) and the density exp(log_p) of a (k, k) log-density indexed [y, x] on it.
    log_p may hold −inf (zero density), never NaN or +inf."""
    c = _grid(centres)
    lp = as_array(log_p, name, shape=(len(c), len(c)), finite=False)
    if np.isnan(lp).any() or np.isposinf(lp).any():
        raise ValueError(f"{name} must be finite or −inf (zero density); it holds NaN or +inf")
    return c, np.exp(lp)
