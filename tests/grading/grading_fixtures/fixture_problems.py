"""Two test-only problems of the kinds later chapters add (section "0.9", never in a lesson):

* ``0.9.threshold``: a training result handed in as a number, judged against a threshold
  (``compare=at_most(0.05)``: passes when <= 3.05);
* ``0.9.scale``: a class the student writes (an ``nn.Module`` with parameters ``log_s`` and ``t``,
  forward ``y = x·exp(log_s) + t`` and ``inverse``), run by a harness on fixed weights the grader
  draws (a state dict) and inputs, returning plain tensors.

Imported both by the grading process (the test) and by the synthetic submissions' kernels.
"""
import torch
from torch import nn

from companion_lib.grading import PROBLEMS, Problem, at_most, case_seed, register


class Scale(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.log_s = nn.Parameter(torch.zeros(dim))
        self.t = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return x * torch.exp(self.log_s) + self.t

    def inverse(self, y):
        return (y - self.t) * torch.exp(-self.log_s)


class _NoExp(Scale):                 # uses log_s as the scale itself
    def forward(self, x):
        return x * self.log_s + self.t

    def inverse(self, y):
        return (y - self.t) / self.log_s


class _ShiftFirst(Scale):            # (x + t)·s: shift and scale in the wrong order
    def forward(self, x):
        return (x + self.t) * torch.exp(self.log_s)

    def inverse(self, y):
        return y * torch.exp(-self.log_s) - self.t


class _BadInverse(Scale):            # right forward, inverse forgets the shift
    def inverse(self, y):
        return y * torch.exp(-self.log_s)


def _harness(cls, state, x):
    layer = cls(x.shape[1])
    layer.load_state_dict(state)
    with torch.no_grad():
        y = layer(x)
        return y, layer.inverse(y + 0.5)


def _scale_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 9))
    cases = []
    for n, d in ((5, 3), (4, 2)):
        state = {"log_s": torch.randn(d, generator=g), "t": torch.randn(d, generator=g)}
        cases.append((state, torch.randn(n, d, generator=g)))
    return cases


if "0.9.scale" not in PROBLEMS:
    register(Problem(
        id="0.9.scale", section="0.9", title="An invertible scale-and-shift layer (test fixture)",
        statement="Write a Module Scale(dim) with parameters log_s, t; forward x·exp(log_s) + t; inverse.",
        kind="function", reference=Scale, harness=_harness, cases=_scale_cases,
        hint="exp(log_s) is the scale.", wrong_answers=(_NoExp, _ShiftFirst, _BadInverse),
        rtol=1e-5, atol=1e-6,
    ))
    register(Problem(
        id="0.9.threshold", section="0.9", title="A held-out loss of at most 3.05 (test fixture)",
        statement="Hand in the held-out loss of your trained model (a number).",
        kind="value", reference=lambda: 3.0, compare=at_most(0.05),
        hint="Train longer.", wrong_answers=(3.2, float("nan"), (3.0, 3.0)),
    ))
