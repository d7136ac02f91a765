"""A bad-input fuzz of every public callable of ``companion_lib`` (each module's ``__all__``).

For every callable a *valid* call is built from ``SPECS`` (example arguments, by callable) and checked to
succeed first, so the table cannot rot silently. Then each argument in turn is replaced by each bad kind
that fits its example (``None``, a str or dict, one dimension more or less, a wrong trailing size, a NaN,
an inf, NumPy for a tensor and the other way round, an empty input, a float / 2-D / wrong-length mask,
…). Each bad call must raise a ``ValueError``/``TypeError`` whose message names the argument. A raw error
from inside torch or NumPy (``IndexError``, ``RuntimeError``, ``AttributeError`` …), a ``ValueError`` /
``TypeError`` that does not name the argument, a silent accept, or a NaN/inf output fails.

``hypothesis`` (derandomized, a few examples) draws where the bad value goes: which entry becomes NaN or
inf, how many extra columns a wrong shape gets. Every (callable, argument, kind) is tried in every example.

Failures in modules owned by another part of issue 16 are tolerated per module in
``PENDING_OTHER_HELPERS`` (the lead empties it at integration); the test prints a summary per module.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import os
import pkgutil
import random
from collections import Counter, defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings, strategies as st  # noqa: E402

import companion_lib  # noqa: E402

F32, F64 = torch.float32, torch.float64

# Modules owned by other helpers of issue 16 (plots/widgets → viz; gaussian, divergences, elbo, ebm,
# diffusion, distinguish, bench → the mathematics reorganisation; grading → the autograder package).
# Their failures are reported, not fatal, until the lead empties this set at integration.
PENDING_OTHER_HELPERS: set[str] = set()

# Failures not fixed yet, tolerated per (module, verdict) and reported; empty: every bad call in the
# modules outside PENDING_OTHER_HELPERS is rejected by name (or listed, with its reason, in ALLOWED).
NOT_YET_FIXED: set[tuple[str, str]] = set()

# Deprecated façades (re-export shims) → the modules that now hold their names. A façade's name that is
# the same object as in one of those modules is fuzzed there (``test_facades_reexport_the_same_objects``
# asserts that every one is); anything else in a façade needs its own SPECS row.
FACADES = {"diffusion": ("forward_diffusion", "ddpm"), "plots": ("viz.common", "viz.ch14", "viz.ch15"),
           "widgets": ("viz.widgets",)}

# Modules that are not a public API of functions: the autograder (moved to a package by another
# helper; its public names run notebooks) and data files.
SKIP_MODULES = {"grade", "grading", "problems", "datasets"}

# The autograder's student-facing API is fuzzed like the rest (the rest of ``grading`` is instructor
# tooling); ``check`` never raises by design, so there a bad problem id or answer must give a failing
# (falsy) Result instead of an error. The fuzz restores the grader's history and hint tiers afterwards.
GRADING_API = ("check", "progress", "hint")
NEVER_RAISES = {"grading.check": "check grades anything: a bad id or answer is a failing Result"}

# Callables too slow (training, data loading) or with no argument to fuzz; reason given.
SKIP = {
    "bench.scoreboard": "trains every model",
    "bench.peers": "trains reference flows",
    "recipes.fit_realnvp_digits": "trains a flow",
    "recipes.fit_ddpm_digits": "trains a denoiser",
    "recipes.train_vae": "trains a VAE",
    "recipes.fit_made_digits": "trains a MADE",
    "metrics.DigitJudge": "trains a classifier",
    "metrics.heldout_bits_per_dim": "runs a model over the held-out set",
    "metrics.heldout_nearest_train_distance": "no arguments",
    "data.heldout_digits": "no arguments",
    "settings.setup": "changes global state (threads, seeds)",
    "colab.report": "reads installed packages' metadata and prints (bad input: test_colab_cell)",
    "colab.unmet_requirements": "reads installed packages' metadata (bad input: test_colab_cell)",
    "settings.set_threads": "changes global state (threads)",
    "settings.seed_everything": "changes global state (seeds)",
    "settings.no_float64": "a context manager changing global state",
    "settings.cpu_float64": "a context manager",
    "settings.get_device": "no arguments",
    "settings.get_mode": "no arguments",
    "settings.is_quick": "no arguments",
    "settings.float64_allowed": "no arguments",
    "settings.no_float64_active": "no arguments",
    "training.train": "trains a model (its checks are tested in test_training)",
    "metrics.record_heldout_result": "writes a results file",
    "training.TrainResult": "a record (dataclass) of a training run",
    "settings.NoFloat64Error": "an exception class",
    "settings.NoFloat64ArithmeticError": "an exception class",
    "bench.write_json": "writes a file",
    "bench.ddpm_curve": "trains a denoiser per length",
    "bench.write_curve": "writes a file",
    "bench.read_curve": "reads a file",
    "bench.read_json": "reads a file",
    "bench.render_table": "formats rows that bench.scoreboard checked",
    "bench.bar_chart": "writes a figure file",
    "viz.ch15.bar_chart": "writes a figure file (bench's scoreboard checks its rows)",
    "widgets.em_stepper": "builds ipywidgets (see test_bad_input)",
    "widgets.latent_explorer_2d": "builds ipywidgets",
    "widgets.elbo_q_slider": "builds ipywidgets",
    "widgets.langevin_explorer": "builds ipywidgets",
    "widgets.kl_asymmetry": "builds ipywidgets",
    "widgets.forward_schedule_explorer": "builds ipywidgets",
    "widgets.gaussian_overlap": "builds ipywidgets",
    "widgets.flow_layers": "builds ipywidgets",
    **{f"viz.widgets.{n}": "builds ipywidgets (see test_viz)" for n in (
        "elbo_q_slider", "em_stepper", "flow_layers", "forward_schedule_explorer", "gaussian_overlap",
        "kl_asymmetry", "langevin_explorer", "latent_explorer_2d", "sliders_with_figure")},
}


# ---------------------------------------------------------------- example arguments
def _t(*shape, dtype=F64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


W3 = torch.tensor([0.3, 0.3, 0.4], dtype=F64)
MU3 = torch.tensor([[-1.0, -0.5], [1.0, -0.5], [0.0, 0.9]], dtype=F64)
VAR3 = torch.tensor([0.25, 0.15, 0.2], dtype=F64)
X2 = _t(6, 2)
W1D = torch.tensor([0.4, 0.6], dtype=F64)
MU1D = torch.tensor([-1.0, 1.0], dtype=F64)
VAR1D = torch.tensor([0.5, 0.8], dtype=F64)
COV = torch.stack([torch.eye(2, dtype=F64) * v for v in (0.5, 0.7)])
RESP = torch.softmax(_t(6, 2), dim=1)
MASK4 = torch.tensor([True, False, True, False])
GRID = torch.linspace(-6, 6, 101, dtype=F64)
LOGP = -0.5 * GRID ** 2 - 0.5 * np.log(2 * np.pi)
LOGQ = -0.5 * (GRID - 0.5) ** 2 - 0.5 * np.log(2 * np.pi)
LOG_JOINT = torch.log(torch.tensor([[0.2, 0.3], [0.1, 0.4]], dtype=F64))
Q2 = torch.tensor([[0.5, 0.5], [0.3, 0.7]], dtype=F64)
STEPS = torch.tensor([1, 3, 5, 10])


def _cond(za):
    return torch.zeros_like(za).repeat(1, 1), torch.zeros_like(za)


def _energy(x):
    return 0.5 * (x ** 2).sum(-1)


def _score(x):
    return -x


def _lazy(fn):
    """A value built when the spec is used (modules imported lazily)."""
    fn._lazy = True
    return fn


def _sched():
    from companion_lib import forward_diffusion
    return forward_diffusion.NoiseSchedule.linear(10)


def _vae():
    from companion_lib import vae
    torch.manual_seed(0)
    return vae.VAE(n_dims=8, latent_dims=2, hidden=8, depth=1)


def _lin():
    from companion_lib import elbo
    return elbo.LinearGaussian(torch.eye(3, 2, dtype=F64), torch.zeros(3, dtype=F64), 0.5)


def _eps_model():
    from companion_lib import denoisers
    torch.manual_seed(0)
    return denoisers.ResidualDenoiser(dim=4, hidden=8, blocks=1, emb_dim=8)


def _made():
    from companion_lib import autoregressive
    torch.manual_seed(0)
    return autoregressive.MADE(n_dims=4, levels=3, hidden=(8,))


def _grading():
    from companion_lib import grading
    return grading


@contextlib.contextmanager
def _grading_state_kept():
    """What check/hint record (the history, the hint tiers revealed), restored on the way out."""
    from companion_lib.grading import feedback
    history, tiers = list(feedback.HISTORY), dict(feedback._HINT_LEVEL)
    try:
        yield
    finally:
        feedback.HISTORY[:] = history
        feedback._HINT_LEVEL.clear()
        feedback._HINT_LEVEL.update(tiers)


def _eps_fn(x, t):
    return torch.zeros_like(x)


# SPECS[name] = keyword arguments of a valid call. A class's entry constructs it; "Class.method" entries
# call the method on an instance built from the class's entry (or from INSTANCES).
SPECS = {
    # ---------------------------------------------------------------- mixture
    "mixture.gaussian_mle": dict(X=X2),
    "mixture.log_gaussian": dict(X=X2, means=MU3[:2], covariances=COV),
    "mixture.e_step": dict(X=X2, weights=W1D, means=MU3[:2], covariances=COV),
    "mixture.responsibilities": dict(x=GRID[:7], weights=W1D, means=MU1D, variances=VAR1D),
    "mixture.m_step": dict(X=X2, resp=RESP),
    "mixture.GaussianMixture": dict(n_components=2, max_iter=5),
    "mixture.GaussianMixture.fit": dict(X=_t(20, 2)),
    "mixture.GaussianMixture.score_samples": dict(X=X2),
    "mixture.em_path": dict(X=X2, weights=W1D, means=MU3[:2], covariances=COV, n_iter=2),
    "mixture.cdf_1d": dict(x=GRID[:7], weights=W1D, means=MU1D, variances=VAR1D),
    # ---------------------------------------------------------------- flows
    "flows.coupling_forward": dict(z=_t(5, 4, dtype=F32), mask=MASK4, conditioner=_cond),
    "flows.coupling_inverse": dict(z_next=_t(5, 4, dtype=F32), mask=MASK4, conditioner=_cond),
    "flows.AffineCoupling": dict(dim=4, mask=MASK4, hidden=8, depth=1),
    "flows.AffineCoupling.forward": dict(z=_t(5, 4, dtype=F32)),
    "flows.AffineCoupling.inverse": dict(z_next=_t(5, 4, dtype=F32)),
    "flows.LogitTransform": dict(dim=4),
    "flows.LogitTransform.forward": dict(y=torch.rand(5, 4)),
    "flows.RealNVP": dict(dim=4, n_layers=2, hidden=8, depth=1),
    "flows.RealNVP.log_prob": dict(x=_t(5, 4, dtype=F32)),
    "flows.RealNVP.sample": dict(n=3),
    "flows.alternating_masks": dict(dim=4, n_layers=2),
    "flows.standard_normal_log_prob": dict(z=_t(5, 4, dtype=F32)),
    "flows.squeeze": dict(x=_t(3, 64, dtype=F32), side=8),
    "flows.unsqueeze": dict(z=_t(3, 4, 4, 4, dtype=F32)),
    "flows.InvertibleConv1x1": dict(channels=4),
    "flows.rational_quadratic_spline": dict(x=_t(5, dtype=F32), widths=_t(5, 4, dtype=F32), heights=_t(5, 4, dtype=F32, seed=1),
                                            derivatives=_t(5, 3, dtype=F32, seed=2)),
    "flows.SplineCoupling": dict(dim=4, mask=MASK4, bins=4, hidden=8, depth=1),
    "flows.SplineCoupling.forward": dict(z=_t(5, 4, dtype=F32)),
    "flows.SplineCoupling.inverse": dict(z_next=_t(5, 4, dtype=F32)),
    "flows.InvertibleConv1x1.forward": dict(x=_t(3, 4, 4, 4, dtype=F32)),
    "flows.InvertibleConv1x1.inverse": dict(y=_t(3, 4, 4, 4, dtype=F32)),
    # ---------------------------------------------------------------- vae
    "vae.VAE": dict(n_dims=8, latent_dims=2, hidden=8, depth=1),
    "vae.VAE.encode": dict(x=torch.rand(3, 8)),
    "vae.VAE.decode": dict(z=_t(3, 2, dtype=F32)),
    "vae.reparameterize": dict(mu=_t(3, 2), sigma=torch.ones(3, 1, dtype=F64), eps=_t(3, 2, seed=1)),
    "vae.log_normal": dict(x=_t(3, 2), mu=_t(3, 2, seed=1), sigma=torch.ones(3, 1, dtype=F64)),
    "vae.elbo_term": dict(x=_t(3, 8), mu_dec=_t(3, 8, seed=1), sigma_dec=torch.ones(3, dtype=F64), z=_t(3, 2),
                          mu_enc=_t(3, 2, seed=2), sigma_enc=torch.ones(3, dtype=F64)),
    "vae.elbo_constant": dict(n_dims=8),
    "vae.log_weights": dict(model=_lazy(_vae), y=torch.rand(3, 8), s=2),
    "vae.elbo_estimate": dict(model=_lazy(_vae), y=torch.rand(3, 8), s=2),
    "vae.elbo_and_iwae": dict(model=_lazy(_vae), y=torch.rand(3, 8), k=3),
    "vae.encoder_gradients": dict(model=_lazy(_vae), y=torch.rand(8), s=2, repeats=2),
    "vae.negative_elbo": dict(model=_lazy(_vae), y=torch.rand(3, 8), eps=_t(3, 2, dtype=F32)),
    "vae.wrap_networks": dict(networks=_lazy(_vae), n_dims=8, latent_dims=2),
    "vae.sample_log_weights": dict(model=_lazy(_vae), y=torch.rand(3, 8), k=3),
    "vae.iwae_bounds": dict(log_w=_t(6, 3), ks=[1, 2]),
    "vae.kl_to_prior": dict(mu=_t(3, 2), sigma=torch.ones(3, dtype=F64)),
    "vae.rate_distortion": dict(model=_lazy(_vae), y=torch.rand(3, 8), k=2),
    "vae.fit_posterior": dict(model=_lazy(_vae), y=torch.rand(3, 8), steps=2, lr=0.05, s=2),
    "vae.make_loss": dict(s=1),
    "vae.make_val_fn": dict(s=1),
    # ---------------------------------------------------------------- data
    "data.load_pearson_crabs": dict(reading="value"),
    "data.load_leptograpsus_crabs": dict(log=False),
    "data.load_digits_split": dict(validation=True),
    "data.dequantize": dict(x=torch.randint(0, 17, (3, 8))),
    "data.to_unit": dict(levels_x=torch.randint(0, 17, (3, 8)).double()),
    "data.unit_to_signed": dict(y=torch.rand(3, 8)),
    "data.signed_to_unit": dict(x=torch.rand(3, 8) * 2 - 1),
    "data.from_unit": dict(y=torch.rand(3, 8)),
    "data.dequantized_bits_per_dim": dict(log_p=-torch.rand(3) * 10, n_dims=8),
    "data.make_toy_2d": dict(name="moons", n_samples=20),
    # ---------------------------------------------------------------- metrics
    "metrics.bits_per_dim": dict(log_prob=-torch.rand(5) * 50, n_dims=64),
    "metrics.nats_to_bits_per_dim": dict(nats_per_sample=50.0, n_dims=64),
    "metrics.nearest_train_distance": dict(samples=np.random.default_rng(0).integers(0, 17, (3, 64)).astype(float)),
    "metrics.chi_square_gof": dict(counts=np.array([30.0, 40.0, 30.0]), probs=np.array([0.3, 0.4, 0.3]), n_params=0),
    # ---------------------------------------------------------------- nets, training, scores, moments
    "nets.mlp": dict(n_in=2, hidden=8, n_out=3, depth=2),
    "nets.time_embedding": dict(t=STEPS, dim=8),
    "training.EMA": dict(model=_lazy(lambda: torch.nn.Linear(2, 2)), decay=0.9),
    "training.EMA.decay_at": dict(t=3),
    "training.lr_factor": dict(step=3, steps=10, warmup=2),
    "scores.score": dict(energy_fn=_energy, x=X2),
    "scores.dsm_loss": dict(energy_fn=_energy, x=X2, sigma=0.1, generator=torch.Generator().manual_seed(0)),
    "scores.langevin_step": dict(x=X2, score=-X2, step_size=0.1, noise=_t(6, 2, seed=1)),
    "scores.langevin": dict(score_fn=_score, x0=X2, step_size=0.1, n_steps=3,
                            generator=torch.Generator().manual_seed(0)),
    "scores.eps_from_score": dict(score_xt=X2, one_minus_alpha_bar=0.5),
    "scores.score_from_eps": dict(eps=X2, one_minus_alpha_bar=0.5),
    "moments.normal_raw_moments": dict(mean=0.5, sd=1.2, order=4),
    "moments.mixture_raw_moments": dict(weight=0.4, means=np.array([-1.0, 1.0]), sds=np.array([0.5, 0.8]), order=4),
    "moments.MomentFit": dict(weight=0.4, means=np.array([-1.0, 1.0]), sds=np.array([0.5, 0.8]), sixth_moment_error=0.1),
    "moments.method_of_moments": dict(x=np.random.default_rng(0).normal(size=200), n_starts=3),
    # ---------------------------------------------------------------- two_sample, denoisers, guidance, settings
    "two_sample.energy_distance": dict(x=X2, y=_t(5, 2, seed=3)),
    "two_sample.energy_test": dict(x=X2, y=_t(5, 2, seed=3), n_permutations=5,
                                   generator=torch.Generator().manual_seed(0)),
    "denoisers.ResidualDenoiser": dict(dim=4, hidden=8, blocks=1, emb_dim=8, n_classes=3),
    "denoisers.ResidualDenoiser.forward": dict(x=_t(4, 4, dtype=F32), t=STEPS, c=torch.tensor([0, 1, 2, 3])),
    "guidance.cfg_combine": dict(eps_cond=X2, eps_uncond=_t(6, 2, seed=1), w=2.0),
    "guidance.guided_eps": dict(model=_lazy(lambda: _eps_model()), labels=torch.tensor([0, 1, 0, 1]), w=2.0,
                                null_label=2),
    "guidance.null_labels": dict(labels=torch.tensor([0, 1, 0, 1]), null_label=2, p=0.5,
                                 generator=torch.Generator().manual_seed(0)),
    "settings.check_same_device": dict(model=_lazy(lambda: torch.nn.Linear(2, 2)), tensors=(torch.zeros(2),)),
    "settings.budget": dict(quick=1, full=2),
    "settings.Run": dict(device=torch.device("cpu"), mode="quick", seed=0, threads=1,
                         generator=torch.Generator().manual_seed(0)),
    "settings.Run.budget": dict(quick=1, full=2),
    # ---------------------------------------------------------------- other helpers' modules
    "gaussian.log_normal": dict(x=X2, mean=0.0, var=1.0),
    "gaussian.log_normal_diag": dict(x=X2, mean=torch.zeros(2, dtype=F64), var=torch.ones(2, dtype=F64)),
    "gaussian.kl": dict(mean1=_t(3, 2), var1=torch.ones(3, 2, dtype=F64), mean2=_t(3, 2, seed=1),
                        var2=2 * torch.ones(3, 2, dtype=F64)),
    "gaussian.entropy": dict(var=VAR3),
    "gaussian.entropy_full": dict(cov=COV),
    "gaussian.kl_full": dict(m1=torch.zeros(2, dtype=F64), S1=torch.eye(2, dtype=F64), m2=torch.ones(2, dtype=F64),
                             S2=2 * torch.eye(2, dtype=F64)),
    "divergences.mixture_log_pdf": dict(x=GRID, weights=W1D, means=MU1D, variances=VAR1D),
    "divergences.sample_mixture": dict(n=5, weights=W1D, means=MU1D, variances=VAR1D,
                                       generator=torch.Generator().manual_seed(0)),
    "divergences.mixture_moments": dict(weights=W1D, means=MU1D, variances=VAR1D),
    "divergences.kl_gaussians": dict(mu1=0.0, var1=1.0, mu2=0.5, var2=2.0),
    "divergences.trapezoid": dict(values=torch.exp(LOGP), grid=GRID),
    "divergences.kl_quadrature": dict(log_p=LOGP, log_q=LOGQ, grid=GRID),
    "divergences.entropy_quadrature": dict(log_p=LOGP, grid=GRID),
    "divergences.isotropic_gaussian_mle": dict(X=X2),
    "divergences.isotropic_gaussian_nll": dict(X=X2, mean=torch.zeros(2, dtype=F64), var=1.0),
    "divergences.fit_forward_kl": dict(log_p=LOGP, grid=GRID),
    "divergences.kl_gaussian_to_density": dict(mean=0.0, var=1.0, log_p_fn=lambda x: -0.5 * x ** 2, n_points=101),
    "divergences.fit_reverse_kl": dict(log_p_fn=lambda x: -0.5 * x ** 2, inits=torch.tensor([0.5]), init_var=1.0,
                                       steps=3),
    "divergences.bimodal_fits": dict(separation=2.0, steps=3, grid=GRID),
    "ebm.gmm_energy": dict(x=X2, weights=W3, means=MU3, variances=VAR3),
    "ebm.gmm_score": dict(x=X2, weights=W3, means=MU3, variances=VAR3),
    "ebm.gmm_sample": dict(n=5, weights=W3, means=MU3, variances=VAR3, generator=torch.Generator().manual_seed(0)),
    "ebm.quadratic_energy": dict(x=X2, precision=torch.eye(2, dtype=F64)),
    "ebm.quadratic_log_partition": dict(precision=torch.eye(2, dtype=F64)),
    "ebm.grid_2d": dict(lim=3.0, k=5),
    "ebm.grid_log_density": dict(energy_fn=_energy, lim=3.0, k=5),
    "ebm.log_partition_grid": dict(energy_fn=_energy, d=2, k=5),
    "ebm.histogram_2d": dict(x=X2, bins=5),
    "ebm.binned_probabilities": dict(energy_fn=_energy, bins=4, sub=2),
    "ebm.total_variation": dict(p=np.array([0.5, 0.5]), q=np.array([0.3, 0.7])),
    "ebm.EnergyMLP": dict(dim=2, hidden=8, depth=1),
    "ebm.EnergyMLP.forward": dict(x=_t(6, 2, dtype=F32)),
    "ebm.grid_log_likelihood": dict(energy_fn=_energy, x=X2, k=5),
    "ebm.JointEnergy": dict(centres=MU3[:2], sigma2=0.5, biases=torch.zeros(2, dtype=F64)),
    "ebm.JointEnergy.energy": dict(x=X2, h=1),
    "elbo.check_simplex": dict(q=Q2),
    "elbo.categorical_entropy": dict(q=Q2),
    "elbo.log_evidence": dict(log_joint=LOG_JOINT),
    "elbo.posterior": dict(log_joint=LOG_JOINT),
    "elbo.discrete_elbo": dict(log_joint=LOG_JOINT, q=Q2),
    "elbo.kl_categorical": dict(q=Q2, log_p=torch.log(Q2.flip(1))),
    "elbo.elbo_gap": dict(log_joint=LOG_JOINT, q=Q2),
    "elbo.gaussian_entropy": dict(cov=torch.eye(2, dtype=F64)),
    "elbo.gaussian_entropy_diag": dict(log_var=torch.zeros(2, dtype=F64)),
    "elbo.gaussian_kl": dict(m1=torch.zeros(2, dtype=F64), S1=torch.eye(2, dtype=F64), m2=torch.ones(2, dtype=F64),
                             S2=2 * torch.eye(2, dtype=F64)),
    "elbo.LinearGaussian": dict(W=torch.eye(3, 2, dtype=F64), b=torch.zeros(3, dtype=F64), sigma2=0.5),
    "elbo.LinearGaussian.log_px": dict(x=_t(4, 3)),
    "elbo.mixture_log_joint": dict(X=X2, weights=W1D, means=MU3[:2], covariances=COV),
    "elbo.mixture_elbo": dict(X=X2, q=RESP, weights=W1D, means=MU3[:2], covariances=COV),
    "elbo.em_elbo_trace": dict(X=X2, weights=W1D, means=MU3[:2], covariances=COV, n_iter=2),
    "forward_diffusion.NoiseSchedule": dict(betas=torch.linspace(1e-3, 0.2, 10, dtype=F64)),
    "forward_diffusion.q_sample": dict(schedule=_lazy(_sched), x0=_t(4, 3), t=STEPS, noise=_t(4, 3, seed=1)),
    "forward_diffusion.forward_chain": dict(schedule=_lazy(_sched), x0=_t(4, 3), t=5, generator=torch.Generator().manual_seed(0)),
    "forward_diffusion.terminal_kl": dict(schedule=_lazy(_sched), x0=_t(4, 3)),
    "ddpm.posterior_mean_variance": dict(schedule=_lazy(_sched), x0=_t(4, 3), xt=_t(4, 3, seed=1), t=STEPS),
    "ddpm.predict_x0": dict(schedule=_lazy(_sched), xt=_t(4, 3), t=STEPS, eps=_t(4, 3, seed=1)),
    "ddpm.reverse_mean": dict(schedule=_lazy(_sched), eps=_t(4, 3, seed=1), xt=_t(4, 3), t=STEPS),
    "ddpm.reverse_variance": dict(schedule=_lazy(_sched), t=STEPS, like=_t(4, 3)),
    "ddpm.ddpm_step": dict(schedule=_lazy(_sched), eps=_t(4, 3, seed=1), xt=_t(4, 3), t=STEPS,
                                noise=_t(4, 3, seed=2)),
    "ddpm.ddpm_loss": dict(schedule=_lazy(_sched), eps_model=_eps_fn, x0=_t(4, 3), t=STEPS,
                                noise=_t(4, 3, seed=2)),
    "ddpm.timesteps": dict(T=10, n_steps=5),
    "ddpm.respace": dict(schedule=_lazy(_sched), steps=[1, 5, 10]),
    "ddpm.sample": dict(schedule=_lazy(_sched), eps_fn=_eps_fn, shape=(3, 2),
                             generator=torch.Generator().manual_seed(0)),
    "ddpm.variational_bound": dict(schedule=_lazy(_sched), eps_fn=_eps_fn, x0=_t(4, 3), n_t=3,
                                        generator=torch.Generator().manual_seed(0)),
    "forward_diffusion.noisy_mixture": dict(alpha_bar=0.5, weights=W1D, means=MU3[:2], variances=VAR1D),
    "distinguish.error_probability": dict(t=torch.tensor([0.5, 1.0], dtype=F64), sigma=1.0),
    "distinguish.error_bound": dict(t=torch.tensor([0.5, 1.0], dtype=F64), sigma=1.0),
    "distinguish.nearest_mean_error_mc": dict(t=1.0, n=100, generator=torch.Generator().manual_seed(0)),
    "distinguish.noised_mixture": dict(weights=W1D, means=MU1D, variances=VAR1D, alpha_bar=0.5),
    "distinguish.reverse_conditional": dict(x_t=torch.tensor([0.3, -0.2], dtype=F64), beta=0.1,
                                            log_prior=lambda g: -0.5 * g ** 2, grid=GRID),
    "distinguish.reverse_conditional_mixture": dict(x_t=torch.tensor([0.3, -0.2], dtype=F64), beta=0.1, weights=W1D, means=MU1D, variances=VAR1D),
    "distinguish.reverse_gaussian_kl": dict(x_t=torch.tensor([0.3, -0.2], dtype=F64), beta=0.1, weights=W1D, means=MU1D, variances=VAR1D,
                                            n_points=51),
    "distinguish.expected_reverse_kl": dict(beta=0.1, weights=W1D, means=MU1D, variances=VAR1D, n_nodes=11,
                                            n_points=51),
    "ddpm.elbo_weight": dict(schedule=_lazy(_sched), t=STEPS, sigma="posterior", like=_t(4, 3)),
    "ddpm.eps_from_prediction": dict(schedule=_lazy(_sched), out=_t(4, 3, seed=1), xt=_t(4, 3), t=STEPS,
                                     prediction="v"),
    "ddpm.EpsilonFrom": dict(net=_lazy(_eps_model), schedule=_lazy(_sched), prediction="v"),
    "ddpm.EpsilonFrom.forward": dict(xt=_t(4, 4, dtype=F32), t=STEPS),
    "ddpm.min_snr_weight": dict(schedule=_lazy(_sched), t=STEPS, gamma=5.0, like=_t(4, 3)),
    "ddpm.ddim_step": dict(schedule=_lazy(_sched), eps=_t(4, 3, seed=1), xt=_t(4, 3), t=STEPS,
                           t_prev=STEPS - 1),
    "ddpm.ddim_sample": dict(schedule=_lazy(_sched), eps_fn=_eps_fn, shape=(3, 2), n_steps=4,
                             generator=torch.Generator().manual_seed(0)),
    "recipes.ddpm_weight": dict(schedule=_lazy(_sched), t=STEPS, like=_t(4, 3), weighting="elbo", gamma=5.0),
    "autoregressive.made_mask": dict(in_degrees=torch.tensor([1, 2, 3]), out_degrees=torch.tensor([1, 2, 1, 2])),
    "autoregressive.made_degrees": dict(n_dims=3, hidden=(4,)),
    "autoregressive.MaskedLinear": dict(n_in=3, n_out=4, mask=_lazy(lambda: torch.ones(4, 3))),
    "autoregressive.MaskedLinear.forward": dict(x=_t(2, 3, dtype=F32)),
    "autoregressive.MADE": dict(n_dims=4, levels=3, hidden=(8,)),
    "autoregressive.MADE.forward": dict(levels_x=torch.tensor([[0, 1, 2, 0], [2, 2, 1, 0]])),
    "autoregressive.MADE.log_prob_levels": dict(levels_x=torch.tensor([[0, 1, 2, 0], [2, 2, 1, 0]])),
    "autoregressive.MADE.log_prob": dict(y=torch.rand(2, 4)),
    "autoregressive.nll_bits_per_dim": dict(model=_lazy(_made), levels_x=torch.tensor([[0, 1, 2, 0], [2, 2, 1, 0]])),
    "autoregressive.sample": dict(model=_lazy(_made), n=2, generator=torch.Generator().manual_seed(0)),
    "data.nearest_moon": dict(x=X2),
    "ebm.ml_grid_loss": dict(energy_fn=_energy, x=X2, lim=3.0, k=5, generator=torch.Generator().manual_seed(0)),
    "ebm.cd_loss": dict(energy_fn=_energy, x_data=X2, x_model=_t(5, 2, seed=1)),
    "ebm.energy_penalty": dict(energy_fn=_energy, x_data=X2, x_model=_t(5, 2, seed=1)),
    "ebm.region_masses": dict(energy_fn=_energy, region_fn=lambda x: (x[:, 0] > 0).long(), n_regions=2, lim=3.0, k=5),
    "ebm.PersistentChains": dict(n=4, dim=2, steps=2, step_size=0.01, init_std=1.5, restart=0.5,
                                 generator=torch.Generator().manual_seed(0)),
    "ebm.PersistentChains.advance": dict(energy_fn=_energy),
    "bench.budgets": dict(full=False),
    "grading.check": dict(problem_id="14.2.kl_gaussians",
                          answer=_lazy(lambda: _grading().PROBLEMS["14.2.kl_gaussians"].reference)),
    "grading.progress": dict(section="14.1"),
    "grading.hint": dict(problem_id="14.1.e_step"),
    # ---------------------------------------------------------------- viz (figures; widgets are SKIPped)
    "viz.common.image_grid": dict(images=np.zeros((2, 64))),
    "viz.common.training_curves": dict(history={"step": [1, 2], "train": [1.0, 0.5], "val": [1.1, 0.6]}),
    "viz.ch14.mixture_density_1d": dict(ax=_lazy(lambda: plt.subplots()[1]), grid=GRID, weights=W1D, means=MU1D,
                                        variances=VAR1D),
    "viz.ch14.kl_fits": dict(grid=GRID, log_p=LOGP, fits={"forward": (0.0, 1.0)}),
    "viz.ch14.energy_and_density": dict(centres=GRID[::10], energy=_t(11, 11) ** 2,
                                        log_p=-(_t(11, 11) ** 2) - 5.0),
    "viz.ch14.score_field": dict(centres=GRID[::10], log_p=-(_t(11, 11) ** 2) - 5.0, points=_t(4, 2),
                                 scores=_t(4, 2, seed=1)),
    "viz.ch14.samples_vs_density": dict(centres=GRID[::10], log_p=-(_t(11, 11) ** 2) - 5.0, samples=_t(6, 2)),
    "viz.ch14.elbo_sweep": dict(q1=torch.linspace(0, 1, 5, dtype=F64), log_px=-1.0,
                                elbo_values=-torch.tensor([2.0, 1.5, 1.2, 1.5, 2.0], dtype=F64)),
    "viz.ch14.elbo_bars": dict(log_px=-1.0, elbo_value=-1.5),
    "viz.ch14.elbo_contour": dict(m_grid=torch.linspace(-1, 1, 4, dtype=F64), log_s_grid=torch.linspace(-1, 0, 3, dtype=F64),
                                  elbo_grid=-(_t(3, 4) ** 2) - 1.0),
    "viz.ch14.em_staircase": dict(trace={"log_lik": np.array([-3.0, -2.0, -1.6, -1.5]),
                                         "elbo": np.array([-3.5, -2.0, -1.8, -1.5])}),
    "viz.ch14.latent_scatter": dict(z=np.zeros((3, 2)), labels=np.array([0, 1, 2])),
    "viz.ch14.variance_vs_samples": dict(s_values=np.array([1.0, 2.0, 4.0]), variances={"a": np.array([1.0, 0.5, 0.25])}),
    "viz.ch15.binned_densities": dict(images=[np.full((4, 4), 1 / 16)], lim=3.0, titles=["p"]),
    "viz.ch15.point_clouds": dict(clouds=[np.zeros((3, 2))], titles=["x"], lim=3.0),
    # ---------------------------------------------------------------- gaussian_mixture
    "gaussian_mixture.MixtureOfGaussians": dict(weights=W3, means=MU3, variances=VAR3),
    "gaussian_mixture.MixtureOfGaussians.log_joint": dict(x=X2),
    "gaussian_mixture.MixtureOfGaussians.log_prob": dict(x=X2),
    "gaussian_mixture.MixtureOfGaussians.responsibilities": dict(x=X2),
    "gaussian_mixture.MixtureOfGaussians.score": dict(x=X2),
    "gaussian_mixture.MixtureOfGaussians.sample": dict(n=4, generator=torch.Generator().manual_seed(0)),
    "gaussian_mixture.MixtureOfGaussians.noised": dict(alpha_bar=0.5),
    "gaussian_mixture.as_mixture": dict(mixture_or_weights=W3, means=MU3, variances=VAR3),
}


def _fitted_mixture():
    from companion_lib import mixture
    return mixture.GaussianMixture(n_components=2, random_state=0).fit(_t(20, 2))


INSTANCES = {"forward_diffusion.NoiseSchedule": _sched, "elbo.LinearGaussian": _lin,
             "mixture.GaussianMixture": _fitted_mixture}

# Substitutions that are legitimately valid, each with its reason ((callable, argument, kind); "*" = any).
# A numpy array for a tensor (or the other way round) that gives a finite result is a documented
# conversion (``_checks.as_tensor``/``as_array``) everywhere, so it is not listed.
ALLOWED = {
    ("vae.reparameterize", "*", "ndim+1"): "elementwise over any batch shape (eq. 14.11)",
    ("vae.log_normal", "*", "ndim+1"): "sums the last axis over any batch shape",
    ("scores.langevin_step", "*", "ndim+1"): "elementwise over any batch shape (eq. 14.36)",
    ("scores.eps_from_score", "*", "ndim+1"): "elementwise over any batch shape",
    ("scores.score_from_eps", "*", "ndim+1"): "elementwise over any batch shape",
    ("guidance.cfg_combine", "*", "ndim+1"): "elementwise over any batch shape",
    ("settings.check_same_device", "tensors", "*"): "extra tensors of any shape",
    # elementwise maps over any shape (0-D included; empty input is rejected)
    **{(f"data.{f}", "*", k): "elementwise over any shape" for f in (
        "to_unit", "unit_to_signed", "signed_to_unit", "from_unit", "dequantized_bits_per_dim")
       for k in ("ndim+1", "ndim-1", "shape")},
    ("vae.log_normal", "*", "ndim-1"): "x, mu (..., D) and sigma (...) or (..., D) broadcast, as documented",
    ("vae.iwae_bounds", "log_w", "shape"): "(K, b) for any number b of images",
    ("vae.kl_to_prior", "mu", "shape"): "(..., d) for any latent size d",
    ("vae.log_normal", "sigma", "shape"): "sigma (3, 1) widened to (3, 2) is the documented per-coordinate σ "
                                          "(..., D) for D = 2 (other widths are rejected)",
    ("vae.VAE.encode", "x", "ndim+1"): "x (..., n): any batch shape (log_likelihood decodes (s, b, d))",
    ("vae.VAE.encode", "x", "ndim-1"): "x (..., n): one image (n,) is a batch shape ()",
    ("vae.VAE.decode", "z", "ndim+1"): "z (..., d): any batch shape (log_likelihood decodes (s, b, d))",
    ("vae.VAE.decode", "z", "ndim-1"): "z (..., d): one code (d,) is a batch shape ()",
    # one more column / row is another valid size: the width d, the number of samples or steps is free
    ("data.dequantize", "x", "shape"): "any number of pixels d",
    ("flows.standard_normal_log_prob", "z", "shape"): "any dimension d",
    ("flows.InvertibleConv1x1.forward", "x", "shape"): "any spatial size h × w (a 1×1 convolution)",
    ("flows.InvertibleConv1x1.inverse", "y", "shape"): "any spatial size h × w (a 1×1 convolution)",
    ("guidance.guided_eps", "labels", "shape"): "any batch size (checked against x_t when eps_fn runs)",
    ("guidance.null_labels", "labels", "shape"): "any batch size",
    ("metrics.bits_per_dim", "log_prob", "shape"): "any number of samples n",
    ("nets.time_embedding", "t", "shape"): "any batch size",
    ("scores.score", "x", "shape"): "any dimension d",
    ("scores.dsm_loss", "x", "shape"): "any dimension d",
    ("scores.langevin", "x0", "shape"): "any dimension d",
    ("scores.eps_from_score", "score_xt", "shape"): "any dimension d",
    ("scores.score_from_eps", "eps", "shape"): "any dimension d",
    ("moments.method_of_moments", "x", "shape"): "any sample size n (>= 6)",
    ("mixture.gaussian_mle", "X", "shape"): "any dimension d",
    ("mixture.m_step", "X", "shape"): "any dimension d",
    ("mixture.m_step", "resp", "shape"): "any number of components K (taken from resp)",
    ("mixture.responsibilities", "x", "shape"): "any number of points",
    ("mixture.cdf_1d", "x", "shape"): "any number of points",
    ("mixture.GaussianMixture.fit", "X", "shape"): "any dimension d",
    # documented values that look like bad ones
    ("mixture.cdf_1d", "x", "inf"): "the CDF at ±inf (open-ended outer bins) is 0 or 1",
    ("denoisers.ResidualDenoiser", "n_classes", "None"): "None: an unconditional denoiser",
    ("denoisers.ResidualDenoiser.forward", "c", "None"): "c=None: the null label ∅ for every row",
    ("mixture.GaussianMixture", "*", "*"): "scikit-learn's convention: __init__ stores the parameters, fit "
                                           "validates them (GaussianMixture._check_parameters)",
    ("settings.budget", "*", "*"): "picks one of two values of any kind (numbers, lists, dicts, None, "
                                   "strings are all used by the lessons and tests)",
    ("settings.Run.budget", "*", "*"): "as settings.budget",
    ("gaussian_mixture.MixtureOfGaussians", "means", "shape"): "any dimension d",
    ("gaussian_mixture.as_mixture", "means", "shape"): "any dimension d",
    # gaussian, elbo
    **{("gaussian.log_normal", "x", k): "elementwise, x, mean and var broadcast (as documented)"
       for k in ("ndim+1", "ndim-1", "shape")},
    **{("gaussian.log_normal", a, "list"): "a one-element list is a number (array-likes are converted)"
       for a in ("mean", "var")},
    **{("gaussian.log_normal_diag", a, k): "x, mean (..., d) and var (..., d), (..., 1) or () broadcast, as documented"
       for a in ("x", "mean", "var") for k in ("ndim+1", "ndim-1")},
    **{("gaussian.kl", "*", k): "elementwise, the four arguments broadcast (as documented)"
       for k in ("ndim+1", "ndim-1", "shape")},
    **{("gaussian.entropy", "var", k): "elementwise over any shape" for k in ("ndim+1", "ndim-1", "shape")},
    ("gaussian.entropy_full", "cov", "ndim+1"): "cov (..., d, d): a batch of covariances, as documented",
    ("gaussian.entropy_full", "cov", "ndim-1"): "cov (d, d): one covariance, as documented",
    ("gaussian.kl_full", "*", "ndim+1"): "m (..., k), S (..., k, k): batch shapes broadcast, as documented",
    ("elbo.gaussian_entropy", "cov", "ndim+1"): "cov (..., d, d): a batch of covariances, as documented",
    ("elbo.gaussian_kl", "*", "ndim+1"): "m (..., k), S (..., k, k): batch shapes broadcast, as documented",
    ("elbo.gaussian_entropy_diag", "log_var", "ndim+1"): "log_var (..., d): any batch shape",
    ("elbo.gaussian_entropy_diag", "log_var", "shape"): "any dimension d",
    ("elbo.kl_categorical", "log_p", "inf"): "log p = −inf where q > 0: KL = +inf, the true value (NaN and "
                                             "+inf are rejected)",
    ("elbo.log_evidence", "log_joint", "shape"): "any number K of values of h",
    ("elbo.posterior", "log_joint", "shape"): "any number K of values of h",
    ("elbo.LinearGaussian", "W", "shape"): "W (d, k): any latent dimension k",
    ("elbo.LinearGaussian.log_px", "x", "ndim-1"): "x (d,): one point (LinearGaussian._x reads it as (1, d))",
    # forward_diffusion, ddpm, recipes: data (batch, ...) of any shape; like is a template (shape, dtype, device)
    **{(f"forward_diffusion.{f}", "x0", k): "x0 (batch, ...): any data shape, as documented"
       for f in ("forward_chain", "terminal_kl") for k in ("ndim+1", "ndim-1", "shape")},
    **{("ddpm.variational_bound", "x0", k): "x0 (batch, ...): any data shape, as documented" for k in ("ndim+1", "shape")},
    ("forward_diffusion.NoiseSchedule", "betas", "shape"): "any number of steps T",
    ("forward_diffusion.noisy_mixture", "means", "shape"): "any dimension d",
    ("forward_diffusion.noisy_mixture", "means", "ndim-1"): "means (K,): a 1-D mixture (as_mixture, documented)",
    **{(f, "like", k): "like's values are never read, only its dtype, device and number of rows"
       for f in ("ddpm.reverse_variance", "ddpm.elbo_weight", "ddpm.min_snr_weight", "recipes.ddpm_weight")
       for k in ("shape", "NaN", "inf")},
    **{(f, "like", "None"): "like=None: (batch,) in torch's default dtype, as documented"
       for f in ("ddpm.elbo_weight", "ddpm.min_snr_weight")},
    **{("autoregressive.MaskedLinear.forward", "x", k): "x (..., n_in): any batch shape, as nn.Linear"
       for k in ("ndim+1", "ndim-1")},
    ("autoregressive.made_mask", "*", "shape"): "any number of inputs n_in / outputs n_out",
    # viz
    **{(f"viz.ch14.{f}", "log_p", "inf"): "-inf is a zero density (+inf is rejected)"
       for f in ("energy_and_density", "score_field", "samples_vs_density")},
    **{(f"viz.ch14.{f}", "*", "list"): "a one-element array counts as a number (viz.ch14._number)"
       for f in ("elbo_bars", "elbo_sweep")},
    ("viz.ch14.mixture_density_1d", "grid", "shape"): "any number of grid points",
    # divergences, ebm, distinguish
    **{(f"divergences.{f}", "log_p", "inf"): "-inf is log 0 where the density vanishes (+inf is rejected)"
       for f in ("kl_quadrature", "entropy_quadrature", "fit_forward_kl")},
    ("divergences.entropy_quadrature", "log_p", "ndim+1"): "log_p (..., g): batch dimensions, as documented",
    ("divergences.kl_quadrature", "*", "ndim+1"): "log_p, log_q (..., g): batch dimensions, as documented",
    ("divergences.trapezoid", "values", "ndim+1"): "values (..., g): batch dimensions, as documented",
    ("divergences.fit_reverse_kl", "inits", "shape"): "any number of starting means r",
    ("divergences.isotropic_gaussian_mle", "X", "shape"): "any dimension d",
    ("divergences.mixture_log_pdf", "x", "shape"): "any number of points",
    ("divergences.bimodal_fits", "grid", "None"): "grid=None: a grid chosen from the separation",
    ("ebm.JointEnergy", "centres", "shape"): "any dimension d",
    ("ebm.gmm_sample", "means", "shape"): "any dimension d",
    **{(f"distinguish.{f}", "*", k): "t and sigma broadcast elementwise (numbers, lists or tensors), as documented"
       for f in ("error_probability", "error_bound") for k in ("ndim+1", "ndim-1", "shape", "list")},
    **{(f"distinguish.{f}", "x_t", "shape"): "any number of points x_t"
       for f in ("reverse_conditional", "reverse_conditional_mixture", "reverse_gaussian_kl")},
}


# Arguments whose messages name them by what they hold: (callable, argument) → the name used.
ARG_ALIASES = {("gaussian_mixture.as_mixture", "mixture_or_weights"): "weights",
               # EpsilonFrom passes x_t on to the wrapped network, whose own check names its input x
               ("ddpm.EpsilonFrom.forward", "xt"): "x"}


# ---------------------------------------------------------------- bad kinds
class _Opaque:
    """An object of no expected type."""


def _first_index(t, rnd):
    return tuple(rnd.randrange(s) for s in t.shape)


def bad_values(value, name, rnd):
    """(kind, bad value) pairs for an argument whose valid example is ``value``."""
    out = [("None", None), ("str", "oops"), ("object", _Opaque())]
    if (name == "mask" and np.ndim(value) == 1) or (isinstance(value, torch.Tensor) and value.dtype == torch.bool):
        out += [("float mask", value.double()), ("2-D mask", value[None].repeat(2, 1)),
                ("short mask", value[:-1]), ("numpy mask", value.numpy())]
        return out
    if isinstance(value, (torch.Tensor, np.ndarray)):
        is_t = isinstance(value, torch.Tensor)
        cat = torch.cat if is_t else np.concatenate
        extra = rnd.randint(1, 3)
        if value.ndim:
            out += [("ndim+1", value[None]), ("empty", value[:0]),
                    ("shape", cat([value] + [value[..., :1]] * extra, -1) if value.shape[-1] else value[None])]
            out.append(("ndim-1", value[0] if value.ndim > 1 else value[0].reshape(())))
        else:
            out += [("ndim+1", value[None])]
        floating = value.is_floating_point() if is_t else np.issubdtype(value.dtype, np.floating)
        if floating and value.size != 0 if not is_t else floating and value.numel():
            for kind, v in (("NaN", float("nan")), ("inf", float("inf") * rnd.choice([-1, 1]))):
                bad = value.clone() if is_t else value.copy()
                bad[_first_index(bad, rnd)] = v
                out.append((kind, bad))
        elif is_t and not floating:
            out.append(("float steps", value.double() + 0.5))
        out.append(("numpy" if is_t else "tensor", value.numpy() if is_t else torch.from_numpy(value)))
        return out
    if isinstance(value, bool):
        return out + [("int for bool", 2)]
    if isinstance(value, int):
        return out + [("float for int", 2.5), ("dict", {"n": 1})]
    if isinstance(value, float):
        return out + [("NaN", float("nan")), ("inf", float("inf")), ("list", [value])]
    if isinstance(value, str):
        return [("None", None), ("int for str", 5), ("unknown choice", "no-such-choice")]
    if isinstance(value, torch.Generator):
        return [("int for generator", 0), ("str", "seed")]
    return out


# ---------------------------------------------------------------- enumeration
def public_modules():
    """name → module for every public module; a package whose ``__all__`` names submodules (``viz``)
    counts by its public submodules (``viz.common``, ``viz.ch14``, ...)."""
    mods = {}
    for info in pkgutil.iter_modules(companion_lib.__path__):
        if info.name.startswith("_") or info.name in SKIP_MODULES:
            continue
        mod = importlib.import_module(f"companion_lib.{info.name}")
        subs = [n for n in getattr(mod, "__all__", ()) if inspect.ismodule(getattr(mod, n, None))]
        if info.ispkg and subs:
            mods.update({f"{info.name}.{n}": getattr(mod, n) for n in subs})
        else:
            mods[info.name] = mod
    return mods


def _resolve(value):
    return value() if getattr(value, "_lazy", False) else value


def public_callables(mods):
    """name → (callable, owner key or None) for every public callable (module functions, classes and
    their public methods named in SPECS), and the modules that lack ``__all__``."""
    found, missing_all = {}, []
    for mname, mod in mods.items():
        names = getattr(mod, "__all__", None)
        if names is None:
            missing_all.append(mname)
            names = [n for n, v in vars(mod).items()
                     if not n.startswith("_") and getattr(v, "__module__", None) == mod.__name__]
        for n in names:
            obj = getattr(mod, n)
            if inspect.isclass(obj):
                found[f"{mname}.{n}"] = obj
                for meth in vars(obj):
                    key = f"{mname}.{n}.{meth}"
                    if key in SPECS:
                        found[key] = meth
            elif callable(obj) and not inspect.isclass(obj):
                found[f"{mname}.{n}"] = obj
    found.update({f"grading.{n}": getattr(_grading(), n) for n in GRADING_API if hasattr(_grading(), n)})
    return found, missing_all


def facade_aliases(mods):
    """Façade name → the name of the same object in its new module (a re-export, never a copy)."""
    out = {}
    for facade, homes in FACADES.items():
        mod = mods[facade]
        for n in mod.__all__:
            home = next((h for h in homes if getattr(mods[h], n, None) is getattr(mod, n)), None)
            if home is not None:
                out[f"{facade}.{n}"] = f"{home}.{n}"
    return out


def _call(name, found, spec):
    cls_key, meth = name.rsplit(".", 1)
    if inspect.isclass(found.get(cls_key)):
        inst = INSTANCES[cls_key]() if cls_key in INSTANCES else found[cls_key](
            **{k: _resolve(v) for k, v in SPECS[cls_key].items()})
        fn = getattr(inst, meth)
    else:
        fn = found[name]
    if "tensors" in spec:  # *tensors
        rest = {k: v for k, v in spec.items() if k != "tensors"}
        return fn(*spec["tensors"], **rest) if not rest.get("model") else fn(rest.pop("model"), *spec["tensors"], **rest)
    return fn(**spec)


def _all_finite(out, depth=0):
    if depth > 3:
        return True
    if isinstance(out, torch.Tensor):
        return not out.is_floating_point() or bool(torch.isfinite(out.detach()).all())
    if isinstance(out, np.ndarray):
        return not np.issubdtype(out.dtype, np.floating) or bool(np.isfinite(out).all())
    if isinstance(out, float):
        return bool(np.isfinite(out))
    if isinstance(out, (tuple, list)):
        return all(_all_finite(o, depth + 1) for o in out)
    if isinstance(out, dict):
        return all(_all_finite(o, depth + 1) for o in out.values())
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return all(_all_finite(getattr(out, f.name), depth + 1) for f in dataclasses.fields(out))
    return True


def _allowed(name, arg, kind):
    return any(k in ALLOWED for k in ((name, arg, kind), (name, "*", kind), (name, arg, "*"), (name, "*", "*")))


def fuzz(seed, only=None):
    """``only``: a set of callable names to fuzz (default: all). Returns (results: list of (module, name, arg, kind, verdict, detail), problems with the table)."""
    with _grading_state_kept():
        return _fuzz(seed, only)


def _fuzz(seed, only):
    rnd = random.Random(seed)
    mods = public_modules()
    found, missing_all = public_callables(mods)
    aliases = facade_aliases(mods)
    table = []
    results = []
    for name in sorted(found):
        if name in SKIP or name in aliases or (only is not None and name not in only):
            continue                      # (a façade's re-export is fuzzed under its own module)
        if name not in SPECS:
            if name.split(".")[0] not in PENDING_OTHER_HELPERS:
                table.append(f"{name}: no example call in SPECS")
            continue
        spec = {k: _resolve(v) for k, v in SPECS[name].items()}
        try:
            out = _call(name, found, spec)
        except Exception as err:  # the table rotted
            table.append(f"{name}: the valid example call fails: {type(err).__name__}: {err}")
            continue
        finally:
            plt.close("all")
        if not _all_finite(out):
            table.append(f"{name}: the valid example call returns NaN/inf")
        module = name.split(".")[0]
        module = ".".join(name.split(".")[:2]) if module == "viz" else module
        for arg, value in spec.items():
            for kind, bad in bad_values(value, arg, rnd):
                if _allowed(name, arg, kind):
                    continue
                call = dict(spec, **{arg: bad})
                if arg == "tensors":
                    call[arg] = (bad,)
                try:
                    out = _call(name, found, {k: _resolve(v) if k != arg else v for k, v in call.items()})
                except (ValueError, TypeError) as err:
                    names = {arg, arg.replace("_", " "), ARG_ALIASES.get((name, arg), arg)} | (
                        {"*tensors", "tensor"} if arg == "tensors" else set())
                    msg = str(err)
                    verdict = "ok" if any(n in msg for n in names) else "unnamed"
                    results.append((module, name, arg, kind, verdict, f"{type(err).__name__}: {msg[:120]}"))
                except Exception as err:
                    results.append((module, name, arg, kind, "raw", f"{type(err).__name__}: {str(err)[:120]}"))
                else:
                    if name in NEVER_RAISES:
                        results.append((module, name, arg, kind, "silent" if out else "ok",
                                        "passed" if out else "a failing result"))
                    elif not _all_finite(out):
                        results.append((module, name, arg, kind, "silent NaN", "returned NaN/inf"))
                    elif kind in ("numpy", "tensor"):
                        results.append((module, name, arg, kind, "ok", "converted"))
                    else:
                        results.append((module, name, arg, kind, "silent", "accepted"))
                finally:
                    plt.close("all")
    table += [f"module {m} has no __all__" for m in missing_all if m not in PENDING_OTHER_HELPERS]
    return results, table, missing_all


def summarise(results):
    per = defaultdict(Counter)
    for module, _, _, _, verdict, _ in results:
        per[module][verdict] += 1
    lines = [f"{'module':14s} {'calls':>6s} {'raw':>5s} {'unnamed':>8s} {'silent':>7s} {'NaN':>5s}"]
    for m in sorted(per):
        c = per[m]
        lines.append(f"{m:14s} {sum(c.values()):6d} {c['raw']:5d} {c['unnamed']:8d} {c['silent']:7d} {c['silent NaN']:5d}")
    tot = sum((per[m] for m in per), Counter())
    lines.append(f"{'total':14s} {sum(tot.values()):6d} {tot['raw']:5d} {tot['unnamed']:8d} {tot['silent']:7d} "
                 f"{tot['silent NaN']:5d}")
    return "\n".join(lines)


@settings(derandomize=True, max_examples=int(os.environ.get("COMPANION_FUZZ_EXAMPLES", "2")), deadline=None,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck), database=None)
@given(seed=st.integers(0, 2 ** 16))
def test_every_public_callable_rejects_bad_input_by_name(seed):
    results, table, missing_all = fuzz(seed)
    print(f"\nbad-input fuzz (seed {seed}):\n" + summarise(results))
    bad = [r for r in results if r[4] != "ok"]
    for r in bad:
        print("  " + ("[pending] " if r[0] in PENDING_OTHER_HELPERS else "") + f"{r[1]}({r[2]} = {r[3]}): {r[4]} — {r[5]}")
    if missing_all:
        print("modules without __all__: " + ", ".join(sorted(missing_all)))
    fatal = [r for r in bad if r[0] not in PENDING_OTHER_HELPERS and (r[0], r[4]) not in NOT_YET_FIXED]
    assert not table, "the fuzz table is out of date:\n" + "\n".join(table)
    assert not fatal, f"{len(fatal)} bad calls not rejected by name:\n" + "\n".join(
        f"{r[1]}({r[2]} = {r[3]}): {r[4]} — {r[5]}" for r in fatal)


def test_facades_reexport_the_same_objects():
    """Every public name of a deprecated façade (diffusion, plots, widgets) is the very object of its new
    module, so fuzzing the new module covers it."""
    mods = public_modules()
    aliases = facade_aliases(mods)
    for facade in FACADES:
        missing = [n for n in mods[facade].__all__ if f"{facade}.{n}" not in aliases]
        assert not missing, f"{facade} re-exports copies, not the objects of {FACADES[facade]}: {missing}"
    assert aliases["diffusion.NoiseSchedule"] == "forward_diffusion.NoiseSchedule"
    assert aliases["plots.kl_fits"] == "viz.ch14.kl_fits"


def test_the_fuzz_finds_the_known_failures_of_a_broken_check(monkeypatch):
    """The fuzz can fail: with the mask check of flows disabled, a float or 2-D mask is caught."""
    from companion_lib import flows

    monkeypatch.setattr(flows, "_check_mask", lambda mask, dim=None, count=True, of=None: mask)
    results, _, _ = fuzz(0, only={"flows.coupling_forward"})
    caught = {(r[1], r[3]) for r in results if r[4] != "ok"}
    assert ("flows.coupling_forward", "float mask") in caught
    assert ("flows.coupling_forward", "2-D mask") in caught
