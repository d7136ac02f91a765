"""companion_lib.peers and ``python -m companion_lib.bench peers``: the timing harness (order of the calls,
medians, ratio and spread, bad input), every peer end to end at quick sizes on the CPU with its JSON, the
skipped and failed rows, and README's peer table. Timings are never asserted (a shared CI machine)."""
from __future__ import annotations

import importlib.util
import json
import math
import re
import statistics
import sys
from pathlib import Path

import pytest
import torch

from companion_lib import bench
from companion_lib.peers import ROW_KEYS, Comparison, _harness, measure

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------ the harness
class _FakeClock:
    """perf_counter for the harness: time moves only when a fake side runs (by its next duration)."""

    def __init__(self):
        self.now = 0.0
        self.calls = []

    def perf_counter(self):
        return self.now

    def side(self, name, durations):
        durations = iter(durations)

        def run():
            self.calls.append(name)
            self.now += next(durations)
            return name
        return run


def _comparison(clock, ours, theirs, agree=lambda a, b: (True, f"{a} vs {b}")):
    return Comparison("fake", "tiny", "peer 1.0", "cpu", clock.side("ours", ours), clock.side("theirs", theirs), agree)


def test_measure_warms_up_then_interleaves_and_takes_medians(monkeypatch):
    clock = _FakeClock()
    monkeypatch.setattr(_harness.time, "perf_counter", clock.perf_counter)
    ours = [100.0, 3.0, 1.0, 2.0, 9.0, 4.0]          # the first is the warm-up: never counted
    theirs = [100.0, 1.0, 2.0, 1.0, 3.0, 2.0]
    row = measure(_comparison(clock, ours, theirs), repeats=5)
    assert tuple(row) == ROW_KEYS
    assert clock.calls == ["ours", "theirs"] * 6      # warm-up pair, then five interleaved rounds
    assert row["ours_s"] == statistics.median(ours[1:]) == 3.0
    assert row["theirs_s"] == statistics.median(theirs[1:]) == 2.0
    assert row["ratio"] == 1.5                       # median / median, not the median of the ratios (2.0)
    assert statistics.median(o / t for o, t in zip(ours[1:], theirs[1:])) == 2.0
    assert (row["ratio_min"], row["ratio_max"]) == (0.5, 3.0)
    assert row["identical"] is True and row["agreement"] == "ours vs theirs" and row["repeats"] == 5
    assert (row["name"], row["size"], row["peer"], row["device"]) == ("fake", "tiny", "peer 1.0", "cpu")


def test_measure_rejects_bad_input(monkeypatch):
    clock = _FakeClock()
    monkeypatch.setattr(_harness.time, "perf_counter", clock.perf_counter)
    comp = _comparison(clock, [1.0] * 9, [1.0] * 9)
    with pytest.raises(TypeError, match="Comparison"):
        measure({"ours": comp.ours}, repeats=1)
    for bad in (0, -1, 2.5, True, "5"):
        with pytest.raises(ValueError, match="repeats"):
            measure(comp, repeats=bad)
    assert clock.calls == []                         # rejected before anything ran


# ------------------------------------------------------------------------------------ bench peers, end to end
@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """``python -m companion_lib.bench peers --quick --repeats 1 --json FILE``, once, in this process."""
    path = tmp_path_factory.mktemp("peers") / "peers.json"
    threads = torch.get_num_threads()
    try:
        code = bench.main(["peers", "--quick", "--repeats", "1", "--json", str(path)])
    finally:
        torch.set_num_threads(threads)
    return code, path


def test_quick_run_measures_every_peer(quick_run, capsys):
    """Every comparison runs (zuko, diffusers and scikit-learn are test requirements: none may be skipped)."""
    code, path = quick_run
    result = bench._read_peers(path)
    rows = result["rows"]
    assert [r["agreement"] for r in rows if r["ours_s"] is None] == [] and code == 0
    names = [r["name"] for r in rows]
    assert len(names) == len(set(names))
    peers = " ".join(r["peer"] for r in rows)
    for lib in ("scikit-learn", "diffusers", "zuko"):
        assert lib in peers
    for r in rows:
        assert tuple(r) == ROW_KEYS and r["device"] == "cpu" and r["repeats"] == 1
        assert r["ours_s"] > 0 and r["theirs_s"] > 0 and math.isfinite(r["ratio"])
        assert r["ratio"] == pytest.approx(r["ours_s"] / r["theirs_s"])
        assert r["ratio_min"] <= r["ratio"] <= r["ratio_max"]
    # the same-model comparisons agree to round-off, the flows are different models with both bits/dim
    for r in rows:
        if "zuko" in r["peer"]:
            assert r["identical"] is None and r["agreement"].count("bits/dim") == 1
            assert "ms per training step" in r["agreement"]
        else:
            assert r["identical"] is True, r
    h = result["header"]
    assert h["device"] == "cpu" and h["cpu_threads"] == 1 and h["quick"] is True and h["torch"] == torch.__version__


def test_quick_json_round_trips_and_is_checked(quick_run, tmp_path):
    _, path = quick_run
    result = bench._read_peers(path)
    again = bench._write_peers(result, tmp_path / "again.json")
    assert again.read_text() == path.read_text()
    assert list(json.loads(path.read_text())) == ["header", "rows"]
    assert list(json.loads(path.read_text())["rows"][0]) == list(ROW_KEYS)
    bad_row = {**result, "rows": [{k: v for k, v in result["rows"][0].items() if k != "ratio"}]}
    bad_header = {**result, "header": {"torch": "2"}}
    for bad in (bad_row, bad_header, {**result, "rows": []}, result["rows"], {"rows": result["rows"]}):
        with pytest.raises(ValueError, match="peers"):
            bench._write_peers(bad, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()


def test_missing_peer_library_is_a_skipped_row_and_the_others_run(monkeypatch):
    monkeypatch.setitem(sys.modules, "zuko", None)              # import zuko -> ModuleNotFoundError
    result = bench.peers("cpu", repeats=1, quick=True, only=["flows", "sampling"])
    skipped = [r for r in result["rows"] if r["ours_s"] is None]
    assert len(skipped) == 1 and skipped[0]["peer"] == "zuko" and skipped[0]["identical"] is None
    why = skipped[0]["agreement"]
    assert why.startswith("skipped: zuko is not installed") and "pip install" in why
    assert all(r["identical"] is True for r in result["rows"] if r is not skipped[0])
    assert len(result["rows"]) > 1 and bench._peers_failed(result) == []
    assert "| – | – | – | – | skipped: zuko" in bench._peers_table(result)


def _fake_groups(monkeypatch, broken: str):
    """Every group replaced by one instant comparison; ``broken`` raises instead (a missing module of
    companion_lib is a failure, not a skip)."""
    def fake(group, device, sizes):
        if group == broken:
            raise ModuleNotFoundError("No module named 'companion_lib.peers.nothing'",
                                      name="companion_lib.peers.nothing")
        return [Comparison(f"{group} row", "tiny", "peer", device, lambda: 1, lambda: 1, lambda a, b: (a == b, "same"))]
    monkeypatch.setattr(bench, "_peer_comparisons", fake)


def test_a_failing_group_is_reported_the_others_still_run_and_the_command_fails(monkeypatch, tmp_path, capsys):
    _fake_groups(monkeypatch, broken="sampling")
    path = tmp_path / "p.json"
    assert bench.main(["peers", "--repeats", "2", "--json", str(path)]) == 1
    rows = bench._read_peers(path)["rows"]
    assert [r["name"] for r in rows] == ["gmm row", bench._PEER_GROUPS["sampling"][1], "flows row"]
    assert rows[1]["agreement"].startswith("failed: ModuleNotFoundError") and rows[1]["identical"] is None
    assert rows[0]["identical"] is True and rows[0]["repeats"] == 2
    out = capsys.readouterr().out
    assert "failed: ModuleNotFoundError" in out and "median of 2 interleaved rounds" in out
    _fake_groups(monkeypatch, broken="none")
    assert bench.main(["peers", "--repeats", "1", "--only", "flows,gmm"]) == 0
    assert [r["name"] for r in bench.peers(repeats=1, only=["flows", "gmm"])["rows"]] == ["gmm row", "flows row"]


def test_peers_rejects_bad_arguments():
    for kw, word in (({"device": "tpu"}, "device"), ({"repeats": 0}, "repeats"), ({"em_n": 0}, "em_n"),
                     ({"only": ["gmm", "nope"]}, "only"), ({"only": "gmm"}, "only"), ({"only": []}, "only"),
                     ({"threads": 0}, "threads"), ({"quick": "yes"}, "quick")):
        with pytest.raises((ValueError, TypeError), match=word):
            bench.peers(**kw)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            bench.peers("cuda")


# ------------------------------------------------------------------------------------ README's peer table
def test_peer_table_escapes_bars_and_shows_skips(quick_run):
    result = bench._read_peers(quick_run[1])
    row = {**result["rows"][0], "agreement": "max |Δ x| 1e-15", "ratio": 0.5, "ratio_min": 0.25, "ratio_max": 2.0}
    skipped = bench._peer_row("flows", "cpu", 5, "skipped: zuko is not installed")
    lines = bench._peers_table({**result, "rows": [row, skipped]}).splitlines()
    assert lines[2].endswith("| **0.50** [0.25–2.00] | yes | max \\|Δ x\\| 1e-15 |")
    assert lines[3].endswith("| – | – | – | – | skipped: zuko is not installed |")
    assert all(len(re.findall(r"(?<!\\)\|", line)) == 10 for line in lines)


def _readme_table_tool():
    spec = importlib.util.spec_from_file_location("readme_table", ROOT / "tools" / "readme_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_tool_renders_the_peer_table_between_markers(quick_run, tmp_path):
    tool = _readme_table_tool()
    _, path = quick_run
    results = tmp_path / "heldout.json"
    results.write_text(json.dumps({"quick": {"a": {"model": "m", "bits_per_dim": [1.0], "notebook": "14_2",
                                                   "order": 0}}}))
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n{tool.START}\n{tool.END}\n### Peers\n{tool.PEERS_START}\n| old |\n{tool.PEERS_END}\n"
                      f"GPU:\n{tool.PEERS_CUDA_START}\n| old |\n{tool.PEERS_CUDA_END}\ny\n")
    args = ["--results", str(results), "--readme", str(readme), "--peers", str(path),
            "--peers-cuda", str(tmp_path / "peers_cuda.json")]
    assert tool.main(args + ["--check"]) == 1
    assert tool.main(args) == 0 and tool.main(args + ["--check"]) == 0
    body = readme.read_text().split(tool.PEERS_START)[1].split(tool.PEERS_END)[0]
    result = bench._read_peers(path)
    assert "| old |" not in body and bench._peers_table(result) in body
    rows = [line for line in body.splitlines() if line.startswith("| ")]
    assert len(rows) == len(result["rows"]) + 1
    assert all(len(re.findall(r"(?<!\\)\|", line)) == 10 for line in rows)   # nine cells in every row
    assert f"Measured on {bench._peers_conditions(result)}." in body
    gpu = readme.read_text().split(tool.PEERS_CUDA_START)[1].split(tool.PEERS_CUDA_END)[0]
    assert gpu.strip() == "Not measured: no `peers_cuda.json` in `results/` yet."      # no GPU run yet
    (tmp_path / "peers_cuda.json").write_text(path.read_text())                       # a GPU run's file
    assert tool.main(args + ["--check"]) == 1 and tool.main(args) == 0
    gpu = readme.read_text().split(tool.PEERS_CUDA_START)[1].split(tool.PEERS_CUDA_END)[0]
    assert bench._peers_table(result) in gpu and readme.read_text().endswith(f"{tool.PEERS_CUDA_END}\ny\n")


def test_committed_cpu_run_is_complete_and_is_readmes_table():
    """results/peers_cpu.json: a full-size CPU run of every peer, and README shows exactly its table."""
    result = bench._read_peers(ROOT / "results" / "peers_cpu.json")
    h, rows = result["header"], result["rows"]
    assert h["device"] == "cpu" and h["quick"] is False and h["em_n"] == 100_000 and h["repeats"] == 5
    assert bench._peers_failed(result) == [] and all(r["ours_s"] is not None for r in rows)
    for kind in ("full", "diag", "tied", "spherical"):
        assert any(kind in r["name"] for r in rows), kind
    for peer in ("scikit-learn", "diffusers", "zuko"):
        assert any(peer in r["peer"] for r in rows), peer
    readme = (ROOT / "README.md").read_text()
    assert bench._peers_table(result) in readme and bench._peers_conditions(result) in readme

