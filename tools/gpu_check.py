"""The GPU run of issue 21: everything a lent CUDA machine should measure, in one call of about 6 minutes.

Started by ``tools/gpu_check.sh`` (which parses the arguments and picks the Python); steps, in order:

1. ``install``: the wheels carried in ``.gpu-wheels/`` (``make gpu-wheels``) go into a private folder with
   ``pip install --no-index --no-deps --target``; that folder and the repository go on ``PYTHONPATH`` of
   every later step (no build of the package). A probe then records the device, the versions and which
   imports fail.
2. ``peers``: ``python -m companion_lib.bench peers`` with ``PEERS_ARGS`` (``--device cuda --em-n 1000000``,
   one round, scikit-learn on all the CPU's cores) and ``--json OUT/peers_cuda.json``, alone on the machine
   so that its timings are clean.
3. ``cuda_tests`` and ``notebooks``, side by side: pytest over the test files that mention
   ``cuda.is_available``, keeping only the tests skipped without CUDA (``_is_cuda_test``: a ``skipif`` whose
   reason names CUDA and whose condition is CUDA's absence); and full mode (``COMPANION_MODE=full``) of the notebooks in ``NOTEBOOKS`` that are expected to fit,
   ``NOTEBOOK_SLOTS`` kernels at a time, each under its own budget. A notebook past its budget is stopped
   and recorded as ``timeout``; one that is expected not to fit is recorded as ``skipped`` with the reason.

Every step has a budget; the whole run stays within ``TOTAL_BUDGET_S``. ``OUT/gpu_check.json`` is written
after every step (a run cut short still leaves what it measured), with this schema (``SCHEMA``)::

    {"schema": 1, "dry_run": bool, "started_utc": str, "total_seconds": float, "budget_s": int,
     "device": {"name": str, "cuda": bool, "torch": str, "python": str, "versions": {pkg: str},
                "import_errors": {module: str}},
     "steps": {step: {"status": "ok" | "failed" | "timeout" | "skipped", "seconds": float,
                      "budget_s": float, "detail": str}},              # step in STEPS
     "cuda_tests": {"selected": int, "passed": int, "failed": int, "errors": int, "skipped": int,
                    "failures": [str]},
     "notebooks": {name: {"status": "passed" | "failed" | "timeout" | "skipped", "seconds": float | None,
                          "budget_s": float | None, "mode": "full" | "quick", "error": str | None}},
     "notebook_slots": int, "peers_json": str | None}                  # peers_json: relative to OUT

``results/gpu_check.json`` (a copy of a real run's file) is what README's GPU table is generated from
(``tools/readme_table.py``) and what ``python tools/colab.py`` takes each lesson's measured full-mode time
from for the Colab cell (``notebooks[name]["seconds"]`` where ``status == "passed"`` and ``mode == "full"``).

``--dry-run`` runs the same steps on the CPU with small budgets, so that CI can test this script: the
install step checks the pins (and the wheels, if ``.gpu-wheels/`` is here) without installing, the peers run
``--quick`` on the CPU, the CUDA tests are collected and all skipped, and one notebook runs in quick mode.

Other entry points: ``python tools/gpu_check.py wheels DIR`` checks a downloaded wheel set (``make
gpu-wheels``); ``-p gpu_check`` loads this module as the pytest plugin that selects the CUDA tests.
Standard library only at import (the GPU machine has no notebook stack until step 1 installs it).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = 1
STEPS = ("install", "peers", "cuda_tests", "notebooks")
REQUIREMENTS = ROOT / "tools" / "gpu_requirements.txt"
WHEELS = ROOT / ".gpu-wheels"
MAX_WHEELS_BYTES = 64 * 2**20          # what the device tool carries in one call, the whole tree included

# Seconds. The GPU machine: 6 minutes in all, so that its start-up and one rerun fit 15 device-minutes.
# peers runs alone; cuda_tests runs beside the notebooks, whose window is what is left after peers. The
# dry run's budgets only stop a hang (CI's machine is shared with the rest of the suite).
TOTAL_BUDGET_S = {"gpu": 360, "dry": 240}
STEP_BUDGET_S = {"gpu": {"install": 60, "peers": 150, "cuda_tests": 150},
                 "dry": {"install": 60, "peers": 90, "cuda_tests": 120}}
RESERVE_S = 10                         # kept for writing the JSON and stopping stragglers

# The GPU against the peers on the CPU with all its cores (scikit-learn's EM), or on the GPU (diffusers,
# zuko); one round after the warm-up (EM at N = 10^6 runs 50 iterations of each covariance type).
PEERS_ARGS = {"gpu": ["--device", "cuda", "--em-n", "1000000", "--repeats", "1",
                      "--threads", str(os.cpu_count() or 1)],
              "dry": ["--device", "cpu", "--quick", "--repeats", "1"]}
PEERS_JSON = {"gpu": "peers_cuda.json", "dry": "peers_cpu.json"}

# Full-mode budget of each lesson on one GPU (seconds), or None where full mode is expected not to fit
# the run's window at all; the estimate is the full-mode training steps in the lesson's source
# (run.budget(..., full=...)) at a few ms per step of a small network, a launch-bound GPU's rate. A
# measured time replaces the guess: widen or skip by the first run's gpu_check.json.
NOTEBOOKS = {
    "14_1_pearson_crabs": 120,
    "14_2_maximum_likelihood_is_kl": 150,
    "14_3_energy_based_models": 150,                 # 8 000 DSM + 3 000 ML steps, 50 000 Langevin chains
    "14_4_elbo": 90,
    "14_5_variational_autoencoder": None,            # ~12 trainings of up to 30 000 steps (decoders, β sweep)
    "15_1_landscape": 150,                           # GAN 20 000 steps, MADE, timed DDPM sampling
    "15_2_coupling_flows": None,                     # ~130 000 flow steps (three seeds of 10 000 + 20 000)
    "15_3_1_forward_diffusion": 90,
    "15_3_2_distinguishing_gaussians": 90,
    "15_3_3_reverse_diffusion_ddpm": None,           # 40 000 + 115 000 DDPM steps (the step-count sweep)
    "15_3_3b_training_and_sampling_choices": None,   # every prediction × weighting over four seeds
    "15_3_4_score_matching": 150,                    # 20 000 steps
    "15_3_5_classifier_free_guidance": 150,          # 8 000 + 30 000 steps
    "15_9_scoreboard": None,                         # the full board: bench scoreboard --full is its own run
}
# Kernels at a time (16 cores: 2 torch threads each). Six: the five 150-s lessons and the 120-s one start at
# once, the 90-s ones as slots free up; the window after peers is 3 to 4 minutes.
NOTEBOOK_SLOTS = {"gpu": 6, "dry": 1}
DRY_NOTEBOOKS = {"15_3_1_forward_diffusion": 150}    # quick mode on the CPU, the shortest lesson (7 s idle)

# What the GPU machine has already (the device guide's package list, read 2026-11-17): a carried wheel may
# depend on these without carrying them. Versions where the guide gives them.
PRESENT_THERE = set("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt
jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities
linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes
mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba
numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse
nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx
onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client
propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions
pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil pytorch-lightning
pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy seaborn
sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels sympy
tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers
toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray
xxhash yarl zipp
""".split())
VERSIONS_THERE = {"torch": "2.11.0", "numpy": "2.5.2", "huggingface-hub": "1.33.0", "safetensors": "0.8.0"}
GPU_MARKERS = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
               "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
               "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}

# The probe run after the install (a child process, so the driver needs nothing but the standard library).
PROBE_MODULES = ("companion_lib", "companion_lib.bench", "companion_lib.mixture", "nbclient", "nbformat",
                 "ipykernel", "ipywidgets", "diffusers", "zuko", "sklearn", "scipy", "matplotlib")
PROBE = r"""
import importlib, json, platform, sys
out = {"python": platform.python_version(), "versions": {}, "import_errors": {}}
try:
    import torch
    out["torch"], out["cuda"] = torch.__version__, torch.cuda.is_available()
    out["name"] = torch.cuda.get_device_name(0) if out["cuda"] else "cpu"
except Exception as e:
    out.update(torch=None, cuda=False, name=None)
    out["import_errors"]["torch"] = f"{type(e).__name__}: {e}"
for m in sys.argv[1:]:
    try:
        mod = importlib.import_module(m)
        if "." not in m:
            out["versions"][m] = getattr(mod, "__version__", "?")
    except Exception as e:
        out["import_errors"][m] = f"{type(e).__name__}: {e}"[:300]
print(json.dumps(out))
"""


STEP_STATUSES = ("ok", "failed", "timeout", "skipped")
NOTEBOOK_STATUSES = ("passed", "failed", "timeout", "skipped")


def check_results(results: dict) -> list[str]:
    """Where ``results`` departs from the schema of ``gpu_check.json`` (empty list: it follows it)."""
    problems = []
    missing = {"schema", "dry_run", "started_utc", "total_seconds", "budget_s", "device", "steps", "cuda_tests",
               "notebooks", "notebook_slots", "peers_json"} - set(results)
    if missing:
        return [f"missing keys {sorted(missing)}"]
    if results["schema"] != SCHEMA:
        problems.append(f"schema {results['schema']!r}, expected {SCHEMA}")
    for key in ("name", "cuda", "torch", "python", "versions", "import_errors"):
        if key not in results["device"]:
            problems.append(f"device: no {key!r}")
    if set(results["steps"]) != set(STEPS):
        problems.append(f"steps {sorted(results['steps'])}, expected {sorted(STEPS)}")
    for step, row in results["steps"].items():
        if row.get("status") not in STEP_STATUSES or not isinstance(row.get("seconds"), (int, float)):
            problems.append(f"step {step}: {row}")
    for key in ("selected", "passed", "failed", "errors", "skipped"):
        if not isinstance(results["cuda_tests"].get(key), int):
            problems.append(f"cuda_tests: {key!r} is not a count")
    for name, row in results["notebooks"].items():
        seconds = row.get("seconds")
        if (row.get("status") not in NOTEBOOK_STATUSES or row.get("mode") not in ("quick", "full")
                or (seconds is None) != (row.get("status") == "skipped")):
            problems.append(f"notebook {name}: {row}")
    return problems


def _no_probe(why: str) -> dict:
    return {"name": None, "cuda": False, "torch": None, "python": None, "versions": {}, "import_errors": {"probe": why}}


class UsageError(ValueError):
    """A bad argument: the script exits 2 with the message."""


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# ----------------------------------------------------------------------------------------- wheel set
def read_pins(path: Path = REQUIREMENTS) -> dict[str, str]:
    """``{normalized name: version}`` of a requirements file of exact pins; anything else raises ValueError."""
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", line)
        if not m:
            raise ValueError(f"{path}:{number}: {line!r} is not an exact pin NAME==VERSION")
        name = _normalize(m.group(1))
        if name in pins:
            raise ValueError(f"{path}:{number}: {m.group(1)} is pinned twice")
        pins[name] = m.group(2)
    if not pins:
        raise ValueError(f"{path} pins nothing")
    return pins


def _wheel_requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode("utf-8", "replace")
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def check_wheels(folder: Path, pins: dict[str, str]) -> list[str]:
    """Problems of the wheel set in ``folder`` against ``pins`` (empty list: ready to carry).

    Exactly one wheel per pin at its version and nothing else; at most ``MAX_WHEELS_BYTES`` together; every
    requirement of every wheel (markers evaluated for the GPU machine's Python 3.12 on x86-64 Linux) either
    carried at a version it accepts or in ``PRESENT_THERE`` (at a version it accepts, where known).
    """
    from packaging.requirements import Requirement   # here, not on the GPU machine before the install

    problems, found = [], {}
    wheels = sorted(folder.glob("*.whl"))
    for wheel in wheels:
        name, version = wheel.name.split("-")[:2]
        found.setdefault(_normalize(name), []).append(version)
    for name, version in pins.items():
        if found.get(name) != [version]:
            problems.append(f"{name}=={version}: found {found.get(name, 'no wheel')}")
    problems += [f"{name} {versions}: not pinned in {REQUIREMENTS.name}"
                 for name, versions in found.items() if name not in pins]
    size = sum(w.stat().st_size for w in wheels)
    if size > MAX_WHEELS_BYTES:
        problems.append(f"{size / 2**20:.1f} MiB of wheels: over {MAX_WHEELS_BYTES / 2**20:.0f} MiB")
    for wheel in wheels:
        for text in _wheel_requirements(wheel):
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate(GPU_MARKERS):
                continue
            name = _normalize(req.name)
            version = pins.get(name, VERSIONS_THERE.get(name))
            if name not in pins and name not in PRESENT_THERE:
                problems.append(f"{wheel.name} needs {text}: neither carried nor on the GPU machine")
            elif version is not None and not req.specifier.contains(version, prereleases=True):
                problems.append(f"{wheel.name} needs {text}: {name} {version} does not satisfy it")
    return problems


# ----------------------------------------------------------------------------------- the pytest plugin
def _is_cuda_test(item, cuda_absent: bool) -> bool:
    """A ``skipif`` mark whose reason names CUDA and whose condition holds exactly when CUDA is absent
    (``skipif(not torch.cuda.is_available(), ...)``; not the tests of the CPU-only message, which skip on a GPU)."""
    for mark in item.iter_markers("skipif"):
        condition = mark.args[0] if mark.args else mark.kwargs.get("condition")
        reason = str(mark.kwargs.get("reason", ""))
        if (not isinstance(condition, str) and bool(condition) == cuda_absent
                and re.search(r"\bcuda\b", reason, re.IGNORECASE)):
            return True
    return False


def pytest_collection_modifyitems(config, items):
    """Keep only the CUDA tests (``_is_cuda_test``)."""
    import torch

    cuda_absent = not torch.cuda.is_available()
    keep, drop = [], []
    for item in items:
        (keep if _is_cuda_test(item, cuda_absent) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep


def cuda_test_files(tests: Path = ROOT / "tests") -> list[Path]:
    """The test files that branch on ``torch.cuda.is_available()``."""
    return sorted(p for p in tests.rglob("test_*.py") if "cuda.is_available" in p.read_text())


def _junit_summary(path: Path) -> dict:
    summary = {"selected": 0, "passed": 0, "failed": 0, "errors": 0, "skipped": 0, "failures": []}
    if not path.exists():
        return summary
    for case in ET.parse(path).getroot().iter("testcase"):
        summary["selected"] += 1
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        if "failure" in kinds or "error" in kinds:
            summary["failed" if "failure" in kinds else "errors"] += 1
            child = case.find("failure") if "failure" in kinds else case.find("error")
            summary["failures"].append(f"{name}: {(child.get('message') or '')[:300]}")
        elif "skipped" in kinds:
            summary["skipped"] += 1
        else:
            summary["passed"] += 1
    return summary


# -------------------------------------------------------------------------------------- processes
_CHILDREN: set[int] = set()     # process groups of the running steps (each child leads its own session)


def _stop_children(signum, frame) -> None:
    """SIGTERM/SIGINT of the driver (the outer ``timeout``): kill every step's process group, then exit.
    Each child runs in a session of its own, so nothing else would stop it when the driver dies (a device
    machine keeps such processes running into the next call); a notebook's kernel exits with its runner."""
    for pgid in list(_CHILDREN):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    raise SystemExit(128 + signum)


def _run(cmd: list[str], *, env: dict, budget: float, log: Path, cwd: Path = ROOT) -> tuple[str, float, int]:
    """Run ``cmd`` in its own process group with output appended to ``log``: (status, seconds, returncode).

    Past ``budget`` seconds the group gets SIGTERM, then SIGKILL 10 s later; status ``"timeout"``.
    """
    start = time.perf_counter()
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        _CHILDREN.add(proc.pid)
        try:
            rc = proc.wait(timeout=max(budget, 1))
            status = "ok" if rc == 0 else "failed"
        except subprocess.TimeoutExpired:
            status, rc = "timeout", -1
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                try:
                    os.killpg(proc.pid, sig)
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
                except ProcessLookupError:
                    break
        finally:
            _CHILDREN.discard(proc.pid)
    return status, time.perf_counter() - start, rc


class Run:
    """One run of the steps: budgets, the environment of the children, the results JSON."""

    def __init__(self, out: Path, dry_run: bool, python: str, notebooks: list[str]):
        self.out, self.dry, self.python = out, dry_run, python
        self.kind = "dry" if dry_run else "gpu"
        self.start = time.perf_counter()
        self.deadline = self.start + TOTAL_BUDGET_S[self.kind]
        self.lock = threading.Lock()
        self.site = Path(tempfile.mkdtemp(prefix="gpu-check-site-"))
        self.scratch = Path(tempfile.mkdtemp(prefix="gpu-check-"))
        self.wanted = notebooks
        self.results = {
            "schema": SCHEMA, "dry_run": dry_run,
            "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "total_seconds": 0.0, "budget_s": TOTAL_BUDGET_S[self.kind], "device": _no_probe("not reached"),
            "steps": {s: {"status": "skipped", "seconds": 0.0, "budget_s": 0.0, "detail": "not reached"}
                      for s in STEPS},
            "cuda_tests": _junit_summary(Path("/nonexistent")), "notebooks": {},
            "notebook_slots": NOTEBOOK_SLOTS[self.kind], "peers_json": None}

    # ------------------------------------------------------------------ bookkeeping
    def left(self) -> float:
        return self.deadline - time.perf_counter() - RESERVE_S

    def budget(self, step: str) -> float:
        return max(0.0, min(STEP_BUDGET_S[self.kind][step], self.left()))

    def env(self, **extra) -> dict:
        env = dict(os.environ)
        paths = [str(self.site), str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env.update(PYTHONPATH=os.pathsep.join(paths), PYTHONUNBUFFERED="1",
                   JUPYTER_RUNTIME_DIR=str(self.scratch / "runtime"), IPYTHONDIR=str(self.scratch / "ipython"))
        env.pop("COMPANION_NO_FLOAT64", None)
        env.update(extra)
        return env

    def record(self, step: str, status: str, seconds: float, budget: float, detail: str) -> None:
        with self.lock:
            self.results["steps"][step] = {"status": status, "seconds": round(seconds, 1),
                                           "budget_s": round(budget, 1), "detail": detail}
            self.write()
        print(f"[gpu_check] {step}: {status} in {seconds:.1f} s (budget {budget:.0f} s): {detail}", flush=True)

    def write(self) -> None:
        self.results["total_seconds"] = round(time.perf_counter() - self.start, 1)
        tmp = self.out / "gpu_check.json.tmp"
        tmp.write_text(json.dumps(self.results, indent=1, sort_keys=True) + "\n")
        tmp.replace(self.out / "gpu_check.json")

    # ------------------------------------------------------------------ steps
    def install(self) -> None:
        budget, start = self.budget("install"), time.perf_counter()
        log = self.out / "gpu_check.log"
        try:
            pins = read_pins()
        except (OSError, ValueError) as e:
            return self.record("install", "failed", time.perf_counter() - start, budget, str(e))
        wheels = sorted(WHEELS.glob("*.whl"))
        status, detail = "ok", f"{len(pins)} pins in {REQUIREMENTS.name}"
        if self.dry:
            if wheels:
                problems = check_wheels(WHEELS, pins)
                status = "failed" if problems else "ok"
                detail += f"; {len(wheels)} wheels checked, not installed (dry run)" + "".join(
                    f"\n  {p}" for p in problems)
            else:
                detail += "; no .gpu-wheels/ here: nothing to install (dry run)"
        elif not wheels:
            status, detail = "failed", "no .gpu-wheels/: run `make gpu-wheels` here and carry .gpu-wheels"
        else:
            cmd = [self.python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                   "--no-cache-dir", "--disable-pip-version-check", "--target", str(self.site)]
            status, _, rc = _run(cmd + [str(w) for w in wheels], env=self.env(), budget=budget, log=log)
            detail = f"{len(wheels)} wheels into {self.site} (pip exit {rc})"
        self.results["device"] = self.probe()
        errors = self.results["device"].get("import_errors", {})
        if errors:
            status = "failed"
            detail += "; imports failing: " + ", ".join(sorted(errors))
        if not self.dry and not self.results["device"].get("cuda"):
            status, detail = "failed", detail + "; torch sees no CUDA device"
        self.record("install", status, time.perf_counter() - start, budget, detail)

    def probe(self) -> dict:
        """The device, the versions and the failing imports, as ``PROBE`` prints them in a child."""
        try:
            out = subprocess.run([self.python, "-c", PROBE, *PROBE_MODULES], env=self.env(), cwd=ROOT,
                                 capture_output=True, text=True, timeout=min(max(self.left(), 5), 120))
        except subprocess.TimeoutExpired:
            return _no_probe("timed out")
        try:
            return json.loads(out.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            return _no_probe(out.stderr[-500:])

    def peers(self) -> None:
        budget = self.budget("peers")
        name = PEERS_JSON[self.kind]
        cmd = [self.python, "-m", "companion_lib.bench", "peers", *PEERS_ARGS[self.kind], "--json",
               str(self.out / name)]
        status, seconds, rc = _run(cmd, env=self.env(), budget=budget, log=self.out / "peers.log")
        if (self.out / name).exists():
            self.results["peers_json"] = name
        elif status == "ok":
            status = "failed"
        self.record("peers", status, seconds, budget, f"{' '.join(cmd[1:])} (exit {rc}); log peers.log")

    def cuda_tests(self) -> None:
        budget = self.budget("cuda_tests")
        files = [str(p.relative_to(ROOT)) for p in cuda_test_files()]
        xml = self.out / "cuda_tests.xml"
        cmd = [self.python, "-m", "pytest", "-p", "gpu_check", "-p", "no:cacheprovider", "-q", "-rs",
               f"--junitxml={xml}", *files]
        env = self.env(PYTHONPATH=os.pathsep.join([str(self.site), str(ROOT), str(ROOT / "tools")]))
        status, seconds, rc = _run(cmd, env=env, budget=budget, log=self.out / "cuda_tests.log")
        summary = _junit_summary(xml)
        self.results["cuda_tests"] = summary
        detail = (f"{summary['selected']} selected in {len(files)} files: {summary['passed']} passed, "
                  f"{summary['failed']} failed, {summary['errors']} errors, {summary['skipped']} skipped")
        if summary["selected"] == 0:
            status = "failed"
        elif status == "ok" and not self.dry and summary["skipped"]:
            status, detail = "failed", detail + " (skipped on a GPU machine: CUDA not seen)"
        elif status == "ok" and self.dry and summary["skipped"] != summary["selected"]:
            status, detail = "failed", detail + " (a CUDA test ran without CUDA)"
        self.record("cuda_tests", status, seconds, budget, detail + "; log cuda_tests.log")

    def notebooks(self, window_end: float) -> None:
        start = time.perf_counter()
        table = DRY_NOTEBOOKS if self.dry else NOTEBOOKS
        mode = "quick" if self.dry else "full"
        book = self.results["notebooks"]
        for name, need in NOTEBOOKS.items():
            if name not in self.wanted:
                reason = ("dry run: one lesson only" if self.dry else "not asked for (--notebooks)" if need else
                          "full mode expected to exceed this run's window (see NOTEBOOKS in tools/gpu_check.py)")
                book[name] = {"status": "skipped", "seconds": None, "budget_s": None, "mode": mode, "error": reason}
        todo = [n for n in NOTEBOOKS if n not in book]
        # Longest budget first: the ones most likely to need the whole window start at once.
        todo.sort(key=lambda n: -(table.get(n) or 10**6))
        threads = str(max(1, (os.cpu_count() or 2) // NOTEBOOK_SLOTS[self.kind]))
        env = self.env(COMPANION_MODE=mode, COMPANION_DEVICE="cpu" if self.dry else "cuda",
                       COMPANION_THREADS=threads)

        def one(name: str) -> None:
            budget = min(table.get(name) or 10**6, window_end - time.perf_counter())
            if budget < 20:
                result = {"status": "skipped", "seconds": None, "budget_s": round(max(budget, 0), 1),
                          "mode": mode, "error": "the run's window was spent before it could start"}
            else:
                result = run_notebook_child(self.python, ROOT / "chapters" / f"{name}.ipynb", budget, env,
                                            self.out / "notebooks.log", self.scratch)
                result.update(budget_s=round(budget, 1), mode=mode)
            with self.lock:
                book[name] = result
                self.write()
            print(f"[gpu_check] notebook {name}: {result['status']} ({result['seconds']} s)", flush=True)

        with concurrent.futures.ThreadPoolExecutor(NOTEBOOK_SLOTS[self.kind]) as pool:
            list(pool.map(one, todo))
        ran = [r for r in book.values() if r["status"] != "skipped"]
        counts = {s: sum(r["status"] == s for r in book.values()) for s in ("passed", "failed", "timeout", "skipped")}
        # A GPU run's timeout is a measurement (the lesson needs more than its budget); a dry run's is not.
        status = "failed" if counts["failed"] or not ran or (self.dry and counts["timeout"]) else "ok"
        detail = ", ".join(f"{v} {k}" for k, v in counts.items()) + f" ({mode} mode); log notebooks.log"
        self.record("notebooks", status, time.perf_counter() - start, window_end - start, detail)

    def main(self) -> int:
        self.write()
        self.install()
        self.peers()
        window_end = self.deadline - RESERVE_S
        tests = threading.Thread(target=self.cuda_tests)
        tests.start()
        self.notebooks(window_end)
        tests.join()
        self.write()
        failed = [s for s, r in self.results["steps"].items() if r["status"] not in ("ok", "skipped")]
        print(f"[gpu_check] {'FAILED: ' + ', '.join(failed) if failed else 'all steps ok'}; "
              f"{self.results['total_seconds']} s; {self.out / 'gpu_check.json'}", flush=True)
        return 1 if failed else 0


# --------------------------------------------------------------------------------- one notebook
def run_notebook_child(python: str, path: Path, budget: float, env: dict, log: Path, scratch: Path) -> dict:
    """Execute ``path`` in a child process (``_notebook``) under ``budget`` seconds: the result dict."""
    result_file = Path(tempfile.mkstemp(prefix=path.stem + "-", suffix=".json", dir=scratch)[1])
    cmd = [python, str(Path(__file__).resolve()), "_notebook", str(path), f"{budget:.1f}", str(result_file)]
    status, seconds, rc = _run(cmd, env=env, budget=budget + 30, log=log)
    try:
        result = json.loads(result_file.read_text())
    except ValueError:
        result = {"status": "timeout" if status == "timeout" else "failed", "seconds": round(seconds, 1),
                  "error": f"the runner stopped without a result (exit {rc}); see notebooks.log"}
    return result


def _execute_notebook(path: Path, budget: float) -> dict:
    """Run every cell of ``path`` in a fresh kernel (nbclient) with at most ``budget`` seconds in all."""
    import asyncio

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=int(budget) + 5, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    async def execute() -> None:
        task = asyncio.ensure_future(client.async_execute())
        try:
            done, _ = await asyncio.wait({task}, timeout=budget)
            if not done:    # stop it; whatever the cancelled run raises on its way out is not the verdict
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise TimeoutError
            task.result()
        finally:   # stopped while the kernel was starting: nbclient's own clean-up is not reached
            if client.km is not None and client.km.has_kernel:
                await client.km.shutdown_kernel(now=True)

    start = time.perf_counter()
    try:
        asyncio.run(execute())
        status, error = "passed", None
    except TimeoutError:
        status, error = "timeout", f"stopped after its budget of {budget:.0f} s"
    except CellExecutionError as e:
        lines = [line for line in str(e).splitlines() if line.strip()]
        status, error = "failed", (lines[-1] if lines else repr(e))[:500]
    except Exception as e:   # a kernel that died, a bad notebook: recorded, not raised
        status, error = "failed", f"{type(e).__name__}: {e}"[:500]
    return {"status": status, "seconds": round(time.perf_counter() - start, 1), "error": error}


# ----------------------------------------------------------------------------------------- CLI
def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tools/gpu_check.sh", description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="the same steps on the CPU, small budgets")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "gpu-check", help="folder of the results")
    parser.add_argument("--notebooks", default=None,
                        help="comma-separated lessons to run (default: those expected to fit); 'all': every one")
    parser.add_argument("--python", default=sys.executable, help="the interpreter of the steps")
    args = parser.parse_args(argv)
    args.python = os.path.abspath(shutil.which(args.python) or args.python)   # children run elsewhere too
    if args.notebooks is None:
        args.notebooks = list(DRY_NOTEBOOKS) if args.dry_run else [n for n, b in NOTEBOOKS.items() if b]
    elif args.notebooks == "all":
        args.notebooks = list(NOTEBOOKS)
    else:
        names = [n.strip().removesuffix(".ipynb").removeprefix("chapters/") for n in args.notebooks.split(",")]
        unknown = [n for n in names if n not in NOTEBOOKS]
        if unknown or not names:
            raise UsageError(f"--notebooks: unknown lesson(s) {unknown}; known: {', '.join(NOTEBOOKS)}")
        args.notebooks = names
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: exists and is not a folder")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_notebook"]:
        path, budget, result_file = Path(argv[1]), float(argv[2]), Path(argv[3])
        result_file.write_text(json.dumps(_execute_notebook(path, budget)))
        return 0
    if argv[:1] == ["wheels"]:
        folder = Path(argv[1]) if len(argv) > 1 else WHEELS
        problems = check_wheels(folder, read_pins())
        size = sum(w.stat().st_size for w in folder.glob("*.whl")) / 2**20
        for p in problems:
            print(f"problem: {p}", file=sys.stderr)
        print(f"{folder}: {len(list(folder.glob('*.whl')))} wheels, {size:.1f} MiB, "
              f"{'ready to carry' if not problems else f'{len(problems)} problem(s)'}")
        return 1 if problems else 0
    try:
        args = parse(argv)
    except UsageError as e:
        print(f"tools/gpu_check.sh: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _stop_children)
    signal.signal(signal.SIGINT, _stop_children)
    run = Run(args.out.resolve(), args.dry_run, args.python, args.notebooks)
    try:
        return run.main()
    finally:
        shutil.rmtree(run.site, ignore_errors=True)
        shutil.rmtree(run.scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
