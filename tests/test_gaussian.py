"""gaussian: the one log-density, against torch.distributions, in variances (not σ, not log σ²)."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from companion_lib import gaussian

F64 = torch.float64


def test_log_normal_against_torch_distributions():
    g = torch.Generator().manual_seed(0)
    x, m = torch.randn(6, 3, generator=g, dtype=F64), torch.randn(3, generator=g, dtype=F64)
    v = torch.rand(3, generator=g, dtype=F64) + 0.1
    ref = torch.distributions.Normal(m, v.sqrt()).log_prob(x)
    assert torch.allclose(gaussian.log_normal(x, m, v), ref, atol=1e-12)
    assert torch.allclose(gaussian.log_normal_diag(x, m, v), ref.sum(-1), atol=1e-12)
    # a scalar variance is the isotropic N(μ, σ² I)
    iso = torch.distributions.MultivariateNormal(m, 0.3 * torch.eye(3, dtype=F64)).log_prob(x)
    assert torch.allclose(gaussian.log_normal_diag(x, m, 0.3), iso, atol=1e-12)
    assert torch.allclose(gaussian.log_normal_diag(x, m, torch.full((6, 1), 0.3, dtype=F64)), iso, atol=1e-12)


def test_parameterisation_is_the_variance():
    # N(0; 0, 4): −½ log(2π · 4), not −½ log(2π · 16) (σ² = 4 read as σ) nor log σ² = 4
    assert float(gaussian.log_normal(torch.tensor(0.0, dtype=F64), 0.0, 4.0)) == pytest.approx(
        -0.5 * math.log(2 * math.pi * 4))
    assert gaussian.LOG_2PI == pytest.approx(math.log(2 * math.pi), abs=0)


def test_dtype_device_and_gradients_follow_x():
    x = torch.zeros(2, 3, requires_grad=True)
    out = gaussian.log_normal_diag(x, torch.ones(3), 2.0)
    assert out.dtype == torch.float32 and out.shape == (2,)
    out.sum().backward()
    assert torch.allclose(x.grad, torch.full((2, 3), 0.5))               # −(x − μ)/σ² = 1/2


@pytest.mark.parametrize("call, err, match", [
    (lambda: gaussian.log_normal(torch.zeros(3), 0.0, 0.0), ValueError, "var must be > 0"),
    (lambda: gaussian.log_normal(torch.zeros(3), 0.0, -1.0), ValueError, "variances"),
    (lambda: gaussian.log_normal(torch.zeros(3), torch.zeros(4), 1.0), ValueError, "broadcast"),
    (lambda: gaussian.log_normal(torch.tensor([float("nan")]), 0.0, 1.0), ValueError, "finite"),
    (lambda: gaussian.log_normal(torch.zeros(2, dtype=torch.complex64), 0.0, 1.0), ValueError, "real"),
    (lambda: gaussian.log_normal(np.zeros(3), 0.0, 1.0, check=False), TypeError, "torch.Tensor"),
    (lambda: gaussian.log_normal_diag(torch.tensor(0.0), 0.0, 1.0), ValueError, "last"),
    (lambda: gaussian.log_normal(["a"], 0.0, 1.0), ValueError, "numeric"),
])
def test_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_kl_and_entropy_against_torch_distributions():
    g = torch.Generator().manual_seed(1)
    m1, m2 = torch.randn(2, 4, generator=g, dtype=F64)
    v1, v2 = torch.rand(2, 4, generator=g, dtype=F64) + 0.1
    p, q = torch.distributions.Normal(m1, v1.sqrt()), torch.distributions.Normal(m2, v2.sqrt())
    assert torch.allclose(gaussian.kl(m1, v1, m2, v2), torch.distributions.kl_divergence(p, q), atol=1e-12)
    assert torch.allclose(gaussian.kl(m1, v1, m1, v1), torch.zeros(4, dtype=F64), atol=1e-12)
    assert torch.allclose(gaussian.entropy(v1), p.entropy(), atol=1e-12)
    # full covariances: the same numbers for diagonal ones, and torch's for a correlated pair
    assert torch.allclose(gaussian.kl_full(m1, torch.diag(v1), m2, torch.diag(v2)),
                          gaussian.kl(m1, v1, m2, v2).sum(), atol=1e-12)
    assert torch.allclose(gaussian.entropy_full(torch.diag(v1)), gaussian.entropy(v1).sum(), atol=1e-12)
    S = torch.tensor([[2.0, 0.6], [0.6, 1.0]], dtype=F64)
    P = torch.distributions.MultivariateNormal(m1[:2], S)
    Q = torch.distributions.MultivariateNormal(m2[:2], torch.diag(v2[:2]))
    assert torch.allclose(gaussian.kl_full(m1[:2], S, m2[:2], torch.diag(v2[:2])),
                          torch.distributions.kl_divergence(P, Q), atol=1e-12)
    assert torch.allclose(gaussian.entropy_full(S), P.entropy(), atol=1e-12)


def test_the_old_names_are_the_gaussian_module():
    from companion_lib import divergences, elbo
    assert elbo.gaussian_kl is gaussian.kl_full and elbo.gaussian_entropy is gaussian.entropy_full
    # divergences.kl_gaussians is the summed gaussian.kl; vae.log_normal is log_normal_diag with σ² = sigma²
    m1, v1, m2, v2 = torch.tensor([0.3, -1.0], dtype=F64), torch.tensor([0.5, 2.0], dtype=F64), 0.1, 1.5
    assert float(divergences.kl_gaussians(m1, v1, torch.full((2,), m2, dtype=F64), torch.full((2,), v2, dtype=F64))
                 ) == pytest.approx(float(gaussian.kl(m1, v1, m2, v2).sum()), rel=1e-12)
    from companion_lib import vae
    x, mu, sigma = torch.zeros(3, 2, dtype=F64), torch.ones(3, 2, dtype=F64), torch.tensor([0.5, 2.0, 3.0], dtype=F64)
    assert torch.allclose(vae.log_normal(x, mu, sigma), gaussian.log_normal_diag(x, mu, sigma[:, None] ** 2), atol=1e-12)
    assert not torch.allclose(vae.log_normal(x, mu, sigma), gaussian.log_normal_diag(x, mu, sigma[:, None]), atol=1e-3)


@pytest.mark.parametrize("call, err, match", [
    (lambda: gaussian.kl(0.0, 1.0, 0.0, 0.0), ValueError, "var2 must be > 0"),
    (lambda: gaussian.kl(0.0, -1.0, 0.0, 1.0), ValueError, "var1 must be > 0"),
    (lambda: gaussian.kl(torch.zeros(3), 1.0, torch.zeros(2), 1.0), ValueError, "broadcast"),
    (lambda: gaussian.kl(float("nan"), 1.0, 0.0, 1.0), ValueError, "finite"),
    (lambda: gaussian.kl(0.0, 1.0, 0.0, 1.0, check=False), TypeError, "torch.Tensor"),
    (lambda: gaussian.entropy(torch.tensor([1.0, 0.0])), ValueError, "var must be > 0"),
    (lambda: gaussian.entropy_full(torch.tensor([[1.0, 2.0], [2.0, 1.0]])), ValueError, "positive definite"),
    (lambda: gaussian.kl_full(torch.zeros(2), torch.eye(2), torch.zeros(3), torch.eye(3)), ValueError, "share k"),
])
def test_bad_kl_and_entropy_input(call, err, match):
    with pytest.raises(err, match=match):
        call()


# ------------------------------------------------------------------------------ the mixture as a value
from companion_lib.gaussian_mixture import MixtureOfGaussians, as_mixture  # noqa: E402

W2, M2, V2 = torch.tensor([0.3, 0.7], dtype=F64), torch.tensor([[-1.0, 0.5], [2.0, 0.0]], dtype=F64), \
    torch.tensor([0.4, 1.5], dtype=F64)


def _torch_mixture(mix):
    comp = torch.distributions.Independent(torch.distributions.Normal(
        mix.means, mix.variances.sqrt()[:, None].expand_as(mix.means)), 1)
    return torch.distributions.MixtureSameFamily(torch.distributions.Categorical(mix.weights), comp)


def test_mixture_log_prob_score_and_moments_against_torch():
    mix = MixtureOfGaussians(W2, M2, V2)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=F64) * 2
    ref = _torch_mixture(mix)
    assert torch.allclose(mix.log_prob(x), ref.log_prob(x), atol=1e-12)
    xg = x.clone().requires_grad_(True)
    grad, = torch.autograd.grad(ref.log_prob(xg).sum(), xg)
    assert torch.allclose(mix.score(x), grad, atol=1e-10)                        # eq. 15.1
    assert torch.allclose(mix.responsibilities(x).sum(1), torch.ones(50, dtype=F64))
    mean, cov = mix.moments()
    assert torch.allclose(mean, ref.mean, atol=1e-12) and torch.allclose(cov.diagonal(), ref.variance, atol=1e-12)
    assert cov[0, 1] != 0                                                         # the means are not aligned


def test_mixture_sample_and_noised_follow_the_forward_process():
    mix = MixtureOfGaussians(W2, M2, V2)
    g = torch.Generator().manual_seed(1)
    x0 = mix.sample(200_000, g)
    assert x0.shape == (200_000, 2) and x0.dtype == F64
    mean, cov = mix.moments()
    assert torch.allclose(x0.mean(0), mean, atol=0.02) and torch.allclose(torch.cov(x0.T), cov, atol=0.05)
    ab = 0.3
    xt = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * torch.randn(x0.shape, generator=g, dtype=F64)   # (15.8)
    noised = mix.noised(ab)
    m_t, c_t = noised.moments()
    assert torch.allclose(m_t, math.sqrt(ab) * mean, atol=1e-12)
    assert torch.allclose(c_t, ab * cov + (1 - ab) * torch.eye(2, dtype=F64), atol=1e-12)
    assert torch.allclose(xt.mean(0), m_t, atol=0.02) and torch.allclose(torch.cov(xt.T), c_t, atol=0.03)
    assert torch.equal(noised.weights, mix.weights) and mix.noised(1.0).variances.equal(mix.variances)


def test_as_mixture_takes_either_and_one_dimensional_means():
    mix = as_mixture([0.5, 0.5], [0.0, 1.0], [1.0, 2.0])
    assert (mix.K, mix.d) == (2, 1) and mix.means.dtype == F64
    assert as_mixture(mix) is mix
    f32 = as_mixture(mix, dtype=torch.float32)
    assert f32.means.dtype == f32.weights.dtype == f32.variances.dtype == torch.float32
    with pytest.raises(TypeError, match="not both"):
        as_mixture(mix, [0.0, 1.0], [1.0, 1.0])
    with pytest.raises(TypeError, match="means and variances are required"):
        as_mixture([0.5, 0.5])
    with pytest.raises(dataclasses.FrozenInstanceError):
        mix.weights = torch.ones(2)


@pytest.mark.parametrize("args, match", [
    (([0.5, 0.6], [0.0, 1.0], [1.0, 1.0]), "weights must be >= 0 and sum to 1"),
    (([1.2, -0.2], [0.0, 1.0], [1.0, 1.0]), "weights must be >= 0"),
    (([0.5, 0.5], [0.0], [1.0, 1.0]), r"means must have shape \(2, d\)"),
    (([0.5, 0.5], [0.0, 1.0], [1.0, 0.0]), "variances must be positive"),
    (([0.5, 0.5], [0.0, 1.0], [1.0]), r"variances must be positive, shape \(2,\)"),
    (([0.5, 0.5], [float("nan"), 1.0], [1.0, 1.0]), "means must be finite"),
    (([], [], []), "weights"),
])
def test_mixture_is_validated_once_with_one_tolerance(args, match):
    with pytest.raises(ValueError, match=match):
        MixtureOfGaussians(*args)
    MixtureOfGaussians([0.5, 0.5 + 5e-7], [0.0, 1.0], [1.0, 1.0])               # within WEIGHT_ATOL = 1e-6


def test_mixture_checks_x():
    mix = MixtureOfGaussians(W2, M2, V2)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        mix.log_prob(torch.zeros(3, 3, dtype=F64))
    with pytest.raises(ValueError, match="alpha_bar"):
        mix.noised(0.0)
