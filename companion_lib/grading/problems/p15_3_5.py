"""§15.3 conditional generation: classifier-free guidance's training step (the label dropped to the
null label ∅ with probability p_uncond) and its guided noise prediction (15.12)."""
import math

import torch

from companion_lib import diffusion, guidance
from companion_lib.grading.compare import Mismatch, compare_values
from companion_lib.grading.problems._autograd import compare_loss, loss_and_gradient
from companion_lib.grading.problems.p15_3_3 import _schedules, _steps
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

# ---------------------------------------------------------------- the training step: label dropout
def _cfg_loss_reference(schedule, model, x0, labels, t, noise, u, p_uncond, null_label):
    """(15.10) for a conditional ε_θ(x_t, t, c), each row's label replaced by ∅ where its draw u < p_uncond."""
    c = torch.where(u < p_uncond, torch.full_like(labels, null_label), labels)
    return diffusion.ddpm_loss(schedule, model, x0, t, noise, c)


def _toy_cond_model(weight, bias, table, T):
    """A fixed ε_θ(x_t, t, c) from plain tensors: tanh(x W + b · t/T + E[c]); E has a row per label and ∅."""
    def model(x, t, c):
        return torch.tanh(x @ weight.to(x.dtype) + bias.to(x.dtype) * (t.to(x.dtype)[:, None] / T)
                          + table.to(x.dtype)[c])
    return model


def _cfg_loss_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1540))
    cases = []
    for betas, (n, d), K, p in zip(_schedules(g), [(16, 64), (24, 2), (10, 5)], [10, 3, 4], [0.15, 0.5, 0.2]):
        u = torch.rand(n, generator=g, dtype=torch.float64)
        u[0], u[1] = p / 2, (1 + p) / 2                       # at least one row dropped and one kept
        cases.append((betas, torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d),
                      torch.randn(d, generator=g, dtype=torch.float64),
                      torch.randn(K + 1, d, generator=g, dtype=torch.float64),
                      2 * torch.rand(n, d, generator=g, dtype=torch.float64) - 1,
                      torch.randint(0, K, (n,), generator=g), _steps(g, betas.shape[0], n),
                      torch.randn(n, d, generator=g, dtype=torch.float64), u, p, K))
    return cases


def _cfg_loss_harness(answer, betas, weight, bias, table, x0, labels, t, noise, u, p_uncond, null_label):
    """The loss on a toy ε_θ(x_t, t, c) whose parameters (the label table included: its gradient says
    which labels the loss used) require grad; and the labels as the caller holds them afterwards."""
    schedule = diffusion.NoiseSchedule(betas)
    params = [p.detach().clone().requires_grad_(True) for p in (weight, bias, table)]
    mine = labels.clone()
    loss = answer(schedule, _toy_cond_model(*params, schedule.T), x0, mine, t, noise, u, p_uncond, null_label)
    out = loss_and_gradient(loss, params, scalar=True)
    out["labels_afterwards"] = mine
    return out


_COMPARE_CFG_LOSS = compare_loss(1e-6, 1e-9, grad_rtol=1e-6, grad_atol=1e-9)


def _compare_cfg_loss(expected, got):
    if isinstance(got, dict) and "labels_afterwards" in got:
        try:
            compare_values(expected["labels_afterwards"], got["labels_afterwards"], 0, 0)
        except Mismatch:
            return ("the labels you were given were changed: the dropout must build a new label tensor, "
                    "or the data set's labels are overwritten by ∅ for every later epoch")
    return _COMPARE_CFG_LOSS(expected, got)


def _wrong_cfg_keep_prob(s, model, x0, labels, t, noise, u, p, null):    # drops the rows with u ≥ p
    c = torch.where(u >= p, torch.full_like(labels, null), labels)
    return diffusion.ddpm_loss(s, model, x0, t, noise, c)


def _wrong_cfg_zero_label(s, model, x0, labels, t, noise, u, p, null):   # "no label" written as class 0
    return _cfg_loss_reference(s, model, x0, labels, t, noise, u, p, 0)


def _wrong_cfg_in_place(s, model, x0, labels, t, noise, u, p, null):     # overwrites the caller's labels
    labels[u < p] = null
    return diffusion.ddpm_loss(s, model, x0, t, noise, labels)


def _wrong_cfg_never_drops(s, model, x0, labels, t, noise, u, p, null):  # u ignored: no ∅ rows at all
    return diffusion.ddpm_loss(s, model, x0, t, noise, labels)


def _wrong_cfg_item(s, model, x0, labels, t, noise, u, p, null):         # right value, a Python number
    return _cfg_loss_reference(s, model, x0, labels, t, noise, u, p, null).item()


_CFG_LOSS = Problem(
    id="15.3.5.cfg_loss",
    section="15.3",
    title="Classifier-free guidance's training step: label dropout in the loss (15.10)",
    statement=("Write cfg_training_loss(schedule, model, x0, labels, t, noise, u, p_uncond, null_label): "
               "x0, noise (batch, d); labels (batch,) long class labels; t (batch,) steps in 1..T; u (batch,) "
               "one uniform draw in [0, 1) per row; model(x_t, t, c) -> (batch, d) a conditional ε_θ that "
               "also accepts the null label ∅ = null_label. Replace each row's label by ∅ with probability "
               "p_uncond, deciding with that row's u (a row is dropped when u < p_uncond), and return the "
               "loss (15.10) of the model given those labels: the scalar mean over the batch of "
               "‖ε − ε_θ(x_t, t, c)‖², x_t by (15.8). Leave the labels you were given unchanged."),
    kind="function",
    reference=_cfg_loss_reference,
    cases=_cfg_loss_cases,
    harness=_cfg_loss_harness,
    hint=("One network learns both predictions: the conditional one from rows that keep their label, the "
          "unconditional one from rows whose label was hidden. Which rows lose theirs is decided by u, "
          "and the caller's labels are the data set's: build new ones.",
          "A row is dropped exactly when its draw u falls below p_uncond; build the new labels by choosing, row "
          "by row, between the null label and the row's own label, and use 15.3.3's loss (15.10) with them."),
    mistakes=(
        Mistake(_wrong_cfg_keep_prob, "the wrong rows lose their label: a row is dropped when u < p_uncond, "
                "so about p_uncond of them (you dropped about 1 − p_uncond)."),
        Mistake(_wrong_cfg_zero_label, "the dropped rows got label 0, a real class: the unconditional "
                "prediction needs its own null label ∅ = null_label."),
        Mistake(_wrong_cfg_in_place, "the labels you were given were changed: the dropout must build a new "
                "label tensor, or the data set's labels are overwritten by ∅ for every later epoch."),
        Mistake(_wrong_cfg_never_drops, "no row loses its label: the model never sees ∅, so its "
                "unconditional prediction ε_uncond of (15.12) is never trained."),
        Mistake(_wrong_cfg_item, "right value, but the loss has no gradient: did you call .item()? "
                "Training needs the tensor."),
    ),
    compare=_compare_cfg_loss,
)

#: This section's problems (``companion_lib.grading`` registers them).
SECTION_PROBLEMS = (_CFG, _CFG_LOSS)
