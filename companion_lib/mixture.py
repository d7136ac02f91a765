"""§14.1: Gaussian mixtures fitted by EM, in PyTorch (any device), with scikit-learn's API.

The latent-variable view of §14.1: a hidden label h ∈ {1..K} with p(h = k) = ρ_k, and
x | h = k ~ N(μ_k, Σ_k), so p(h, x) = ρ_h N(x; μ_h, Σ_h) and p(x) = Σ_h p(h, x).
EM alternates
  E-step  p(h = k | x_i) = ρ_k N(x_i; μ_k, Σ_k) / Σ_j ρ_j N(x_i; μ_j, Σ_j)    (Bayes' rule on p(h, x))
  M-step  the weighted maximum-likelihood estimates (eq. 14.2 with the responsibilities as weights),
and never decreases the log-likelihood (14.2): it is coordinate ascent on the ELBO of Lemma 14.4.1
(§14.4 makes this exact). Everything is computed in log space.

Covariance types (scikit-learn's names): 'full' (one Σ_k per component), 'tied' (one Σ shared by
all), 'diag' (diagonal Σ_k) and 'spherical' (Σ_k = σ_k² I).

The dtype rule: :class:`GaussianMixture` computes in float64 on the CPU by default, where its EM
equals scikit-learn's to round-off (its methods run inside ``settings.cpu_float64()``); on a GPU
or MPS it computes in float32.
"""
from __future__ import annotations

import math
import time
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from companion_lib import settings
from companion_lib._checks import as_component_values, as_tensor, check_choice, check_float, check_int, check_weights
from companion_lib.gaussian import LOG_2PI

__all__ = ["COVARIANCE_TYPES", "INIT_PARAMS", "gaussian_mle", "log_gaussian", "e_step", "responsibilities",
           "m_step", "GaussianMixture", "em_path", "cdf_1d"]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")

# scikit-learn's wording, so that code catching its errors keeps working with this class
_ILL_DEFINED = ("Fitting the mixture model failed because some components have ill-defined empirical "
                "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
                "number of components, increase reg_covar, or scale the input data.")
_NOT_POSITIVE_DEFINITE = ("covariances must be symmetric positive-definite (a singular or collapsed "
                          "component, e.g. zero variance); add a small ridge to the diagonal")


# ---------------------------------------------------------------- input checks shared by this module
def _check_weights_init(weights, K: int) -> torch.Tensor:
    """``weights_init`` (K,): probabilities ρ_k, in scikit-learn's words (code that catches its
    errors keeps working); the sum is checked to 1e-8 for float64 input, 1e-6 otherwise."""
    exact = (isinstance(weights, torch.Tensor) and weights.dtype == torch.float64) or \
        (not isinstance(weights, torch.Tensor) and np.asarray(weights).dtype != np.float32)
    w = as_tensor(weights, "weights_init", dtype=torch.float64, device=torch.device("cpu"))
    if tuple(w.shape) != (K,):
        raise ValueError(f"The parameter 'weights' should have the shape of {(K,)}, but got "
                         f"{tuple(w.shape)} (weights_init: one mixing weight ρ_k per component)")
    if (w < 0).any() or (w > 1).any():
        raise ValueError(f"The parameter 'weights' should be in the range [0, 1], but got min value "
                         f"{float(w.min()):.5f}, max value {float(w.max()):.5f} (weights_init holds the "
                         "probabilities ρ_k = p(h = k): pass non-negative weights that sum to 1)")
    if abs(float(w.sum()) - 1) > (1e-8 if exact else 1e-6):
        raise ValueError(f"The parameter 'weights' should be normalized, but got sum(weights) = "
                         f"{float(w.sum()):.5f} (weights_init holds probabilities ρ_k = p(h = k); it is "
                         "never renormalised for you)")
    return w


def _check_shape(t: torch.Tensor, shape: tuple, name: str, hint: str) -> None:
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"The parameter '{name}' should have the shape of {tuple(shape)}, but got "
                         f"{tuple(t.shape)} ({hint})")


def _cov_shape(covariance_type: str, K: int, d: int) -> tuple:
    return {"full": (K, d, d), "tied": (d, d), "diag": (K, d), "spherical": (K,)}[covariance_type]


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


def _cholesky_upper_inverse(covariances: torch.Tensor, message: str) -> torch.Tensor:
    """For Σ = L Lᵀ (L lower), U = L⁻ᵀ: upper triangular with Σ⁻¹ = U Uᵀ. (.., d, d) → (.., d, d)."""
    chol, info = torch.linalg.cholesky_ex(covariances)
    if (info > 0).any():
        raise ValueError(message)
    eye = torch.eye(covariances.shape[-1], dtype=covariances.dtype, device=covariances.device)
    return torch.linalg.solve_triangular(chol, eye.expand_as(chol), upper=False).transpose(-1, -2)


def _precision_cholesky(covariances: torch.Tensor, covariance_type: str,
                        message: str = _NOT_POSITIVE_DEFINITE) -> torch.Tensor:
    """Cholesky factor of each precision P = Σ⁻¹: full (K, d, d) / tied (d, d) upper U with P = U Uᵀ;
    diag (K, d) / spherical (K,) 1/σ."""
    if covariance_type in ("full", "tied"):
        return _cholesky_upper_inverse(covariances, message)
    if (covariances <= 0).any():
        raise ValueError(message)
    return covariances.rsqrt()


def _precision_cholesky_from_precisions(precisions: torch.Tensor, covariance_type: str) -> torch.Tensor:
    """The same factor from P itself: with J the flip, J P J = L Lᵀ gives P = (J L J)(J L J)ᵀ, J L J upper."""
    if covariance_type in ("full", "tied"):
        flipped = torch.linalg.cholesky(precisions.flip(-1, -2))
        return flipped.flip(-1, -2)
    return precisions.sqrt()


def _precisions(prec_chol: torch.Tensor, covariance_type: str) -> torch.Tensor:
    """P = U Uᵀ (full, tied) or (1/σ)² (diag, spherical)."""
    if covariance_type in ("full", "tied"):
        return prec_chol @ prec_chol.transpose(-1, -2)
    return prec_chol ** 2


def _log_gaussian_prec(X, means, prec_chol, covariance_type):
    """log N(x_i; μ_k, Σ_k) for every point and component from the precision factors: (n, K).

    With Σ_k⁻¹ = U_k U_kᵀ (``_precision_cholesky``),

        log N(x; μ_k, Σ_k) = −½ [d log 2π + ‖U_kᵀ(x − μ_k)‖²] + Σ_j log (U_k)_jj,

    since log det Σ_k^{-1/2} = log det U_k. Rewritten for speed (the same numbers to round-off),
    never as an (n, K, d) tensor:

    * full: one BLAS product per component, y = X U_k − μ_kᵀ U_k (n, d) (an ``addmm``), then ‖y‖²
      (scikit-learn's arrangement);
    * tied, diag, spherical: the square expanded, ‖a − b‖² = ‖a‖² − 2 a·b + ‖b‖², so that one
      product serves all K components (scikit-learn expands diag and spherical so): tied with
      a = Uᵀx, b = Uᵀμ_k (U shared by all components); diag as
      ‖x‖²·p − 2 x·(μp) + ‖μ‖²·p with p_k = 1/σ_k² per coordinate (two products, X² pᵀ and X (μp)ᵀ);
      spherical as ‖x‖² p_k − 2 x·μ_k p_k + ‖μ_k‖² p_k. X and the means are first shifted by the
      means' average c (‖x − μ‖ does not change), so the expansion does not cancel digits when the
      data sit far from the origin.
    """
    d = X.shape[1]
    if covariance_type == "full":
        half_logdet = torch.log(torch.diagonal(prec_chol, dim1=-2, dim2=-1)).sum(-1)
        maha = torch.stack([torch.addmm((mu @ U)[None], X, U, beta=-1).square_().sum(1)   # ‖Uᵀ(x − μ)‖²
                            for mu, U in zip(means, prec_chol)], 1)
        return -0.5 * (d * LOG_2PI + maha) + half_logdet
    c = means.mean(0)
    Xc, mc = X - c, means - c
    if covariance_type == "tied":
        y, m = Xc @ prec_chol, mc @ prec_chol                             # a = Uᵀ(x − c), b = Uᵀ(μ_k − c)
        maha = torch.addmm((m * m).sum(1)[None] + (y * y).sum(1, keepdim=True), y, m.T, alpha=-2)
        half_logdet = torch.log(torch.diagonal(prec_chol)).sum()
    elif covariance_type == "diag":
        p = prec_chol ** 2                                                # (K, d) precisions 1/σ²
        maha = torch.addmm(torch.addmm((mc * mc * p).sum(1)[None], Xc * Xc, p.T), Xc, (mc * p).T, alpha=-2)
        half_logdet = torch.log(prec_chol).sum(-1)
    else:
        p = prec_chol ** 2                                                # (K,) precisions 1/σ²
        maha = torch.addmm((mc * mc).sum(1)[None] + (Xc * Xc).sum(1, keepdim=True), Xc, mc.T, alpha=-2) * p
        half_logdet = d * torch.log(prec_chol)
    return -0.5 * (d * LOG_2PI + maha) + half_logdet


def _check_components(X, means, covariances, covariance_type: str):
    """X (n, d), means (K, d) and covariances shaped by covariance_type (``_cov_shape``), finite, in X's
    floating dtype and device; raises ValueError/TypeError naming the argument."""
    check_choice(covariance_type, "covariance_type", COVARIANCE_TYPES)
    X = as_tensor(X, "X", ndim=2, min_rows=1, dtype=None)
    means = as_tensor(means, "means", ndim=2, min_rows=1, shape=(None, X.shape[1]), shape_of="X",
                      dtype=X.dtype, device=X.device)
    covariances = as_tensor(covariances, "covariances", dtype=X.dtype, device=X.device)
    if tuple(covariances.shape) != _cov_shape(covariance_type, *means.shape):
        raise ValueError(f"covariances must have shape {_cov_shape(covariance_type, *means.shape)} for "
                         f"covariance_type='{covariance_type}', got {tuple(covariances.shape)}")
    return X, means, covariances


def log_gaussian(X, means, covariances, covariance_type: str = "full") -> torch.Tensor:
    """log N(x_i; μ_k, Σ_k) for every point and component: X (n, d) → (n, K).

    means (K, d); covariances (K, d, d) for 'full', (d, d) for 'tied' (shared by all components),
    (K, d) for 'diag', (K,) for 'spherical'.
    """
    X, means, covariances = _check_components(X, means, covariances, covariance_type)
    prec_chol = _precision_cholesky(covariances, covariance_type)
    return _log_gaussian_prec(X, means, prec_chol, covariance_type)


def _bayes(log_joint: torch.Tensor):
    """From log p(h = k, x_i) (n, K): log p(x_i) (n,) and log p(h = k | x_i) (n, K), in log space."""
    log_px = torch.logsumexp(log_joint, dim=1)                                            # log p(x)
    return log_px, log_joint - log_px[:, None]                                             # log p(h|x)


def e_step(X, weights, means, covariances, covariance_type: str = "full"):
    """E-step, Bayes' rule on p(h, x) = ρ_h N(x; μ_h, Σ_h), in log space.

    Returns ``log_px`` (n,) = log p(x_i) (the summands of eq. 14.2) and ``log_resp`` (n, K) =
    log p(h = k | x_i).
    """
    X, means, covariances = _check_components(X, means, covariances, covariance_type)
    weights = check_weights(weights, "weights", K=means.shape[0], dtype=X.dtype, device=X.device)
    log_normal = _log_gaussian_prec(X, means, _precision_cholesky(covariances, covariance_type), covariance_type)
    return _bayes(log_normal + torch.log(weights))  # log p(h, x)


@settings.cpu_float64()
def responsibilities(x, weights, means, variances):
    """The E-step for a 1-D mixture: p(h = k | x_i) for x (n,), weights/means/variances (K,) → (n, K).

    Computed in float64 on the CPU (an exact reference); weights must be probabilities (≥ 0, sum 1).
    """
    x = as_tensor(x, "x", ndim=1, min_rows=1)
    weights = check_weights(weights, "weights", dtype=torch.float64, device=x.device)
    K = weights.shape[0]
    means = as_tensor(means, "means", shape=(K,))
    variances = as_tensor(variances, "variances", shape=(K,))
    _, log_resp = e_step(x[:, None], weights, means[:, None], variances, "spherical")
    return log_resp.exp()


def _scatter(X, resp, means, nk):
    """Σ_k^ML = Σ_i r_ik (x_i − μ_k)(x_i − μ_k)ᵀ / N_k for every component: (K, d, d).

    One BLAS product per component, (r_k ⊙ (X − μ_k))ᵀ (X − μ_k) (scikit-learn's arrangement), never
    an (n, K, d) tensor."""
    def weighted_scatter(diff, r):                                       # diff = X − μ_k, r = r_·k
        return diff.T * r @ diff

    return torch.stack([weighted_scatter(X - mu, r) for mu, r in zip(means, resp.T)]) / nk[:, None, None]


def m_step(X, resp, covariance_type: str = "full", reg_covar: float = 0.0):
    """M-step: responsibility-weighted maximum likelihood. X (n, d), resp (n, K) →
    ``weights`` (K,) ρ_k = N_k / n, ``means`` (K, d) μ_k = Σ_i r_ik x_i / N_k, ``covariances``
    Σ_k = Σ_i r_ik (x_i - μ_k)(x_i - μ_k)ᵀ / N_k + reg_covar·I (shape by covariance_type; 'tied'
    is the pooled Σ = Σ_k N_k Σ_k / n, (d, d)).
    """
    check_choice(covariance_type, "covariance_type", COVARIANCE_TYPES)
    X = as_tensor(X, "X", ndim=2, min_rows=1, dtype=None)
    resp = as_tensor(resp, "resp", shape=(X.shape[0], None), dtype=X.dtype, device=X.device)
    if resp.shape[1] < 1 or (resp < 0).any():
        raise ValueError(f"resp must be (n, K) responsibilities r_ik >= 0 with K >= 1, got shape "
                         f"{tuple(resp.shape)} and min {float(resp.min()) if resp.numel() else 0:.3g}")
    reg_covar = check_float(reg_covar, "reg_covar", low=0.0)
    return _maximise(X, resp, covariance_type, reg_covar)


def _maximise(X, resp, covariance_type: str, reg_covar: float):
    """``m_step`` on checked input (the fitting loop's hot path).

    Rewritten for speed, the same estimates to round-off: full, one BLAS product per component
    (``_scatter``); tied, the pooled Σ_k N_k Σ_k / Σ_k N_k as two products in all; diag and spherical,
    Σ_i r_ik x_i² / N_k − μ_k² per coordinate (one product, as scikit-learn)."""
    nk = resp.sum(0) + 10 * torch.finfo(resp.dtype).eps                  # N_k
    means = resp.T @ X / nk[:, None]                                      # μ_k
    eye = torch.eye(X.shape[1], dtype=X.dtype, device=X.device)
    if covariance_type == "full":
        cov = _scatter(X, resp, means, nk) + reg_covar * eye
    elif covariance_type == "tied":
        # pooled Σ = Σ_k N_k Σ_k / Σ_k N_k, written as Σ_i s_i (x_i − c)(x_i − c)ᵀ − Σ_k N_k (μ_k − c)(μ_k − c)ᵀ
        # over Σ_k N_k, s_i = Σ_k r_ik, c the pooled mean: two products in all instead of one per component
        c = nk @ means / nk.sum()
        Xc, mc = X - c, means - c
        cov = ((Xc.T * resp.sum(1)) @ Xc - (mc.T * nk) @ mc) / nk.sum() + reg_covar * eye
    else:
        cov = resp.T @ (X * X) / nk[:, None] - means ** 2 + reg_covar     # E_r[x²] − μ², per coordinate
        if covariance_type == "spherical":
            cov = cov.mean(1)
    return nk / X.shape[0], means, cov


# ---------------------------------------------------------------- the estimator
class _Fitted:
    """A fitted parameter, kept as a tensor on the estimator's device and read as a NumPy array.

    Setting it (``gm.means_ = ...``) stores a tensor, as one sets scikit-learn's arrays by hand.
    """

    def __init__(self, slot: str):
        self.slot = slot

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        try:
            return obj.__dict__[self.slot].detach().cpu().numpy()
        except KeyError:
            raise AttributeError(f"'{type(obj).__name__}' object has no attribute '{self.name}' "
                                 "(call fit first)") from None

    @settings.cpu_float64()
    def __set__(self, obj, value):
        obj.__dict__[self.slot] = obj._tensor(value, self.name)


class GaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by EM in PyTorch, a drop-in for ``sklearn.mixture.GaussianMixture``.

    Parameters are scikit-learn's (same names, defaults, k-means initialisation for the same
    ``random_state``, the same messages for bad ``weights_init`` / ``means_init`` /
    ``precisions_init``), plus ``device`` (default: X's device, the CPU for NumPy input) and
    ``dtype`` ('float64', 'float32', or None: float64 on the CPU, where the EM equals
    scikit-learn's to round-off, float32 on a GPU or MPS). ``covariance_type``: 'full', 'tied',
    'diag' or 'spherical'. ``warm_start=True`` continues EM from the last fit (one initialisation,
    ``n_init`` ignored). ``verbose`` 1 prints each initialisation and every ``verbose_interval``-th
    iteration, 2 also the change of the log-likelihood and the time. ``reg_covar`` is added to the
    covariance diagonals; with ``reg_covar > 0`` the M-step is no longer the exact maximiser, so
    the history may dip by ~1e-7: use ``reg_covar=0`` to see EM's monotonicity exactly.

    Fitted attributes (NumPy arrays, scikit-learn's shapes): ``weights_`` (K,), ``means_`` (K, d),
    ``covariances_``, ``precisions_`` (Σ⁻¹) and ``precisions_cholesky_`` (upper U with Σ⁻¹ = U Uᵀ),
    each (K, d, d) full, (d, d) tied, (K, d) diag, (K,) spherical; ``n_iter_``, ``converged_``,
    ``lower_bound_`` (mean log-likelihood at the last iteration of the best initialisation),
    ``lower_bounds_`` (list: the mean log-likelihood per sample, (14.2)/n, at the start of each EM
    iteration, before its M-step, as scikit-learn counts; also named ``log_likelihood_history_``).
    ``score_samples`` etc. accept NumPy or torch input.
    """

    weights_ = _Fitted("_weights")
    means_ = _Fitted("_means")
    covariances_ = _Fitted("_cov")
    precisions_cholesky_ = _Fitted("_prec_chol")

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans", weights_init=None, means_init=None,
                 precisions_init=None, random_state=None, warm_start=False, verbose=0,
                 verbose_interval=10, device=None, dtype=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.device = device
        self.dtype = dtype

    # -- where and in what precision the EM runs (the dtype rule)
    def _placement(self, X=None):
        """(device, dtype): ``device`` or X's device (CPU for NumPy); ``dtype`` or the rule's default."""
        check_choice(self.dtype, "dtype", ("float64", "float32", None))
        if self.device is not None:
            try:
                device = torch.device(self.device)
            except (RuntimeError, TypeError) as err:
                raise ValueError(f"device must be a torch device such as 'cpu', 'cuda' or 'mps', "
                                 f"got {self.device!r}") from err
        else:
            device = X.device if isinstance(X, torch.Tensor) else torch.device("cpu")
        dtype = self.dtype or ("float64" if device.type == "cpu" else "float32")
        if dtype == "float64" and device.type == "mps":
            raise ValueError("MPS has no float64: use dtype='float32' on device='mps', or "
                             "device='cpu' for the float64 EM that equals scikit-learn's")
        return device, getattr(torch, dtype)

    def _tensor(self, value, name):
        """A parameter set by hand, on the fitted device/dtype (or the default placement)."""
        device, dtype = getattr(self, "_where", None) or self._placement(value)
        return as_tensor(value, name, dtype=dtype, device=device)

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
        if reset or not hasattr(self, "_where"):      # (or parameters that were set by hand)
            self._where = self._placement(X)
        device, dtype = self._where
        X = as_tensor(X, "X", ndim=2, dtype=dtype, device=device, min_rows=1)
        n, d = X.shape
        if d < 1:
            raise ValueError(f"X has 0 feature(s) (shape={(n, d)}) while a minimum of 1 is required.")
        if reset:
            if n < 2:
                raise ValueError(f"X needs at least 2 samples to fit, got {n} sample (shape {(n, d)})")
            if n < self.n_components:
                raise ValueError(f"Expected n_samples >= n_components but got n_components = "
                                 f"{self.n_components}, n_samples = {n}: X has fewer rows than components")
            self.n_features_in_ = d
        elif d != getattr(self, "n_features_in_", self._means.shape[1]):
            raise ValueError(f"X has {d} features, but GaussianMixture is expecting "
                             f"{self._means.shape[1]} features as input")
        return X

    def _check_parameters(self):
        check_int(self.n_components, "n_components", low=1)
        check_choice(self.covariance_type, "covariance_type", COVARIANCE_TYPES)
        check_float(self.tol, "tol", low=0.0)
        check_float(self.reg_covar, "reg_covar", low=0.0)
        check_int(self.max_iter, "max_iter", low=0)
        check_int(self.n_init, "n_init", low=1)
        check_choice(self.init_params, "init_params", INIT_PARAMS)
        check_choice(self.warm_start, "warm_start", (True, False))
        if not isinstance(self.verbose, (bool, np.bool_)):
            check_int(self.verbose, "verbose", low=0)
        check_int(self.verbose_interval, "verbose_interval", low=1)

    def _initial_values(self, d: int, dtype, device):
        """``weights_init``, ``means_init``, ``precisions_init`` validated (None where not given)."""
        K, ct = self.n_components, self.covariance_type
        w = m = p = None
        if self.weights_init is not None:
            w = _check_weights_init(self.weights_init, K).to(dtype=dtype, device=device)
        if self.means_init is not None:
            m = as_tensor(self.means_init, "means_init", dtype=dtype, device=device)
            _check_shape(m, (K, d), "means", "means_init holds one mean μ_k per component: "
                         "(n_components, n_features)")
        if self.precisions_init is not None:
            p = as_tensor(self.precisions_init, "precisions_init", dtype=dtype, device=device)
            _check_shape(p, _cov_shape(ct, K, d), f"{ct} precision",
                         f"precisions_init holds the inverse covariances Σ_k⁻¹ of covariance_type='{ct}'")
            if ct in ("full", "tied"):
                mats = p.reshape(-1, d, d)
                for k, P in enumerate(mats):
                    if not torch.allclose(P, P.T) or torch.linalg.cholesky_ex(P).info > 0:
                        which = f" (component {k})" if ct == "full" else ""
                        raise ValueError(f"'{ct} precision' should be symmetric, positive-definite"
                                         f"{which}: a precision matrix is the inverse of a covariance")
            elif (p <= 0).any():
                raise ValueError(f"'{ct} precision' should be positive: precisions_init holds "
                                 "inverse variances 1/σ²")
        return w, m, p

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

    def _initialize_parameters(self, X: torch.Tensor, rs) -> None:
        """The starting point: the M-step of responsibilities drawn by ``init_params``, replaced by
        whatever ``weights_init`` / ``means_init`` / ``precisions_init`` give (all three: no draw)."""
        if self.weights_init is None or self.means_init is None or self.precisions_init is None:
            resp = self._initial_resp(X.cpu().numpy().astype(np.float64), rs)
            self._initialize(X, resp)
        else:
            self._initialize(X, None)

    @settings.cpu_float64()
    def _initialize(self, X, resp) -> None:
        """Set the parameters from responsibilities ``resp`` (n, K) (an M-step) and the ``*_init``
        (as given: ``fit`` has checked them)."""
        if not hasattr(self, "_where"):
            self._where = self._placement(X)
        device, dtype = self._where
        X = as_tensor(X, "X", ndim=2, dtype=dtype, device=device)
        given = [None if v is None else as_tensor(v, name, dtype=dtype, device=device) for v, name in
                 ((self.weights_init, "weights_init"), (self.means_init, "means_init"),
                  (self.precisions_init, "precisions_init"))]
        weights = means = cov = None
        if resp is not None:
            resp = as_tensor(resp, "resp", shape=(X.shape[0], None), dtype=dtype, device=device)
            weights, means, cov = _maximise(X, resp, self.covariance_type, self.reg_covar)   # ρ, μ, Σ
        self._weights = weights if given[0] is None else given[0]
        self._means = means if given[1] is None else given[1]
        precisions = given[2]
        if precisions is None:
            self._cov = cov
            self._prec_chol = _precision_cholesky(cov, self.covariance_type, self._ill_defined())
        else:
            self._prec_chol = _precision_cholesky_from_precisions(precisions, self.covariance_type)
            self._cov = (torch.linalg.inv(precisions) if self.covariance_type in ("full", "tied")
                         else 1 / precisions)

    def _ill_defined(self) -> str:
        if self._where[1] == torch.float32:
            return _ILL_DEFINED + " The numerical accuracy can also be improved by dtype='float64' (on the CPU)."
        return _ILL_DEFINED

    def _log_joint(self, X: torch.Tensor) -> torch.Tensor:
        """log p(h = k, x_i) = log ρ_k + log N(x_i; μ_k, Σ_k): (n, K)."""
        return _log_gaussian_prec(X, self._means, self._prec_chol, self.covariance_type) + torch.log(self._weights)

    def _e_step(self, X: torch.Tensor):
        """E-step: (mean log p(x_i), i.e. (14.2)/n, as a float; log p(h = k | x_i) (n, K))."""
        log_px, log_resp = _bayes(self._log_joint(X))
        return log_px.mean().item(), log_resp

    def _m_step(self, X: torch.Tensor, log_resp: torch.Tensor) -> None:
        """M-step: weighted maximum likelihood from the responsibilities exp(log_resp)."""
        weights, self._means, self._cov = _maximise(X, log_resp.exp(), self.covariance_type, self.reg_covar)
        self._weights = weights / weights.sum()
        self._prec_chol = _precision_cholesky(self._cov, self.covariance_type, self._ill_defined())

    def _get_parameters(self):
        return self._weights, self._means, self._cov, self._prec_chol

    @settings.cpu_float64()
    def _set_parameters(self, params) -> None:
        """Set (weights, means, covariances, precisions_cholesky), NumPy arrays or tensors."""
        self.weights_, self.means_, self.covariances_, self.precisions_cholesky_ = params

    @property
    @settings.cpu_float64()
    def precisions_(self) -> np.ndarray:
        check_is_fitted(self, "_prec_chol")
        return _precisions(self._prec_chol, self.covariance_type).cpu().numpy()

    @precisions_.setter
    @settings.cpu_float64()
    def precisions_(self, value) -> None:
        self._prec_chol = _precision_cholesky_from_precisions(self._tensor(value, "precisions_"),
                                                              self.covariance_type)

    @property
    def log_likelihood_history_(self) -> list:
        """The companion's name for ``lower_bounds_``."""
        check_is_fitted(self, "lower_bounds_")
        return self.lower_bounds_

    def __sklearn_is_fitted__(self) -> bool:
        return "_weights" in self.__dict__

    # -- verbose output, in scikit-learn's format
    def _say_init(self, init: int) -> None:
        if self.verbose >= 1:
            print(f"Initialization {init}")
            self._t_init = self._t_iter = time.time()

    def _say_iter(self, n_iter: int, change: float) -> None:
        if n_iter % self.verbose_interval == 0:
            if self.verbose == 1:
                print(f"  Iteration {n_iter}")
            elif self.verbose >= 2:
                now = time.time()
                print(f"  Iteration {n_iter}\t time lapse {now - self._t_iter:.5f}s\t ll change {change:.5f}")
                self._t_iter = now

    def _say_done(self, lower_bound: float, converged: bool) -> None:
        status = "converged" if converged else "did not converge"
        if self.verbose == 1:
            print(f"Initialization {status}.")
        elif self.verbose >= 2:
            print(f"Initialization {status}. time lapse {time.time() - self._t_init:.5f}s\t "
                  f"lower bound {lower_bound:.5f}.")

    # -- API
    @settings.cpu_float64()
    def fit(self, X, y=None):
        """Run EM ``n_init`` times from ``init_params`` and keep the best. X: (n_samples, n_features).

        With ``warm_start=True`` and a previous fit, EM continues from the fitted parameters.
        """
        self._check_parameters()
        warm = self.warm_start and hasattr(self, "lower_bound_") and self.__sklearn_is_fitted__()
        previous = self._get_parameters() if warm else None
        X = self._validate_X(X, reset=True)
        self._initial_values(X.shape[1], X.dtype, X.device)          # bad *_init fail before any work
        if warm:
            if previous[1].shape[1] != X.shape[1]:
                raise ValueError(f"warm_start: X has {X.shape[1]} features but the previous fit had "
                                 f"{previous[1].shape[1]}; refit with warm_start=False")
            self._weights, self._means, self._cov, self._prec_chol = (
                t.to(dtype=X.dtype, device=X.device) for t in previous)
        rs = check_random_state(self.random_state)
        best = None
        for init in range(self.n_init if not warm else 1):
            self._say_init(init)
            if not warm:
                self._initialize_parameters(X, rs)
            lower_bound = self.lower_bound_ if warm else -math.inf
            history, converged, n_iter = [], False, 0
            for n_iter in range(1, self.max_iter + 1):
                prev = lower_bound
                lower_bound, log_resp = self._e_step(X)          # E-step; (14.2)/n before this M-step
                self._m_step(X, log_resp)                         # M-step
                history.append(lower_bound)
                self._say_iter(n_iter, lower_bound - prev)
                if abs(lower_bound - prev) < self.tol:
                    converged = True
                    break
            if self.max_iter == 0:
                best = (-math.inf, self._get_parameters(), [], False, 0)  # the initialisation itself
                continue
            self._say_done(lower_bound, converged)
            if best is None or lower_bound > best[0]:
                best = (lower_bound, self._get_parameters(), history, converged, n_iter)
        self.lower_bound_, params, self.lower_bounds_, self.converged_, self.n_iter_ = best
        self._weights, self._means, self._cov, self._prec_chol = params
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init parameters, or "
                "increase max_iter, tol, or check for degenerate data. (EM stopped at "
                f"max_iter={self.max_iter} with the mean log-likelihood still changing by more than "
                f"tol={self.tol}: raise max_iter, loosen tol, or standardise X.)",
                ConvergenceWarning, stacklevel=3)
        return self

    def fit_predict(self, X, y=None):
        """Fit, then the most probable component of each row of X (as ``fit(X).predict(X)``)."""
        return self.fit(X).predict(X)

    @settings.cpu_float64()
    def _checked_joint(self, X) -> torch.Tensor:
        check_is_fitted(self, "_weights")
        return self._log_joint(self._validate_X(X, reset=False))

    @settings.cpu_float64()
    def score_samples(self, X) -> np.ndarray:
        """log p(x_i) for each row of X: (n,)."""
        return torch.logsumexp(self._checked_joint(X), 1).cpu().numpy()

    def score(self, X, y=None) -> float:
        """Mean log-likelihood per sample, (14.2) divided by n."""
        return float(self.score_samples(X).mean())

    @settings.cpu_float64()
    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities p(h = k | x_i): (n, K)."""
        return _bayes(self._checked_joint(X))[1].exp().cpu().numpy()

    @settings.cpu_float64()
    def predict(self, X) -> np.ndarray:
        """Most probable component for each row: (n,) ints."""
        return self._checked_joint(X).argmax(1).cpu().numpy()

    def _n_parameters(self) -> int:
        """Free parameters: K - 1 weights, K·d means, and the covariances' free entries."""
        check_is_fitted(self, "_means")
        K, d = self._means.shape
        cov = {"full": K * d * (d + 1) // 2, "tied": d * (d + 1) // 2, "diag": K * d,
               "spherical": K}[self.covariance_type]
        return int(cov + K * d + K - 1)

    def bic(self, X) -> float:
        """Bayesian information criterion, -2 log L + p log n (lower is better)."""
        n = X.shape[0] if hasattr(X, "shape") else len(X)
        return float(-2 * self.score(X) * n + self._n_parameters() * np.log(n))

    def aic(self, X) -> float:
        """Akaike information criterion, -2 log L + 2 p (lower is better)."""
        n = X.shape[0] if hasattr(X, "shape") else len(X)
        return float(-2 * self.score(X) * n + 2 * self._n_parameters())

    @settings.cpu_float64()
    def sample(self, n_samples: int = 1, generator: torch.Generator | None = None):
        """Ancestral sampling from p(h, x): h ~ Categorical(ρ), then x ~ N(μ_h, Σ_h).

        Returns ``(X, h)``: (n_samples, d) array and (n_samples,) component labels, sorted by h.
        With a torch ``generator``: drawn by torch on the model's device. Without one: drawn by
        NumPy from ``random_state`` exactly as scikit-learn draws them (the same samples for the
        same ``random_state`` and parameters).
        """
        check_is_fitted(self, "_weights")
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ValueError(f"Invalid value for 'n_samples': {n_samples!r}. The sampling requires at "
                             "least one sample (an integer >= 1).")
        n_samples = int(n_samples)
        if generator is None:
            return self._sample_numpy(n_samples)
        h = torch.multinomial(self._weights.cpu(), n_samples, replacement=True, generator=generator)
        h = h.sort().values
        eps = torch.randn(n_samples, self._means.shape[1], generator=generator, dtype=self._means.dtype)
        eps, hd = eps.to(self._means.device), h.to(self._means.device)
        if self.covariance_type in ("full", "tied"):
            chol = torch.linalg.cholesky(self._cov)
            chol = chol[hd] if self.covariance_type == "full" else chol.expand(n_samples, -1, -1)
            x = self._means[hd] + torch.einsum("nde,ne->nd", chol, eps)
        elif self.covariance_type == "diag":
            x = self._means[hd] + self._cov[hd].sqrt() * eps
        else:
            x = self._means[hd] + self._cov[hd].sqrt()[:, None] * eps
        return x.cpu().numpy(), h.numpy()

    def _sample_numpy(self, n_samples: int):
        """scikit-learn's draw: component counts ~ Multinomial(n, ρ), then each block of points."""
        rng = check_random_state(self.random_state)
        means, cov = self.means_.astype(np.float64), self.covariances_.astype(np.float64)
        counts = rng.multinomial(n_samples, self.weights_.astype(np.float64))
        if self.covariance_type in ("full", "tied"):
            covs = cov if self.covariance_type == "full" else [cov] * len(means)
            blocks = [rng.multivariate_normal(m, c, int(s)) for m, c, s in zip(means, covs, counts)]
        else:
            blocks = [m + rng.standard_normal(size=(int(s), means.shape[1])) * np.sqrt(c)
                      for m, c, s in zip(means, cov, counts)]
        h = np.concatenate([np.full(int(s), k, dtype=np.int64) for k, s in enumerate(counts)])
        return np.vstack(blocks).astype(np.float64), h

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


@settings.cpu_float64()
def em_path(X, weights, means, covariances, n_iter: int, covariance_type: str = "full",
            reg_covar: float = 0.0):
    """Run ``n_iter`` EM iterations from the given parameters and keep every step (float64, CPU).

    X (n, d); weights (K,) probabilities, means (K, d), covariances as for ``log_gaussian``.
    Returns a list of ``n_iter + 1`` dicts with ``weights``, ``means``, ``covariances`` (tensors)
    and ``log_likelihood`` (mean log p(x_i) of those parameters, eq. 14.2 / n); entry 0 is the start.
    """
    X = as_tensor(X, "X", ndim=2, min_rows=2)
    n_iter = check_int(n_iter, "n_iter", low=0)
    reg_covar = check_float(reg_covar, "reg_covar", low=0.0)
    X, m, c = _check_components(X, means, covariances, covariance_type)
    w = check_weights(weights, "weights", K=m.shape[0], dtype=torch.float64, device=X.device)
    path = []
    for it in range(n_iter + 1):
        log_px, log_resp = _bayes(_log_gaussian_prec(X, m, _precision_cholesky(c, covariance_type),
                                                      covariance_type) + torch.log(w))  # E-step
        path.append({"weights": w, "means": m, "covariances": c, "log_likelihood": log_px.mean().item()})
        if it < n_iter:
            w, m, c = _maximise(X, log_resp.exp(), covariance_type, reg_covar)  # M-step
    return path


@settings.cpu_float64()
def cdf_1d(x, weights, means, variances) -> np.ndarray:
    """P(X ≤ x) under a 1-D mixture Σ_k ρ_k N(μ_k, σ_k²): x (m,) → (m,). Parameters (K,) or (K, 1[, 1])."""
    from scipy.stats import norm

    x = as_tensor(x, "x", ndim=1, finite=False, min_rows=1).cpu().numpy()   # ±inf allowed (open-ended bins)
    if np.isnan(x).any():
        raise ValueError("x must not contain NaN")
    w = check_weights(weights, "weights", dtype=torch.float64).cpu().numpy()
    mu, var = as_component_values(means, "means", len(w)), as_component_values(variances, "variances", len(w))
    return (w[None] * norm.cdf(x[:, None], mu[None], np.sqrt(var)[None])).sum(1)
