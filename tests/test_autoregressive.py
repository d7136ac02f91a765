"""companion_lib.autoregressive: MADE's masks, the autoregressive property, exact normalisation, the
companion's bits/dim convention, the sampler's distribution, and bad input."""
import math

import pytest
import torch

from companion_lib import autoregressive as ar
from companion_lib import data, metrics, recipes, settings


def test_made_mask_rules():
    d_in, d_hid = torch.tensor([2, 3, 1]), torch.tensor([1, 2])
    assert torch.equal(ar.made_mask(d_in, d_hid), torch.tensor([[0., 0., 1.], [1., 0., 1.]]))
    assert torch.equal(ar.made_mask(d_hid, d_in, output_layer=True), torch.tensor([[1., 0.], [1., 1.], [0., 0.]]))
    assert ar.made_mask(d_in, d_hid).dtype == torch.float32


def test_degrees_follow_the_ordering():
    order = torch.tensor([3, 0, 2, 1])
    d = ar.made_degrees(4, (5, 6), order)
    assert torch.equal(d[0][order], torch.arange(1, 5))
    assert [len(x) for x in d] == [4, 5, 6]
    assert all(int(x.min()) >= 1 and int(x.max()) <= 3 for x in d[1:])


@pytest.mark.parametrize("seed", [0, 1])
def test_autoregressive_property(seed):
    order = torch.randperm(10, generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)
    model = ar.MADE(10, 5, hidden=(20, 20), ordering=order)
    jac = torch.autograd.functional.jacobian(lambda h: model.net(h).reshape(10, 5).sum(-1), torch.randn(10)).abs()
    rank = torch.empty(10, dtype=torch.long)
    rank[order] = torch.arange(10)
    allowed = rank[None, :] < rank[:, None]
    assert float(jac[~allowed].max()) == 0.0
    assert float((jac[allowed] > 0).float().mean()) > 0.5


def test_probabilities_sum_to_one():
    with settings.cpu_float64():
        torch.manual_seed(0)
        model = ar.MADE(3, 4, hidden=(7, 7), ordering=torch.tensor([1, 2, 0])).double()
        grid = torch.cartesian_prod(*[torch.arange(4.0, dtype=torch.float64)] * 3)
        with torch.no_grad():
            assert abs(float(model.log_prob_levels(grid).exp().sum()) - 1) < 1e-12


def test_density_convention_and_loss():
    torch.manual_seed(0)
    model = ar.MADE(hidden=(64,))
    x = torch.as_tensor(data.load_digits_split().X_fit[:20], dtype=torch.float32)
    lp = model.log_prob_levels(x)
    for seed in (1, 2):                                  # constant on each cell: any dequantisation noise
        y = data.dequantize(x, torch.Generator().manual_seed(seed))
        assert torch.allclose(model.log_prob(y), lp + 64 * math.log(17), atol=1e-4)
    bpd = metrics.bits_per_dim(model.log_prob(data.to_unit(x)), 64)
    assert abs(ar.nll_bits_per_dim(model, x).item() - bpd) < 1e-5


def test_sampler_draws_from_the_model():
    torch.manual_seed(3)
    model = ar.MADE(2, 3, hidden=(4,), ordering=torch.tensor([1, 0]))
    x = ar.sample(model, 30_000, torch.Generator().manual_seed(0))
    assert x.shape == (30_000, 2) and x.dtype == torch.float32
    grid = torch.cartesian_prod(torch.arange(3.0), torch.arange(3.0))
    with torch.no_grad():
        p = model.log_prob_levels(grid).exp()
    counts = torch.stack([((x == g).all(1)).float().sum() for g in grid])
    chi2 = float(((counts - 30_000 * p) ** 2 / (30_000 * p)).sum())
    assert chi2 < 26.1                                   # χ²(8) 0.999 quantile
    again = ar.sample(model, 30_000, torch.Generator().manual_seed(0))
    assert torch.equal(x, again)


def test_bad_input():
    with pytest.raises(TypeError, match="in_degrees"):
        ar.made_mask([1, 2], torch.tensor([1]))
    with pytest.raises(TypeError, match="out_degrees"):
        ar.made_mask(torch.tensor([1, 2]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="in_degrees"):
        ar.made_mask(torch.tensor([[1, 2]]), torch.tensor([1]))
    with pytest.raises(TypeError, match="output_layer"):
        ar.made_mask(torch.tensor([1, 2]), torch.tensor([1]), output_layer=1)
    with pytest.raises(ValueError, match="ordering"):
        ar.made_degrees(4, (5,), torch.tensor([0, 1, 1, 2]))
    with pytest.raises(ValueError, match="hidden"):
        ar.made_degrees(4, 5)
    with pytest.raises(ValueError, match="hidden width"):
        ar.made_degrees(10, (4,))
    with pytest.raises(ValueError, match="mask"):
        ar.MaskedLinear(3, 2, torch.ones(3, 2))
    with pytest.raises(TypeError, match="mask_fn"):
        ar.MADE(4, 3, hidden=(5,), mask_fn="made")
    model = ar.MADE(4, 3, hidden=(5,))
    with pytest.raises(ValueError, match="levels_x"):
        model(torch.tensor([[0.0, 1.0, 2.0, 3.0]]))
    with pytest.raises(ValueError, match="levels_x"):
        model(torch.zeros(2, 5))
    with pytest.raises(TypeError, match="levels_x"):
        model([[0, 1, 2, 0]])
    with pytest.raises(ValueError, match="y"):
        model.log_prob(torch.zeros(2, 3))
    with pytest.raises(TypeError, match="model"):
        ar.sample(torch.nn.Linear(2, 2), 3)
    with pytest.raises(ValueError, match="n"):
        ar.sample(model, 0)
    with pytest.raises(TypeError, match="generator"):
        ar.sample(model, 2, generator=0)
    with pytest.raises(TypeError, match="model"):
        ar.nll_bits_per_dim(torch.nn.Linear(2, 2), torch.zeros(1, 4))


def test_recipe_short_run_uses_the_mask_fn():
    calls = []

    def mask_fn(d_in, d_out, last):
        calls.append(last)
        return ar.made_mask(d_in, d_out, last)

    model, fit = recipes.fit_made_digits(hidden=(64,), steps=20, eval_every=10, mask_fn=mask_fn, progress=False)
    assert calls == [False, True] and fit.steps_run == 20 and math.isfinite(fit.best_val)
    assert not model.training
    model2, _ = recipes.fit_made_digits(hidden=(64,), steps=20, eval_every=10, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))
