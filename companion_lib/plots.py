"""Figures the notebooks show. Matplotlib only; every function returns its Figure (or Axes).

Floor 3: may import from floors 1–2, never from grading.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def image_grid(images, nrow: int = 8, ax=None, title: str | None = None, shape=(8, 8),
               vmin: float | None = None, vmax: float | None = None, cmap: str = "gray_r"):
    """Tile images (n, h*w) or (n, h, w) into one picture with a thin gap; returns the Axes."""
    imgs = _np(images)
    h, w = shape
    if imgs.ndim == 2:
        if imgs.shape[1] != h * w:
            raise ValueError(f"images must be (n, {h * w}) or (n, {h}, {w}), got {imgs.shape}")
        imgs = imgs.reshape(-1, h, w)
    if imgs.ndim != 3 or imgs.shape[1:] != (h, w):
        raise ValueError(f"images must be (n, {h * w}) or (n, {h}, {w}), got {imgs.shape}")
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
