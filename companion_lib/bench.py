"""The distribution-learning scoreboard and peer benchmarks (a face of the package).

    python -m companion_lib.bench scoreboard [--json FILE] [--full] [--models a,b,...]
    python -m companion_lib.bench peers
    python -m companion_lib.bench ddpm-curve [--json FILE] [--lengths 2000,4000,...]   (on a GPU)

**Scoreboard.** Every model learns the 8×8 digits from the same 1149 fitting images (``X_fit`` of
``data.load_digits_split()``), chooses its knobs on the validation split, and is scored on the one
fixed evaluation set, ``data.heldout_digits()`` (360 dequantised held-out digits), in bits per
dimension (``metrics.heldout_bits_per_dim``; lower is better). ``bound`` says what the number is:
``"exact"`` (the model's exact log-density of the dequantised data) or ``"upper"`` (a variational or
importance-weighted bound on −log p, so the true bits/dim is at most the number shown). Every model
that samples is also read by ``metrics.DigitJudge`` (share of samples labelled with probability
≥ 0.9, smallest share of a predicted class) and by ``metrics.nearest_train_distance`` (mean distance
to the nearest training digit, divided by that of the real held-out digits: far below 1 = copies).
The first row, the real held-out digits, is the reference every sampler is read against.

Rows (``scoreboard(...)`` returns them, ``--json`` writes them): dicts with exactly the keys ``KEYS``;
``None`` (JSON null) where a number does not apply. The recipes are the lessons' own library calls
(``recipes.train_vae``, ``recipes.fit_realnvp_digits``, ``recipes.fit_ddpm_digits``,
``recipes.fit_made_digits``), picked from the
table ``_BUILDERS`` (model id → builder); budgets are in steps
(``budgets``), quick or full, never in seconds.

**Peers** (bench-only extras, never needed by a student; a missing one is skipped with a message):
``mixture.GaussianMixture`` against scikit-learn's, ``ddpm.ddpm_step`` / ``ddpm.sample``
against diffusers' ``DDPMScheduler``, ``flows.RealNVP`` against zuko's RealNVP.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from companion_lib import (autoregressive, data, ddpm, divergences, flows, forward_diffusion, metrics, mixture,
                           recipes, settings, training, vae)
from companion_lib._checks import check_bool, check_choice

__all__ = ["KEYS", "MODELS", "LABELS", "budgets", "scoreboard", "write_json", "read_json", "render_table",
           "bar_chart", "peers", "DDPM_CURVE_FILE", "ddpm_curve", "write_curve", "read_curve"]

#: The keys of every scoreboard row, in order.
KEYS = ("model", "bits_per_dim", "bound", "confident_share", "min_class_share", "nearest_train_ratio",
        "train_seconds")
#: Model ids, in the scoreboard's order.
MODELS = ("real", "uniform", "isotropic_gaussian", "full_gaussian", "gaussian_mixture", "kde", "vae_text",
          "vae_better", "realnvp", "ddpm", "made")
#: The ``model`` text of each row.
LABELS = {
    "real": "real held-out digits",
    "uniform": "uniform on [0, 1)^64",
    "isotropic_gaussian": "isotropic Gaussian N(μ, σ²I) (Ex. 14.2.1)",
    "full_gaussian": "full-covariance Gaussian",
    "gaussian_mixture": "Gaussian mixture (EM, 10 full components)",
    "kde": "kernel density estimate (scikit-learn)",
    "vae_text": "VAE of the text (14.10–14.11, one σ)",
    "vae_better": "better VAE (17-level categorical decoder)",
    "realnvp": "RealNVP (8 affine couplings)",
    "ddpm": "DDPM (residual MLP, σ_t² = β_t)",
    "made": "MADE (autoregressive, 17 levels per pixel)",
}
_BOUNDS = {"real": None, "uniform": "exact", "isotropic_gaussian": "exact", "full_gaussian": "exact",
           "gaussian_mixture": "exact", "kde": "exact", "vae_text": "upper", "vae_better": "upper",
           "realnvp": "exact", "ddpm": "upper", "made": "exact"}

_QUICK = dict(n_samples=400, ridges=(1e-4, 1e-3, 1e-2), reg_covars=(1e-3, 3e-3),
              kde_bandwidths=tuple(np.geomspace(0.02, 0.2, 7)), vae_steps=3000, vae_patience=8, iwae_k=200,
              flow_hidden=128, flow_steps=1000, flow_patience=3, ddpm_steps=5000, ddpm_n_t=64,
              made_hidden=(512, 512), made_steps=1500, made_patience=4)
_FULL = dict(n_samples=2000, ridges=tuple(np.logspace(-5, -1, 9)), reg_covars=(3e-4, 1e-3, 3e-3, 1e-2),
             kde_bandwidths=tuple(np.geomspace(0.01, 0.3, 15)), vae_steps=30_000, vae_patience=30, iwae_k=2000,
             flow_hidden=256, flow_steps=10_000, flow_patience=10, ddpm_steps=40_000, ddpm_n_t=256,
             made_hidden=(1024, 1024), made_steps=20_000, made_patience=10)


def budgets(full: bool = False, **overrides) -> dict:
    """The scoreboard's budgets (steps, sample counts, knob grids): quick (default) or full, with
    ``overrides`` replacing single entries (unknown names are a ``ValueError``)."""
    b = dict(_FULL if check_bool(full, "full") else _QUICK)
    unknown = set(overrides) - set(b)
    if unknown:
        raise ValueError(f"unknown budget(s) {sorted(unknown)}; expected some of {sorted(b)}")
    b.update(overrides)
    return b


# ------------------------------------------------------------------------------------ the rows
def _row(key: str, bpd, samples, seconds, ctx) -> dict:
    row = dict.fromkeys(KEYS)
    row["model"] = LABELS[key]
    row["bound"] = _BOUNDS[key]
    row["bits_per_dim"] = None if bpd is None else float(bpd)
    row["train_seconds"] = None if seconds is None else float(seconds)
    if samples is not None:
        judge = ctx["judge"]
        row["confident_share"] = judge.confident_share(samples)
        row["min_class_share"] = float(judge.class_histogram(samples).min())
        row["nearest_train_ratio"] = float(metrics.nearest_train_distance(samples).mean() / ctx["ref_nearest"])
    return row


# Each model is a builder: ctx → (log_p, draw, seconds) for the closed-form ones (float64 on the CPU;
# ``draw(n, g)`` samples, ``seconds`` the fit's time or None), or key, ctx → row for the deep ones.
def _uniform(ctx):
    log_p = lambda Y: torch.zeros(len(Y), dtype=torch.float64)  # noqa: E731  density 1 on the cube
    return log_p, lambda n, g: torch.rand(n, 64, generator=g), None


def _isotropic_gaussian(ctx):
    start = time.perf_counter()
    mu, var = divergences.isotropic_gaussian_mle(ctx["Y_fit"])                     # Ex. 14.2.1
    seconds = time.perf_counter() - start
    log_p = lambda Y: -divergences.isotropic_gaussian_nll(Y.double(), mu, var)  # noqa: E731
    return log_p, lambda n, g: mu + var.sqrt() * torch.randn(n, 64, generator=g, dtype=torch.float64), seconds


def _full_gaussian(ctx):
    start = time.perf_counter()
    mean, cov = mixture.gaussian_mle(ctx["Y_fit"])
    eye = torch.eye(64, dtype=torch.float64)

    def gaussian(ridge):
        return lambda Y: mixture.log_gaussian(Y.double(), mean[None], (cov + ridge * eye)[None], "full")[:, 0]

    ridge = min(ctx["budgets"]["ridges"], key=lambda r: -gaussian(r)(ctx["Y_val"]).mean().item())  # on validation
    seconds = time.perf_counter() - start
    chol = torch.linalg.cholesky(cov + ridge * eye)
    return gaussian(ridge), lambda n, g: mean + torch.randn(n, 64, generator=g, dtype=torch.float64) @ chol.T, seconds


def _gaussian_mixture(ctx):
    start = time.perf_counter()
    fits = {rc: mixture.GaussianMixture(10, reg_covar=rc, tol=1e-3, max_iter=100, random_state=0).fit(ctx["Y_fit"])
            for rc in ctx["budgets"]["reg_covars"]}
    gmm = max(fits.values(), key=lambda m: m.score(ctx["Y_val"]))                 # chosen on validation
    seconds = time.perf_counter() - start
    log_p = lambda Y: torch.as_tensor(gmm.score_samples(Y.double()))  # noqa: E731
    return log_p, lambda n, g: torch.as_tensor(gmm.sample(n, generator=g)[0]), seconds


def _kde(ctx):
    from sklearn.neighbors import KernelDensity  # a peer library, needed by this row only
    start = time.perf_counter()
    fits = [KernelDensity(bandwidth=float(h)).fit(ctx["Y_fit"].numpy()) for h in ctx["budgets"]["kde_bandwidths"]]
    kde = max(fits, key=lambda k: k.score(ctx["Y_val"].numpy()))                  # bandwidth on validation
    seconds = time.perf_counter() - start
    log_p = lambda Y: kde.score_samples(Y.double().numpy())  # noqa: E731
    return log_p, lambda n, g: torch.as_tensor(kde.sample(n, random_state=0)), seconds


@settings.cpu_float64()
def _closed_form(key: str, ctx) -> dict:
    """uniform, isotropic, full-covariance Gaussians, the mixture and the KDE: float64 on the CPU."""
    log_p, draw, seconds = _CLOSED_FORM[key](ctx)
    samples = draw(ctx["budgets"]["n_samples"], torch.Generator().manual_seed(11))
    return _row(key, metrics.heldout_bits_per_dim(log_p), samples.float(), seconds, ctx)


def _vae(key: str, ctx, decoder: str, lr: float) -> dict:
    b, n, dev = ctx["budgets"], ctx["budgets"]["n_samples"], ctx["device"]
    split = ctx["split"]
    fit = recipes.train_vae(split.X_fit, split.X_val, decoder=decoder, steps=b["vae_steps"], lr=lr,
                            patience=b["vae_patience"], generator=torch.Generator().manual_seed(0), device=dev,
                            progress=ctx["progress"], desc=LABELS[key])
    model = fit.model.eval()
    k = b["iwae_k"]
    bpd = metrics.heldout_bits_per_dim(                        # importance-weighted bound (IWAE_k)
        lambda y: vae.elbo_and_iwae(model, y, k=k, generator=torch.Generator().manual_seed(8))[1],
        batch_size=60, device=dev)
    with torch.no_grad():
        samples = model.sample(n, generator=torch.Generator().manual_seed(6))
    return _row(key, bpd, samples, fit.seconds, ctx)


def _realnvp(key: str, ctx) -> dict:
    b, n, dev = ctx["budgets"], ctx["budgets"]["n_samples"], ctx["device"]
    model, fit = recipes.fit_realnvp_digits(hidden=b["flow_hidden"], steps=b["flow_steps"],
                                            patience=b["flow_patience"], generator=torch.Generator().manual_seed(0),
                                            device=dev, progress=ctx["progress"])
    bpd = metrics.heldout_bits_per_dim(model.log_prob, device=dev)
    return _row(key, bpd, model.sample(n, torch.Generator().manual_seed(6)), fit.seconds, ctx)


def _ddpm(key: str, ctx) -> dict:
    b, n, dev = ctx["budgets"], ctx["budgets"]["n_samples"], ctx["device"]
    schedule, fit = recipes.fit_ddpm_digits(steps=b["ddpm_steps"], dequantize=True, device=dev,
                                            progress=ctx["progress"])
    eps_model = fit.ema.model.eval()
    g = torch.Generator().manual_seed(6)

    def log_p(y):      # bound on log p(y): −(bound on the [−1, 1] scale) + 64 log 2 (Jacobian of 2y − 1)
        return -ddpm.variational_bound(schedule, eps_model, data.unit_to_signed(y), n_t=b["ddpm_n_t"],
                                       sigma="beta", generator=g) + 64 * math.log(2)

    bpd = metrics.heldout_bits_per_dim(log_p, batch_size=120, device=dev)
    with torch.no_grad():
        x = ddpm.sample(schedule, eps_model, (n, 64), device=dev, clip_x0=True,
                        generator=torch.Generator().manual_seed(3))
    return _row(key, bpd, data.signed_to_unit(x.clamp(-1, 1)), fit.seconds, ctx)


def _made(key: str, ctx) -> dict:
    b, n, dev = ctx["budgets"], ctx["budgets"]["n_samples"], ctx["device"]
    model, fit = recipes.fit_made_digits(hidden=b["made_hidden"], steps=b["made_steps"], patience=b["made_patience"],
                                         device=dev, progress=ctx["progress"])
    bpd = metrics.heldout_bits_per_dim(model.log_prob, device=dev)                # exact
    levels = autoregressive.sample(model, n, torch.Generator().manual_seed(6))
    return _row(key, bpd, data.to_unit(levels.cpu()), fit.seconds, ctx)


def _real(key: str, ctx) -> dict:
    return _row(key, None, data.heldout_digits(), None, ctx)


_CLOSED_FORM = {"uniform": _uniform, "isotropic_gaussian": _isotropic_gaussian, "full_gaussian": _full_gaussian,
                "gaussian_mixture": _gaussian_mixture, "kde": _kde}
#: model id → builder(key, ctx) → row: the table ``scoreboard`` picks from (one entry per ``MODELS``).
_BUILDERS = {"real": _real, **dict.fromkeys(_CLOSED_FORM, _closed_form),
             "vae_text": functools.partial(_vae, decoder="gaussian", lr=2e-3),
             "vae_better": functools.partial(_vae, decoder="categorical", lr=3e-3),
             "realnvp": _realnvp, "ddpm": _ddpm, "made": _made}


def scoreboard(models=None, *, full: bool = False, device=None, progress: bool = False, verbose: bool = False,
               **overrides) -> list[dict]:
    """Fit and score the ``models`` (ids of ``MODELS``, default all, always in ``MODELS``' order).

    ``full``: the full budgets (``budgets(full=True)``); ``overrides``: single budgets (e.g.
    ``ddpm_steps=300`` for a short run). ``device``: where the deep models train (default
    ``settings.get_device()``); the closed-form models and the judge run on the CPU in float64/float32.
    Returns a list of rows, dicts with exactly the keys ``KEYS``.
    """
    models = list(MODELS) if models is None else [check_choice(m, "model", MODELS) for m in models]
    if not models:
        raise ValueError(f"models must name at least one of {MODELS}")
    ctx = {"budgets": budgets(full, **overrides), "device": device if device is not None else settings.get_device(),
           "progress": progress, "judge": metrics.DigitJudge(),
           "ref_nearest": float(metrics.heldout_nearest_train_distance().mean()),
           "split": data.load_digits_split()}
    with settings.cpu_float64():
        ctx["Y_fit"] = data.dequantize(torch.as_tensor(ctx["split"].X_fit, dtype=torch.float64),
                                       torch.Generator().manual_seed(1))
        ctx["Y_val"] = data.dequantize(torch.as_tensor(ctx["split"].X_val, dtype=torch.float64),
                                       torch.Generator().manual_seed(1))
    rows = []
    for key in MODELS:
        if key not in models:
            continue
        start = time.perf_counter()
        row = _BUILDERS[key](key, ctx)
        rows.append(row)
        if verbose:
            print(f"{row['model']:45s} done in {time.perf_counter() - start:6.1f} s", file=sys.stderr, flush=True)
    return rows


# ------------------------------------------------------------------------------------ JSON, table, chart
def write_json(rows: list[dict], path) -> Path:
    """Write the rows as a JSON list of objects (keys ``KEYS``, null where not applicable)."""
    _check_rows(rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{k: r[k] for k in KEYS} for r in rows], indent=1, ensure_ascii=False) + "\n")
    return path


def _check_rows(rows) -> list[dict]:
    if not isinstance(rows, list) or not rows:
        raise ValueError("expected a non-empty list of scoreboard rows")
    for r in rows:
        if not isinstance(r, dict) or set(r) != set(KEYS):
            raise ValueError(f"a scoreboard row must have exactly the keys {KEYS}, got {r!r}")
        if r["bound"] not in ("exact", "upper", None) or (r["bound"] is None) != (r["bits_per_dim"] is None):
            raise ValueError(f"bound must be 'exact' or 'upper' where bits_per_dim is given (else null): {r!r}")
    return rows


def read_json(path) -> list[dict]:
    """The rows of a scoreboard JSON (checked against ``KEYS`` and the bound labels)."""
    return _check_rows(json.loads(Path(path).read_text()))


def render_table(rows: list[dict]) -> str:
    """Markdown table of the rows: bits/dim with its bound, the judge's numbers, time."""
    _check_rows(rows)

    def num(v, fmt):
        return "–" if v is None else format(v, fmt)

    lines = ["| model | held-out bits/dim | bound | judge confident (p ≥ 0.9) | smallest class | "
             "nearest-train ratio | training (s) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {num(r['bits_per_dim'], '.3f')} | {r['bound'] or '–'} | "
                     f"{num(r['confident_share'], '.1%')} | {num(r['min_class_share'], '.1%')} | "
                     f"{num(r['nearest_train_ratio'], '.2f')} | {num(r['train_seconds'], '.1f')} |")
    return "\n".join(lines)


def bar_chart(rows: list[dict], path=None, title: str = "held-out digits"):
    """Deprecated: moved to ``companion_lib.viz.ch15.bar_chart`` (same arguments); kept here for this
    release. Returns the figure; with ``path`` also saves it (PNG)."""
    from companion_lib.viz.ch15 import bar_chart as draw

    return draw(_check_rows(rows), path, title, reference=LABELS["real"])


# ------------------------------------------------------------------------------------ DDPM: fidelity vs memorisation
#: Where ``ddpm_curve`` results live (lesson 15_3_3 draws the curve only if this file exists).
DDPM_CURVE_FILE = Path(__file__).resolve().parents[1] / "results" / "ddpm_training_curve.json"
_CURVE_KEYS = ("steps", "confident_ratio", "min_class_share", "nearest_train_ratio", "train_seconds")


def ddpm_curve(lengths=(2000, 4000, 8000, 16_000, 32_000, 80_000), *, n_samples: int = 256, device=None,
               progress: bool = False) -> dict:
    """Fidelity against memorisation over training length: for each number of steps in ``lengths``,
    ``recipes.fit_ddpm_digits(steps=..., dequantize=True)`` afresh (lesson 15_3_3's recipe, seed 0), 1000 ancestral steps (x̂_0 clipped, noise seed 3)
    for ``n_samples`` samples, read by the judge (confident share ÷ that of real held-out digits, smallest
    class share) and the copy check (nearest-training ratio). Returns ``{"device", "date", "rows"}``, rows
    with the keys ``_CURVE_KEYS``: what ``write_curve`` stores and lesson 15_3_3 draws."""
    import datetime

    lengths = [int(n) for n in lengths]
    if not lengths or min(lengths) < 1:
        raise ValueError(f"lengths must be a non-empty list of positive step counts, got {lengths!r}")
    dev = torch.device(device) if device is not None else settings.get_device()
    judge = metrics.DigitJudge()
    real = judge.confident_share(data.heldout_digits())
    ref = float(metrics.heldout_nearest_train_distance().mean())
    rows = []
    for n in lengths:
        schedule, fit = recipes.fit_ddpm_digits(steps=n, dequantize=True, device=dev, progress=progress,
                                                desc=f"{n} steps")
        x = ddpm.sample(schedule, fit.ema.model.eval(), (n_samples, 64), device=dev, clip_x0=True,
                        generator=torch.Generator().manual_seed(3))
        y = data.signed_to_unit(x.clamp(-1, 1)).cpu()
        rows.append({"steps": n, "confident_ratio": judge.confident_share(y) / real,
                     "min_class_share": float(np.min(judge.class_histogram(y))),
                     "nearest_train_ratio": float(metrics.nearest_train_distance(y).mean()) / ref,
                     "train_seconds": fit.seconds})
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else str(dev)
    return {"device": name, "date": datetime.date.today().isoformat(), "rows": rows}


def _check_curve(curve) -> dict:
    if not isinstance(curve, dict) or set(curve) != {"device", "date", "rows"} or not isinstance(curve["rows"], list):
        raise ValueError("a DDPM curve must be a dict with the keys device, date and rows (a list)")
    for r in curve["rows"]:
        if not isinstance(r, dict) or set(r) != set(_CURVE_KEYS):
            raise ValueError(f"a DDPM curve row must have exactly the keys {_CURVE_KEYS}, got {r!r}")
    return curve


def write_curve(curve: dict, path=None) -> Path:
    """Write ``ddpm_curve``'s result as JSON (default ``DDPM_CURVE_FILE``)."""
    path = Path(path) if path is not None else DDPM_CURVE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_check_curve(curve), indent=1, ensure_ascii=False) + "\n")
    return path


def read_curve(path=None) -> dict | None:
    """The recorded DDPM curve (``ddpm_curve``'s dict, checked), or None when the file does not exist."""
    path = Path(path) if path is not None else DDPM_CURVE_FILE
    return _check_curve(json.loads(path.read_text())) if path.exists() else None


# ------------------------------------------------------------------------------------ peers
def _timed(fn, repeats: int = 1):
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def _peer_gmm(devices) -> list[str]:
    try:
        from sklearn.mixture import GaussianMixture as SkGMM
        from threadpoolctl import threadpool_limits
    except ImportError as e:  # pragma: no cover - scikit-learn is a dependency
        return [f"GaussianMixture vs scikit-learn: skipped ({e})"]
    out = []
    crabs = data.load_leptograpsus_crabs(log=True).data
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 0.5, (8, 16))       # overlapping components: EM needs many iterations
    synth = centres[rng.integers(0, 8, 100_000)] + rng.normal(0, 1, (100_000, 16))
    for name, X, K in (("crabs (200 × 5, K = 4)", crabs, 4), ("synthetic (N = 100 000, d = 16, K = 8)", synth, 8)):
        with threadpool_limits(1):
            sk, t_sk = _timed(lambda: SkGMM(K, random_state=0, max_iter=200).fit(X))
            for dev in devices:
                with settings.cpu_float64() if dev == "cpu" else contextlib.nullcontext():
                    Xd = X if dev == "cpu" else torch.as_tensor(X, dtype=torch.float32, device=dev)
                    ours, t_ours = _timed(lambda: mixture.GaussianMixture(K, random_state=0, max_iter=200).fit(Xd))
                    ll = ours.score(Xd)
                out.append(f"GaussianMixture {name} on {dev}: mean log-likelihood {ll:.6f} vs scikit-learn "
                           f"{sk.score(X):.6f} (difference {ll - sk.score(X):+.1e}); iterations {ours.n_iter_} vs "
                           f"{sk.n_iter_}; time {t_ours:.2f} s vs {t_sk:.2f} s: ratio {t_ours / t_sk:.2f}× "
                           f"(> 1: companion_lib slower)")
    return out


def _peer_diffusers(device) -> list[str]:
    try:
        from diffusers import DDPMScheduler
    except ImportError as e:
        return [f"DDPM vs diffusers: skipped (diffusers not installed: {e})"]
    T, shape = 1000, (256, 64)
    sched = DDPMScheduler(num_train_timesteps=T, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                          variance_type="fixed_small", clip_sample=True)
    sched.set_timesteps(T)
    ours = forward_diffusion.NoiseSchedule.linear(T, 1e-4, 0.02)
    worst = {}
    for dtype in (torch.float64, torch.float32):
        # diffusers computes its schedule in float32; for the float64 comparison it gets the same
        # schedule in float64 (its own formula, linspace then cumprod), so both sides differ only by rounding
        ctx = settings.cpu_float64() if dtype == torch.float64 else contextlib.nullcontext()
        with ctx:
            ref_sched = DDPMScheduler.from_config(sched.config)
            ref_sched.set_timesteps(T)
            if dtype == torch.float64:
                ref_sched.betas = torch.linspace(1e-4, 0.02, T, dtype=dtype)
                ref_sched.alphas = 1.0 - ref_sched.betas
                ref_sched.alphas_cumprod = torch.cumprod(ref_sched.alphas, 0)
                ref_sched.one = torch.tensor(1.0, dtype=dtype)
            g = torch.Generator().manual_seed(0)
            worst[dtype] = 0.0
            for t in (1000, 700, 300, 50, 2, 1):      # one step: same model output, same x_t, same noise
                eps, xt = (torch.randn(shape, generator=g, dtype=dtype) for _ in range(2))
                ref = ref_sched.step(eps, t - 1, xt, generator=torch.Generator().manual_seed(t)).prev_sample
                z = torch.randn(shape, generator=torch.Generator().manual_seed(t), dtype=dtype)
                mine = ddpm.ddpm_step(ours, eps, xt, torch.full((shape[0],), t), z, clip_x0=True)
                worst[dtype] = max(worst[dtype], (mine - ref).abs().max().item())
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.SiLU(), torch.nn.Linear(256, 64)).to(device)

    def eps_fn(x, t):
        return net(x)

    def loop_ours():
        return ddpm.sample(ours, eps_fn, shape, device=device, clip_x0=True,
                                generator=torch.Generator(device=device).manual_seed(1))

    def loop_diffusers():
        gen = torch.Generator(device=device).manual_seed(1)
        x = torch.randn(shape, generator=gen, device=device)
        for t in sched.timesteps:
            x = sched.step(eps_fn(x, t + 1), t, x, generator=gen).prev_sample
        return x

    with torch.no_grad():
        a, t_ours = _timed(loop_ours, 3)
        b, t_diff = _timed(loop_diffusers, 3)
    return [f"DDPM step vs diffusers DDPMScheduler (linear β, σ_t² = β̃_t, x̂_0 clipped): largest |difference| "
            f"{worst[torch.float64]:.1e} over 6 steps of a (256, 64) batch in float64 on the CPU; "
            f"{worst[torch.float32]:.1e} in float32 (diffusers forms 1 − ᾱ_t in float32, which loses digits "
            f"at small t; companion_lib forms its schedule in float64, then rounds)",
            f"DDPM sampling loop, 1000 steps, (256, 64), a 64-256-64 MLP as ε_θ, on {device}: final samples differ "
            f"by at most {(a - b).abs().max().item():.1e}; time {t_ours:.2f} s vs {t_diff:.2f} s: ratio "
            f"{t_ours / t_diff:.2f}× (> 1: companion_lib slower)"]


def _peer_zuko(device, steps: int = 300) -> list[str]:
    try:
        import zuko
    except ImportError:
        return ["RealNVP vs zuko: skipped (zuko is not installed; it is a bench-only extra: pip install zuko)"]
    split = data.load_digits_split()
    X_fit = torch.as_tensor(split.X_fit, dtype=torch.float32, device=device)
    logit = flows.LogitTransform(64, alpha=0.05).to(device)
    held = data.heldout_digits().to(device)

    def run(model, log_prob):
        g_deq = torch.Generator().manual_seed(0)

        def loss(m, levels):
            return data.dequantized_bits_per_dim(log_prob(data.dequantize(levels, g_deq)), 64).mean()

        fit = training.train(model, loss, X_fit, steps=steps, lr=1e-3, generator=torch.Generator().manual_seed(0),
                             progress=False)
        with torch.no_grad():
            return data.dequantized_bits_per_dim(log_prob(held), 64).mean().item(), fit.seconds / steps

    torch.manual_seed(0)
    ours = flows.RealNVP(64, n_layers=8, hidden=128, masks="checkerboard", logit_alpha=0.05).to(device)
    bpd_ours, t_ours = run(ours, ours.log_prob)
    torch.manual_seed(0)
    theirs = zuko.flows.RealNVP(64, transforms=8, hidden_features=(128, 128)).to(device)

    def zuko_log_prob(y):
        u, ld = logit(y)
        return theirs().log_prob(u) + ld

    bpd_zuko, t_zuko = run(theirs, zuko_log_prob)
    n_ours = sum(p.numel() for p in ours.parameters())
    n_zuko = sum(p.numel() for p in theirs.parameters())
    return [f"RealNVP vs zuko {zuko.__version__} RealNVP (8 couplings, hidden 128×2, same logit transform, "
            f"{steps} steps, batch 128, Adam 1e-3, no early stopping) on {device}: held-out {bpd_ours:.3f} vs "
            f"{bpd_zuko:.3f} bits/dim; {1e3 * t_ours:.1f} vs {1e3 * t_zuko:.1f} ms per training step: ratio "
            f"{t_ours / t_zuko:.2f}× (> 1: companion_lib slower); parameters {n_ours:,} vs {n_zuko:,}"]


def peers(zuko_steps: int = 300) -> list[str]:
    """Run the peer comparisons (one thread on the CPU; CUDA too where present); return the lines."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    lines = []
    for name, fn in (("GaussianMixture", lambda: _peer_gmm(devices)),
                     ("diffusers", lambda: [l for d in devices for l in _peer_diffusers(d)]),
                     ("zuko", lambda: [l for d in devices for l in _peer_zuko(d, zuko_steps)])):
        try:
            part = fn()
        except Exception as e:  # a peer's own failure is reported, the others still run
            part = [f"{name}: failed ({type(e).__name__}: {e})"]
        for line in part:
            print(line, flush=True)
        lines += part
    return lines


# ------------------------------------------------------------------------------------ command line
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m companion_lib.bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sc = sub.add_parser("scoreboard", help="fit and score every model on the held-out digits")
    sc.add_argument("--json", type=Path, help="write the rows to this JSON file")
    sc.add_argument("--full", action="store_true", help="full budgets (for a GPU)")
    sc.add_argument("--models", help=f"comma-separated subset of {','.join(MODELS)}")
    sc.add_argument("--plot", type=Path, help="save the bar chart to this PNG")
    cu = sub.add_parser("ddpm-curve", help="the DDPM's fidelity vs memorisation over training length (a GPU run)")
    cu.add_argument("--json", type=Path, default=None, help=f"where to write it (default {DDPM_CURVE_FILE})")
    cu.add_argument("--lengths", default=None, help="comma-separated step counts")
    pe = sub.add_parser("peers", help="companion_lib against scikit-learn, diffusers and zuko")
    pe.add_argument("--zuko-steps", type=int, default=300)
    args = parser.parse_args(argv)
    settings.set_threads(None if getattr(args, "full", False) else 1)
    if args.command == "peers":
        peers(args.zuko_steps)
        return 0
    if args.command == "ddpm-curve":
        kw = {"lengths": [int(n) for n in args.lengths.split(",")]} if args.lengths else {}
        curve = ddpm_curve(progress=True, **kw)
        for r in curve["rows"]:
            print(r)
        print(f"written to {write_curve(curve, args.json)}")
        return 0
    models = args.models.split(",") if args.models else None
    start = time.perf_counter()
    rows = scoreboard(models, full=args.full, verbose=True)
    print(render_table(rows))
    print(f"\nscoreboard ({'full' if args.full else 'quick'} mode, device {settings.get_device()}) in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    if args.json:
        print(f"rows written to {write_json(rows, args.json)}")
    if args.plot:
        bar_chart(rows, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
