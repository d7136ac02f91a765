"""scores: the score −∇E by autograd against analytic scores and finite differences, Langevin's
update and stationary law, denoising score matching's optimum, bad input; ebm re-exports them."""
import math

import pytest
import torch

from companion_lib import ebm, scores

from test_ebm import F64, MU, VAR, W, energy  # noqa: E402  (one mixture)


def test_score_autograd_matches_analytic_and_ignores_constants():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=g, dtype=F64) * 2
    s = scores.score(energy, x)
    assert torch.allclose(s, ebm.gmm_score(x, W, MU, VAR), atol=1e-10)
    assert torch.equal(s, scores.score(lambda z: energy(z) - 123.0, x))
    # finite differences of E as an independent oracle
    h = 1e-6
    fd = torch.stack([(energy(x + h * e) - energy(x - h * e)) / (2 * h) for e in torch.eye(2, dtype=F64)], 1)
    assert torch.allclose(-fd, s, atol=1e-6)


def test_langevin_step_formula_and_langevin_reproducible():
    x, s, xi = torch.ones(3, 2), torch.full((3, 2), 2.0), torch.full((3, 2), -1.0)
    out = scores.langevin_step(x, s, 0.25, xi)
    assert torch.allclose(out, torch.full((3, 2), 1 + 0.25 - 0.5))
    sc = lambda z: ebm.gmm_score(z, W, MU, VAR)  # noqa: E731
    x0 = torch.zeros(50, 2, dtype=F64)
    a = scores.langevin(sc, x0, 0.05, 20, generator=torch.Generator().manual_seed(1))
    b = scores.langevin(sc, x0, 0.05, 20, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    rec = scores.langevin(sc, x0, 0.05, 20, generator=torch.Generator().manual_seed(1), record=(0, 10))
    assert set(rec) == {0, 10, 20} and torch.equal(rec[20], a) and torch.equal(rec[0], x0)


def test_langevin_stationary_variance_on_a_gaussian():
    # unadjusted Langevin on N(0, v): stationary variance v / (1 − η/(4v)), checked by Monte Carlo
    v, eta = 0.5, 0.2
    x = scores.langevin(lambda z: -z / v, torch.zeros(20000, 2, dtype=F64), eta, 200,
                     generator=torch.Generator().manual_seed(2))
    predicted = v / (1 - eta / (4 * v))
    assert float(x.var()) == pytest.approx(predicted, rel=0.03)          # ~5 standard errors
    assert abs(float(x.var()) - v) > 0.05                               # and the bias is visible


def test_dsm_loss_is_smallest_at_the_blurred_data_score():
    # data N(0, s²I); the DSM optimum is the score of N(0, (s² + σ²) I)
    g = torch.Generator().manual_seed(4)
    s2, sigma = 0.5, 0.3
    x = torch.randn(40000, 2, generator=g, dtype=F64) * math.sqrt(s2)

    def loss(v):
        return float(scores.dsm_loss(lambda z: (z ** 2).sum(1) / (2 * v), x, sigma,
                                  generator=torch.Generator().manual_seed(5)).detach())

    best = s2 + sigma ** 2
    assert loss(best) < loss(0.8 * best) and loss(best) < loss(1.25 * best) and loss(best) < loss(s2)


def test_score_of_a_quadratic_energy_is_minus_precision_times_x():
    A = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=F64)
    x = torch.randn(7, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert torch.allclose(scores.score(lambda z: ebm.quadratic_energy(z, A), x), -x @ A, atol=1e-12)
    # create_graph keeps a graph to the energy's parameters (what score matching needs)
    a = torch.tensor(3.0, dtype=F64, requires_grad=True)
    s = scores.score(lambda z: a * (z ** 2).sum(1) / 2, x, create_graph=True)
    (g,) = torch.autograd.grad(s.sum(), a)
    assert float(g) == pytest.approx(-float(x.sum()))


def test_dsm_loss_value_against_its_formula():
    # E = |x|²/(2v): score −x̃/v, loss = mean |σ(−(x + σε)/v) + ε|² / 2, with the same ε
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    v, sigma = 0.7, 0.2
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(9), dtype=F64)
    expected = 0.5 * ((sigma * (-(x + sigma * eps) / v) + eps) ** 2).sum(1).mean()
    got = scores.dsm_loss(lambda z: (z ** 2).sum(1) / (2 * v), x, sigma, generator=torch.Generator().manual_seed(9))
    assert float(got.detach()) == pytest.approx(float(expected), rel=1e-12)


def test_langevin_record_and_zero_steps():
    x0 = torch.zeros(4, 2, dtype=F64)
    assert torch.equal(scores.langevin(lambda z: -z, x0, 0.1, 0), x0)
    rec = scores.langevin(lambda z: -z, x0, 0.1, 3, generator=torch.Generator().manual_seed(0), record=[1, 99])
    assert set(rec) == {1, 3}                                   # 99 > n_steps: skipped
    # step 1 by hand: x1 = x0 + (η/2)(−x0) + √η ξ with the generator's first draw
    xi = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert torch.allclose(rec[1], math.sqrt(0.1) * xi)


def test_ebm_re_exports_the_same_functions():
    # chapters/14_3 calls ebm.score, ebm.langevin, ebm.langevin_step, ebm.dsm_loss
    for name in ("score", "langevin", "langevin_step", "dsm_loss"):
        assert getattr(ebm, name) is getattr(scores, name)


@pytest.mark.parametrize("call, err, match", [
    (lambda: scores.score(lambda z: z, torch.zeros(3, 2)), ValueError, r"\(n, d\) to \(n,\)"),
    (lambda: scores.score(lambda z: torch.zeros(3), torch.zeros(3, 2)), ValueError, "no gradient"),
    (lambda: scores.score("energy", torch.zeros(3, 2)), TypeError, "energy_fn must be a function"),
    (lambda: scores.score(energy, torch.zeros(0, 2)), ValueError, "at least 1 rows"),
    (lambda: scores.score(energy, torch.zeros(2)), ValueError, "2-D"),
    (lambda: scores.langevin_step(torch.zeros(3, 2), torch.zeros(2, 2), 0.1, torch.zeros(3, 2)),
     ValueError, r"score must have shape \(3, 2\)"),
    (lambda: scores.langevin_step(torch.zeros(3, 2), torch.zeros(3, 2), 0.0, torch.zeros(3, 2)),
     ValueError, "step_size"),
    (lambda: scores.langevin_step(torch.zeros(3, 2), torch.zeros(3, 2), 0.1, torch.full((3, 2), float("nan"))),
     ValueError, "noise must be finite"),
    (lambda: scores.langevin(lambda z: z, torch.zeros(3, 2), -1.0, 5), ValueError, "step_size"),
    (lambda: scores.langevin(lambda z: z[:, :1], torch.zeros(3, 2), 0.1, 5), ValueError, "same shape"),
    (lambda: scores.langevin(lambda z: z, torch.zeros(3, 2), 0.1, 5, record=(-1,)), ValueError, ">= 0"),
    (lambda: scores.langevin(lambda z: z, torch.zeros(3, 2), 0.1, 2.5), ValueError, "integer"),
    (lambda: scores.dsm_loss(energy, torch.zeros(3, 2, dtype=F64), 0.0), ValueError, "sigma"),
])
def test_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call()
