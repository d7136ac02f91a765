"""``mixture.GaussianMixture`` (EM of §14.1) against scikit-learn's ``GaussianMixture``: same iterates.

Rows (``comparisons``):

* one per covariance type on synthetic data: N points in d dimensions drawn from K overlapping unit-variance
  components (centres ~ N(0, 0.5² I), seed 0: EM is still moving after 50 iterations), both sides started
  from the same parameters (``weights_init`` uniform, ``means_init`` K distinct data points,
  ``precisions_init`` the inverse of the data's covariance in the row's parameterisation) and run exactly
  ``n_iter`` iterations (``tol=0``, ``max_iter=n_iter``); ``agree`` compares the two lower-bound
  histories (the mean log-likelihood at each iteration, (14.2)/N);
* the crabs (``crabs=True``), as a student fits them: Pearson's 1000 ratios (d = 1, K = 2) and the
  Leptograpsus crabs (200 × 5 log-measurements, K = 4), full covariances, k-means initialisation from
  ``random_state=0`` (the same draw on both sides), default ``tol``, at most 200 iterations: agreement
  is the same number of iterations and the same history.

What ``ours`` / ``theirs`` time is one complete ``fit`` (for the crabs, k-means included on both sides).
On the CPU ours runs in float64 (the dtype rule of ``mixture``), where the histories agree to round-off
(identical: within ``ROUND_OFF``). With ``device="cuda"`` ours runs on the GPU with X already there (moved
once, outside the timing) while scikit-learn runs on the CPU (threads: the caller's, see ``peers``): the
synthetic rows in float32 (the dtype rule), where agreement is the same number of iterations and the final
mean log-likelihood within ``FLOAT32_RTOL`` (relative) of scikit-learn's float64 value; the crabs rows in
float64 (``dtype="float64"``), whose k-means start and ``tol`` stop must give the same iterations, so
agreement is again the history to round-off.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from companion_lib import data
from companion_lib._checks import check_choice, check_int
from companion_lib.peers._harness import Comparison

#: Largest |Δ lower bound| over the history that counts as the same iterates in float64.
ROUND_OFF = 1e-10
#: Relative agreement of the final mean log-likelihood for float32 EM on a GPU against float64 (float32 EM
#: on the CPU, N = 100 000, d = 16, K = 8, 50 iterations, measured: ≤ 1e-7 for each covariance type).
FLOAT32_RTOL = 1e-5


def _synthetic(n: int, d: int, k: int) -> np.ndarray:
    """(n, d) float64: k unit-variance components with centres ~ N(0, 0.5² I), equal odds, seed 0."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 0.5, (k, d))
    return centres[rng.integers(0, k, n)] + rng.normal(0, 1, (n, d))


def _start(X: np.ndarray, k: int, covariance_type: str) -> dict:
    """The shared starting point, as ``weights_init``, ``means_init``, ``precisions_init`` (float64)."""
    d = X.shape[1]
    rng = np.random.default_rng(1)
    cov = np.atleast_2d(np.cov(X, rowvar=False, bias=True))
    prec = np.linalg.inv(cov)
    precisions = {"full": np.repeat(prec[None], k, 0), "tied": prec,
                  "diag": np.repeat((1 / np.diag(cov))[None], k, 0),
                  "spherical": np.full(k, d / np.trace(cov))}[covariance_type]
    return {"weights_init": np.full(k, 1.0 / k), "means_init": X[rng.choice(len(X), k, replace=False)],
            "precisions_init": precisions}


def _quiet_fit(model, X):
    """``model.fit(X)`` without the ConvergenceWarning that ``tol=0`` asks for."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X)


def _agree(float64: bool):
    """``agree(ours, theirs) -> (identical, text)`` for two fitted estimators."""
    def agree(ours, theirs) -> tuple[bool, str]:
        a = np.asarray(ours.lower_bounds_, dtype=np.float64)
        if hasattr(theirs, "lower_bounds_"):
            b = np.asarray(theirs.lower_bounds_, dtype=np.float64)
            span = f"over {len(a)} iterations"
        else:  # scikit-learn < 1.7 keeps only the last bound: compare that and the iteration count
            if ours.n_iter_ != theirs.n_iter_:
                return False, f"{ours.n_iter_} iterations against scikit-learn's {theirs.n_iter_}"
            a, b = a[-1:], np.asarray([theirs.lower_bound_], dtype=np.float64)
            span = f"at the last of {ours.n_iter_} iterations (scikit-learn < 1.7 keeps no history)"
        if a.shape != b.shape:
            return False, f"{len(a)} iterations against scikit-learn's {len(b)}"
        if float64:
            worst = float(np.abs(a - b).max())
            return worst <= ROUND_OFF, f"max |Δ lower bound| {worst:.1e} {span}"
        rel = abs(a[-1] - b[-1]) / abs(b[-1])
        return bool(rel <= FLOAT32_RTOL), (f"final mean log-likelihood {a[-1]:.6f} (float32) vs {b[-1]:.6f}, "
                                           f"relative difference {rel:.1e} {span}")
    return agree


def _comparison(name: str, size: str, X: np.ndarray, device: str, float64: bool, peer: str, sk_class,
                **params) -> Comparison:
    """One row: ours on ``device`` (in float64 or float32), scikit-learn on the CPU, the same ``params``."""
    from companion_lib import mixture                                      # imports scikit-learn

    dtype = "float64" if float64 else "float32"
    Xd = X if device == "cpu" else torch.as_tensor(X, dtype=getattr(torch, dtype), device=device)  # moved once
    return Comparison(
        name=name, size=size, peer=peer, device=device,
        ours=lambda: _quiet_fit(mixture.GaussianMixture(device=device, dtype=dtype, **params), Xd),
        theirs=lambda: _quiet_fit(sk_class(**params), X),
        agree=_agree(float64))


def comparisons(device: str = "cpu", n: int = 100_000, d: int = 16, k: int = 8, n_iter: int = 50,
                covariance_types=("full", "diag", "tied", "spherical"), crabs: bool = True) -> list[Comparison]:
    """The EM rows (see the module docstring): one per covariance type at N = ``n``, d = ``d``,
    K = ``k``, ``n_iter`` iterations, then the two crabs rows if ``crabs``.

    ``device``: ``"cpu"`` or ``"cuda"`` (ours only; scikit-learn runs on the CPU). Raises
    ``ModuleNotFoundError`` (naming ``sklearn``) when scikit-learn is missing, ``ValueError`` for bad sizes,
    an unknown covariance type or a CUDA device that is not there.
    """
    check_choice(device, "device", ("cpu", "cuda"))
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no CUDA device: use device='cpu'")
    n, d, k, n_iter = (check_int(v, name, low=1) for v, name in ((n, "n"), (d, "d"), (k, "k"), (n_iter, "n_iter")))
    if n < 2 * k:
        raise ValueError(f"n must be at least 2k = {2 * k} (k distinct starting means and a spread), got {n}")
    if isinstance(covariance_types, str):
        raise TypeError("covariance_types must be a sequence of names such as ('full', 'diag'), not a string")
    types = [check_choice(t, "covariance_types", ("full", "tied", "diag", "spherical")) for t in covariance_types]
    if not isinstance(crabs, bool):
        raise TypeError(f"crabs must be True or False, got {crabs!r}")
    import sklearn  # the peer library (a missing one: ModuleNotFoundError naming it, a skipped row in bench)
    from sklearn.mixture import GaussianMixture as sk_class

    peer = f"scikit-learn {sklearn.__version__}"
    X = _synthetic(n, d, k)
    out = [_comparison(f"EM, {ct} covariance", f"N = {n:,}, d = {d}, K = {k}, {n_iter} iterations", X, device,
                       device == "cpu", peer, sk_class, n_components=k, covariance_type=ct, tol=0.0, max_iter=n_iter,
                       **_start(X, k, ct))
           for ct in types]
    if crabs:
        for name, Xc, kc in (("Pearson's crabs", data.load_pearson_crabs().data, 2),
                             ("Leptograpsus crabs", data.load_leptograpsus_crabs(log=True).data, 4)):
            out.append(_comparison(f"EM, {name}", f"N = {len(Xc)}, d = {Xc.shape[1]}, K = {kc}, full, k-means "
                                   "start, default tol", Xc, device, True, peer, sk_class, n_components=kc,
                                   random_state=0, max_iter=200))
    return out
