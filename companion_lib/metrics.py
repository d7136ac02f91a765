"""Measuring models (looking at results). Every measure scores on the one fixed evaluation set.

* ``bits_per_dim`` / ``nats_to_bits_per_dim``  the companion's one bits/dim convention (below)
* ``heldout_bits_per_dim``  a model's bits/dim on ``data.heldout_digits()``, from its log-density
* ``DigitJudge``            a classifier that labels a sample image with a digit and a confidence:
                            the share of confident samples and the class histogram (sample quality)
* ``nearest_train_distance`` distance of each sample to its nearest training digit (is it a copy?)
* ``record_heldout_result`` write a model's held-out bits/dim to ``results/heldout_bits_per_dim.json``
                            (only when ``COMPANION_RECORD=1``), the source of README's table
* ``chi_square_gof``        Pearson's (1900) χ² goodness-of-fit test

Convention (see ``companion_lib.data.dequantize``): a model density p on y = (x + u) / L in [0, 1)^d,
for discrete data x with L levels, scores

    bits/dim = log2(L) - E[log p(y)] / (d ln 2),

an upper bound on the model's discrete code length per pixel. Uniform over 17 levels: log2 17 = 4.09.
Results are plain floats and NumPy arrays on the CPU, whatever device the model ran on.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from companion_lib._checks import as_tensor, check_float, check_int
from companion_lib.data import (DIGIT_LEVELS, dequantized_bits_per_dim, heldout_digits,
                                load_digits_split)
from companion_lib.settings import _env_flag, cpu_float64, get_mode

__all__ = ["bits_per_dim", "nats_to_bits_per_dim", "heldout_bits_per_dim", "record_heldout_result",
           "DigitJudge", "nearest_train_distance", "heldout_nearest_train_distance", "chi_square_gof"]

#: Pixels of one digit image (8 × 8).
DIGIT_DIMS = 64


# ------------------------------------------------------------------------------------ bits/dim
def bits_per_dim(log_prob, n_dims: int, levels: int | None = DIGIT_LEVELS) -> float:
    """Mean bits/dim from log-densities ``log_prob`` (n,) in nats of dequantised y in [0, 1)^n_dims.

    ``levels=None`` gives plain ``-E[log p] / (d ln 2)`` for continuous data (no discretisation term).
    """
    n_dims = check_int(n_dims, "n_dims", low=1)
    if levels is not None:
        levels = check_int(levels, "levels", low=2)
    if isinstance(log_prob, torch.Tensor):
        log_prob = log_prob.detach().cpu()  # exact mean in float64 on the CPU; MPS has no float64
    with cpu_float64():
        lp = as_tensor(log_prob, "log_prob", ndim=1, min_rows=1, dtype=torch.float64)
        return dequantized_bits_per_dim(lp.mean(), n_dims, levels).item()


def nats_to_bits_per_dim(nats_per_sample: float, n_dims: int, levels: int | None = DIGIT_LEVELS) -> float:
    """Convert a mean negative log-likelihood in nats per sample (of y) to bits/dim."""
    nats = check_float(nats_per_sample, "nats_per_sample")
    return bits_per_dim([-nats], n_dims, levels)


def heldout_bits_per_dim(log_prob_fn: Callable, batch_size: int = 360, device=None) -> float:
    """A model's bits/dim on the companion's evaluation set, ``data.heldout_digits()`` (360 digits).

    ``log_prob_fn(y)`` maps a (b, 64) float32 batch of dequantised digits in [0, 1) (on ``device``,
    default the CPU) to (b,) log-densities in nats (a tensor or array; exact for the Gaussians and
    mixtures, a stated lower bound for the VAE and DDPM, which then give an upper bound in bits/dim).
    Evaluated without gradients in batches of ``batch_size``. Returns the mean bits/dim
    ``log2 17 − E[log p(y)] / (64 ln 2)``: a density uniform on [0, 1)^64 scores log2 17 ≈ 4.09.
    """
    if not callable(log_prob_fn):
        raise TypeError(f"log_prob_fn must be a function mapping a (b, 64) batch to (b,) "
                        f"log-densities, got a {type(log_prob_fn).__name__}")
    batch_size = check_int(batch_size, "batch_size", low=1)
    y = heldout_digits()
    parts = []
    with torch.no_grad():
        for batch in y.split(batch_size):
            batch = batch.to(device) if device is not None else batch
            lp = log_prob_fn(batch)
            if isinstance(lp, torch.Tensor):
                lp = lp.detach().cpu()
            lp = np.asarray(lp, dtype=np.float64) if not isinstance(lp, torch.Tensor) else lp
            if tuple(lp.shape) != (batch.shape[0],):
                raise ValueError(f"log_prob_fn must return one log-density per row, shape "
                                 f"({batch.shape[0]},), got shape {tuple(lp.shape)}")
            parts.append(lp)
    with cpu_float64():
        lp = torch.cat([torch.as_tensor(p).to(torch.float64) for p in parts])
        if not torch.isfinite(lp).all():
            raise ValueError(f"log_prob_fn returned {int((~torch.isfinite(lp)).sum())} NaN or infinite "
                             "log-densities on the held-out digits; expected finite values in nats")
    return bits_per_dim(lp, DIGIT_DIMS, DIGIT_LEVELS)


# ------------------------------------------------------------------------------------ the results file
#: Where ``record_heldout_result`` writes (``COMPANION_RESULTS_FILE`` overrides it).
RESULTS_FILE = Path(__file__).resolve().parents[1] / "results" / "heldout_bits_per_dim.json"


def _results_file() -> Path:
    env = os.environ.get("COMPANION_RESULTS_FILE", "").strip()
    return Path(env) if env else RESULTS_FILE


def _recording() -> bool:
    return _env_flag("COMPANION_RECORD", on="write results", off="do not")


def record_heldout_result(key: str, model: str, bits_per_dim, notebook: str, *, order: int = 0,
                          note: str = "") -> dict:
    """A row of README's table of held-out bits/dim: written to the results file only when
    ``COMPANION_RECORD=1`` (``tools/execute_notebooks.py`` sets it; nbval and students' runs leave
    the repository untouched). Returns the row either way.

    key: a stable id (``"14_2/full_gaussian"``), so a re-run replaces its row; model: the table's text;
    bits_per_dim: a float, or a tuple of floats shown as "a / b" (e.g. a VAE's ELBO and IWAE
    bounds), measured on ``data.heldout_digits()`` (``heldout_bits_per_dim``); notebook: e.g.
    ``"14_2"``; order: position among the notebook's rows. Rows are kept per run mode (quick, full).
    ``python tools/readme_table.py`` turns the file into README's table.
    """
    for name, value in (("key", key), ("model", model), ("notebook", notebook), ("note", note)):
        if not isinstance(value, str) or (name != "note" and not value.strip()):
            raise TypeError(f"{name} must be a non-empty string, got {value!r}")
    values = bits_per_dim if isinstance(bits_per_dim, (tuple, list)) else (bits_per_dim,)
    if not values:
        raise ValueError("bits_per_dim must be a number or a non-empty tuple of numbers")
    values = [check_float(v.item() if isinstance(v, (torch.Tensor, np.ndarray)) else v, "bits_per_dim")
              for v in values]
    row = {"model": model, "bits_per_dim": values, "notebook": notebook,
           "order": check_int(order, "order"), "note": note}
    if _recording():
        path = _results_file()
        table = json.loads(path.read_text()) if path.exists() else {}
        table.setdefault(get_mode(), {})[key] = row
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(table, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    return row


# ------------------------------------------------------------------------------------ samples
def _numpy64(x, name: str, **kw) -> np.ndarray:
    """Validated float64 NumPy copy of an array or tensor (any device), computed on the CPU."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
    with cpu_float64():
        return as_tensor(x, name, dtype=torch.float64, **kw).numpy()


def _samples(samples, name: str = "samples") -> torch.Tensor:
    """(n, 64) images on the [0, 1) scale → float32 CPU tensor, clipped to [0, 1]."""
    if isinstance(samples, torch.Tensor):
        samples = samples.detach().cpu()
        if samples.is_floating_point():
            samples = samples.float()
    t = as_tensor(samples, name, shape=(None, DIGIT_DIMS), min_rows=1, dtype=torch.float32, device="cpu")
    return t.clamp(0.0, 1.0)


def _training_bin_centres() -> torch.Tensor:
    """The 1437 training digits at their bin centres (x + 0.5)/17: float32 (1437, 64)."""
    X = torch.as_tensor(load_digits_split(validation=False).X_train, dtype=torch.float32)
    return (X + 0.5) / DIGIT_LEVELS


def nearest_train_distance(samples, batch_size: int = 1024) -> np.ndarray:
    """Euclidean distance of each sample to the nearest training digit: is a sample a copy?

    samples (n, 64) on the [0, 1) scale (tensor on any device, or array; clipped to [0, 1]); the
    reference set is the 1437 training digits at their bin centres (x + 0.5)/17. Returns (n,) float64
    NumPy distances on the [0, 1) scale. A bin-centre training image scores 0, any dequantisation of
    one at most √64 · (0.5/17) = 4/17 ≈ 0.235; compare a model's samples with real held-out digits
    (``heldout_nearest_train_distance``), which never were in the training set.
    """
    x = _samples(samples)
    batch_size = check_int(batch_size, "batch_size", low=1)
    ref = _training_bin_centres()
    out = [torch.cdist(b, ref, compute_mode="donot_use_mm_for_euclid_dist").min(1).values  # exact 0
           for b in x.split(batch_size)]
    return torch.cat(out).numpy().astype(np.float64)


def heldout_nearest_train_distance() -> np.ndarray:
    """The reference value of ``nearest_train_distance``: (360,) distances of the real held-out
    digits (``data.heldout_digits()``) to their nearest training digit: median 1.01, 5 % quantile
    0.69, minimum 0.50 (a test checks them). Samples that sit much closer to the training set than
    these do (a dequantised copy is within 4/17 ≈ 0.24) are copies, not new digits."""
    return nearest_train_distance(heldout_digits())


# ------------------------------------------------------------------------------------ the judge
_JUDGES: dict = {}


def _blends_of_heldout(n: int, seed: int) -> torch.Tensor:
    """``n`` 50/50 blends of two held-out digits of different classes (fixed seed): (n, 64)."""
    y_test = torch.as_tensor(load_digits_split(validation=False).y_test)
    g = torch.Generator().manual_seed(seed)
    held = heldout_digits()
    i = torch.randint(0, len(held), (8 * n,), generator=g)
    j = torch.randint(0, len(held), (8 * n,), generator=g)
    keep = y_test[i] != y_test[j]
    i, j = i[keep][:n], j[keep][:n]
    return 0.5 * held[i] + 0.5 * held[j]


def _train_judge_net(seed: int, steps: int, batch_size: int = 128, lr: float = 3e-3) -> torch.nn.Module:
    """Train the judge's MLP 64-256-256-10 on the CPU, one thread, float32, deterministically.

    Each step: a batch of training digits, dequantised with fresh noise, plus batch/8 images of
    uniform noise labelled uniformly over the ten classes; mixup (λ ~ Beta(1, 1) = U[0, 1)) between
    random pairs of the batch, images and (one-hot) targets alike; AdamW with cosine decay. The global
    RNG, the thread count and the default dtype of the caller are left as they were.
    """
    from companion_lib.nets import mlp

    split = load_digits_split(validation=False)
    X = torch.as_tensor(split.X_train, dtype=torch.float32)
    Y = torch.nn.functional.one_hot(torch.as_tensor(split.y_train), 10).float()
    n_noise = batch_size // 8
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            g = torch.Generator().manual_seed(seed)
            net = mlp(DIGIT_DIMS, 256, 10, depth=2)
            opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
            for _ in range(steps):
                idx = torch.randint(0, len(X), (batch_size,), generator=g)
                x = (X[idx] + torch.rand(batch_size, DIGIT_DIMS, generator=g)) / DIGIT_LEVELS
                x = torch.cat([x, torch.rand(n_noise, DIGIT_DIMS, generator=g)])
                y = torch.cat([Y[idx], torch.full((n_noise, 10), 0.1)])
                m = len(x)
                perm = torch.randperm(m, generator=g)
                lam = torch.rand(m, 1, generator=g)                          # Beta(1, 1)
                xm, ym = lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]
                loss = -(ym * torch.log_softmax(net(xm), 1)).sum(1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
    finally:
        torch.set_num_threads(threads)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


#: (seed, steps) of the judge whose weights ship in ``companion_lib/datasets/digit_judge.pt``: the
#: output of ``_train_judge_net(0, 2000)`` with the pinned torch (``tests/test_metrics.py`` retrains it
#: and checks that the shipped weights are what training gives), loaded in milliseconds instead of
#: ~5 s of training in every notebook that judges samples.
_SHIPPED_JUDGE = (0, 2000)


def _shipped_judge_net():
    """The judge network with the shipped weights, or None when the file is missing."""
    from importlib import resources

    from companion_lib.nets import mlp

    path = resources.files("companion_lib.datasets").joinpath("digit_judge.pt")
    if not path.is_file():
        return None
    with path.open("rb") as f:
        state = torch.load(f, map_location="cpu", weights_only=True)
    with torch.random.fork_rng(devices=[]):
        net = mlp(DIGIT_DIMS, 256, 10, depth=2)
    net.load_state_dict(state)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


class DigitJudge:
    """A judge of sample quality: labels an 8×8 image on the [0, 1) scale with a digit and a confidence.

    An MLP 64-256-256-10 (``nets.mlp``) trained on the 1437 training digits with mixup, on dequantised
    images (fresh noise every batch), with uniform-noise images labelled "no digit in particular"
    (uniform over the ten classes) among the mixup partners; fixed seed, one thread, float32, on the
    CPU whatever the run's device, so quick and full mode share one judge. Training takes about 5 s
    (2000 steps of 144 images) on one core; the default judge's weights ship with the package (a test
    retrains it and compares), so it loads in milliseconds. Once per process (cached; the global RNG,
    torch's thread count and the run's device are left as they were).

    Measured at construction, with the default seed and steps (``.measured``; a test checks them):

    * accuracy on the 360 held-out digits (``data.heldout_digits()``): 98.3 %;
    * confident (max probability ≥ 0.9) on 78.9 % of the real held-out digits,
    * on 0.0 % of 500 images of uniform noise on [0, 1)^64 (fresh draws, seed 1; the judge saw
      others like them in training, so this checks the gate rather than an unseen kind of image), and
    * on 0.2 % (1 of 500) of 50/50 blends of two held-out digits of different classes (seed 2;
      nothing like them was seen in training).

    Inputs outside [0, 1) are clipped to [0, 1]. Methods take samples (n, 64) as a tensor (any
    device, any float dtype) or an array and return NumPy results.
    """

    def __init__(self, seed: int = 0, steps: int = 2000):
        seed = check_int(seed, "seed", low=0)
        steps = check_int(steps, "steps", low=1)
        key = (seed, steps)
        if key not in _JUDGES:
            net = _shipped_judge_net() if key == _SHIPPED_JUDGE else None
            if net is None:
                net = _train_judge_net(seed, steps)
            _JUDGES[key] = (net, self._measure(net))
        self.net, self.measured = _JUDGES[key]
        self.measured = dict(self.measured)
        self.seed, self.steps = seed, steps

    @staticmethod
    def _measure(net) -> dict:
        def share(x):
            with torch.no_grad():
                return float((torch.softmax(net(x), 1).max(1).values >= 0.9).float().mean())

        held = heldout_digits()
        y_test = torch.as_tensor(load_digits_split(validation=False).y_test)
        with torch.no_grad():
            accuracy = float((net(held).argmax(1) == y_test).float().mean())
        noise = torch.rand(500, DIGIT_DIMS, generator=torch.Generator().manual_seed(1))
        return {"accuracy": accuracy, "confident_real": share(held),
                "confident_noise": share(noise), "confident_blends": share(_blends_of_heldout(500, 2))}

    @property
    def accuracy(self) -> float:
        """Share of the 360 held-out digits labelled with their true class."""
        return self.measured["accuracy"]

    def predict_proba(self, samples) -> np.ndarray:
        """Class probabilities (n, 10) of samples (n, 64) on the [0, 1) scale (clipped to [0, 1])."""
        x = _samples(samples)
        with torch.no_grad():
            return torch.softmax(self.net(x), 1).numpy().astype(np.float64)

    def predict(self, samples) -> np.ndarray:
        """The most probable digit of each sample: (n,) ints."""
        return self.predict_proba(samples).argmax(1)

    def confident_share(self, samples, threshold: float = 0.9) -> float:
        """Share of samples (n, 64) that the judge labels with probability ≥ ``threshold``."""
        threshold = check_float(threshold, "threshold", low=0.0, high=1.0)
        return float((self.predict_proba(samples).max(1) >= threshold).mean())

    def class_histogram(self, samples) -> np.ndarray:
        """Share of all samples by predicted digit: (10,) NumPy array that sums to 1."""
        labels = self.predict(samples)
        return np.bincount(labels, minlength=10) / len(labels)

    def __repr__(self) -> str:
        m = self.measured
        return (f"DigitJudge(seed={self.seed}, steps={self.steps}: held-out accuracy {m['accuracy']:.1%}; "
                f"confident on {m['confident_real']:.0%} of real digits, {m['confident_noise']:.1%} of "
                f"noise, {m['confident_blends']:.1%} of blends)")


# ------------------------------------------------------------------------------------ χ²
@cpu_float64()
def chi_square_gof(counts, probs, n_params: int, min_expected: float = 5.0):
    """Pearson's (1900) chi-square goodness-of-fit test of binned counts against a fitted model.

    counts (B,) observed; probs (B,) model probabilities of the bins, which must sum to 1 (make the
    outer bins open-ended). Adjacent bins are merged until each expects ≥ ``min_expected``.
    Degrees of freedom: merged bins − 1 − n_params. Returns a dict with ``statistic``, ``dof``,
    ``p_value`` and ``n_bins``.
    """
    from scipy.stats import chi2

    counts = _numpy64(counts, "counts", ndim=1, min_rows=1)
    probs = _numpy64(probs, "probs", shape=(len(counts),), shape_of="counts").copy()
    if (counts < 0).any():
        raise ValueError(f"counts must be non-negative (observed counts per bin), got min {counts.min():g}")
    min_expected = check_float(min_expected, "min_expected", low=0.0, low_open=True)
    if (probs < 0).any() or abs(probs.sum() - 1) > 1e-6:
        raise ValueError(f"probs must be non-negative and sum to 1 (open-ended outer bins), "
                         f"got sum {probs.sum():.6g}")
    n = counts.sum()
    obs, exp, o, e = [], [], 0.0, 0.0
    for c, p in zip(counts, probs * n):
        o, e = o + c, e + p
        if e >= min_expected:
            obs.append(o), exp.append(e)
            o, e = 0.0, 0.0
    if e > 0:  # fold the remainder into the last bin
        obs[-1] += o
        exp[-1] += e
    obs, exp = np.array(obs), np.array(exp)
    dof = len(obs) - 1 - check_int(n_params, "n_params", low=0)
    if dof < 1:
        raise ValueError(f"too few bins ({len(obs)}) for {n_params} fitted parameters")
    stat = float(((obs - exp) ** 2 / exp).sum())
    return {"statistic": stat, "dof": dof, "p_value": float(chi2.sf(stat, dof)), "n_bins": len(obs)}
