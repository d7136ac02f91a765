"""§15.3 reverse process problems: Problem 15.3.3 (the posterior q(x_{t−1} | x_t, x_0); x̂_0 from ε),
the training loss (15.10) and one sampling step (15.11)."""
import math

import torch

from companion_lib import diffusion
from companion_lib.grading.registry import Problem, case_seed

F64 = torch.float64


def _schedules(g):
    """Plain β's: Ho et al.'s linear schedule, a capped cosine, and an arbitrary short one."""
    return [diffusion.NoiseSchedule.linear(1000).betas,
            diffusion.NoiseSchedule.cosine(200, max_beta=0.2).betas,
            0.2 * torch.rand(12, generator=g, dtype=F64) + 1e-3]


def _steps(g, T, n):
    """n steps in 1..T that always include the two ends."""
    return torch.cat([torch.tensor([1, T]), torch.randint(1, T + 1, (n - 2,), generator=g)])


def _with_schedule(answer, betas, *inputs):
    """Harness: the student's function gets a NoiseSchedule built from the β's, as in the lesson."""
    return answer(diffusion.NoiseSchedule(betas), *inputs)


# ---------------------------------------------------------------- Problem 15.3.3 (i): the posterior
def _posterior_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1533))
    cases = []
    for betas, shape, dtype in zip(_schedules(g), [(6, 64), (5, 2), (4, 1, 3, 3)], [torch.float32, F64, F64]):
        T = betas.shape[0]
        x0 = (2 * torch.rand(shape, generator=g, dtype=F64) - 1).to(dtype)
        xt = torch.randn(shape, generator=g, dtype=F64).to(dtype)
        cases.append((betas, x0, xt, _steps(g, T, shape[0])))
    return cases


def _ab_prev(s, t, like):                 # ᾱ_{t−1} with ᾱ_0 = 1 (for the wrong answers)
    ab = torch.cat([torch.ones(1, dtype=F64), s.alpha_bars])[t]
    return ab.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def _wrong_variance_beta(s, x0, xt, t):   # the variance β_t instead of β̃_t (σ_t² = β_t is a choice, not q's variance)
    mean, _ = diffusion.posterior_mean_variance(s, x0, xt, t)
    return mean, s.at("betas", t, xt).expand_as(xt)


def _wrong_swapped(s, x0, xt, t):         # coefficients of x_0 and x_t swapped
    mean, var = diffusion.posterior_mean_variance(s, x0, xt, t)
    return diffusion.posterior_mean_variance(s, xt, x0, t)[0], var


def _wrong_alpha_bar_t(s, x0, xt, t):     # √ᾱ_t where the x_0 coefficient needs √ᾱ_{t−1}
    one_m = s.at("one_minus_alpha_bars", t, xt)
    beta, alpha = s.at("betas", t, xt), s.at("alphas", t, xt)
    ab_prev = _ab_prev(s, t - 1, xt)
    mean = s.at("alpha_bars", t, xt).sqrt() * beta / one_m * x0 + alpha.sqrt() * (1 - ab_prev) / one_m * xt
    return mean, ((1 - ab_prev) / one_m * beta).expand_as(xt)


def _wrong_no_sqrt(s, x0, xt, t):         # α_t and ᾱ_{t−1} without their square roots
    one_m = s.at("one_minus_alpha_bars", t, xt)
    beta, alpha = s.at("betas", t, xt), s.at("alphas", t, xt)
    ab_prev = _ab_prev(s, t - 1, xt)
    mean = ab_prev * beta / one_m * x0 + alpha * (1 - ab_prev) / one_m * xt
    return mean, ((1 - ab_prev) / one_m * beta).expand_as(xt)


_POSTERIOR = Problem(
    id="15.3.3.posterior",
    section="15.3",
    title="Problem 15.3.3 (i): mean and variance of q(x_{t−1} | x_t, x_0)",
    statement=("Write posterior_mean_variance(schedule, x0, xt, t): schedule is a diffusion.NoiseSchedule "
               "(schedule.at(name, t, like) reads β_t, α_t, ᾱ_t or 1 − ᾱ_t at the steps t, shaped to "
               "broadcast against like); x0, xt (batch, ...) tensors; t (batch,) integer steps in 1..T. "
               "Return (mean, variance) of q(x_{t−1} | x_t, x_0), both of xt's shape and dtype (the "
               "variance is the same in every coordinate). Remember ᾱ_0 = 1."),
    kind="function",
    reference=diffusion.posterior_mean_variance,
    cases=_posterior_cases,
    harness=_with_schedule,
    hint=("Multiply the two Gaussians q(x_t | x_{t−1}) = N(√α_t x_{t−1}, β_t) and q(x_{t−1} | x_0) = "
          "N(√ᾱ_{t−1} x_0, 1 − ᾱ_{t−1}) as functions of x_{t−1}: precisions add, and the mean is the "
          "precision-weighted combination. ᾱ_{t−1} = ᾱ_t / α_t."),
    wrong_answers=(_wrong_variance_beta, _wrong_swapped, _wrong_alpha_bar_t, _wrong_no_sqrt),
    rtol=1e-5, atol=1e-6,
)


# ---------------------------------------------------------------- Problem 15.3.3 (ii): x̂_0 from ε
def _x0_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1534))
    cases = []
    for betas, shape in zip(_schedules(g), [(6, 64), (5, 2), (4, 1, 3, 3)]):
        xt = torch.randn(shape, generator=g, dtype=F64)
        cases.append((betas, xt, _steps(g, betas.shape[0], shape[0]), torch.randn(shape, generator=g, dtype=F64)))
    return cases


def _wrong_x0_no_sqrt(s, xt, t, eps):     # variances where standard deviations belong
    return (xt - s.at("one_minus_alpha_bars", t, xt) * eps) / s.at("alpha_bars", t, xt)


def _wrong_x0_plus(s, xt, t, eps):        # adds the noise instead of removing it
    return (xt + s.at("one_minus_alpha_bars", t, xt).sqrt() * eps) / s.at("alpha_bars", t, xt).sqrt()


def _wrong_x0_alpha_t(s, xt, t, eps):     # one step's α_t instead of the cumulative ᾱ_t
    return (xt - s.at("betas", t, xt).sqrt() * eps) / s.at("alphas", t, xt).sqrt()


_PREDICT_X0 = Problem(
    id="15.3.3.predict_x0",
    section="15.3",
    title="Problem 15.3.3 (ii): the x_0 that a noise prediction implies",
    statement=("Write predict_x0(schedule, xt, t, eps): invert (15.8) for x_0 given x_t and the noise ε "
               "(batch, ...); t (batch,) integer steps in 1..T. Return x̂_0 of xt's shape."),
    kind="function",
    reference=diffusion.predict_x0,
    cases=_x0_cases,
    harness=_with_schedule,
    hint="x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε: solve for x_0.",
    wrong_answers=(_wrong_x0_no_sqrt, _wrong_x0_plus, _wrong_x0_alpha_t),
    rtol=1e-6, atol=1e-8,
)


# ---------------------------------------------------------------- the training loss (15.10)
def _toy_eps_model(weight, bias, T):
    """A fixed ε_θ(x_t, t) built from plain tensors: tanh(x W + b · t / T), for (batch, d) inputs."""
    def eps_model(x, t):
        return torch.tanh(x @ weight.to(x.dtype) + bias.to(x.dtype) * (t.to(x.dtype)[:, None] / T))
    return eps_model


def _loss_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1535))
    cases = []
    for betas, (n, d), dtype in zip(_schedules(g), [(16, 64), (32, 2), (9, 5)], [torch.float32, F64, F64]):
        T = betas.shape[0]
        weight = torch.randn(d, d, generator=g, dtype=F64) / math.sqrt(d)
        bias = torch.randn(d, generator=g, dtype=F64)
        x0 = (2 * torch.rand(n, d, generator=g, dtype=F64) - 1).to(dtype)
        cases.append((betas, weight, bias, x0, _steps(g, T, n), torch.randn(n, d, generator=g, dtype=F64).to(dtype)))
    return cases


def _loss_harness(answer, betas, weight, bias, x0, t, noise):
    schedule = diffusion.NoiseSchedule(betas)
    return answer(schedule, _toy_eps_model(weight, bias, schedule.T), x0, t, noise)


def _wrong_loss_mse(s, eps_model, x0, t, noise):      # F.mse_loss: a mean over coordinates too (1/d of it)
    xt = diffusion.q_sample(s, x0, t, noise)
    return torch.nn.functional.mse_loss(eps_model(xt, t), noise)


def _wrong_loss_variances(s, eps_model, x0, t, noise):  # x_t = ᾱ_t x_0 + (1 − ᾱ_t) ε: variances as scales
    xt = s.at("alpha_bars", t, x0) * x0 + s.at("one_minus_alpha_bars", t, x0) * noise
    return (noise - eps_model(xt, t)).pow(2).sum(1).mean()


def _wrong_loss_clean_input(s, eps_model, x0, t, noise):  # the network sees x_0, not x_t
    return (noise - eps_model(x0, t)).pow(2).sum(1).mean()


def _wrong_loss_x0_target(s, eps_model, x0, t, noise):   # regresses on x_0 instead of ε
    xt = diffusion.q_sample(s, x0, t, noise)
    return (x0 - eps_model(xt, t)).pow(2).sum(1).mean()


_LOSS = Problem(
    id="15.3.3.loss",
    section="15.3",
    title="The training loss (15.10) on one minibatch",
    statement=("Write ddpm_loss(schedule, eps_model, x0, t, noise): x0 (batch, d) data, noise ε (batch, d) "
               "standard normal, t (batch,) steps in 1..T, eps_model(x_t, t) -> (batch, d). Build x_t by "
               "(15.8) and return the scalar mean over the batch of ‖ε − ε_θ(x_t, t)‖² (the squared norm "
               "sums over the d coordinates)."),
    kind="function",
    reference=diffusion.ddpm_loss,
    cases=_loss_cases,
    harness=_loss_harness,
    hint=("x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε with schedule.at('alpha_bars', t, x0); then "
          "(noise − eps_model(x_t, t)) squared, summed over dim 1, averaged over the batch."),
    wrong_answers=(_wrong_loss_mse, _wrong_loss_variances, _wrong_loss_clean_input, _wrong_loss_x0_target),
    rtol=1e-5, atol=1e-6,
)


# ---------------------------------------------------------------- one sampling step (15.11)
def _step_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1536))
    cases = []
    for i, (betas, shape) in enumerate(zip(_schedules(g), [(8, 64), (6, 2), (5, 1, 2, 2)])):
        t = _steps(g, betas.shape[0], shape[0])
        args = [torch.randn(shape, generator=g, dtype=F64) for _ in range(3)]          # ε, x_t, z
        for sigma in ("beta", "posterior"):
            cases.append((betas, args[0], args[1], t, args[2], sigma))
    return cases


def _step_reference(schedule, eps, xt, t, noise, sigma):
    return diffusion.ddpm_step(schedule, eps, xt, t, noise, sigma=sigma)


def _wrong_step_noise_at_1(s, eps, xt, t, noise, sigma):   # adds σ_1 z at the last step too
    std = diffusion.reverse_variance(s, t, xt, sigma).sqrt()
    return diffusion.reverse_mean(s, eps, xt, t) + std * noise


def _wrong_step_variance_as_std(s, eps, xt, t, noise, sigma):  # σ_t = β_t instead of σ_t² = β_t
    var = diffusion.reverse_variance(s, t, xt, sigma)
    last = (t == 1).reshape(var.shape)
    return diffusion.reverse_mean(s, eps, xt, t) + torch.where(last, 0 * var, var) * noise


def _wrong_step_alpha_bar(s, eps, xt, t, noise, sigma):    # 1/√ᾱ_t in front instead of 1/√α_t
    shift = s.at("betas", t, xt) / s.at("one_minus_alpha_bars", t, xt).sqrt() * eps
    mean = (xt - shift) / s.at("alpha_bars", t, xt).sqrt()
    return mean + (diffusion.ddpm_step(s, eps, xt, t, noise, sigma=sigma) - diffusion.reverse_mean(s, eps, xt, t))


def _wrong_step_ignores_sigma(s, eps, xt, t, noise, sigma):  # always σ_t² = β_t
    return diffusion.ddpm_step(s, eps, xt, t, noise, sigma="beta")


_STEP = Problem(
    id="15.3.3.step",
    section="15.3",
    title="One step of ancestral sampling (15.11)",
    statement=("Write ddpm_step(schedule, eps, xt, t, noise, sigma='posterior'): eps = ε_θ(x_t, t), xt and "
               "noise z (batch, ...), t (batch,) steps in 1..T. Return x_{t−1} by (15.11) with σ_t² = β_t "
               "when sigma == 'beta' and σ_t² = β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t when sigma == "
               "'posterior'. Rows with t = 1 get no noise."),
    kind="function",
    reference=_step_reference,
    cases=_step_cases,
    harness=_with_schedule,
    hint=("Mean: (x_t − β_t / √(1 − ᾱ_t) · ε) / √α_t. Then add σ_t · z, where σ_t is a standard deviation; "
          "torch.where(t == 1, …) (reshaped to broadcast) switches the noise off at the last step."),
    wrong_answers=(_wrong_step_noise_at_1, _wrong_step_variance_as_std, _wrong_step_alpha_bar,
                   _wrong_step_ignores_sigma),
    rtol=1e-5, atol=1e-6,
    reference_names=("companion_lib.diffusion.ddpm_step", "companion_lib.diffusion.reverse_mean",
                     "companion_lib.diffusion.reverse_variance", "companion_lib.diffusion.sample"),
)

#: This section's problems (``companion_lib.grading`` registers them).
SECTION_PROBLEMS = (_POSTERIOR, _PREDICT_X0, _LOSS, _STEP)
