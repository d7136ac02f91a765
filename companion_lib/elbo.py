"""§14.4: the evidence lower bound (Lemma 14.4.1) in two models where every term is exact.

For any distribution q(h|x) over the hidden variable,

    log p(x) = E_q[log p(x, h)] + H[q] + KL(q(h|x) ‖ p(h|x))           (eq. 14.4 with the gap, 14.5–14.8)
             = ELBO(q)                 + gap,            gap ≥ 0, = 0 iff q = p(h|x).

Two models make this checkable to float64 precision:

* a discrete h ∈ {1..K} (a Gaussian mixture, §14.1): the caller passes ``log_joint`` (n, K), the
  values log p(x_i, h = k), and ``q`` (n, K), one point on the simplex per row;
* a linear-Gaussian model with continuous h (:class:`LinearGaussian`): p(h) = N(0, I_k),
  p(x|h) = N(Wh + b, σ²I_d), for which p(x), p(h|x) and the ELBO of a Gaussian q(h|x) = N(m, S) are
  closed forms.

And EM (§14.1) as coordinate ascent on the ELBO over a data set: :func:`em_elbo_trace`.

Torch only (no plotting, no grading). Device-agnostic: results live on the input's device.
"""
from __future__ import annotations

import math

import torch

from companion_lib import mixture
from companion_lib._checks import (as_tensor, check_choice, check_float, check_generator, check_int,
                                   check_weights)
from companion_lib.gaussian import LOG_2PI, _check_covariance, entropy_full, kl_full, log_normal_diag
from companion_lib.settings import cpu_float64

__all__ = [
    "check_simplex", "categorical_entropy", "log_evidence", "posterior", "discrete_elbo",
    "kl_categorical", "elbo_gap", "gaussian_entropy", "gaussian_entropy_diag", "gaussian_kl",
    "LinearGaussian", "mixture_log_joint", "mixture_elbo", "em_elbo_trace",
]


# ---------------------------------------------------------------- discrete h
@cpu_float64()
def check_simplex(q, name: str = "q", *, K: int | None = None, atol: float = 1e-6,
                  shape_of: str | None = None) -> torch.Tensor:
    """Validate q (n, K): non-negative rows that sum to 1 (within ``atol``). Returns float64 tensor.
    ``shape_of``: the argument K comes from, named in the message."""
    q = as_tensor(q, name, ndim=2, shape=(None, K) if K is not None else None, min_rows=1, shape_of=shape_of)
    if (q < 0).any():
        raise ValueError(f"{name} must be non-negative (each row a distribution over h), "
                         f"got a minimum of {float(q.min()):.3g}")
    sums = q.sum(1)
    if ((sums - 1).abs() > atol).any():
        worst = float((sums - 1).abs().max())
        raise ValueError(f"each row of {name} (n, K) must sum to 1; largest deviation {worst:.3g}")
    return q


def _log_joint(log_joint, name="log_joint"):
    return as_tensor(log_joint, name, ndim=2, min_rows=1)


@cpu_float64()
def categorical_entropy(q) -> torch.Tensor:
    """H[q] = −Σ_h q(h) log q(h) in nats, with 0 log 0 = 0. q (n, K) → (n,)."""
    q = check_simplex(q)
    return -torch.special.xlogy(q, q).sum(1)


@cpu_float64()
def log_evidence(log_joint) -> torch.Tensor:
    """log p(x_i) = log Σ_h p(x_i, h), by logsumexp. log_joint (n, K) → (n,)."""
    return torch.logsumexp(_log_joint(log_joint), 1)


@cpu_float64()
def posterior(log_joint) -> torch.Tensor:
    """p(h | x_i) = p(x_i, h) / p(x_i) (Bayes' rule). log_joint (n, K) → (n, K), rows sum to 1."""
    return torch.softmax(_log_joint(log_joint), 1)


@cpu_float64()
def discrete_elbo(log_joint, q) -> torch.Tensor:
    """ELBO(q) = E_q[log p(x, h)] + H[q]  (the right side of eq. 14.4). (n, K), (n, K) → (n,)."""
    log_joint = _log_joint(log_joint)
    q = check_simplex(q, K=log_joint.shape[1], shape_of="log_joint").to(log_joint.device)
    if q.shape[0] != log_joint.shape[0]:
        raise ValueError(f"q must have shape ({log_joint.shape[0]}, {log_joint.shape[1]}) like log_joint, "
                         f"got {tuple(q.shape)}")
    return (q * log_joint).sum(1) + categorical_entropy(q)                 # eq. 14.4


@cpu_float64()
def kl_categorical(q, log_p) -> torch.Tensor:
    """KL(q ‖ p) = Σ_h q(h) [log q(h) − log p(h)] (eq. 14.5), 0 log 0 = 0. q, log_p (n, K) → (n,)."""
    q = check_simplex(q)
    log_p = as_tensor(log_p, "log_p", shape=tuple(q.shape), device=q.device, finite=False)
    if torch.isnan(log_p).any() or (log_p == math.inf).any():
        raise ValueError("log_p must be log-probabilities: no NaN or +inf")
    terms = torch.special.xlogy(q, q) - torch.where(q > 0, q * log_p, torch.zeros_like(q))
    return terms.sum(1)                                                    # eq. 14.5


@cpu_float64()
def elbo_gap(log_joint, q) -> torch.Tensor:
    """The gap log p(x) − ELBO(q), computed as KL(q(h|x) ‖ p(h|x)) (eq. 14.5). (n, K), (n, K) → (n,).

    log p(h|x) = log p(x, h) − log p(x): the KL is evaluated directly, not as a difference of two
    nearly equal numbers.
    """
    log_joint = _log_joint(log_joint)
    q = check_simplex(q, K=log_joint.shape[1], shape_of="log_joint").to(log_joint.device)
    if q.shape[0] != log_joint.shape[0]:
        raise ValueError(f"q must have shape ({log_joint.shape[0]}, {log_joint.shape[1]}) like log_joint, "
                         f"got {tuple(q.shape)}")
    log_post = log_joint - torch.logsumexp(log_joint, 1, keepdim=True)    # Bayes: p(x)p(h|x) = p(x,h)
    return kl_categorical(q, log_post)


# ---------------------------------------------------------------- Gaussians
# The Gaussian entropy and KL live in ``gaussian`` (one home); these names stay for the lessons.
#: Deprecated alias of ``gaussian.entropy_full`` (the same object): H[N(μ, Σ)] = ½ log det(2πe Σ), cov (..., d, d) → (...).
gaussian_entropy = entropy_full
#: Deprecated alias of ``gaussian.kl_full`` (the same object): KL(N(m1, S1) ‖ N(m2, S2)), m (..., k), S (..., k, k).
gaussian_kl = kl_full


def gaussian_entropy_diag(log_var) -> torch.Tensor:
    """Entropy of N(μ, diag(exp(log_var))) in nats: ½ Σ_j (1 + log 2π + log σ_j²). (..., d) → (...)."""
    log_var = as_tensor(log_var, "log_var", ndim=(1, 2, 3), dtype=None, nonempty=True)
    return 0.5 * (log_var.shape[-1] * (1 + LOG_2PI) + log_var.sum(-1))


class LinearGaussian:
    """p(h) = N(0, I_k), p(x | h) = N(W h + b, σ² I_d): a latent-variable model with continuous h.

    Everything is closed form: p(x) = N(b, W Wᵀ + σ² I), the posterior p(h | x) = N(μ_post, Σ_post)
    with Σ_post = (I + WᵀW/σ²)⁻¹ and μ_post = Σ_post Wᵀ (x − b)/σ², and the ELBO of a Gaussian
    q(h|x) = N(m, S). W: (d, k); b: (d,); sigma2 > 0. Tensors stay on W's device, float64.
    """

    @cpu_float64()
    def __init__(self, W, b, sigma2: float):
        self.W = as_tensor(W, "W", ndim=2, min_rows=1)
        d, k = self.W.shape
        self.b = as_tensor(b, "b", shape=(d,), device=self.W.device)
        self.sigma2 = check_float(float(sigma2) if isinstance(sigma2, torch.Tensor) else sigma2,
                                  "sigma2", low=0.0, low_open=True)
        self.d, self.k = d, k

    def _x(self, x):
        x = as_tensor(x, "x", ndim=(1, 2), device=self.W.device, nonempty=True)
        x = x[None] if x.ndim == 1 else x
        if x.shape[1] != self.d:
            raise ValueError(f"x must have shape (n, {self.d}), got {tuple(x.shape)}")
        return x

    def _q(self, x, m, S):
        n = x.shape[0]
        m = as_tensor(m, "m", ndim=(1, 2), device=self.W.device)
        m = m.expand(n, -1) if m.ndim == 1 else m
        if m.shape != (n, self.k):
            raise ValueError(f"m must have shape ({n}, {self.k}) or ({self.k},), got {tuple(m.shape)}")
        S = as_tensor(S, "S", ndim=(2, 3), device=self.W.device)
        if S.shape[-2:] != (self.k, self.k) or (S.ndim == 3 and S.shape[0] != n):
            raise ValueError(f"S must have shape ({self.k}, {self.k}) or ({n}, {self.k}, {self.k}), "
                             f"got {tuple(S.shape)}")
        S, _ = _check_covariance(S, "S")
        return m, S

    @cpu_float64()
    def marginal(self):
        """p(x) = N(b, W Wᵀ + σ² I): returns (mean (d,), cov (d, d))."""
        eye = torch.eye(self.d, dtype=self.W.dtype, device=self.W.device)
        return self.b, self.W @ self.W.T + self.sigma2 * eye

    @cpu_float64()
    def log_px(self, x) -> torch.Tensor:
        """log p(x) exactly: x (n, d) → (n,)."""
        x = self._x(x)
        mean, cov = self.marginal()
        L = torch.linalg.cholesky(cov)
        y = torch.linalg.solve_triangular(L, (x - mean).T, upper=False)
        return -0.5 * (self.d * LOG_2PI + (y ** 2).sum(0)) - torch.log(torch.diagonal(L)).sum()

    @cpu_float64()
    def log_joint(self, x, h) -> torch.Tensor:
        """log p(x, h) = log N(h; 0, I) + log N(x; W h + b, σ² I). x (n, d), h (..., n, k) → (..., n)."""
        x = self._x(x)
        h = as_tensor(h, "h", device=self.W.device)
        if h.ndim < 2 or h.shape[-2:] != (x.shape[0], self.k):
            raise ValueError(f"h must have shape (..., {x.shape[0]}, {self.k}), got {tuple(h.shape)}")
        log_prior = log_normal_diag(h, 0.0, 1.0, check=False)                  # log N(h; 0, I)
        log_lik = log_normal_diag(x, h @ self.W.T + self.b, self.sigma2, check=False)  # log N(x; Wh + b, σ²I)
        return log_prior + log_lik

    @cpu_float64()
    def posterior(self, x):
        """p(h | x) = N(μ_post, Σ_post): returns (mean (n, k), cov (k, k)); Σ_post is the same for all x."""
        x = self._x(x)
        eye = torch.eye(self.k, dtype=self.W.dtype, device=self.W.device)
        cov = torch.linalg.inv(eye + self.W.T @ self.W / self.sigma2)
        cov = 0.5 * (cov + cov.T)
        mean = (x - self.b) @ self.W @ cov / self.sigma2                   # Σ_post Wᵀ (x − b)/σ², row-wise
        return mean, cov

    @cpu_float64()
    def elbo(self, x, m, S) -> torch.Tensor:
        """ELBO(q) for q(h|x) = N(m, S), closed form (eq. 14.4): x (n, d), m (n, k) or (k,),
        S (k, k) or (n, k, k) (a diagonal S is a diagonal q) → (n,).

        E_q log p(h)   = −½[k log 2π + |m|² + tr S]
        E_q log p(x|h) = −½[d log 2πσ² + (|x − W m − b|² + tr(W S Wᵀ))/σ²]
        H[q]           = ½ log det(2πe S)
        """
        x = self._x(x)
        m, S = self._q(x, m, S)
        trS = torch.diagonal(S, dim1=-2, dim2=-1).sum(-1)
        e_log_prior = -0.5 * (self.k * LOG_2PI + (m ** 2).sum(1) + trS)
        resid = x - m @ self.W.T - self.b
        trWSW = torch.einsum("dk,...kl,dl->...", self.W, S, self.W)
        e_log_lik = -0.5 * (self.d * (LOG_2PI + math.log(self.sigma2))
                            + ((resid ** 2).sum(1) + trWSW) / self.sigma2)
        return e_log_prior + e_log_lik + entropy_full(S)                     # eq. 14.4

    @cpu_float64()
    def elbo_mc(self, x, m, S, n_samples: int = 1000, generator: torch.Generator | None = None):
        """Monte Carlo ELBO: mean over h_s = m + L ε_s (S = L Lᵀ) of log p(x, h_s) − log q(h_s | x).

        Returns (estimate (n,), standard error (n,)). ``generator`` is a CPU torch.Generator.
        """
        x = self._x(x)
        m, S = self._q(x, m, S)
        n_samples = check_int(n_samples, "n_samples", low=2)
        check_generator(generator)
        L = torch.linalg.cholesky(S)
        eps = torch.randn(n_samples, *m.shape, generator=generator, dtype=m.dtype).to(m.device)
        L = L.expand(m.shape[0], self.k, self.k)
        h = m + torch.einsum("nkl,snl->snk", L, eps)                          # reparameterised h ~ q
        log_q = -0.5 * (self.k * LOG_2PI + (eps ** 2).sum(-1)) - torch.log(
            torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
        terms = self.log_joint(x, h) - log_q                                 # (s, n)
        return terms.mean(0), terms.std(0) / math.sqrt(n_samples)

    @cpu_float64()
    def sample(self, n: int, generator: torch.Generator | None = None):
        """Ancestral sampling: h ~ N(0, I_k), x = W h + b + σ ε. Returns (x (n, d), h (n, k))."""
        n = check_int(n, "n", low=1)
        check_generator(generator)
        h = torch.randn(n, self.k, generator=generator, dtype=self.W.dtype).to(self.W.device)
        eps = torch.randn(n, self.d, generator=generator, dtype=self.W.dtype).to(self.W.device)
        return h @ self.W.T + self.b + math.sqrt(self.sigma2) * eps, h


# ---------------------------------------------------------------- EM as coordinate ascent (§14.1)
def _params(X, weights, means, covariances, covariance_type):
    X = as_tensor(X, "X", ndim=2, min_rows=1)
    check_choice(covariance_type, "covariance_type", mixture.COVARIANCE_TYPES)
    n, d = X.shape
    weights = check_weights(weights, "weights", device=X.device, positive=True)
    K = weights.shape[0]
    means = as_tensor(means, "means", shape=(K, d), device=X.device, shape_of="weights and X")
    cov_shape = {"full": (K, d, d), "tied": (d, d), "diag": (K, d), "spherical": (K,)}[covariance_type]
    covariances = as_tensor(covariances, "covariances", shape=cov_shape, device=X.device,
                            shape_of="weights and X")
    return X, weights, means, covariances


@cpu_float64()
def mixture_log_joint(X, weights, means, covariances, covariance_type: str = "full") -> torch.Tensor:
    """log p_θ(x_i, h = k) = log ρ_k + log N(x_i; μ_k, Σ_k): X (n, d) → (n, K)."""
    X, weights, means, covariances = _params(X, weights, means, covariances, covariance_type)
    return mixture.log_gaussian(X, means, covariances, covariance_type) + torch.log(weights)


@cpu_float64()
def mixture_elbo(X, q, weights, means, covariances, covariance_type: str = "full") -> torch.Tensor:
    """Per-sample ELBO(q, θ)_i = Σ_k q_ik log p_θ(x_i, k) + H[q_i] of a Gaussian mixture: (n,)."""
    return discrete_elbo(mixture_log_joint(X, weights, means, covariances, covariance_type), q)


@cpu_float64()
def em_elbo_trace(X, weights, means, covariances, n_iter: int, covariance_type: str = "full",
                  q0=None) -> dict:
    """EM as coordinate ascent on ELBO(q, θ) = Σ_i E_q[log p_θ(x_i, h)] + H[q_i], recorded per half-step.

    Starts at θ_0 = (weights, means, covariances) and q_0 (default: uniform over the K components).
    Each iteration: E-step q ← p_θ(h | x) (``mixture.e_step``; the ELBO rises to touch the
    log-likelihood), then M-step θ ← argmax_θ ELBO(q, θ) (``mixture.m_step`` with reg_covar = 0, the
    exact maximiser). Returns a dict of float64 CPU tensors of length 2 n_iter + 1, per sample (/n):
    ``log_lik`` (mean log p_θ(x_i)), ``elbo`` (mean ELBO), ``gap`` (mean KL(q ‖ p_θ(h|x))), plus
    ``stage`` (list: 'start', 'E', 'M', ...) and the final ``params`` (weights, means, covariances).
    """
    X, weights, means, covariances = _params(X, weights, means, covariances, covariance_type)
    n_iter = check_int(n_iter, "n_iter", low=1)
    n, K = X.shape[0], weights.shape[0]
    q = torch.full((n, K), 1.0 / K, dtype=X.dtype, device=X.device) if q0 is None else \
        check_simplex(q0, "q0", K=K).to(X.device)
    if q.shape[0] != n:
        raise ValueError(f"q0 must have shape ({n}, {K}), got {tuple(q.shape)}")
    theta = (weights, means, covariances)
    rows, stages = [], []

    def record(stage):
        log_joint = mixture.log_gaussian(X, theta[1], theta[2], covariance_type) + torch.log(theta[0])
        log_px = torch.logsumexp(log_joint, 1)
        elbo = discrete_elbo(log_joint, q)
        rows.append(torch.stack([log_px.mean(), elbo.mean(), elbo_gap(log_joint, q).mean()]))
        stages.append(stage)

    record("start")
    for _ in range(n_iter):
        _, log_resp = mixture.e_step(X, *theta, covariance_type)          # E-step: q = p_θ(h|x)
        q = log_resp.exp()
        record("E")
        theta = mixture.m_step(X, q, covariance_type, reg_covar=0.0)       # M-step: argmax_θ ELBO(q, θ)
        record("M")
    table = torch.stack(rows).cpu()
    return {"stage": stages, "log_lik": table[:, 0], "elbo": table[:, 1], "gap": table[:, 2],
            "params": tuple(t.cpu() for t in theta)}
