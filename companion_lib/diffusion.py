"""§15.3 Diffusion models: the noise schedule and the forward process.

* ``NoiseSchedule``  β_t, α_t = 1 − β_t and ᾱ_t = ∏_{s≤t} α_s for t = 1..T (linear or cosine)
* ``q_sample``       x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, a draw of q(x_t | x_0)                  eq. 15.8
* ``forward_chain``  the chain (15.7) iterated step by step (what Problem 15.3.1 proves (15.8) equals)
* ``terminal_kl``    KL(q(x_T | x_0) ‖ N(0, I)): is ᾱ_T small enough that x_T is pure noise?
* ``posterior_mean_variance``  q(x_{t−1} | x_t, x_0) (Problem 15.3.3 (i)); ``predict_x0``, ``reverse_mean``
* ``ddpm_loss`` (15.10), ``ddpm_step`` (15.11, σ_t² = β_t or β̃_t, optional clipping of x̂_0), ``sample``
  (ancestral, optionally respaced: ``timesteps``, ``respace``), ``variational_bound`` (bits/dim)

Indexing convention (everywhere in the companion): steps follow the text, t ∈ {1, …, T}. A schedule's
tensors have length T and **index t − 1 holds step t** (``betas[0]`` is β_1). Where a formula needs
ᾱ_0 it is 1 (no noise yet). Schedules are float64 on the CPU; they are cast to the data's dtype and
device where they meet the data, never the other way round (the dtype rule of ``settings``). The cast
tables are kept per (device, dtype), so a training or sampling loop on a GPU reads them there.

Checks and host synchronisation: on the CPU, data that are not finite and steps outside 1..T raise a
``ValueError``. On an accelerator (CUDA, MPS) those value checks would each cost a device-to-host
synchronisation per call (one per training or sampling step), so there the finiteness of data
(x0, noise, x_t, ε) is **not** checked, and steps are range-checked by ``torch._assert_async``, a
device-side assertion that stops the run with the same message without waiting for the device.
Shapes, dtypes and devices are checked everywhere (they cost nothing).

Torch only, no plotting, no grading (imports: ``companion_lib._layers``).
"""
from __future__ import annotations

import math

import torch

from companion_lib import gaussian
from companion_lib.gaussian_mixture import as_mixture
from companion_lib._checks import (as_tensor, check_choice, check_float, check_generator, check_int,
                                   check_steps)
from companion_lib.settings import cpu_float64

__all__ = ["NoiseSchedule", "q_sample", "forward_chain", "terminal_kl",
           "posterior_mean_variance", "predict_x0", "reverse_mean",
           "reverse_variance", "ddpm_step", "ddpm_loss", "timesteps", "respace", "sample", "variational_bound",
           "noisy_mixture", "fit_digits"]


class NoiseSchedule:
    """The variances β_1..β_T of the forward process (15.7) and the quantities derived from them.

    Attributes (float64 tensors of length T on the CPU; index t − 1 is step t):

    * ``betas``                β_t
    * ``alphas``               α_t = 1 − β_t
    * ``alpha_bars``           ᾱ_t = ∏_{s=1}^t α_s                                        (15.8)
    * ``one_minus_alpha_bars`` 1 − ᾱ_t, computed as −expm1(Σ log α_s), without the cancellation
                               of 1 − ᾱ_t when ᾱ_t is close to 1 (small t)

    Build one with ``NoiseSchedule.linear(T, beta_start, beta_end)`` (Ho et al. 2020) or
    ``NoiseSchedule.cosine(T)`` (Nichol & Dhariwal 2021), or from any β's: ``NoiseSchedule(betas)``.
    """

    @cpu_float64()
    def __init__(self, betas, kind: str = "custom"):
        b = as_tensor(betas, "betas", ndim=1, dtype=torch.float64, device="cpu", min_rows=1)
        if (b <= 0).any() or (b >= 1).any():
            raise ValueError("every β_t must lie in (0, 1)")
        self.kind = kind
        self.betas = b
        self.alphas = 1.0 - b
        log_alpha_bars = torch.cumsum(torch.log1p(-b), 0)
        self.alpha_bars = torch.exp(log_alpha_bars)                 # ᾱ_t = ∏ α_s       (15.8)
        self.one_minus_alpha_bars = -torch.expm1(log_alpha_bars)    # 1 − ᾱ_t, no cancellation
        self._tables = {}                                           # (name, dtype, device) → cast copy

    @property
    def T(self) -> int:
        """Number of steps."""
        return int(self.betas.shape[0])

    @classmethod
    def linear(cls, T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> "NoiseSchedule":
        """β_t linear from ``beta_start`` (t = 1) to ``beta_end`` (t = T), as in Ho et al. (2020)."""
        T = check_int(T, "T", low=1)
        beta_start = check_float(beta_start, "beta_start", low=0.0, high=1.0, low_open=True, high_open=True)
        beta_end = check_float(beta_end, "beta_end", low=0.0, high=1.0, low_open=True, high_open=True)
        with cpu_float64():
            betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
        return cls(betas, kind="linear")

    @classmethod
    def cosine(cls, T: int, s: float = 0.008, max_beta: float = 0.999) -> "NoiseSchedule":
        """ᾱ_t = f(t)/f(0) with f(t) = cos²((t/T + s)/(1 + s) · π/2) (Nichol & Dhariwal 2021);
        β_t = min(1 − ᾱ_t/ᾱ_{t−1}, ``max_beta``) (the clip keeps β_T < 1)."""
        T = check_int(T, "T", low=1)
        s = check_float(s, "s", low=0.0)
        max_beta = check_float(max_beta, "max_beta", low=0.0, high=1.0, low_open=True, high_open=True)
        with cpu_float64():
            steps = torch.arange(T + 1, dtype=torch.float64) / T
            f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
            betas = (1 - f[1:] / f[:-1]).clamp(min=1e-12, max=max_beta)
        return cls(betas, kind="cosine")

    def _steps(self, t, name: str = "t") -> torch.Tensor:
        """Validate integer steps t (batch,) in 1..T; returns them as a long tensor on t's device.

        On the CPU a step outside 1..T is a ``ValueError``; on an accelerator the range check is a
        device-side ``torch._assert_async`` (no host synchronisation; see the module docstring)."""
        return check_steps(t, name, 1, self.T, f"{name} must hold the text's steps 1..T = 1..{self.T}")

    def _table(self, name: str, values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``values`` cast to ``like``'s dtype (on the CPU) and moved to its device, once per
        (name, dtype, device); rebuilt if the schedule's tensor was replaced or changed in place."""
        key = (name, like.dtype, like.device)
        hit = self._tables.get(key)
        if hit is not None and hit[0] is values and hit[1] == values._version:
            return hit[2]
        with cpu_float64():
            table = values.to(like.dtype).to(like.device)
        self._tables[key] = (values, values._version, table)
        return table

    def at(self, name: str, t, like: torch.Tensor) -> torch.Tensor:
        """Schedule quantity ``name`` (e.g. ``"alpha_bars"``) at steps t (batch,), shaped (batch, 1, …)
        to broadcast against ``like`` (batch, …), in ``like``'s dtype and on its device."""
        values = getattr(self, name, None) if isinstance(name, str) else None
        if not isinstance(values, torch.Tensor) or values.shape != self.betas.shape:
            raise ValueError(f"{name!r} is not a per-step quantity of the schedule (e.g. 'alpha_bars')")
        if not isinstance(like, torch.Tensor):
            raise TypeError(f"like must be a torch.Tensor (batch, ...), got {type(like).__name__}")
        t = self._steps(t)
        if like.ndim < 1 or like.shape[0] != t.shape[0]:
            raise ValueError(f"t has {t.shape[0]} steps but the data has shape {tuple(like.shape)}; "
                             "expected one step per row")
        picked = self._table(name, values, like)[t.to(like.device) - 1]     # index t − 1 holds step t
        return picked.reshape(-1, *([1] * (like.ndim - 1)))

    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio ᾱ_t / (1 − ᾱ_t), float64 (T,)."""
        with cpu_float64():
            return self.alpha_bars / self.one_minus_alpha_bars

    def __repr__(self) -> str:
        return (f"NoiseSchedule({self.kind}, T={self.T}, β_1={self.betas[0].item():.3g}, "
                f"β_T={self.betas[-1].item():.3g}, ᾱ_T={self.alpha_bars[-1].item():.3g})")


def _check_data(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (batch, ...), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {x.dtype}")
    if x.ndim < 1:
        raise ValueError(f"{name} must have a batch dimension, got a scalar")
    if x.device.type == "cpu" and not torch.isfinite(x).all():   # accelerators: unchecked (no sync)
        raise ValueError(f"{name} must be finite; it holds NaN or infinite values")
    return x


def q_sample(schedule: NoiseSchedule, x0, t, noise) -> torch.Tensor:
    """A draw of q(x_t | x_0): ``x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε`` (15.8).

    x0 (batch, ...) and noise ε (same shape, standard normal) floating tensors; t (batch,) integer
    steps in 1..T. The result has x0's dtype and device (the float64 schedule is cast to them). On an
    accelerator the call never waits for the device: x0 and noise are not checked for NaN there and
    t is range-checked by a device-side assertion (see the module docstring).
    """
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    x0 = _check_data(x0, "x0")
    noise = _check_data(noise, "noise")
    if noise.shape != x0.shape:
        raise ValueError(f"noise must have x0's shape {tuple(x0.shape)}, got {tuple(noise.shape)}")
    if noise.device != x0.device:
        raise ValueError(f"noise is on {noise.device} but x0 on {x0.device}; put them on one device")
    sqrt_ab = schedule.at("alpha_bars", t, x0).sqrt()                  # √ᾱ_t
    sqrt_1m = schedule.at("one_minus_alpha_bars", t, x0).sqrt()        # √(1 − ᾱ_t)
    return sqrt_ab * x0 + sqrt_1m * noise.to(x0.dtype)                 # (15.8)


def forward_chain(schedule: NoiseSchedule, x0, t: int, generator: torch.Generator | None = None,
                  keep=None) -> torch.Tensor:
    """Run the Markov chain (15.7) for t steps: ``x_s = √(1 − β_s) x_{s−1} + √β_s ε_s``, s = 1..t,
    with fresh standard normal ε_s at every step (the slow route that (15.8) shortcuts).

    x0 (batch, ...) floating tensor; t an int in 0..T, the same number of steps for every row (0
    returns a copy of x0). ``generator``: optional CPU torch.Generator for the noise (drawn on the CPU,
    then moved to x0's device). ``keep``: optional increasing steps in 0..t at which to record the chain.
    Returns x_t with x0's shape, dtype and device; with ``keep``, a tensor (len(keep), batch, ...)
    holding x_s for s in ``keep``.
    """
    schedule = _check_schedule(schedule)
    x = _check_data(x0, "x0").clone()
    t = check_int(t, "t", low=0, high=schedule.T)
    if keep is not None:
        keep = [check_int(k, "keep[i]", low=0, high=t) for k in keep]
        if not keep or any(b <= a for a, b in zip(keep, keep[1:])):
            raise ValueError(f"keep must be a non-empty increasing list of steps in 0..{t}, got {keep}")
    generator = check_generator(generator)
    coeffs = [(math.sqrt(1.0 - b), math.sqrt(b)) for b in schedule.betas[:t].tolist()]   # read-out
    saved = [x.clone()] if keep is not None and keep[0] == 0 else []
    for s, (a, b) in enumerate(coeffs, start=1):
        if generator is None:
            eps = torch.randn_like(x)
        else:
            eps = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x = a * x + b * eps                                              # (15.7), one step
        if keep is not None and s in keep:
            saved.append(x.clone())
    return torch.stack(saved) if keep is not None else x


def terminal_kl(schedule: NoiseSchedule, x0) -> torch.Tensor:
    """KL(q(x_T | x_0) ‖ N(0, I)) in nats for each row of x0 (batch, ...): how far the end of the
    forward process is from the pure noise a sampler starts from (0 only when ᾱ_T = 0). Per coordinate
    ½(ᾱ_T (x_0² − 1) − log(1 − ᾱ_T)), from (15.8); summed over all but the batch dimension.
    Returns (batch,) in x0's dtype and on its device."""
    schedule = _check_schedule(schedule)
    x0 = _check_data(x0, "x0")
    ab = schedule.alpha_bars[-1].item()                                  # read-outs of the float64
    log_1m = math.log(schedule.one_minus_alpha_bars[-1].item())          # schedule, as Python floats
    return (0.5 * (ab * (x0 ** 2 - 1.0) - log_1m)).reshape(x0.shape[0], -1).sum(1)


# ================================================================================================
# The reverse process: the posterior q(x_{t−1} | x_t, x_0), one step of (15.11), the ancestral sampler,
# the training loss (15.10) and the variational bound.
# ================================================================================================
SIGMAS = ("beta", "posterior")


def _check_schedule(schedule) -> NoiseSchedule:
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    return schedule


def _check_like(x, name: str, like: torch.Tensor) -> torch.Tensor:
    x = _check_data(x, name)
    if x.shape != like.shape:
        raise ValueError(f"{name} must have the shape {tuple(like.shape)} of x_t, got {tuple(x.shape)}")
    if x.device != like.device:
        raise ValueError(f"{name} is on {x.device} but x_t on {like.device}; put them on one device")
    return x.to(like.dtype)


def _previous(schedule: NoiseSchedule, name: str, t, like: torch.Tensor, at_zero: float) -> torch.Tensor:
    """Schedule quantity ``name`` at step t − 1, with its value ``at_zero`` for t − 1 = 0 (ᾱ_0 = 1)."""
    tc = schedule._steps(t)
    prev = schedule.at(name, (tc - 1).clamp(min=1), like)
    first = (tc == 1).to(like.device).reshape(prev.shape)
    return torch.where(first, torch.full_like(prev, at_zero), prev)


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
    if clip_x0:
        x0_hat = predict_x0(schedule, xt, t, eps).clamp(-1.0, 1.0)
        mean, _ = posterior_mean_variance(schedule, x0_hat, xt, t)
    else:
        mean = reverse_mean(schedule, eps, xt, t)                       # (15.11)
    std = reverse_variance(schedule, t, xt, sigma).sqrt()
    last = (schedule._steps(t) == 1).to(xt.device).reshape(std.shape)
    return mean + torch.where(last, torch.zeros_like(std), std) * noise


def ddpm_loss(schedule: NoiseSchedule, eps_model, x0, t, noise, *extra) -> torch.Tensor:
    """The training loss (15.10) on one minibatch: mean over the batch of ‖ε − ε_θ(x_t, t)‖²,
    x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (15.8).

    eps_model(x_t, t, *extra) -> (batch, ...); x0, noise: (batch, ...); t: (batch,) steps in 1..T;
    ``extra``: further inputs of the model (a class label for classifier-free guidance). A scalar.
    """
    xt = q_sample(schedule, x0, t, noise)
    err = noise - eps_model(xt, t, *extra)
    return err.pow(2).flatten(1).sum(1).mean()


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
    kept = sorted(int(s) for s in steps)
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
    (``respace``; fewer network calls, a different chain). ``generator``: draws of x_T and z (on its own
    device, then moved). ``keep``: original steps at which to record x_t (also 0 for the result).
    Returns x_0, or ``(x_0, {t: x_t})`` when ``keep`` is given.
    """
    _check_schedule(schedule)
    check_choice(sigma, "sigma", SIGMAS)
    shape = tuple(check_int(s, "shape entry", low=1) for s in shape)
    device = torch.device(device) if device is not None else torch.device("cpu")
    step_fn = ddpm_step if step_fn is None else step_fn
    if not callable(eps_fn) or not callable(step_fn):
        raise TypeError("eps_fn and step_fn must be callables")
    original = list(range(schedule.T, 0, -1)) if n_steps is None else timesteps(schedule.T, n_steps)
    chain = schedule if n_steps is None else respace(schedule, original)
    gen_device = generator.device if generator is not None else torch.device("cpu")

    def randn():
        return torch.randn(shape, generator=generator, device=gen_device).to(device)

    x = randn()
    keep = set(int(k) for k in keep)
    kept = {schedule.T: x.clone()} if schedule.T in keep else {}
    iterator = range(len(original))
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(iterator, desc="sampling", leave=False, mininterval=0.5)
    for i in iterator:
        t_orig, t_chain = original[i], len(original) - i
        t_model = torch.full((shape[0],), t_orig, dtype=torch.long, device=device)
        eps = eps_fn(x, t_model)
        t_step = torch.full((shape[0],), t_chain, dtype=torch.long, device=device)
        options = {"clip_x0": True} if clip_x0 else {}                  # a student's step need not clip
        x = step_fn(chain, eps, x, t_step, randn(), sigma=sigma, **options)
        t_next = original[i + 1] if i + 1 < len(original) else 0
        if t_next in keep:
            kept[t_next] = x.clone()
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
    x0 = _check_data(x0, "x0")
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


def noisy_mixture(alpha_bar, weights, means=None, variances=None):
    """The forward process applied to an isotropic Gaussian mixture: if x_0 ~ Σ_k ρ_k N(μ_k, σ_k² I) then
    by (15.8) x_t ~ Σ_k ρ_k N(√ᾱ_t μ_k, (ᾱ_t σ_k² + 1 − ᾱ_t) I), again a mixture, with an exact score
    (``ebm.gmm_score``) and so an exact optimal ε* (eq. 15.13, ``scores.eps_from_score``).

    alpha_bar: ᾱ_t, a number in (0, 1]; the mixture: a ``gaussian_mixture.MixtureOfGaussians`` or
    weights (K,), means (K, d), variances (K,) tensors. Returns (weights, means_t, variances_t) in the
    means' dtype and device (``MixtureOfGaussians.noised`` keeps them as one value).
    """
    ab = check_float(alpha_bar, "alpha_bar", low=0.0, high=1.0, low_open=True)
    noised = as_mixture(weights, means, variances).noised(ab)
    return noised.weights, noised.means, noised.variances


# ---------------------------------------------------------------- the digits recipe
def fit_digits(*, steps: int = 2500, T: int = 1000, max_beta: float = 0.2, hidden: int = 256, blocks: int = 3,
               batch_size: int = 128, lr: float = 3e-3, warmup: int = 200, ema_decay: float = 0.999,
               eval_every: int = 100, seed: int = 0, loss=None, device=None, progress: bool = True,
               desc: str = "digit denoiser"):
    """The companion's DDPM on the 8×8 digits (lesson 15_3_3's recipe; the scoreboard calls it too).

    The 1437 training digits at their bin centres (x + ½)/17, mapped to [−1, 1]; the cosine schedule
    with T steps and β_t capped at ``max_beta``; a ``denoisers.ResidualDenoiser(64, hidden, blocks)``
    trained by ``training.train`` on the loss (15.10) per pixel, t ~ U{1..T}, with Adam at ``lr``,
    ``warmup`` steps of warm-up, cosine decay and an EMA of the weights (``ema_decay``).
    ``loss(schedule, eps_model, x0, t, noise)``: the (15.10) loss to train with (default ``ddpm_loss``;
    a lesson passes the student's). Weights and draws come from torch's global RNG seeded with ``seed``
    inside (the caller's global RNG state is left as it was).

    Returns ``(schedule, fit)``: ε_θ is ``fit.ema.model`` (on ``device``, float32), to be called
    ε_θ(x_t, t) on the [−1, 1] scale (``data.unit_to_signed``).
    """
    from companion_lib import data, training
    from companion_lib.denoisers import ResidualDenoiser

    seed = check_int(seed, "seed", low=0)
    loss = ddpm_loss if loss is None else loss
    if not callable(loss):
        raise TypeError(f"loss must be a function (schedule, eps_model, x0, t, noise), got {type(loss).__name__}")
    schedule = NoiseSchedule.cosine(check_int(T, "T", low=2), max_beta=check_float(max_beta, "max_beta"))
    split = data.load_digits_split(validation=False)
    x_train = data.unit_to_signed(data.to_unit(torch.as_tensor(split.X_train, dtype=torch.float32)))
    x_train = x_train.to(device) if device is not None else x_train

    def loss_fn(model, x0):
        t = torch.randint(1, T + 1, (x0.shape[0],), device=x0.device)
        return loss(schedule, model, x0, t, torch.randn_like(x0)) / x0.shape[1]   # per pixel

    devices = [torch.cuda.current_device()] if x_train.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        denoiser = ResidualDenoiser(64, hidden=hidden, blocks=blocks).to(x_train.device)
        fit = training.train(denoiser, loss_fn, x_train, steps=steps, batch_size=batch_size, lr=lr,
                             warmup=warmup, cosine=True, ema_decay=ema_decay, eval_every=eval_every,
                             progress=progress, desc=desc)
    return schedule, fit
