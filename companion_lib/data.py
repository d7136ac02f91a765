"""Data sets of the companion, as scikit-learn ``Bunch`` objects. No downloads, ever.

* ``load_pearson_crabs``      Weldon's 1000 Naples crabs, the data of Pearson (1894)       §14.1
* ``load_leptograpsus_crabs`` Campbell & Mahon's 200 rock crabs (5 measurements, sp, sex)  §14.1
* ``load_digits_split``       scikit-learn's 8×8 digits, one fixed train / held-out split  §14.2 on
* ``dequantize``              the one dequantisation convention used for bits/dim
* ``heldout_digits``          the 360 held-out digits dequantised ONCE (fixed seed): the evaluation set
* ``to_unit`` / ``from_unit`` the one map between levels 0..16, the [0, 1) scale and the [−1, 1] scale
* ``make_toy_2d``             small 2-D sets (two moons, rings, 8 Gaussians) for EBMs and flows
* ``nearest_moon``            which of the two moons a point of ``make_toy_2d("moons")`` is nearer

Provenance of the crab files: ``companion_lib/datasets/PROVENANCE.md``.
"""
from __future__ import annotations

import csv
import math
from importlib import resources

import numpy as np
import torch
from sklearn.datasets import load_digits, make_moons
from sklearn.model_selection import train_test_split
from sklearn.utils import Bunch

from companion_lib._checks import (as_tensor, check_bool, check_choice, check_finite_on_cpu, check_float,
                                   check_generator, check_int)
from companion_lib.settings import cpu_float64

__all__ = ["DIGIT_LEVELS", "PEARSON_CLASS_WIDTH", "HELDOUT_SEED", "load_pearson_crabs",
           "load_leptograpsus_crabs", "load_digits_split", "dequantize", "heldout_digits", "to_unit",
           "unit_to_signed", "signed_to_unit", "from_unit", "dequantized_bits_per_dim", "make_toy_2d",
           "nearest_moon"]

#: Number of grey levels of the digits (pixels take the integer values 0..16).
DIGIT_LEVELS = 17
#: Width of one class of Pearson's table.
PEARSON_CLASS_WIDTH = 0.004


def _read_csv(name: str) -> list[dict]:
    with resources.files("companion_lib.datasets").joinpath(name).open() as f:
        return list(csv.DictReader(f))


def load_pearson_crabs(reading: str = "value") -> Bunch:
    """Weldon's Naples crabs: forehead breadth / carapace length for 1000 females (Pearson 1894).

    The table has 29 classes of width 0.004. ``reading`` says how to turn a class into values:

    * ``"value"`` (default; the R package MixtureInf's reading): each ``ratio`` is the value of
      every crab in that class.
    * ``"right_edge"`` (the R package mixdist's reading): ``ratio`` is the right edge of a class,
      so each crab is placed at the class midpoint, ``ratio - 0.002``. Fitted means move by 0.002.

    Returns a Bunch with ``data`` (1000, 1) float64 (one row per crab), ``ratio`` (29,) class values,
    ``count`` (29,) ints, ``bin_edges`` (30,), ``reading`` and ``DESCR``.
    """
    check_choice(reading, "reading", ("value", "right_edge"))
    rows = _read_csv("pearson_naples_crabs.csv")
    ratio = np.array([float(r["ratio"]) for r in rows])
    count = np.array([int(r["count"]) for r in rows])
    if reading == "right_edge":
        ratio = ratio - PEARSON_CLASS_WIDTH / 2
    edges = np.concatenate([ratio - PEARSON_CLASS_WIDTH / 2, [ratio[-1] + PEARSON_CLASS_WIDTH / 2]])
    data = np.repeat(ratio, count)[:, None]
    descr = (
        "Weldon's Naples crabs (Pearson 1894): ratio of frontal breadth to carapace length of "
        f"{count.sum()} female Carcinus maenas, tabulated in {len(ratio)} classes of width "
        f"{PEARSON_CLASS_WIDTH}. Reading: {reading!r}. See companion_lib/datasets/PROVENANCE.md."
    )
    return Bunch(data=data, ratio=ratio, count=count, bin_edges=edges, reading=reading,
                 feature_names=["ratio"], DESCR=descr)


def load_leptograpsus_crabs(log: bool = False) -> Bunch:
    """Campbell & Mahon's (1974) rock crabs: 200 × 5 measurements in mm, species and sex known.

    Returns a Bunch with ``data`` (200, 5) float64 (``log=True``: natural log of the mm values),
    ``feature_names`` (FL, RW, CL, CW, BD), ``species`` (200,) of 'B'/'O', ``sex`` (200,) of 'M'/'F',
    ``group`` (200,) ints 0..3 for the four species×sex groups, ``group_names`` and ``DESCR``.
    """
    log = check_bool(log, "log")
    rows = _read_csv("leptograpsus_crabs.csv")
    names = ["FL", "RW", "CL", "CW", "BD"]
    data = np.array([[float(r[k]) for k in names] for r in rows])
    if log:
        data = np.log(data)
    species = np.array([r["sp"] for r in rows])
    sex = np.array([r["sex"] for r in rows])
    group_names = ["blue male", "blue female", "orange male", "orange female"]
    group = 2 * (species == "O") + (sex == "F")
    descr = (
        "Leptograpsus variegatus rock crabs (Campbell & Mahon 1974; R package MASS 'crabs'): "
        "frontal lobe FL, rear width RW, carapace length CL and width CW, body depth BD, in mm; "
        f"50 crabs of each species (B blue, O orange) and sex. log={log}."
    )
    return Bunch(data=data, feature_names=names, species=species, sex=sex, group=group.astype(int),
                 group_names=group_names, DESCR=descr)


def load_digits_split(validation: bool = True) -> Bunch:
    """scikit-learn's 8×8 digits with the companion's one fixed split (every notebook uses it).

    * held-out (``X_test``): 360 images, stratified by digit, ``train_test_split(random_state=0)``;
    * training (``X_train``): the other 1437 images;
    * with ``validation=True``, ``X_train`` is split again (stratified, 20%, ``random_state=0``) into
      ``X_fit`` (1149) for fitting and ``X_val`` (288) for early stopping and model choice.

    Pixels are the raw integer levels 0..16 as float64 arrays of shape (n, 64); labels are ints.
    Use ``dequantize`` to turn levels into continuous values in [0, 1) for density models.
    """
    validation = check_bool(validation, "validation")
    digits = load_digits()
    X, y = digits.data.astype(np.float64), digits.target.astype(int)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=360, stratify=y, random_state=0)
    out = Bunch(X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test,
                levels=DIGIT_LEVELS, image_shape=(8, 8),
                DESCR="sklearn digits (UCI optdigits test set), 1797 8x8 images, levels 0..16; "
                      "stratified split 1437 train / 360 held-out, random_state=0.")
    if validation:
        X_fit, X_val, y_fit, y_val = train_test_split(
            X_train, y_train, test_size=0.2, stratify=y_train, random_state=0)
        out.update(X_fit=X_fit, y_fit=y_fit, X_val=X_val, y_val=y_val)
    return out


def dequantize(x, generator: torch.Generator | None = None, levels: int = DIGIT_LEVELS) -> torch.Tensor:
    """Uniform dequantisation, the convention behind every bits/dim in the companion.

    ``y = (x + u) / levels`` with ``u ~ U[0, 1)`` per pixel, for integer levels ``x`` in
    ``0..levels-1``. Input (n, d) levels (array or tensor); output (n, d) float tensor in [0, 1), of
    the input's float dtype (integer input gives float32), on its device.
    A density p on [0, 1)^d then gives bits/dim ``log2(levels) - E[log p(y)] / (d ln 2)``
    (``companion_lib.metrics.bits_per_dim``).
    """
    levels = check_int(levels, "levels", low=2)
    check_generator(generator)
    t = as_tensor(x, "x", ndim=2, dtype=None, min_rows=1)
    if (t < 0).any() or (t > levels - 1).any() or (t != t.round()).any():
        raise ValueError(f"x must hold integer levels in 0..{levels - 1}")
    u = torch.rand(t.shape, generator=generator, dtype=t.dtype).to(t.device)
    return (t + u) / levels


#: Seed of the one dequantisation noise draw of the held-out digits (``heldout_digits``).
HELDOUT_SEED = 2024
_HELDOUT: torch.Tensor | None = None


def heldout_digits() -> torch.Tensor:
    """The companion's evaluation set: the 360 held-out digits, dequantised once.

    ``dequantize(X_test, torch.Generator().manual_seed(HELDOUT_SEED))``, computed in float64 and
    stored in float32 (kept below 1): a (360, 64) tensor in [0, 1) on the CPU, identical on every call, in every process and on every machine (the noise is
    drawn on the CPU from a fixed seed). Every held-out bits/dim of the companion is measured on it
    (``companion_lib.metrics.heldout_bits_per_dim``). A copy is returned, so callers may modify it.
    """
    global _HELDOUT
    if _HELDOUT is None:
        with cpu_float64():
            _HELDOUT = _dequantize_heldout()
    return _HELDOUT.clone()


def _dequantize_heldout() -> torch.Tensor:
    X_test = torch.as_tensor(load_digits_split(validation=False).X_test, dtype=torch.float64)
    y = dequantize(X_test, torch.Generator().manual_seed(HELDOUT_SEED))
    # float32 rounds (16 + u)/17 up to 1.0 when u is within 2^-20 of 1: keep the scale half-open
    return y.float().clamp_(max=1.0 - 2.0**-24)


def to_unit(levels_x, levels: int = DIGIT_LEVELS, noise=None) -> torch.Tensor:
    """Levels 0..levels−1 → the [0, 1) scale every metric scores on: ``(x + u) / levels``.

    ``noise=None`` puts each pixel at its bin centre (u = 1/2); otherwise ``noise`` (same shape, values
    in [0, 1)) is the dequantisation draw u. Output float32 unless the input is float64.
    """
    levels = check_int(levels, "levels", low=2)
    t = as_tensor(levels_x, "levels_x", dtype=None, nonempty=True)
    if (t < 0).any() or (t > levels - 1).any():
        raise ValueError(f"levels_x must hold levels in 0..{levels - 1}")
    if noise is None:
        return (t + 0.5) / levels
    u = as_tensor(noise, "noise", dtype=t.dtype, device=t.device)
    if u.shape != t.shape:
        raise ValueError(f"noise must have the shape of levels_x {tuple(t.shape)}, got {tuple(u.shape)}")
    if u.numel() and ((u < 0).any() or (u >= 1).any()):
        raise ValueError("noise must lie in [0, 1)")
    return (t + u) / levels


def unit_to_signed(y) -> torch.Tensor:
    """The [0, 1) scale → the [−1, 1] scale diffusion models train on: ``x = 2y − 1``.

    The map's Jacobian is 2 per pixel: a density on the [−1, 1] scale gives one on [0, 1) by adding
    d·log 2 nats (``signed_to_unit`` is the inverse).
    """
    return 2.0 * as_tensor(y, "y", dtype=None, nonempty=True) - 1.0


def signed_to_unit(x) -> torch.Tensor:
    """The [−1, 1] scale → the [0, 1) scale: ``y = (x + 1) / 2`` (inverse of ``unit_to_signed``)."""
    return (as_tensor(x, "x", dtype=None, nonempty=True) + 1.0) / 2.0


def from_unit(y, levels: int = DIGIT_LEVELS) -> torch.Tensor:
    """The [0, 1) scale → integer levels ``floor(y · levels)`` clipped to 0..levels−1 (inverse of
    ``to_unit`` for any dequantisation noise). Returns a tensor of the input's float dtype."""
    levels = check_int(levels, "levels", low=2)
    t = as_tensor(y, "y", dtype=None, nonempty=True)
    return torch.floor(t * levels).clamp(0, levels - 1)


def dequantized_bits_per_dim(log_p: torch.Tensor, n_dims: int, levels: int | None = DIGIT_LEVELS) -> torch.Tensor:
    """The companion's bits/dim convention, elementwise: ``log2(levels) − log p(y) / (n_dims ln 2)``.

    log_p: tensor (...) of log-densities of dequantised y (see ``dequantize``), finite (checked on the
    CPU only, ``_checks.check_finite_on_cpu``); keeps autograd, so a training loss can use it.
    ``levels=None``: continuous data, no discretisation term.
    ``companion_lib.metrics.bits_per_dim`` is its validated mean, as a float.
    """
    if not isinstance(log_p, torch.Tensor):
        raise TypeError(f"log_p must be a torch.Tensor of log-densities (it keeps autograd), got a "
                        f"{type(log_p).__name__}; metrics.bits_per_dim takes arrays")
    if not log_p.numel():
        raise ValueError(f"log_p must hold at least one log-density, got shape {tuple(log_p.shape)}")
    check_finite_on_cpu(log_p, "log_p")
    n_dims = check_int(n_dims, "n_dims", low=1)
    base = 0.0 if levels is None else math.log2(check_int(levels, "levels", low=2))
    return base - log_p / (n_dims * math.log(2))


#: make_toy_2d("moons") maps scikit-learn's moons u to (u − _MOONS_SHIFT) / _MOONS_SCALE.
_MOONS_SHIFT, _MOONS_SCALE = (0.5, 0.25), (0.87, 0.5)


def nearest_moon(x) -> torch.Tensor:
    """Which moon of ``make_toy_2d("moons")`` each point is nearer: 0 for the upper arc, 1 for the
    lower one (scikit-learn's labels), by the distance to the noiseless half-circles in the original
    (unstandardised) coordinates, where they are circles. x (n, 2) → (n,) long, on x's device.
    Every point of the plane gets a moon, so the two regions cover it."""
    device = x.device if isinstance(x, torch.Tensor) else None
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
    with cpu_float64():
        x = as_tensor(x, "x", shape=(None, 2), dtype=torch.float64, min_rows=1)
        u = x * torch.tensor(_MOONS_SCALE, dtype=torch.float64) + torch.tensor(_MOONS_SHIFT, dtype=torch.float64)
        t = torch.linspace(0, math.pi, 721, dtype=torch.float64)
        upper = torch.stack([t.cos(), t.sin()], 1)                      # make_moons' two arcs
        lower = torch.stack([1 - t.cos(), 0.5 - t.sin()], 1)
        d_upper = torch.cdist(u, upper).min(1).values
        d_lower = torch.cdist(u, lower).min(1).values
        return (d_lower < d_upper).long().to(device if device is not None else "cpu")


def make_toy_2d(name: str, n_samples: int, noise: float = 0.05, seed: int = 0) -> torch.Tensor:
    """Small 2-D data sets: ``"moons"``, ``"rings"`` or ``"8gaussians"``; (n_samples, 2) float32.

    Standardised to roughly unit scale so that one set of hyper-parameters suits all three.
    """
    check_choice(name, "name", ("moons", "rings", "8gaussians"))
    n_samples = check_int(n_samples, "n_samples", low=1)
    noise = check_float(noise, "noise", low=0.0)
    seed = check_int(seed, "seed", low=0)
    rng = np.random.default_rng(seed)
    if name == "moons":
        X, _ = make_moons(n_samples, noise=noise, random_state=seed)
        X = (X - np.array(_MOONS_SHIFT)) / np.array(_MOONS_SCALE)
    elif name == "rings":
        radius = rng.choice([1.0, 2.0], size=n_samples)
        angle = rng.uniform(0, 2 * np.pi, size=n_samples)
        X = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1)
        X = X / 1.5 + noise * rng.standard_normal((n_samples, 2))
    else:
        k = rng.integers(0, 8, size=n_samples)
        centers = 1.5 * np.stack([np.cos(k * np.pi / 4), np.sin(k * np.pi / 4)], 1)
        X = centers + noise * 2 * rng.standard_normal((n_samples, 2))
    return torch.as_tensor(X, dtype=torch.float32)
