"""Bad input to every public function of data, metrics, nets, scores, gaussian, ebm, divergences,
elbo, moments, diffusion and plots gets a ValueError or TypeError that names what was expected,
never an IndexError/RuntimeError/AttributeError from inside torch or NumPy, and never a silent NaN."""
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from companion_lib import (_checks, data, diffusion, divergences, ebm, elbo, gaussian, metrics,  # noqa: E402
                           moments, nets, plots, scores, widgets)

F64 = torch.float64
NAN = float("nan")
W = torch.tensor([0.3, 0.3, 0.4], dtype=F64)
MU = torch.tensor([[-1.0, -0.5], [1.0, -0.5], [0.0, 0.9]], dtype=F64)
VAR = torch.tensor([0.25, 0.15, 0.2], dtype=F64)
X2 = torch.zeros(4, 2, dtype=F64)


def _energy(x):
    return ebm.gmm_energy(x, W, MU, VAR)


SCHED = diffusion.NoiseSchedule.linear(10)
LIN = elbo.LinearGaussian(torch.eye(3, 2, dtype=F64), torch.zeros(3, dtype=F64), 0.5)
LOG_JOINT = torch.log(torch.tensor([[0.2, 0.3], [0.1, 0.4]], dtype=F64))

CASES = {
    # ---------------------------------------------------------------- ebm: weights, shapes, NaN, labels
    "ebm.gmm_energy unnormalised weights": (lambda: ebm.gmm_energy(X2, W * 2, MU, VAR), ValueError, "sum to 1"),
    "ebm.gmm_energy negative weight": (lambda: ebm.gmm_energy(X2, torch.tensor([1.2, -0.2, 0.0], dtype=F64), MU, VAR),
                                       ValueError, ">= 0"),
    "ebm.gmm_score NaN x": (lambda: ebm.gmm_score(torch.full((2, 2), NAN), W, MU, VAR), ValueError, "finite"),
    "ebm.gmm_sample n=0": (lambda: ebm.gmm_sample(0, W, MU, VAR), ValueError, "n must be >= 1"),
    "ebm.gmm_sample generator": (lambda: ebm.gmm_sample(3, W, MU, VAR, generator=0), TypeError, "generator"),
    "ebm.gmm_energy empty x": (lambda: ebm.gmm_energy(torch.zeros(0, 2), W, MU, VAR), ValueError, "at least 1"),
    "ebm.quadratic_energy shape": (lambda: ebm.quadratic_energy(X2, torch.eye(3)), ValueError, r"\(2, 2\)"),
    "ebm.quadratic_log_partition empty": (lambda: ebm.quadratic_log_partition(torch.zeros(0, 0)), ValueError, "square"),
    "ebm.grid_log_density not callable": (lambda: ebm.grid_log_density("E"), TypeError, "energy_fn"),
    "ebm.grid_log_density wrong shape": (lambda: ebm.grid_log_density(lambda x: x, k=4), ValueError, r"\(n,\)"),
    "ebm.grid_2d float64 off the CPU": (lambda: ebm.grid_2d(3.0, 4, device="meta", dtype=F64), ValueError, "CPU"),
    "ebm.log_partition_grid k": (lambda: ebm.log_partition_grid(_energy, d=2, k=1), ValueError, "k must be >= 2"),
    "ebm.histogram_2d NaN": (lambda: ebm.histogram_2d(torch.full((2, 2), NAN)), ValueError, "finite"),
    "ebm.total_variation negative": (lambda: ebm.total_variation([0.5, -0.5], [0.5, 0.5]), ValueError, "non-negative"),
    "ebm.total_variation empty": (lambda: ebm.total_variation([], []), ValueError, "empty"),
    "ebm.binned_probabilities sub": (lambda: ebm.binned_probabilities(_energy, sub=0), ValueError, "sub"),
    "ebm.grid_log_likelihood 3-D x": (lambda: ebm.grid_log_likelihood(_energy, torch.zeros(2, 3)), ValueError, r"\(\*, 2\)"),
    "ebm.EnergyMLP dim": (lambda: ebm.EnergyMLP(dim=0), ValueError, "dim"),
    "ebm.EnergyMLP numpy input": (lambda: ebm.EnergyMLP()(np.zeros((2, 2))), TypeError, "torch.Tensor"),
    "ebm.EnergyMLP device": (lambda: ebm.EnergyMLP()(torch.zeros(2, 2, device="meta")), ValueError, "device"),
    "ebm.JointEnergy.fit negative label": (lambda: ebm.JointEnergy.fit(X2, [0, 1, -1, 1]), ValueError, ">= 0"),
    "ebm.JointEnergy.fit float label": (lambda: ebm.JointEnergy.fit(X2, [0, 1, 0.5, 1]), ValueError, "whole numbers"),
    "ebm.JointEnergy.fit label count": (lambda: ebm.JointEnergy.fit(X2, [0, 1]), ValueError, r"\(4,\)"),
    "ebm.JointEnergy.fit 2-D labels": (lambda: ebm.JointEnergy.fit(X2, [[0, 1], [0, 1]]), ValueError, "1-D"),
    "ebm.JointEnergy.fit n_classes": (lambda: ebm.JointEnergy.fit(X2, [0, 1, 2, 1], n_classes=2), ValueError, "< 2"),
    "ebm.JointEnergy.energy h": (lambda: ebm.JointEnergy.fit(X2 + torch.arange(4.)[:, None], [0, 1, 0, 1]).energy(X2, 5),
                                 ValueError, "h must be <= 1"),
    # ---------------------------------------------------------------- scores
    "scores.score numpy energy": (lambda: scores.score(lambda z: np.zeros(len(z)), X2), ValueError, r"\(n,\)"),
    "scores.langevin not callable": (lambda: scores.langevin(None, X2, 0.1, 3), TypeError, "score_fn"),
    "scores.langevin record type": (lambda: scores.langevin(lambda z: -z, X2, 0.1, 3, record=5), TypeError, "record"),
    "scores.langevin generator": (lambda: scores.langevin(lambda z: -z, X2, 0.1, 3, generator=1), TypeError, "Generator"),
    "scores.dsm_loss generator": (lambda: scores.dsm_loss(_energy, X2, 0.1, generator="seed"), TypeError, "Generator"),
    "divergences.sample_mixture generator": (lambda: divergences.sample_mixture(3, [1.0], [0.0], [1.0], generator=0),
                                             TypeError, "Generator"),
    "scores.dsm_loss NaN x": (lambda: scores.dsm_loss(_energy, torch.full((2, 2), NAN), 0.1), ValueError, "finite"),
    # ---------------------------------------------------------------- gaussian
    "gaussian.log_normal var 0": (lambda: gaussian.log_normal(X2, 0.0, 0.0), ValueError, "var must be > 0"),
    "gaussian.log_normal_diag inf": (lambda: gaussian.log_normal_diag(X2, float("inf"), 1.0), ValueError, "finite"),
    # ---------------------------------------------------------------- divergences
    "divergences.mixture_log_pdf unnormalised": (lambda: divergences.mixture_log_pdf(torch.zeros(3), [0.5, 0.6], [0, 1], [1, 1]),
                                                 ValueError, "sum to 1"),
    "divergences.mixture_log_pdf negative": (lambda: divergences.mixture_log_pdf(torch.zeros(3), [1.5, -0.5], [0, 1], [1, 1]),
                                             ValueError, ">= 0"),
    "divergences.mixture_log_pdf 2-D x": (lambda: divergences.mixture_log_pdf(torch.zeros(3, 1), [1.0], [0], [1]),
                                          ValueError, "1-D"),
    "divergences.sample_mixture n": (lambda: divergences.sample_mixture(0, [1.0], [0.0], [1.0]), ValueError, "n must be >= 1"),
    "divergences.kl_gaussians var": (lambda: divergences.kl_gaussians(0.0, -1.0, 0.0, 1.0), ValueError, "var1"),
    "divergences.kl_gaussians NaN": (lambda: divergences.kl_gaussians(NAN, 1.0, 0.0, 1.0), ValueError, "finite"),
    "divergences.kl_quadrature grid": (lambda: divergences.kl_quadrature([0.0, 0.0], [0.0, 0.0], [0.0, 1.0]), ValueError, "3 rows"),
    "divergences.trapezoid length": (lambda: divergences.trapezoid(torch.zeros(4), torch.linspace(0, 1, 5)), ValueError,
                                     "grid length"),
    "divergences.isotropic_gaussian_mle empty": (lambda: divergences.isotropic_gaussian_mle(torch.zeros(0, 3)), ValueError,
                                                 "at least 1"),
    "divergences.isotropic_gaussian_nll var": (lambda: divergences.isotropic_gaussian_nll(torch.zeros(2, 3), torch.zeros(3), -1.0),
                                               ValueError, "var"),
    "divergences.fit_reverse_kl inits": (lambda: divergences.fit_reverse_kl(lambda x: -x ** 2, torch.zeros(0), 1.0),
                                         ValueError, "at least 1"),
    "divergences.kl_gaussian_to_density fn": (lambda: divergences.kl_gaussian_to_density(0.0, 1.0, "p"), TypeError, "log_p_fn"),
    "divergences.bimodal_fits weight": (lambda: divergences.bimodal_fits(2.0, weight=1.0), ValueError, "weight"),
    # ---------------------------------------------------------------- elbo
    "elbo.check_simplex negative": (lambda: elbo.check_simplex([[1.2, -0.2]]), ValueError, "non-negative"),
    "elbo.discrete_elbo rows": (lambda: elbo.discrete_elbo(LOG_JOINT, [[0.5, 0.5]]), ValueError, r"\(2, 2\)"),
    "elbo.log_evidence NaN": (lambda: elbo.log_evidence([[NAN, 0.0]]), ValueError, "finite"),
    "elbo.kl_categorical +inf": (lambda: elbo.kl_categorical([[0.5, 0.5]], [[float("inf"), 0.0]]), ValueError, "log_p"),
    "elbo.gaussian_entropy not PD": (lambda: elbo.gaussian_entropy(-torch.eye(2, dtype=F64)), ValueError, "positive definite"),
    "elbo.gaussian_entropy_diag 0-D": (lambda: elbo.gaussian_entropy_diag(torch.tensor(1.0, dtype=F64)), ValueError, "1-D"),
    "elbo.gaussian_kl k": (lambda: elbo.gaussian_kl(torch.zeros(2), torch.eye(2), torch.zeros(3), torch.eye(3)), ValueError,
                           "share k"),
    "elbo.LinearGaussian sigma2": (lambda: elbo.LinearGaussian(torch.eye(2), torch.zeros(2), 0.0), ValueError, "sigma2"),
    "elbo.LinearGaussian x shape": (lambda: LIN.log_px(torch.zeros(2, 4)), ValueError, r"\(n, 3\)"),
    "elbo.LinearGaussian.elbo S": (lambda: LIN.elbo(torch.zeros(2, 3), torch.zeros(2), torch.eye(3)), ValueError, "S must"),
    "elbo.LinearGaussian.sample n": (lambda: LIN.sample(0), ValueError, "n must be >= 1"),
    "elbo.mixture_log_joint unnormalised": (lambda: elbo.mixture_log_joint(X2, [0.5, 0.6], MU[:2], VAR[:2], "spherical"),
                                            ValueError, "sum to 1"),
    "elbo.em_elbo_trace n_iter": (lambda: elbo.em_elbo_trace(X2, [0.5, 0.5], MU[:2], VAR[:2], 0, "spherical"), ValueError,
                                  "n_iter"),
    "elbo.mixture_elbo covariance_type": (lambda: elbo.mixture_elbo(X2, [[0.5, 0.5]] * 4, [0.5, 0.5], MU[:2], VAR[:2], "round"),
                                          ValueError, "covariance_type"),
    # ---------------------------------------------------------------- moments
    "moments.method_of_moments too few": (lambda: moments.method_of_moments([1.0, 2.0]), ValueError, "at least 6"),
    "moments.method_of_moments NaN": (lambda: moments.method_of_moments([1.0] * 5 + [NAN]), ValueError, "finite"),
    "moments.normal_raw_moments order": (lambda: moments.normal_raw_moments(0.0, 1.0, -1), ValueError, "order"),
    "moments.normal_raw_moments sd": (lambda: moments.normal_raw_moments(0.0, -1.0, 3), ValueError, "sd"),
    "moments.mixture_raw_moments weight": (lambda: moments.mixture_raw_moments(1.5, [0, 1], [1, 1], 3), ValueError, "weight"),
    "moments.mixture_raw_moments means": (lambda: moments.mixture_raw_moments(0.5, [0, 1, 2], [1, 1], 3), ValueError, "means"),
    # ---------------------------------------------------------------- metrics
    "metrics.bits_per_dim empty": (lambda: metrics.bits_per_dim([], 64), ValueError, "at least 1"),
    "metrics.bits_per_dim NaN": (lambda: metrics.bits_per_dim([NAN], 64), ValueError, "finite"),
    "metrics.nearest_train_distance shape": (lambda: metrics.nearest_train_distance(np.zeros((3, 8, 8))), ValueError, "64"),
    "metrics.chi_square_gof probs": (lambda: metrics.chi_square_gof([5, 5], [0.5, 0.6], 0), ValueError, "sum to 1"),
    "metrics.chi_square_gof counts": (lambda: metrics.chi_square_gof([5, -5], [0.5, 0.5], 0), ValueError, "counts"),
    "metrics.chi_square_gof empty": (lambda: metrics.chi_square_gof([], [], 0), ValueError, "at least 1"),
    # ---------------------------------------------------------------- diffusion (the forward process)
    "diffusion.NoiseSchedule beta 1": (lambda: diffusion.NoiseSchedule([0.1, 1.0]), ValueError, r"\(0, 1\)"),
    "diffusion.NoiseSchedule empty": (lambda: diffusion.NoiseSchedule([]), ValueError, "at least 1"),
    "diffusion.NoiseSchedule.linear T": (lambda: diffusion.NoiseSchedule.linear(0), ValueError, "T must be >= 1"),
    "diffusion.q_sample t = 0": (lambda: diffusion.q_sample(SCHED, torch.zeros(2, 3), torch.tensor([0, 1]), torch.zeros(2, 3)),
                                 ValueError, "1..T"),
    "diffusion.q_sample float t": (lambda: diffusion.q_sample(SCHED, torch.zeros(2, 3), torch.tensor([1.0, 2.0]),
                                                              torch.zeros(2, 3)), TypeError, "integer steps"),
    "diffusion.q_sample numpy x0": (lambda: diffusion.q_sample(SCHED, np.zeros((2, 3)), torch.tensor([1, 2]),
                                                               torch.zeros(2, 3)), TypeError, "torch.Tensor"),
    "diffusion.q_sample NaN noise": (lambda: diffusion.q_sample(SCHED, torch.zeros(2, 3), torch.tensor([1, 2]),
                                                                torch.full((2, 3), NAN)), ValueError, "finite"),
    "diffusion.q_sample rows": (lambda: diffusion.q_sample(SCHED, torch.zeros(2, 3), torch.tensor([1, 2, 3]),
                                                           torch.zeros(2, 3)), ValueError, "one step per row"),
    "diffusion.NoiseSchedule.at name": (lambda: SCHED.at("T", torch.tensor([1]), torch.zeros(1, 2)), ValueError, "per-step"),
    # ---------------------------------------------------------------- data
    "data.heldout via to_unit NaN": (lambda: data.to_unit(torch.tensor([NAN])), ValueError, "finite"),
    "data.from_unit levels": (lambda: data.from_unit(torch.zeros(2), levels=1), ValueError, "levels"),
    # ---------------------------------------------------------------- plots
    "plots.image_grid not 64": (lambda: plots.image_grid(np.zeros((3, 10))), ValueError, "64"),
    "plots.image_grid NaN": (lambda: plots.image_grid(np.full((2, 64), NAN)), ValueError, "finite"),
    "plots.image_grid nrow": (lambda: plots.image_grid(np.zeros((2, 64)), nrow=0), ValueError, "nrow"),
    "plots.latent_scatter labels": (lambda: plots.latent_scatter(np.zeros((3, 2)), [0, 1]), ValueError, "labels"),
    # ---------------------------------------------------------------- widgets
    "widgets.em_stepper edges": (lambda: widgets.em_stepper(None, [0.0, 2.0, 1.0], [1, 1], [{}]), ValueError, "increasing"),
    "widgets.em_stepper counts": (lambda: widgets.em_stepper(None, [0.0, 1.0, 2.0], [1, 1, 1], [{}]), ValueError,
                                  r"counts must have shape \(2\)"),
    "widgets.em_stepper path": (lambda: widgets.em_stepper(None, [0.0, 1.0, 2.0], [1, 1], []), TypeError, "em_path"),
    "widgets.latent_explorer_2d decode": (lambda: widgets.latent_explorer_2d(None), TypeError, "decode"),
    "widgets.langevin_explorer exact": (lambda: widgets.langevin_explorer(lambda z: -z, X2, np.ones((3, 4)), 3.0),
                                        ValueError, "square"),
    "widgets.langevin_explorer x0": (lambda: widgets.langevin_explorer(lambda z: -z, torch.zeros(4, 3), np.ones((3, 3)), 3.0),
                                     ValueError, r"\(\*, 2\)"),
    "widgets.langevin_explorer n_steps": (lambda: widgets.langevin_explorer(lambda z: -z, X2, np.ones((3, 3)), 3.0,
                                                                            n_steps=5000), ValueError, "n_steps"),
    "widgets.elbo_q_slider shape": (lambda: widgets.elbo_q_slider(torch.zeros(3)), ValueError, "h in"),
    # ---------------------------------------------------------------- _checks.as_array
    "_checks.as_array strings": (lambda: _checks.as_array(["a"], "v"), ValueError, "v must be numeric"),
    "_checks.as_array NaN": (lambda: _checks.as_array(torch.tensor([NAN]), "v"), ValueError, "finite"),
    "_checks.as_array shape": (lambda: _checks.as_array(np.zeros((2, 3)), "v", shape=(None, 2)), ValueError, r"\(\*, 2\)"),
    "plots.training_curves history": (lambda: plots.training_curves({"train": [1.0]}), ValueError, "step"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gets_a_clear_error(name):
    call, err, match = CASES[name]
    with pytest.raises(err, match=match):
        call()
