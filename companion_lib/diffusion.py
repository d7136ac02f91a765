"""§15.3 Diffusion models: the noise schedule and the forward process.

* ``NoiseSchedule``  β_t, α_t = 1 − β_t and ᾱ_t = ∏_{s≤t} α_s for t = 1..T (linear or cosine)
* ``q_sample``       x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, a draw of q(x_t | x_0)                  eq. 15.8

Indexing convention (everywhere in the companion): steps follow the text, t ∈ {1, …, T}. A schedule's
tensors have length T and **index t − 1 holds step t** (``betas[0]`` is β_1). Where a formula needs
ᾱ_0 it is 1 (no noise yet). Schedules are float64 on the CPU; they are cast to the data's dtype and
device where they meet the data, never the other way round (the dtype rule of ``settings``).

Floor 3: torch only, no plotting, no grading.
"""
from __future__ import annotations

import math

import torch

from companion_lib._checks import as_tensor, check_choice, check_float, check_int
from companion_lib.settings import cpu_float64

__all__ = ["NoiseSchedule", "q_sample"]


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
        """Validate integer steps t (batch,) in 1..T; returns them as a long tensor on the CPU."""
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be an integer torch.Tensor of shape (batch,), got {type(t).__name__}")
        if t.ndim != 1:
            raise ValueError(f"{name} must have shape (batch,), got {tuple(t.shape)}")
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer steps (torch.long), got dtype {t.dtype}")
        tc = t.detach().cpu().long()
        if tc.numel() and (int(tc.min()) < 1 or int(tc.max()) > self.T):
            raise ValueError(f"{name} must hold the text's steps 1..T = 1..{self.T}, "
                             f"got values in [{int(tc.min())}, {int(tc.max())}]")
        return tc

    def at(self, name: str, t, like: torch.Tensor) -> torch.Tensor:
        """Schedule quantity ``name`` (e.g. ``"alpha_bars"``) at steps t (batch,), shaped (batch, 1, …)
        to broadcast against ``like`` (batch, …), in ``like``'s dtype and on its device."""
        values = getattr(self, name)
        if not isinstance(values, torch.Tensor) or values.shape != self.betas.shape:
            raise ValueError(f"{name!r} is not a per-step quantity of the schedule")
        tc = self._steps(t)
        if like.ndim < 1 or like.shape[0] != tc.shape[0]:
            raise ValueError(f"t has {tc.shape[0]} steps but the data has shape {tuple(like.shape)}; "
                             "expected one step per row")
        with cpu_float64():
            picked = values[tc - 1].to(like.dtype)                     # index t − 1 holds step t
        return picked.to(like.device).reshape(-1, *([1] * (like.ndim - 1)))

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
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite; it holds NaN or infinite values")
    return x


def q_sample(schedule: NoiseSchedule, x0, t, noise) -> torch.Tensor:
    """A draw of q(x_t | x_0): ``x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε`` (15.8).

    x0 (batch, ...) and noise ε (same shape, standard normal) floating tensors; t (batch,) integer
    steps in 1..T. The result has x0's dtype and device (the float64 schedule is cast to them).
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
