"""Problem 15.1.made_mask: both sides (the generic tests in test_grading.py run every registered
reference and wrong answer; here: other correct forms pass, realistic slips fail with their message, and
the grader's fresh inputs still separate right from wrong)."""
import numpy as np
import torch

from companion_lib import autoregressive
from companion_lib.grading import PROBLEMS, check


def test_fresh_inputs_differ_and_separate_right_from_wrong():
    p = PROBLEMS["15.1.made_mask"]
    assert p.fresh_inputs and len(p.wrong_answers) >= 3
    fixed = p.cases_for(None)
    fresh = p.cases_for(np.random.default_rng(7))
    assert any(not torch.equal(a[0], b[0]) for a, b in zip(fixed, fresh))
    for wrong in p.wrong_answers:
        assert any(not torch.equal(torch.as_tensor(wrong(*args)).float(), p.reference(*args)) if
                   tuple(torch.as_tensor(wrong(*args)).shape) == tuple(p.reference(*args).shape) else True
                   for args in fresh), wrong.__name__


def test_other_correct_forms_pass():
    assert check("15.1.made_mask", lambda i, o, last: (o[:, None] - i[None, :] > (0 if last else -1)).float())
    assert check("15.1.made_mask", lambda i, o, last: torch.as_tensor(          # NumPy, bool
        np.greater_equal.outer(o.numpy(), i.numpy() + int(last))))


def test_catalogued_slips_are_named():
    r = check("15.1.made_mask", lambda i, o, last: (o[:, None] >= i[None, :]).float())
    assert not r and "itself" in r.message
    r = check("15.1.made_mask", lambda i, o, last: autoregressive.made_mask(i, o, last).T.contiguous() * 1.0)
    assert not r
    r = check("15.1.made_mask", lambda i, o, last: (o[:, None] < i[None, :]).float() if last else
              (o[:, None] <= i[None, :]).float())
    assert not r and "wrong way" in r.message
