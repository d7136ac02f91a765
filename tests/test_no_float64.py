"""Every public function of companion_lib runs under the no-float64 stand-in (MPS has no float64).

Each entry of CALLS calls one public function (or class) with float32 inputs, as a notebook on
``run.device`` would, inside ``settings.no_float64()``: a float64 torch call outside
``settings.cpu_float64()`` would raise there, as it would on a Mac. Functions that compute exactly in
float64 do so inside ``cpu_float64()`` (on the CPU) and may return float64; the notebook then reads
them out or casts them. ``test_every_public_function_is_listed`` fails when a module gains a public
function that is not called here (add it to CALLS, or to NOT_CALLED with the reason).
"""
import importlib
import inspect

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from companion_lib import settings

MODULES = ["data", "mixture", "moments", "divergences", "ebm", "elbo", "vae", "metrics", "training",
           "nets", "plots", "widgets", "scores", "gaussian",
           "gaussian_mixture", "flows", "distinguish", "two_sample", "forward_diffusion", "ddpm", "diffusion",
           "denoisers", "guidance", "recipes", "bench", "autoregressive"]
g = torch.Generator


def _x(n=40, d=2, seed=0):
    return torch.randn(n, d, generator=g().manual_seed(seed))


W2 = torch.tensor([0.4, 0.6])
M2 = torch.tensor([[-1.0, 0.0], [1.0, 0.5]])
V2 = torch.tensor([0.5, 0.8])
COV2 = torch.eye(2).expand(2, 2, 2).clone()
LEVELS = torch.randint(0, 17, (20, 64), generator=g().manual_seed(0)).float()


def _mixture_fit():
    from companion_lib.mixture import GaussianMixture
    gm = GaussianMixture(2, random_state=0).fit(_x(60))
    return gm.predict(_x(5)), gm.score(_x(5)), gm.sample(4, generator=g().manual_seed(0)), gm.bic(_x(5))


def _vae():
    from companion_lib.vae import VAE
    torch.manual_seed(0)
    return VAE(64, 2, 16, 1)


def _energy(x):
    return 0.5 * (x ** 2).sum(1)


def _em_path():
    from companion_lib import mixture
    return mixture.em_path(torch.randn(30, 1, generator=g().manual_seed(1)), [0.5, 0.5], [[-1.0], [1.0]],
                           [[[1.0]], [[1.0]]], n_iter=3)


def _linear_gaussian():
    from companion_lib.elbo import LinearGaussian
    lg = LinearGaussian(torch.tensor([[1.0], [0.5]]), torch.zeros(2), 0.5)
    x = torch.tensor([[0.3, -0.2]])
    m, S = lg.posterior(x)
    return lg.log_px(x), lg.elbo(x, m, S), lg.elbo_mc(x, m, S, 10, g().manual_seed(0)), lg.sample(3, g().manual_seed(0))


def _joint_energy():
    from companion_lib.ebm import JointEnergy
    je = JointEnergy.fit(_x(40), torch.arange(40) % 2)
    return je.caption(_x(3)), je.generate(1, _x(3), steps=3), je.energies(_x(3))


def _judge(m):
    judge = m.DigitJudge()
    return judge.confident_share(torch.rand(5, 64)), judge.class_histogram(torch.rand(5, 64))


# ---- Chapter 15
MASK2 = torch.tensor([True, False])


def _cond(z_a):
    """A coupling conditioner (b, 1) -> (r, s), each (b, 1), as a lesson writes one."""
    return 0.5 * torch.tanh(z_a), z_a - 0.1


def _realnvp():
    from companion_lib.flows import RealNVP
    torch.manual_seed(0)
    model = RealNVP(64, n_layers=2, hidden=8, masks="checkerboard", logit_alpha=0.05)
    y = torch.rand(5, 64, generator=g().manual_seed(0))
    z, log_det = model(y)
    return model.log_prob(y), model.inverse(z), model.sample(3, g().manual_seed(1)), model.stages(y)


def _flows_fit_digits(m):
    model, fit = m.fit_realnvp_digits(steps=3, eval_every=2, hidden=8, progress=False, generator=g().manual_seed(0))
    return model.log_prob(torch.rand(4, 64)), fit


W3, MU3, VAR3 = [0.5, 0.5], [-1.0, 1.0], [0.1, 0.1]        # 1-D mixture of lesson 15_3_2


def _mixture_value(mix):
    return (mix.log_prob(_x()), mix.score(_x()), mix.sample(5, g().manual_seed(0)), mix.noised(0.5).moments(),
            mix.responsibilities(_x()))


def _schedule():
    from companion_lib.forward_diffusion import NoiseSchedule
    return NoiseSchedule.cosine(50, max_beta=0.2)


def _t(n=40, seed=0, T=50):
    return torch.randint(1, T + 1, (n,), generator=g().manual_seed(seed))


def _schedule_5():
    from companion_lib.forward_diffusion import NoiseSchedule
    return NoiseSchedule.linear(5, 1e-3, 0.2)


def _schedule_calls():
    from companion_lib.forward_diffusion import NoiseSchedule
    s = NoiseSchedule.linear(50)
    return (s.at("alpha_bars", _t(), _x()), s.snr(), repr(s), NoiseSchedule(torch.full((10,), 0.05)).alpha_bars,
            _schedule().T)


def _denoiser(n_classes=None):
    from companion_lib.denoisers import ResidualDenoiser
    torch.manual_seed(0)
    return ResidualDenoiser(2, hidden=16, blocks=1, emb_dim=8, n_classes=n_classes)


def _residual_denoiser():
    labels = torch.arange(40) % 3
    return _denoiser()(_x(), _t()), _denoiser(3)(_x(), _t(), labels), _denoiser(3)(_x(), _t())


def _diffusion_sample(m):
    den = _denoiser()
    out = m.sample(_schedule(), den, (8, 2), generator=g().manual_seed(0), keep=(50, 1))
    fast = m.sample(_schedule(), den, (8, 2), generator=g().manual_seed(0), n_steps=5, clip_x0=True,
                    sigma="beta")
    return out, fast


def _guided_sample():
    from companion_lib import ddpm, guidance
    den, labels = _denoiser(3), torch.arange(8) % 3
    return ddpm.sample(_schedule(), guidance.guided_eps(den, labels, 3.0, den.null_label), (8, 2),
                            generator=g().manual_seed(0), n_steps=5)


def _scoreboard(m):
    rows = m.scoreboard(["real", "uniform", "isotropic_gaussian", "realnvp", "ddpm"], device="cpu",
                        n_samples=16, flow_hidden=8, flow_steps=3, flow_patience=None, ddpm_steps=3, ddpm_n_t=2)
    return m.render_table(rows), m.bar_chart(rows)


def _bench_json(m):
    import tempfile
    rows = m.scoreboard(["uniform"], device="cpu", n_samples=16)
    with tempfile.TemporaryDirectory() as tmp:
        return m.read_json(m.write_json(rows, f"{tmp}/rows.json"))


CALLS = {
    # data
    "data.dequantize": lambda m: m.dequantize(LEVELS, g().manual_seed(0)),
    "data.to_unit": lambda m: m.to_unit(LEVELS),
    "data.from_unit": lambda m: m.from_unit(m.to_unit(LEVELS)),
    "data.unit_to_signed": lambda m: m.unit_to_signed(torch.rand(3, 64)),
    "data.signed_to_unit": lambda m: m.signed_to_unit(torch.rand(3, 64) * 2 - 1),
    "data.dequantized_bits_per_dim": lambda m: m.dequantized_bits_per_dim(torch.zeros(4), 64),
    "data.heldout_digits": lambda m: m.heldout_digits(),
    "data.make_toy_2d": lambda m: m.make_toy_2d("moons", 100),
    "data.load_pearson_crabs": lambda m: m.load_pearson_crabs(),
    "data.load_leptograpsus_crabs": lambda m: m.load_leptograpsus_crabs(),
    "data.load_digits_split": lambda m: m.load_digits_split(),
    # mixture (§14.1)
    "mixture.gaussian_mle": lambda m: m.gaussian_mle(_x()),
    "mixture.log_gaussian": lambda m: m.log_gaussian(_x(), M2, COV2),
    "mixture.e_step": lambda m: m.e_step(_x(), W2, M2, COV2),
    "mixture.responsibilities": lambda m: m.responsibilities(torch.randn(10), W2, torch.tensor([-1.0, 1.0]), V2),
    "mixture.m_step": lambda m: m.m_step(_x(), torch.full((40, 2), 0.5)),
    "mixture.GaussianMixture": lambda m: _mixture_fit(),
    "mixture.em_path": lambda m: _em_path(),
    "mixture.cdf_1d": lambda m: m.cdf_1d(torch.linspace(-2, 2, 5), W2, torch.tensor([-1.0, 1.0]), V2),
    # moments (Pearson 1894)
    "moments.normal_raw_moments": lambda m: m.normal_raw_moments(np.float64(0.5), np.float64(1.0), 4),
    "moments.mixture_raw_moments": lambda m: m.mixture_raw_moments(0.4, np.array([0.0, 1.0]), np.array([1.0, 0.5]), 4),
    "moments.method_of_moments": lambda m: m.method_of_moments(torch.randn(200, generator=g().manual_seed(0)), n_starts=5),
    # divergences (§14.2)
    "divergences.log_normal": lambda m: m.log_normal(torch.randn(5), 0.0, 1.0),
    "divergences.mixture_log_pdf": lambda m: m.mixture_log_pdf(torch.randn(5), W2, [-1.0, 1.0], V2),
    "divergences.sample_mixture": lambda m: m.sample_mixture(10, W2, [-1.0, 1.0], V2, g().manual_seed(0)),
    "divergences.mixture_moments": lambda m: m.mixture_moments(W2, [-1.0, 1.0], V2),
    "divergences.kl_gaussians": lambda m: m.kl_gaussians(0.0, 1.0, 0.5, 2.0),
    "divergences.trapezoid": lambda m: m.trapezoid(torch.ones(11), torch.linspace(0, 1, 11)),
    "divergences.kl_quadrature": lambda m: m.kl_quadrature(-0.5 * torch.linspace(-5, 5, 101) ** 2 - 0.9189385,
                                                          -0.5 * (torch.linspace(-5, 5, 101) - 1) ** 2 - 0.9189385,
                                                          torch.linspace(-5, 5, 101)),
    "divergences.entropy_quadrature": lambda m: m.entropy_quadrature(-0.5 * torch.linspace(-5, 5, 101) ** 2 - 0.9189385,
                                                                    torch.linspace(-5, 5, 101)),
    "divergences.isotropic_gaussian_mle": lambda m: m.isotropic_gaussian_mle(_x()),
    "divergences.isotropic_gaussian_nll": lambda m: m.isotropic_gaussian_nll(_x(), torch.zeros(2), 1.0),
    "divergences.fit_forward_kl": lambda m: m.fit_forward_kl(-0.5 * torch.linspace(-5, 5, 101) ** 2 - 0.9189385,
                                                            torch.linspace(-5, 5, 101)),
    "divergences.kl_gaussian_to_density": lambda m: m.kl_gaussian_to_density(
        0.0, 1.0, lambda x: m.mixture_log_pdf(x, W2, [-1.0, 1.0], V2)),
    "divergences.fit_reverse_kl": lambda m: m.fit_reverse_kl(lambda x: m.mixture_log_pdf(x, W2, [-1.0, 1.0], V2),
                                                            [0.0], 1.0, steps=5),
    "divergences.bimodal_fits": lambda m: m.bimodal_fits(3.0, steps=5),
    # ebm (§14.3)
    "ebm.gmm_energy": lambda m: m.gmm_energy(_x(), W2, M2, V2),
    "ebm.gmm_score": lambda m: m.gmm_score(_x(), W2, M2, V2),
    "ebm.gmm_sample": lambda m: m.gmm_sample(10, W2, M2, V2, g().manual_seed(0)),
    "ebm.quadratic_energy": lambda m: m.quadratic_energy(_x(), torch.eye(2)),
    "ebm.quadratic_log_partition": lambda m: m.quadratic_log_partition(torch.eye(2)),
    "ebm.score": lambda m: m.score(_energy, _x()),
    "ebm.grid_2d": lambda m: m.grid_2d(k=20),
    "ebm.grid_log_density": lambda m: m.grid_log_density(_energy, k=20),
    "ebm.log_partition_grid": lambda m: m.log_partition_grid(_energy, 2, k=10),
    "ebm.langevin_step": lambda m: m.langevin_step(_x(), -_x(), 0.1, torch.randn(40, 2)),
    "ebm.langevin": lambda m: m.langevin(lambda x: -x, _x(), 0.1, 5, g().manual_seed(0)),
    "ebm.histogram_2d": lambda m: m.histogram_2d(_x(), bins=10),
    "ebm.binned_probabilities": lambda m: m.binned_probabilities(_energy, bins=10, sub=2),
    "ebm.total_variation": lambda m: m.total_variation(torch.full((4,), 0.25), torch.tensor([0.1, 0.2, 0.3, 0.4])),
    "ebm.EnergyMLP": lambda m: m.EnergyMLP(2, 16, 2)(_x()),
    "ebm.dsm_loss": lambda m: m.dsm_loss(m.EnergyMLP(2, 16, 2), _x(), 0.1, g().manual_seed(0)),
    "ebm.grid_log_likelihood": lambda m: m.grid_log_likelihood(_energy, _x(), k=20),
    "ebm.JointEnergy": lambda m: _joint_energy(),
    # elbo (§14.4)
    "elbo.check_simplex": lambda m: m.check_simplex(torch.tensor([[0.3, 0.7]])),
    "elbo.categorical_entropy": lambda m: m.categorical_entropy(torch.tensor([[0.3, 0.7]])),
    "elbo.log_evidence": lambda m: m.log_evidence(torch.tensor([[-1.0, -2.0]])),
    "elbo.posterior": lambda m: m.posterior(torch.tensor([[-1.0, -2.0]])),
    "elbo.discrete_elbo": lambda m: m.discrete_elbo(torch.tensor([[-1.0, -2.0]]), torch.tensor([[0.3, 0.7]])),
    "elbo.kl_categorical": lambda m: m.kl_categorical(torch.tensor([[0.3, 0.7]]), torch.tensor([[-0.5, -0.9]])),
    "elbo.elbo_gap": lambda m: m.elbo_gap(torch.tensor([[-1.0, -2.0]]), torch.tensor([[0.3, 0.7]])),
    "elbo.gaussian_entropy": lambda m: m.gaussian_entropy(torch.eye(2)),
    "elbo.gaussian_entropy_diag": lambda m: m.gaussian_entropy_diag(torch.zeros(2)),
    "elbo.gaussian_kl": lambda m: m.gaussian_kl(torch.zeros(2), torch.eye(2), torch.ones(2), 2 * torch.eye(2)),
    "elbo.LinearGaussian": lambda m: _linear_gaussian(),
    "elbo.mixture_log_joint": lambda m: m.mixture_log_joint(_x(), W2, M2, COV2),
    "elbo.mixture_elbo": lambda m: m.mixture_elbo(_x(), torch.full((40, 2), 0.5), W2, M2, COV2),
    "elbo.em_elbo_trace": lambda m: m.em_elbo_trace(_x(), W2, M2, COV2, n_iter=2),
    # vae (§14.5)
    "vae.VAE": lambda m: (_vae().sample(3, g().manual_seed(0)), _vae().encode(torch.rand(3, 64))),
    "vae.reparameterize": lambda m: m.reparameterize(torch.zeros(3, 2), torch.ones(3), torch.randn(3, 2)),
    "vae.log_normal": lambda m: m.log_normal(torch.zeros(3, 2), torch.zeros(3, 2), torch.ones(3, 2)),
    "vae.elbo_constant": lambda m: m.elbo_constant(64),
    "vae.elbo_term": lambda m: m.elbo_term(torch.rand(3, 64), torch.rand(3, 64), torch.full((3,), 0.3),
                                           torch.randn(3, 2), torch.zeros(3, 2), torch.ones(3)),
    "vae.negative_elbo": lambda m: m.negative_elbo(_vae(), torch.rand(3, 64), torch.randn(3, 2)),
    "vae.log_weights": lambda m: m.log_weights(_vae(), torch.rand(3, 64), 2, g().manual_seed(0)),
    "vae.elbo_estimate": lambda m: m.elbo_estimate(_vae(), torch.rand(3, 64), 2, g().manual_seed(0)),
    "vae.elbo_and_iwae": lambda m: m.elbo_and_iwae(_vae(), torch.rand(3, 64), k=4, generator=g().manual_seed(0)),
    "vae.encoder_gradients": lambda m: m.encoder_gradients(_vae(), torch.rand(64), 2, 2, g().manual_seed(0)),
    "vae.make_loss": lambda m: m.make_loss(g().manual_seed(0))(_vae(), LEVELS),
    "vae.make_val_fn": lambda m: m.make_val_fn()(_vae(), LEVELS),
    "recipes.train_vae": lambda m: m.train_vae(LEVELS, LEVELS, latent_dims=2, hidden=8, depth=1, steps=3,
                                           progress=False),
    # metrics
    "metrics.bits_per_dim": lambda m: m.bits_per_dim(torch.zeros(4), 64),
    "metrics.nats_to_bits_per_dim": lambda m: m.nats_to_bits_per_dim(10.0, 64),
    "metrics.chi_square_gof": lambda m: m.chi_square_gof(torch.tensor([10.0, 20.0, 30.0]),
                                                         torch.tensor([0.2, 0.3, 0.5]), 1),
    "metrics.heldout_bits_per_dim": lambda m: m.heldout_bits_per_dim(lambda y: torch.zeros(len(y))),
    "metrics.nearest_train_distance": lambda m: m.nearest_train_distance(torch.rand(5, 64)),
    "metrics.heldout_nearest_train_distance": lambda m: m.heldout_nearest_train_distance(),
    "metrics.DigitJudge": lambda m: _judge(m),
    "metrics.record_heldout_result": lambda m: m.record_heldout_result("k", "model", torch.tensor(4.0), "14_2"),
    # scores, gaussian
    "scores.score": lambda m: m.score(_energy, _x()),
    "scores.dsm_loss": lambda m: m.dsm_loss(_energy, _x(), 0.1, generator=g().manual_seed(0)).backward(),
    "scores.langevin_step": lambda m: m.langevin_step(_x(), _x(), 0.1, _x()),
    "scores.langevin": lambda m: m.langevin(lambda x: -x, _x(), 0.1, 3, generator=g().manual_seed(0), record=(1,)),
    "scores.eps_from_score": lambda m: m.eps_from_score(_x(), 0.5),
    "scores.score_from_eps": lambda m: m.score_from_eps(_x(), torch.full((40,), 0.5)),
    "gaussian.log_normal": lambda m: m.log_normal(_x(), 0.0, 2.0),
    "gaussian.log_normal_diag": lambda m: m.log_normal_diag(_x(), torch.zeros(2), torch.ones(2), check=False),
    "gaussian.kl": lambda m: m.kl(_x(), 1.0, _x(seed=1), torch.full((2,), 2.0)).sum(-1),
    "gaussian.entropy": lambda m: m.entropy(V2),
    "gaussian.kl_full": lambda m: m.kl_full(torch.zeros(2), torch.eye(2), torch.ones(2), 2 * torch.eye(2)),
    "gaussian.entropy_full": lambda m: m.entropy_full(COV2),
    "gaussian_mixture.MixtureOfGaussians": lambda m: _mixture_value(m.MixtureOfGaussians(W2, M2, V2)),
    "gaussian_mixture.as_mixture": lambda m: m.as_mixture(m.as_mixture(W2, M2, V2), dtype=torch.float32),
    # training
    "training.train": lambda m: m.train(torch.nn.Linear(2, 1), lambda mm, x: mm(x).pow(2).mean(), _x(),
                                        steps=4, val_data=_x(), ema_decay=0.9, warmup=2, cosine=True,
                                        eval_every=2, progress=False),
    "training.EMA": lambda m: m.EMA(torch.nn.Linear(2, 1), 0.9).update(torch.nn.Linear(2, 1)),
    "training.lr_factor": lambda m: m.lr_factor(3, 10, 2, True),
    # nets
    "nets.mlp": lambda m: m.mlp(2, 8, 1, 2)(_x()),
    "nets.time_embedding": lambda m: m.time_embedding(torch.arange(1, 5), 8),
    # plots (float32 tensors in, as from run.device after .cpu())
    "plots.image_grid": lambda m: m.image_grid(torch.rand(4, 64)),
    "plots.training_curves": lambda m: m.training_curves({"step": [1, 2], "train": [1.0, 0.5], "val": [1.1, 0.6]}),
    "plots.latent_scatter": lambda m: m.latent_scatter(torch.randn(10, 2), np.arange(10) % 3),
    "plots.score_field": lambda m: m.score_field(torch.linspace(-1, 1, 5), torch.randn(5, 5), torch.randn(4, 2),
                                                 torch.randn(4, 2)),
    "plots.samples_vs_density": lambda m: m.samples_vs_density(torch.linspace(-1, 1, 5), torch.randn(5, 5),
                                                               torch.randn(20, 2)),
    "plots.energy_and_density": lambda m: m.energy_and_density(torch.linspace(-1, 1, 5), torch.rand(5, 5),
                                                               torch.randn(5, 5)),
    # widgets
    "widgets.em_stepper": lambda m: m.em_stepper(np.zeros(30), np.linspace(-2, 2, 6), np.ones(5), _em_path()),
    "widgets.latent_explorer_2d": lambda m: m.latent_explorer_2d(lambda z: torch.rand(len(z), 64)),
    "widgets.elbo_q_slider": lambda m: m.elbo_q_slider(torch.tensor([-1.0, -2.0]))[1](0.3),
    "widgets.langevin_explorer": lambda m: m.langevin_explorer(lambda x: -x, _x(), torch.full((40, 40), 1 / 1600),
                                                               3.0)[1](0.1, 5),
    "widgets.kl_asymmetry": lambda m: m.kl_asymmetry()[1](3.0, 0.4),
    "widgets.forward_schedule_explorer": lambda m: m.forward_schedule_explorer(torch.rand(4, 64) * 2 - 1)[1](100),
    "widgets.gaussian_overlap": lambda m: m.gaussian_overlap(),
    "widgets.flow_layers": lambda m: m.flow_layers([torch.randn(20, 2), torch.randn(20, 2)])[1](1),
    # flows (§15.2)
    "flows.coupling_forward": lambda m: m.coupling_forward(_x(), MASK2, _cond),
    "flows.coupling_inverse": lambda m: m.coupling_inverse(m.coupling_forward(_x(), MASK2, _cond)[0], MASK2, _cond),
    "flows.AffineCoupling": lambda m: m.AffineCoupling(2, MASK2, hidden=8).inverse(m.AffineCoupling(2, MASK2, hidden=8)(_x())[0]),
    "flows.SplineCoupling": lambda m: m.SplineCoupling(2, MASK2, hidden=8).inverse(m.SplineCoupling(2, MASK2, hidden=8)(_x())[0]),
    "flows.rational_quadratic_spline": lambda m: m.rational_quadratic_spline(
        _x(n=40, d=1)[:, 0], _x(n=40, d=6, seed=1).reshape(40, 6), _x(n=40, d=6, seed=2), _x(n=40, d=5, seed=3),
        inverse=True),
    "flows.LogitTransform": lambda m: m.LogitTransform(64).inverse(m.LogitTransform(64)(torch.rand(4, 64))[0]),
    "flows.alternating_masks": lambda m: m.alternating_masks(64, 4, "checkerboard"),
    "flows.standard_normal_log_prob": lambda m: m.standard_normal_log_prob(_x()),
    "flows.RealNVP": lambda m: _realnvp(),
    "recipes.fit_realnvp_digits": _flows_fit_digits,
    # distinguish (§15.3, Problem 15.3.2 and eq. 15.9)
    "distinguish.error_probability": lambda m: m.error_probability(torch.linspace(0, 4, 5), 1.0),
    "distinguish.error_bound": lambda m: m.error_bound(torch.linspace(0, 4, 5), 1.0),
    "distinguish.nearest_mean_error_mc": lambda m: m.nearest_mean_error_mc(1.0, 1.0, 1000, g().manual_seed(0)),
    "distinguish.noised_mixture": lambda m: m.noised_mixture(W3, MU3, VAR3, 0.5),
    "distinguish.reverse_conditional": lambda m: m.reverse_conditional(
        torch.linspace(-1, 1, 3), 0.1, lambda x: -0.5 * x ** 2, torch.linspace(-4, 4, 41)),
    "distinguish.reverse_conditional_mixture": lambda m: m.reverse_conditional_mixture(torch.linspace(-1, 1, 3), 0.1,
                                                                                       W3, MU3, VAR3),
    "distinguish.reverse_gaussian_kl": lambda m: m.reverse_gaussian_kl(torch.linspace(-1, 1, 3), 0.1, W3, MU3, VAR3,
                                                                       n_points=51),
    "distinguish.expected_reverse_kl": lambda m: m.expected_reverse_kl(0.1, W3, MU3, VAR3, n_nodes=21, n_points=51),
    "distinguish.reverse_kl_per_step": lambda m: m.reverse_kl_per_step(_schedule_5(), W3, MU3, VAR3, n_nodes=11,
                                                                       n_points=21),
    # two_sample
    "two_sample.energy_distance": lambda m: m.energy_distance(_x(), _x(seed=1)),
    "two_sample.energy_test": lambda m: m.energy_test(_x(), _x(seed=1), 20, g().manual_seed(0)),
    # diffusion (§15.3), float32 data and steps as on run.device
    "forward_diffusion.NoiseSchedule": lambda m: _schedule_calls(),
    "forward_diffusion.q_sample": lambda m: m.q_sample(_schedule(), _x(), _t(), _x(seed=1)),
    "forward_diffusion.forward_chain": lambda m: m.forward_chain(_schedule(), _x(), 10, g().manual_seed(0), keep=[0, 5, 10]),
    "forward_diffusion.terminal_kl": lambda m: m.terminal_kl(_schedule(), _x()),
    "ddpm.posterior_mean_variance": lambda m: m.posterior_mean_variance(_schedule(), _x(), _x(seed=1), _t()),
    "ddpm.predict_x0": lambda m: m.predict_x0(_schedule(), _x(), _t(), _x(seed=1)),
    "ddpm.reverse_mean": lambda m: m.reverse_mean(_schedule(), _x(seed=1), _x(), _t()),
    "ddpm.reverse_variance": lambda m: (m.reverse_variance(_schedule(), _t(), _x()),
                                             m.reverse_variance(_schedule(), _t(), _x(), "beta")),
    "ddpm.ddpm_step": lambda m: (m.ddpm_step(_schedule(), _x(seed=1), _x(), _t(), _x(seed=2)),
                                      m.ddpm_step(_schedule(), _x(seed=1), _x(), _t(), _x(seed=2), "beta", True)),
    "ddpm.ddpm_loss": lambda m: m.ddpm_loss(_schedule(), _denoiser(), _x(), _t(), _x(seed=1)).backward(),
    "ddpm.elbo_weight": lambda m: (m.elbo_weight(_schedule(), _t(), like=_x()), m.elbo_weight(_schedule(), _t(), "beta")),
    "ddpm.timesteps": lambda m: m.timesteps(50, 7),
    "ddpm.respace": lambda m: m.respace(_schedule(), m.timesteps(50, 7)),
    "ddpm.sample": _diffusion_sample,
    "ddpm.variational_bound": lambda m: m.variational_bound(_schedule(), _denoiser(), _x(8), n_t=4,
                                                                 generator=g().manual_seed(0)),
    "forward_diffusion.noisy_mixture": lambda m: m.noisy_mixture(0.5, W2, M2, V2),
    "recipes.fit_ddpm_digits": lambda m: m.fit_ddpm_digits(steps=2, T=20, hidden=8, blocks=1, batch_size=16, warmup=1,
                                                   eval_every=1, progress=False),
    "recipes.ddpm_weight": lambda m: [m.ddpm_weight(_schedule(), _t(), _x(), w) for w in m.WEIGHTINGS],
    "ddpm.eps_from_prediction": lambda m: [m.eps_from_prediction(_schedule(), _x(seed=1), _x(), _t(), p)
                                           for p in m.PREDICTIONS],
    "ddpm.EpsilonFrom": lambda m: m.EpsilonFrom(_denoiser(), _schedule(), "v")(_x(), _t()).sum().backward(),
    "ddpm.min_snr_weight": lambda m: (m.min_snr_weight(_schedule(), _t(), 5.0), m.min_snr_weight(_schedule(), _t(), like=_x())),
    "ddpm.ddim_step": lambda m: m.ddim_step(_schedule(), _x(seed=1), _x(), _t(), _t() - 1),
    "ddpm.ddim_sample": lambda m: m.ddim_sample(_schedule(), _denoiser(), (8, 2), 5, generator=g().manual_seed(0)),
    # denoisers, guidance (eq. 15.12)
    "denoisers.ResidualDenoiser": lambda m: _residual_denoiser(),
    "guidance.cfg_combine": lambda m: (m.cfg_combine(_x(), _x(seed=1), 3.0),
                                       m.cfg_combine(_x(), _x(seed=1), torch.full((40, 1), 2.0))),
    "guidance.guided_eps": lambda m: _guided_sample(),
    "guidance.null_labels": lambda m: m.null_labels(torch.arange(40) % 3, 3, 0.2, g().manual_seed(0)),
    # issue 18/19/22 additions
    "data.nearest_moon": lambda m: m.nearest_moon(_x()),
    "ebm.ml_grid_loss": lambda m: m.ml_grid_loss(m.EnergyMLP(2, 16, 2), _x(), k=8, generator=g().manual_seed(0)).backward(),
    "ebm.cd_loss": lambda m: m.cd_loss(m.EnergyMLP(2, 16, 2), _x(), _x(seed=1)).backward(),
    "ebm.energy_penalty": lambda m: m.energy_penalty(_energy, _x(), _x(seed=1)),
    "ebm.region_masses": lambda m: m.region_masses(_energy, lambda x: (x[:, 0] > 0).long(), 2, k=10),
    "ebm.PersistentChains": lambda m: m.PersistentChains(8, 2, steps=2, generator=g().manual_seed(0)).advance(_energy),
    "vae.kl_to_prior": lambda m: m.kl_to_prior(torch.zeros(3, 2), torch.ones(3)),
    "vae.sample_log_weights": lambda m: m.sample_log_weights(_vae(), torch.rand(3, 64), 3),
    "vae.iwae_bounds": lambda m: m.iwae_bounds(torch.randn(6, 3), [1, 2]),
    "vae.rate_distortion": lambda m: m.rate_distortion(_vae(), torch.rand(3, 64), 2),
    "vae.fit_posterior": lambda m: m.fit_posterior(_vae(), torch.rand(3, 64), steps=2, lr=0.05, s=2),
    "vae.wrap_networks": lambda m: m.wrap_networks(_vae(), 64, 2),
    "flows.squeeze": lambda m: m.squeeze(torch.rand(3, 64), 8),
    "flows.unsqueeze": lambda m: m.unsqueeze(torch.rand(3, 4, 4, 4)),
    "flows.InvertibleConv1x1": lambda m: m.InvertibleConv1x1(4)(torch.rand(3, 4, 4, 4)),
    "recipes.fit_made_digits": lambda m: m.fit_made_digits(hidden=(64,), steps=2, batch_size=16, eval_every=1,
                                                           progress=False),
    "autoregressive.made_mask": lambda m: m.made_mask(torch.tensor([1, 2, 3]), torch.tensor([1, 2, 1, 2])),
    "autoregressive.made_degrees": lambda m: m.made_degrees(3, (4,)),
    "autoregressive.MaskedLinear": lambda m: m.MaskedLinear(3, 4, torch.ones(4, 3))(torch.rand(2, 3)),
    "autoregressive.MADE": lambda m: m.MADE(4, 3, (8,)).log_prob(torch.rand(2, 4)),
    "autoregressive.nll_bits_per_dim": lambda m: m.nll_bits_per_dim(m.MADE(4, 3, (8,)), torch.tensor([[0, 1, 2, 0]])),
    "autoregressive.sample": lambda m: m.sample(m.MADE(4, 3, (8,)), 2, g().manual_seed(0)),
    # bench (lesson 15_9)
    "bench.budgets": lambda m: m.budgets(flow_steps=5),
    "bench.scoreboard": _scoreboard,
    "bench.write_json": _bench_json,
}

# Public names not called above, with the reason.
NOT_CALLED = {
    "mixture.GaussianMixture": "called through fit/predict/score/sample/bic above",
    "training.TrainResult": "a dataclass returned by train (called above)",
    "plots.mixture_density_1d": "float64 parameters from a cpu_float64 fit; drawn by widgets.em_stepper",
    "plots.kl_fits": "drawn by widgets.kl_asymmetry",
    "plots.elbo_sweep": "drawn by widgets.elbo_q_slider",
    "plots.elbo_bars": "drawn by widgets.elbo_q_slider",
    "plots.elbo_contour": "takes NumPy grids from the notebook",
    "plots.em_staircase": "takes the dict of elbo.em_elbo_trace (called above)",
    "plots.variance_vs_samples": "takes NumPy arrays of variances",
    "moments.MomentFit": "a dataclass returned by method_of_moments (called above)",
    "bench.render_table": "called by bench.scoreboard's entry above",
    "bench.bar_chart": "called by bench.scoreboard's entry above",
    "bench.read_json": "called by bench.write_json's entry above",
    "bench.ddpm_curve": "trains the digits DDPM and samples 1000 steps (the GPU script); tests/test_bench.py runs it small",
    "bench.write_curve": "writes ddpm_curve's JSON (tests/test_bench.py)",
    "bench.read_curve": "reads ddpm_curve's JSON (tests/test_bench.py)",
    "bench.peers": "the instructor's peer benchmarks (python -m companion_lib.bench peers), not a notebook's",
    "bench.main": "the command line (python -m companion_lib.bench)",
}


def _public(module):
    mod = importlib.import_module(f"companion_lib.{module}")
    return sorted(f"{module}.{name}" for name, obj in vars(mod).items()
                  if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
                  and getattr(obj, "__module__", "") == mod.__name__)


def test_every_public_function_is_listed():
    missing = [name for module in MODULES for name in _public(module)
               if name not in CALLS and name not in NOT_CALLED]
    assert not missing, f"add these to CALLS (or NOT_CALLED with a reason): {missing}"
    stale = [name for name in CALLS if name.split(".")[0] not in MODULES]
    assert not stale


@pytest.mark.parametrize("name", sorted(CALLS))
def test_runs_under_the_no_float64_stand_in(name):
    module = importlib.import_module(f"companion_lib.{name.split('.')[0]}")
    torch.manual_seed(0)
    try:
        with settings.no_float64():
            CALLS[name](module)
    finally:
        plt.close("all")
