"""Feedback that teaches: every catalogued mistake of every lesson problem is recognised and named,
hints come in tiers (after a wrong attempt or on request, never while unsolved, never the code), loss
problems check the gradient, value problems reject impossible values, and a self-reported value never
earns the instructor's credit."""
import math
import re

import numpy as np
import pytest
import torch
from scipy import stats

from companion_lib import diffusion, grading
from companion_lib.grading import PROBLEMS, Mistake, Problem, check, grade_answer, hint
from companion_lib.grading import feedback
from companion_lib.grading.instructor.verdict import judge_outcomes
from companion_lib.grading.judge import STATUSES, instructor_status
from test_problems_alternatives import ALTERNATIVES  # tests/grading is on sys.path (rootdir-less import)

LESSONS = sorted(pid for pid, p in PROBLEMS.items() if not p.section.startswith("0."))


@pytest.fixture
def fresh_hints(monkeypatch):
    """No hint tier revealed yet, and a private HISTORY (check appends to it)."""
    monkeypatch.setattr(feedback, "_HINT_LEVEL", {})
    monkeypatch.setattr(feedback, "HISTORY", [])


# ---------------------------------------------------------------- catalogued mistakes
@pytest.mark.parametrize("pid", LESSONS)
def test_every_catalogued_mistake_gets_its_own_message(pid):
    problem = PROBLEMS[pid]
    assert len(problem.mistakes) >= 3, f"{pid} catalogues {len(problem.mistakes)} mistakes"
    messages = [m.message for m in problem.mistakes]
    assert len(set(messages)) == len(messages), "two mistakes share a message"
    for mistake in problem.mistakes:
        result = grade_answer(pid, mistake.answer)
        assert result.status == "failed", (getattr(mistake.answer, "__name__", mistake.answer), result.message)
        assert result.message.startswith(mistake.message), (mistake.message, result.message)


@pytest.mark.parametrize("pid", LESSONS)
def test_the_reference_is_not_taken_for_a_mistake(pid):
    result = grade_answer(pid, PROBLEMS[pid].expected())
    assert result.status == "passed" and not any(m.message in result.message for m in PROBLEMS[pid].mistakes)


def test_an_unrecognised_wrong_answer_gets_the_plain_comparison():
    result = grade_answer("15.3.5.cfg", lambda c, u, w: u + w * (c - u) + 0.1)
    assert not result and result.message.startswith("test case 1: values differ")


# ---------------------------------------------------------------- hints
_CODE = re.compile(r"torch\.|np\.|\[:|\.reshape|\.to\(|\*\*|==|dim=|=\s*torch|\bdef\b|\breturn\b|lambda")


@pytest.mark.parametrize("pid", LESSONS)
def test_hints_are_tiered_and_not_code(pid):
    tiers = PROBLEMS[pid].hints
    assert len(tiers) >= 2, f"{pid}: a hint needs the idea and a closer pointer"
    for tier in tiers:
        assert not _CODE.search(tier), f"{pid}: a hint reads like code: {tier!r}"


def test_an_unsolved_exercise_shows_no_hint(fresh_hints):
    for answer in (None, ...):
        result = check("15.3.3.loss", answer)
        assert result.status == "unsolved" and not result.hint
        assert "Hint" not in str(result) and "Hint" not in result._repr_html_()
    assert feedback._HINT_LEVEL == {}


def test_each_wrong_attempt_reveals_one_tier_more(fresh_hints):
    pid = "15.3.3.loss"
    tiers = PROBLEMS[pid].hints
    wrong = PROBLEMS[pid].mistakes[0].answer
    first = check(pid, wrong)
    assert tiers[0] in str(first) and tiers[1] not in str(first)
    assert "Hint 1/2" in first._repr_html_()
    second = check(pid, wrong)
    assert tiers[0] in str(second) and tiers[1] in str(second)
    third = check(pid, wrong)
    assert str(third).count("Hint ") == len(tiers)                # no tier beyond the last
    assert check(pid, PROBLEMS[pid].expected()).hint == ""        # a pass shows none
    assert grade_answer(pid, wrong).hint == ""                    # grade_answer never reveals one


def test_hint_on_request(fresh_hints):
    pid = "14.1.e_step"
    tiers = PROBLEMS[pid].hints
    first = hint(pid)
    assert tiers[0] in str(first) and tiers[1] not in str(first) and not first.last
    assert f'hint("{pid}")' in str(first) and "responsibility" in first._repr_html_()
    second = hint(pid)
    assert tiers[1] in str(second) and second.last and "last hint" in str(second)
    assert check(pid, PROBLEMS[pid].mistakes[0].answer).hint.count("Hint ") == 2   # already revealed
    assert grading.hint is hint


def test_hint_rejects_bad_input():
    with pytest.raises(ValueError, match="known problems"):
        hint("99.9.nope")
    with pytest.raises(TypeError, match="string"):
        hint(14.1)


def test_problem_rejects_malformed_hints_and_mistakes():
    base = dict(id="0.0.h", section="0.0", title="t", statement="s", kind="value", reference=lambda: 1.0)
    with pytest.raises(TypeError, match="hint"):
        Problem(**base, hint=("idea", ""), wrong_answers=(2.0, 3.0, 4.0))
    with pytest.raises(TypeError, match="Mistake"):
        Problem(**base, hint="h", mistakes=(2.0, 3.0, 4.0))
    with pytest.raises(TypeError, match="message"):
        Mistake(2.0, " ")
    p = Problem(**base, hint=("idea", "pointer"), mistakes=(Mistake(2.0, "doubled"),), wrong_answers=(3.0, 4.0))
    assert p.wrong_answers == (2.0, 3.0, 4.0) and p.hints == ("idea", "pointer")


# ---------------------------------------------------------------- loss problems: the gradient counts
def _loss_detached_output(s, eps_model, x0, t, noise):
    return diffusion.ddpm_loss(s, lambda x, t_: eps_model(x, t_).detach(), x0, t, noise)


def _loss_numpy(s, eps_model, x0, t, noise):
    return diffusion.ddpm_loss(s, eps_model, x0, t, noise).detach().numpy()


def _loss_wrong_gradient(s, eps_model, x0, t, noise):
    """The right value, but a gradient that is half the reference's."""
    loss = diffusion.ddpm_loss(s, eps_model, x0, t, noise)
    return 0.5 * loss + 0.5 * loss.detach()


def test_loss_without_a_gradient_fails_and_an_honest_variant_passes():
    pid = "15.3.3.loss"
    honest = ALTERNATIVES[pid]                                   # x_t under no_grad: no weights in it
    assert check(pid, honest), check(pid, honest).message
    for answer in (_loss_detached_output, _loss_numpy):
        result = grade_answer(pid, answer)
        assert not result and "right value, but the loss has no gradient" in result.message, result.message
    result = grade_answer(pid, _loss_wrong_gradient)
    assert not result and "right value, but its gradient" in result.message, result.message


def test_negative_elbo_needs_its_gradient():
    pid = "14.5.negative_elbo"
    detached = grade_answer(pid, lambda model, y, eps: PROBLEMS[pid].reference(model, y, eps).detach())
    assert not detached and "no gradient" in detached.message
    halved = grade_answer(pid, lambda m, y, e: 0.5 * (PROBLEMS[pid].reference(m, y, e)
                                                      + PROBLEMS[pid].reference(m, y, e).detach()))
    assert not halved and "its gradient" in halved.message


# ---------------------------------------------------------------- 15.3.2: the far tail
def test_error_probability_far_tail_rejects_the_naive_tail():
    problem = PROBLEMS["15.3.2.error_probability"]
    t, sigma = problem.cases_for(None)[-1]
    assert float((t / sigma).min()) >= 40
    p = problem.reference(t, sigma)
    assert bool((p > 0).all()) and float(p.max()) < 1e-80            # representable, far below 1e-16
    for naive in (lambda t, s: 1 - 0.5 * (1 + torch.erf(t / (2 * s) / math.sqrt(2))),
                  lambda t, s: 1 - torch.distributions.Normal(0.0, 1.0).cdf(t / (2 * s))):
        result = grade_answer("15.3.2.error_probability", naive)
        assert not result and "far tail" in result.message, result.message
    assert check("15.3.2.error_probability", lambda t, s: stats.norm.sf(np.asarray(t) / (2 * np.asarray(s))))


# ---------------------------------------------------------------- value problems
@pytest.mark.parametrize("value, why", [
    (-0.00123, "cannot be negative"), (-1e300, "cannot be negative"), (True, "True/False"),
    (np.bool_(True), "True/False"), (float("nan"), "NaN"), (float("inf"), "NaN or an infinite"),
    (64 * 3.3, "Divide by"), (math.log2(17), "uniform"),
])
def test_trained_bound_rejects_impossible_and_suspicious_values(value, why):
    result = grade_answer("14.5.trained_bound", value)
    assert not result and why in result.message, result.message


def test_trained_bound_passes_in_the_notebook_and_is_self_reported_for_the_instructor():
    pid = "14.5.trained_bound"
    assert PROBLEMS[pid].self_reported and "self-reported" in STATUSES
    assert check(pid, 3.3) and check(pid, torch.tensor(3.3))
    for value in (3.3, 3.9):                                      # under the mark or not: never credit
        grade = judge_outcomes(PROBLEMS[pid], [], [("ok", value)])
        assert grade["status"] == "self-reported" and "no credit" in grade["message"]
    assert judge_outcomes(PROBLEMS[pid], [], [("ok", True)])["status"] == "self-reported"
    assert instructor_status(PROBLEMS[pid], "failed", "m")[0] == "self-reported"
    assert instructor_status(PROBLEMS[pid], "unsolved", "m")[0] == "unsolved"
    assert instructor_status(PROBLEMS["14.5.elbo_term"], "passed", "m") == ("passed", "m")


def test_a_value_with_one_right_answer_is_compared_on_both_sides():
    p = Problem(id="0.0.prob", section="0.0", title="a probability", statement="s", kind="value",
                reference=lambda: 0.25, hint="h", value_range=(0.0, 1.0), rtol=1e-6,
                mistakes=(Mistake(0.75, "the complement: 1 − p"),), wrong_answers=(0.5, 0.0))
    grading.register(p)
    try:
        assert check("0.0.prob", 0.25) and check("0.0.prob", np.float32(0.25))
        assert not check("0.0.prob", 0.2) and not check("0.0.prob", 0.3)
        assert grade_answer("0.0.prob", 0.75).message.startswith("the complement")
        assert "impossible value" in grade_answer("0.0.prob", 1.5).message
        assert "impossible value" in grade_answer("0.0.prob", -0.1).message
        assert "True/False" in grade_answer("0.0.prob", torch.tensor(True)).message
    finally:
        del PROBLEMS["0.0.prob"]
