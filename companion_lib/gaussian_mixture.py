"""A mixture of isotropic Gaussians as one value (a building block every section uses).

    p(x) = Σ_k ρ_k N(x; μ_k, σ_k² I_d)                         (the §14.1 mixture, eq. 14.1's model)

* ``MixtureOfGaussians``  the (weights, means, variances) triple, validated once, with ``log_joint``,
  ``log_prob``, ``responsibilities``, ``score`` (eq. 15.1), ``sample``, ``noised`` (q(x_t) under the
  forward process, eq. 15.8) and ``moments``
* ``as_mixture``          a ``MixtureOfGaussians`` from either one or the triple: every function that
  took (weights, means, variances) accepts both

The one rule (documented here, applied everywhere): weights are a non-empty vector (K,) of numbers ≥ 0
that sum to 1 within ``WEIGHT_ATOL`` = 1e-6 (never renormalised silently); means are (K, d), or (K,)
for a 1-D mixture (stored as (K, 1)); variances are (K,), one σ_k² > 0 per component (isotropic); all
finite. A 1-D mixture's callers read ``means[:, 0]``.

Not to be confused with ``mixture.GaussianMixture``, the scikit-learn-like estimator that *fits* a
mixture by EM: this type *is* a mixture with known parameters. Variances are variances σ², as in
``gaussian`` (never σ, never log σ²).
"""
from __future__ import annotations

import dataclasses
import math

import torch

from companion_lib._checks import as_tensor, check_float, check_generator, check_int, check_weights
from companion_lib.gaussian import log_normal_diag

__all__ = ["MixtureOfGaussians", "as_mixture", "WEIGHT_ATOL"]

#: How far from 1 the weights' sum may be (the one tolerance of every mixture in the companion).
WEIGHT_ATOL = 1e-6


@dataclasses.dataclass(frozen=True, eq=False)
class MixtureOfGaussians:
    """Σ_k ρ_k N(μ_k, σ_k² I_d): ``weights`` (K,), ``means`` (K, d), ``variances`` (K,) tensors of one
    dtype on one device (those of ``means`` when it is a floating tensor, else float64 on the CPU).

    ``MixtureOfGaussians(weights, means, variances)`` validates (see the module docstring) and raises a
    ``ValueError`` naming the argument; means of shape (K,) are a 1-D mixture, stored as (K, 1).
    """
    weights: torch.Tensor
    means: torch.Tensor
    variances: torch.Tensor

    def __post_init__(self):
        like = self.means
        dtype = like.dtype if isinstance(like, torch.Tensor) and like.is_floating_point() else torch.float64
        device = like.device if isinstance(like, torch.Tensor) else torch.device("cpu")
        w = check_weights(self.weights, "weights", dtype=dtype, device=device, atol=WEIGHT_ATOL)
        K = w.shape[0]
        m = as_tensor(self.means, "means", ndim=(1, 2), dtype=dtype, device=device)
        if m.shape[0] != K:
            raise ValueError(f"means must have shape ({K}, d) or ({K},), one mean per weight, got {tuple(m.shape)}")
        v = as_tensor(self.variances, "variances", dtype=dtype, device=device)
        if v.shape != (K,) or (v <= 0).any():
            raise ValueError(f"variances must be positive, shape ({K},) (one isotropic σ_k² per component), "
                             f"got shape {tuple(v.shape)}" + (f", min {float(v.min()):.3g}" if v.numel() else ""))
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "means", m[:, None] if m.ndim == 1 else m)
        object.__setattr__(self, "variances", v)

    @property
    def K(self) -> int:
        """Number of components."""
        return int(self.weights.shape[0])

    @property
    def d(self) -> int:
        """Dimension of x."""
        return int(self.means.shape[1])

    def to(self, dtype=None, device=None) -> "MixtureOfGaussians":
        """The same mixture in ``dtype`` on ``device`` (``self`` when nothing changes)."""
        dtype = self.means.dtype if dtype is None else dtype
        device = self.means.device if device is None else torch.device(device)
        if dtype == self.means.dtype and device == self.means.device:
            return self
        return MixtureOfGaussians(*(t.to(dtype=dtype, device=device) for t in
                                    (self.weights, self.means, self.variances)))

    def _x(self, x) -> torch.Tensor:
        x = as_tensor(x, "x", ndim=2, min_rows=1, dtype=self.means.dtype, device=self.means.device)
        if x.shape[1] != self.d:
            raise ValueError(f"x must have shape (n, {self.d}) for this {self.d}-D mixture, got {tuple(x.shape)}")
        return x

    def log_joint(self, x) -> torch.Tensor:
        """log ρ_k + log N(x; μ_k, σ_k² I), the log p(h = k, x) of §14.1: x (n, d) → (n, K)."""
        x = self._x(x)
        return torch.log(self.weights) + log_normal_diag(x[:, None, :], self.means[None],
                                                         self.variances[None, :, None], check=False)

    def log_prob(self, x) -> torch.Tensor:
        """log p(x) = log Σ_k ρ_k N(x; μ_k, σ_k² I): x (n, d) → (n,)."""
        return torch.logsumexp(self.log_joint(x), dim=1)

    def responsibilities(self, x) -> torch.Tensor:
        """r_k(x) = p(h = k | x), the E-step of §14.1: x (n, d) → (n, K), rows on the simplex."""
        return torch.softmax(self.log_joint(x), dim=1)

    def score(self, x) -> torch.Tensor:
        """∇_x log p(x) = Σ_k r_k(x) (μ_k − x) / σ_k² (eq. 15.1, the score of the energy −log p):
        x (n, d) → (n, d)."""
        x = self._x(x)
        resp = self.responsibilities(x)                                                # (n, K)
        return torch.einsum("nk,nkd->nd", resp / self.variances, self.means[None] - x[:, None, :])

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n exact draws (n, d) (ancestral: a component h ~ ρ, then x ~ N(μ_h, σ_h² I)), drawn with the
        CPU ``generator`` in the mixture's dtype, then moved to its device."""
        n = check_int(n, "n", low=1)
        check_generator(generator)
        h = torch.multinomial(self.weights.cpu(), n, replacement=True, generator=generator)
        z = torch.randn(n, self.d, generator=generator, dtype=self.means.dtype)
        h, z = h.to(self.means.device), z.to(self.means.device)
        return self.means[h] + self.variances[h].sqrt()[:, None] * z

    def noised(self, alpha_bar) -> "MixtureOfGaussians":
        """The law of x_t = √ᾱ x_0 + √(1 − ᾱ) ε when x_0 follows this mixture (eq. 15.8): again a mixture,
        Σ_k ρ_k N(√ᾱ μ_k, (ᾱ σ_k² + 1 − ᾱ) I). alpha_bar: ᾱ in (0, 1] (1: the data itself)."""
        ab = check_float(alpha_bar, "alpha_bar", low=0.0, high=1.0, low_open=True)
        return MixtureOfGaussians(self.weights, math.sqrt(ab) * self.means, ab * self.variances + (1.0 - ab))

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (d,) and covariance (d, d): E x = Σ ρ_k μ_k, Cov x = Σ ρ_k (σ_k² I + μ_k μ_kᵀ) − E x E xᵀ."""
        mean = self.weights @ self.means
        second = torch.einsum("k,kd,ke->de", self.weights, self.means, self.means)
        eye = torch.eye(self.d, dtype=self.means.dtype, device=self.means.device)
        return mean, second + (self.weights @ self.variances) * eye - torch.outer(mean, mean)


def as_mixture(mixture_or_weights, means=None, variances=None, *, dtype=None, device=None) -> MixtureOfGaussians:
    """A ``MixtureOfGaussians`` from one (``means`` and ``variances`` left out) or from the triple
    (weights (K,), means (K, d) or (K,), variances (K,)), in ``dtype`` on ``device`` when given."""
    if isinstance(mixture_or_weights, MixtureOfGaussians):
        if means is not None or variances is not None:
            raise TypeError("pass either a MixtureOfGaussians or (weights, means, variances), not both")
        return mixture_or_weights.to(dtype, device)
    if means is None or variances is None:
        raise TypeError("means and variances are required when weights is not a MixtureOfGaussians "
                        f"(got weights of type {type(mixture_or_weights).__name__})")
    if dtype is not None or device is not None:
        floating = isinstance(means, torch.Tensor) and means.is_floating_point()
        dtype = dtype if dtype is not None else (means.dtype if floating else torch.float64)
        means = as_tensor(means, "means", dtype=dtype, device=device)
    return MixtureOfGaussians(mixture_or_weights, means, variances)
