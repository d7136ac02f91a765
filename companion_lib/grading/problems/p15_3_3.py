"""§15.3 reverse process problems: Problem 15.3.3 (the posterior q(x_{t−1} | x_t, x_0); x̂_0 from ε),
the training loss (15.10), one sampling step (15.11), the weight that makes (15.10) a term of the
variational bound (Ho et al. 2020, eq. 12), and the whole sampling loop x_T → x_0."""
import math

import torch

from companion_lib import ddpm, diffusion
from companion_lib.grading.compare import Mismatch, compare_values, float32_aware, holds_float32
from companion_lib.grading.problems._autograd import compare_loss, loss_and_gradient
from companion_lib.grading.registry import Mistake, Problem, case_seed

_F64 = torch.float64


def _schedules(g):
    """Plain β's: Ho et al.'s linear schedule, a capped cosine, and an arbitrary short one."""
    return [diffusion.NoiseSchedule.linear(1000).betas,
            diffusion.NoiseSchedule.cosine(200, max_beta=0.2).betas,
            0.2 * torch.rand(12, generator=g, dtype=_F64) + 1e-3]


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
    for betas, shape, dtype in zip(_schedules(g), [(6, 64), (5, 2), (4, 1, 3, 3)], [torch.float32, _F64, _F64]):
        T = betas.shape[0]
        x0 = (2 * torch.rand(shape, generator=g, dtype=_F64) - 1).to(dtype)
        xt = torch.randn(shape, generator=g, dtype=_F64).to(dtype)
        cases.append((betas, x0, xt, _steps(g, T, shape[0])))
    return cases


def _ab_prev(s, t, like):                 # ᾱ_{t−1} with ᾱ_0 = 1 (for the wrong answers)
    ab = torch.cat([torch.ones(1, dtype=_F64), s.alpha_bars])[t]
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


def _compare_posterior(expected, got):
    """1e-5 on float64 data. On the float32 case, 1 − ᾱ_{t−1} formed in float32 (from ᾱ_t / α_t, an
    honest route) keeps only ~1e-3 of its relative precision near t = 1 (ᾱ ≈ 1 − 1e-4): 2e-3 there.
    The float64 cases still hold every catalogued mistake to 1e-5; an answer computed in float32 on
    them gets the float32 case's tolerance."""
    low = holds_float32(expected) or holds_float32(got)
    try:
        compare_values(expected, got, 2e-3 if low else 1e-5, 1e-3 if low else 1e-6)
    except Mismatch as err:
        return str(err)
    return None


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
    hint=("By Bayes, q(x_{t−1} | x_t, x_0) ∝ q(x_t | x_{t−1}) q(x_{t−1} | x_0): a product of two Gaussians "
          "in x_{t−1}, so a Gaussian. Precisions (inverse variances) add; the mean is the "
          "precision-weighted combination of what each factor says about x_{t−1}.",
          "q(x_t | x_{t−1}) has mean √α_t x_{t−1} and variance β_t; q(x_{t−1} | x_0) has mean √ᾱ_{t−1} x_0 "
          "and variance 1 − ᾱ_{t−1}. The schedule stores ᾱ_t, not ᾱ_{t−1}: α_t links the two, and at "
          "t = 1, ᾱ_0 = 1."),
    mistakes=(
        Mistake(_wrong_variance_beta, "right mean, but the variance is β_t: that is the forward step's "
                "variance (one choice of σ_t² in sampling), not the posterior's β̃_t."),
        Mistake(_wrong_swapped, "the coefficients of x_0 and x_t are swapped: which one carries √ᾱ_{t−1}?"),
        Mistake(_wrong_alpha_bar_t, "the x_0 coefficient uses √ᾱ_t where the posterior needs √ᾱ_{t−1} "
                "(the step before t)."),
        Mistake(_wrong_no_sqrt, "α_t and ᾱ_{t−1} appear without their square roots: the means of (15.8) "
                "scale by √α, the variances by α."),
    ),
    rtol=1e-5, atol=1e-6, compare=_compare_posterior,
)


# ---------------------------------------------------------------- Problem 15.3.3 (ii): x̂_0 from ε
def _x0_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1534))
    cases = []
    for betas, shape in zip(_schedules(g), [(6, 64), (5, 2), (4, 1, 3, 3)]):
        xt = torch.randn(shape, generator=g, dtype=_F64)
        cases.append((betas, xt, _steps(g, betas.shape[0], shape[0]), torch.randn(shape, generator=g, dtype=_F64)))
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
    hint=("(15.8) writes x_t in terms of x_0 and ε; with ε known, that is one linear equation in x_0.",
          "Solve x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε for x_0; read ᾱ_t at the steps t with schedule.at, shaped "
          "to broadcast against xt."),
    mistakes=(
        Mistake(_wrong_x0_no_sqrt, "variances where standard deviations belong: (15.8) scales x_0 by "
                "√ᾱ_t and ε by √(1 − ᾱ_t)."),
        Mistake(_wrong_x0_plus, "the noise is added instead of removed: x_0 is what remains after taking "
                "the noise out of x_t."),
        Mistake(_wrong_x0_alpha_t, "one step's α_t and β_t instead of the cumulative ᾱ_t: x_t is reached "
                "from x_0 in t steps."),
    ),
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
    for betas, (n, d), dtype in zip(_schedules(g), [(16, 64), (32, 2), (9, 5)], [torch.float32, _F64, _F64]):
        T = betas.shape[0]
        weight = torch.randn(d, d, generator=g, dtype=_F64) / math.sqrt(d)
        bias = torch.randn(d, generator=g, dtype=_F64)
        x0 = (2 * torch.rand(n, d, generator=g, dtype=_F64) - 1).to(dtype)
        cases.append((betas, weight, bias, x0, _steps(g, T, n), torch.randn(n, d, generator=g, dtype=_F64).to(dtype)))
    return cases


def _loss_harness(answer, betas, weight, bias, x0, t, noise):
    """The loss on a toy ε_θ whose weights require grad, and its gradient in them (what training uses)."""
    schedule = diffusion.NoiseSchedule(betas)
    params = (weight.detach().clone().requires_grad_(True), bias.detach().clone().requires_grad_(True))
    loss = answer(schedule, _toy_eps_model(*params, schedule.T), x0, t, noise)
    return loss_and_gradient(loss, params, scalar=True)


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


def _wrong_loss_item(s, eps_model, x0, t, noise):        # right value, handed back as a Python number
    return diffusion.ddpm_loss(s, eps_model, x0, t, noise).item()


def _wrong_loss_no_grad(s, eps_model, x0, t, noise):     # right value, computed under torch.no_grad()
    with torch.no_grad():
        return diffusion.ddpm_loss(s, eps_model, x0, t, noise)


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
    hint=("The network learns to predict the noise that made x_t: noise the clean data by (15.8) with the "
          "given ε, ask the network for its guess, and penalise the squared miss. The loss is what "
          "training differentiates, so it must stay a tensor in the graph.",
          "Two reductions with different roles: the squared norm sums over the d coordinates, the "
          "expectation averages over the batch (a mean over every entry is 1/d of the loss). Read ᾱ_t "
          "with schedule.at, shaped like x0."),
    mistakes=(
        Mistake(_wrong_loss_mse, "off by a factor d: a mean over every entry (mse_loss) averages the "
                "coordinates too; ‖ε − ε_θ‖² sums them."),
        Mistake(_wrong_loss_variances, "x_t is built with ᾱ_t and 1 − ᾱ_t, the variances, where (15.8) "
                "takes their square roots."),
        Mistake(_wrong_loss_clean_input, "the network sees the clean x_0: it must see the noised x_t (and t)."),
        Mistake(_wrong_loss_x0_target, "the target is x_0: this network predicts the noise ε."),
        Mistake(_wrong_loss_item, "right value, but the loss has no gradient: did you call .item()? "
                "Training needs the tensor."),
        Mistake(_wrong_loss_no_grad, "right value, but the loss has no gradient: computed under "
                "torch.no_grad() (or from .detach()-ed outputs)? Training would not move the network."),
    ),
    compare=compare_loss(1e-5, 1e-6, grad_rtol=1e-4, grad_atol=1e-6),
)


# ---------------------------------------------------------------- one sampling step (15.11)
def _step_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1536))
    cases = []
    for i, (betas, shape) in enumerate(zip(_schedules(g), [(8, 64), (6, 2), (5, 1, 2, 2)])):
        t = _steps(g, betas.shape[0], shape[0])
        args = [torch.randn(shape, generator=g, dtype=_F64) for _ in range(3)]          # ε, x_t, z
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
    hint=("One step removes the predicted noise's share from x_t, rescales by one step's factor, and adds "
          "fresh noise of the chosen size, except at the very last step, which returns the mean.",
          "The mean of (15.11) divides by √α_t of this one step (not ᾱ_t), and the ε term's coefficient "
          "involves β_t and √(1 − ᾱ_t). σ_t is a standard deviation: the two choices give σ_t², and the "
          "rows with t = 1 need a mask that broadcasts over the other dimensions."),
    mistakes=(
        Mistake(_wrong_step_noise_at_1, "noise is added at t = 1 too: the last step returns the mean."),
        Mistake(_wrong_step_variance_as_std, "the noise is scaled by σ_t², a variance: z needs the standard "
                "deviation σ_t."),
        Mistake(_wrong_step_alpha_bar, "the mean divides by √ᾱ_t where one step's √α_t belongs."),
        Mistake(_wrong_step_ignores_sigma, "sigma='posterior' gives the same as sigma='beta': the argument "
                "is ignored (β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t)."),
    ),
    rtol=1e-5, atol=1e-6,
    reference_names=("companion_lib.diffusion.ddpm_step", "companion_lib.diffusion.reverse_mean",
                     "companion_lib.diffusion.reverse_variance", "companion_lib.diffusion.sample"),
)

# ---------------------------------------------------------------- (15.10) from the bound: the weight of L_{t−1}
def _elbo_cases(rng=None):
    """Steps 2..T (both ends included) on three schedules, both σ choices; x_0, ε and two guesses ε_θ, ε_θ'."""
    g = torch.Generator().manual_seed(case_seed(rng, 1537))
    cases = []
    for betas, (n, d) in zip(_schedules(g), [(40, 3), (25, 2), (11, 4)]):
        T = betas.shape[0]
        t = torch.cat([torch.tensor([2, T]), torch.randint(2, T + 1, (n - 2,), generator=g)])
        x0, eps, e1, e2 = (torch.randn(n, d, generator=g, dtype=_F64) for _ in range(4))
        for sigma in ("posterior", "beta"):
            cases.append((betas, t, sigma, x0, eps, e1, e2))
    return cases


def _elbo_harness(answer, betas, t, sigma, x0, eps, e1, e2):
    """What the weight claims: L_{t−1}(ε_θ) − L_{t−1}(ε_θ') = w_t (‖ε − ε_θ‖² − ‖ε − ε_θ'‖²), per row (the
    constant C_t cancels). tests/grading checks the reference's claim against exact Gaussian KLs."""
    w = answer(diffusion.NoiseSchedule(betas), t, sigma)
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"expected a tensor of weights of shape {tuple(t.shape)}, got {type(w).__name__}")
    if w.shape != t.shape:
        raise ValueError(f"expected one weight per step, shape {tuple(t.shape)}, got {tuple(w.shape)}")
    return w * ((eps - e1).pow(2).sum(1) - (eps - e2).pow(2).sum(1))


def _elbo_reference(schedule, t, sigma):
    with_like = torch.empty(t.shape[0], dtype=schedule.betas.dtype)
    return ddpm.elbo_weight(schedule, t, sigma, like=with_like)


def _w_parts(s, t, sigma):                # β_t, α_t, ᾱ_t, 1 − ᾱ_t, σ_t² at the steps (for the wrong answers)
    like = torch.empty(t.shape[0], dtype=_F64)
    return (s.betas[t - 1], s.alphas[t - 1], s.alpha_bars[t - 1], s.one_minus_alpha_bars[t - 1],
            diffusion.reverse_variance(s, t, like, sigma))


def _wrong_w_no_two(s, t, sigma):          # the ½ of the Gaussian KL forgotten
    b, a, _, om, var = _w_parts(s, t, sigma)
    return b ** 2 / (var * a * om)


def _wrong_w_alpha_bar(s, t, sigma):       # ᾱ_t where one step's α_t belongs
    b, _, ab, om, var = _w_parts(s, t, sigma)
    return b ** 2 / (2 * var * ab * om)


def _wrong_w_sigma(s, t, sigma):           # σ_t where σ_t² belongs
    b, a, _, om, var = _w_parts(s, t, sigma)
    return b ** 2 / (2 * var.sqrt() * a * om)


def _wrong_w_one_minus_alpha(s, t, sigma):  # 1 − α_t (one step) where 1 − ᾱ_t belongs
    b, a, _, _, var = _w_parts(s, t, sigma)
    return b ** 2 / (2 * var * a * (1 - a))


def _wrong_w_not_squared(s, t, sigma):     # the coefficient β_t / (√α_t √(1 − ᾱ_t)) of ε not squared
    b, a, _, om, var = _w_parts(s, t, sigma)
    return b / (2 * var * a.sqrt() * om.sqrt())


def _wrong_w_ignores_sigma(s, t, sigma):   # always σ_t² = β̃_t
    b, a, _, om, var = _w_parts(s, t, "posterior")
    return b ** 2 / (2 * var * a * om)


_ELBO_WEIGHT = Problem(
    id="15.3.3.elbo_weight",
    section="15.3",
    title="(15.10) from the variational bound: the weight of each term L_{t−1}",
    statement=("Write elbo_weight(schedule, t, sigma): schedule is a diffusion.NoiseSchedule (its float64 "
               "tensors schedule.betas, .alphas, .alpha_bars, .one_minus_alpha_bars have length T, index "
               "t − 1 holding step t); t (batch,) integer steps in 2..T; sigma 'posterior' (σ_t² = β̃_t) or "
               "'beta' (σ_t² = β_t). Return the weights w_t, shape (batch,), for which the term of the bound "
               "L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ N(μ_θ(x_t, t), σ_t² I)), with μ_θ the mean of (15.11) "
               "computed from ε_θ(x_t, t), equals w_t ‖ε − ε_θ(x_t, t)‖² + C_t, where ε is the noise that "
               "made x_t by (15.8) and C_t does not depend on ε_θ. The check compares w_t (‖ε − ε_θ‖² − "
               "‖ε − ε_θ'‖²) for two guesses ε_θ, ε_θ' with the difference of the two KLs."),
    kind="function",
    reference=_elbo_reference,
    cases=_elbo_cases,
    harness=_elbo_harness,
    hint=("Both distributions in the KL are Gaussians with variances fixed by the schedule, so ε_θ enters "
          "only through the mean of p_θ: the KL is ‖μ̃_t − μ_θ‖² / (2σ_t²) plus terms free of ε_θ.",
          "By Problem 15.3.3 (ii), μ̃_t(x_t, x_0) is the mean of (15.11) with the true ε in place of ε_θ. "
          "So μ̃_t − μ_θ is one number times (ε_θ − ε): read it off (15.11), square it, and divide by 2σ_t²."),
    mistakes=(
        Mistake(_wrong_w_no_two, "twice the weight: a Gaussian KL has the squared mean gap over 2σ_t², "
                "not over σ_t²."),
        Mistake(_wrong_w_alpha_bar, "ᾱ_t where one step's α_t belongs: the mean of (15.11) divides by "
                "√α_t of this step."),
        Mistake(_wrong_w_sigma, "divided by σ_t where the KL divides by the variance σ_t²."),
        Mistake(_wrong_w_one_minus_alpha, "1 − α_t (one step's β_t) where 1 − ᾱ_t belongs: the ε term of "
                "(15.11) is scaled by β_t / √(1 − ᾱ_t), the noise accumulated over t steps."),
        Mistake(_wrong_w_not_squared, "the coefficient of (ε_θ − ε) in μ̃_t − μ_θ enters the KL squared: "
                "the weight has β_t², α_t and 1 − ᾱ_t, not their square roots."),
        Mistake(_wrong_w_ignores_sigma, "sigma='beta' gives the same as sigma='posterior': the argument is "
                "ignored (σ_t² = β_t or β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t)."),
    ),
    compare=float32_aware(1e-7, 1e-10, rtol32=2e-5, atol32=1e-7),
    reference_names=("companion_lib.ddpm.elbo_weight",),
)


# ---------------------------------------------------------------- the whole sampling loop x_T → x_0
def _loop_cases(rng=None):
    """Three short schedules, both σ; x_T and the T noises fixed, so a correct loop is deterministic."""
    g = torch.Generator().manual_seed(case_seed(rng, 1538))
    schedules = [diffusion.NoiseSchedule.linear(60, beta_end=0.1).betas,
                 diffusion.NoiseSchedule.cosine(40, max_beta=0.2).betas,
                 0.2 * torch.rand(9, generator=g, dtype=_F64) + 1e-3]
    cases = []
    for betas, shape, sigma in zip(schedules, [(6, 3), (5, 2), (4, 1, 2, 2)], ["posterior", "beta", "beta"]):
        T, d = betas.shape[0], math.prod(shape[1:])
        weight = torch.randn(d, d, generator=g, dtype=_F64) / math.sqrt(d)
        bias = 2 * torch.randn(d, generator=g, dtype=_F64)
        x_T = torch.randn(shape, generator=g, dtype=_F64)
        noises = torch.randn((T, *shape), generator=g, dtype=_F64)
        cases.append((betas, weight, bias, x_T, noises, sigma))
    return cases


def _loop_eps_fn(weight, bias, T):
    """A fixed ε_θ(x_t, t) = tanh(x W + b t / T) on the flattened x, which insists on (batch,) long steps in 1..T."""
    def eps_fn(x, t):
        if not isinstance(t, torch.Tensor) or t.dtype != torch.long or t.shape != x.shape[:1]:
            got = f"{t.dtype} tensor of shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise TypeError(f"eps_fn needs t as a (batch,) = ({x.shape[0]},) torch.long tensor, got a {got}")
        if int(t.min()) < 1 or int(t.max()) > T:
            raise ValueError(f"eps_fn was called with t = {int(t.min())}..{int(t.max())}: the steps are 1..T = 1..{T}")
        flat = torch.tanh(x.flatten(1) @ weight + bias * (t.to(x.dtype)[:, None] / T))
        return flat.reshape(x.shape)
    return eps_fn


def _loop_harness(answer, betas, weight, bias, x_T, noises, sigma):
    """The student's loop with a toy ε_θ and the library's step (15.11)."""
    schedule = diffusion.NoiseSchedule(betas)
    return answer(schedule, _loop_eps_fn(weight, bias, schedule.T), diffusion.ddpm_step, x_T.clone(),
                  noises.clone(), sigma)


def _loop_reference(schedule, eps_fn, step_fn, x_T, noises, sigma="posterior"):
    x = x_T
    for i, t_now in enumerate(range(schedule.T, 0, -1)):
        t = torch.full((x.shape[0],), t_now, dtype=torch.long, device=x.device)
        x = step_fn(schedule, eps_fn(x, t), x, t, noises[i], sigma=sigma)
    return x


def _loop_with(name, steps, noise_index, pass_sigma=True):
    """A loop over ``steps`` that reads the noise noises[noise_index(i, t, T)] (for the wrong answers)."""
    def loop(schedule, eps_fn, step_fn, x_T, noises, sigma="posterior"):
        x, T = x_T, schedule.T
        for i, t_now in enumerate(steps(T)):
            t = torch.full((x.shape[0],), t_now, dtype=torch.long)
            z = noises[noise_index(i, t_now, T)]
            x = step_fn(schedule, eps_fn(x, t), x, t, z, sigma=sigma) if pass_sigma else \
                step_fn(schedule, eps_fn(x, t), x, t, z)
        return x
    loop.__name__ = loop.__qualname__ = name
    return loop


_wrong_loop_upwards = _loop_with("_wrong_loop_upwards", lambda T: range(1, T + 1), lambda i, t, T: i)
_wrong_loop_stops_at_x1 = _loop_with("_wrong_loop_stops_at_x1", lambda T: range(T, 1, -1), lambda i, t, T: i)
_wrong_loop_starts_below_T = _loop_with("_wrong_loop_starts_below_T", lambda T: range(T - 1, 0, -1), lambda i, t, T: i)
_wrong_loop_one_noise = _loop_with("_wrong_loop_one_noise", lambda T: range(T, 0, -1), lambda i, t, T: 0)
_wrong_loop_noise_by_t = _loop_with("_wrong_loop_noise_by_t", lambda T: range(T, 0, -1), lambda i, t, T: t - 1)
_wrong_loop_sigma_dropped = _loop_with("_wrong_loop_sigma_dropped", lambda T: range(T, 0, -1), lambda i, t, T: i, pass_sigma=False)

_LOOP = Problem(
    id="15.3.3.sample_loop",
    section="15.3",
    title="The whole sampling loop: from x_T to x_0 with (15.11)",
    statement=("Write sample_loop(schedule, eps_fn, step_fn, x_T, noises, sigma='posterior'): run the reverse "
               "chain from x_T (batch, ...) down to x_0 and return x_0 (batch, ...). At each step t of the "
               "chain ask the network eps_fn(x_t, t), with t a (batch,) torch.long tensor holding the step in "
               "every row, and take one step of (15.11) with step_fn(schedule, eps, x_t, t, z, sigma=sigma) "
               "(Exercise 4's contract: it returns x_{t−1}). noises (T, batch, ...) holds the z's in the order "
               "the steps are taken: noises[0] for the first step, from x_T, and noises[T − 1] for the last, "
               "from x_1. Draw nothing yourself: with x_T and the noises given, the result is determined."),
    kind="function",
    reference=_loop_reference,
    cases=_loop_cases,
    harness=_loop_harness,
    hint=("Generation starts from pure noise at the largest step and walks the chain down, one step of "
          "(15.11) per step of the forward process, each with its own fresh z.",
          "How many steps lead from x_T to x_0, and at which t does the first one happen? Count the steps "
          "you take to pick the z: the first step taken uses noises[0]. Pass sigma on to step_fn."),
    mistakes=(
        Mistake(_wrong_loop_upwards, "the steps run upwards, t = 1, 2, …, T: generation starts at x_T and "
                "walks down to t = 1."),
        Mistake(_wrong_loop_stops_at_x1, "the loop stops one step early and returns x_1: the last step, "
                "from x_1 to x_0 (t = 1), is missing."),
        Mistake(_wrong_loop_starts_below_T, "the first step is taken at t = T − 1: x_T is where the chain "
                "starts, so its first step is t = T (and there are T steps)."),
        Mistake(_wrong_loop_one_noise, "the same z at every step: each step takes its own noise, noises[i] "
                "for the i-th step taken."),
        Mistake(_wrong_loop_noise_by_t, "the noises are read in the reverse order (noises[t − 1] at step t): "
                "noises[0] belongs to the first step taken, from x_T."),
        Mistake(_wrong_loop_sigma_dropped, "sigma is not passed on to step_fn: with sigma='beta' the steps "
                "still use step_fn's default σ_t² = β̃_t."),
    ),
    compare=float32_aware(1e-7, 1e-9, rtol32=2e-4, atol32=2e-5),
    reference_names=("companion_lib.ddpm.sample", "companion_lib.diffusion.sample"),
)

#: This section's problems (``companion_lib.grading`` registers them).
SECTION_PROBLEMS = (_POSTERIOR, _PREDICT_X0, _LOSS, _STEP, _ELBO_WEIGHT, _LOOP)
