"""§15.3.1 Diffusion models: the noise schedule and the forward process.

* ``NoiseSchedule``  β_t, α_t = 1 − β_t and ᾱ_t = ∏_{s≤t} α_s for t = 1..T (linear or cosine)
* ``q_sample``       x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, a draw of q(x_t | x_0)                  eq. 15.8
* ``forward_chain``  the chain (15.7) iterated step by step (what Problem 15.3.1 proves (15.8) equals)
* ``terminal_kl``    KL(q(x_T | x_0) ‖ N(0, I)): is ᾱ_T small enough that x_T is pure noise?
* ``noisy_mixture``  a Gaussian mixture pushed through (15.8) (``MixtureOfGaussians.noised``)

The reverse process (§15.3.3: the posterior, the DDPM step, loss, sampler and bound) is ``ddpm``.

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

from companion_lib._checks import (as_tensor, check_finite_on_cpu, check_float, check_generator, check_int,
                                    check_steps)
from companion_lib.gaussian_mixture import as_mixture
from companion_lib.settings import cpu_float64

__all__ = ["NoiseSchedule", "q_sample", "forward_chain", "terminal_kl", "noisy_mixture"]


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
        return self._at((name,), t, like)[0]

    def _at(self, names, t, like: torch.Tensor) -> tuple:
        """``at`` for several quantities at the same steps, t checked once (the v- and x̂_0-networks of a
        training step read two); a tuple in the order of ``names``."""
        tables = []
        for name in names:
            values = getattr(self, name, None) if isinstance(name, str) else None
            if not isinstance(values, torch.Tensor) or values.shape != self.betas.shape:
                raise ValueError(f"{name!r} is not a per-step quantity of the schedule (e.g. 'alpha_bars')")
            tables.append((name, values))
        if not isinstance(like, torch.Tensor):
            raise TypeError(f"like must be a torch.Tensor (batch, ...), got {type(like).__name__}")
        t = self._steps(t)
        if like.ndim < 1 or like.shape[0] != t.shape[0]:
            raise ValueError(f"t has {t.shape[0]} steps but the data has shape {tuple(like.shape)}; "
                             "expected one step per row")
        return tuple(self._gather(name, values, t, like) for name, values in tables)

    def _gather(self, name: str, values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``values`` (T,) (a schedule tensor or one derived from it, cached as ``name``) at validated
        steps t (batch,), shaped (batch, 1, …) in ``like``'s dtype and on its device; unchecked."""
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
    if not x.numel():
        raise ValueError(f"{name} must hold at least one value, got shape {tuple(x.shape)}")
    return check_finite_on_cpu(x, name)                                 # accelerators: unchecked (no sync)


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


def _check_schedule(schedule) -> NoiseSchedule:
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    return schedule


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
