"""§14.3 energy-based models: quadrature vs closed forms, autograd vs analytic scores, Langevin's
stationary law, denoising score matching's optimum, the joint energy, bad input, and the widget."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from companion_lib import ebm  # noqa: E402

F64 = torch.float64
W = torch.tensor([0.3, 0.3, 0.4], dtype=F64)
MU = torch.tensor([[-1.0, -0.5], [1.0, -0.5], [0.0, 0.9]], dtype=F64)
VAR = torch.tensor([0.25, 0.15, 0.2], dtype=F64)


def energy(x):
    return ebm.gmm_energy(x, W, MU, VAR)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_quadratic_partition_function_grid_matches_closed_form():
    A = torch.tensor([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.5]], dtype=F64)
    grid = ebm.log_partition_grid(lambda x: ebm.quadratic_energy(x, A), d=3, lim=9.0, k=60)
    assert grid == pytest.approx(ebm.quadratic_log_partition(A), abs=1e-6)
    # log Z = (d/2) log 2π − ½ log det A, by hand for a diagonal A
    D = torch.diag(torch.tensor([4.0, 0.25], dtype=F64))
    assert ebm.quadratic_log_partition(D) == pytest.approx(math.log(2 * math.pi), abs=1e-12)


def test_mixture_energy_is_normalised_and_shift_sets_Z():
    log_p, c, log_Z = ebm.grid_log_density(energy, lim=3.5, k=150)
    assert log_Z == pytest.approx(0.0, abs=1e-5)
    _, _, log_Z2 = ebm.grid_log_density(lambda x: energy(x) + 2.0, lim=3.5, k=150)
    assert log_Z2 == pytest.approx(-2.0, abs=1e-5)
    assert float(log_p.exp().sum()) * (7.0 / 150) ** 2 == pytest.approx(1.0, abs=1e-9)
    assert log_p.shape == (150, 150) and c.shape == (150,)


def test_grid_log_likelihood_matches_exact_log_density():
    x = torch.tensor([[0.0, 0.0], [1.0, -0.4], [-0.9, -0.6]], dtype=F64)
    ll = ebm.grid_log_likelihood(lambda z: energy(z) + 5.0, x, lim=3.5, k=200)
    assert torch.allclose(ll, -energy(x), atol=1e-5)


def test_gmm_score_of_one_gaussian_is_linear():
    x = torch.randn(10, 3, dtype=F64)
    m = torch.tensor([[1.0, 2.0, 3.0]], dtype=F64)
    s = ebm.gmm_score(x, torch.tensor([1.0], dtype=F64), m, torch.tensor([0.5], dtype=F64))
    assert torch.allclose(s, (m - x) / 0.5)


def test_langevin_reaches_the_mixture_in_total_variation():
    exact = ebm.binned_probabilities(energy, lim=3.5, bins=20, sub=6)
    assert float(exact.sum()) == pytest.approx(1.0, abs=1e-6)
    g = torch.Generator().manual_seed(3)
    n = 6000
    floor = ebm.total_variation(ebm.histogram_2d(ebm.gmm_sample(n, W, MU, VAR, g), 3.5, 20), exact)
    x = ebm.langevin(lambda z: ebm.gmm_score(z, W, MU, VAR), torch.randn(n, 2, generator=g, dtype=F64) * 1.5,
                     0.02, 250, generator=g)
    tv = ebm.total_variation(ebm.histogram_2d(x, 3.5, 20), exact)
    assert tv < 1.6 * floor + 0.01


def test_histogram_and_total_variation():
    x = torch.tensor([[0.1, 0.1], [-0.1, 0.1], [5.0, 0.0], [0.1, -0.9]])
    h = ebm.histogram_2d(x, lim=1.0, bins=2)
    assert float(h.sum()) == pytest.approx(0.75)                        # one point outside the box
    assert h[1, 1] == pytest.approx(0.25) and h[1, 0] == pytest.approx(0.25) and h[0, 1] == pytest.approx(0.25)
    p = torch.tensor([0.5, 0.5, 0.0])
    assert ebm.total_variation(p, torch.tensor([0.0, 0.5, 0.5])) == pytest.approx(0.5)
    assert ebm.total_variation(p, p) == 0.0


def test_energy_mlp_trains_by_dsm_gradients():
    torch.manual_seed(0)
    net = ebm.EnergyMLP(dim=2, hidden=16, depth=2)
    x = torch.randn(64, 2)
    assert net(x).shape == (64,)
    loss = ebm.dsm_loss(net, x, 0.1, generator=torch.Generator().manual_seed(0))
    loss.backward()
    *body, (last_bias_name, last_bias) = list(net.named_parameters())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for _, p in body)
    # the output bias shifts E by a constant (it only changes Z), so the score, and DSM, ignore it
    assert last_bias_name.endswith("bias") and last_bias.grad is None
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\)"):
        net(torch.randn(5, 3))


def test_joint_energy_fit_caption_generate():
    g = torch.Generator().manual_seed(6)
    centres = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0]], dtype=F64)
    labels = torch.tensor([0] * 100 + [1] * 200 + [2] * 100)
    X = centres[labels] + 0.3 * torch.randn(400, 2, generator=g, dtype=F64)
    joint = ebm.JointEnergy.fit(X, labels)
    assert torch.allclose(joint.centres, centres, atol=0.1)
    assert joint.sigma2 == pytest.approx(0.09, rel=0.15)
    assert (joint.caption(X) == labels).double().mean() > 0.99
    # Z = 1: Σ_h ∫ exp(−E(x, h)) dx on a grid
    pts, _, area = ebm.grid_2d(4.5, 200)
    Z = float(torch.exp(-joint.energies(pts)).sum() * area)
    assert Z == pytest.approx(1.0, abs=1e-4)
    path = joint.generate(1, torch.tensor([[3.0, 3.0]], dtype=F64), lr=0.3, steps=60)
    assert path.shape == (61, 1, 2)
    assert torch.allclose(path[-1, 0], joint.centres[1], atol=1e-6)
    # E(x, h) agrees with energies(x)[:, h]
    assert torch.allclose(joint.energy(X[:5], 2), joint.energies(X[:5])[:, 2])


@pytest.mark.parametrize("call, match", [
    (lambda: ebm.gmm_energy(torch.zeros(3), W, MU, VAR), "2-D"),
    (lambda: ebm.gmm_energy(torch.zeros(3, 3), W, MU, VAR), r"means must have shape \(3, 3\)"),
    (lambda: ebm.gmm_score(torch.zeros(3, 2), W, MU, -VAR), "variances must be positive"),
    (lambda: ebm.gmm_score(torch.zeros(3, 2), -W, MU, VAR), "weights must be >= 0"),
    (lambda: ebm.langevin_step(torch.zeros(3, 2), torch.zeros(2, 2), 0.1, torch.zeros(3, 2)),
     r"score must have shape \(3, 2\)"),
    (lambda: ebm.langevin_step(torch.zeros(3, 2), torch.zeros(3, 2), 0.0, torch.zeros(3, 2)), "step_size"),
    (lambda: ebm.langevin(lambda z: z, torch.zeros(3, 2), -1.0, 5), "step_size"),
    (lambda: ebm.histogram_2d(torch.zeros(4, 3)), r"\(\*, 2\)"),
    (lambda: ebm.total_variation(torch.ones(3), torch.ones(4)), r"shape \(3\)"),
    (lambda: ebm.grid_2d(3.0, 1), "k must be >= 2"),
    (lambda: ebm.log_partition_grid(lambda z: z.sum(1), d=0), "d must be >= 1"),
    (lambda: ebm.score(lambda z: z, torch.zeros(3, 2)), r"\(n, d\) to \(n,\)"),
    (lambda: ebm.quadratic_log_partition(torch.tensor([[1.0, 2.0], [2.0, 1.0]])), "positive definite"),
    (lambda: ebm.dsm_loss(energy, torch.zeros(3, 2, dtype=F64), 0.0), "sigma"),
    (lambda: ebm.JointEnergy.fit(torch.zeros(4, 2), torch.tensor([0, 0, 2, 2])), "every class"),
    (lambda: ebm.gmm_energy(torch.tensor([[float("nan"), 0.0]]), W, MU, VAR), "finite"),
])
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_langevin_widget_update_redraws_and_changes():
    from companion_lib import widgets

    exact = ebm.binned_probabilities(energy, lim=3.5, bins=15, sub=4)
    x0 = torch.randn(500, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    ui, update = widgets.langevin_explorer(lambda z: ebm.gmm_score(z, W, MU, VAR), x0, exact, 3.5,
                                           step_size=0.05, n_steps=10)
    short = update(0.05, 0)
    long = update(0.05, 200)
    assert short["samples"].shape == (500, 2)
    assert not torch.equal(short["samples"], long["samples"])
    assert long["tv"] < short["tv"]
    again = update(0.05, 200)
    assert torch.equal(again["samples"], long["samples"])                # fixed seed: same picture
    eta, steps = ui.children[0].children                                 # sliders start at the arguments
    assert eta.value == pytest.approx(0.05) and steps.value == 10
