"""§14.3: energy-based models. Energies, the Gibbs distribution (eq. 14.3), its partition function
by quadrature, a learned energy network, and a joint energy E(x, h) with a discrete h. The score
−∇E (eq. 15.1), denoising score matching and Langevin sampling live in ``scores`` (re-exported here:
``ebm.score``, ``ebm.dsm_loss``, ``ebm.langevin_step``, ``ebm.langevin``).

Torch only (no plotting, no grading). Every energy maps x of shape (n, d) to (n,).

* Gibbs distribution (eq. 14.3):   P(x) = exp(−E(x)) / Z,   Z = ∫ exp(−E(x)) dx.
* Score (eq. 15.1):                s(x) = ∇_x log P(x) = −∇_x E(x)      (Z drops out).
* Unadjusted Langevin dynamics:    x ← x + (η/2)·s(x) + √η·ξ,   ξ ~ N(0, I).
* Denoising score matching:        x̃ = x + σε,  minimise E‖σ·s_θ(x̃) + ε‖² / 2
                                    (the score of N(x̃; x, σ²I) at x̃ is −ε/σ).
* Maximum likelihood (eq. 14.3 in logs):  −log P_θ(x) = E_θ(x) + log Z_θ, whose gradient is
      ∇_θ E_θ(x) − E_{x'~P_θ}[∇_θ E_θ(x')]     (∇_θ log Z_θ = −E_{P_θ}[∇_θ E_θ]).
  ``ml_grid_loss``: log Z_θ on a 2-D grid, differentiated exactly (autograd through the log-sum-exp);
  ``cd_loss`` + ``PersistentChains``: contrastive divergence, the expectation replaced by an average
  over short Langevin chains (persistent between steps: PCD).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from companion_lib._checks import (as_tensor, check_batch, check_callable, check_float, check_generator,
                                   check_int, check_labels)
from companion_lib.gaussian import LOG_2PI
from companion_lib.gaussian_mixture import MixtureOfGaussians, as_mixture
from companion_lib.nets import mlp
from companion_lib.scores import dsm_loss, langevin, langevin_step, score  # noqa: F401  (re-exported)
from companion_lib.settings import cpu_float64

# (``dsm_loss``, ``langevin``, ``langevin_step``, ``score`` are ``scores``' names, re-exported for the lessons.)
__all__ = ["gmm_energy", "gmm_score", "gmm_sample", "quadratic_energy", "quadratic_log_partition", "grid_2d",
           "grid_log_density", "log_partition_grid", "histogram_2d", "binned_probabilities", "total_variation",
           "EnergyMLP", "grid_log_likelihood", "region_masses", "ml_grid_loss", "cd_loss", "energy_penalty",
           "PersistentChains", "JointEnergy"]


# ------------------------------------------------------------------------------ analytic energies
def _check_gmm(x, weights, means, variances):
    """x (n, d) and the mixture (a ``MixtureOfGaussians`` or the triple) in x's dtype on its device."""
    x = as_tensor(x, "x", ndim=2, min_rows=1, dtype=None)
    mix = as_mixture(weights, means, variances, dtype=x.dtype, device=x.device)
    if mix.d != x.shape[1]:
        raise ValueError(f"means must have shape ({mix.K}, {x.shape[1]}) to match x (n, {x.shape[1]}), "
                         f"got ({mix.K}, {mix.d})")
    return x, mix


def gmm_energy(x, weights, means=None, variances=None) -> torch.Tensor:
    """Energy of an isotropic Gaussian mixture, E(x) = −log Σ_k ρ_k N(x; μ_k, σ_k² I).

    x (n, d); the mixture: a ``gaussian_mixture.MixtureOfGaussians``, or weights (K,) (≥ 0, summing
    to 1), means (K, d), variances (K,). Returns (n,).
    With this energy Z = 1 exactly (eq. 14.3); E + c has Z = exp(−c).
    """
    x, mix = _check_gmm(x, weights, means, variances)
    return -mix.log_prob(x)


def gmm_score(x, weights, means=None, variances=None) -> torch.Tensor:
    """Analytic score of the mixture energy: −∇E(x) = Σ_k r_k(x) (μ_k − x) / σ_k²   (eq. 15.1).

    r_k(x) = p(h = k | x) are the responsibilities (the E-step of §14.1). x (n, d) → (n, d); the
    mixture as in ``gmm_energy`` (``MixtureOfGaussians.score``).
    """
    x, mix = _check_gmm(x, weights, means, variances)
    return mix.score(x)


def gmm_sample(n, weights, means=None, variances=None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Exact samples of the mixture: (n, d) on the means' device, in their dtype (draws on the CPU
    generator; ``MixtureOfGaussians.sample``)."""
    n = check_int(n, "n", low=1)
    if not isinstance(weights, MixtureOfGaussians):
        means = as_tensor(means, "means", ndim=2, dtype=None)
    return as_mixture(weights, means, variances).sample(n, generator)


def quadratic_energy(x, precision, mean=None) -> torch.Tensor:
    """E(x) = ½ (x − m)ᵀ A (x − m), x (n, d), A (d, d) symmetric positive definite → (n,)."""
    x = as_tensor(x, "x", ndim=2, min_rows=1, dtype=None)
    d = x.shape[1]
    A = as_tensor(precision, "precision", shape=(d, d), shape_of="x's columns", dtype=x.dtype, device=x.device)
    m = torch.zeros(d, dtype=x.dtype, device=x.device) if mean is None else \
        as_tensor(mean, "mean", shape=(d,), shape_of="x's columns", dtype=x.dtype, device=x.device)
    y = x - m
    return 0.5 * torch.einsum("nd,de,ne->n", y, A, y)


def quadratic_log_partition(precision) -> float:
    """log Z of the quadratic energy in closed form: log Z = (d/2) log 2π − ½ log det A."""
    if isinstance(precision, torch.Tensor):
        precision = precision.detach().cpu()
    with cpu_float64():
        A = as_tensor(precision, "precision", ndim=2)
        if A.shape[0] != A.shape[1] or A.shape[0] == 0:
            raise ValueError(f"precision must be square (d, d), got {tuple(A.shape)}")
        sign, logdet = torch.linalg.slogdet(A)
        if sign <= 0 or not torch.allclose(A, A.T):
            raise ValueError("precision must be symmetric positive definite")
        return float(0.5 * A.shape[0] * LOG_2PI - 0.5 * logdet)


# ------------------------------------------------------------------------------ Z on a grid
def _grid_device_dtype(device, dtype):
    """The dtype rule for quadratures: float64 on the CPU (exact), float32 on an accelerator."""
    device = torch.device("cpu") if device is None else torch.device(device)
    if dtype is None:
        dtype = torch.float64 if device.type == "cpu" else torch.float32
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if dtype == torch.float64 and device.type != "cpu":
        raise ValueError(f"float64 only on the CPU (MPS has none; see settings' dtype rule): "
                         f"pass dtype=torch.float32 for device {device}")
    return device, dtype


def grid_2d(lim: float = 3.0, k: int = 200, device=None, dtype=None):
    """A k×k grid of cell centres on [−lim, lim]²: ``points`` (k², 2) in row-major (y, x) order,
    ``centres`` (k,), and the cell area ``(2 lim / k)²``. Default dtype: float64 on the CPU (computed
    inside ``settings.cpu_float64()``), float32 on an accelerator."""
    lim = check_float(lim, "lim", low=0.0, low_open=True)
    k = check_int(k, "k", low=2)
    device, dtype = _grid_device_dtype(device, dtype)
    h = 2 * lim / k
    with cpu_float64():
        c = torch.linspace(-lim + h / 2, lim - h / 2, k, dtype=dtype, device=device)
        yy, xx = torch.meshgrid(c, c, indexing="ij")
        return torch.stack([xx.reshape(-1), yy.reshape(-1)], 1), c, h * h


def _callable(fn, name: str = "energy_fn"):
    if not callable(fn):
        raise TypeError(f"{name} must be a function mapping x (n, d) to energies (n,), "
                        f"got a {type(fn).__name__}")
    return fn


def _neg_energy(energy_fn, pts) -> torch.Tensor:
    """−E at the points, checked, as float64 on the CPU (call inside ``cpu_float64()``)."""
    e = energy_fn(pts)
    if not isinstance(e, torch.Tensor) or e.shape != (pts.shape[0],):
        got = tuple(e.shape) if isinstance(e, torch.Tensor) else type(e).__name__
        raise ValueError(f"energy_fn must map (n, d) to (n,), got {got}")
    return -e.detach().cpu().double()


@torch.no_grad()
def grid_log_density(energy_fn: Callable, lim: float = 3.0, k: int = 200, device=None,
                     dtype=None, chunk: int = 65536):
    """Normalise exp(−E) on a k×k midpoint grid over [−lim, lim]² (eq. 14.3).

    The energy is evaluated on ``device`` (float64 on the CPU, float32 on an accelerator); the
    normalisation runs in float64 on the CPU. Returns ``log_p`` (k, k) float64 on the CPU, indexed
    [y, x], ``centres`` (k,), ``log_Z`` (float) with Z ≈ Σ_cells exp(−E(centre)) · cell area. Mass
    outside the box is ignored.
    """
    _callable(energy_fn)
    chunk = check_int(chunk, "chunk", low=1)
    pts, c, area = grid_2d(lim, k, device=device, dtype=dtype)
    with cpu_float64():
        neg_e = torch.cat([_neg_energy(energy_fn, p) for p in pts.split(chunk)])
        log_Z = float(torch.logsumexp(neg_e, 0) + math.log(area))
        return (neg_e - log_Z).reshape(k, k), c, log_Z


@torch.no_grad()
def log_partition_grid(energy_fn: Callable, d: int, lim: float = 5.0, k: int = 16,
                       chunk: int = 2 ** 18, device=None, dtype=None) -> float:
    """log Z by the midpoint rule on a k^d grid over [−lim, lim]^d, evaluated in chunks.

    The cost is k^d energy evaluations: the reason Z is intractable beyond a handful of
    dimensions (d = 64 for 8×8 digits gives k^64 points). Energies on ``device`` (float64 on the
    CPU, float32 on an accelerator), sums in float64 on the CPU.
    """
    _callable(energy_fn)
    d = check_int(d, "d", low=1)
    k = check_int(k, "k", low=2)
    lim = check_float(lim, "lim", low=0.0, low_open=True)
    chunk = check_int(chunk, "chunk", low=1)
    device, dtype = _grid_device_dtype(device, dtype)
    h = 2 * lim / k
    n = k ** d
    with cpu_float64():
        c = torch.linspace(-lim + h / 2, lim - h / 2, k, dtype=dtype, device=device)
        powers = k ** torch.arange(d - 1, -1, -1, device=device)
        acc = torch.tensor(-math.inf, dtype=torch.float64)
        for start in range(0, n, chunk):
            idx = torch.arange(start, min(n, start + chunk), device=device)
            pts = c[(idx[:, None] // powers) % k]                                   # (m, d)
            acc = torch.logaddexp(acc, torch.logsumexp(_neg_energy(energy_fn, pts), 0))
        return float(acc + d * math.log(h))


# ------------------------------------------------------------------------------ comparing densities
def histogram_2d(x, lim: float = 3.0, bins: int = 40) -> torch.Tensor:
    """Share of the points x (n, 2) in each of bins×bins cells of [−lim, lim]², indexed [y, x].

    Points outside the box count in the total, so the shares sum to the fraction inside.
    """
    bins = check_int(bins, "bins", low=1)
    lim = check_float(lim, "lim", low=0.0, low_open=True)
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
    with cpu_float64():
        x = as_tensor(x, "x", shape=(None, 2), min_rows=1, dtype=torch.float64)
        ij = torch.floor((x + lim) / (2 * lim) * bins).long()
        inside = ((ij >= 0) & (ij < bins)).all(1)
        flat = ij[inside, 1] * bins + ij[inside, 0]
        counts = torch.bincount(flat, minlength=bins * bins).double()
        return (counts / x.shape[0]).reshape(bins, bins)


def binned_probabilities(energy_fn: Callable, lim: float = 3.0, bins: int = 40, sub: int = 8,
                         device=None) -> torch.Tensor:
    """Exact probability of each histogram cell under P = exp(−E)/Z: (bins, bins) indexed [y, x].

    Integrates exp(−E) on a (bins·sub)² midpoint grid and sums each cell's sub×sub block;
    Z is the integral over the box (pick a box that holds essentially all the mass).
    """
    sub = check_int(sub, "sub", low=1)
    bins = check_int(bins, "bins", low=1)
    lim = check_float(lim, "lim", low=0.0, low_open=True)
    log_p, _, _ = grid_log_density(energy_fn, lim, bins * sub, device=device)
    area = (2 * lim / (bins * sub)) ** 2
    with cpu_float64():
        p = log_p.exp() * area
        return p.reshape(bins, sub, bins, sub).sum((1, 3))


def total_variation(p, q) -> float:
    """Total-variation distance ½ Σ |p − q| between two binned distributions of the same shape."""
    p = p.detach().cpu() if isinstance(p, torch.Tensor) else p
    q = q.detach().cpu() if isinstance(q, torch.Tensor) else q
    with cpu_float64():
        p = as_tensor(p, "p", dtype=torch.float64)
        q = as_tensor(q, "q", shape=tuple(p.shape), dtype=torch.float64)
        if p.numel() == 0:
            raise ValueError("p and q must not be empty (binned probabilities)")
        if (p < 0).any() or (q < 0).any():
            raise ValueError("p and q must be non-negative (binned probabilities)")
        return float(0.5 * (p - q).abs().sum())


# ------------------------------------------------------------------------------ a learned energy
class EnergyMLP(nn.Module):
    """E_θ(x) = MLP(x) + (confine/2)·‖x‖²: R^d → R, smooth (SiLU) so that −∇E is smooth too.

    The small quadratic term keeps exp(−E_θ) integrable whatever the MLP learns. x (n, d) → (n,).
    """

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, confine: float = 0.05):
        super().__init__()
        dim = check_int(dim, "dim", low=1)
        hidden = check_int(hidden, "hidden", low=1)
        depth = check_int(depth, "depth", low=1)
        self.confine = check_float(confine, "confine", low=0.0)
        self.net = mlp(dim, hidden, 1, depth)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_batch(x, "x", self.dim)                  # finite on the CPU only: no host sync per step
        p = next(self.parameters())
        if x.device != p.device:
            raise ValueError(f"x is on {x.device} but the model on {p.device}; move one of them "
                             "(e.g. x.to(run.device))")
        x = x.to(p.dtype)
        return self.net(x).squeeze(-1) + 0.5 * self.confine * (x ** 2).sum(-1)


@torch.no_grad()
def grid_log_likelihood(energy_fn: Callable, x, lim: float = 3.0, k: int = 200) -> torch.Tensor:
    """log P(x) = −E(x) − log Z with Z from the k×k grid on [−lim, lim]² (eq. 14.3). x (n, 2) → (n,),
    float64 on the CPU (the energy runs on x's device)."""
    x = as_tensor(x, "x", shape=(None, 2), min_rows=1, dtype=None)
    _, _, log_Z = grid_log_density(energy_fn, lim, k, device=x.device)
    with cpu_float64():
        return _neg_energy(energy_fn, x) - log_Z


def region_masses(energy_fn: Callable, region_fn: Callable, n_regions: int, lim: float = 3.0, k: int = 200,
                  device=None) -> torch.Tensor:
    """The mass P(region r) of P = exp(−E)/Z (eq. 14.3, Z on the k×k grid over [−lim, lim]²) for each
    region r = 0..n_regions−1: the grid probabilities summed over the cells whose centre
    ``region_fn`` assigns to r (region_fn: (m, 2) float64 points on the CPU → (m,) integer labels). Returns
    (n_regions,) float64 on the CPU, summing to 1 (the box holds all the mass the grid sees)."""
    check_callable(region_fn, "region_fn", "points (m, 2) to integer region labels (m,)")
    n_regions = check_int(n_regions, "n_regions", low=1)
    log_p, c, _ = grid_log_density(energy_fn, lim, k, device=device)
    pts, _, area = grid_2d(lim, k)                          # the same cells, on the CPU in float64
    with cpu_float64():
        labels = check_labels(region_fn(pts), "region_fn(points)", n=pts.shape[0], n_classes=n_regions,
                              device="cpu")
        p = log_p.reshape(-1).exp() * area
        return torch.zeros(n_regions, dtype=torch.float64).index_add_(0, labels, p)


# ------------------------------------------------------------------------------ maximum likelihood
def _energies(energy_fn, x, name: str) -> torch.Tensor:
    e = energy_fn(x)
    if not isinstance(e, torch.Tensor) or e.shape != (x.shape[0],):
        got = tuple(e.shape) if isinstance(e, torch.Tensor) else type(e).__name__
        raise ValueError(f"energy_fn must map {name} (n, d) to energies (n,), got {got}")
    return e


def ml_grid_loss(energy_fn: Callable, x, lim: float = 3.0, k: int = 64,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """The exact negative log-likelihood of a 2-D energy model, mean over the batch:
    mean_i E_θ(x_i) + log Z_θ (eq. 14.3 in logs), with log Z_θ = logsumexp_cells(−E_θ) + log(cell area)
    on a k×k midpoint grid over [−lim, lim]², kept differentiable in θ.

    Its gradient is the maximum-likelihood gradient ∇_θ E(x) − E_{P_θ}[∇_θ E] with the expectation
    under the model computed by quadrature (the softmax of −E over the cells weights each cell's
    ∇_θ E): what an MCMC sampler only estimates. ``generator``: shift the whole grid by one uniform
    offset within a cell per call, so a coarse training grid cannot be exploited between its points
    (Z stays an unbiased estimate; judge the model on a fine fixed grid). x (n, 2) → scalar.
    """
    check_callable(energy_fn, "energy_fn", "x (n, 2) to energies (n,)")
    x = check_batch(x, "x", 2)
    lim = check_float(lim, "lim", low=0.0, low_open=True)
    k = check_int(k, "k", low=2)
    check_generator(generator)
    pts, _, area = grid_2d(lim, k, device=x.device, dtype=x.dtype)
    if generator is not None:
        h = 2 * lim / k
        pts = pts + ((torch.rand(2, generator=generator, dtype=x.dtype) - 0.5) * h).to(x.device)
    log_Z = torch.logsumexp(-_energies(energy_fn, pts, "the grid points"), 0) + math.log(area)
    return _energies(energy_fn, x, "x").mean() + log_Z


def _check_data_model(x_data, x_model):
    """x_data (n, d) and x_model (m, d): batches of one width d (``check_batch``)."""
    x_data, x_model = check_batch(x_data, "x_data"), check_batch(x_model, "x_model")
    if x_model.shape[1] != x_data.shape[1]:
        raise ValueError(f"x_data (n, d) and x_model (m, d) must have one width d, got {tuple(x_data.shape)} "
                         f"and {tuple(x_model.shape)}")
    return x_data, x_model


def cd_loss(energy_fn: Callable, x_data, x_model) -> torch.Tensor:
    """Contrastive divergence: mean E_θ(x_data) − mean E_θ(x_model), the model samples held fixed.

    x_data (n, d), x_model (m, d) samples of P_θ (e.g. short Langevin chains, ``PersistentChains``).
    The value is no likelihood (it is not even bounded below); its gradient,
    mean ∇_θ E(x_data) − mean ∇_θ E(x_model), is the Monte Carlo estimate of the gradient of the
    negative log-likelihood: ∇_θ log Z_θ = −E_{P_θ}[∇_θ E_θ] (eq. 14.3) estimated by the sample mean.
    No gradient flows through the sampler (x_model is detached). Returns a scalar.
    """
    check_callable(energy_fn, "energy_fn", "x (n, d) to energies (n,)")
    x_data, x_model = _check_data_model(x_data, x_model)
    return _energies(energy_fn, x_data, "x_data").mean() - _energies(energy_fn, x_model.detach(), "x_model").mean()


def energy_penalty(energy_fn: Callable, x_data, x_model) -> torch.Tensor:
    """mean E_θ(x_data)² + mean E_θ(x_model)²: the regulariser that keeps contrastive divergence's
    energies near 0 (Du & Mordatch 2019). ``cd_loss`` is unbounded below, so without it the energies
    can drift together while their difference stays the same. x_data (n, d), x_model (m, d) → scalar."""
    check_callable(energy_fn, "energy_fn", "x (n, d) to energies (n,)")
    x_data, x_model = _check_data_model(x_data, x_model)
    return ((_energies(energy_fn, x_data, "x_data") ** 2).mean()
            + (_energies(energy_fn, x_model.detach(), "x_model") ** 2).mean())


class PersistentChains:
    """Langevin chains that persist between training steps (persistent contrastive divergence).

    ``n`` chains in R^d start from N(0, init_std² I); each ``advance(energy_fn)`` runs ``steps``
    unadjusted Langevin steps of size ``step_size`` on the current energy (the score −∇E by
    autograd, eq. 15.1) from where the chains stopped (after restarting a fraction ``restart`` of
    them from the initial distribution; 0, classic PCD, by default) and returns the chains (n, d),
    detached, on ``device`` in ``dtype`` (the energy's). Because the energy
    changes slowly, chains that continue from the last step stay near the current P_θ with far
    fewer steps than chains started from noise. Noise on the CPU ``generator``.
    """

    def __init__(self, n: int, dim: int = 2, *, steps: int = 10, step_size: float = 0.01,
                 init_std: float = 1.5, restart: float = 0.0, generator: torch.Generator | None = None,
                 device=None, dtype=torch.float32):
        self.n = check_int(n, "n", low=1)
        self.dim = check_int(dim, "dim", low=1)
        self.steps = check_int(steps, "steps", low=1)
        self.step_size = check_float(step_size, "step_size", low=0.0, low_open=True)
        self.init_std = check_float(init_std, "init_std", low=0.0, low_open=True)
        self.restart = check_float(restart, "restart", low=0.0, high=1.0)
        self.generator = check_generator(generator) or torch.Generator().manual_seed(0)
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.device, self.dtype = torch.device("cpu") if device is None else torch.device(device), dtype
        self.x = self._fresh(self.n)

    def _fresh(self, m: int) -> torch.Tensor:
        z = torch.randn(m, self.dim, generator=self.generator, dtype=self.dtype)
        return (self.init_std * z).to(self.device)

    def advance(self, energy_fn: Callable) -> torch.Tensor:
        check_callable(energy_fn, "energy_fn", "x (n, d) to energies (n,)")
        if self.restart > 0:
            fresh = torch.rand(self.n, generator=self.generator) < self.restart
            if fresh.any():
                self.x = self.x.clone()
                self.x[fresh.to(self.device)] = self._fresh(int(fresh.sum()))
        self.x = langevin(lambda z: score(energy_fn, z), self.x, self.step_size, self.steps,
                          generator=self.generator)
        return self.x


# ------------------------------------------------------------------------------ E(x, h), h discrete
class JointEnergy:
    """E(x, h) = ‖x − c_h‖² / (2σ²) + b_h for x ∈ R^d and a discrete h ∈ {0..K−1}.

    With b_h = −log ρ_h + (d/2) log(2πσ²) this is exactly −log p(x, h) of a Gaussian mixture with
    shared variance σ², so Z = 1 (eq. 14.3 summed over h, integrated over x).
    ``fit(X, labels)`` sets c_h, σ², b_h by maximum likelihood from labelled data (computed in
    float64 on the CPU, stored in X's dtype on X's device).
    """

    def __init__(self, centres, sigma2: float, biases):
        self.centres = as_tensor(centres, "centres", ndim=2, dtype=None, min_rows=1)
        K = self.centres.shape[0]
        self.sigma2 = check_float(sigma2, "sigma2", low=0.0, low_open=True)
        self.biases = as_tensor(biases, "biases", shape=(K,), shape_of="centres' rows", dtype=self.centres.dtype,
                                device=self.centres.device)

    @classmethod
    def fit(cls, X, labels, n_classes: int | None = None) -> "JointEnergy":
        X = as_tensor(X, "X", ndim=2, min_rows=2, dtype=None)
        K = None if n_classes is None else check_int(n_classes, "n_classes", low=1)
        labels = check_labels(labels, "labels", n=X.shape[0], n_classes=K, device="cpu")
        K = int(labels.max()) + 1 if K is None else K
        dtype, device = X.dtype, X.device
        X = X.detach().cpu()
        with cpu_float64():                          # maximum likelihood, exactly, on the CPU
            X = X.double()
            counts = torch.bincount(labels, minlength=K).double()
            if (counts == 0).any():
                raise ValueError("every class 0..K-1 needs at least one labelled point")
            centres = torch.zeros(K, X.shape[1], dtype=X.dtype).index_add_(0, labels, X)
            centres = centres / counts[:, None]
            sigma2 = float(((X - centres[labels]) ** 2).sum() / X.numel())
            d = X.shape[1]
            biases = -torch.log(counts / counts.sum()) + 0.5 * d * (LOG_2PI + math.log(sigma2))
            centres, biases = centres.to(dtype), biases.to(dtype)
        return cls(centres.to(device), sigma2, biases.to(device))

    @property
    def n_classes(self) -> int:
        return self.centres.shape[0]

    def energy(self, x, h) -> torch.Tensor:
        """E(x, h) for x (n, d) and one class h (int) → (n,). Differentiable in x."""
        h = check_int(h, "h", low=0, high=self.n_classes - 1)
        check_batch(x, "x", self.centres.shape[1])
        c = self.centres[h].to(x.dtype)
        return ((x - c) ** 2).sum(1) / (2 * self.sigma2) + self.biases[h].to(x.dtype)

    def energies(self, x) -> torch.Tensor:
        """E(x, h) for every h: x (n, d) → (n, K)."""
        x = as_tensor(x, "x", shape=(None, self.centres.shape[1]), dtype=self.centres.dtype)
        return ((x[:, None] - self.centres[None]) ** 2).sum(-1) / (2 * self.sigma2) + self.biases

    def caption(self, x) -> torch.Tensor:
        """h* = argmin_h E(x, h), by enumerating the K values of h (no gradient in h exists)."""
        return self.energies(x).argmin(1)

    def generate(self, h: int, x0, lr: float = 0.1, steps: int = 50) -> torch.Tensor:
        """x* = argmin_x E(x, h) by gradient descent from x0 (n, d): trajectory (steps + 1, n, d)."""
        lr = check_float(lr, "lr", low=0.0, low_open=True)
        steps = check_int(steps, "steps", low=0)
        x = as_tensor(x0, "x0", shape=(None, self.centres.shape[1]), dtype=self.centres.dtype)
        path = [x]
        for _ in range(steps):
            x = x + lr * self.sigma2 * score(lambda z: self.energy(z, h), x)   # x − lr·σ²·∇_x E
            path.append(x)
        return torch.stack(path)
