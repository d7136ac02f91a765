"""§14.4 problems: the entropy of a Gaussian and the ELBO gap of a discrete latent variable."""
import math

import torch

from companion_lib import elbo
from companion_lib.data import load_pearson_crabs
from companion_lib.grading.compare import float32_aware
from companion_lib.grading.registry import Mistake, Problem, case_seed

_F64 = torch.float64


# ---------------------------------------------------------------- entropy of N(μ, Σ)
def _entropy_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1441))
    A = torch.randn(3, 3, generator=g, dtype=_F64)
    B = torch.randn(4, 2, 2, generator=g, dtype=_F64)
    return [
        (torch.tensor([[0.25]], dtype=_F64),),                                   # 1-D, σ = 0.5
        (A @ A.T + 0.5 * torch.eye(3, dtype=_F64),),                              # full 3×3
        (B @ B.transpose(-1, -2) + 0.1 * torch.eye(2, dtype=_F64),),             # a batch (4, 2, 2)
        (torch.tensor([[2.0, 1.9], [1.9, 2.0]], dtype=_F64),),                   # strongly correlated
    ]


def _wrong_no_e(cov):                     # ½ log det(2π Σ): forgets the +d/2 from E[(x-μ)ᵀΣ⁻¹(x-μ)] = d
    cov = torch.as_tensor(cov)
    return 0.5 * torch.logdet(2 * math.pi * cov)


def _wrong_diagonal_only(cov):            # treats Σ as diagonal: ignores the correlations
    cov = torch.as_tensor(cov)
    var = torch.diagonal(cov, dim1=-2, dim2=-1)
    return 0.5 * (var.shape[-1] * (1 + math.log(2 * math.pi)) + torch.log(var).sum(-1))


def _wrong_no_half(cov):                  # log det Σ without the ½ (σ² taken for σ)
    cov = torch.as_tensor(cov)
    return 0.5 * cov.shape[-1] * (1 + math.log(2 * math.pi)) + torch.logdet(cov)


def _wrong_bits(cov):                     # in bits instead of nats
    return elbo.gaussian_entropy(cov) / math.log(2)


_GAUSSIAN_ENTROPY = Problem(
    id="14.4.gaussian_entropy",
    section="14.4",
    title="Entropy of a Gaussian N(μ, Σ)",
    statement=("Write gaussian_entropy(cov) returning the differential entropy H[N(μ, Σ)] in nats for a "
               "covariance matrix cov of shape (d, d), or for a batch of them (..., d, d) (then return "
               "shape (...)). The entropy does not depend on μ. It is the H[q] term of the ELBO "
               "(eq. 14.4) when q(h|x) is Gaussian."),
    kind="function",
    reference=elbo.gaussian_entropy,
    cases=_entropy_cases,
    hint=("The entropy is minus the expected log-density: take the Gaussian's log-density and average "
          "each term under the same Gaussian.",
          "The log-determinant term is a constant; the quadratic form's expectation is the dimension d. "
          "A log-determinant (or a Cholesky factor's log-diagonal) handles a batch of matrices."),
    mistakes=(
        Mistake(_wrong_no_e, "the +d/2 is missing: the expected quadratic form E[(h−μ)ᵀΣ⁻¹(h−μ)] is d."),
        Mistake(_wrong_diagonal_only, "only the diagonal of Σ is used: the correlations change det Σ."),
        Mistake(_wrong_no_half, "log det Σ without its ½."),
        Mistake(_wrong_bits, "in bits: differential entropy here is in nats (natural log)."),
    ),
    # a float32 answer is held to float32's precision: on the strongly correlated case (det Σ = 0.39)
    # float32 round-off alone reaches ~1e-6, which rtol=1e-7 called wrong
    rtol=1e-7, atol=1e-10, compare=float32_aware(1e-7, 1e-10),
)


# ---------------------------------------------------------------- the ELBO gap, discrete h
def _gap_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1442))
    x = torch.as_tensor(load_pearson_crabs().data[::50], dtype=_F64)        # 20 crabs
    log_joint = elbo.mixture_log_joint(x, [0.43, 0.57], [[0.634], [0.657]],
                                       [[[0.0183 ** 2]], [[0.0126 ** 2]]])
    q = torch.rand(20, 2, generator=g, dtype=_F64)
    q = q / q.sum(1, keepdim=True)
    q[0] = torch.tensor([1.0, 0.0], dtype=_F64)                               # a q with a zero
    q[1] = elbo.posterior(log_joint[1:2])[0]                                  # q = the posterior
    log_joint3 = torch.randn(6, 3, generator=g, dtype=_F64) * 4 - 10
    q3 = torch.distributions.Dirichlet(torch.full((3,), 0.7, dtype=_F64)).sample((6,))
    q3[2] = torch.tensor([0.0, 0.5, 0.5], dtype=_F64)
    # the scale of an image's log-density: log p(x, h) ≈ −2000, so p(x, h) = exp(·) underflows to 0 in
    # float64 and a formula that leaves log space gives 0/0; q ranges from far off to near the posterior
    big = (-2000.0 + 50 * torch.randn(4, 1, generator=g, dtype=_F64)
           + torch.randn(4, 3, generator=g, dtype=_F64))                      # posteriors not degenerate
    q_big = torch.softmax(big, 1) * torch.exp(torch.randn(4, 3, generator=g, dtype=_F64)
                                              * torch.tensor([[1.0], [0.3], [0.1], [1e-3]], dtype=_F64))
    # a component ~800 nats less likely than the best: its posterior probability (e^-800) is below the
    # smallest float64, so p(h|x) = 0 and its log is −inf, yet log p(h|x) ≈ −800 and the KL are finite
    far = torch.tensor([[0.0, -800.0, -1.5], [0.0, -1.0, -790.0]], dtype=_F64)
    far[1, 2] -= 20 * torch.rand((), generator=g, dtype=_F64)
    far -= 5.0 * torch.rand(2, 1, generator=g, dtype=_F64)
    q_far = torch.tensor([[0.5, 0.3, 0.2], [0.6, 0.4, 0.0]], dtype=_F64)
    return [(log_joint, q), (log_joint3, q3), (big, q_big / q_big.sum(1, keepdim=True)), (far, q_far)]


def _gap_ref(log_joint, q):
    """``elbo.elbo_gap`` on log_joint shifted by its row maximum (the KL is unchanged): the reference
    stays exact to float64 whatever the size of log p(x)."""
    log_joint = torch.as_tensor(log_joint)
    return elbo.elbo_gap(log_joint - log_joint.max(1, keepdim=True).values, q)


def _wrong_log_of_softmax(log_joint, q):   # log(softmax): a posterior below the smallest float64 is 0, log 0 = −inf
    log_post = torch.log(torch.softmax(log_joint, 1))
    return (torch.special.xlogy(q, q) - q * log_post).sum(1)


def _wrong_probability_space(log_joint, q):  # p(x, h) = exp(log p(x, h)) underflows: 0/0
    joint = torch.exp(log_joint)
    post = joint / joint.sum(1, keepdim=True)
    return (torch.special.xlogy(q, q) - torch.special.xlogy(q, post)).sum(1)


def _wrong_no_entropy(log_joint, q):      # log p(x) − E_q[log p(x, h)]: forgets H[q]
    return torch.logsumexp(log_joint, 1) - (q * log_joint).sum(1)


def _wrong_reverse_kl(log_joint, q):      # KL(p(h|x) ‖ q) instead of KL(q ‖ p(h|x))
    log_post = log_joint - torch.logsumexp(log_joint, 1, keepdim=True)
    return (log_post.exp() * (log_post - torch.log(q.clamp_min(1e-300)))).sum(1)


def _wrong_joint_not_posterior(log_joint, q):   # KL against p(x, h) instead of p(h|x): = −ELBO
    return (torch.special.xlogy(q, q) - q * log_joint).sum(1)


def _wrong_naive_zero(log_joint, q):      # q log q with q = 0 gives 0·(−inf) = NaN
    log_post = log_joint - torch.logsumexp(log_joint, 1, keepdim=True)
    return (q * (torch.log(q) - log_post)).sum(1)


_ELBO_GAP = Problem(
    id="14.4.elbo_gap",
    section="14.4",
    title="The ELBO gap log p(x) − ELBO(q) for a discrete h",
    statement=("Write elbo_gap(log_joint, q): log_joint (n, K) holds log p(x_i, h = k), q (n, K) holds "
               "q(h = k | x_i) (rows sum to 1, entries may be 0). Return the (n,) vector "
               "log p(x_i) − ELBO_i(q), which by eqs. 14.5–14.8 equals KL(q(h|x_i) ‖ p(h|x_i)). "
               "Use the convention 0 log 0 = 0, and stay in log space: one test has log p(x, h) ≈ −2000 "
               "(exp underflows to 0), another a component whose posterior probability, about e^−800, is "
               "below the smallest float64 while its log and the KL are finite."),
    kind="function",
    reference=_gap_ref,
    reference_names=("companion_lib.elbo.elbo_gap", "companion_lib.elbo.kl_categorical"),
    cases=_gap_cases,
    hint=("The gap is the KL from q to the posterior p(h|x): compute the posterior's log from the joint, "
          "then the KL as an expectation under q.",
          "Normalise log p(x, h) over h in log space (a log-sum-exp over h, as in the E-step of §14.1); "
          "never exponentiate first. For q log q with q = 0, use a function that defines 0 log 0 = 0 "
          "(log q alone is −inf)."),
    mistakes=(
        Mistake(_wrong_no_entropy, "the entropy H[q] is missing: this is log p(x) − E_q[log p(x, h)]."),
        Mistake(_wrong_reverse_kl, "this is KL(p(h|x) ‖ q): the gap is KL(q ‖ p(h|x)), expectations under q."),
        Mistake(_wrong_joint_not_posterior, "the KL is taken against the joint p(x, h), not the posterior "
                "p(h|x): that is minus the ELBO."),
        Mistake(_wrong_naive_zero, "NaN where q has a zero: 0 · log 0 needs the convention 0 log 0 = 0."),
        Mistake(_wrong_log_of_softmax, "right until a posterior probability is below the smallest float64: "
                "softmax rounds it to 0 and its log is −inf, while log p(h|x) ≈ −800 is finite. Normalise "
                "in log space instead of taking the log of probabilities."),
        Mistake(_wrong_probability_space, "NaN when log p(x, h) ≈ −2000: exp underflows to 0 and the "
                "posterior is 0/0. Normalise in log space (a log-sum-exp over h)."),
    ),
    rtol=1e-7, atol=1e-10, compare=float32_aware(1e-7, 1e-10, rtol32=1e-4, atol32=1e-5),
)

#: This section's problems (``companion_lib.grading`` registers them).
SECTION_PROBLEMS = (_GAUSSIAN_ENTROPY, _ELBO_GAP)
