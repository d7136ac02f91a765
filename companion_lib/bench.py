"""The distribution-learning scoreboard and peer benchmarks (a face of the package).

    python -m companion_lib.bench scoreboard [--json FILE] [--full] [--models a,b,...]
    python -m companion_lib.bench peers [--device cpu|cuda] [--repeats 5] [--em-n 100000] [--json FILE]
                                        [--quick] [--only gmm,sampling,flows] [--threads 1]
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

**Peers** (``peers``; the comparisons live in ``companion_lib.peers``, whose docstring gives the timing
rule): ``mixture.GaussianMixture`` against scikit-learn's, ``ddpm.sample``'s loops against diffusers'
schedulers, ``flows.RealNVP`` against zuko's RealNVP. The peer libraries are bench-only extras
(``pip install -e ".[bench]"`` in a checkout), never needed by a student; a missing one gives a row
"skipped".
``--json`` writes ``{"header": conditions, "rows": [...]}`` (rows with the keys ``peers.ROW_KEYS``),
from which ``tools/readme_table.py`` renders README's peer table.
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

from companion_lib import autoregressive, data, ddpm, divergences, metrics, mixture, recipes, settings, vae
from companion_lib._checks import check_bool, check_choice, check_int

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
#: The peer groups of ``peers``, in order: group → (module under ``companion_lib.peers``, the libraries it
#: needs (a missing one skips the group's row), the row label used when it is skipped).
_PEER_GROUPS = {
    "gmm": (("sklearn", "threadpoolctl"), "EM, every covariance type and the crabs", "scikit-learn"),
    "sampling": (("diffusers",), "DDPM sampling loops (ancestral, respaced, DDIM)", "diffusers"),
    "flows": (("zuko",), "RealNVP, held-out bits/dim at equal steps", "zuko"),
}
#: Keys of the header of a peers run (``peers(...)["header"]``): the conditions the times were taken in.
_PEER_HEADER_KEYS = ("torch", "device", "device_name", "cpu_threads", "cpu_count", "repeats", "quick", "em_n",
                     "date", "load_before", "load_after")


def _peer_sizes(group: str, quick: bool, em_n: int) -> dict:
    """The keyword arguments of ``companion_lib.peers.<group>.comparisons`` (``quick``: tiny, seconds)."""
    if group == "gmm":
        size = dict(n=400, d=3, k=2, n_iter=3) if quick else dict(n=em_n, d=16, k=8, n_iter=50)
        return dict(size, covariance_types=("full", "diag", "tied", "spherical"), crabs=True)
    if group == "sampling":
        return (dict(steps=50, respaced_steps=10, batch=8, dim=4) if quick
                else dict(steps=1000, respaced_steps=100, batch=256, dim=64))
    return dict(steps=3, hidden=8, batch=16) if quick else dict(steps=300, hidden=128, batch=128)


def _peer_comparisons(group: str, device: str, sizes: dict) -> list:
    if group == "gmm":
        from companion_lib.peers import gmm as module
    elif group == "sampling":
        from companion_lib.peers import sampling as module
    else:
        from companion_lib.peers import flows as module
    return module.comparisons(device, **sizes)


def _peer_row(group: str, device: str, repeats: int, why: str) -> dict:
    """The row of a group that did not run: ``identical`` None, no times, ``agreement`` says why."""
    from companion_lib.peers import ROW_KEYS
    _, label, peer = _PEER_GROUPS[group]
    row = dict.fromkeys(ROW_KEYS)
    row.update(name=label, size="–", peer=peer, device=device, repeats=repeats, agreement=why)
    return row


def _peer_group(group: str, device: str, repeats: int, sizes: dict, verbose: bool) -> list[dict]:
    """The measured rows of one group; one "skipped" row if its library is missing, "failed" rows for errors."""
    from companion_lib.peers import measure
    try:
        comps = _peer_comparisons(group, device, sizes)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] in _PEER_GROUPS[group][0]:
            return [_peer_row(group, device, repeats, f"skipped: {e.name} is not installed ({e}; "
                                                       "pip install -e '.[bench]' in a checkout)")]
        return [_peer_row(group, device, repeats, f"failed: {type(e).__name__}: {e}")]
    except Exception as e:  # a peer's failure is reported, the other groups still run
        return [_peer_row(group, device, repeats, f"failed: {type(e).__name__}: {e}")]
    rows = []
    for comp in comps:
        start = time.perf_counter()
        try:
            row = measure(comp, repeats)
        except Exception as e:
            row = _peer_row(group, device, repeats, f"failed: {type(e).__name__}: {e}")
            row.update(name=comp.name, size=comp.size, peer=comp.peer)
        rows.append(row)
        if verbose:
            print(f"{row['name']} ({row['size']}): {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    return rows


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform
    return platform.processor() or platform.machine()


def peers(device: str = "cpu", *, repeats: int = 5, em_n: int = 100_000, quick: bool = False, only=None,
          threads: int = 1, verbose: bool = False) -> dict:
    """Run the peer comparisons (``companion_lib.peers``; its docstring gives the timing rule).

    ``device``: ``"cpu"`` or ``"cuda"`` (companion_lib's side; scikit-learn always runs on the CPU).
    ``repeats``: interleaved rounds per comparison. ``em_n``: N of the synthetic EM data (d = 16, K = 8,
    50 iterations). ``quick``: tiny sizes (seconds: the tests and the GPU script's dry run).
    ``only``: a subset of ``"gmm"``, ``"sampling"``, ``"flows"`` (default all). ``threads``: CPU threads
    for torch and, through threadpoolctl, NumPy's BLAS.

    Returns ``{"header": ..., "rows": [...]}``: the header with the keys ``_PEER_HEADER_KEYS`` (torch
    version, device name, threads, date, load average before and after), rows with exactly the keys
    ``peers.ROW_KEYS``. A group whose peer library is not installed gives one row with ``identical``
    None and ``agreement`` "skipped: ..."; one that raises gives such a row with "failed: ..." (the
    others still run; ``python -m companion_lib.bench peers`` then exits 1).
    """
    import datetime
    import os

    device = check_choice(device, "device", ("cpu", "cuda"))
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no CUDA GPU")
    repeats = check_int(repeats, "repeats", low=1)
    em_n = check_int(em_n, "em_n", low=16)
    threads = check_int(threads, "threads", low=1)
    quick = check_bool(quick, "quick")
    if only is None:
        groups = list(_PEER_GROUPS)
    else:
        if isinstance(only, str) or not only:
            raise ValueError(f"only must be a non-empty list of {tuple(_PEER_GROUPS)}, got {only!r}")
        chosen = {check_choice(g, "only", tuple(_PEER_GROUPS)) for g in only}
        groups = [g for g in _PEER_GROUPS if g in chosen]
    try:
        from threadpoolctl import threadpool_limits
        blas = threadpool_limits(threads)
    except ModuleNotFoundError:                         # pragma: no cover - scikit-learn brings it
        blas = contextlib.nullcontext()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    header = {"torch": torch.__version__, "device": device,
              "device_name": torch.cuda.get_device_name() if device == "cuda" else _cpu_name(),
              "cpu_threads": threads, "cpu_count": os.cpu_count(), "repeats": repeats, "quick": quick,
              "em_n": None if quick else em_n,
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "load_before": round(os.getloadavg()[0], 2), "load_after": None}
    rows = []
    try:
        with blas:
            for group in groups:
                rows += _peer_group(group, device, repeats, _peer_sizes(group, quick, em_n), verbose)
    finally:
        torch.set_num_threads(old_threads)
    header["load_after"] = round(os.getloadavg()[0], 2)
    return {"header": header, "rows": rows}


def _check_peers(result) -> dict:
    from companion_lib.peers import ROW_KEYS
    if not isinstance(result, dict) or set(result) != {"header", "rows"}:
        raise ValueError("a peers result must be a dict with the keys header and rows")
    if not isinstance(result["header"], dict) or set(result["header"]) != set(_PEER_HEADER_KEYS):
        raise ValueError(f"a peers header must have exactly the keys {_PEER_HEADER_KEYS}, got {result['header']!r}")
    if not isinstance(result["rows"], list) or not result["rows"]:
        raise ValueError("a peers result needs a non-empty list of rows")
    for r in result["rows"]:
        if not isinstance(r, dict) or set(r) != set(ROW_KEYS):
            raise ValueError(f"a peers row must have exactly the keys {ROW_KEYS}, got {r!r}")
    return result


def _write_peers(result: dict, path) -> Path:
    """Write ``peers``' result as JSON (header, then the rows with the keys ``peers.ROW_KEYS`` in order)."""
    from companion_lib.peers import ROW_KEYS
    _check_peers(result)
    out = {"header": {k: result["header"][k] for k in _PEER_HEADER_KEYS},
           "rows": [{k: r[k] for k in ROW_KEYS} for r in result["rows"]]}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    return path


def _read_peers(path) -> dict:
    """The peers result written by ``_write_peers`` (checked)."""
    return _check_peers(json.loads(Path(path).read_text()))


def _peers_failed(result: dict) -> list[dict]:
    return [r for r in result["rows"] if str(r["agreement"]).startswith("failed")]


def _peers_table(result: dict) -> str:
    """Markdown table of a peers result (what ``bench peers`` prints and README's peer table shows)."""
    _check_peers(result)

    def secs(v):
        return "–" if v is None else f"{v:.3g}"

    def cell(text):                     # a "|" inside a cell (|Δ|) would end it
        return str(text).replace("|", "\\|")

    lines = ["| comparison | size | peer | device | ours (s) | theirs (s) | ratio [min–max] | identical | "
             "agreement |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        ratio = "–" if r["ratio"] is None else f"**{r['ratio']:.2f}** [{r['ratio_min']:.2f}–{r['ratio_max']:.2f}]"
        same = {True: "yes", False: "no", None: "–"}[r["identical"]]
        lines.append(f"| {cell(r['name'])} | {cell(r['size'])} | {cell(r['peer'])} | {r['device']} | "
                     f"{secs(r['ours_s'])} | {secs(r['theirs_s'])} | {ratio} | {same} | {cell(r['agreement'])} |")
    return "\n".join(lines)


def _peers_conditions(result: dict) -> str:
    """One line saying where and how the times of a peers result were taken."""
    h = _check_peers(result)["header"]
    return (f"{h['device_name']} ({h['device']}), {h['cpu_threads']} CPU thread(s) of {h['cpu_count']}, "
            f"torch {h['torch']}, median of {h['repeats']} interleaved rounds after a warm-up, "
            f"{'quick sizes, ' if h['quick'] else ''}{h['date']}; load average {h['load_before']} before, "
            f"{h['load_after']} after")


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
    pe = sub.add_parser("peers", help="companion_lib against scikit-learn, diffusers and zuko (timed side by side)")
    pe.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="companion_lib's device (default cpu)")
    pe.add_argument("--repeats", type=int, default=5, help="interleaved rounds per comparison (default 5)")
    pe.add_argument("--em-n", type=int, default=100_000, help="N of the synthetic EM data (default 100000)")
    pe.add_argument("--json", type=Path, help="write the header and rows to this JSON file")
    pe.add_argument("--quick", action="store_true", help="tiny sizes (seconds): tests and the GPU script's dry run")
    pe.add_argument("--only", help=f"comma-separated subset of {','.join(_PEER_GROUPS)}")
    pe.add_argument("--threads", type=int, default=1, help="CPU threads for torch and BLAS (default 1)")
    args = parser.parse_args(argv)
    if args.command == "peers":
        result = peers(args.device, repeats=args.repeats, em_n=args.em_n, quick=args.quick,
                       only=args.only.split(",") if args.only else None, threads=args.threads, verbose=True)
        print(_peers_table(result))
        print(f"\n{_peers_conditions(result)}")
        if args.json:
            print(f"written to {_write_peers(result, args.json)}")
        failed = _peers_failed(result)
        return 1 if failed else 0
    settings.set_threads(None if getattr(args, "full", False) else 1)
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
