"""§15.2 problems: the references pass, realistic wrong answers fail (other correct forms pass:
test_problems_alternatives.py), the grader's fresh inputs work, and the reference of Problem 15.2.1 is
a normalised density."""
import math

import pytest
import torch

from companion_lib import flows, settings
from companion_lib.grading import PROBLEMS, grade_answer
from companion_lib.grading.problems import p15_2

IDS = ["15.2.coupling_forward", "15.2.coupling_inverse", "15.2.1"]


@pytest.mark.parametrize("pid", IDS)
def test_reference_passes_and_wrong_answers_fail(pid):
    problem = PROBLEMS[pid]
    assert grade_answer(pid, problem.expected()).status == "passed"
    assert len(problem.wrong_answers) >= 3
    for i, wrong in enumerate(problem.wrong_answers):
        result = grade_answer(pid, wrong)
        assert result.status == "failed", f"wrong answer {i} ({wrong.__name__}) passed: {result}"


@pytest.mark.parametrize("pid", IDS)
def test_fresh_grader_inputs_differ_and_reference_is_consistent(pid):
    problem = PROBLEMS[pid]
    assert problem.fresh_inputs
    with settings.cpu_float64():
        fixed = problem.cases_for(None)
        fresh = problem.cases_for(problem.grading_rng(11))
        assert not torch.equal(fixed[0][0], fresh[0][0])
        for args in fresh:
            out = problem.run(problem.reference, args)
            leaves = out if isinstance(out, tuple) else (out,)
            assert all(torch.isfinite(t).all() for t in leaves)


def test_unsolved_is_reported():
    def todo(*args):
        raise NotImplementedError

    for pid in IDS:
        assert grade_answer(pid, todo).status == "unsolved"


def test_wrong_answers_include_the_printed_inverse():
    """The text's (15.6) (⊙ h instead of ⊘ h) is among the rejected answers, and it really fails to invert."""
    problem = PROBLEMS["15.2.coupling_inverse"]
    printed = p15_2._wrong_inverse_as_printed
    assert printed in problem.wrong_answers
    with settings.cpu_float64():
        z, mask, weights = problem.cases_for(None)[1]
        z_next, _ = p15_2._with_conditioner(flows.coupling_forward, z, mask, weights)
        back = p15_2._with_conditioner(printed, z_next, mask, weights)
        fixed = p15_2._with_conditioner(flows.coupling_inverse, z_next, mask, weights)
    assert (back - z).abs().max() > 0.1 and (fixed - z).abs().max() < 1e-12


def test_reference_density_integrates_to_one():
    """Importance sampling from a broad Gaussian q on x (unrelated to f): E_q[p/q] = ∫p = 1, while the
    density without the Jacobian integrates to e^(a0+b0)."""
    with settings.cpu_float64():
        g = torch.Generator().manual_seed(0)
        a = torch.tensor([0.4, 0.3, -0.2], dtype=torch.float64)
        b = torch.tensor([0.3, 0.1, 0.5], dtype=torch.float64)
        sigma = 3.0
        x = sigma * torch.randn(400_000, 4, generator=g, dtype=torch.float64)
        q = (flows.standard_normal_log_prob(x / sigma) - 4 * math.log(sigma)).exp()
        mass = (p15_2.density_15_2_1(x, a, b) / q).mean().item()
        mass_wrong = (p15_2._wrong_no_jacobian(x, a, b) / q).mean().item()
    assert abs(mass - 1) < 0.04
    assert abs(mass_wrong - math.exp(0.7)) < 0.08 and abs(mass_wrong - 1) > 0.5
