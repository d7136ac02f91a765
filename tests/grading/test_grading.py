"""The autograder: every registered problem accepts its reference and rejects known-wrong and
malformed answers, without ever raising."""
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from companion_lib import grading
from companion_lib.grading import PROBLEMS, Problem, Result, check

ROOT = Path(__file__).resolve().parents[2]
IDS = sorted(PROBLEMS)


#: Every lesson problem, written down: deleting or renaming one fails the test below, not silently
#: removes it from the parametrised tests.
LESSON_PROBLEMS = {
    "14.1.e_step", "14.1.m_step", "14.1.gaussian_mle", "14.2.kl_gaussians", "14.2.kl_estimate",
    "14.2.sigma2_mle",
    "14.3.gmm_score", "14.3.langevin_step", "14.3.dsm_loss", "14.3.cd_loss", "14.4.gaussian_entropy", "14.4.elbo_gap",
    "14.5.reparameterize", "14.5.elbo_term", "14.5.vae_networks", "14.5.negative_elbo", "14.5.trained_bound",
    "15.1.made_mask",
    "15.2.coupling_forward", "15.2.coupling_inverse", "15.2.1", "15.3.1.alpha_bar", "15.3.1.q_sample",
    "15.3.1.compose",
    "15.3.2.error_probability", "15.3.2.error_bound", "15.3.3.posterior", "15.3.3.predict_x0",
    "15.3.3.loss", "15.3.3.step", "15.3.3.elbo_weight", "15.3.3.sample_loop", "15.3.4.eps_star",
    "15.3.4.dsm_loss", "15.3.5.cfg", "15.3.5.cfg_loss",
}


def test_the_lesson_problems_are_exactly_these():
    # section "0.x": test-only problems (tests/grading/grading_fixtures) other test files may register
    lessons = {pid for pid, p in PROBLEMS.items() if not p.section.startswith("0.")}
    assert len(LESSON_PROBLEMS) == 36
    assert lessons == LESSON_PROBLEMS, (sorted(LESSON_PROBLEMS - lessons), sorted(lessons - LESSON_PROBLEMS))


def test_registry_is_not_empty_and_consistent():
    assert len(PROBLEMS) >= 2
    for pid, p in PROBLEMS.items():
        assert p.id == pid
        assert pid.startswith(p.section + "."), f"{pid} should start with its section {p.section}"
        assert p.statement and p.hint and p.title


@pytest.mark.parametrize("pid", IDS)
def test_reference_answer_passes(pid):
    result = check(pid, PROBLEMS[pid].expected())
    assert isinstance(result, Result)
    assert result, str(result)
    assert result.status == "passed"


@pytest.mark.parametrize("pid", IDS)
def test_known_wrong_answers_fail(pid):
    wrongs = PROBLEMS[pid].wrong_answers
    assert len(wrongs) >= 3
    for i, wrong in enumerate(wrongs):
        result = check(pid, wrong)
        assert not result, f"wrong answer {i} for {pid} was accepted"
        assert result.status == "failed", f"{pid} wrong answer {i}: {result}"


def _raises_value_error(*args):
    raise ValueError("boom")


def _raises_not_implemented(*args):
    raise NotImplementedError


def _returns_nan(*args):
    return torch.tensor(float("nan"))


@pytest.mark.parametrize("pid", IDS)
@pytest.mark.parametrize("answer", [
    "a string", object(), np.array([np.nan]), [1, 2, 3], _raises_value_error, _returns_nan,
    {"a": 1}, torch.zeros(2, 2, 2), (1.0,),
], ids=["str", "object", "nan", "list", "raises", "returns-nan", "dict", "tensor3d", "tuple1"])
def test_malformed_answers_fail_without_raising(pid, answer):
    result = check(pid, answer)
    assert not result
    assert result.status == "failed"
    assert result.message  # says what was expected


@pytest.mark.parametrize("pid", IDS)
def test_unsolved_answers_are_reported_as_such(pid):
    for answer in (None, ...):
        assert check(pid, answer).status == "unsolved"
    if PROBLEMS[pid].kind == "function":
        assert check(pid, _raises_not_implemented).status == "unsolved"


def test_unknown_problem_is_falsy_and_lists_known_ones():
    result = check("99.9.nope", 1.0)
    assert not result and result.status == "unknown"
    assert IDS[0] in result.message


def test_result_renders_as_html_and_text():
    r = check(IDS[0], None)
    assert "Not yet solved" in r._repr_html_()
    assert IDS[0] in str(r)
    bad = check(IDS[0], "nonsense")
    assert "Hint" in str(bad)


def test_or_reference_falls_back_to_the_reference(capsys):
    pid = IDS[0]
    fallback = check(pid, None).or_reference()
    assert "reference implementation" in capsys.readouterr().out
    assert check(pid, fallback)


def test_value_problem_comparison():
    p = Problem(id="0.0.val", section="0.0", title="t", statement="s", kind="value",
                reference=lambda: (1.0, np.arange(3.0)), hint="h",
                wrong_answers=((1.1, np.arange(3.0)), (1.0, np.arange(4.0)), 2.0), rtol=1e-6)
    grading.register(p)
    try:
        assert check("0.0.val", (1.0, torch.arange(3.0)))
        assert check("0.0.val", [1.0 + 1e-9, [0.0, 1.0, 2.0]])
        for wrong in p.wrong_answers:
            assert not check("0.0.val", wrong)
        assert "function" in check("0.0.val", lambda: 1.0).message
        assert "shape" in check("0.0.val", (1.0, np.arange(4.0))).message
    finally:
        del PROBLEMS["0.0.val"]


def test_problem_needs_three_wrong_answers():
    with pytest.raises(ValueError, match="three wrong"):
        Problem(id="0.0.x", section="0.0", title="t", statement="s", kind="value",
                reference=lambda: 1.0, hint="h", wrong_answers=(2.0,))


def _ids_used(folder):
    used = set()
    for path in (ROOT / folder).glob("*.py"):
        used |= set(re.findall(r"""check\(\s*["']([0-9]+(?:\.[0-9]+)+\.[A-Za-z0-9_]+)["']""", path.read_text()))
    return used


def test_every_problem_is_posed_in_a_chapter_and_solved_in_solutions():
    in_chapters, in_solutions = _ids_used("chapters"), _ids_used("solutions")
    # section "0.x" is reserved for test-only problems (tests/grading/grading_fixtures), which other test
    # files of the same pytest worker may have registered
    lessons = {pid for pid, p in PROBLEMS.items() if not p.section.startswith("0.")}
    assert in_chapters <= lessons, f"unregistered ids in chapters: {in_chapters - lessons}"
    assert lessons <= in_chapters, f"problems never posed in chapters/: {lessons - in_chapters}"
    assert lessons <= in_solutions, f"problems without a worked solution: {lessons - in_solutions}"


def _leaves(x):
    if isinstance(x, dict):
        return [a for v in x.values() for a in _leaves(v)]
    if isinstance(x, (tuple, list)):
        return [a for v in x for a in _leaves(v)]
    return [np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)]


@pytest.mark.parametrize("pid", [pid for pid in IDS if PROBLEMS[pid].fresh_inputs])
def test_the_graders_inputs_are_not_the_ones_the_student_saw(pid):
    p = PROBLEMS[pid]
    shown = _leaves(p.cases_for(None))
    fresh = [_leaves(p.cases_for(p.grading_rng(seed))) for seed in (1, 2)]
    differs = lambda a, b: len(a) != len(b) or any(x.shape != y.shape or not np.array_equal(x, y)
                                                   for x, y in zip(a, b))
    assert differs(shown, fresh[0]) and differs(fresh[0], fresh[1])
    assert not differs(fresh[0], _leaves(p.cases_for(p.grading_rng(1))))  # same seed, same inputs


def test_case_seed_and_thresholds():
    assert grading.case_seed(None, 5) == 5
    assert grading.case_seed(np.random.default_rng(0), 5) == grading.case_seed(np.random.default_rng(0), 5)
    with pytest.raises(TypeError, match="Generator"):
        grading.case_seed(3, 5)
    assert grading.at_most(0.1)(1.0, 1.05) is None and "at most 1.1" in grading.at_most(0.1)(1.0, 1.2)
    assert grading.at_least(0.0)(2.0, 2.5) is None and "at least 2" in grading.at_least(0.0)(2.0, 1.0)
    assert "NaN" in grading.at_most()(1.0, float("nan")) and "one number" in grading.at_most()(1.0, [1.0, 2.0])


def test_progress_is_one_line_per_section(monkeypatch):
    monkeypatch.setattr(grading, "HISTORY", [])
    section = PROBLEMS[IDS[0]].section
    ids = [p.id for p in grading.problems_for_section(section)]
    check(ids[0], PROBLEMS[ids[0]].expected())
    line = str(grading.progress(section))
    assert line.startswith(f"{section}: 1/{len(ids)} problems pass") and "\n" not in line
    if len(ids) > 1:
        assert ids[1] in line
    with pytest.raises(ValueError, match="sections with problems"):
        grading.progress("99.9")


def test_a_class_answer_runs_through_its_harness():
    class Twice:
        def __init__(self, k):
            self.k = k

        def __call__(self, x):
            return self.k * x

    p = Problem(id="0.0.cls", section="0.0", title="t", statement="s", kind="function", reference=Twice,
                hint="h", wrong_answers=(1, 2, 3), cases=lambda rng=None: [(2.0, np.arange(3.0))],
                harness=lambda cls, k, x: cls(k)(x))
    grading.register(p)
    try:
        assert check("0.0.cls", Twice)
        assert not check("0.0.cls", lambda k: (lambda x: x))
        assert "raised" in check("0.0.cls", lambda: None).message
    finally:
        del PROBLEMS["0.0.cls"]
