"""``ddpm.sample`` and ``ddpm.ddim_sample`` against a loop over diffusers' schedulers: same samples, time.

Three rows, each one complete sampling run of the same ε-network on the same batch from the same
seed, on ``device``:

* **DDPM ancestral**: ``ddpm.sample(..., clip_x0=True)`` over all T steps against a loop over
  ``DDPMScheduler.step`` (linear β from 1e-4 to 0.02, ``variance_type="fixed_small"`` = σ_t² = β̃_t,
  ``clip_sample=True``, ``set_timesteps(T)`` as diffusers' pipelines call it).
* **DDPM respaced**: ``ddpm.sample(..., n_steps=k, clip_x0=True)`` against the same scheduler with
  ``timestep_spacing="linspace"`` and ``set_timesteps(k)``. Its steps are ``ddpm.timesteps(T, k)`` (T
  first, 1 last; diffusers counts from 0, their timestep = t − 1; checked step by step), and its variance
  is ours: diffusers' ``fixed_small`` variance between visited steps s < t, (1 − ᾱ_s) / (1 − ᾱ_t) ·
  (1 − ᾱ_t / ᾱ_s), is the posterior variance β̃ of ``ddpm.respace``'s chain (β'_t = 1 − ᾱ_t / ᾱ_s).
* **DDIM (η = 0)**: ``ddpm.ddim_sample`` against ``DDIMScheduler.step`` with eta = 0 (``clip_sample=False``,
  ``set_alpha_to_one=True``, ``steps_offset=0``). ``DDIMScheduler`` always steps back by T // k, so its
  default ("leading") steps 1 + i · (T // k) are handed to ``ddim_sample(steps=...)``; the chain ends
  with the step to ᾱ_0 = 1 on both sides.

ε_θ is an MLP 64-256-64 with SiLU (``dim``-``4·dim``-``dim``), weights from ``torch.manual_seed(0)``
inside ``torch.random.fork_rng`` (the caller's generator is left as it was), called on x_t alone. Both
sides run under ``torch.no_grad()`` and draw x_T and every z from ``torch.Generator(device)`` seeded 1,
in the same order (x_T, then one z per step; diffusers draws none at its last step, where ours
multiplies its draw by σ_1 = 0), so the samples agree to round-off. What remains is rounding:
diffusers forms ᾱ_t by a float32 ``cumprod``, the companion forms its schedule in float64 and rounds
once. ``agree`` reports the largest |difference| of the samples.
"""
from __future__ import annotations

import torch

from companion_lib import ddpm, forward_diffusion
from companion_lib._checks import check_int
from companion_lib.peers._harness import Comparison

#: Linear schedule of Ho et al. (2020), both sides.
BETA_START, BETA_END = 1e-4, 0.02
#: Largest |difference| of the samples, relative to their largest |value|, still called round-off.
ROUND_OFF = 1e-4


def _eps_network(dim: int, device: str) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(dim, 4 * dim), torch.nn.SiLU(), torch.nn.Linear(4 * dim, dim))
    return net.to(device).eval()


def _agree(a: torch.Tensor, b: torch.Tensor) -> tuple[bool, str]:
    gap = (a - b).abs().max().item()
    scale = max(1.0, b.abs().max().item())
    return gap <= ROUND_OFF * scale, (f"max |Δ sample| {gap:.1e} over {a.numel():,} values (largest |sample| "
                                      f"{scale:.2g}; diffusers' ᾱ_t is a float32 cumprod)")


def comparisons(device: str = "cpu", steps: int = 1000, respaced_steps: int = 100, batch: int = 256,
                dim: int = 64) -> list[Comparison]:
    """The rows "DDPM ancestral", "DDPM respaced" and "DDIM (η = 0)" on ``device``: a linear schedule of
    ``steps`` steps; respaced and DDIM chains of ``respaced_steps`` steps; samples (``batch``, ``dim``).
    Needs diffusers (``ModuleNotFoundError`` with the reason without it: ``bench peers`` reports the
    rows as skipped). On CUDA both sides draw on a generator on that device (no copy per step)."""
    import diffusers  # the peer library (a missing one: ModuleNotFoundError naming it, a skipped row in bench)

    if not isinstance(device, str):
        raise TypeError(f"device must be a str such as 'cpu' or 'cuda', got {type(device).__name__}")
    steps = check_int(steps, "steps", low=2)
    respaced_steps = check_int(respaced_steps, "respaced_steps", low=2, high=steps)
    batch = check_int(batch, "batch", low=1)
    dim = check_int(dim, "dim", low=1)
    shape = (batch, dim)
    net = _eps_network(dim, device)
    schedule = forward_diffusion.NoiseSchedule.linear(steps, BETA_START, BETA_END)
    common = dict(num_train_timesteps=steps, beta_schedule="linear", beta_start=BETA_START, beta_end=BETA_END)

    def generator():
        return torch.Generator(device=device).manual_seed(1)

    def eps_fn(x, t):
        return net(x)

    def ddpm_loop(scheduler):
        def run():
            with torch.no_grad():
                gen = generator()
                x = torch.randn(shape, generator=gen, device=device)
                for t in scheduler.timesteps:
                    x = scheduler.step(net(x), t, x, generator=gen).prev_sample
                return x
        return run

    ancestral = diffusers.DDPMScheduler(**common, variance_type="fixed_small", clip_sample=True)
    ancestral.set_timesteps(steps)
    respaced = diffusers.DDPMScheduler(**common, variance_type="fixed_small", clip_sample=True,
                                       timestep_spacing="linspace")
    respaced.set_timesteps(respaced_steps)
    if [int(t) + 1 for t in respaced.timesteps] != ddpm.timesteps(steps, respaced_steps):
        # NumPy rounds (T − 1) i / (k − 1) then adds 1, ddpm.timesteps rounds 1 + (T − 1) i / (k − 1): ties
        # to even can then differ by one step (never for T = 1000 with k = 50 or 100)
        raise ValueError(f"diffusers' linspace spacing of {respaced_steps} of {steps} steps is not "
                         f"ddpm.timesteps({steps}, {respaced_steps}) (a tie rounds the other way): pick another size")
    ddim = diffusers.DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=True, steps_offset=0)
    ddim.set_timesteps(respaced_steps)
    ddim_steps = [int(t) + 1 for t in ddim.timesteps]

    def ddim_theirs():
        with torch.no_grad():
            gen = generator()
            x = torch.randn(shape, generator=gen, device=device)
            for t in ddim.timesteps:
                x = ddim.step(net(x), t, x, eta=0.0).prev_sample
            return x

    size = f"{steps} steps, batch {batch} × {dim}, ε_θ an MLP {dim}-{4 * dim}-{dim} (SiLU)"
    short = f"{respaced_steps} of {steps} steps, batch {batch} × {dim}, the same MLP"
    peer = f"diffusers {diffusers.__version__}"
    return [
        Comparison("DDPM ancestral", size, f"{peer} DDPMScheduler", device,
                   lambda: ddpm.sample(schedule, eps_fn, shape, device=device, clip_x0=True, generator=generator()),
                   ddpm_loop(ancestral), _agree),
        Comparison("DDPM respaced", short, f"{peer} DDPMScheduler (linspace)", device,
                   lambda: ddpm.sample(schedule, eps_fn, shape, device=device, clip_x0=True,
                                       n_steps=respaced_steps, generator=generator()),
                   ddpm_loop(respaced), _agree),
        Comparison("DDIM (η = 0)", short, f"{peer} DDIMScheduler", device,
                   lambda: ddpm.ddim_sample(schedule, eps_fn, shape, steps=ddim_steps, device=device,
                                            generator=generator()),
                   ddim_theirs, _agree),
    ]
