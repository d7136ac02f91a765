"""Two-sample tests: did two sets of samples come from the same distribution?

* ``energy_distance``  the energy distance of Székely & Rizzo, 2 E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖
                       (a V-statistic; zero exactly when the two distributions are equal)
* ``energy_test``      its permutation test: the p-value of "X and Y have one distribution"

In 1-D, ``scipy.stats.ks_2samp`` is the classical choice; the energy test works in any dimension
(images included) and needs no bandwidth. Used by §15.3.1 to check that iterating (15.7) gives (15.8).

Torch only; computes on the samples' device and dtype (float32 on a GPU is fine).
"""
from __future__ import annotations

import torch

from companion_lib._checks import as_tensor, check_generator, check_int

__all__ = ["energy_distance", "energy_test"]


def _pair(x, y):
    x = as_tensor(x, "x", ndim=(1, 2), dtype=None, min_rows=2)
    y = as_tensor(y, "y", ndim=(1, 2), dtype=x.dtype, device=x.device, min_rows=2)
    x = x.reshape(x.shape[0], -1)
    y = y.reshape(y.shape[0], -1)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    return x, y


def _distances(pooled: torch.Tensor) -> torch.Tensor:
    """Pairwise Euclidean distances (N, N), computed directly (the matmul shortcut loses ~1e-9)."""
    return torch.cdist(pooled, pooled, compute_mode="donot_use_mm_for_euclid_dist")


def _statistic(dist: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Energy distances for label columns: dist (N, N) pooled distances, labels (N, P) in {0, 1}
    (1 = in X). Returns (P,): 2 mean d(X, Y) − mean d(X, X) − mean d(Y, Y), means over all pairs."""
    a = labels
    b = 1.0 - labels
    n = a.sum(0)
    m = b.sum(0)
    da = dist @ a                                                  # (N, P): Σ_{j∈X} d(i, j)
    xx = (a * da).sum(0) / (n * n)
    xy = (b * da).sum(0) / (n * m)
    yy = (b * (dist @ b)).sum(0) / (m * m)
    return 2 * xy - xx - yy


def energy_distance(x, y) -> float:
    """Energy distance between the samples x (n, d) and y (m, d) (or 1-D (n,), (m,)), Euclidean
    norm; ≥ 0, and 0 in the population only when the two distributions agree. Returns a float."""
    x, y = _pair(x, y)
    pooled = torch.cat([x, y])
    labels = torch.cat([torch.ones(len(x), 1), torch.zeros(len(y), 1)]).to(pooled)
    return float(_statistic(_distances(pooled), labels)[0])


def energy_test(x, y, n_permutations: int = 200, generator: torch.Generator | None = None,
                chunk: int = 64) -> dict:
    """Permutation test of H0 "x and y are samples of one distribution" with the energy distance.

    x (n, d), y (m, d) on one device (1-D inputs count as d = 1). The labels are shuffled
    ``n_permutations`` times (CPU ``generator``); the p-value is (1 + #{permuted ≥ observed}) /
    (1 + n_permutations), exact in level (never below 1/(n_permutations + 1)). Memory: (n + m)² for
    the pooled distances, plus (n + m) × ``chunk`` per batch of permutations.
    Returns a dict: ``statistic`` (float), ``p_value`` (float), ``n_permutations``, ``null`` (the
    permuted statistics, a CPU tensor).
    """
    x, y = _pair(x, y)
    n_permutations = check_int(n_permutations, "n_permutations", low=1)
    chunk = check_int(chunk, "chunk", low=1)
    generator = check_generator(generator)
    pooled = torch.cat([x, y])
    N, n = pooled.shape[0], x.shape[0]
    dist = _distances(pooled)
    base = torch.cat([torch.ones(n), torch.zeros(N - n)])
    observed = _statistic(dist, base[:, None].to(pooled))[0]
    null = []
    for start in range(0, n_permutations, chunk):
        k = min(chunk, n_permutations - start)
        perms = torch.stack([torch.randperm(N, generator=generator) for _ in range(k)], 1)   # (N, k)
        null.append(_statistic(dist, base[perms].to(pooled)).cpu())
    null = torch.cat(null)
    exceed = int((null >= observed.cpu()).sum())
    return {"statistic": float(observed), "p_value": (1 + exceed) / (1 + n_permutations),
            "n_permutations": n_permutations, "null": null}
