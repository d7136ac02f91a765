"""Problems 15.3.1 (ᾱ_t, q_sample) and 15.3.2 (error probability, bound): both sides of each.

The generic tests in test_grading.py run every registered reference and wrong answer; here: other
correct forms pass (float32 arithmetic, NumPy/SciPy, math.erf), realistic slips fail with a useful
message, and the grader's fresh inputs differ from the notebook's and still separate right from wrong.
"""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from companion_lib import settings
from companion_lib.grading import PROBLEMS, check

IDS = ["15.3.1.alpha_bar", "15.3.1.q_sample", "15.3.1.compose", "15.3.2.error_probability", "15.3.2.error_bound"]


@pytest.mark.parametrize("pid", IDS)
def test_reference_passes_and_wrong_answers_fail_on_fresh_inputs(pid):
    p = PROBLEMS[pid]
    assert p.fresh_inputs and len(p.wrong_answers) >= 3
    rng = np.random.default_rng(123)
    with settings.cpu_float64():
        cases = p.cases_for(rng)
        for args in cases:
            expected = p.run(p.reference, args)
            assert p.compare is None or p.compare(expected, p.run(p.reference, args)) is None
        for wrong in p.wrong_answers:
            failed = False
            for args in cases:
                try:
                    got = p.run(wrong, args)
                except Exception:
                    failed = True
                    break
                exp = p.run(p.reference, args)
                if p.compare is not None:
                    failed = p.compare(exp, got) is not None
                else:
                    failed = not np.allclose(np.asarray(got, dtype=float), np.asarray(exp, dtype=float),
                                             rtol=p.rtol, atol=p.atol)
                if failed:
                    break
            assert failed, f"{wrong.__name__} passes on the grader's inputs"


def test_alpha_bar_other_correct_forms_pass():
    assert check("15.3.1.alpha_bar", lambda b: torch.exp(torch.cumsum(torch.log1p(-b), 0)))
    assert check("15.3.1.alpha_bar", lambda b: torch.as_tensor(np.cumprod(1 - np.asarray(b))))
    r = check("15.3.1.alpha_bar", lambda b: torch.cumprod(1 - b, 0)[:-1])       # one entry short
    assert not r and "shape" in r.message


def q_sample_float32_arith(alpha_bars, x0, t, noise):
    ab = alpha_bars.to(x0)[t.to(x0.device) - 1].reshape(-1, *([1] * (x0.ndim - 1)))
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise.to(x0)


def test_q_sample_float32_arithmetic_passes_and_dtype_slip_is_named():
    assert check("15.3.1.q_sample", q_sample_float32_arith)
    r = check("15.3.1.q_sample", lambda ab, x0, t, eps: q_sample_float32_arith(ab, x0.double(), t, eps))
    assert not r and "dtype" in r.message
    r = check("15.3.1.q_sample", lambda ab, x0, t, eps: q_sample_float32_arith(ab, x0, t, eps).numpy())
    assert not r and "torch.Tensor" in r.message
    r = check("15.3.1.q_sample", lambda ab, x0, t, eps: q_sample_float32_arith(ab, x0, t, eps)[:, None])
    assert not r and "shape" in r.message


def test_q_sample_forgetting_to_broadcast_fails_without_raising():
    def no_reshape(alpha_bars, x0, t, noise):
        ab = alpha_bars.to(x0)[t - 1]
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise.to(x0)
    r = check("15.3.1.q_sample", no_reshape)
    assert not r and "raised" in r.message


def test_error_probability_other_correct_forms_pass():
    """Forms that keep the far tail pass (SciPy's sf, ndtr of −z in log space); 1 − Φ by subtraction,
    right in the bulk, is 0 in the far tail and fails (test_problems_feedback checks its message)."""
    assert check("15.3.2.error_probability", lambda t, s: stats.norm.sf(np.asarray(t) / (2 * np.asarray(s))))
    assert check("15.3.2.error_probability", lambda t, s: torch.exp(torch.special.log_ndtr(-t / (2 * s))))
    assert not check("15.3.2.error_probability", lambda t, s: 1 - 0.5 * (1 + torch.erf(t / (2 * s) / math.sqrt(2))))
    assert not check("15.3.2.error_probability", lambda t, s: 1 - torch.special.ndtr(t / (2 * s)))
    r = check("15.3.2.error_probability", lambda t, s: 0.5 * torch.special.erfc(t / s / math.sqrt(2)))
    assert not r and "test case 1" in r.message                       # z = t/σ: the boundary misplaced


def test_error_bound_other_correct_forms_pass():
    assert check("15.3.2.error_bound", lambda t, s: np.exp(-(np.asarray(t) / (2 * np.asarray(s))) ** 2 / 2) / 2)
    r = check("15.3.2.error_bound", lambda t, s: 0.5 * torch.exp(-t ** 2 / 8 * s ** 2))   # σ² multiplied
    assert not r


def test_compose_iterated_gives_15_8_and_float32_passes():
    """The reference composed T times from (1, 0) is (√ᾱ_t, 1 − ᾱ_t); a float32 answer passes; a
    standard-deviation slip and a coefficient slip fail with their messages."""
    ref = PROBLEMS["15.3.1.compose"].expected()
    with settings.cpu_float64():
        from companion_lib import forward_diffusion
        sch = forward_diffusion.NoiseSchedule.cosine(200)
        c, w = torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
        for t in range(200):
            c, w = ref(sch.alphas[t].sqrt(), sch.betas[t], c, w)
        assert abs(c.item() ** 2 - sch.alpha_bars[-1].item()) < 1e-12
        assert abs(w.item() - sch.one_minus_alpha_bars[-1].item()) < 1e-12
    assert check("15.3.1.compose", lambda a, v, b, u: ((a * b).float(), (a.float() ** 2 * u.float() + v.float())))
    r = check("15.3.1.compose", lambda a, v, b, u: (a * b, (a * u.sqrt() + v.sqrt()) ** 2))
    assert not r and "standard deviations" in r.message
    r = check("15.3.1.compose", lambda a, v, b, u: (a + b, a * a * u + v))
    assert not r and "multiplication" in r.message
