"""The problems of the reverse-diffusion and guidance lessons: the reference passes, on the notebook's
fixed inputs and on fresh grader inputs, and every registered wrong answer fails."""
import numpy as np
import pytest

from companion_lib.grading import PROBLEMS, grade_answer


IDS = ["15.3.3.posterior", "15.3.3.predict_x0", "15.3.3.loss", "15.3.3.step", "15.3.3.elbo_weight",
       "15.3.3.sample_loop", "15.3.4.eps_star", "15.3.4.dsm_loss",
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


@pytest.mark.parametrize("rng", [None, np.random.default_rng(3)])
def test_the_elbo_weight_check_is_a_difference_of_exact_gaussian_kls(rng):
    """15.3.3.elbo_weight compares w_t (‖ε − ε_θ‖² − ‖ε − ε_θ'‖²): on its cases that is L_{t−1}(ε_θ) − L_{t−1}(ε_θ')."""
    import torch

    from companion_lib import diffusion, gaussian
    p = PROBLEMS["15.3.3.elbo_weight"]
    for betas, t, sigma, x0, eps, e1, e2 in p.cases_for(rng):
        s = diffusion.NoiseSchedule(betas)
        assert int(t.min()) == 2 and int(t.max()) == s.T
        xt = diffusion.q_sample(s, x0, t, eps)
        m_q, v_q = diffusion.posterior_mean_variance(s, x0, xt, t)
        v_p = diffusion.reverse_variance(s, t, xt, sigma).expand_as(xt)
        kl = [gaussian.kl(m_q, v_q, diffusion.reverse_mean(s, e, xt, t), v_p).sum(1) for e in (e1, e2)]
        claimed = p.run(p.reference, (betas, t, sigma, x0, eps, e1, e2))
        assert torch.allclose(claimed, kl[0] - kl[1], rtol=1e-8, atol=1e-10)


def test_the_loop_check_reproduces_the_library_sampler():
    """A correct loop with noises drawn in ddpm.sample's order (x_T first, then one z per step) is ddpm.sample."""
    import torch

    from companion_lib import ddpm, diffusion
    p = PROBLEMS["15.3.3.sample_loop"]
    s = diffusion.NoiseSchedule.cosine(30, max_beta=0.2)
    w = torch.randn(3, 3, generator=torch.Generator().manual_seed(0))

    def eps_fn(x, t):
        return torch.tanh(x @ w + t[:, None] / 30.0)

    g = torch.Generator().manual_seed(5)
    x_T = torch.randn(7, 3, generator=g)
    noises = torch.stack([torch.randn(7, 3, generator=g) for _ in range(s.T)])
    for sigma in ("posterior", "beta"):
        want = ddpm.sample(s, eps_fn, (7, 3), generator=torch.Generator().manual_seed(5), sigma=sigma)
        got = p.reference(s, eps_fn, ddpm.ddpm_step, x_T, noises, sigma)
        assert torch.equal(got, want)
