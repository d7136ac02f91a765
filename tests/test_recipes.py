"""companion_lib.recipes: the training recipes sit above the mathematics they train: no module of the
mathematics imports them, and their old homes no longer hold them (one home for each)."""
import subprocess
import sys

import pytest
import torch

from companion_lib import ddpm, forward_diffusion, recipes


def test_the_mathematics_does_not_import_the_recipes():
    code = ("import sys; from companion_lib import flows, vae, diffusion, ddpm, forward_diffusion; "
            "print('companion_lib.recipes' in sys.modules, 'fit_digits' in vars(flows), "
            "'train_vae' in vars(vae), 'fit_digits' in vars(diffusion))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"] * 4


def test_the_recipes_are_where_bench_finds_them():
    from companion_lib import bench
    assert set(recipes.__all__) == {"train_vae", "fit_realnvp_digits", "fit_ddpm_digits", "WEIGHTINGS", "ddpm_weight",
                                    "fit_made_digits"}
    assert "recipes" in bench.__dict__ and bench.recipes is recipes


def test_the_weighted_loss_runs_through_the_unweighted_one():
    """The recipe hands the student's (15.10) loss ε̃ = ε − √w (ε − ε_θ): its value is the weighted loss."""
    s = forward_diffusion.NoiseSchedule.cosine(1000, max_beta=0.2)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(32, 8, generator=g), torch.randn(32, 8, generator=g)
    t = torch.randint(1, 1001, (32,), generator=g)
    torch.manual_seed(0)
    net = ddpm.EpsilonFrom(_Net(), s, "v")
    for weighting in recipes.WEIGHTINGS:
        w = recipes.ddpm_weight(s, t, x0, weighting)
        got = ddpm.ddpm_loss(s, recipes._weighted_network(net, noise, w), x0, t, noise)
        xt = forward_diffusion.q_sample(s, x0, t, noise)
        want = (w.squeeze(1) * (noise - net(xt, t)).pow(2).sum(1)).mean()
        assert torch.allclose(got, want, rtol=1e-5), weighting
    assert torch.equal(recipes.ddpm_weight(s, t, x0, "none"), torch.ones(32, 1))
    elbo_all = recipes.ddpm_weight(s, torch.arange(1, 1001), torch.zeros(1000, 1), "elbo")
    assert float(elbo_all.mean()) == pytest.approx(1.0, rel=1e-5)                      # scale of (15.10) kept


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(8, 8)

    def forward(self, x, t):
        return self.lin(x)


def test_fit_ddpm_digits_takes_every_choice_and_rejects_bad_ones():
    for prediction in ddpm.PREDICTIONS:
        for weighting in recipes.WEIGHTINGS:
            schedule, fit = recipes.fit_ddpm_digits(steps=2, T=20, hidden=8, blocks=1, batch_size=16, warmup=1,
                                                    prediction=prediction, weighting=weighting, progress=False)
            eps = fit.ema.model(torch.zeros(3, 64), torch.tensor([1, 10, 20]))
            assert isinstance(fit.ema.model, ddpm.EpsilonFrom) and eps.shape == (3, 64)
            assert bool(torch.isfinite(eps).all())
    for kw, name in [(dict(prediction="score"), "prediction"), (dict(weighting="snr"), "weighting"),
                     (dict(gamma=0.0), "gamma"), (dict(loss=3), "loss"), (dict(dequantize=1), "dequantize")]:
        with pytest.raises((ValueError, TypeError), match=name):
            recipes.fit_ddpm_digits(steps=1, T=20, hidden=8, blocks=1, progress=False, **kw)


def test_dequantize_moves_each_pixel_within_its_bin():
    seen = []

    def spy(schedule, eps_model, x0, t, noise):
        seen.append(x0.detach().clone())
        return ddpm.ddpm_loss(schedule, eps_model, x0, t, noise)
    for dq in (False, True):
        seen.clear()
        recipes.fit_ddpm_digits(steps=1, T=20, hidden=8, blocks=1, batch_size=64, warmup=1, eval_every=1,
                                loss=spy, dequantize=dq, progress=False)
        levels = (ddpm_data_signed_to_levels(seen[0]))
        off = levels - levels.round()                  # bin centres sit on integers + 0.5 after the shift
        if dq:
            assert float(off.abs().max()) <= 0.5 + 1e-4 and float(off.std()) > 0.2     # spread over the bin
        else:
            assert float(off.abs().max()) < 1e-4


def ddpm_data_signed_to_levels(x):
    """[−1, 1] -> grey levels shifted so that bin centres are integers: (x + 1)/2 · 17 − ½."""
    return (x + 1) / 2 * 17 - 0.5
