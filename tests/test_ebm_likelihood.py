"""§14.3, maximum likelihood for an energy model (issue 22): the grid NLL is the exact NLL where Z is
known, its gradient is the ML gradient, contrastive divergence's loss has the CD gradient, the
persistent chains sample the energy they are given, and the moons' masses are measured."""
import math

import pytest
import torch

from companion_lib import data, ebm, settings


class _Quadratic(torch.nn.Module):
    """E(x) = ½ a ‖x − m‖²: a Gaussian with variance 1/a, log Z = log(2π/a)."""

    def __init__(self, a=2.0, m=(0.3, -0.2)):
        super().__init__()
        self.log_a = torch.nn.Parameter(torch.tensor(math.log(a), dtype=torch.float64))
        self.m = torch.nn.Parameter(torch.tensor(m, dtype=torch.float64))

    def forward(self, x):
        return 0.5 * self.log_a.exp() * ((x - self.m) ** 2).sum(1)


def _exact_nll(model, x):
    a = model.log_a.exp()
    return model(x).mean() + math.log(2 * math.pi) - torch.log(a)


def test_ml_grid_loss_is_the_exact_nll_and_its_gradient():
    with settings.cpu_float64():
        model = _Quadratic()
        x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        grid = ebm.ml_grid_loss(model, x, lim=6.0, k=120)
        exact = _exact_nll(model, x)
        assert grid.item() == pytest.approx(exact.item(), abs=1e-6)
        g_grid = torch.autograd.grad(grid, list(model.parameters()))
        g_exact = torch.autograd.grad(_exact_nll(model, x), list(model.parameters()))
        for a, b in zip(g_grid, g_exact):
            assert torch.allclose(a, b, atol=1e-6)
        shifted = ebm.ml_grid_loss(model, x, lim=6.0, k=120, generator=torch.Generator().manual_seed(1))
        assert shifted.item() == pytest.approx(exact.item(), abs=1e-4)      # a shifted grid: same Z


def test_cd_loss_value_and_gradient_and_detached_samples():
    with settings.cpu_float64():
        model = _Quadratic()
        x = torch.randn(30, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        y = model.m.detach() + torch.randn(40, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        y = y + 0 * model.m                                                   # carries a graph to θ
        loss = ebm.cd_loss(model, x, y)
        assert loss.item() == pytest.approx((model(x).mean() - model(y).mean()).item())
        (g,) = torch.autograd.grad(loss, [model.m])
        want = -model.log_a.exp() * (x.mean(0) - y.detach().mean(0))          # ∇_m of the two means
        assert torch.allclose(g, want)
        penalty = ebm.energy_penalty(model, x, y)
        assert penalty.item() == pytest.approx(((model(x) ** 2).mean() + (model(y) ** 2).mean()).item())


def test_persistent_chains_sample_the_energy_and_persist():
    model = _Quadratic(a=4.0, m=(0.5, 0.0)).float()
    chains = ebm.PersistentChains(2000, steps=50, step_size=0.01, generator=torch.Generator().manual_seed(0))
    first = chains.advance(model).clone()
    for _ in range(4):
        x = chains.advance(model)
    assert x.shape == (2000, 2) and not x.requires_grad and not torch.equal(x, first)
    assert torch.allclose(x.mean(0), torch.tensor([0.5, 0.0]), atol=0.05)
    assert float(x.var(0).mean()) == pytest.approx(1 / 4.0 / (1 - 0.01 * 4.0 / 4), rel=0.1)
    again = ebm.PersistentChains(2000, steps=50, step_size=0.01, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.advance(model), first)                           # reproducible from the seed


def test_region_masses_and_nearest_moon():
    with settings.cpu_float64():
        W = torch.tensor([0.3, 0.7], dtype=torch.float64)
        MU = torch.tensor([[-1.5, 0.0], [1.5, 0.0]], dtype=torch.float64)
        VAR = torch.tensor([0.1, 0.1], dtype=torch.float64)
        masses = ebm.region_masses(lambda x: ebm.gmm_energy(x, W, MU, VAR), lambda p: (p[:, 0] > 0).long(), 2,
                                   lim=4.0, k=200)
        assert torch.allclose(masses, W, atol=1e-6)
    from sklearn.datasets import make_moons
    _, labels = make_moons(1000, noise=0.05, random_state=0)
    assert torch.equal(data.nearest_moon(data.make_toy_2d("moons", 1000, seed=0)), torch.as_tensor(labels))


@pytest.mark.parametrize("call", [
    lambda: ebm.ml_grid_loss(None, torch.zeros(3, 2)),
    lambda: ebm.ml_grid_loss(lambda x: x.sum(1), torch.zeros(3, 3)),
    lambda: ebm.ml_grid_loss(lambda x: x.sum(1), torch.zeros(3, 2), k=1),
    lambda: ebm.cd_loss(lambda x: x.sum(1), torch.zeros(3, 2), torch.zeros(3, 3)),
    lambda: ebm.cd_loss(lambda x: x, torch.zeros(3, 2), torch.zeros(3, 2)),
    lambda: ebm.PersistentChains(0),
    lambda: ebm.PersistentChains(5, restart=2.0),
    lambda: ebm.region_masses(lambda x: x.sum(1), "no", 2),
    lambda: data.nearest_moon(torch.zeros(3, 3)),
])
def test_bad_input_names_the_argument(call):
    with pytest.raises((ValueError, TypeError)):
        call()
