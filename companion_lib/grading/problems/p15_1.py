"""§15.1 problems: the mask of a MADE layer (Germain et al. 2015), the core of the autoregressive model
that lesson 15_1 adds to the text's landscape."""
import torch

from companion_lib import autoregressive
from companion_lib.grading.registry import Mistake, Problem, case_seed


def _mask_cases(rng=None):
    g = torch.Generator().manual_seed(case_seed(rng, 1501))
    cases = []
    for D, h in [(5, 9), (8, 12), (16, 20)]:
        d_in = torch.randperm(D, generator=g) + 1                     # an ordering: pixel j has degree d_in[j]
        d_hid = torch.randint(1, D, (h,), generator=g)                # hidden degrees in 1..D−1
        d_hid2 = torch.randint(1, D, (h + 3,), generator=g)
        d_out = d_in.repeat_interleave(3)                             # three logits per pixel
        cases += [(d_in, d_hid, False), (d_hid, d_hid2, False), (d_hid2, d_out, True)]
    cases.append((torch.tensor([1, 2, 3]), torch.tensor([1, 2, 3]), True))        # one layer: input → output
    cases.append((torch.tensor([1, 2, 3]), torch.tensor([1, 2, 3]), False))
    return cases


def _wrong_output_sees_itself(d_in, d_out, output_layer):    # ≥ also in the output layer
    return (d_out[:, None] >= d_in[None, :]).float()


def _wrong_hidden_strict(d_in, d_out, output_layer):         # > also in the hidden layers
    return (d_out[:, None] > d_in[None, :]).float()


def _wrong_reversed(d_in, d_out, output_layer):              # a unit sees the inputs of higher degree
    rows, cols = d_out[:, None], d_in[None, :]
    return (rows < cols if output_layer else rows <= cols).float()


def _wrong_transposed(d_in, d_out, output_layer):            # (n_in, n_out): the shape of x @ W, not nn.Linear's
    return autoregressive.made_mask(d_in, d_out, output_layer).T


def _wrong_swapped_rule(d_in, d_out, output_layer):          # strict in the hidden layers, ≥ at the output
    rows, cols = d_out[:, None], d_in[None, :]
    return (rows >= cols if output_layer else rows > cols).float()


_MADE_MASK = Problem(
    id="15.1.made_mask",
    section="15.1",
    title="The mask of a MADE layer",
    statement=("Write made_mask(in_degrees, out_degrees, output_layer): in_degrees (n_in,) and out_degrees "
               "(n_out,) are long tensors of the degrees of a masked layer's inputs and outputs (an input "
               "pixel's degree is its position 1..D in the ordering; a hidden unit of degree m may depend "
               "on the pixels of degree 1..m; an output unit of degree d gives the conditional of the pixel "
               "of degree d). Return a float32 tensor of shape (n_out, n_in), the layout of nn.Linear's "
               "weight, with 1 where output k may receive input j and 0 where it must not, so that the "
               "network's conditional of each pixel depends only on the pixels before it in the ordering. "
               "output_layer (a bool) says whether this is the last layer."),
    kind="function",
    reference=autoregressive.made_mask,
    cases=_mask_cases,
    hint=("A unit of degree m may depend on the pixels of degree 1..m: it may receive a unit whose own "
          "dependence is no wider. At the output, the conditional of the pixel of degree d may depend "
          "only on the pixels before it, not on itself.",
          "Compare every output degree with every input degree (broadcast a column against a row): the "
          "hidden layers keep equality, the output layer does not. Rows are outputs, columns inputs."),
    mistakes=(
        Mistake(_wrong_output_sees_itself, "the output layer keeps equal degrees, so the conditional of "
                "pixel d receives pixel d itself: the model can copy its input and the product of the "
                "conditionals is no longer a distribution (the loss falls towards 0)."),
        Mistake(_wrong_hidden_strict, "the hidden layers drop equal degrees: a unit of degree m then never "
                "sees pixel m, and with the strict rule again at the output the last layers see less than "
                "they may."),
        Mistake(_wrong_reversed, "the inequality points the wrong way: units receive inputs of higher "
                "degree, i.e. pixels that come later in the ordering."),
        Mistake(_wrong_transposed, "the mask is (n_in, n_out): nn.Linear's weight is (n_out, n_in), rows "
                "are outputs."),
        Mistake(_wrong_swapped_rule, "the two rules are swapped: the hidden layers are strict and the "
                "output layer keeps equality."),
    ),
    rtol=0.0, atol=0.0,
    reference_names=("companion_lib.autoregressive.MaskedLinear", "companion_lib.autoregressive.MADE"),
)

#: This section's problems (``companion_lib.grading`` registers them).
SECTION_PROBLEMS = (_MADE_MASK,)
