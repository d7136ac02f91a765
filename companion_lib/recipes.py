"""The training recipes of the lessons and the scoreboard (above the mathematics they train).

* ``train_vae``           §14.5: a ``vae.VAE`` on the digits, ELBO in bits/dim, early stopping
* ``fit_realnvp_digits``  §15.2: the companion's RealNVP on the digits (was ``flows.fit_digits``)
* ``fit_ddpm_digits``     §15.3.3: the companion's DDPM denoiser on the digits (was ``diffusion.fit_digits``)
  (``ddpm_weight``: the weights w_t of its loss, one of ``WEIGHTINGS``)
* ``fit_made_digits``     §15.1: an autoregressive model of the digits (``autoregressive.MADE``), early-stopped

A recipe fixes a model, its data, its optimiser and its budget; the mathematics (the models, the
losses, the sampler) stays in the section's module, which never imports this one (so the old names
``vae.train_vae``, ``flows.fit_digits`` and ``diffusion.fit_digits`` are gone, not re-exported: every
caller, the lessons included, calls ``recipes``). ``bench._BUILDERS`` picks among them.
"""
from __future__ import annotations

import torch
from torch import nn

from companion_lib import data, settings, training
from companion_lib._checks import as_tensor, check_batch, check_choice, check_float, check_int
from companion_lib.ddpm import ddpm_loss
from companion_lib.denoisers import ResidualDenoiser
from companion_lib.flows import RealNVP
from companion_lib.forward_diffusion import NoiseSchedule
from companion_lib.vae import VAE, make_loss, make_val_fn

__all__ = ["train_vae", "fit_realnvp_digits", "fit_ddpm_digits", "WEIGHTINGS", "ddpm_weight", "fit_made_digits"]


# ---------------------------------------------------------------- §14.5: the VAE
def _init_seed(generator: torch.Generator) -> int:
    """The seed of a recipe's initial weights, drawn from ``generator`` as one float64 uniform: the same
    value, and the same generator state after it, on torch 2.1 to 2.13 (torch.randint's values and its
    use of the generator changed after 2.1, which moved lesson 14_5's results on the minimum torch)."""
    with settings.cpu_float64():          # a CPU draw: allowed under the no-float64 (MPS) stand-in too
        return int(torch.rand((), generator=generator, dtype=torch.float64) * (2**31 - 1))


def train_vae(x_fit, x_val, *, latent_dims: int = 16, hidden: int = 128, depth: int = 2,
              decoder: str = "gaussian", steps: int = 3000, batch_size: int = 128, lr: float = 2e-3,
              eval_every: int = 50, patience: int | None = 10, s: int = 1,
              generator: torch.Generator | None = None, device=None, progress: bool = True,
              desc: str = "VAE", model: nn.Module | None = None, negative_elbo=None,
              beta: float | None = None) -> training.TrainResult:
    """Build a ``vae.VAE`` (``decoder`` one of ``vae.DECODERS``) and train it with ``training.train`` on
    raw digit levels (lesson 14_5's recipe and the scoreboard's; was ``vae.train_vae``).

    ``model``: train this module instead (e.g. a student's encoder/decoder with the text's
    ``encode``/``decode``; ``latent_dims`` must be its latent size); ``negative_elbo(model, y, eps)``:
    the −(14.13) estimator to train with (contract of ``vae.negative_elbo``); default: ``log_weights``.
    ``beta``: train (and early-stop on) the β-VAE objective distortion + β·rate instead
    (``vae.rate_distortion``; Higgins et al. 2017), β ≥ 0.

    x_fit (m, n), x_val (m', n): integer levels (e.g. ``load_digits_split().X_fit``), moved to
    ``device`` as float32. Each batch is re-dequantised; early stopping on the validation ELBO
    (bits/dim, lower is better); the best weights are restored. Returns the ``TrainResult``.
    """
    x_fit = as_tensor(x_fit, "x_fit", ndim=2, dtype=torch.float32, device=device, min_rows=1)
    x_val = as_tensor(x_val, "x_val", shape=(None, x_fit.shape[1]), dtype=torch.float32,
                      device=device, min_rows=1)
    check_float(lr, "lr", low=0.0, low_open=True)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    init_seed = _init_seed(generator)
    if model is None:
        with torch.random.fork_rng(devices=[]):     # weights initialised from ``generator`` alone
            torch.manual_seed(init_seed)
            model = VAE(x_fit.shape[1], latent_dims, hidden, depth, decoder=decoder)
    elif not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if negative_elbo is not None and not callable(negative_elbo):
        raise TypeError("negative_elbo must be a function (model, y, eps) -> (b,)")
    model = model.to(x_fit.device)
    kw = dict(s=s, negative_elbo=negative_elbo, latent_dims=latent_dims, beta=beta)
    return training.train(model, make_loss(generator, **kw), x_fit, steps=steps, val_data=x_val,
                 val_fn=make_val_fn(**kw), batch_size=batch_size, lr=lr, eval_every=eval_every,
                 patience=patience, generator=generator, progress=progress, desc=desc)


# ---------------------------------------------------------------- §15.2: the RealNVP on the digits
def fit_realnvp_digits(x_fit=None, y_val=None, *, hidden: int = 128, steps: int = 1000, patience: int | None = 3,
               lr: float = 1e-3, eval_every: int = 50, grad_clip: float | None = None, seed: int = 0,
               generator: torch.Generator | None = None, deq_generator: torch.Generator | None = None,
               device=None, progress: bool = True, desc: str = "RealNVP, digits"):
    """The companion's RealNVP on the 8×8 digits (lesson 15_2 and the scoreboard share
    this recipe; was ``flows.fit_digits``).

    A ``RealNVP(64, n_layers=8, hidden, masks="checkerboard", logit_alpha=0.05)`` with weights from
    ``torch.manual_seed(seed)`` (the global RNG is left as it was), trained by ``training.train`` to
    minimise bits/dim of a fresh dequantisation of each batch (noise from ``deq_generator``, default
    seed 0), Adam at ``lr``, early-stopped on ``y_val`` every ``eval_every`` steps with ``patience``
    (best weights restored; ``y_val=None`` with ``patience=None``: no validation, no early stopping).

    x_fit (m, 64): integer digit levels (default ``data.load_digits_split().X_fit``); y_val (m', 64):
    dequantised validation images in [0, 1) (default: ``X_val`` dequantised once with seed 1; pass
    ``y_val=False`` for none). ``generator``: the CPU generator of the minibatches (``run.generator``).
    Returns ``(model, TrainResult)``; the model is on ``device`` (default the CPU), float32.
    """
    split = None
    if x_fit is None or y_val is None:
        split = data.load_digits_split()
    x_fit = split.X_fit if x_fit is None else x_fit
    if isinstance(x_fit, torch.Tensor):
        x_fit = x_fit.detach()
    x_fit = torch.as_tensor(x_fit, dtype=torch.float32, device=device)
    check_batch(x_fit, "x_fit", 64)
    if y_val is None:
        y_val = data.dequantize(torch.as_tensor(split.X_val, dtype=torch.float32, device=device),
                                torch.Generator().manual_seed(1))
    elif y_val is False:
        y_val = None
    else:
        check_batch(y_val, "y_val", 64)
    seed = check_int(seed, "seed", low=0)
    g_deq = torch.Generator().manual_seed(0) if deq_generator is None else deq_generator

    def loss_fn(model, levels):                  # bits/dim of a fresh dequantisation of the batch
        return data.dequantized_bits_per_dim(model.log_prob(data.dequantize(levels, g_deq)), 64).mean()

    def val_fn(model, y):
        return data.dequantized_bits_per_dim(model.log_prob(y), 64).mean().item()

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RealNVP(64, n_layers=8, hidden=hidden, masks="checkerboard", logit_alpha=0.05)
    model = model.to(x_fit.device)
    fit = training.train(model, loss_fn, x_fit, val_data=y_val, val_fn=val_fn if y_val is not None else None,
                         steps=steps, lr=lr, eval_every=eval_every, grad_clip=grad_clip,
                         patience=patience if y_val is not None else None, generator=generator,
                         progress=progress, desc=desc)
    return model, fit


# ---------------------------------------------------------------- §15.3.3: the DDPM on the digits
WEIGHTINGS = ("none", "min_snr", "elbo")


def ddpm_weight(schedule, t, like, weighting: str = "min_snr", gamma: float = 5.0):
    """The per-row weight w_t (shaped like ``schedule.at``) of ‖ε − ε_θ‖² for ``weighting`` in ``WEIGHTINGS``:
    ``"none"``: 1, the text's (15.10); ``"min_snr"``: ``ddpm.min_snr_weight`` (γ = ``gamma``); ``"elbo"``:
    ``ddpm.elbo_weight`` (σ_t² = β̃_t; Ho et al. 2020, eq. 12), divided by its mean over t = 1..T, so the
    loss keeps the scale of (15.10) (a constant factor: the same optimum, the same bound up to scale)."""
    from companion_lib import ddpm
    check_choice(weighting, "weighting", WEIGHTINGS)
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    t = schedule._steps(t)
    ddpm._check_template(like, t)
    gamma = check_float(gamma, "gamma", low=0.0, low_open=True)
    if weighting == "none":
        return torch.ones_like(schedule.at("betas", t, like))
    if weighting == "min_snr":
        return ddpm.min_snr_weight(schedule, t, gamma, like=like)
    all_t = torch.arange(1, schedule.T + 1, device=t.device)
    mean = ddpm.elbo_weight(schedule, all_t, like=torch.empty(schedule.T, device=like.device,
                                                                dtype=like.dtype)).mean()
    return ddpm.elbo_weight(schedule, t, like=like) / mean


def _weighted_network(eps_model, noise, weight):
    """ε̃(x_t, t) = ε − √w (ε − ε_θ(x_t, t)) for the batch's noise ε and weights w (batch, 1): an unweighted
    (15.10) loss given ε̃ in place of ε_θ computes ‖ε − ε̃‖² = w ‖ε − ε_θ‖², the weighted loss."""
    root_w = weight.sqrt()

    def weighted(xt, t):
        return noise - root_w * (noise - eps_model(xt, t))
    return weighted


def fit_ddpm_digits(*, steps: int = 3500, T: int = 1000, max_beta: float = 0.2, hidden: int = 256, blocks: int = 2,
               prediction: str = "v", weighting: str = "min_snr", gamma: float = 5.0,
               batch_size: int = 128, lr: float = 3e-3, warmup: int = 200, ema_decay: float = 0.999,
               eval_every: int = 100, seed: int = 0, loss=None, dequantize: bool = False, device=None,
               progress: bool = True, desc: str = "digit denoiser"):
    """The companion's DDPM on the 8×8 digits (lessons 15_3_3 and 15_3_3b, 15_9 and the scoreboard share
    this recipe; was ``diffusion.fit_digits``).

    The 1437 training digits at their bin centres (x + ½)/17, mapped to [−1, 1]; the cosine schedule
    with T steps and β_t capped at ``max_beta``; a ``denoisers.ResidualDenoiser(64, hidden, blocks)`` that
    predicts ``prediction`` (``"v"``, ``"eps"`` or ``"x0"``), read as ε_θ by ``ddpm.EpsilonFrom``; trained by
    ``training.train`` with Adam at ``lr``, ``warmup`` steps of warm-up, cosine decay and an EMA of the
    weights (``ema_decay``), t ~ U{1..T}, on the weighted loss (15.10) per pixel,

        mean over the batch of  w_t ‖ε − ε_θ(x_t, t)‖² / 64,   w_t = ``ddpm_weight(weighting, gamma)``.

    ``dequantize=True``: each batch is dequantised afresh, (x + u)/17 with u ~ U[0, 1)^64 on [−1, 1] (the
    convention of the flow and of every bits/dim in the companion), instead of the bin centres.
    ``loss(schedule, eps_model, x0, t, noise)``: the unweighted (15.10) loss to train with (default
    ``ddpm.ddpm_loss``; a lesson passes the student's). The weight enters through the network it is given:
    the recipe hands it ε̃ = ε − √w_t (ε − ε_θ(x_t, t)) for the batch's own ε, so the loss's
    ‖ε − ε̃‖² is exactly w_t ‖ε − ε_θ‖² and the student's loss still builds x_t by (15.8) and takes the norm.
    The defaults (v-prediction, min-SNR-5, two blocks, 3500 steps: lesson 15_3_3's quick budget) reach,
    in about the seconds the lesson had for the text's recipe, a judge's confident share about 0.8× that
    of real digits with samples no nearer the training digits than ~0.93× new digits are (three seeds,
    dequantised; lesson 15_3_3b measures the alternatives). Weights and draws come from torch's
    global RNG seeded with ``seed`` inside (the caller's global RNG state is left as it was).

    Returns ``(schedule, fit)``: ε_θ is ``fit.ema.model`` (a ``ddpm.EpsilonFrom``, on ``device``, float32),
    to be called ε_θ(x_t, t) on the [−1, 1] scale (``data.unit_to_signed``).
    """
    from companion_lib import ddpm
    from companion_lib.denoisers import ResidualDenoiser

    seed = check_int(seed, "seed", low=0)
    check_choice(prediction, "prediction", ddpm.PREDICTIONS)
    check_choice(weighting, "weighting", WEIGHTINGS)
    gamma = check_float(gamma, "gamma", low=0.0, low_open=True)
    loss = ddpm_loss if loss is None else loss
    if not callable(loss):
        raise TypeError(f"loss must be a function (schedule, eps_model, x0, t, noise), got {type(loss).__name__}")
    schedule = NoiseSchedule.cosine(check_int(T, "T", low=2), max_beta=check_float(max_beta, "max_beta"))
    split = data.load_digits_split(validation=False)
    x_train = data.unit_to_signed(data.to_unit(torch.as_tensor(split.X_train, dtype=torch.float32)))
    x_train = x_train.to(device) if device is not None else x_train

    if not isinstance(dequantize, bool):
        raise TypeError(f"dequantize must be True or False, got {dequantize!r}")
    bin_width = 2 / data.DIGIT_LEVELS                 # one grey level on the [−1, 1] scale

    def loss_fn(model, x0):
        if dequantize:                                # uniform within the bin around its centre
            x0 = x0 + (torch.rand_like(x0) - 0.5) * bin_width
        t = torch.randint(1, T + 1, (x0.shape[0],), device=x0.device)
        noise = torch.randn_like(x0)
        if weighting == "none":
            return loss(schedule, model, x0, t, noise) / x0.shape[1]             # per pixel
        weighted = _weighted_network(model, noise, ddpm_weight(schedule, t, x0, weighting, gamma))
        return loss(schedule, weighted, x0, t, noise) / x0.shape[1]

    devices = [torch.cuda.current_device()] if x_train.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        net = ResidualDenoiser(64, hidden=hidden, blocks=blocks)
        denoiser = ddpm.EpsilonFrom(net, schedule, prediction).to(x_train.device)
        fit = training.train(denoiser, loss_fn, x_train, steps=steps, batch_size=batch_size, lr=lr,
                             warmup=warmup, cosine=True, ema_decay=ema_decay, eval_every=eval_every,
                             progress=progress, desc=desc)
    return schedule, fit


# ---------------------------------------------------------------- §15.1: an autoregressive model (MADE)
def fit_made_digits(*, hidden: tuple = (512, 512), steps: int = 3000, batch_size: int = 128, lr: float = 1e-3,
                    weight_decay: float = 1e-4, eval_every: int = 50, patience: int | None = 4, ordering=None,
                    mask_fn=None, seed: int = 0, device=None, progress: bool = True, desc: str = "MADE"):
    """The companion's autoregressive model of the digits (lesson 15_1 and the scoreboard share it).

    An ``autoregressive.MADE`` (raster ordering unless ``ordering`` is given, a 17-way categorical per
    pixel, ``hidden`` ReLU layers; ``mask_fn`` builds its masks: a lesson passes the student's) trained
    on the 1149 fitting digits' integer levels (``X_fit``) by ``training.train`` on
    ``autoregressive.nll_bits_per_dim`` (exact −log₂ p / 64), Adam at ``lr`` with ``weight_decay`` and
    cosine decay, early-stopped on the validation split (``X_val``; evaluated every ``eval_every`` steps,
    ``patience`` evaluations without improvement; the best weights are restored). Weights and batches
    come from torch's global RNG seeded with ``seed`` inside (the caller's state is left as it was).

    Returns ``(model, fit)``: the trained ``MADE`` (eval mode, float32, on ``device``) and the
    ``training.TrainResult``.
    """
    from companion_lib.autoregressive import MADE, nll_bits_per_dim

    seed = check_int(seed, "seed", low=0)
    split = data.load_digits_split()
    x_fit = torch.as_tensor(split.X_fit, dtype=torch.float32)
    x_val = torch.as_tensor(split.X_val, dtype=torch.float32)
    if device is not None:
        x_fit, x_val = x_fit.to(device), x_val.to(device)
    devices = [torch.cuda.current_device()] if x_fit.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = MADE(64, data.DIGIT_LEVELS, hidden=tuple(hidden), ordering=ordering, mask_fn=mask_fn)
        model = model.to(x_fit.device)
        fit = training.train(model, nll_bits_per_dim, x_fit, steps=steps, val_data=x_val, batch_size=batch_size,
                             lr=lr, weight_decay=weight_decay, cosine=True, eval_every=eval_every,
                             patience=patience, progress=progress, desc=desc)
    return model.eval(), fit
