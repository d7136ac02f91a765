"""§15.3.1 forward process (companion_lib.forward_diffusion) and its two-sample tests.

Oracles: the closed forms of (15.7)/(15.8) written out by hand, the cosine schedule's defining ᾱ_t,
torch.distributions (KL of Gaussians), scipy.stats (Kolmogorov–Smirnov, energy distance), brute force.
"""
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402

from companion_lib import forward_diffusion, settings, two_sample, widgets  # noqa: E402
from companion_lib.forward_diffusion import NoiseSchedule  # noqa: E402

F64 = torch.float64


# ---------------------------------------------------------------- schedules
def test_linear_schedule_matches_a_hand_written_product():
    s = NoiseSchedule.linear(1000)
    betas = np.linspace(1e-4, 0.02, 1000)
    assert np.allclose(s.betas.numpy(), betas, rtol=0, atol=1e-15)
    assert np.allclose(s.alphas.numpy(), 1 - betas, rtol=0, atol=1e-15)
    assert np.allclose(s.alpha_bars.numpy(), np.cumprod(1 - betas), rtol=1e-12)
    assert s.T == 1000 and s.betas.dtype == F64 and s.betas.device.type == "cpu"


def test_cosine_schedule_reproduces_its_defining_alpha_bar():
    T, s_off = 200, 0.008
    s = NoiseSchedule.cosine(T)
    f = np.cos((np.arange(T + 1) / T + s_off) / (1 + s_off) * np.pi / 2) ** 2
    assert np.allclose(s.alpha_bars.numpy()[:-1], f[1:-1] / f[0], rtol=1e-10)
    assert s.betas[-1].item() == pytest.approx(0.999)                 # the clip keeps β_T < 1
    assert (s.betas > 0).all() and (s.betas < 1).all()


def test_one_minus_alpha_bar_keeps_its_digits_for_tiny_betas():
    s = NoiseSchedule(torch.full((3,), 1e-12, dtype=F64))
    exact = np.array([1e-12, 2e-12 - 1e-24, 3e-12 - 3e-24])           # 1 − (1 − β)^t
    assert np.allclose(s.one_minus_alpha_bars.numpy(), exact, rtol=1e-10)
    naive = 1 - s.alpha_bars.numpy()                                   # what cancellation would give
    assert np.abs(naive / exact - 1).max() > 1e-6


def test_snr_is_alpha_bar_over_its_complement():
    s = NoiseSchedule.linear(50, 1e-3, 0.2)
    ab = s.alpha_bars.numpy()
    assert np.allclose(s.snr().numpy(), ab / (1 - ab), rtol=1e-12)


@pytest.mark.parametrize("make, match", [
    (lambda: NoiseSchedule([0.1, 1.0]), r"\(0, 1\)"),
    (lambda: NoiseSchedule([0.1, -0.1]), r"\(0, 1\)"),
    (lambda: NoiseSchedule([[0.1, 0.2]]), "1-D"),
    (lambda: NoiseSchedule([0.1, float("nan")]), "finite"),
    (lambda: NoiseSchedule.linear(0), ">= 1"),
    (lambda: NoiseSchedule.linear(10, beta_end=1.5), "beta_end"),
    (lambda: NoiseSchedule.linear(10.5), "integer"),
    (lambda: NoiseSchedule.cosine(10, max_beta=1.0), "max_beta"),
])
def test_bad_schedules_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_at_validates_its_inputs():
    s = NoiseSchedule.linear(10)
    x = torch.zeros(3, 4)
    got = s.at("alpha_bars", torch.tensor([1, 5, 10]), x)
    assert got.shape == (3, 1) and got.dtype == torch.float32
    assert torch.allclose(got[:, 0], s.alpha_bars[[0, 4, 9]].float())  # index t − 1 holds step t
    with pytest.raises(ValueError, match="per-step"):
        s.at("nonsense", torch.tensor([1, 2, 3]), x)
    with pytest.raises(TypeError, match="like"):
        s.at("alpha_bars", torch.tensor([1, 2, 3]), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="1..T"):
        s.at("alpha_bars", torch.tensor([0, 2, 3]), x)
    with pytest.raises(ValueError, match="1..T"):
        s.at("alpha_bars", torch.tensor([1, 2, 11]), x)
    with pytest.raises(TypeError, match="integer"):
        s.at("alpha_bars", torch.tensor([1.0, 2.0, 3.0]), x)
    with pytest.raises(ValueError, match="one step per row"):
        s.at("alpha_bars", torch.tensor([1, 2]), x)


META = torch.device("meta")   # tensors without values: reading one back (.cpu(), .item(), bool) raises


def _recorded_asserts(monkeypatch):
    """torch._assert_async, recording each message (and still running it)."""
    messages, original = [], torch._assert_async
    monkeypatch.setattr(torch, "_assert_async", lambda cond, msg: (messages.append(msg), original(cond, msg)))
    return messages


def test_at_and_q_sample_on_an_accelerator_never_wait_for_it(monkeypatch):
    """Off the CPU the steps are range-checked on the device and x0/noise are not read back: on the
    'meta' device any host synchronisation (t.cpu(), int(t.min()), bool(isfinite(x).all())) raises."""
    asserts = _recorded_asserts(monkeypatch)
    s = NoiseSchedule.cosine(100, max_beta=0.2)
    t = torch.empty(8, dtype=torch.long, device=META)
    x0, noise = torch.empty(8, 3, device=META), torch.empty(8, 3, device=META)
    got = s.at("alpha_bars", t, x0)
    assert got.device == META and got.shape == (8, 1) and got.dtype == torch.float32
    xt = forward_diffusion.q_sample(s, x0, t, noise)
    assert xt.device == META and xt.shape == (8, 3) and xt.dtype == torch.float32
    assert len(asserts) == 3 and all("1..T = 1..100" in m for m in asserts)
    # the cast table is built once per (quantity, dtype, device) and then reused
    tables = {k: v[2] for k, v in s._tables.items()}
    assert set(tables) == {("alpha_bars", torch.float32, META), ("one_minus_alpha_bars", torch.float32, META)}
    forward_diffusion.q_sample(s, x0, t, noise)
    assert all(s._tables[k][2] is v for k, v in tables.items())
    # steps on the CPU with data on the device: checked on the CPU, with the clear error
    with pytest.raises(ValueError, match="1..T"):
        forward_diffusion.q_sample(s, x0, torch.full((8,), 101), noise)
    assert forward_diffusion.q_sample(s, x0, torch.full((8,), 100), noise).device == META


def test_cached_tables_follow_the_schedule_and_the_cpu_checks_stay():
    s = NoiseSchedule.linear(10)
    x = torch.zeros(3, 4)
    t = torch.tensor([1, 5, 10])
    before = s.at("betas", t, x)
    with settings.cpu_float64():
        s.betas.mul_(0.5)                                      # changed in place: the table is rebuilt
    assert torch.allclose(s.at("betas", t, x), before * 0.5)
    s.betas = torch.full((10,), 0.3, dtype=torch.float64)      # replaced: rebuilt too
    assert torch.equal(s.at("betas", t, x), torch.full((3, 1), 0.3))
    assert s.at("betas", t, x.double()).dtype == torch.float64     # one table per dtype
    with pytest.raises(ValueError, match="finite"):
        forward_diffusion.q_sample(s, torch.full((3, 4), float("nan")), t, x)


# ---------------------------------------------------------------- q_sample (15.8)
def test_q_sample_is_the_formula_and_keeps_dtype_and_device():
    s = NoiseSchedule.linear(100)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 2, 3, generator=g)
    eps = torch.randn(4, 2, 3, generator=g, dtype=F64)                 # noise in another dtype
    t = torch.tensor([1, 30, 99, 100])
    xt = forward_diffusion.q_sample(s, x0, t, eps)
    ab = s.alpha_bars[t - 1].reshape(-1, 1, 1)
    expected = ab.sqrt() * x0.double() + (1 - ab).sqrt() * eps
    assert xt.dtype == torch.float32 and xt.shape == x0.shape
    assert torch.allclose(xt.double(), expected, atol=1e-6)
    with settings.cpu_float64():
        assert forward_diffusion.q_sample(s, x0.double(), t, eps).dtype == F64


def test_q_sample_moments_match_15_8():
    s = NoiseSchedule.cosine(50)
    n, t = 200_000, 20
    g = torch.Generator().manual_seed(1)
    x0 = torch.full((n,), 0.7)
    xt = forward_diffusion.q_sample(s, x0, torch.full((n,), t), torch.randn(n, generator=g)).double()
    ab = s.alpha_bars[t - 1].item()
    assert abs(xt.mean().item() - math.sqrt(ab) * 0.7) < 4 * math.sqrt((1 - ab) / n)
    assert abs(xt.var().item() / (1 - ab) - 1) < 4 * math.sqrt(2 / n)


@pytest.mark.parametrize("args, error, match", [
    (lambda s: (s, np.zeros((2, 3)), torch.tensor([1, 2]), torch.zeros(2, 3)), TypeError, "x0"),
    (lambda s: (s, torch.zeros(2, 3, dtype=torch.long), torch.tensor([1, 2]), torch.zeros(2, 3)), TypeError, "floating"),
    (lambda s: (s, torch.zeros(2, 3), torch.tensor([1, 2]), torch.zeros(3, 2)), ValueError, "shape"),
    (lambda s: (s, torch.full((2, 3), float("nan")), torch.tensor([1, 2]), torch.zeros(2, 3)), ValueError, "finite"),
    (lambda s: (s, torch.zeros(2, 3), torch.tensor([1, 20]), torch.zeros(2, 3)), ValueError, "1..T"),
    (lambda s: (s, torch.zeros(2, 3), [1, 2], torch.zeros(2, 3)), TypeError, "torch.Tensor"),
    (lambda s: ("linear", torch.zeros(2, 3), torch.tensor([1, 2]), torch.zeros(2, 3)), TypeError, "NoiseSchedule"),
])
def test_q_sample_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        forward_diffusion.q_sample(*args(NoiseSchedule.linear(10)))


# ---------------------------------------------------------------- forward_chain (15.7) vs (15.8)
def test_forward_chain_one_step_is_15_7_exactly():
    s = NoiseSchedule.linear(10, 0.1, 0.2)
    x0 = torch.tensor([[1.0, -2.0]])
    xt = forward_diffusion.forward_chain(s, x0, 1, generator=torch.Generator().manual_seed(3))
    eps = torch.randn(1, 2, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(xt, math.sqrt(0.9) * x0 + math.sqrt(0.1) * eps)


def test_forward_chain_shapes_keep_and_reproducibility():
    s = NoiseSchedule.linear(20)
    x0 = torch.randn(5, 3)
    assert torch.equal(forward_diffusion.forward_chain(s, x0, 0), x0)
    a = forward_diffusion.forward_chain(s, x0, 20, generator=torch.Generator().manual_seed(0), keep=[0, 5, 20])
    b = forward_diffusion.forward_chain(s, x0, 20, generator=torch.Generator().manual_seed(0))
    assert a.shape == (3, 5, 3) and torch.equal(a[0], x0) and torch.equal(a[-1], b)
    assert a.dtype == torch.float32
    with settings.cpu_float64():
        assert forward_diffusion.forward_chain(s, x0.double(), 3).dtype == F64


def test_forward_chain_matches_15_8_in_distribution_and_a_wrong_schedule_does_not():
    s = NoiseSchedule.linear(1000)
    n, t = 20_000, 300
    g = torch.Generator().manual_seed(5)
    x0 = torch.ones(n)
    chain = forward_diffusion.forward_chain(s, x0, t, generator=g).numpy()
    ab, om = s.alpha_bars[t - 1].item(), s.one_minus_alpha_bars[t - 1].item()
    assert stats.kstest(chain, stats.norm(math.sqrt(ab), math.sqrt(om)).cdf).pvalue > 1e-3
    wrong = NoiseSchedule.linear(1000, beta_end=0.025)
    direct_wrong = forward_diffusion.q_sample(wrong, x0, torch.full((n,), t), torch.randn(n, generator=g)).numpy()
    assert stats.ks_2samp(chain, direct_wrong).pvalue < 1e-6
    ab_w, om_w = wrong.alpha_bars[t - 1].item(), wrong.one_minus_alpha_bars[t - 1].item()
    assert stats.kstest(chain, stats.norm(math.sqrt(ab_w), math.sqrt(om_w)).cdf).pvalue < 1e-6


def test_forward_chain_runs_under_the_no_float64_stand_in():
    s = NoiseSchedule.cosine(30)
    with settings.no_float64():
        out = forward_diffusion.forward_chain(s, torch.zeros(4, 2), 30, keep=[10, 30])
        kl = forward_diffusion.terminal_kl(s, torch.zeros(4, 2))
    assert out.dtype == torch.float32 and kl.dtype == torch.float32


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(t=11), ValueError, "<= 10"),
    (dict(t=-1), ValueError, ">= 0"),
    (dict(t=5, keep=[3, 2]), ValueError, "increasing"),
    (dict(t=5, keep=[]), ValueError, "increasing"),
    (dict(t=5, keep=[6]), ValueError, "<= 5"),
    (dict(t=5, generator=0), TypeError, "Generator"),
])
def test_forward_chain_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        forward_diffusion.forward_chain(NoiseSchedule.linear(10), torch.zeros(2, 3), **kwargs)


def test_terminal_kl_against_torch_distributions():
    s = NoiseSchedule.linear(40, 1e-3, 0.05)
    x0 = torch.randn(6, 8, generator=torch.Generator().manual_seed(2), dtype=F64)
    with settings.cpu_float64():
        got = forward_diffusion.terminal_kl(s, x0)
        ab = s.alpha_bars[-1]
        q = torch.distributions.Normal(ab.sqrt() * x0, (1 - ab).sqrt().expand_as(x0))
        p = torch.distributions.Normal(torch.zeros_like(x0), torch.ones_like(x0))
        expected = torch.distributions.kl_divergence(q, p).sum(1)
    assert torch.allclose(got, expected, rtol=1e-10)
    assert forward_diffusion.terminal_kl(NoiseSchedule.linear(1000), torch.zeros(1, 64)).item() < 1e-3
    with pytest.raises(TypeError, match="NoiseSchedule"):
        forward_diffusion.terminal_kl(None, x0)


# ---------------------------------------------------------------- two-sample tests
def test_energy_distance_matches_scipy_in_1d_and_brute_force_in_2d():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, generator=g, dtype=F64), 0.5 + torch.randn(30, generator=g, dtype=F64)
    assert two_sample.energy_distance(x, y) == pytest.approx(stats.energy_distance(x, y) ** 2, rel=1e-10)
    X, Y = torch.randn(15, 2, generator=g, dtype=F64), torch.randn(12, 2, generator=g, dtype=F64)
    d = lambda a, b: np.mean([np.linalg.norm(u - v) for u in a.numpy() for v in b.numpy()])   # noqa: E731
    assert two_sample.energy_distance(X, Y) == pytest.approx(2 * d(X, Y) - d(X, X) - d(Y, Y), rel=1e-10)


def test_energy_test_level_and_power():
    g = torch.Generator().manual_seed(1)
    p_null = [two_sample.energy_test(torch.randn(40, 3, generator=g), torch.randn(40, 3, generator=g),
                                     99, generator=g)["p_value"] for _ in range(40)]
    assert np.mean(np.array(p_null) < 0.05) <= 0.2                     # level ≈ 0.05 (loose bound)
    assert min(p_null) >= 1 / 100                                      # never below 1/(P + 1)
    shifted = two_sample.energy_test(torch.randn(60, 3, generator=g), 1.0 + torch.randn(60, 3, generator=g),
                                     99, generator=g)
    assert shifted["p_value"] == pytest.approx(1 / 100) and shifted["statistic"] > 0


@pytest.mark.parametrize("call, match", [
    (lambda: two_sample.energy_test(torch.zeros(5, 2), torch.zeros(5, 3)), "dimension"),
    (lambda: two_sample.energy_test(torch.zeros(1, 2), torch.zeros(5, 2)), "at least 2"),
    (lambda: two_sample.energy_test(torch.zeros(5, 2), torch.zeros(5, 2), 0), ">= 1"),
    (lambda: two_sample.energy_distance(torch.zeros(5, 2, 2), torch.zeros(5, 2, 2)), "1-D or 2-D"),
    (lambda: two_sample.energy_distance(torch.full((5,), float("nan")), torch.zeros(5)), "finite"),
])
def test_two_sample_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- the widget
def test_forward_schedule_explorer_draws_without_a_browser():
    x0 = 2 * torch.rand(10, 64, generator=torch.Generator().manual_seed(0)) - 1
    ui, update = widgets.forward_schedule_explorer(x0, T=200)
    out = update(100, 1e-4, 0.02)
    plt.close("all")
    s = NoiseSchedule.linear(100, 1e-4, 0.02)
    assert out["alpha_bar_T"] == pytest.approx(s.alpha_bars[-1].item())
    assert out["terminal_kl"] == pytest.approx(forward_diffusion.terminal_kl(s, x0).mean().item(), rel=1e-5)
    assert out["t_half"] == int(torch.nonzero(s.alpha_bars <= 0.5)[0]) + 1
    assert update(10, 1e-4, 1e-3)["t_half"] is None                  # ᾱ never reaches ½
    plt.close("all")


def test_two_sample_tests_run_under_the_no_float64_stand_in():
    g = torch.Generator().manual_seed(0)
    with settings.no_float64():
        x, y = torch.randn(20, 4, generator=g), torch.randn(25, 4, generator=g)
        assert two_sample.energy_distance(x, y) > 0
        assert 0 < two_sample.energy_test(x, y, 19, generator=g)["p_value"] <= 1
