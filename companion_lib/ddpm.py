"""§15.3.3 Diffusion models: the reverse process (DDPM).

* ``posterior_mean_variance``  q(x_{t−1} | x_t, x_0) (Problem 15.3.3 (i)); ``predict_x0``, ``reverse_mean``,
  ``reverse_variance``
* ``ddpm_loss`` (15.10), ``elbo_weight`` (the weight that makes (15.10) a term of the bound; Ho et al.
  2020, eq. 12), ``ddpm_step`` (15.11, σ_t² = β_t or β̃_t, optional clipping of x̂_0), ``sample``
  (ancestral, optionally respaced: ``timesteps``, ``respace``), ``variational_bound`` (bits/dim)
* training and sampling choices (lesson 15_3_3b): ``eps_from_prediction`` / ``EpsilonFrom`` (a v- or
  x̂_0-network read as ε_θ), ``min_snr_weight``, ``ddim_step`` and ``ddim_sample`` (deterministic DDIM, η = 0)

The schedule and the forward process (15.7)–(15.8) are ``forward_diffusion`` (§15.3.1); its conventions
hold here: steps t ∈ {1, …, T}, index t − 1 of a schedule's tensors holds step t, float64 schedules
cast to the data's dtype and device, and no host synchronisation on an accelerator (data unchecked for
NaN there, steps range-checked on the device).

The steps and the samplers share one unchecked core per step (``_ddpm_update``, ``_ddim_update``): a
public step checks its input and gathers the schedule's coefficients at its rows' steps; a sampler checks
once, gathers every visited step's coefficients before its loop, and then only calls the network, draws
z and updates x_t (no per-step checks, indexing or host synchronisation), bit for bit the same chain.

Torch only, no plotting, no grading (imports: ``companion_lib._layers``).
"""
from __future__ import annotations

import weakref

import torch

from companion_lib import gaussian
from companion_lib._checks import check_callable, check_choice, check_finite_on_cpu, check_generator, check_int
from companion_lib.forward_diffusion import NoiseSchedule, _check_data, _check_schedule, q_sample, terminal_kl
from companion_lib.settings import cpu_float64

__all__ = ["SIGMAS", "posterior_mean_variance", "predict_x0", "reverse_mean", "reverse_variance", "ddpm_step",
           "ddpm_loss", "elbo_weight", "timesteps", "respace", "sample", "variational_bound",
           "PREDICTIONS", "eps_from_prediction", "EpsilonFrom", "min_snr_weight", "ddim_step", "ddim_sample"]

SIGMAS = ("beta", "posterior")


def _check_like(x, name: str, like: torch.Tensor) -> torch.Tensor:
    x = _check_data(x, name)
    if x.shape != like.shape:
        raise ValueError(f"{name} must have the shape {tuple(like.shape)} of xt, got {tuple(x.shape)}")
    if x.device != like.device:
        raise ValueError(f"{name} is on {x.device} but x_t on {like.device}; put them on one device")
    return x.to(like.dtype)


def _check_template(like, t: torch.Tensor) -> torch.Tensor:
    """``like`` (batch, ...): a floating tensor whose dtype, device and shape a result takes (its values are
    never read), one row per step of the validated steps t (batch,)."""
    if not isinstance(like, torch.Tensor) or not like.is_floating_point():
        raise TypeError(f"like must be a floating torch.Tensor (batch, ...), got {type(like).__name__}")
    if like.ndim < 1 or like.shape[0] != t.shape[0]:
        raise ValueError(f"like must have shape ({t.shape[0]}, ...), one row for each of the {t.shape[0]} steps in t, "
                         f"got {tuple(like.shape)}")
    return like


def _check_shape(shape) -> tuple:
    """The shape (batch, ...) of a sampler's draws: a non-empty tuple or list of positive ints."""
    if not isinstance(shape, (tuple, list, torch.Size)) or not shape:
        raise TypeError(f"shape must be a tuple (batch, ...) of positive integers, got {shape!r}")
    return tuple(check_int(s, "shape entry", low=1) for s in shape)


def _previous(schedule: NoiseSchedule, name: str, t, like: torch.Tensor, at_zero: float) -> torch.Tensor:
    """Schedule quantity ``name`` at step t − 1, with its value ``at_zero`` for t − 1 = 0 (ᾱ_0 = 1)."""
    tc = schedule._steps(t)
    prev = schedule.at(name, (tc - 1).clamp(min=1), like)
    first = (tc == 1).to(like.device).reshape(prev.shape)
    return torch.where(first, torch.full_like(prev, at_zero), prev)


# ------------------------------------------------------------------------ the steps' unchecked core
# Every step below is "gather the schedule's coefficients at t, then combine x_t, ε and z with them". The
# public steps (``ddpm_step``, ``ddim_step``) check their input, gather at the rows' steps t and call the
# update; the samplers check once, gather every visited step's coefficients before the loop (as Python
# floats: no indexing, no host synchronisation per step) and call the same update. Same coefficients,
# same arithmetic: a sampler's chain equals ``ddpm_step`` called step by step, bit for bit.
_TABLES: "weakref.WeakKeyDictionary[NoiseSchedule, tuple]" = weakref.WeakKeyDictionary()


@cpu_float64()
def _coefficient_tables(schedule: NoiseSchedule) -> dict:
    """The steps' coefficients at every step t = 1..T: float64 (T,) on the CPU, index t − 1 holding step t
    (ᾱ_0 = 1), computed once per schedule (again if one of its tensors was replaced or changed in place):

    * ``eps_coef`` β_t / √(1 − ᾱ_t) and ``sqrt_alphas`` √α_t: the mean of (15.11);
    * ``x0_coef`` √ᾱ_{t−1} β_t / (1 − ᾱ_t) and ``xt_coef`` √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t): the posterior
      mean μ̃_t (Problem 15.3.3 (i)), used with a clipped x̂_0;
    * ``std_posterior`` √β̃_t (β̃_1 = 0) and ``std_beta`` √β_t, but 0 at t = 1: σ_t of (15.11), the chain
      ending at its mean;
    * ``sqrt_alpha_bars`` √ᾱ_t and ``sqrt_one_minus_alpha_bars`` √(1 − ᾱ_t): (15.8), read backwards for x̂_0;
    * ``sqrt_alpha_bars_prev`` √ᾱ_{t−1} and ``sqrt_one_minus_alpha_bars_prev`` √(1 − ᾱ_{t−1}): DDIM's
      target level (gathered at t_prev + 1 for a jump to t_prev).
    """
    tensors = (schedule.betas, schedule.alphas, schedule.alpha_bars, schedule.one_minus_alpha_bars)
    version = tuple((id(v), v._version) for v in tensors)
    hit = _TABLES.get(schedule)
    if hit is not None and hit[0] == version:
        return hit[1]
    beta, alpha, ab, one_m = tensors
    ab_prev = torch.cat([torch.ones(1, dtype=ab.dtype), ab[:-1]])                 # ᾱ_{t−1}, ᾱ_0 = 1
    one_m_prev = torch.cat([torch.zeros(1, dtype=ab.dtype), one_m[:-1]])          # 1 − ᾱ_{t−1}
    std_beta = beta.sqrt()
    std_beta[0] = 0.0                                                             # t = 1: no noise
    tables = {"eps_coef": beta / one_m.sqrt(), "sqrt_alphas": alpha.sqrt(),
              "x0_coef": ab_prev.sqrt() * beta / one_m, "xt_coef": alpha.sqrt() * one_m_prev / one_m,
              "std_posterior": (one_m_prev / one_m * beta).sqrt(), "std_beta": std_beta,
              "sqrt_alpha_bars": ab.sqrt(), "sqrt_one_minus_alpha_bars": one_m.sqrt(),
              "sqrt_alpha_bars_prev": ab_prev.sqrt(), "sqrt_one_minus_alpha_bars_prev": one_m_prev.sqrt()}
    _TABLES[schedule] = (version, tables)
    return tables


def _gather(schedule: NoiseSchedule, names, t: torch.Tensor, like: torch.Tensor) -> tuple:
    """The coefficient tables ``names`` at validated steps t (batch,), shaped (batch, 1, ...) in ``like``'s
    dtype and on its device (cast once per dtype and device, as ``NoiseSchedule.at``)."""
    tables = _coefficient_tables(schedule)
    return tuple(schedule._gather("ddpm." + n, tables[n], t, like) for n in names)


_PLAIN = ("eps_coef", "sqrt_alphas")
_CLIPPED = ("sqrt_one_minus_alpha_bars", "sqrt_alpha_bars", "x0_coef", "xt_coef")


def _ddpm_coefficients(schedule: NoiseSchedule, t: torch.Tensor, like: torch.Tensor, sigma: str,
                       clip_x0: bool) -> tuple:
    """What ``_ddpm_update`` needs at validated steps t: ``_CLIPPED`` or ``_PLAIN`` coefficients, then σ_t."""
    return _gather(schedule, (_CLIPPED if clip_x0 else _PLAIN) + ("std_" + sigma,), t, like)


def _ddpm_update(xt: torch.Tensor, eps: torch.Tensor, noise: torch.Tensor, coef: tuple, clip_x0: bool):
    """x_{t−1} from x_t, unchecked: ``coef`` from ``_ddpm_coefficients``, tensors (batch, 1, ...) or floats.

    Without clipping, (15.11): x_{t−1} = (x_t − β_t / √(1 − ᾱ_t) · ε) / √α_t + σ_t z. With clipping, x̂_0 =
    (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t ((15.8) solved for x_0) clipped to [−1, 1], and the posterior mean
    μ̃_t(x_t, x̂_0) of Problem 15.3.3 (i) in place of (15.11)'s mean (equal without clipping, (ii)).
    """
    if clip_x0:
        sqrt_one_m_ab, sqrt_ab, x0_coef, xt_coef, std = coef
        x0_hat = ((xt - sqrt_one_m_ab * eps) / sqrt_ab).clamp(-1.0, 1.0)
        mean = x0_coef * x0_hat + xt_coef * xt                          # μ̃_t(x_t, x̂_0)
    else:
        eps_coef, sqrt_alpha, std = coef
        mean = (xt - eps_coef * eps) / sqrt_alpha                        # (15.11)
    return mean + std * noise


def _ddim_coefficients(schedule: NoiseSchedule, t: torch.Tensor, t_prev: torch.Tensor, like: torch.Tensor) -> tuple:
    """√(1 − ᾱ_t), √ᾱ_t at validated steps t and √ᾱ_{t_prev}, √(1 − ᾱ_{t_prev}) at t_prev in 0..t − 1."""
    return (_gather(schedule, ("sqrt_one_minus_alpha_bars", "sqrt_alpha_bars"), t, like)
            + _gather(schedule, ("sqrt_alpha_bars_prev", "sqrt_one_minus_alpha_bars_prev"), t_prev + 1, like))


def _ddim_update(xt: torch.Tensor, eps: torch.Tensor, coef: tuple) -> torch.Tensor:
    """The DDIM step (η = 0) x_t → x_{t_prev}, unchecked: x̂_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t, then
    x_{t_prev} = √ᾱ_{t_prev} x̂_0 + √(1 − ᾱ_{t_prev}) ε (Song et al. 2021, eq. 12). ``coef``: from
    ``_ddim_coefficients``, tensors (batch, 1, ...) or floats."""
    sqrt_one_m_ab, sqrt_ab, sqrt_ab_prev, sqrt_one_m_ab_prev = coef
    x0_hat = (xt - sqrt_one_m_ab * eps) / sqrt_ab
    return sqrt_ab_prev * x0_hat + sqrt_one_m_ab_prev * eps


def _per_step(coefficients: tuple) -> list:
    """Coefficient tensors (n,) on the CPU → one tuple of Python floats per step (read before a loop)."""
    return list(zip(*(c.tolist() for c in coefficients)))


def _noise_source(generator, shape: tuple, device: torch.device):
    """Check ``generator`` once; return ``randn()``, a standard normal draw of ``shape`` on ``device``.

    A CPU generator (or none: torch's global one) draws on the CPU, the same numbers on every device; on
    CUDA into pinned memory, copied without waiting for the GPU (``non_blocking``). A generator on
    ``device`` itself draws there (no copy; other numbers than the CPU's)."""
    if isinstance(generator, torch.Generator) and generator.device.type == device.type != "cpu":
        return lambda: torch.randn(shape, generator=generator, device=device)
    check_generator(generator)
    pin = device.type == "cuda"
    return lambda: torch.randn(shape, generator=generator, pin_memory=pin).to(device, non_blocking=pin)


def _chain(x: torch.Tensor, eps_fn, model_steps: list, per_step: list, update, keep: set = frozenset(),
           progress: bool = False):
    """The loop every sampler shares: for each visited step i, ε = eps_fn(x, t) with t the (batch,) long
    tensor of the original step ``model_steps[i]``, then x = update(x, ε, per_step[i]). ε is checked for
    its type and shape only (nothing that waits for a device); on the CPU the result is checked finite
    once. Returns x_0 and {t: x_t} for the original steps in ``keep`` (0: x_0)."""
    b = x.shape[0]
    kept = {model_steps[0]: x.clone()} if model_steps[0] in keep else {}
    iterator = range(len(model_steps))
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(iterator, desc="sampling", leave=False, mininterval=0.5)
    for i in iterator:
        eps = eps_fn(x, torch.full((b,), model_steps[i], dtype=torch.long, device=x.device))
        if not isinstance(eps, torch.Tensor):
            raise TypeError(f"eps_fn must return a torch.Tensor of x_t's shape, got {type(eps).__name__}")
        if eps.shape != x.shape:
            raise ValueError(f"eps_fn returned shape {tuple(eps.shape)}, expected x_t's {tuple(x.shape)}")
        x = update(x, eps.to(x.dtype), per_step[i])
        t_next = model_steps[i + 1] if i + 1 < len(model_steps) else 0
        if t_next in keep:
            kept[t_next] = x.clone()
    check_finite_on_cpu(x, "the sample (is eps_fn finite?)")
    return x, kept


def posterior_mean_variance(schedule: NoiseSchedule, x0, xt, t):
    """Mean and variance of the forward process run backwards, q(x_{t−1} | x_t, x_0) (Problem 15.3.3 (i)).

    By Bayes' theorem for Gaussians (q(x_t | x_{t−1}) of (15.7) times q(x_{t−1} | x_0) of (15.8)):

        μ̃_t = √ᾱ_{t−1} β_t / (1 − ᾱ_t) · x_0 + √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · x_t,
        β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t          (ᾱ_0 = 1, so β̃_1 = 0).

    x0, xt: (batch, ...) floating tensors on one device; t: (batch,) integer steps in 1..T.
    Returns ``(mean, variance)``, both of x_t's shape (the variance is the same in every coordinate).
    """
    _check_schedule(schedule)
    xt = _check_data(xt, "xt")
    x0 = _check_like(x0, "x0", xt)
    beta = schedule.at("betas", t, xt)
    alpha = schedule.at("alphas", t, xt)
    one_m_ab = schedule.at("one_minus_alpha_bars", t, xt)              # 1 − ᾱ_t
    ab_prev = _previous(schedule, "alpha_bars", t, xt, 1.0)            # ᾱ_{t−1}
    one_m_ab_prev = _previous(schedule, "one_minus_alpha_bars", t, xt, 0.0)
    mean = (ab_prev.sqrt() * beta / one_m_ab) * x0 + (alpha.sqrt() * one_m_ab_prev / one_m_ab) * xt
    variance = (one_m_ab_prev / one_m_ab * beta).expand_as(xt)
    return mean, variance


def predict_x0(schedule: NoiseSchedule, xt, t, eps) -> torch.Tensor:
    """x̂_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t, eq. (15.8) solved for x_0. Shapes as ``xt`` (batch, ...)."""
    _check_schedule(schedule)
    xt = _check_data(xt, "xt")
    eps = _check_like(eps, "eps", xt)
    return (xt - schedule.at("one_minus_alpha_bars", t, xt).sqrt() * eps) / schedule.at("alpha_bars", t, xt).sqrt()


def reverse_mean(schedule: NoiseSchedule, eps, xt, t) -> torch.Tensor:
    """The mean of (15.11): μ_θ = (x_t − β_t / √(1 − ᾱ_t) · ε_θ) / √α_t. Shapes as ``xt``.

    It equals the posterior mean μ̃_t(x_t, x̂_0) with x_0 replaced by its prediction (Problem 15.3.3 (ii)).
    """
    _check_schedule(schedule)
    xt = _check_data(xt, "xt")
    eps = _check_like(eps, "eps", xt)
    beta = schedule.at("betas", t, xt)
    return (xt - beta / schedule.at("one_minus_alpha_bars", t, xt).sqrt() * eps) / schedule.at("alphas", t, xt).sqrt()


def reverse_variance(schedule: NoiseSchedule, t, like, sigma: str = "posterior") -> torch.Tensor:
    """σ_t² of (15.11), shaped (batch, 1, ...) like ``like``: ``"beta"``: σ_t² = β_t (the reverse step as
    noisy as the forward one); ``"posterior"``: σ_t² = β̃_t, the variance of q(x_{t−1} | x_t, x_0)."""
    check_choice(sigma, "sigma", SIGMAS)
    _check_schedule(schedule)
    _check_template(like, schedule._steps(t))
    if sigma == "beta":
        return schedule.at("betas", t, like)
    one_m_ab_prev = _previous(schedule, "one_minus_alpha_bars", t, like, 0.0)
    return one_m_ab_prev / schedule.at("one_minus_alpha_bars", t, like) * schedule.at("betas", t, like)


def ddpm_step(schedule: NoiseSchedule, eps, xt, t, noise, sigma: str = "posterior", clip_x0: bool = False):
    """One step of ancestral sampling, x_t → x_{t−1}, by (15.11):

        x_{t−1} = (x_t − β_t / √(1 − ᾱ_t) · ε) / √α_t + σ_t z,   z = ``noise`` (standard normal),

    with σ_t² = β_t (``sigma="beta"``) or the posterior variance β̃_t (``"posterior"``); rows with
    t = 1 get no noise (the chain ends at the mean). With ``clip_x0=True`` the step is no longer (15.11)
    as printed: it predicts x̂_0 from ε, clips it to [−1, 1] (the data's range) and takes the posterior
    mean μ̃_t(x_t, x̂_0); without clipping the two are equal (Problem 15.3.3 (ii)).

    eps, xt, noise: (batch, ...) on one device; t: (batch,) integer steps in 1..T. Returns x_{t−1}.
    """
    check_choice(sigma, "sigma", SIGMAS)
    if not isinstance(clip_x0, bool):
        raise TypeError(f"clip_x0 must be True or False, got {clip_x0!r}")
    _check_schedule(schedule)
    xt = _check_data(xt, "xt")
    eps = _check_like(eps, "eps", xt)
    noise = _check_like(noise, "noise", xt)
    tc = schedule._steps(t)
    if tc.shape[0] != xt.shape[0]:
        raise ValueError(f"t has {tc.shape[0]} steps but xt has shape {tuple(xt.shape)}; expected one step per row")
    return _ddpm_update(xt, eps, noise, _ddpm_coefficients(schedule, tc, xt, sigma, clip_x0), clip_x0)


def ddpm_loss(schedule: NoiseSchedule, eps_model, x0, t, noise, *extra) -> torch.Tensor:
    """The training loss (15.10) on one minibatch: mean over the batch of ‖ε − ε_θ(x_t, t)‖²,
    x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (15.8).

    eps_model(x_t, t, *extra) -> (batch, ...); x0, noise: (batch, ...); t: (batch,) steps in 1..T;
    ``extra``: further inputs of the model (a class label for classifier-free guidance). A scalar.
    """
    check_callable(eps_model, "eps_model", "(x_t, t, *extra) to ε_θ of x_t's shape")
    xt = q_sample(schedule, x0, t, noise)
    err = noise - eps_model(xt, t, *extra)
    return err.pow(2).flatten(1).sum(1).mean()


def elbo_weight(schedule: NoiseSchedule, t, sigma: str = "posterior", like=None) -> torch.Tensor:
    """The weight that turns the loss (15.10) into the variational bound's term L_{t−1} (Ho et al. 2020, eq. 12):

        L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ N(μ_θ(x_t, t), σ_t² I))
                = β_t² / (2 σ_t² α_t (1 − ᾱ_t)) · ‖ε − ε_θ(x_t, t)‖² + C_t,

    C_t free of θ, μ_θ the mean of (15.11). (μ̃_t − μ_θ = β_t / (√α_t √(1 − ᾱ_t)) · (ε_θ − ε) by Problem
    15.3.3 (ii), and a KL between Gaussians of one variance is the squared mean gap over 2σ_t².) With
    σ_t² = β̃_t the weight simplifies to β_t / (2 α_t (1 − ᾱ_{t−1})); with σ_t² = β_t, to
    β_t / (2 α_t (1 − ᾱ_t)). Training on Σ_t w_t ‖ε − ε_θ‖² (t uniform) is training on the bound; (15.10)
    sets every w_t to 1.

    t = 1: β̃_1 = 0, so with σ_1² = β̃_1 the formula is infinite (q(x_0 | x_1, x_0) is a point mass: every
    Gaussian p_θ(x_0 | x_1) is infinitely far from it). The bound does not use a KL there: its last term
    is the decoder L_0 = −log N(x_0; μ_θ(x_1, 1), β_1 I) (``variational_bound``, whichever σ), and
    x_0 − μ_θ(x_1, 1) = √(β_1/α_1) (ε_θ − ε) makes L_0 = 1 / (2α_1) · ‖ε − ε_θ‖² + const, the σ_1² = β_1
    value of the formula. So at t = 1 this returns 1 / (2α_1) for both choices: the weight of the term
    the bound actually has.

    schedule: a NoiseSchedule; t (batch,) integer steps in 1..T; sigma ``"posterior"`` (σ_t² = β̃_t) or
    ``"beta"`` (σ_t² = β_t). ``like``: a tensor (batch, ...) whose dtype and device the weight takes,
    shaped (batch, 1, ...) to broadcast against it (as ``NoiseSchedule.at``); without it the weight is
    (batch,), on t's device, in torch's default dtype (float32; pass a float64 ``like`` inside
    ``settings.cpu_float64()`` for exact values).
    """
    check_choice(sigma, "sigma", SIGMAS)
    _check_schedule(schedule)
    tc = schedule._steps(t)
    if like is None:
        like = torch.empty(tc.shape[0], device=tc.device, dtype=torch.get_default_dtype())
    else:
        _check_template(like, tc)
    beta = schedule.at("betas", tc, like)
    var = reverse_variance(schedule, tc, like, sigma)
    first = (tc == 1).to(like.device).reshape(var.shape)
    var = torch.where(first, beta, var)                                 # t = 1: the decoder L_0 (see above)
    return beta.square() / (2 * var * schedule.at("alphas", tc, like) * schedule.at("one_minus_alpha_bars", tc, like))


def timesteps(T: int, n_steps: int) -> list:
    """``n_steps`` steps of 1..T, evenly spaced, T first and 1 last (a respaced chain); all T for n_steps = T."""
    T = check_int(T, "T", low=1)
    n_steps = check_int(n_steps, "n_steps", low=1, high=T)
    return sorted({int(round(1 + (T - 1) * i / max(1, n_steps - 1))) for i in range(n_steps)}, reverse=True)


@cpu_float64()
def respace(schedule: NoiseSchedule, steps) -> NoiseSchedule:
    """The schedule of the chain that visits only ``steps`` (decreasing from some t to 1): the same ᾱ at
    those steps, β'_i = 1 − ᾱ_{s_i} / ᾱ_{s_{i−1}} (Nichol & Dhariwal 2021). Its step i stands for the
    original step ``sorted(steps)[i − 1]``; a denoiser must be called with the original step."""
    _check_schedule(schedule)
    try:
        kept = sorted(int(s) for s in steps)
    except (TypeError, ValueError) as err:
        raise TypeError(f"steps must be a sequence of integer steps in 1..{schedule.T}, got {steps!r}") from err
    if not kept or kept[0] < 1 or kept[-1] > schedule.T or len(set(kept)) != len(kept):
        raise ValueError(f"steps must be distinct integers in 1..{schedule.T}")
    ab = schedule.alpha_bars[torch.tensor(kept) - 1]
    prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
    return NoiseSchedule((1 - ab / prev).clamp(min=1e-12, max=1 - 1e-12), kind=f"{schedule.kind}, respaced")


@torch.no_grad()
def sample(schedule: NoiseSchedule, eps_fn, shape, *, device=None, generator: torch.Generator | None = None,
           sigma: str = "posterior", clip_x0: bool = False, n_steps: int | None = None, step_fn=None,
           keep=(), progress: bool = False):
    """Ancestral sampling: x_T ~ N(0, I), then ``step_fn`` (default ``ddpm_step``, (15.11)) down to t = 1.

    eps_fn(x_t, t) -> ε_θ, with x_t (batch, ...) float32 on ``device`` and t (batch,) long steps of the
    ORIGINAL schedule. ``step_fn(schedule, eps, x_t, t, noise, sigma=...)`` (and ``clip_x0=True`` only when
    asked) has ``ddpm_step``'s contract. ``shape``: (batch, ...). ``n_steps``: visit only that many steps, evenly spaced
    (``respace``; fewer network calls, a different chain). ``generator``: draws of x_T, then one z per
    step, on the CPU (the same on every device) or, a generator on ``device``, there. ``keep``: original
    steps at which to record x_t (also 0 for the result).
    Returns x_0, or ``(x_0, {t: x_t})`` when ``keep`` is given.

    With ``ddpm_step`` the input is checked once and each visited step's coefficients are gathered
    before the loop (``_ddpm_update``): no per-step checks, no host synchronisation; the chain equals
    ``ddpm_step`` called step by step, bit for bit. Another ``step_fn`` is called at every step as given.
    """
    _check_schedule(schedule)
    check_choice(sigma, "sigma", SIGMAS)
    if not isinstance(clip_x0, bool):
        raise TypeError(f"clip_x0 must be True or False, got {clip_x0!r}")
    shape = _check_shape(shape)
    device = torch.device(device) if device is not None else torch.device("cpu")
    randn = _noise_source(generator, shape, device)
    step_fn = ddpm_step if step_fn is None else step_fn
    if not callable(eps_fn) or not callable(step_fn):
        raise TypeError("eps_fn and step_fn must be callables")
    original = list(range(schedule.T, 0, -1)) if n_steps is None else timesteps(schedule.T, n_steps)
    chain = schedule if n_steps is None else respace(schedule, original)
    x = randn()
    chain_steps = torch.arange(len(original), 0, -1)                    # the chain's own steps n..1
    if step_fn is ddpm_step:
        coef = _per_step(_ddpm_coefficients(chain, chain_steps, torch.empty(len(original), dtype=x.dtype),
                                            sigma, clip_x0))

        def update(x, eps, c):
            return _ddpm_update(x, eps, randn(), c, clip_x0)
    else:
        coef = chain_steps.tolist()
        options = {"clip_x0": True} if clip_x0 else {}                  # a student's step need not clip

        def update(x, eps, t):
            t = torch.full((shape[0],), t, dtype=torch.long, device=device)
            return step_fn(chain, eps, x, t, randn(), sigma=sigma, **options)
    x, kept = _chain(x, eps_fn, original, coef, update, {int(k) for k in keep}, progress)
    return (x, kept) if keep else x


def _strata(T: int, n: int):
    """Edges of at most ``n`` strata of the steps 2..T, geometrically spaced (narrow at small t, where the
    terms of the bound are large and change fast); returns (starts, widths) as lists."""
    edges = sorted({int(round(2 * ((T + 1) / 2) ** (i / n))) for i in range(n + 1)} | {2, T + 1})
    edges = [e for e in edges if 2 <= e <= T + 1]
    return edges[:-1], [b - a for a, b in zip(edges[:-1], edges[1:])]


@torch.no_grad()
def variational_bound(schedule: NoiseSchedule, eps_fn, x0, *, n_t: int = 64, sigma: str = "posterior",
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """An unbiased Monte-Carlo estimate of the variational bound on −log p_θ(x_0), in nats:

        −log p_θ(x_0) ≤ L_T + Σ_{t=2}^{T} L_{t−1} + L_0,   where

    * L_T = KL(q(x_T | x_0) ‖ N(0, I)), exact;
    * L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ N(μ_θ(x_t, t), σ_t² I)), μ_θ the unclipped mean of (15.11).
      The sum over t is estimated by stratified sampling: 2..T is cut into at most ``n_t`` strata,
      geometrically spaced (single steps at small t, where the terms are largest), one t and one x_t
      drawn per stratum, weighted by the stratum's width;
    * L_0 = −log N(x_0; μ_θ(x_1, 1), β_1 I): the decoder of the last step is a Gaussian with variance β_1
      (the posterior variance β̃_1 is 0, so σ_1² = β_1 whichever ``sigma``), a density on the model's
      continuous scale; one draw of x_1.

    x0 (batch, ...) on the model's device, on the scale the model trained on. Returns (batch,): one
    independent estimate per row (so the spread over rows gives the standard error of their mean).
    For another scale add its log-Jacobian (−d log 2 nats from [−1, 1] to [0, 1), ``data.unit_to_signed``).
    """
    _check_schedule(schedule)
    check_choice(sigma, "sigma", SIGMAS)
    n_t = check_int(n_t, "n_t", low=1)
    check_callable(eps_fn, "eps_fn", "(x_t, t) to ε_θ of x_t's shape")
    check_generator(generator)
    x0 = _check_data(x0, "x0")
    if x0.ndim < 2:
        raise ValueError(f"x0 must have shape (batch, ...) with at least one data dimension, got {tuple(x0.shape)}")
    if schedule.T < 2:
        raise ValueError("the bound needs T >= 2")
    b, dev = x0.shape[0], x0.device
    gen_device = generator.device if generator is not None else torch.device("cpu")

    def randn():
        return torch.randn(x0.shape, generator=generator, device=gen_device).to(dev)

    def steps(value):
        return torch.full((b,), value, dtype=torch.long, device=dev)

    total = terminal_kl(schedule, x0)                                   # L_T
    # L_0: the Gaussian decoder with variance β_1
    t1 = steps(1)
    x1 = q_sample(schedule, x0, t1, randn())
    mu = reverse_mean(schedule, eps_fn(x1, t1), x1, t1)
    v1 = schedule.at("betas", t1, x0)
    total = total - gaussian.log_normal(x0, mu, v1, check=False).flatten(1).sum(1)
    # Σ_{t=2}^T L_{t−1}, stratified over t
    for start, width in zip(*_strata(schedule.T, n_t)):
        t = start + torch.randint(0, width, (b,), generator=generator, device=gen_device).to(dev)
        xt = q_sample(schedule, x0, t, randn())
        m_q, v_q = posterior_mean_variance(schedule, x0, xt, t)
        m_p = reverse_mean(schedule, eps_fn(xt, t), xt, t)
        v_p = reverse_variance(schedule, t, x0, sigma).expand_as(x0)
        total = total + width * gaussian.kl(m_q, v_q, m_p, v_p, check=False).flatten(1).sum(1)
    return total


# ---------------------------------------------------------------- training and sampling choices (lesson 15_3_3b)
PREDICTIONS = ("eps", "v", "x0")


def eps_from_prediction(schedule: NoiseSchedule, out, xt, t, prediction: str = "eps") -> torch.Tensor:
    """The noise ε that a network's output ``out`` stands for, so that (15.10), (15.11) and every sampler
    written for ε_θ run unchanged on a network that predicts something else. With x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (15.8):

    * ``"eps"``: out = ε̂ (the text's choice);
    * ``"v"``:   out = v̂, v = √ᾱ_t ε − √(1 − ᾱ_t) x_0 (Salimans & Ho 2022), so ε̂ = √ᾱ_t v̂ + √(1 − ᾱ_t) x_t;
    * ``"x0"``:  out = x̂_0, so ε̂ = (x_t − √ᾱ_t x̂_0) / √(1 − ᾱ_t) (eq. (15.8) solved for ε).

    out, xt: (batch, ...) on one device; t: (batch,) steps in 1..T. Returns ε̂ of xt's shape.
    """
    check_choice(prediction, "prediction", PREDICTIONS)
    _check_schedule(schedule)
    xt = _check_data(xt, "xt")
    out = _check_like(out, "out", xt)
    if prediction == "eps":
        return out
    ab, one_m = schedule._at(("alpha_bars", "one_minus_alpha_bars"), t, xt)
    if prediction == "v":
        return ab.sqrt() * out + one_m.sqrt() * xt
    return (xt - ab.sqrt() * out) / one_m.sqrt()


class EpsilonFrom(torch.nn.Module):
    """ε_θ(x_t, t, *extra) from a network ``net(x_t, t, *extra)`` that predicts ``prediction`` (one of
    ``PREDICTIONS``; ``eps_from_prediction``). Its parameters are the network's: train and sample it as an
    ε-network. ``schedule``: the NoiseSchedule the network is trained on."""

    def __init__(self, net: torch.nn.Module, schedule: NoiseSchedule, prediction: str = "v"):
        super().__init__()
        if not isinstance(net, torch.nn.Module):
            raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
        _check_schedule(schedule)
        self.net, self.schedule = net, schedule
        self.prediction = check_choice(prediction, "prediction", PREDICTIONS)

    def forward(self, xt, t, *extra):
        return eps_from_prediction(self.schedule, self.net(xt, t, *extra), xt, t, self.prediction)


def min_snr_weight(schedule: NoiseSchedule, t, gamma: float = 5.0, like=None) -> torch.Tensor:
    """The min-SNR-γ weight of the ε-loss (15.10) (Hang et al. 2023): w_t = min(SNR_t, γ) / SNR_t with
    SNR_t = ᾱ_t / (1 − ᾱ_t). It caps the weight of the low-noise steps (SNR_t > γ), where ‖ε − ε_θ‖² is
    large but matters little for the samples. The same w_t on ‖ε − ε̂‖² is min-SNR for an ε-, v- or
    x̂_0-network alike (their squared errors are ‖ε − ε̂‖² times 1/ᾱ_t and 1/SNR_t).

    t (batch,) steps in 1..T; ``like``: as ``elbo_weight`` (shape (batch, 1, ...), its dtype and device;
    without it (batch,) in torch's default dtype).
    """
    _check_schedule(schedule)
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0 or gamma == float("inf"):
        raise ValueError(f"gamma must be a finite number > 0, got {gamma!r}")
    tc = schedule._steps(t)
    if like is None:
        like = torch.empty(tc.shape[0], device=tc.device, dtype=torch.get_default_dtype())
    else:
        _check_template(like, tc)
    ab, one_m = schedule._at(("alpha_bars", "one_minus_alpha_bars"), tc, like)
    snr = ab / one_m
    return snr.clamp(max=float(gamma)) / snr


def ddim_step(schedule: NoiseSchedule, eps, xt, t, t_prev) -> torch.Tensor:
    """One deterministic DDIM step (Song, Meng & Ermon 2021, eq. 12 with η = 0), x_t → x_{t_prev}:

        x̂_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t,     x_{t_prev} = √ᾱ_{t_prev} x̂_0 + √(1 − ᾱ_{t_prev}) ε,

    i.e. move to the noise level of t_prev along the line through x̂_0 and the same ε, adding no noise.
    t_prev may skip steps (any 0 ≤ t_prev < t). The last step, t_prev = 0, uses ᾱ_0 = 1 and returns
    x̂_0 itself; in diffusers' 0-based numbering (their timestep = t − 1) that is prev_timestep = −1
    with ``set_alpha_to_one=True``. Equal to diffusers' ``DDIMScheduler.step`` with the same betas,
    ``clip_sample=False``, eta = 0.

    eps, xt: (batch, ...) on one device; t (batch,) steps in 1..T; t_prev (batch,) steps in 0..T − 1,
    below t row by row. Returns x_{t_prev} of xt's shape.
    """
    _check_schedule(schedule)
    xt = _check_data(xt, "xt")
    eps = _check_like(eps, "eps", xt)
    tc = schedule._steps(t)
    if not isinstance(t_prev, torch.Tensor):
        try:
            t_prev = torch.as_tensor(t_prev)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"t_prev must be integer steps (batch,), got {type(t_prev).__name__}") from err
    if t_prev.dtype.is_floating_point or t_prev.dtype == torch.bool or t_prev.shape != tc.shape:
        raise ValueError(f"t_prev must be integer steps of t's shape {tuple(tc.shape)}, "
                         f"got {t_prev.dtype} {tuple(t_prev.shape)}")
    t_prev = t_prev.to(tc.device).long()
    if tc.device.type == "cpu" and bool(((t_prev < 0) | (t_prev >= tc)).any()):
        raise ValueError("t_prev must lie in 0..t − 1 row by row (t_prev = 0: the data, ᾱ_0 = 1)")
    if tc.shape[0] != xt.shape[0]:
        raise ValueError(f"t has {tc.shape[0]} steps but xt has shape {tuple(xt.shape)}; expected one step per row")
    return _ddim_update(xt, eps, _ddim_coefficients(schedule, tc, t_prev, xt))


@torch.no_grad()
def ddim_sample(schedule: NoiseSchedule, eps_fn, shape, n_steps: int | None = None, *, steps=None, device=None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Deterministic DDIM sampling: x_T ~ N(0, I), then ``ddim_step`` along ``timesteps(T, n_steps)`` and
    a last step to t_prev = 0 (x̂_0). One network call per visited step; the draw of x_T is the only
    randomness. eps_fn(x_t, t) -> ε_θ as for ``sample``; shape (batch, ...). Returns x_0.

    ``steps`` instead of ``n_steps``: the steps to visit, decreasing, in 1..T (e.g. diffusers' default
    spacing 1 + i · (T // n)). Checked once, coefficients gathered before the loop (``_ddim_update``):
    equal to ``ddim_step`` called step by step, bit for bit, with no host synchronisation per step.
    ``generator``: as for ``sample``."""
    _check_schedule(schedule)
    if not callable(eps_fn):
        raise TypeError("eps_fn must be a callable eps_fn(x_t, t)")
    shape = _check_shape(shape)
    device = torch.device(device) if device is not None else torch.device("cpu")
    randn = _noise_source(generator, shape, device)
    if (n_steps is None) == (steps is None):
        raise TypeError("give either n_steps (that many evenly spaced steps) or steps (the steps themselves)")
    visited = timesteps(schedule.T, n_steps) if steps is None else _check_visited(steps, schedule.T)
    x = randn()
    like = torch.empty(len(visited), dtype=x.dtype)
    coef = _per_step(_ddim_coefficients(schedule, torch.tensor(visited), torch.tensor(visited[1:] + [0]), like))
    x, _ = _chain(x, eps_fn, visited, coef, _ddim_update)
    return x


def _check_visited(steps, T: int) -> list:
    """Steps to visit: a non-empty, strictly decreasing sequence of integers in 1..T."""
    if isinstance(steps, torch.Tensor):
        steps = steps.tolist()
    if not isinstance(steps, (list, tuple, range)) or not steps:
        raise TypeError(f"steps must be a non-empty list of integer steps in 1..{T}, decreasing; got {steps!r}")
    visited = [check_int(s, "steps entry", low=1, high=T) for s in steps]
    if any(b >= a for a, b in zip(visited, visited[1:])):
        raise ValueError(f"steps must decrease strictly, got {visited}")
    return visited
