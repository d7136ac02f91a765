"""§14.1, Pearson's own route (1894): fit a two-Gaussian mixture by the method of moments.

Pearson matched the first five moments of the data with those of ρ N(μ₁, σ₁²) + (1−ρ) N(μ₂, σ₂²)
(five unknowns), which reduces to a ninth-degree polynomial; among its admissible roots he kept the
one whose sixth moment came closest to the data's. We solve the same five equations numerically
from many starting points, keep every admissible root, and choose by the sixth moment likewise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from companion_lib._checks import as_array, as_tensor, check_float, check_int
from companion_lib.settings import cpu_float64

__all__ = ["normal_raw_moments", "mixture_raw_moments", "MomentFit", "method_of_moments"]


@cpu_float64()
def normal_raw_moments(mean, sd, order: int) -> np.ndarray:
    """E[X^k] for X ~ N(mean, sd²), k = 0..order (recursion m_k = μ m_{k−1} + (k−1) σ² m_{k−2}).

    mean, sd: scalars or arrays of one shape S (sd > 0); returns (order + 1, *S).
    """
    order = check_int(order, "order", low=0)
    mean = as_tensor(mean, "mean", dtype=None).cpu().numpy().astype(float)
    sd = as_tensor(sd, "sd", dtype=None).cpu().numpy().astype(float)
    if mean.shape != sd.shape:
        raise ValueError(f"mean and sd must have one shape, got {mean.shape} and {sd.shape}")
    if (sd <= 0).any():
        raise ValueError("sd must be > 0 (standard deviations)")
    m = [np.ones_like(mean), mean]
    for k in range(2, order + 1):
        m.append(mean * m[k - 1] + (k - 1) * sd ** 2 * m[k - 2])
    return np.stack(m[: order + 1])


@cpu_float64()
def mixture_raw_moments(weight, means, sds, order: int) -> np.ndarray:
    """E[X^k], k = 0..order, of weight·N(means[0], sds[0]²) + (1−weight)·N(means[1], sds[1]²)."""
    weight = check_float(weight, "weight", low=0.0, high=1.0)
    means = as_tensor(means, "means", shape=(2,), dtype=None).cpu().numpy().astype(float)
    sds = as_tensor(sds, "sds", shape=(2,), dtype=None).cpu().numpy().astype(float)
    m = normal_raw_moments(means, sds, order)  # (order+1, 2)
    return weight * m[:, 0] + (1 - weight) * m[:, 1]


@dataclass
class MomentFit:
    """One admissible root: weight ρ of component 1 (the one with the smaller mean), means, sds,
    and the error of its sixth standardised moment against the data's."""

    weight: float
    means: np.ndarray
    sds: np.ndarray
    sixth_moment_error: float

    def __post_init__(self):
        self.weight = check_float(self.weight, "weight", low=0.0, high=1.0)
        self.means = as_array(self.means, "means", shape=(2,))
        self.sds = as_array(self.sds, "sds", shape=(2,))
        if (self.sds <= 0).any():
            raise ValueError(f"sds must be > 0 (standard deviations), got {self.sds}")
        self.sixth_moment_error = check_float(self.sixth_moment_error, "sixth_moment_error")


@cpu_float64()
def method_of_moments(x, n_starts: int = 400, seed: int = 0) -> list[MomentFit]:
    """All admissible solutions of Pearson's five moment equations for a 1-D sample x (n,).

    The data are standardised first (z = (x − mean)/sd, so the equations are well scaled); roots are
    returned in the original units, sorted by how well they match the sixth moment (best first).
    """
    x = as_tensor(x, "x", ndim=1, min_rows=6).numpy()
    n_starts = check_int(n_starts, "n_starts", low=1)
    loc, scale = x.mean(), x.std()
    z = (x - loc) / scale
    target = np.array([np.mean(z ** k) for k in range(7)])  # raw moments of z, k = 0..6

    def residual(p):  # p = (logit ρ, μ1, μ2, log σ1, log σ2) in standardised units
        w = 1 / (1 + np.exp(-p[0]))
        return mixture_raw_moments(w, p[1:3], np.exp(p[3:5]), 5)[1:] - target[1:6]

    rng = np.random.default_rng(seed)
    roots = []
    for _ in range(n_starts):
        p0 = np.concatenate([[rng.normal(0, 1.5)], rng.normal(0, 1.2, 2), rng.normal(-0.5, 0.6, 2)])
        sol = least_squares(residual, p0, xtol=1e-14, ftol=1e-14, gtol=1e-14)
        if np.max(np.abs(sol.fun)) > 1e-9:
            continue
        w, mu, sd = 1 / (1 + np.exp(-sol.x[0])), sol.x[1:3], np.exp(sol.x[3:5])
        if mu[0] > mu[1]:
            w, mu, sd = 1 - w, mu[::-1], sd[::-1]
        if abs(mu[0] - mu[1]) < 1e-6 or not 1e-6 < w < 1 - 1e-6:
            continue  # a single Gaussian in disguise
        if any(np.allclose([w, *mu, *sd], [r[0], *r[1], *r[2]], atol=1e-6) for r in roots):
            continue
        roots.append((w, mu.copy(), sd.copy()))
    fits = []
    for w, mu, sd in roots:
        m6 = mixture_raw_moments(w, mu, sd, 6)[6]
        fits.append(MomentFit(weight=float(w), means=loc + scale * mu, sds=scale * sd,
                              sixth_moment_error=float(m6 - target[6])))
    return sorted(fits, key=lambda f: abs(f.sixth_moment_error))
