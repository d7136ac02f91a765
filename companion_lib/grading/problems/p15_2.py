"""§15.2 problems: the affine coupling layer, forward (15.3)–(15.4) and inverse (15.5)–(15.6), and
Problem 15.2.1 (the density of a triangular map of a standard Gaussian)."""
import math

import torch

from companion_lib import flows
from companion_lib.grading.registry import Mistake, Problem, case_seed
from companion_lib.nets import mlp

_F64 = torch.float64


# ---------------------------------------------------------------- the coupling layer
def _conditioner_net(mask):
    n_a = int(mask.sum())
    return mlp(n_a, 8, 2 * (mask.numel() - n_a), 1).double()


def _coupling_cases(rng=None):
    """(z, mask, weights): weights is the state dict of a small fixed conditioner network."""
    g = torch.Generator().manual_seed(case_seed(rng, 152))
    cases = []
    for batch, mask in ((7, [True, False]), (4, [True, False, True, False, False]),
                        (5, [False, False, False, True, True, True])):
        mask = torch.tensor(mask)
        shapes = {k: v.shape for k, v in _conditioner_net(mask).state_dict().items()}
        weights = {k: 0.7 * torch.randn(s, generator=g, dtype=_F64) for k, s in shapes.items()}
        z = 1.5 * torch.randn(batch, mask.numel(), generator=g, dtype=_F64)
        cases.append((z, mask, weights))
    return cases


def _with_conditioner(answer, z, mask, weights):
    """Harness: build the conditioner z_A ↦ (r, s) = (log h_θ(z_A), s_θ(z_A)) from the fixed weights
    and call ``answer(z, mask, conditioner)``."""
    net = _conditioner_net(mask)
    net.load_state_dict(weights)

    def conditioner(z_a):
        r, s = net(z_a).chunk(2, dim=1)
        return torch.tanh(r), s

    return answer(z, mask, conditioner)


def _split(z, mask, conditioner):
    z_a, z_b = z[:, mask], z[:, ~mask]
    r, s = conditioner(z_a)
    return z_a, z_b, r, s


def _assemble(z_a, z_b, mask):
    out = torch.empty(z_a.shape[0], mask.numel(), dtype=z_a.dtype)
    out[:, mask], out[:, ~mask] = z_a, z_b
    return out


def _wrong_logdet_h(z, mask, conditioner):        # log|det| as Σ h instead of Σ log h
    z_a, z_b, r, s = _split(z, mask, conditioner)
    return _assemble(z_a, z_b * torch.exp(r) + s, mask), torch.exp(r).sum(1)


def _wrong_shift_first(z, mask, conditioner):     # (z_B + s) ⊙ h: shift applied before the scale
    z_a, z_b, r, s = _split(z, mask, conditioner)
    return _assemble(z_a, (z_b + s) * torch.exp(r), mask), r.sum(1)


def _wrong_logdet_sign(z, mask, conditioner):     # the inverse's log-determinant, −Σ r
    z_a, z_b, r, s = _split(z, mask, conditioner)
    return _assemble(z_a, z_b * torch.exp(r) + s, mask), -r.sum(1)


def _wrong_logdet_mean(z, mask, conditioner):     # mean over B instead of the sum
    z_a, z_b, r, s = _split(z, mask, conditioner)
    return _assemble(z_a, z_b * torch.exp(r) + s, mask), r.mean(1)


def _wrong_moves_a(z, mask, conditioner):         # conditions on B and moves A (mask read backwards)
    return flows.coupling_forward(z, ~mask, conditioner)


_COUPLING_FORWARD = Problem(
    id="15.2.coupling_forward",
    section="15.2",
    title="The affine coupling layer, eqs. (15.3)–(15.4), with its log-determinant",
    statement=("Write coupling_forward(z, mask, conditioner): z (b, d); mask (d,) bool, True on the "
               "coordinates A; conditioner(z_A) returns (r, s), each (b, |B|), with r = log h_θ(z_A) and "
               "s = s_θ(z_A). Return (z_next, log_det): z_next (b, d) by (15.3)–(15.4) and log_det (b,) "
               "= log|det ∂z_next/∂z|."),
    kind="function",
    reference=flows.coupling_forward,
    cases=_coupling_cases,
    harness=_with_conditioner,
    hint=("The coordinates in A pass through unchanged and decide how B is scaled and shifted; because A "
          "is untouched, the Jacobian is triangular and its determinant is the product of its diagonal.",
          "(15.4) scales z_B first and shifts afterwards; r already is the log of the scale. The diagonal "
          "entries are 1 on A and h on B, so log|det| sums log h over B, one value per row."),
    mistakes=(
        Mistake(_wrong_logdet_h, "log|det| sums h = exp(r): it sums log h = r."),
        Mistake(_wrong_shift_first, "the shift comes before the scale: (15.4) scales z_B, then adds s."),
        Mistake(_wrong_logdet_sign, "log|det| has the inverse's sign, −Σ r: the forward map scales by h."),
        Mistake(_wrong_logdet_mean, "log|det| averages over B: the log of a product is a sum."),
        Mistake(_wrong_moves_a, "the roles of the mask are swapped: True marks A, the part that passes "
                "through and conditions the rest."),
    ),
    reference_names=("companion_lib.flows.AffineCoupling", "companion_lib.flows.RealNVP"),
    rtol=1e-6, atol=1e-9,
)


def _wrong_inverse_as_printed(z_next, mask, conditioner):   # (15.6) as printed: ⊙ h instead of ⊘ h
    z_a, z_b, r, s = _split(z_next, mask, conditioner)
    return _assemble(z_a, (z_b - s) * torch.exp(r), mask)


def _wrong_inverse_divide_first(z_next, mask, conditioner):  # z_B/h − s: the steps in the wrong order
    z_a, z_b, r, s = _split(z_next, mask, conditioner)
    return _assemble(z_a, z_b * torch.exp(-r) - s, mask)


def _wrong_inverse_shift_sign(z_next, mask, conditioner):   # adds s back instead of removing it
    z_a, z_b, r, s = _split(z_next, mask, conditioner)
    return _assemble(z_a, (z_b + s) * torch.exp(-r), mask)


def _wrong_inverse_forward(z_next, mask, conditioner):      # applies the forward map again
    return flows.coupling_forward(z_next, mask, conditioner)[0]


_COUPLING_INVERSE = Problem(
    id="15.2.coupling_inverse",
    section="15.2",
    title="The inverse of the affine coupling layer, eqs. (15.5)–(15.6)",
    statement=("Write coupling_inverse(z_next, mask, conditioner) with the arguments of coupling_forward: "
               "return z (b, d) such that coupling_forward(z, mask, conditioner)[0] equals z_next."),
    kind="function",
    reference=flows.coupling_inverse,
    cases=_coupling_cases,
    harness=_with_conditioner,
    hint=("The A part is the same before and after the layer, so the conditioner gives the same scale and "
          "shift when evaluated on z_next: everything needed to undo (15.4) is available.",
          "Undo the two steps of (15.4) in reverse order: first remove the shift, then undo the scale "
          "(divide by h, i.e. multiply by exp(−r)). The printed (15.6) has a typo there."),
    mistakes=(
        Mistake(_wrong_inverse_as_printed, "(15.6) as printed multiplies by h: undoing the scale divides by "
                "h (the text's typo)."),
        Mistake(_wrong_inverse_divide_first, "the steps are undone in the wrong order: remove the shift "
                "first, then the scale."),
        Mistake(_wrong_inverse_shift_sign, "the shift is added again: undoing it subtracts s."),
        Mistake(_wrong_inverse_forward, "this applies the forward layer again, not its inverse."),
    ),
    reference_names=("companion_lib.flows.AffineCoupling", "companion_lib.flows.RealNVP"),
    rtol=1e-6, atol=1e-9,
)


# ---------------------------------------------------------------- Problem 15.2.1
def push_forward(z, a, b):
    """The map f of Problem 15.2.1: z (n, 4) ↦ (z₁, z₂, e^{a₀}z₃ + a₁z₁² + a₂z₂², e^{b₀}z₄ + b₁z₁² + b₂z₂²)."""
    z1, z2, z3, z4 = z.unbind(1)
    return torch.stack([z1, z2, torch.exp(a[0]) * z3 + a[1] * z1**2 + a[2] * z2**2,
                        torch.exp(b[0]) * z4 + b[1] * z1**2 + b[2] * z2**2], 1)


def _pull_back(x, a, b):
    """f⁻¹: x (n, 4) ↦ z (n, 4)."""
    x1, x2, x3, x4 = x.unbind(1)
    return torch.stack([x1, x2, (x3 - a[1] * x1**2 - a[2] * x2**2) * torch.exp(-a[0]),
                        (x4 - b[1] * x1**2 - b[2] * x2**2) * torch.exp(-b[0])], 1)


def density_15_2_1(x, a, b):
    """The reference: p(x) = N(f⁻¹(x); 0, I₄) · |det J_{f⁻¹}(x)| = N(f⁻¹(x); 0, I₄) · e^{−a₀−b₀}."""
    return torch.exp(flows.standard_normal_log_prob(_pull_back(x, a, b)) - a[0] - b[0])


def _density_cases(rng=None):
    """(x, a, b): x (n, 4) drawn from the distribution itself (so the density is not negligible)."""
    g = torch.Generator().manual_seed(case_seed(rng, 1521))
    cases = []
    for n in (40, 25, 60):
        a = torch.randn(3, generator=g, dtype=_F64)
        b = torch.randn(3, generator=g, dtype=_F64)
        z = torch.randn(n, 4, generator=g, dtype=_F64)
        cases.append((push_forward(z, a, b), a, b))
    return cases


def _gauss4(z):
    return torch.exp(-0.5 * (z**2).sum(1)) / (2 * math.pi) ** 2


def _wrong_no_jacobian(x, a, b):          # N(f⁻¹(x)) alone: forgets the change of volume
    return _gauss4(_pull_back(x, a, b))


def _wrong_det_not_inverse(x, a, b):      # multiplies by det J_f = e^{a₀+b₀} instead of its inverse
    return _gauss4(_pull_back(x, a, b)) * torch.exp(a[0] + b[0])


def _wrong_direction(x, a, b):            # evaluates N at f(x) instead of f⁻¹(x) (the text's f_θ reversed)
    return _gauss4(push_forward(x, a, b)) * torch.exp(-a[0] - b[0])


def _wrong_shift_sign(x, a, b):           # pulls back with + a₁x₁² + a₂x₂² (sign of the shift)
    flip = x.new_tensor([1.0, -1.0, -1.0])
    return density_15_2_1(x, a * flip, b * flip)


_P15_2_1 = Problem(
    id="15.2.1",
    section="15.2",
    title="Problem 15.2.1: the density of f(z) for a standard Gaussian z in R⁴",
    statement=("z = (z₁, z₂, z₃, z₄) ~ N(0, I₄) and f(z) = (z₁, z₂, e^{a₀}z₃ + a₁z₁² + a₂z₂², "
               "e^{b₀}z₄ + b₁z₁² + b₂z₂²). Write density(x, a, b): x (n, 4) points, a = (a₀, a₁, a₂) and "
               "b = (b₀, b₁, b₂) tensors of shape (3,). Return the (n,) values of the probability density "
               "of f(z) at the rows of x."),
    kind="function",
    reference=density_15_2_1,
    cases=_density_cases,
    hint=("f maps the latent to the data, the reverse of (15.2)'s f_θ: invert it, then apply the change "
          "of variables, which multiplies the latent density by a Jacobian determinant.",
          "Solving x = f(z) for z is explicit coordinate by coordinate (x₁, x₂ give z₁, z₂, then z₃, z₄). "
          "The Jacobian of that inverse is triangular: its determinant is the product of the diagonal, "
          "a constant here."),
    mistakes=(
        Mistake(_wrong_no_jacobian, "the Gaussian at f⁻¹(x) without the Jacobian factor: the change of "
                "volume is missing (it integrates to e^(a₀+b₀), not 1)."),
        Mistake(_wrong_det_not_inverse, "multiplied by det J_f = e^(a₀+b₀): the density needs the "
                "determinant of the inverse map, e^(−a₀−b₀)."),
        Mistake(_wrong_direction, "the Gaussian is evaluated at f(x): the latent is f⁻¹(x)."),
        Mistake(_wrong_shift_sign, "the pull-back adds a₁x₁² + a₂x₂²: inverting the shift subtracts it."),
    ),
    rtol=1e-6, atol=0.0,
)

#: This section's problems (``companion_lib.grading`` registers them).
SECTION_PROBLEMS = (_COUPLING_FORWARD, _COUPLING_INVERSE, _P15_2_1)
