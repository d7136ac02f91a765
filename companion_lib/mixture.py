"""§14.1: Gaussian mixtures fitted by EM, in PyTorch (any device), with scikit-learn's API.

The latent-variable view of §14.1: a hidden label h ∈ {1..K} with p(h = k) = ρ_k, and
x | h = k ~ N(μ_k, Σ_k), so p(h, x) = ρ_h N(x; μ_h, Σ_h) and p(x) = Σ_h p(h, x).
EM alternates
  E-step  p(h = k | x_i) = ρ_k N(x_i; μ_k, Σ_k) / Σ_j ρ_j N(x_i; μ_j, Σ_j)    (Bayes' rule on p(h, x))
  M-step  the weighted maximum-likelihood estimates (eq. 14.2 with the responsibilities as weights),
and never decreases the log-likelihood (14.2): it is coordinate ascent on the ELBO of Lemma 14.4.1
(§14.4 makes this exact). Everything is computed in log space.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from companion_lib._checks import as_tensor, check_choice, check_float, check_int

COVARIANCE_TYPES = ("full", "diag", "spherical")
LOG_2PI = math.log(2 * math.pi)


# ---------------------------------------------------------------- the equations, as small functions
def gaussian_mle(X):
    """Closed-form maximum-likelihood Gaussian (eq. 14.2 for one component): mean and covariance.

    X: (n, d). Returns ``mean`` (d,) and ``cov`` (d, d) = (1/n) Σ (x_i - mean)(x_i - mean)ᵀ,
    the 1/n (not 1/(n-1)) estimate that maximises the likelihood.
    """
    X = as_tensor(X, "X", ndim=2, min_rows=1, dtype=None)
    mean = X.mean(0)
    diff = X - mean
    return mean, diff.T @ diff / X.shape[0]


def _precision_cholesky(covariances: torch.Tensor, covariance_type: str) -> torch.Tensor:
    """Cholesky factor of each precision: full (K, d, d) with P_k = L_k L_kᵀ; diag/spherical 1/σ."""
    if covariance_type == "full":
        chol, info = torch.linalg.cholesky_ex(covariances)
        if (info > 0).any():
            raise ValueError(
                "a component's covariance is singular (a collapsed component, e.g. too many components "
                "for the data or duplicated points); increase reg_covar, use fewer components, "
                "or rescale X")
        eye = torch.eye(covariances.shape[-1], dtype=covariances.dtype, device=covariances.device)
        return torch.linalg.solve_triangular(chol, eye.expand_as(chol), upper=False).transpose(-1, -2)
    if (covariances <= 0).any():
        raise ValueError("a component's variance is <= 0 (a collapsed component); increase reg_covar, "
                         "use fewer components, or rescale X")
    return covariances.rsqrt()


def log_gaussian(X, means, covariances, covariance_type: str = "full") -> torch.Tensor:
    """log N(x_i; μ_k, Σ_k) for every point and component: X (n, d) → (n, K).

    means (K, d); covariances (K, d, d) for 'full', (K, d) for 'diag', (K,) for 'spherical'.
    """
    prec_chol = _precision_cholesky(covariances, covariance_type)
    return _log_gaussian_prec(X, means, prec_chol, covariance_type)


def _log_gaussian_prec(X, means, prec_chol, covariance_type):
    d = X.shape[1]
    if covariance_type == "full":
        # y_ik = L_kᵀ (x_i - μ_k), so (x-μ)ᵀ Σ⁻¹ (x-μ) = |y|²;  log det Σ_k^{-1/2} = Σ log diag L_k
        y = torch.einsum("nd,kde->nke", X, prec_chol) - torch.einsum("kd,kde->ke", means, prec_chol)
        maha = (y ** 2).sum(-1)
        half_logdet = torch.log(torch.diagonal(prec_chol, dim1=-2, dim2=-1)).sum(-1)
    elif covariance_type == "diag":
        maha = (((X[:, None, :] - means[None]) * prec_chol[None]) ** 2).sum(-1)
        half_logdet = torch.log(prec_chol).sum(-1)
    else:
        maha = ((X[:, None, :] - means[None]) ** 2).sum(-1) * prec_chol[None] ** 2
        half_logdet = d * torch.log(prec_chol)
    return -0.5 * (d * LOG_2PI + maha) + half_logdet


def e_step(X, weights, means, covariances, covariance_type: str = "full"):
    """E-step, Bayes' rule on p(h, x) = ρ_h N(x; μ_h, Σ_h), in log space.

    Returns ``log_px`` (n,) = log p(x_i) (the summands of eq. 14.2) and ``log_resp`` (n, K) =
    log p(h = k | x_i).
    """
    log_joint = log_gaussian(X, means, covariances, covariance_type) + torch.log(weights)  # log p(h, x)
    log_px = torch.logsumexp(log_joint, dim=1)                                            # log p(x)
    return log_px, log_joint - log_px[:, None]                                             # log p(h|x)


def responsibilities(x, weights, means, variances):
    """The E-step for a 1-D mixture: p(h = k | x_i) for x (n,), weights/means/variances (K,) → (n, K)."""
    x = as_tensor(x, "x", ndim=1, min_rows=1)
    weights = as_tensor(weights, "weights", ndim=1)
    K = weights.shape[0]
    means = as_tensor(means, "means", shape=(K,))
    variances = as_tensor(variances, "variances", shape=(K,))
    _, log_resp = e_step(x[:, None], weights, means[:, None], variances, "spherical")
    return log_resp.exp()


def m_step(X, resp, covariance_type: str = "full", reg_covar: float = 0.0):
    """M-step: responsibility-weighted maximum likelihood. X (n, d), resp (n, K) →
    ``weights`` (K,) ρ_k = N_k / n, ``means`` (K, d) μ_k = Σ_i r_ik x_i / N_k, ``covariances``
    Σ_k = Σ_i r_ik (x_i - μ_k)(x_i - μ_k)ᵀ / N_k + reg_covar·I (shape by covariance_type).
    """
    nk = resp.sum(0) + 10 * torch.finfo(resp.dtype).eps                  # N_k
    means = resp.T @ X / nk[:, None]                                      # μ_k
    if covariance_type == "full":
        diff = X[None] - means[:, None]                                   # (K, n, d)
        cov = torch.einsum("nk,knd,kne->kde", resp, diff, diff) / nk[:, None, None]
        cov = cov + reg_covar * torch.eye(X.shape[1], dtype=X.dtype, device=X.device)
    else:
        avg_x2 = resp.T @ (X * X) / nk[:, None]
        cov = avg_x2 - 2 * means * (resp.T @ X) / nk[:, None] + means ** 2 + reg_covar
        if covariance_type == "spherical":
            cov = cov.mean(1)
    return nk / X.shape[0], means, cov


# ---------------------------------------------------------------- the estimator
class GaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by EM in PyTorch, with scikit-learn's estimator API.

    Parameters mirror ``sklearn.mixture.GaussianMixture`` (same defaults, same k-means
    initialisation for the same ``random_state``), plus ``device`` and ``dtype``.
    ``reg_covar`` is added to the covariance diagonals; with ``reg_covar > 0`` the M-step is no
    longer the exact maximiser, so the history may dip by ~1e-7: use ``reg_covar=0`` to see EM's
    monotonicity exactly.

    Fitted attributes: ``weights_`` (K,), ``means_`` (K, d), ``covariances_``, ``n_iter_``,
    ``converged_``, ``lower_bound_`` (mean log-likelihood at the last iteration),
    ``log_likelihood_history_`` (list: mean log-likelihood per sample at the start of each EM
    iteration of the best initialisation, i.e. before its M-step, as scikit-learn counts).
    Results are NumPy arrays; ``score_samples`` etc. accept NumPy or torch input.
    """

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans", weights_init=None, means_init=None,
                 random_state=None, device=None, dtype="float64"):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.random_state = random_state
        self.device = device
        self.dtype = dtype

    # -- helpers
    def _torch_dtype(self):
        check_choice(self.dtype, "dtype", ("float64", "float32"))
        return getattr(torch, self.dtype)

    def _validate_X(self, X, *, reset: bool) -> torch.Tensor:
        if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
            raise TypeError("sparse input is not supported; pass a dense array (n_samples, n_features)")
        if not isinstance(X, torch.Tensor):
            arr = np.asarray(X)
            if np.iscomplexobj(arr):
                raise ValueError("Complex data not supported; X must be real (n_samples, n_features)")
            if arr.dtype == object:
                try:
                    arr = arr.astype(np.float64)
                except (TypeError, ValueError) as err:
                    raise TypeError("X must hold numbers (n_samples, n_features): float() "
                                    "argument must be a string or a real number") from err
            X = arr
        if X.ndim != 2:
            hint = " Reshape your data with X.reshape(-1, 1) if it has a single feature." if X.ndim == 1 else ""
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {tuple(X.shape)}.{hint}")
        dev = torch.device(self.device) if self.device is not None else None
        if reset:
            X = as_tensor(X, "X", ndim=2, dtype=self._torch_dtype(), device=dev)
        else:
            X = as_tensor(X, "X", ndim=2, dtype=self._torch_dtype(), device=self._device)
        n, d = X.shape
        if d < 1:
            raise ValueError(f"X has 0 feature(s) (shape={(n, d)}) while a minimum of 1 is required.")
        if reset:
            if n < 2:
                raise ValueError(f"X needs at least 2 samples to fit, got {n} sample (shape {(n, d)})")
            if n < self.n_components:
                raise ValueError(f"X has n_samples = {n}, fewer than n_components = {self.n_components}; "
                                 "expected n_samples >= n_components")
            self.n_features_in_ = d
        elif d != self.n_features_in_:
            raise ValueError(f"X has {d} features, but GaussianMixture is expecting "
                             f"{self.n_features_in_} features as input")
        return X

    def _check_parameters(self):
        check_int(self.n_components, "n_components", low=1)
        check_choice(self.covariance_type, "covariance_type", COVARIANCE_TYPES)
        check_float(self.tol, "tol", low=0.0)
        check_float(self.reg_covar, "reg_covar", low=0.0)
        check_int(self.max_iter, "max_iter", low=0)
        check_int(self.n_init, "n_init", low=1)
        check_choice(self.init_params, "init_params", ("kmeans", "k-means++", "random", "random_from_data"))

    def _initial_resp(self, Xn: np.ndarray, rs) -> np.ndarray:
        n, K = Xn.shape[0], self.n_components
        resp = np.zeros((n, K))
        if self.init_params == "kmeans":
            labels = KMeans(n_clusters=K, n_init=1, random_state=rs).fit(Xn).labels_
            resp[np.arange(n), labels] = 1
        elif self.init_params == "random":
            resp = rs.uniform(size=(n, K))
            resp /= resp.sum(1, keepdims=True)
        elif self.init_params == "random_from_data":
            resp[rs.choice(n, size=K, replace=False), np.arange(K)] = 1
        else:
            _, idx = kmeans_plusplus(Xn, K, random_state=rs)
            resp[idx, np.arange(K)] = 1
        return resp

    def _initialise(self, X, rs):
        resp = torch.as_tensor(self._initial_resp(X.cpu().numpy().astype(np.float64), rs),
                               dtype=X.dtype, device=X.device)
        weights, means, cov = m_step(X, resp, self.covariance_type, self.reg_covar)
        if self.weights_init is not None:
            weights = as_tensor(self.weights_init, "weights_init", shape=(self.n_components,),
                                dtype=X.dtype, device=X.device)
            if (weights < 0).any() or abs(float(weights.sum()) - 1) > 1e-6:
                raise ValueError("weights_init must be non-negative and sum to 1")
        if self.means_init is not None:
            means = as_tensor(self.means_init, "means_init", shape=(self.n_components, X.shape[1]),
                              dtype=X.dtype, device=X.device)
        return weights, means, cov

    # -- API
    def fit(self, X, y=None):
        """Run EM ``n_init`` times from ``init_params`` and keep the best. X: (n_samples, n_features)."""
        self._check_parameters()
        X = self._validate_X(X, reset=True)
        self._device = X.device
        rs = check_random_state(self.random_state)
        best = None
        for _ in range(self.n_init):
            weights, means, cov = self._initialise(X, rs)
            history, converged, lower_bound = [], False, -math.inf
            for n_iter in range(1, self.max_iter + 1):
                prev = lower_bound
                log_px, log_resp = e_step(X, weights, means, cov, self.covariance_type)   # E-step
                weights, means, cov = m_step(X, log_resp.exp(), self.covariance_type,      # M-step
                                             self.reg_covar)
                lower_bound = log_px.mean().item()                 # (14.2)/n before this M-step
                history.append(lower_bound)
                if abs(lower_bound - prev) < self.tol:
                    converged = True
                    break
            if self.max_iter == 0:
                n_iter = 0
            if best is None or lower_bound > best[0]:
                best = (lower_bound, weights, means, cov, history, converged, n_iter)
        self.lower_bound_, w, m, c, self.log_likelihood_history_, self.converged_, self.n_iter_ = best
        self._weights, self._means, self._cov = w, m, c
        self._prec_chol = _precision_cholesky(c, self.covariance_type)
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                f"EM did not converge in max_iter={self.max_iter} iterations (last change above "
                f"tol={self.tol}). Increase max_iter, loosen tol, or standardise X.",
                ConvergenceWarning, stacklevel=2)
        return self

    def fit_predict(self, X, y=None):
        return self.fit(X).predict(X)

    @property
    def weights_(self):
        check_is_fitted(self, "_weights")
        return self._weights.cpu().numpy()

    @property
    def means_(self):
        check_is_fitted(self, "_means")
        return self._means.cpu().numpy()

    @property
    def covariances_(self):
        check_is_fitted(self, "_cov")
        return self._cov.cpu().numpy()

    def _joint(self, X):
        check_is_fitted(self, "_weights")
        X = self._validate_X(X, reset=False)
        return _log_gaussian_prec(X, self._means, self._prec_chol, self.covariance_type) + torch.log(self._weights)

    def score_samples(self, X) -> np.ndarray:
        """log p(x_i) for each row of X: (n,)."""
        return torch.logsumexp(self._joint(X), 1).cpu().numpy()

    def score(self, X, y=None) -> float:
        """Mean log-likelihood per sample, (14.2) divided by n."""
        return float(self.score_samples(X).mean())

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities p(h = k | x_i): (n, K)."""
        return torch.softmax(self._joint(X), 1).cpu().numpy()

    def predict(self, X) -> np.ndarray:
        """Most probable component for each row: (n,) ints."""
        return self._joint(X).argmax(1).cpu().numpy()

    def _n_parameters(self) -> int:
        K, d = self._means.shape
        cov = {"full": K * d * (d + 1) // 2, "diag": K * d, "spherical": K}[self.covariance_type]
        return int(cov + K * d + K - 1)

    def bic(self, X) -> float:
        """Bayesian information criterion, -2 log L + p log n (lower is better)."""
        n = np.asarray(X.shape[0] if hasattr(X, "shape") else len(X))
        return float(-2 * self.score(X) * n + self._n_parameters() * np.log(n))

    def aic(self, X) -> float:
        n = X.shape[0] if hasattr(X, "shape") else len(X)
        return float(-2 * self.score(X) * n + 2 * self._n_parameters())

    def sample(self, n_samples: int = 1, generator: torch.Generator | None = None):
        """Ancestral sampling from p(h, x): h ~ Categorical(ρ), then x ~ N(μ_h, Σ_h).

        Returns ``(X, h)``: (n_samples, d) array and (n_samples,) component labels (sorted by h,
        as scikit-learn does). Seeded by ``generator`` (else by ``random_state``).
        """
        check_is_fitted(self, "_weights")
        n_samples = check_int(n_samples, "n_samples", low=1)
        if generator is None:
            seed = check_random_state(self.random_state).randint(2**31 - 1)
            generator = torch.Generator().manual_seed(int(seed))
        w = self._weights.cpu()
        h = torch.multinomial(w, n_samples, replacement=True, generator=generator).sort().values
        eps = torch.randn(n_samples, self._means.shape[1], generator=generator, dtype=self._means.dtype)
        eps = eps.to(self._means.device)
        hd = h.to(self._means.device)
        if self.covariance_type == "full":
            chol = torch.linalg.cholesky(self._cov)
            x = self._means[hd] + torch.einsum("nde,ne->nd", chol[hd], eps)
        elif self.covariance_type == "diag":
            x = self._means[hd] + self._cov[hd].sqrt() * eps
        else:
            x = self._means[hd] + self._cov[hd].sqrt()[:, None] * eps
        return x.cpu().numpy(), h.numpy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


def em_path(X, weights, means, covariances, n_iter: int, covariance_type: str = "full",
            reg_covar: float = 0.0):
    """Run ``n_iter`` EM iterations from the given parameters and keep every step.

    X (n, d); weights (K,), means (K, d), covariances as for ``log_gaussian``. Returns a list of
    ``n_iter + 1`` dicts with ``weights``, ``means``, ``covariances`` (tensors) and
    ``log_likelihood`` (mean log p(x_i) of those parameters, eq. 14.2 / n); entry 0 is the start.
    """
    X = as_tensor(X, "X", ndim=2, min_rows=2)
    n_iter = check_int(n_iter, "n_iter", low=0)
    check_choice(covariance_type, "covariance_type", COVARIANCE_TYPES)
    K, d = as_tensor(means, "means", ndim=2).shape
    if d != X.shape[1]:
        raise ValueError(f"means must have shape (K, {X.shape[1]}), got {(K, d)}")
    w = as_tensor(weights, "weights", shape=(K,), device=X.device)
    m = as_tensor(means, "means", shape=(K, d), device=X.device)
    c = as_tensor(covariances, "covariances", device=X.device)
    path = []
    for it in range(n_iter + 1):
        log_px, log_resp = e_step(X, w, m, c, covariance_type)            # E-step
        path.append({"weights": w, "means": m, "covariances": c, "log_likelihood": log_px.mean().item()})
        if it < n_iter:
            w, m, c = m_step(X, log_resp.exp(), covariance_type, reg_covar)  # M-step
    return path


def cdf_1d(x, weights, means, variances) -> np.ndarray:
    """P(X ≤ x) under a 1-D mixture Σ_k ρ_k N(μ_k, σ_k²): x (m,) → (m,). Parameters (K,) or (K, 1[, 1])."""
    from scipy.stats import norm

    x = as_tensor(x, "x", ndim=1, finite=False).cpu().numpy()   # ±inf allowed (open-ended bins)
    if np.isnan(x).any():
        raise ValueError("x must not contain NaN")
    w = as_tensor(weights, "weights", ndim=1).cpu().numpy()
    mu = as_tensor(means, "means").cpu().numpy().reshape(-1)
    var = as_tensor(variances, "variances").cpu().numpy().reshape(-1)
    if not (len(w) == len(mu) == len(var)):
        raise ValueError(f"weights, means, variances must each hold K values (1-D mixture), "
                         f"got {len(w)}, {len(mu)}, {len(var)}")
    return (w[None] * norm.cdf(x[:, None], mu[None], np.sqrt(var)[None])).sum(1)
