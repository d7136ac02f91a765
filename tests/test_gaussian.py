"""gaussian: the one log-density, against torch.distributions, in variances (not σ, not log σ²)."""
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
