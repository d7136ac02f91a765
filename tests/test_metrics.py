"""metrics: bits/dim on the fixed held-out set, the digit judge, the nearest-training-image distance,
Pearson's chi-square goodness-of-fit test."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from companion_lib import data, metrics


@pytest.fixture(scope="module")
def judge():
    return metrics.DigitJudge()


@pytest.fixture(scope="module")
def split():
    return data.load_digits_split(validation=False)


# ------------------------------------------------------------------ bits/dim
def test_bits_per_dim_convention():
    # the uniform density on [0, 1)^64 has log p = 0: exactly log2(17) bits/dim
    assert metrics.bits_per_dim(torch.zeros(10), 64) == pytest.approx(math.log2(17), abs=1e-12)
    # 64 ln 2 nats per image more is exactly one bit per dimension less
    assert metrics.bits_per_dim(torch.full((4,), 64 * math.log(2)), 64) == pytest.approx(math.log2(17) - 1)
    assert metrics.bits_per_dim(torch.full((4,), 64 * math.log(2)), 64, levels=None) == pytest.approx(-1.0)
    assert metrics.nats_to_bits_per_dim(64 * math.log(2), 64, levels=None) == pytest.approx(1.0)
    # the mean of the log-densities, not of anything else
    assert metrics.bits_per_dim([0.0, -128 * math.log(2)], 64, levels=None) == pytest.approx(1.0)


def test_heldout_bits_per_dim_of_a_gaussian_against_scipy(split):
    Y = data.heldout_digits().double().numpy()
    mu = (split.X_train.mean(0) + 0.5) / 17
    sd = split.X_train.std(0) / 17 + 0.05
    expected = math.log2(17) - norm.logpdf(Y, mu, sd).sum(1).mean() / (64 * math.log(2))

    def log_prob(y):
        assert y.dtype == torch.float32 and y.shape[1] == 64
        return torch.as_tensor(norm.logpdf(y.double().numpy(), mu, sd).sum(1))

    assert metrics.heldout_bits_per_dim(log_prob) == pytest.approx(expected, rel=1e-6)
    # batching does not change the mean (7 does not divide 360)
    assert metrics.heldout_bits_per_dim(log_prob, batch_size=7) == pytest.approx(expected, rel=1e-6)
    # uniform density: log2 17
    assert metrics.heldout_bits_per_dim(lambda y: np.zeros(len(y))) == pytest.approx(math.log2(17))


def test_heldout_bits_per_dim_rejects_bad_log_prob_fn():
    with pytest.raises(ValueError, match=r"one log-density per row"):
        metrics.heldout_bits_per_dim(lambda y: torch.zeros(len(y), 1))
    with pytest.raises(ValueError, match="NaN or infinite"):
        metrics.heldout_bits_per_dim(lambda y: torch.full((len(y),), float("nan")))
    with pytest.raises(TypeError, match="log_prob_fn"):
        metrics.heldout_bits_per_dim(np.zeros(360))


# ------------------------------------------------------------------ the judge
def test_judge_meets_the_issue_numbers(judge):
    """The four numbers of the judge's docstring: 98.3 % / 78.9 % / 0.0 % / 0.2 %."""
    m = judge.measured
    assert m["accuracy"] >= 0.975 and m["accuracy"] == pytest.approx(0.983, abs=0.006)
    assert m["confident_real"] >= 0.65 and m["confident_real"] == pytest.approx(0.789, abs=0.03)
    assert m["confident_noise"] <= 0.03
    assert m["confident_blends"] <= 0.35 and m["confident_blends"] <= 0.01
    # the stored numbers are what the methods give
    assert judge.accuracy == m["accuracy"]
    assert judge.confident_share(data.heldout_digits()) == pytest.approx(m["confident_real"])
    noise = torch.rand(500, 64, generator=torch.Generator().manual_seed(1))
    assert judge.confident_share(noise) == pytest.approx(m["confident_noise"])


def test_shipped_judge_is_what_training_gives():
    """The default judge loads shipped weights; retraining (seed 0, 2000 steps, one thread, CPU) must
    give a judge that judges alike, else the file is stale (regenerate it with _train_judge_net(0, 2000)).

    Not the weights' bits: 2000 float32 steps on another CPU (AVX-512, AVX2, Apple silicon: BLAS and
    ATen kernels that round differently) end at other weights. What a stale file or a broken recipe
    would change is how the judge judges, so that is compared, within what another seed of the same
    recipe moves it (seeds 1-3: accuracy within 0.003, confident share of real digits within 0.04, at
    most 2 of 360 held-out labels changed); 300 steps instead of 2000 fails (accuracy 0.969, confident
    share 0.63, 11 of 360 labels changed)."""
    shipped = metrics._shipped_judge_net()
    assert shipped is not None, "companion_lib/datasets/digit_judge.pt is missing"
    trained = metrics._train_judge_net(*metrics._SHIPPED_JUDGE)
    want, got = metrics.DigitJudge._measure(shipped), metrics.DigitJudge._measure(trained)
    tolerance = {"accuracy": 0.006, "confident_real": 0.06, "confident_noise": 0.01, "confident_blends": 0.01}
    for key, tol in tolerance.items():  # accuracy: 2 of 360 digits; shares: a few percent
        assert abs(got[key] - want[key]) <= tol, f"retrained judge's {key} {got[key]:.4f} vs shipped {want[key]:.4f}"
    held = data.heldout_digits()
    with torch.no_grad():
        agree = (trained(held).argmax(1) == shipped(held).argmax(1)).float().mean().item()
    assert agree >= 0.985, f"retrained and shipped judge agree on only {agree:.1%} of the held-out digits"
    # and the shipped judge is the one DigitJudge() uses
    default = metrics.DigitJudge()
    x = held[:5]
    torch.testing.assert_close(torch.as_tensor(default.predict_proba(x)).float(),
                               torch.softmax(shipped(x), 1), rtol=1e-5, atol=1e-6)


def test_judge_accuracy_by_predict(judge, split):
    acc = (judge.predict(data.heldout_digits()) == split.y_test).mean()
    assert acc == pytest.approx(judge.accuracy)


def test_judge_histogram_matches_the_true_class_shares(judge, split):
    hist = judge.class_histogram(data.heldout_digits())
    assert hist.shape == (10,) and hist.sum() == pytest.approx(1.0)
    truth = np.bincount(split.y_test, minlength=10) / len(split.y_test)
    # every mistake moves at most 2/360 of total-variation mass
    assert 0.5 * np.abs(hist - truth).sum() <= (1 - judge.accuracy) + 1e-9
    # a batch of one class is all in that bin
    sevens = data.heldout_digits()[torch.as_tensor(split.y_test == 7)]
    assert judge.class_histogram(sevens)[7] >= 0.95


def test_judge_probabilities_threshold_and_clipping(judge):
    x = data.heldout_digits()[:20]
    p = judge.predict_proba(x)
    assert p.shape == (20, 10) and np.allclose(p.sum(1), 1.0, atol=1e-5)
    assert judge.confident_share(x, threshold=0.0) == 1.0
    share = judge.confident_share(x, threshold=0.5)
    assert share == pytest.approx((p.max(1) >= 0.5).mean())
    # inputs outside [0, 1) are clipped: a shifted image equals its clipped version
    assert np.allclose(judge.predict_proba(x * 3 - 1), judge.predict_proba((x * 3 - 1).clamp(0, 1)))
    # numpy, float64 and tensors with grad are accepted alike
    assert np.allclose(judge.predict_proba(x.numpy()), p)
    assert np.allclose(judge.predict_proba(x.double().requires_grad_()), p, atol=1e-6)


def test_judge_is_cached_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    metrics.DigitJudge()  # cached from the fixture, or trained here: either way the RNG is untouched
    assert torch.equal(torch.rand(3), expected)
    assert metrics.DigitJudge().net is metrics.DigitJudge().net


def test_judge_rejects_bad_input(judge):
    with pytest.raises(ValueError, match=r"\(\*, 64\)"):
        judge.predict_proba(torch.zeros(5, 63))
    with pytest.raises(ValueError, match="finite"):
        judge.confident_share(torch.full((2, 64), float("nan")))
    with pytest.raises(ValueError, match="threshold"):
        judge.confident_share(torch.zeros(2, 64), threshold=1.5)
    with pytest.raises(ValueError, match="at least 1"):
        judge.class_histogram(torch.zeros(0, 64))


# ------------------------------------------------------------------ nearest training image
def test_nearest_train_distance_values(split):
    centres = (split.X_train[:50] + 0.5) / 17
    assert np.allclose(metrics.nearest_train_distance(centres), 0.0, atol=1e-6)
    # any dequantisation of a training image is within 4/17 of its bin centre
    u = torch.rand(50, 64, generator=torch.Generator().manual_seed(0))
    deq = data.to_unit(torch.as_tensor(split.X_train[:50]), noise=u)
    d = metrics.nearest_train_distance(deq)
    assert (d <= 4 / 17 + 1e-6).all() and (d > 0).all()
    # brute force for a few held-out digits
    held = data.heldout_digits()[:5].double().numpy()
    ref = (split.X_train + 0.5) / 17
    brute = np.sqrt(((held[:, None, :] - ref[None]) ** 2).sum(-1)).min(1)
    assert np.allclose(metrics.nearest_train_distance(held), brute, atol=1e-5)


def test_heldout_reference_distance_is_far_from_copies():
    d = metrics.heldout_nearest_train_distance()
    assert d.shape == (360,)
    # real held-out digits are new: far further from the training set than a dequantised copy (4/17)
    assert np.median(d) > 3 * 4 / 17 and d.min() > 4 / 17
    # the numbers the docstring states
    assert np.median(d) == pytest.approx(1.01, abs=0.005)
    assert np.quantile(d, 0.05) == pytest.approx(0.69, abs=0.005) and d.min() == pytest.approx(0.50, abs=0.005)


# ------------------------------------------------------------------ Pearson's chi-square test (§14.1)
def test_chi_square_rejects_wrong_model_and_accepts_right_one():
    rng = np.random.default_rng(1)
    edges = np.concatenate([[-np.inf], np.linspace(-3, 3, 25), [np.inf]])
    counts, _ = np.histogram(rng.normal(size=2000), bins=edges)
    right = metrics.chi_square_gof(counts, np.diff(norm.cdf(edges)), n_params=0)
    wrong = metrics.chi_square_gof(counts, np.diff(norm.cdf(edges, 0.3, 1.0)), n_params=0)
    assert right["p_value"] > 0.01 and wrong["p_value"] < 1e-6
    with pytest.raises(ValueError, match="sum to 1"):
        metrics.chi_square_gof(counts, np.full(len(counts), 0.01), n_params=0)


# ------------------------------------------------------------------ README's table from recorded results
def _readme_table_tool():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "readme_table.py"
    spec = importlib.util.spec_from_file_location("readme_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_record_writes_only_when_asked(tmp_path, monkeypatch):
    out = tmp_path / "r.json"
    monkeypatch.setenv("COMPANION_RESULTS_FILE", str(out))
    monkeypatch.setenv("COMPANION_MODE", "quick")
    monkeypatch.delenv("COMPANION_RECORD", raising=False)
    row = metrics.record_heldout_result("14_2/iso", "N(μ, σ²I)", 4.1234, "14_2", order=1)
    assert row["bits_per_dim"] == [4.1234] and not out.exists()          # nbval / students: no file
    monkeypatch.setenv("COMPANION_RECORD", "1")
    metrics.record_heldout_result("14_2/iso", "N(μ, σ²I)", 4.1234, "14_2", order=1)
    metrics.record_heldout_result("14_5/vae", "VAE", (3.31, torch.tensor(3.08)), "14_5")
    metrics.record_heldout_result("14_2/iso", "N(μ, σ²I)", 4.2, "14_2", order=1)   # a re-run replaces
    import json
    table = json.loads(out.read_text())
    assert set(table) == {"quick"} and table["quick"]["14_2/iso"]["bits_per_dim"] == [4.2]
    assert table["quick"]["14_5/vae"]["bits_per_dim"] == pytest.approx([3.31, 3.08])
    with pytest.raises(ValueError, match="finite"):
        metrics.record_heldout_result("k", "m", float("nan"), "14_2")
    with pytest.raises(TypeError, match="model"):
        metrics.record_heldout_result("k", None, 1.0, "14_2")


def test_readme_table_tool_rewrites_between_markers(tmp_path, monkeypatch):
    tool = _readme_table_tool()
    results = tmp_path / "r.json"
    monkeypatch.setenv("COMPANION_RESULTS_FILE", str(results))
    monkeypatch.setenv("COMPANION_RECORD", "1")
    monkeypatch.setenv("COMPANION_MODE", "quick")
    metrics.record_heldout_result("b", "mixture", 2.704, "14_2", order=2)
    metrics.record_heldout_result("a", "uniform", math.log2(17), "14_2", order=0)
    metrics.record_heldout_result("c", "VAE", (3.316, 3.094), "14_5")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{tool.START}\n| old |\n{tool.END}\noutro\n")
    args = ["--results", str(results), "--readme", str(readme)]
    assert tool.main(args + ["--check"]) == 1
    assert tool.main(args) == 0
    text = readme.read_text()
    assert "| old |" not in text and text.startswith("intro\n") and text.endswith("outro\n")
    body = text.split(tool.START)[1].split(tool.END)[0].strip().splitlines()
    assert body[2:] == ["| uniform | 4.09 | 14_2 |", "| mixture | 2.70 | 14_2 |", "| VAE | 3.32 / 3.09 | 14_5 |"]
    assert tool.main(args + ["--check"]) == 0


def test_readme_has_the_table_markers():
    tool = _readme_table_tool()
    text = (tool.ROOT / "README.md").read_text()
    assert text.count(tool.START) == 1 and text.count(tool.END) == 1
