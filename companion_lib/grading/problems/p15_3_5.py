"""§15.3 conditional generation: the guided noise prediction of classifier-free guidance (15.12)."""
import torch

from companion_lib import guidance
from companion_lib.grading.registry import Mistake, Problem, case_seed

_F64 = torch.float64


def _cfg_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1537))
    cases = []
    for shape, w in [((8, 64), 3.0), ((5, 2), 7.5), ((4, 1, 3, 3), 0.0), ((6, 2), 1.0), ((3, 4), -0.5)]:
        cases.append((torch.randn(shape, generator=g, dtype=_F64), torch.randn(shape, generator=g, dtype=_F64), w))
    return cases


def _wrong_plus_one(eps_cond, eps_uncond, w):       # ε_cond + w (ε_cond − ε_uncond): the (1 + w) convention
    return eps_cond + w * (eps_cond - eps_uncond)


def _wrong_sign(eps_cond, eps_uncond, w):           # pushes away from the condition
    return eps_uncond + w * (eps_uncond - eps_cond)


def _wrong_weighted_sum(eps_cond, eps_uncond, w):   # w ε_cond + ε_uncond: not an extrapolation
    return w * eps_cond + eps_uncond


def _wrong_convex(eps_cond, eps_uncond, w):         # (1 − w) ε_cond + w ε_uncond: roles swapped
    return (1 - w) * eps_cond + w * eps_uncond


_CFG = Problem(
    id="15.3.5.cfg",
    section="15.3",
    title="The guided noise prediction of classifier-free guidance (15.12)",
    statement=("Write cfg_combine(eps_cond, eps_uncond, w): the conditional and unconditional noise "
               "predictions (batch, ...) and the guidance scale w (a number). Return ε̂ of (15.12), "
               "same shape. w = 0 must give the unconditional prediction, w = 1 the conditional one."),
    kind="function",
    reference=guidance.cfg_combine,
    cases=_cfg_cases,
    hint=("Guidance extrapolates from the unconditional prediction in the direction that the condition "
          "adds; check your formula at w = 0 and w = 1 against the statement.",
          "Start from ε_uncond and move w times the difference between the two predictions (which one "
          "minus which decides the direction)."),
    mistakes=(
        Mistake(_wrong_plus_one, "the (1 + w) convention, ε_cond + w(ε_cond − ε_uncond): (15.12) starts "
                "from ε_uncond, so w = 1 gives ε_cond."),
        Mistake(_wrong_sign, "the difference points away from the condition: it is ε_cond − ε_uncond."),
        Mistake(_wrong_weighted_sum, "w·ε_cond + ε_uncond is a weighted sum, not an extrapolation: w = 0 "
                "must give ε_uncond alone, and w = 1 ε_cond."),
        Mistake(_wrong_convex, "the roles are swapped: (1 − w) belongs to ε_uncond and w to ε_cond."),
    ),
    rtol=1e-7, atol=1e-10,
)

#: This section's problems (``companion_lib.grading`` registers them).
SECTION_PROBLEMS = (_CFG,)
