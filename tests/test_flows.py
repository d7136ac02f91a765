"""§15.2 flows: the coupling layer against autograd (float64), invertibility, identity at
initialisation, no overflow far from the data, (15.2) normalised, the logit transform, bad input."""
import math

import pytest
import torch

from companion_lib import flows, settings, training

F64 = torch.float64


def _perturb(module, scale=0.5, seed=0):
    """Random non-zero weights, so the layer is far from the identity it starts as."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def _assert_inverse_and_log_det(flow, x, inverse_tol, log_det_tol):
    """``flow.inverse(flow(x)[0])`` gives back ``x`` (rows (n, d)), and each row's log-determinant equals
    log|det| of the autograd Jacobian of that row's forward map. Returns ``flow(x)``."""
    z, log_det = flow(x)
    assert (flow.inverse(z) - x).abs().max() < inverse_tol
    for i in range(len(x)):
        J = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0], x[i])
        assert abs(torch.linalg.slogdet(J)[1] - log_det[i]) < log_det_tol
    return z, log_det


@pytest.fixture
def layer():
    torch.manual_seed(0)
    mask = torch.tensor([False, True, False, True, True])
    return _perturb(flows.AffineCoupling(5, mask, hidden=12).double())


@pytest.fixture
def z():
    return torch.randn(64, 5, generator=torch.Generator().manual_seed(1), dtype=F64)


def test_coupling_forward_inverse_and_shapes(layer, z):
    z_next, log_det = layer(z)
    assert z_next.shape == (64, 5) and log_det.shape == (64,)
    assert torch.equal(z_next[:, layer.mask], z[:, layer.mask])          # (15.3): A passes through
    assert not torch.allclose(z_next, z)
    assert (layer.inverse(z_next) - z).abs().max() < 1e-12


def test_coupling_log_det_equals_autograd_and_jacobian_is_triangular(layer, z):
    mask = layer.mask
    order = torch.cat([mask.nonzero().flatten(), (~mask).nonzero().flatten()])
    n_a = int(mask.sum())
    _, log_det = layer(z[:6])
    for i in range(6):
        J = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], z[i])
        Jo = J[order][:, order]
        assert torch.equal(Jo[:n_a, n_a:], torch.zeros_like(Jo[:n_a, n_a:]))    # upper-right block
        assert torch.allclose(Jo[:n_a, :n_a], torch.eye(n_a, dtype=F64))
        r, _ = layer.conditioner(z[i:i + 1, mask])
        assert torch.allclose(torch.diagonal(Jo[n_a:, n_a:]), torch.exp(r[0]), atol=1e-12)
        assert abs(torch.linalg.slogdet(J)[1] - log_det[i]) < 1e-10


def test_new_layer_and_new_flow_are_the_identity(z):
    layer = flows.AffineCoupling(5, torch.tensor([True, False, True, False, False])).double()
    z_next, log_det = layer(z)
    assert torch.equal(z_next, z) and torch.equal(log_det, torch.zeros(64, dtype=F64))
    model = flows.RealNVP(5, n_layers=4, hidden=8).double()
    x_out, ld = model(z)
    assert torch.equal(x_out, z) and torch.equal(ld, torch.zeros(64, dtype=F64))
    # so log ρ is the standard normal's, exactly as torch.distributions computes it
    ref = torch.distributions.Normal(torch.zeros(5, dtype=F64), 1.0).log_prob(z).sum(1)
    assert torch.allclose(model.log_prob(z), ref, atol=1e-12)


def test_realnvp_invertible_and_log_det_matches_autograd():
    torch.manual_seed(1)
    model = _perturb(flows.RealNVP(4, n_layers=6, hidden=16).double(), 0.3, seed=2)
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(3), dtype=F64)
    assert (model.inverse(model(x)[0]) - x).abs().max() < 1e-10
    _assert_inverse_and_log_det(model, x[:4], 1e-10, 1e-9)
    samples = model.sample(10, torch.Generator().manual_seed(4))
    assert samples.shape == (10, 4) and samples.dtype == F64


def test_log_prob_is_a_normalised_density_in_2d():
    """(15.2) with the log-det: ∫ρ = 1 by quadrature, for a random (untrained) 2-D flow."""
    torch.manual_seed(2)
    model = _perturb(flows.RealNVP(2, n_layers=4, hidden=16).double(), 0.15, seed=5)
    c = torch.linspace(-12, 12, 1201, dtype=F64)
    xx, yy = torch.meshgrid(c, c, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    with torch.no_grad():
        mass = model.log_prob(pts).exp().sum() * (c[1] - c[0]) ** 2
    assert abs(mass.item() - 1) < 1e-4
    # without the log-det it is not a density
    with torch.no_grad():
        z, _ = model(pts)
        wrong = flows.standard_normal_log_prob(z).exp().sum() * (c[1] - c[0]) ** 2
    assert abs(wrong.item() - 1) > 0.05


def test_no_overflow_far_from_the_data():
    torch.manual_seed(3)
    model = _perturb(flows.RealNVP(3, n_layers=8, hidden=16), 1.0, seed=6)     # float32, big weights
    x = torch.tensor([[1e4, -1e4, 3e3], [-5e3, 2e2, 1e4], [0.0, 0.0, 0.0]])
    with torch.no_grad():
        z, log_det = model(x)
        lp = model.log_prob(x)
    assert torch.isfinite(z).all() and torch.isfinite(log_det).all() and torch.isfinite(lp).all()
    # the bounded log-scale: each layer's |log h| is at most its learned factor |c|
    bound = sum(layer.scale.abs().sum().item() for layer in model.layers)
    assert log_det.abs().max().item() <= bound + 1e-3


def test_logit_transform_log_det_and_inverse():
    with settings.cpu_float64():
        t = flows.LogitTransform(6, alpha=0.05)
        y = torch.rand(5, 6, generator=torch.Generator().manual_seed(7), dtype=F64)
        u, log_det = _assert_inverse_and_log_det(t, y, 1e-12, 1e-10)
        model = flows.RealNVP(6, n_layers=2, hidden=8, logit_alpha=0.05).double()
        # identity couplings: log ρ(y) = log N(logit) + the logit's log-det
        assert torch.allclose(model.log_prob(y), flows.standard_normal_log_prob(u) + log_det)
        s = model.sample(50, torch.Generator().manual_seed(8))
        assert (s > -0.05 / 0.9).all() and (s < 1 + 0.05 / 0.9).all()


def test_masks():
    m = flows.alternating_masks(2, 4)
    assert [x.tolist() for x in m] == [[True, False], [False, True], [True, False], [False, True]]
    cb = flows.alternating_masks(64, 6, "checkerboard")
    assert int(cb[0].sum()) == 32 and torch.equal(cb[1], ~cb[0]) and cb[0][0] and not cb[0][1] and not cb[0][8]
    assert torch.equal(cb[4], torch.arange(64) < 32)
    with pytest.raises(ValueError, match="square"):
        flows.alternating_masks(10, 2, "checkerboard")


def test_custom_coupling_functions_are_used():
    calls = []

    def fwd(z, mask, conditioner):
        calls.append("f")
        return flows.coupling_forward(z, mask, conditioner)

    model = flows.RealNVP(2, n_layers=2, hidden=4, forward_fn=fwd)
    model(torch.zeros(3, 2))
    assert calls == ["f", "f"]


def test_trains_on_moons_quickly():
    from companion_lib import data
    torch.manual_seed(0)
    X = data.make_toy_2d("moons", 1000, seed=0)
    model = flows.RealNVP(2, n_layers=4, hidden=32)
    start = -model.log_prob(X).mean().item()
    training.train(model, lambda m, b: -m.log_prob(b).mean(), X, steps=150, lr=3e-3, batch_size=256,
                   generator=torch.Generator().manual_seed(0), progress=False)
    assert -model.log_prob(X).mean().item() < start - 0.4


@pytest.mark.parametrize("call, err, match", [
    (lambda: flows.AffineCoupling(3, torch.tensor([1, 0, 1])), TypeError, "boolean"),
    (lambda: flows.AffineCoupling(3, torch.tensor([True, True, True])), ValueError, "some coordinates"),
    (lambda: flows.AffineCoupling(3, torch.tensor([True, False])), ValueError, r"shape \(3,\)"),
    (lambda: flows.AffineCoupling(2, [True, False]), TypeError, "boolean"),
    (lambda: flows.RealNVP(2, n_layers=0), ValueError, "n_layers"),
    (lambda: flows.RealNVP(2, n_layers=2, masks="stripes"), ValueError, "parity"),
    (lambda: flows.RealNVP(2, n_layers=2, masks=[torch.tensor([True, False])]), ValueError, "list of 2"),
    (lambda: flows.RealNVP(2)(torch.zeros(3, 3)), ValueError, r"shape \(batch, 2\)"),
    (lambda: flows.RealNVP(2)(torch.zeros(3)), ValueError, r"shape \(batch, 2\)"),
    (lambda: flows.RealNVP(2)([[0.0, 1.0]]), TypeError, "torch.Tensor"),
    (lambda: flows.RealNVP(2)(torch.zeros(3, 2, dtype=torch.long)), TypeError, "floating"),
    (lambda: flows.RealNVP(2)(torch.zeros(3, 2, dtype=F64)), TypeError, "double"),
    (lambda: flows.RealNVP(2).sample(0), ValueError, "n must be"),
    (lambda: flows.LogitTransform(4, alpha=0.5), ValueError, "alpha"),
    (lambda: flows.LogitTransform(2)(torch.tensor([[0.5, -0.2]])), ValueError, r"\[0, 1\]"),
    (lambda: flows.RealNVP(2, logit_alpha=0.05).log_prob(torch.tensor([[1.5, 0.5]])), ValueError, r"\[0, 1\]"),
    (lambda: flows.AffineCoupling(2, torch.tensor([True, False]), forward_fn=3), TypeError, "forward_fn"),
    (lambda: flows.standard_normal_log_prob([[0.0, 1.0]]), TypeError, "torch.Tensor"),
    (lambda: flows.standard_normal_log_prob(torch.zeros(3)), ValueError, r"shape \(batch, dim\)"),
])
def test_bad_input_raises_clear_errors(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_standard_normal_log_prob():
    z = torch.randn(7, 3, generator=torch.Generator().manual_seed(9), dtype=F64)
    ref = -0.5 * (z**2).sum(1) - 1.5 * math.log(2 * math.pi)
    assert torch.allclose(flows.standard_normal_log_prob(z), ref)
    z32 = z.float()                                    # float32: the same numbers to rounding
    assert torch.allclose(flows.standard_normal_log_prob(z32), ref.float(), rtol=1e-6, atol=0)


def test_float32_work_runs_under_the_no_float64_stand_in():
    """What a notebook does on run.device (float32) never touches float64 (MPS has none)."""
    from companion_lib import data, metrics
    with settings.no_float64():
        torch.manual_seed(0)
        model = flows.RealNVP(64, n_layers=2, hidden=8, masks="checkerboard", logit_alpha=0.05)
        levels = torch.randint(0, 17, (16, 64), generator=torch.Generator().manual_seed(0)).float()
        training.train(model, lambda m, b: data.dequantized_bits_per_dim(m.log_prob(data.dequantize(b)), 64).mean(),
                       levels, steps=3, val_data=data.dequantize(levels), eval_every=2, progress=False,
                       val_fn=lambda m, y: data.dequantized_bits_per_dim(m.log_prob(y), 64).mean().item())
        assert math.isfinite(metrics.heldout_bits_per_dim(model.log_prob))
        x = model.sample(5, torch.Generator().manual_seed(1))
        z, log_det = model(x)
        assert z.dtype == torch.float32 and log_det.dtype == torch.float32
        assert len(model.stages(x)) == 4              # x, after the logit, after each coupling
        flat = flows.RealNVP(2, n_layers=2, hidden=4)
        assert flows.standard_normal_log_prob(flat(torch.randn(3, 2))[0]).dtype == torch.float32


# ---------------------------------------------------------------- GLOW's squeeze and 1×1 convolution
def test_squeeze_is_a_permutation_and_unsqueeze_inverts_it():
    x = torch.arange(64, dtype=F64)[None]                     # pixel k holds the value k
    z = flows.squeeze(x)
    assert z.shape == (1, 4, 4, 4)
    assert sorted(z.flatten().tolist()) == list(range(64))
    assert z[0, 1, 0, 0].item() == 1 and z[0, 2, 0, 0].item() == 8 and z[0, 3, 1, 2].item() == 8 * 3 + 5
    assert torch.equal(flows.unsqueeze(z), x)


def test_conv1x1_log_det_and_block_diagonal_jacobian_against_autograd():
    """On the squeezed digit, the 64 × 64 Jacobian of unsqueeze ∘ conv ∘ squeeze, with coordinates
    ordered by position, is block-diagonal with W in each of the 16 blocks (not diagonal), and its
    slogdet is 16·log|det W| = the layer's log_det."""
    with settings.cpu_float64():
        layer = _perturb(flows.InvertibleConv1x1(4, torch.Generator().manual_seed(3)).double(), 0.3)
        W = layer.weight().detach()
        x = torch.randn(5, 64, generator=torch.Generator().manual_seed(1), dtype=F64)
        y, log_det = layer(flows.squeeze(x))
        assert log_det.shape == (5,)
        assert abs(log_det[0].item() - 16 * torch.linalg.slogdet(W)[1].item()) < 1e-10
        J = torch.autograd.functional.jacobian(lambda v: flows.unsqueeze(layer(flows.squeeze(v[None]))[0])[0], x[0])
        assert abs(torch.linalg.slogdet(J)[1].item() - log_det[0].item()) < 1e-10
        order = flows.squeeze(torch.arange(64, dtype=F64)[None]).permute(0, 2, 3, 1).reshape(-1).long()
        J_pos = J[order][:, order]                                   # position-major, channel within
        blocks = torch.block_diag(*[W] * 16)
        assert torch.allclose(J_pos, blocks, atol=1e-12)
        assert (W - torch.diag(torch.diagonal(W))).abs().max() > 0.1       # a mix, not a scaling
        assert torch.allclose(layer.inverse(y), flows.squeeze(x), atol=1e-12)


def test_conv1x1_starts_at_a_rotation_and_trains_in_float32():
    layer = flows.InvertibleConv1x1(4)
    W = layer.weight().detach().double()
    assert torch.allclose(W @ W.T, torch.eye(4, dtype=F64), atol=1e-5)
    y, log_det = layer(torch.randn(2, 4, 3, 3))
    assert y.dtype == torch.float32 and log_det.abs().max() < 1e-4           # |det| = 1 at the start
    (y.sum() + log_det.sum()).backward()
    assert all(p.grad is not None for p in layer.parameters())


@pytest.mark.parametrize("call, error, words", [
    (lambda: flows.squeeze(torch.zeros(2, 63)), ValueError, "x"),
    (lambda: flows.squeeze(torch.zeros(2, 9), side=3), ValueError, "side"),
    (lambda: flows.squeeze([[0.0] * 64]), TypeError, "x"),
    (lambda: flows.unsqueeze(torch.zeros(2, 3, 4, 4)), ValueError, "z"),
    (lambda: flows.InvertibleConv1x1(0), ValueError, "channels"),
    (lambda: flows.InvertibleConv1x1(4, generator=0), TypeError, "generator"),
    (lambda: flows.InvertibleConv1x1(4)(torch.zeros(2, 3, 4, 4)), ValueError, "x"),
    (lambda: flows.InvertibleConv1x1(4)(torch.zeros(2, 4, 4, 4, dtype=torch.long)), TypeError, "x"),
    (lambda: flows.InvertibleConv1x1(4).inverse(torch.zeros(4, 4, 4)), ValueError, "y"),
])
def test_conv1x1_bad_input(call, error, words):
    with pytest.raises(error, match=words):
        call()


# ---------------------------------------------------------------- the rational-quadratic spline coupling
def _spline_params(shape, k=8, scale=1.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, k, generator=g, dtype=F64), scale * torch.randn(*shape, k, generator=g, dtype=F64),
            scale * torch.randn(*shape, k - 1, generator=g, dtype=F64))


def test_spline_round_trip_monotone_and_identity_outside_the_bound():
    bound = 2.5
    x = torch.cat([torch.linspace(-4, 4, 2001, dtype=F64),                      # a fine grid, and the knots' region
                   torch.randn(500, generator=torch.Generator().manual_seed(1), dtype=F64) * 2])
    w, h, d = _spline_params(x.shape)
    y, log_det = flows.rational_quadratic_spline(x, w, h, d, bound)
    back, log_det_inv = flows.rational_quadratic_spline(y, w, h, d, bound, inverse=True)
    assert (back - x).abs().max() < 1e-9                                      # the inverse undoes the forward map
    assert (log_det + log_det_inv).abs().max() < 1e-9                         # (g⁻¹)'(g(x)) = 1 / g'(x)
    outside = x.abs() > bound
    assert outside.sum() > 100 and torch.equal(y[outside], x[outside]) and torch.equal(log_det[outside], torch.zeros_like(x[outside]))
    inside = ~outside
    assert (y[inside].abs() <= bound).all()                                   # [−B, B] onto itself
    # one shared spline along the grid: strictly increasing, and log g' is autograd's derivative
    grid = torch.linspace(-4, 4, 2001, dtype=F64, requires_grad=True)
    w1, h1, d1 = (t[:1].expand(2001, -1) for t in (w, h, d))
    y1, ld1 = flows.rational_quadratic_spline(grid, w1, h1, d1, bound)
    assert (y1[1:] > y1[:-1]).all()
    (grad,) = torch.autograd.grad(y1.sum(), grid)
    assert torch.allclose(grad.log(), ld1.detach(), atol=1e-9)


def test_spline_with_zero_parameters_is_the_identity():
    x = torch.linspace(-5, 5, 101, dtype=F64)
    zeros = torch.zeros(101, 6, dtype=F64)
    y, log_det = flows.rational_quadratic_spline(x, zeros, zeros, zeros[:, :5])
    assert torch.allclose(y, x, atol=1e-12) and log_det.abs().max() < 1e-12
    layer = flows.SplineCoupling(3, torch.tensor([True, False, True])).double()
    z = torch.randn(16, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    z_next, ld = layer(z)
    assert torch.allclose(z_next, z, atol=1e-12) and ld.abs().max() < 1e-12


def test_spline_coupling_log_det_equals_autograd_and_inverts():
    torch.manual_seed(0)
    mask = torch.tensor([False, True, False, True, True])
    layer = _perturb(flows.SplineCoupling(5, mask, bins=6, bound=2.0, hidden=12).double(), 0.8)
    z = 1.5 * torch.randn(64, 5, generator=torch.Generator().manual_seed(1), dtype=F64)   # inside and outside ±2
    z_next, log_det = layer(z)
    assert z_next.shape == (64, 5) and log_det.shape == (64,)
    assert torch.equal(z_next[:, mask], z[:, mask]) and not torch.allclose(z_next, z)
    assert (layer.inverse(z_next) - z).abs().max() < 1e-9
    order = torch.cat([mask.nonzero().flatten(), (~mask).nonzero().flatten()])
    for i in range(6):
        J = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], z[i])
        Jo = J[order][:, order]
        assert torch.equal(Jo[:3, 3:], torch.zeros_like(Jo[:3, 3:]))         # triangular, A first
        assert (torch.diagonal(Jo[3:, 3:]) > 0).all()                          # monotone in each z_B
        assert abs(torch.linalg.slogdet(J)[1] - log_det[i]) < 1e-10
    model = _perturb(flows.RealNVP(3, n_layers=4, hidden=8, coupling="spline", bins=5).double(), 0.5, seed=3)
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    assert (model.inverse(model(x)[0]) - x).abs().max() < 1e-9
    _assert_inverse_and_log_det(model, x[:3], 1e-9, 1e-9)


def test_spline_flow_is_a_normalised_density_and_trains_in_float32():
    torch.manual_seed(2)
    model = _perturb(flows.RealNVP(2, n_layers=3, hidden=16, coupling="spline").double(), 0.3, seed=5)
    c = torch.linspace(-8, 8, 801, dtype=F64)
    pts = torch.cartesian_prod(c, c)
    with torch.no_grad():
        mass = model.log_prob(pts).exp().sum() * (c[1] - c[0]) ** 2
    assert abs(mass.item() - 1) < 1e-4
    from companion_lib import data
    X = data.make_toy_2d("8gaussians", 1000, seed=0)
    flat = flows.RealNVP(2, n_layers=2, hidden=16, coupling="spline")
    start = -flat.log_prob(X).mean().item()
    training.train(flat, lambda m, b: -m.log_prob(b).mean(), X, steps=60, lr=5e-3, batch_size=256,
                   generator=torch.Generator().manual_seed(0), progress=False)
    assert -flat.log_prob(X).mean().item() < start - 0.3
    assert flat.sample(5, torch.Generator().manual_seed(1)).dtype == torch.float32


@pytest.mark.parametrize("call, error, words", [
    (lambda: flows.rational_quadratic_spline([0.0], *_spline_params((1,))), TypeError, "x must"),
    (lambda: flows.rational_quadratic_spline(torch.zeros(3, dtype=F64), *_spline_params((2,))), ValueError, "widths"),
    (lambda: flows.rational_quadratic_spline(torch.zeros(2, dtype=F64), *_spline_params((2,), k=1)), ValueError, "K >= 2"),
    (lambda: flows.rational_quadratic_spline(torch.zeros(2, dtype=F64), _spline_params((2,))[0],
                                             torch.zeros(2, 7, dtype=F64), _spline_params((2,))[2]), ValueError, "heights"),
    (lambda: flows.rational_quadratic_spline(torch.zeros(2, dtype=F64), *_spline_params((2,))[:2],
                                             torch.zeros(2, 8, dtype=F64)), ValueError, "derivatives"),
    (lambda: flows.rational_quadratic_spline(torch.zeros(2, dtype=F64), *_spline_params((2,))[:2],
                                             torch.zeros(2, 7, dtype=torch.long)), TypeError, "derivatives"),
    (lambda: flows.rational_quadratic_spline(torch.zeros(2, dtype=F64), *_spline_params((2,)), bound=0.0), ValueError, "bound"),
    (lambda: flows.rational_quadratic_spline(torch.zeros(2, dtype=F64), *_spline_params((2,)), inverse=1), TypeError, "inverse"),
    (lambda: flows.rational_quadratic_spline(torch.tensor([math.nan], dtype=F64), *_spline_params((1,))), ValueError, "x must be finite"),
    (lambda: flows.rational_quadratic_spline(torch.zeros(2, dtype=F64), *_spline_params((2,)), min_bin=0.2), ValueError, "min_bin"),
    (lambda: flows.SplineCoupling(3, torch.tensor([True, False, True]), bins=1), ValueError, "bins"),
    (lambda: flows.SplineCoupling(3, torch.tensor([True, False, True]), bound=-1.0), ValueError, "bound"),
    (lambda: flows.SplineCoupling(3, torch.tensor([True, True, True])), ValueError, "some coordinates"),
    (lambda: flows.SplineCoupling(3, torch.tensor([1, 0, 1])), TypeError, "boolean"),
    (lambda: flows.SplineCoupling(3, torch.tensor([True, False, True]))(torch.zeros(2, 2)), ValueError, r"z must have shape \(batch, 3\)"),
    (lambda: flows.SplineCoupling(2, torch.tensor([True, False])).inverse(torch.zeros(2, 2, dtype=F64)), TypeError, "double"),
    (lambda: flows.RealNVP(2, coupling="cubic"), ValueError, "coupling"),
    (lambda: flows.RealNVP(2, coupling="spline", forward_fn=flows.coupling_forward), ValueError, "coupling='affine'"),
])
def test_spline_bad_input(call, error, words):
    with pytest.raises(error, match=words):
        call()
