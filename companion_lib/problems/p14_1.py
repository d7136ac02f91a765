"""§14.1 problems: the E-step and the closed-form maximum-likelihood Gaussian."""
import numpy as np
import torch

from companion_lib import mixture
from companion_lib.data import load_pearson_crabs
from companion_lib.grading import Problem, case_seed, register


def _e_step_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 141))
    x = torch.as_tensor(load_pearson_crabs().data[::7, 0])
    cases = [(x, torch.tensor([0.41, 0.59], dtype=torch.float64), torch.tensor([0.633, 0.656], dtype=torch.float64),
              torch.tensor([0.0183, 0.0129], dtype=torch.float64) ** 2)]
    w = torch.rand(3, generator=g, dtype=torch.float64)
    cases.append((torch.randn(50, generator=g, dtype=torch.float64) * 3, w / w.sum(),
                  torch.tensor([-2.0, 0.0, 2.5], dtype=torch.float64), torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)))
    return cases


def _wrong_no_weights(x, w, m, v):       # forgets the mixing weights ρ_k
    return mixture.responsibilities(x, torch.ones_like(w) / len(w), m, v)


def _wrong_std_for_var(x, w, m, v):      # passes σ where σ² belongs
    return mixture.responsibilities(x, w, m, v.sqrt())


def _wrong_unnormalised(x, w, m, v):     # the joint p(h, x) instead of the posterior p(h | x)
    return w * torch.exp(-0.5 * (x[:, None] - m) ** 2 / v) / torch.sqrt(2 * torch.pi * v)


register(Problem(
    id="14.1.e_step",
    section="14.1",
    title="E-step responsibilities p(h | x)",
    statement=("Write e_step(x, weights, means, variances) for a 1-D mixture of K Gaussians: x (n,), the "
               "other three (K,). Return the (n, K) matrix of responsibilities p(h = k | x_i). Work in "
               "log space (torch.logsumexp) so that far-away points do not underflow."),
    kind="function",
    reference=mixture.responsibilities,
    cases=_e_step_cases,
    hint=("p(h = k | x) = ρ_k N(x; μ_k, σ_k²) / Σ_j ρ_j N(x; μ_j, σ_j²). Each row sums to 1. "
          "Compute log ρ_k + log N(...) and subtract torch.logsumexp over k."),
    wrong_answers=(_wrong_no_weights, _wrong_std_for_var, _wrong_unnormalised),
    rtol=1e-6, atol=1e-9,
))


def _mle_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 142))
    crabs = torch.as_tensor(load_pearson_crabs().data)
    A = torch.randn(3, 3, generator=g, dtype=torch.float64)
    return [(crabs,), (torch.randn(40, 3, generator=g, dtype=torch.float64) @ A + 1.0,)]


def _wrong_unbiased(X):                   # 1/(n-1): unbiased, but not the maximum-likelihood estimate
    X = torch.as_tensor(X)
    return X.mean(0), torch.cov(X.T).reshape(X.shape[1], X.shape[1])


def _wrong_diagonal(X):                   # keeps only the variances
    mean, cov = mixture.gaussian_mle(X)
    return mean, torch.diag(torch.diagonal(cov))


def _wrong_uncentred(X):                  # second moment instead of covariance
    X = torch.as_tensor(X)
    return X.mean(0), X.T @ X / X.shape[0]


register(Problem(
    id="14.1.gaussian_mle",
    section="14.1",
    title="Maximum-likelihood Gaussian in closed form",
    statement=("Write gaussian_mle(X) for X of shape (n, d): return (mean, cov) with mean (d,) and cov "
               "(d, d), the parameters of N(mean, cov) that maximise the log-likelihood (14.2)."),
    kind="function",
    reference=mixture.gaussian_mle,
    cases=_mle_cases,
    hint="Set the gradient of Σ_i log N(x_i; μ, Σ) to zero: μ is the sample mean; Σ divides by n, not n − 1.",
    wrong_answers=(_wrong_unbiased, _wrong_diagonal, _wrong_uncentred),
    rtol=1e-6, atol=1e-12,
))


