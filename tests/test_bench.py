"""companion_lib.bench: the scoreboard's rows, its JSON and table, the CUDA paths (the peers: tests/test_peers.py)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from companion_lib import bench, data, metrics, settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_rows():
    """A tiny scoreboard: the closed-form rows and short deep runs (small budgets, few samples)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return bench.scoreboard(["real", "uniform", "isotropic_gaussian", "full_gaussian", "realnvp", "ddpm"],
                                device="cpu", n_samples=64, flow_steps=60, flow_patience=None,
                                ddpm_steps=40, ddpm_n_t=8)
    finally:
        torch.set_num_threads(threads)


def by_model(rows):
    return {r["model"]: r for r in rows}


def test_rows_have_exactly_the_keys_and_labels(small_rows):
    for r in small_rows:
        assert tuple(r) == bench.KEYS
    rows = by_model(small_rows)
    assert rows[bench.LABELS["real"]]["bound"] is None and rows[bench.LABELS["real"]]["bits_per_dim"] is None
    assert rows[bench.LABELS["uniform"]]["bound"] == "exact"
    assert rows[bench.LABELS["realnvp"]]["bound"] == "exact"
    assert rows[bench.LABELS["ddpm"]]["bound"] == "upper"
    assert [r["model"] for r in small_rows] == [bench.LABELS[k] for k in
                                                ("real", "uniform", "isotropic_gaussian", "full_gaussian",
                                                 "realnvp", "ddpm")]


def test_bound_labels_of_every_model():
    assert {k for k, v in bench._BOUNDS.items() if v == "upper"} == {"vae_text", "vae_better", "ddpm"}
    assert set(bench._BOUNDS) == set(bench.MODELS) == set(bench.LABELS) == set(bench._BUILDERS)


def test_uniform_row_is_log2_17_exactly(small_rows):
    assert by_model(small_rows)[bench.LABELS["uniform"]]["bits_per_dim"] == pytest.approx(math.log2(17), abs=1e-12)


def test_isotropic_row_matches_a_direct_computation(small_rows):
    """N(μ, σ²I) fitted by hand in NumPy on the same dequantised fitting images, scored on the held-out set."""
    split = data.load_digits_split()
    with settings.cpu_float64():
        Y = data.dequantize(torch.as_tensor(split.X_fit, dtype=torch.float64), torch.Generator().manual_seed(1))
    Y = Y.numpy()
    mu = Y.mean(0)
    var = ((Y - mu) ** 2).mean()
    H = data.heldout_digits().numpy().astype(np.float64)
    log_p = -0.5 * ((H - mu) ** 2).sum(1) / var - 32 * np.log(2 * np.pi * var)
    direct = math.log2(17) - log_p.mean() / (64 * math.log(2))
    assert by_model(small_rows)[bench.LABELS["isotropic_gaussian"]]["bits_per_dim"] == pytest.approx(direct, abs=1e-9)


def test_real_row_is_the_judge_on_real_digits(small_rows):
    real = by_model(small_rows)[bench.LABELS["real"]]
    judge = metrics.DigitJudge()
    assert real["confident_share"] == pytest.approx(judge.confident_share(data.heldout_digits()))
    assert real["nearest_train_ratio"] == pytest.approx(1.0)
    assert real["min_class_share"] == pytest.approx(judge.class_histogram(data.heldout_digits()).min())


def test_samplers_are_read_and_the_full_gaussian_beats_the_isotropic(small_rows):
    rows = by_model(small_rows)
    for key in ("uniform", "isotropic_gaussian", "full_gaussian", "realnvp", "ddpm"):
        r = rows[bench.LABELS[key]]
        assert 0.0 <= r["confident_share"] <= 1.0 and 0.0 <= r["min_class_share"] <= 0.1
        assert r["nearest_train_ratio"] > 0.0
    assert rows[bench.LABELS["full_gaussian"]]["bits_per_dim"] < rows[bench.LABELS["isotropic_gaussian"]]["bits_per_dim"]
    # uniform noise is far from every training digit; the real digits define ratio 1
    assert rows[bench.LABELS["uniform"]]["nearest_train_ratio"] > 2.0
    assert rows[bench.LABELS["uniform"]]["confident_share"] < 0.05
    assert rows[bench.LABELS["realnvp"]]["train_seconds"] > 0.0


def test_json_round_trip_and_schema(small_rows, tmp_path):
    path = bench.write_json(small_rows, tmp_path / "sb.json")
    raw = json.loads(path.read_text())
    assert isinstance(raw, list) and all(list(r) == list(bench.KEYS) for r in raw)
    assert raw[0]["bits_per_dim"] is None          # null in the file
    assert bench.read_json(path) == small_rows
    bad = [dict(raw[1], bound="approx")]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="bound"):
        bench.read_json(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="keys"):
        bench.write_json([{"model": "x"}], tmp_path / "x.json")


def test_table_and_chart(small_rows, tmp_path):
    table = bench.render_table(small_rows)
    assert table.count("\n") == len(small_rows) + 1
    assert f"| {bench.LABELS['uniform']} | {math.log2(17):.3f} | exact |" in table
    fig = bench.bar_chart(small_rows, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").stat().st_size > 1000
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_bad_input():
    with pytest.raises(ValueError, match="model"):
        bench.scoreboard(["gan"])
    with pytest.raises(ValueError, match="unknown budget"):
        bench.budgets(flow_stepz=3)
    assert bench.budgets(full=True)["ddpm_steps"] > bench.budgets()["ddpm_steps"]


def test_committed_quick_json_is_valid_and_in_readme():
    rows = bench.read_json(ROOT / "results" / "scoreboard_quick.json")
    assert [r["model"] for r in rows] == [bench.LABELS[k] for k in bench.MODELS]
    readme = (ROOT / "README.md").read_text()
    assert bench.render_table(rows) in readme


# ------------------------------------------------------------------------------------ CUDA paths
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
def test_cuda_scoreboard_deep_rows():
    rows = bench.scoreboard(["realnvp", "ddpm", "vae_better"], device="cuda", n_samples=64, flow_steps=50,
                            flow_patience=None, ddpm_steps=50, ddpm_n_t=8, vae_steps=50, iwae_k=10)
    for r in rows:
        assert math.isfinite(r["bits_per_dim"]) and r["train_seconds"] > 0


@cuda
def test_cuda_peers_quick_every_row_runs():
    """The GPU script's peers call, tiny: every comparison runs on CUDA (none skipped or failed)."""
    result = bench.peers("cuda", repeats=1, quick=True)
    assert result["header"]["device"] == "cuda" and result["rows"]
    for r in result["rows"]:
        assert r["device"] == "cuda" and r["ours_s"] is not None and r["theirs_s"] is not None, r


@cuda
def test_cuda_gaussian_mixture_matches_cpu():
    from companion_lib import mixture
    X = data.load_leptograpsus_crabs(log=True).data
    with settings.cpu_float64():
        cpu = mixture.GaussianMixture(4, random_state=0).fit(X).score(X)
    gpu = mixture.GaussianMixture(4, random_state=0).fit(torch.as_tensor(X, dtype=torch.float32, device="cuda"))
    assert gpu.score(torch.as_tensor(X, dtype=torch.float32, device="cuda")) == pytest.approx(cpu, abs=1e-3)


def test_ddpm_curve_runs_writes_and_reads_back(tmp_path):
    """The GPU script's path, tiny: two lengths, a few samples; no JSON file -> read_curve gives None."""
    assert bench.read_curve(tmp_path / "absent.json") is None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        curve = bench.ddpm_curve([2, 3], n_samples=8, device="cpu")
    finally:
        torch.set_num_threads(threads)
    assert set(curve) == {"device", "date", "rows"} and curve["device"] == "cpu"
    assert [r["steps"] for r in curve["rows"]] == [2, 3]
    for r in curve["rows"]:
        assert 0 <= r["min_class_share"] <= 1 and r["nearest_train_ratio"] > 0 and r["confident_ratio"] >= 0
    path = bench.write_curve(curve, tmp_path / "curve.json")
    assert bench.read_curve(path) == json.loads(path.read_text()) == curve
    for bad in ({"rows": []}, {"device": "cpu", "date": "x", "rows": [{"steps": 1}]}):
        with pytest.raises(ValueError, match="curve"):
            bench.write_curve(bad, tmp_path / "bad.json")
    with pytest.raises(ValueError, match="lengths"):
        bench.ddpm_curve([])
