"""The problems of the reverse-diffusion and guidance lessons: the reference passes, on the notebook's
fixed inputs and on fresh grader inputs, and every registered wrong answer fails."""
import numpy as np
import pytest

from companion_lib.grading import PROBLEMS, grade_answer


IDS = ["15.3.3.posterior", "15.3.3.predict_x0", "15.3.3.loss", "15.3.3.step", "15.3.4.eps_star", "15.3.4.dsm_loss",
       "15.3.5.cfg", "15.3.5.cfg_loss"]


def test_these_problems_are_registered():
    """A deleted or renamed problem fails here (the tests below would otherwise not run for it)."""
    assert set(IDS) <= set(PROBLEMS), sorted(set(IDS) - set(PROBLEMS))


@pytest.mark.parametrize("pid", IDS)
def test_reference_passes_and_wrong_answers_fail(pid):
    p = PROBLEMS[pid]
    assert grade_answer(pid, p.expected()).status == "passed"
    assert len(p.wrong_answers) >= 3
    for wrong in p.wrong_answers:
        r = grade_answer(pid, wrong)
        assert r.status == "failed", (wrong.__name__, r.message)
        assert "raised" not in r.message, (wrong.__name__, r.message)     # fails on values, not by crashing


@pytest.mark.parametrize("pid", IDS)
def test_grader_inputs_are_fresh_and_valid(pid):
    p = PROBLEMS[pid]
    assert p.fresh_inputs
    a, b = p.cases_for(np.random.default_rng(1)), p.cases_for(np.random.default_rng(2))
    assert len(a) == len(b) == len(p.cases_for(None))
    for args in a:                                                     # the reference runs on them
        p.run(p.reference, args)


def test_unsolved_is_reported_not_failed():
    def todo(*args):
        raise NotImplementedError
    for pid in IDS:
        if pid in PROBLEMS:
            assert grade_answer(pid, todo).status == "unsolved"
